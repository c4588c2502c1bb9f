//! `plans/database-migration-rollback.yaml`, unchanged, run by the executor with the real
//! runner against real PostgreSQL and MariaDB, on the schema the migration left behind.
//!
//! On PostgreSQL the revert is all or nothing: a failure in its last statement leaves the
//! schema exactly as it was. On MariaDB, DDL commits implicitly, so the same failure leaves
//! the three ALTER TABLEs done and rolls back only the UPDATE and DELETE after them; the runner
//! warns about it before it starts and says so in the failure message. The tests pin both.

use rollbook_exec::event::{NodeStatus, RunStatus};
use serde_json::{Map, Value, json};

use crate::*;

/// What the migration (0042) produced: a new column, a renamed column, a dropped column
/// kept in `nodes_backup`, and its row in `schema_migrations`. Portable SQL.
const SCHEMA: &str = "
CREATE TABLE projects (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, new_column TEXT);
CREATE TABLE instances (id INT PRIMARY KEY, new_name VARCHAR(100));
CREATE TABLE nodes (id INT PRIMARY KEY, hostname VARCHAR(100) NOT NULL);
CREATE TABLE nodes_backup (id INT PRIMARY KEY, deprecated_field TEXT);
CREATE TABLE migration_history (version VARCHAR(20) NOT NULL, status VARCHAR(20) NOT NULL,
                                applied_at TIMESTAMP NOT NULL);
CREATE TABLE schema_migrations (version VARCHAR(20) PRIMARY KEY);
INSERT INTO projects VALUES (1, 'zeitwork', 'added by 0042'), (2, 'edge', NULL);
INSERT INTO instances VALUES (1, 'web-1'), (2, 'web-2');
INSERT INTO nodes VALUES (1, 'us-east-op-1'), (2, 'us-east-op-2'), (3, 'us-east-op-3'),
                         (4, 'us-east-op-4'), (5, 'us-east-op-5');
INSERT INTO nodes_backup VALUES (1, 'a'), (2, 'b'), (3, NULL), (4, 'd');
INSERT INTO migration_history VALUES
  ('0040', 'success', '2026-01-01 00:00:00'), ('0041', 'success', '2026-01-02 00:00:00'),
  ('0042', 'success', '2026-01-03 00:00:00'), ('0043', 'failed', '2026-01-04 00:00:00');
INSERT INTO schema_migrations VALUES ('0039'), ('0040'), ('0041'), ('0042')
";

/// Makes the plan's last statement fail: 0042 is still referenced, so it cannot be deleted.
const BLOCK_THE_DELETE: &str = "
CREATE TABLE migration_locks (version VARCHAR(20) NOT NULL,
                              FOREIGN KEY (version) REFERENCES schema_migrations (version));
INSERT INTO migration_locks VALUES ('0042')
";

fn plan() -> rollbook_plan::compile::CompiledPlan {
    compile_file(
        &workspace().join("plans/database-migration-rollback.yaml"),
        &["method=sql"],
    )
}

async fn run_plan(db: &TestDb) -> (RunStatus, MemJournal, Yes) {
    let mut secrets = Map::new();
    secrets.insert("database_url".into(), Value::String(db.url.clone()));
    let yes = Yes::default();
    let (status, journal) = execute(&plan(), secrets, &yes).await;
    (status, journal, yes)
}

/// (table, column) pairs of the tables the plan touches.
async fn table_columns(db: &TestDb) -> Vec<String> {
    db.columns()
        .await
        .into_iter()
        .map(|line| line.split(' ').take(2).collect::<Vec<_>>().join("."))
        .filter(|c| !c.starts_with("migration_"))
        .collect()
}

async fn reverts_the_migration(db: TestDb) {
    db.exec(SCHEMA).await;
    let (status, journal, yes) = run_plan(&db).await;
    assert_eq!(status, RunStatus::Succeeded, "{:#?}", journal.events);

    // The last safe version is the one before the latest successful migration, and the
    // person was asked about exactly that version.
    let (_, _, outputs) = journal.finish("last_safe");
    assert_eq!(outputs, Some(json!({ "version": "0041" })));
    let prompts = yes.prompts.lock().unwrap().clone();
    assert!(
        prompts.iter().any(|p| p.contains("version 0041")),
        "{prompts:?}"
    );
    // The drops are irreversible: the plan's phrase was asked for again before them.
    assert!(
        prompts
            .iter()
            .any(|p| p == "step revert-schema is irreversible: type ROLLBACK DATABASE to go on"),
        "{prompts:?}"
    );
    assert_eq!(journal.finish("migration-tool").0, NodeStatus::Skipped);

    assert_eq!(
        table_columns(&db).await,
        [
            "instances.id",
            "instances.old_name",
            "nodes.id",
            "nodes.hostname",
            "nodes.deprecated_field",
            "nodes_backup.id",
            "nodes_backup.deprecated_field",
            "projects.id",
            "projects.name",
            "schema_migrations.version",
        ]
    );
    assert_eq!(
        db.strings("SELECT id, deprecated_field FROM nodes ORDER BY id")
            .await,
        [
            ["1", "a"],
            ["2", "b"],
            ["3", "NULL"],
            ["4", "d"],
            ["5", "NULL"]
        ]
    );
    assert_eq!(
        db.strings("SELECT version FROM schema_migrations ORDER BY version")
            .await,
        [["0039"], ["0040"], ["0041"]]
    );
    // One line per statement; the UPDATE touched the 4 nodes with a backup row.
    let log = journal.log_of("revert-schema");
    assert!(log.contains("statement 4/5: 4 rows affected ("), "{log}");
    assert!(log.contains("statement 5/5: 1 row affected ("), "{log}");
    assert!(log.contains("committed ("), "{log}");
    assert!(!log.contains(&db.url), "{log}");
}

#[tokio::test]
async fn the_migration_rollback_plan_reverts_the_schema_on_postgres() {
    reverts_the_migration(TestDb::pg("migr_ok").await).await;
}

#[tokio::test]
async fn the_migration_rollback_plan_reverts_the_schema_on_mariadb() {
    let db = TestDb::mysql("migr_ok").await;
    reverts_the_migration(db).await;
}

#[tokio::test]
async fn a_failing_last_statement_leaves_the_postgres_schema_exactly_as_it_was() {
    let db = TestDb::pg("migr_fail").await;
    db.exec(SCHEMA).await;
    db.exec(BLOCK_THE_DELETE).await;
    let columns = db.columns().await;
    let nodes = db.strings("SELECT * FROM nodes ORDER BY id").await;
    let versions = db
        .strings("SELECT version FROM schema_migrations ORDER BY version")
        .await;
    let projects = db.strings("SELECT * FROM projects ORDER BY id").await;

    let (status, journal, _) = run_plan(&db).await;
    assert_eq!(status, RunStatus::Failed);
    let (node_status, message, _) = journal.finish("revert-schema");
    assert_eq!(node_status, NodeStatus::Failed);
    let message = message.unwrap();
    assert!(
        message.starts_with(
            "statement 5/5 (DELETE FROM schema_migrations WHERE version > $1) failed: "
        ),
        "{message}"
    );
    assert!(
        message.contains("foreign key") && message.contains("[SQLSTATE 23503]"),
        "{message}"
    );
    assert!(
        message.ends_with("the transaction was rolled back: nothing was changed"),
        "{message}"
    );

    // Column by column, row by row: as before the run.
    assert_eq!(db.columns().await, columns);
    assert_eq!(db.strings("SELECT * FROM nodes ORDER BY id").await, nodes);
    assert_eq!(
        db.strings("SELECT version FROM schema_migrations ORDER BY version")
            .await,
        versions
    );
    assert_eq!(
        db.strings("SELECT * FROM projects ORDER BY id").await,
        projects
    );
}

/// MariaDB commits each ALTER TABLE implicitly. The runner opens a new transaction after
/// each one, so the UPDATE and DELETE after the last ALTER are still all or nothing; but the
/// ALTERs stay done. This is what an operator finds after such a failure, and the plan's
/// comments and docs/runners.md say so.
#[tokio::test]
async fn on_mariadb_a_failing_last_statement_keeps_the_ddl_and_rolls_back_the_rest() {
    let db = TestDb::mysql("migr_fail").await;
    db.exec(SCHEMA).await;
    db.exec(BLOCK_THE_DELETE).await;

    let (status, journal, _) = run_plan(&db).await;
    assert_eq!(status, RunStatus::Failed);
    let (_, message, _) = journal.finish("revert-schema");
    let message = message.unwrap();
    assert!(
        message.starts_with("statement 5/5 (DELETE FROM schema_migrations"),
        "{message}"
    );
    assert!(
        message.contains("foreign key constraint fails"),
        "{message}"
    );
    assert!(
        message.ends_with(
            "the transaction was rolled back: statements 1-3 stay committed (MySQL commits DDL implicitly); only what ran after them was undone"
        ),
        "{message}"
    );
    let log = journal.log_of("revert-schema");
    assert!(
        log.contains("warning: MariaDB commits DDL implicitly: statements 1, 2, 3 of 5"),
        "{log}"
    );

    // The three ALTERs are done...
    let columns = table_columns(&db).await;
    assert!(
        !columns.contains(&"projects.new_column".to_string()),
        "{columns:?}"
    );
    assert!(
        columns.contains(&"instances.old_name".to_string()),
        "{columns:?}"
    );
    assert!(
        columns.contains(&"nodes.deprecated_field".to_string()),
        "{columns:?}"
    );
    // ...the UPDATE and the DELETE are not.
    assert_eq!(
        db.strings("SELECT COUNT(*) FROM nodes WHERE deprecated_field IS NOT NULL")
            .await,
        [["0"]]
    );
    assert_eq!(
        db.strings("SELECT version FROM schema_migrations ORDER BY version")
            .await,
        [["0039"], ["0040"], ["0041"], ["0042"]]
    );
}
