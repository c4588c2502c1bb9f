//! `sql` steps through the real binary: `examples/sqlite-cleanup.yaml` run, refused by its
//! rows-affected guard, and checked by `plan --check`, on a SQLite file of the test's own.
//! (PostgreSQL and MariaDB are exercised by rollbook-sql's tests and the fleet's end-to-end
//! runs.)

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

fn rollbook(dir: &Path) -> Command {
    crate::rollbook_in(dir)
}

fn example() -> String {
    crate::workspace()
        .join("examples/sqlite-cleanup.yaml")
        .display()
        .to_string()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// The newest run's `show --format json`.
fn last_run(dir: &Path) -> Value {
    let runs = rollbook(dir)
        .args(["runs", "--format", "json"])
        .output()
        .unwrap();
    let runs: Value = serde_json::from_slice(&runs.stdout).unwrap();
    let id = runs["runs"][0]["meta"]["run_id"].as_str().unwrap();
    let out = rollbook(dir)
        .args(["show", id, "--format", "json"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

fn node<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {run:#}"))
}

/// The ids left in the table, read by a plan of the test's own.
fn ids_left(dir: &Path, db: &Path) -> Value {
    let plan = dir.join("count.yaml");
    std::fs::write(
        &plan,
        format!(
            "version: 1\nname: count\nsteps:\n  - id: ids\n    sql:\n      url: \"sqlite://{}\"\n      query: SELECT id FROM events ORDER BY id\n    capture:\n      ids: '[.rows[].id]'\n",
            db.display()
        ),
    )
    .unwrap();
    let out = rollbook(dir)
        .args(["run", plan.to_str().unwrap(), "--reason", "count"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    node(&last_run(dir), "ids")["outputs"]["ids"].clone()
}

#[test]
fn the_sqlite_example_deletes_old_rows_and_its_guard_rolls_back_a_wider_delete() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let db_param = format!("db={}", db.display());

    let out = rollbook(dir.path())
        .args([
            "run",
            &example(),
            "--reason",
            "cleanup",
            "--param",
            &db_param,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let run = last_run(dir.path());
    assert_eq!(
        node(&run, "left")["outputs"]["kinds"],
        serde_json::json!(["deploy", "deploy"])
    );
    assert_eq!(ids_left(dir.path(), &db), serde_json::json!([3, 4]));

    // 30 days would delete three rows (the two put back by `setup`, and the 60-day-old one):
    // over the guard's max of 2, so the DELETE is rolled back and the run fails.
    let out = rollbook(dir.path())
        .args(["run", &example(), "--reason", "tighter"])
        .args(["--param", &db_param, "--param", "keep_days=30"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("cleanup FAILED"), "{err}");
    assert!(err.contains("3 rows affected"), "{err}");
    assert!(err.contains("rolled back"), "{err}");
    assert_eq!(ids_left(dir.path(), &db), serde_json::json!([1, 2, 3, 4]));
}

#[test]
fn plan_check_tries_sqlite_statements_in_a_transaction_it_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let db_param = format!("db={}", db.display());
    // A first run makes the table, so the check can try the DELETE on it.
    let out = rollbook(dir.path())
        .args(["run", &example(), "--reason", "setup", "--param", &db_param])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let before = ids_left(dir.path(), &db);

    let out = rollbook(dir.path())
        .args(["plan", &example(), "--check", "--param", &db_param])
        .args(["--param", "keep_days=1"])
        .output()
        .unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("preflight"), "{all}");
    assert!(all.contains("rolled back"), "{all}");
    assert!(!all.contains("FAILED"), "{all}");
    // Nothing changed: the check's DELETE of the 60-day-old row was rolled back.
    assert_eq!(ids_left(dir.path(), &db), before);
}
