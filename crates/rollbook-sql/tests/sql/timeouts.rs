//! The step's timeout reaches the server, and a cancelled attempt stops there too: after the
//! attempt ends, the query is no longer running (`pg_stat_activity`,
//! `information_schema.processlist`).
//!
//! The queries sleep for ten minutes: only the timeout or the cancel under test can end them
//! in a test's lifetime, so what is asserted is what happened (the attempt failed, the query
//! is gone from the server), never how long it took. A query that the runner failed to stop
//! makes the test fail (`running`), or nextest's time limit end it.

use std::time::Duration;

use rollbook_exec::event::{NodeStatus, RunStatus};
use serde_json::{Map, Value};

use crate::*;

/// A one-step plan whose step sleeps on the server with a 500 ms timeout.
fn sleepy_plan(sleep_sql: &str) -> rollbook_plan::compile::CompiledPlan {
    let text = format!(
        "version: 1
name: slow
secrets:
  db: {{ env: ROLLBOOK_TEST_UNUSED }}
steps:
  - id: slow
    timeout: 500ms
    sql:
      url: \"{{{{ secrets.db }}}}\"
      query: {sleep_sql}
"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slow.yaml");
    std::fs::write(&path, text).unwrap();
    compile_file(&path, &[])
}

/// Queries of this test's database still running on the server (other than the one asking).
async fn running(db: &TestDb, marker: &str) -> Vec<Vec<String>> {
    let sql = match db.server {
        Server::Pg => format!(
            "SELECT pid::text, state FROM pg_stat_activity WHERE query LIKE '%{marker}%' \
             AND pid <> pg_backend_pid()"
        ),
        Server::MySql => format!(
            "SELECT id, command FROM information_schema.processlist WHERE info LIKE '%{marker}%' \
             AND id <> CONNECTION_ID()"
        ),
    };
    db.strings(&sql).await
}

async fn a_timed_out_step_stops_on_the_server(db: TestDb, sleep: &str) {
    let marker = format!("{}_marker", db.name);
    let plan = sleepy_plan(&format!("SELECT {sleep} AS {marker}"));
    let mut secrets = Map::new();
    secrets.insert("db".into(), Value::String(db.url.clone()));
    let (status, journal) = execute(&plan, secrets, &Yes::default()).await;
    assert_eq!(status, RunStatus::Failed);
    let (node_status, message, _) = journal.finish("slow");
    assert_eq!(node_status, NodeStatus::Failed, "{message:?}");
    let still = running(&db, &marker).await;
    assert!(still.is_empty(), "still running on the server: {still:?}");
}

#[tokio::test]
async fn a_timed_out_step_stops_its_query_on_postgres() {
    a_timed_out_step_stops_on_the_server(TestDb::pg("timeout").await, "pg_sleep(600)").await;
}

#[tokio::test]
async fn a_timed_out_step_stops_its_query_on_mariadb() {
    a_timed_out_step_stops_on_the_server(TestDb::mysql("timeout").await, "SLEEP(600)").await;
}

/// Without a server-side limit, only the cancel path can stop the query: the runner closes
/// the connection and cancels the query from a second one. The cancel comes once the query
/// runs on the server.
async fn cancel_stops_the_query(db: TestDb, sleep: &str) {
    let marker = format!("{}_marker", db.name);
    let mut c = one(&db.url, &format!("SELECT {sleep} AS {marker}"));
    c.statement_timeout = None;
    let cancel = CancellationToken::new();
    let attempt = tokio::spawn(run_with_owned(c, cancel.clone()));
    wait_until_running(&db, &marker).await;
    cancel.cancel();
    let ran = attempt.await.unwrap();
    let message = ran.failure();
    assert!(
        message.starts_with(&format!(
            "cancelled during statement 1/1 (SELECT {sleep} AS {marker})"
        )),
        "{message}"
    );
    let killed = match db.server {
        Server::Pg => "cancelled the query of backend",
        Server::MySql => "killed the query on the server",
    };
    assert!(message.contains(killed), "{message}");
    let still = running(&db, &marker).await;
    assert!(still.is_empty(), "still running on the server: {still:?}");
}

#[tokio::test]
async fn a_cancelled_attempt_cancels_its_query_on_postgres() {
    cancel_stops_the_query(TestDb::pg("cancel").await, "pg_sleep(600)").await;
}

#[tokio::test]
async fn a_cancelled_attempt_kills_its_query_on_mariadb() {
    cancel_stops_the_query(TestDb::mysql("cancel").await, "SLEEP(600)").await;
}

#[tokio::test]
async fn the_server_enforces_the_step_timeout_by_itself_on_postgres() {
    let db = TestDb::pg("stmt_timeout").await;
    let mut c = one(&db.url, "SELECT pg_sleep(600)");
    c.statement_timeout = Some(Duration::from_millis(300));
    let ran = run(&SqlRunner::new(), c).await;
    assert_eq!(
        ran.failure(),
        "statement 1/1 (SELECT pg_sleep(600)) failed: canceling statement due to statement timeout [SQLSTATE 57014]; nothing was changed"
    );
}

#[tokio::test]
async fn lock_timeout_gives_up_waiting_for_a_lock_on_postgres() {
    let db = TestDb::pg("lock_timeout").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    // Another session holds the table's lock until the attempt is over: only the lock timeout
    // can end the wait.
    let mut holder = sqlx::postgres::PgConnection::connect(&db.url)
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    let mut c = in_transaction(one(&db.url, "ALTER TABLE t ADD COLUMN c INT"), None);
    c.lock_timeout = Some(Duration::from_millis(200));
    let ran = run(&SqlRunner::new(), c).await;
    assert!(
        ran.failure()
            .contains("canceling statement due to lock timeout [SQLSTATE 55P03]"),
        "{}",
        ran.failure()
    );
    sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
}

/// `run_with` on a task of its own.
async fn run_with_owned(c: rollbook_plan::action::SqlCall, cancel: CancellationToken) -> Ran {
    run_with(&SqlRunner::new(), c, cancel).await
}

/// Waits (up to a minute) until the query marked `marker` runs on the server.
async fn wait_until_running(db: &TestDb, marker: &str) {
    for _ in 0..600 {
        if !running(db, marker).await.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the query {marker} never showed up on the server");
}
