//! SQLite: `examples/sqlite-cleanup.yaml` run by the executor on a temporary file, its guard
//! rolling a too-wide DELETE back, and SQLite's value mapping.

use rollbook_exec::event::{NodeStatus, RunStatus};
use serde_json::{Map, json};

use crate::*;

fn example(db: &std::path::Path, keep_days: u32) -> rollbook_plan::compile::CompiledPlan {
    compile_file(
        &workspace().join("examples/sqlite-cleanup.yaml"),
        &[
            &format!("db={}", db.display()),
            &format!("keep_days={keep_days}"),
        ],
    )
}

async fn ids(file: &std::path::Path) -> serde_json::Value {
    let url = format!("sqlite://{}", file.display());
    let ran = run(
        &SqlRunner::new(),
        one(&url, "SELECT id FROM events ORDER BY id"),
    )
    .await;
    ran.result()["rows"].clone()
}

#[tokio::test]
async fn the_sqlite_cleanup_example_deletes_old_rows_and_its_guard_rolls_back_a_wide_delete() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.db");

    // Default: rows older than 75 days (ids 1 and 2) go.
    let (status, journal) = execute(&example(&file, 75), Map::new(), &Yes::default()).await;
    assert_eq!(status, RunStatus::Succeeded, "{:#?}", journal.events);
    let (_, _, outputs) = journal.finish("left");
    assert_eq!(outputs, Some(json!({ "kinds": ["deploy", "deploy"] })));
    assert!(
        journal
            .log_of("cleanup")
            .starts_with("statement 1/1: 2 rows affected ("),
        "{}",
        journal.log_of("cleanup")
    );
    assert_eq!(ids(&file).await, json!([{ "id": 3 }, { "id": 4 }]));

    // 30 days would delete 3 rows (the setup puts 1 and 2 back first): over the guard's 2,
    // so nothing is deleted and the run stops there.
    let (status, journal) = execute(&example(&file, 30), Map::new(), &Yes::default()).await;
    assert_eq!(status, RunStatus::Failed);
    let (node_status, message, _) = journal.finish("cleanup");
    assert_eq!(node_status, NodeStatus::Failed);
    assert_eq!(
        message.as_deref(),
        Some(
            "expected at most 2 rows affected, got 3; the transaction was rolled back: nothing was changed"
        )
    );
    assert_eq!(
        ids(&file).await,
        json!([{ "id": 1 }, { "id": 2 }, { "id": 3 }, { "id": 4 }])
    );
}

#[tokio::test]
async fn sqlite_values_map_by_their_storage_class() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let runner = SqlRunner::new();
    let ran = run(
        &runner,
        call(
            &url,
            &[
                (
                    "CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, flag BOOLEAN, n TEXT)",
                    vec![],
                ),
                (
                    "INSERT INTO t VALUES ($1, $2, $3, x'00ff', $4, $5)",
                    vec![
                        json!(7),
                        json!(2.5),
                        json!("text; DROP TABLE t"),
                        json!(true),
                        json!(null),
                    ],
                ),
                ("SELECT * FROM t", vec![]),
            ],
        ),
    )
    .await;
    assert_eq!(
        ran.result(),
        &json!({
            "rows": [{ "i": 7, "r": 2.5, "s": "text; DROP TABLE t", "b": "AP8=", "flag": true, "n": null }],
            "rows_affected": 1,
            "truncated": false,
        })
    );
}

#[tokio::test]
async fn a_missing_sqlite_file_says_how_to_create_it_and_two_statements_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("missing.db");
    let url = format!("sqlite://{}", file.display());
    let ran = run(&SqlRunner::new(), one(&url, "SELECT 1")).await;
    assert!(
        ran.failure()
            .starts_with(&format!("cannot open SQLite database {}: ", file.display())),
        "{}",
        ran.failure()
    );
    assert!(
        ran.failure()
            .ends_with("(does the file exist? add `?mode=rwc` to the URL to create it)")
    );
    assert!(!file.exists());

    // SQLite would run both; the runner refuses before opening anything.
    let ran = run(
        &SqlRunner::new(),
        one(
            &format!("{url}?mode=rwc"),
            "CREATE TABLE a (x INT); DROP TABLE b",
        ),
    )
    .await;
    assert!(
        ran.failure().contains("holds more than one statement"),
        "{}",
        ran.failure()
    );
    assert!(!file.exists());
}
