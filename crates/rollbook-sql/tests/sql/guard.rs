//! `expect.rows_affected`: checked before COMMIT in a transaction (a miss rolls everything
//! back), after the fact without one (and the message says the changes are in).

use rollbook_plan::model::RowsExpect;
use serde_json::json;

use crate::*;

const TABLE: &str = "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL);
                     INSERT INTO t VALUES (1, 10), (2, 20), (3, 30), (4, 40), (5, 50)";

fn update_three(url: &str) -> SqlCall {
    call(
        url,
        &[
            ("UPDATE t SET v = v + 1 WHERE id <= $1", vec![json!(2)]),
            ("UPDATE t SET v = v + 1 WHERE id = $1", vec![json!(3)]),
        ],
    )
}

async fn a_miss_rolls_back(db: TestDb) {
    db.exec(TABLE).await;
    let before = db.strings("SELECT id, v FROM t ORDER BY id").await;
    let runner = SqlRunner::new();
    let ran = run(
        &runner,
        in_transaction(update_three(&db.url), Some(RowsExpect::Exactly(1))),
    )
    .await;
    assert_eq!(
        ran.failure(),
        "expected exactly 1 row affected, got 3 (all 2 statements together); the transaction was rolled back: nothing was changed"
    );
    assert_eq!(ran.outcome.result().unwrap()["rows_affected"], json!(3));
    assert_eq!(db.strings("SELECT id, v FROM t ORDER BY id").await, before);
    assert!(ran.output().contains("rolled back"), "{}", ran.output());

    // Within the bounds, the same step commits.
    let ran = run(
        &runner,
        in_transaction(
            update_three(&db.url),
            Some(RowsExpect::Range {
                min: Some(1),
                max: Some(3),
            }),
        ),
    )
    .await;
    assert_eq!(ran.result()["rows_affected"], json!(3));
    assert_eq!(
        db.strings("SELECT v FROM t ORDER BY id").await,
        [["11"], ["21"], ["31"], ["40"], ["50"]]
    );
}

#[tokio::test]
async fn a_rows_affected_miss_rolls_the_transaction_back_on_postgres() {
    a_miss_rolls_back(TestDb::pg("guard").await).await;
}

#[tokio::test]
async fn a_rows_affected_miss_rolls_the_transaction_back_on_mariadb() {
    a_miss_rolls_back(TestDb::mysql("guard").await).await;
}

#[tokio::test]
async fn without_a_transaction_the_guard_reports_changes_that_are_already_in() {
    let db = TestDb::pg("guard_auto").await;
    db.exec(TABLE).await;
    let mut c = update_three(&db.url);
    c.expect_rows_affected = Some(RowsExpect::Range {
        min: None,
        max: Some(2),
    });
    let ran = run(&SqlRunner::new(), c).await;
    assert_eq!(
        ran.failure(),
        "expected at most 2 rows affected, got 3 (all 2 statements together); checked after the statements ran without a transaction: their changes are committed"
    );
    assert_eq!(
        db.strings("SELECT v FROM t ORDER BY id").await,
        [["11"], ["21"], ["31"], ["40"], ["50"]]
    );
}

#[tokio::test]
async fn rows_read_do_not_count_as_rows_affected() {
    // PostgreSQL reports `SELECT 5` for five rows read; the guard counts rows changed.
    let db = TestDb::pg("guard_reads").await;
    db.exec(TABLE).await;
    let c = in_transaction(
        call(
            &db.url,
            &[
                ("SELECT * FROM t", vec![]),
                ("DELETE FROM t WHERE id = $1", vec![json!(5)]),
                ("SELECT id FROM t ORDER BY id", vec![]),
            ],
        ),
        Some(RowsExpect::Exactly(1)),
    );
    let ran = run(&SqlRunner::new(), c).await;
    let r = ran.result();
    assert_eq!(r["rows_affected"], json!(1));
    // The rows are the last statement's.
    assert_eq!(
        r["rows"],
        json!([{ "id": 1 }, { "id": 2 }, { "id": 3 }, { "id": 4 }])
    );
    assert_eq!(
        ran.lines
            .iter()
            .map(|(_, l)| l.split(" (").next().unwrap())
            .collect::<Vec<_>>(),
        [
            "statement 1/3: 5 rows returned",
            "statement 2/3: 1 row affected",
            "statement 3/3: 4 rows returned",
            "committed"
        ]
    );
}

#[tokio::test]
async fn a_failing_statement_is_named_and_the_transaction_rolled_back() {
    let db = TestDb::pg("guard_fail").await;
    db.exec(TABLE).await;
    let c = in_transaction(
        call(
            &db.url,
            &[
                ("DELETE FROM t WHERE id = 1", vec![]),
                ("UPDATE t\n SET missing = 1", vec![]),
            ],
        ),
        None,
    );
    let ran = run(&SqlRunner::new(), c).await;
    assert_eq!(
        ran.failure(),
        "statement 2/2 (UPDATE t ...) failed: column \"missing\" of relation \"t\" does not exist [SQLSTATE 42703]; the transaction was rolled back: nothing was changed"
    );
    assert_eq!(db.strings("SELECT COUNT(*) FROM t").await, [["5"]]);

    // Without a transaction, what ran first stays, and the message says so.
    let c = call(
        &db.url,
        &[
            ("DELETE FROM t WHERE id = 1", vec![]),
            ("UPDATE t SET missing = 1", vec![]),
        ],
    );
    let ran = run(&SqlRunner::new(), c).await;
    assert!(
        ran.failure()
            .ends_with("; statement 1 ran before it (without a transaction) and stays committed"),
        "{}",
        ran.failure()
    );
    assert_eq!(db.strings("SELECT COUNT(*) FROM t").await, [["4"]]);
}

#[tokio::test]
async fn a_commit_inside_a_runner_transaction_is_refused_before_anything_runs() {
    let db = TestDb::pg("guard_commit").await;
    db.exec(TABLE).await;
    let c = in_transaction(
        call(&db.url, &[("DELETE FROM t", vec![]), ("COMMIT", vec![])]),
        None,
    );
    let ran = run(&SqlRunner::new(), c).await;
    assert!(
        ran.failure().starts_with("statement 2/2 (COMMIT): with `transaction: true` the runner itself sends BEGIN and COMMIT"),
        "{}",
        ran.failure()
    );
    assert_eq!(db.strings("SELECT COUNT(*) FROM t").await, [["5"]]);
}

/// A guarded UPDATE that would touch 3 rows where 2 are allowed, on a step that may fail
/// (`on_failure: continue`); a step after it; `finally` writes what it tolerated into the
/// database, through bound arguments.
const TOLERATED_GUARD: &str = r#"
version: 1
name: tolerated-guard
params:
  url: { type: string, required: true }
steps:
  - id: bump
    on_failure: continue
    sql:
      url: "{{ params.url }}"
      transaction: true
      query: UPDATE t SET v = v + 1 WHERE id <= $1
      args: [3]
      expect:
        rows_affected: { max: 2 }
  - id: after
    needs: [bump]
    sql:
      url: "{{ params.url }}"
      query: UPDATE t SET v = 0 WHERE id = $1
      args: [5]
finally:
  - id: record
    when: '$run.status == "succeeded"'
    sql:
      url: "{{ params.url }}"
      query: INSERT INTO notes (node, message) VALUES ($1, $2)
      args: ["{{ run.tolerated.[0].node }}", "{{ run.tolerated.[0].message }}"]
"#;

async fn a_rolled_back_guard_on_a_continue_step_is_tolerated(db: TestDb) {
    db.exec(TABLE).await;
    db.exec("CREATE TABLE notes (node VARCHAR(100), message VARCHAR(400))")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tolerated-guard.yaml");
    std::fs::write(&path, TOLERATED_GUARD).unwrap();
    let plan = compile_file(&path, &[&format!("url={}", db.url)]);
    let (status, journal) = execute(&plan, Map::new(), &Yes::default()).await;

    // The guard failed the step and rolled it back; the run went on and succeeded.
    let rolled_back = "expected at most 2 rows affected, got 3; the transaction was rolled back: nothing was changed";
    let (bump, message, _) = journal.finish("bump");
    assert_eq!(bump, NodeStatus::Failed);
    assert_eq!(message.as_deref(), Some(rolled_back));
    assert_eq!(status, RunStatus::Succeeded, "{:#?}", journal.events);
    assert_eq!(journal.finish("after").0, NodeStatus::Succeeded);
    assert_eq!(
        db.strings("SELECT v FROM t ORDER BY id").await,
        [["10"], ["20"], ["30"], ["40"], ["0"]]
    );
    match journal.events.last() {
        Some(Event::RunFinished { tolerated, .. }) => {
            let nodes: Vec<&str> = tolerated.iter().map(|t| t.node.as_str()).collect();
            assert_eq!(nodes, ["bump"]);
        }
        other => panic!("the run did not end: {other:?}"),
    }
    // `finally` saw `run.status` succeeded and the failure in `run.tolerated`.
    assert_eq!(
        db.strings("SELECT node, message FROM notes").await,
        [["bump", rolled_back]]
    );
}

#[tokio::test]
async fn a_rolled_back_guard_on_a_continue_step_does_not_fail_the_run_on_postgres() {
    a_rolled_back_guard_on_a_continue_step_is_tolerated(TestDb::pg("guard_tol").await).await;
}

#[tokio::test]
async fn a_rolled_back_guard_on_a_continue_step_does_not_fail_the_run_on_mariadb() {
    a_rolled_back_guard_on_a_continue_step_is_tolerated(TestDb::mysql("guard_tol").await).await;
}
