//! The tables, versioned: `sql/NNN_*.sql` applied in order, each in one transaction with the
//! row that records its version. rollbook refuses a database whose version it does not know.

use sqlx::Row;

use crate::{Error, Inner, bounded, db_error};

/// The migrations, in order: version `i + 1` is `MIGRATIONS[i]`.
pub const MIGRATIONS: &[&str] = &[include_str!("../sql/001_init.sql")];

/// The version this rollbook writes and reads.
pub const VERSION: i32 = MIGRATIONS.len() as i32;

/// What [`migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The version before (0: no tables).
    pub from: i32,
    /// The version now.
    pub to: i32,
}

/// The database's schema version: 0 when it has no rollbook tables.
async fn version(inner: &Inner) -> Result<i32, Error> {
    let exists: bool = bounded(
        &inner.target,
        "reading the schema version",
        sqlx::query_scalar("SELECT to_regclass('rollbook_schema') IS NOT NULL")
            .fetch_one(&inner.pool),
    )
    .await?;
    if !exists {
        return Ok(0);
    }
    let v: Option<i32> = bounded(
        &inner.target,
        "reading the schema version",
        sqlx::query_scalar("SELECT max(version) FROM rollbook_schema").fetch_one(&inner.pool),
    )
    .await?;
    Ok(v.unwrap_or(0))
}

/// Checks that the tables are there and of this version; with `init`, creates or migrates
/// them first.
pub(crate) async fn check(inner: &Inner, init: bool) -> Result<(), Error> {
    let v = version(inner).await?;
    if v > VERSION {
        return Err(Error::Schema {
            at: inner.target.shown(),
            message: format!(
                "its tables are schema version {v}, newer than this rollbook knows ({VERSION}): use a newer rollbook"
            ),
        });
    }
    if v == VERSION {
        return Ok(());
    }
    if init {
        migrate(inner).await?;
        return Ok(());
    }
    let message = if v == 0 {
        "it has no rollbook tables: create them with `rollbook state init` (or set ROLLBOOK_STATE_INIT=1 to create them on first use)".to_string()
    } else {
        format!(
            "its tables are schema version {v}, this rollbook needs {VERSION}: migrate them with `rollbook state init`"
        )
    };
    Err(Error::Schema {
        at: inner.target.shown(),
        message,
    })
}

/// Applies the migrations the database does not have, each in its own transaction. Two
/// controllers that migrate at once do not both apply one: an advisory lock orders them.
pub(crate) async fn migrate(inner: &Inner) -> Result<Applied, Error> {
    let from = version(inner).await?;
    let mut now = from;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let v = i as i32 + 1;
        if v <= now {
            continue;
        }
        let mut tx = bounded(&inner.target, "starting a migration", inner.pool.begin()).await?;
        bounded(
            &inner.target,
            "waiting for other migrations",
            sqlx::query("SELECT pg_advisory_xact_lock(7225, 0)").execute(&mut *tx),
        )
        .await?;
        // Another process may have applied it while this one waited.
        let done: bool = sqlx::query(
            "SELECT to_regclass('rollbook_schema') IS NOT NULL
               AND EXISTS (SELECT 1 FROM pg_tables WHERE tablename = 'rollbook_runs')",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| db_error(&inner.target, e))?
        .get(0);
        let applied: bool = done
            && sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM rollbook_schema WHERE version = $1)",
            )
            .bind(v)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db_error(&inner.target, e))?;
        if !applied {
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    db_error(&inner.target, format!("applying schema version {v}: {e}"))
                })?;
        }
        bounded(&inner.target, "committing a migration", tx.commit()).await?;
        now = v;
    }
    Ok(Applied { from, to: now })
}
