//! `check()` (`rollbook plan --check`): on PostgreSQL the statements run and are ALWAYS
//! rolled back; on MariaDB they are never executed.

use rollbook_plan::model::RowsExpect;
use serde_json::json;

use crate::*;

async fn check(c: SqlCall) -> Result<String, String> {
    SqlRunner::new().check(&Action::Sql(c)).await
}

const TABLE: &str = "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL);
                     INSERT INTO t VALUES (1, 10), (2, 20), (3, 30)";

fn delete_and_update(url: &str) -> SqlCall {
    call(
        url,
        &[
            ("DELETE FROM t WHERE id <= $1", vec![json!(2)]),
            ("UPDATE t SET v = 0", vec![]),
            ("DROP TABLE t", vec![]),
        ],
    )
}

#[tokio::test]
async fn check_on_postgres_runs_the_statements_and_rolls_them_back() {
    let db = TestDb::pg("check").await;
    db.exec(TABLE).await;
    let host = db
        .url
        .split('@')
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();

    let said = check(delete_and_update(&db.url)).await.unwrap();
    assert_eq!(
        said,
        format!(
            "PostgreSQL at {host} as postgres: ran the 3 statements in a transaction and rolled back: 3 rows would be affected"
        )
    );
    assert_eq!(
        db.strings("SELECT id, v FROM t ORDER BY id").await,
        [["1", "10"], ["2", "20"], ["3", "30"]]
    );

    // A guard the step would miss, and a statement that would fail: both reported, both
    // rolled back.
    let mut c = delete_and_update(&db.url);
    c.expect_rows_affected = Some(RowsExpect::Exactly(1));
    let said = check(c).await.unwrap_err();
    assert_eq!(
        said,
        "3 rows would be affected, expected exactly 1 row: the step would fail (rolled back, nothing changed)"
    );
    let c = call(
        &db.url,
        &[("DELETE FROM t", vec![]), ("UPDATE t SET nope = 1", vec![])],
    );
    let said = check(c).await.unwrap_err();
    assert!(
        said.starts_with("statement 2/2 (UPDATE t SET nope = 1) would fail: column \"nope\""),
        "{said}"
    );
    assert_eq!(db.strings("SELECT COUNT(*) FROM t").await, [["3"]]);
}

#[tokio::test]
async fn check_on_mariadb_never_executes_the_statements() {
    let db = TestDb::mysql("check").await;
    db.exec(TABLE).await;
    let said = check(delete_and_update(&db.url)).await.unwrap();
    assert!(
        said.starts_with("MariaDB at 127.0.0.1:") || said.starts_with("MariaDB at localhost:"),
        "{said}"
    );
    assert!(
        said.contains(": connected, SELECT 1 ok; grants: "),
        "{said}"
    );
    assert!(
        said.ends_with("the 3 statements were NOT run (MariaDB commits DDL implicitly, so they cannot be tried and rolled back)"),
        "{said}"
    );
    assert!(!said.contains("IDENTIFIED BY"), "{said}");
    // The DROP TABLE did not run, nor did the DELETE.
    assert_eq!(
        db.strings("SELECT id, v FROM t ORDER BY id").await,
        [["1", "10"], ["2", "20"], ["3", "30"]]
    );
}
