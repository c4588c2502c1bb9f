//! `rollbook plan --check` for a `sql` step: can it run, and what would it touch?
//!
//! Where DDL is transactional (PostgreSQL, SQLite) the statements really run, with their
//! arguments, inside a transaction that is ALWAYS rolled back: the check then reports the
//! rows the step would affect and the errors it would hit, and changes nothing. MySQL and
//! MariaDB commit DDL implicitly, so there nothing of the plan is executed: the check connects,
//! runs `SELECT 1` and summarises `SHOW GRANTS FOR CURRENT_USER()`.

use std::time::Duration;

use rollbook_plan::action::SqlCall;
use sqlx::Row;

use crate::attempt::{describe, holds};
use crate::conn::{Conn, Limits, Pool};
use crate::errors::database_error;
use crate::sqltext::{Prepared, first_line};
use crate::target::Dialect;

/// Bounds a whole check: no executor times it out.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn check(pool: &Pool, call: &SqlCall, prepared: &[Prepared]) -> Result<String, String> {
    let target = &pool.target;
    let mut lent = pool.acquire().await?;
    // A SQLite file has no users.
    let who = match target.dialect {
        Dialect::Sqlite => target.name(),
        _ => format!("{} as {}", target.name(), target.user_name()),
    };
    let result = match target.dialect {
        Dialect::MySql => grants(&mut lent.conn, pool).await.map(|g| {
            let product = if lent.conn.is_mariadb() { "MariaDB" } else { "MySQL" };
            format!(
                "{} at {} as {}: connected, SELECT 1 ok; grants: {g}; the {} NOT run ({product} commits DDL implicitly, so they cannot be tried and rolled back)",
                product,
                target.host,
                target.user_name(),
                statements(prepared.len())
            )
        }),
        Dialect::Postgres | Dialect::Sqlite => try_and_roll_back(&mut lent.conn, pool, call, prepared)
            .await
            .map(|what| format!("{who}: {what}")),
    };
    // The connection is reused only if the check ended cleanly (rolled back).
    if result.is_ok() && lent.conn.forget_statements().await.is_ok() {
        pool.release(lent);
    }
    result
}

fn statements(n: usize) -> String {
    if n == 1 {
        "statement was".into()
    } else {
        format!("{n} statements were")
    }
}

/// BEGIN, the statements, ROLLBACK — whatever happens in between.
async fn try_and_roll_back(
    conn: &mut Conn,
    pool: &Pool,
    call: &SqlCall,
    prepared: &[Prepared],
) -> Result<String, String> {
    let target = &pool.target;
    let fail = |e: sqlx::Error| database_error(&e, target);
    conn.begin().await.map_err(fail)?;
    let limits = Limits {
        statement: Some(
            call.statement_timeout
                .unwrap_or(CHECK_TIMEOUT)
                .min(CHECK_TIMEOUT),
        ),
        lock: call.lock_timeout,
    };
    let mut affected = 0u64;
    let mut outcome = conn.apply_limits(limits, true).await.map_err(fail);
    if outcome.is_ok() {
        for (i, p) in prepared.iter().enumerate() {
            let name = format!(
                "statement {}/{} ({})",
                i + 1,
                prepared.len(),
                first_line(&call.statements[i].text)
            );
            match conn.run(&p.sql, &call.statements[i].args, false).await {
                Ok(Ok(r)) => affected += if p.reads_only() { 0 } else { r.affected },
                Ok(Err(e)) if is_no_transaction_allowed(&e) => {
                    outcome = Err(format!(
                        "{name} cannot run inside a transaction, so --check cannot try it (not a failure of the step)"
                    ));
                    break;
                }
                Ok(Err(e)) => {
                    outcome = Err(format!("{name} would fail: {}", fail(e)));
                    break;
                }
                Err(bad_arg) => {
                    outcome = Err(format!("{name}: {bad_arg}"));
                    break;
                }
            }
        }
    }
    let rolled_back = conn.exec("ROLLBACK".into()).await;
    let rolled_back = match rolled_back {
        Ok(()) => "rolled back".to_string(),
        Err(e) => format!(
            "ROLLBACK failed ({}), the connection is closed so the server rolls back",
            fail(e)
        ),
    };
    outcome?;
    let n = prepared.len();
    let guard = match &call.expect_rows_affected {
        Some(expect) if !holds(expect, affected) => {
            return Err(format!(
                "{affected} rows would be affected, expected {}: the step would fail ({rolled_back}, nothing changed)",
                describe(expect)
            ));
        }
        Some(expect) => format!(", within the expected {}", describe(expect)),
        None => String::new(),
    };
    Ok(format!(
        "ran the {} in a transaction and {rolled_back}: {affected} {} would be affected{guard}",
        if n == 1 {
            "statement".to_string()
        } else {
            format!("{n} statements")
        },
        if affected == 1 { "row" } else { "rows" },
    ))
}

/// PostgreSQL's `25001` (e.g. `CREATE INDEX CONCURRENTLY`, `VACUUM` in a transaction block).
fn is_no_transaction_allowed(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("25001"))
}

/// `SELECT 1`, then what the user may do, in one line: `ALL PRIVILEGES ON *.*; SELECT,
/// UPDATE ON app.*`. Only the part before ` TO ` of each grant is kept, which also leaves
/// out any `IDENTIFIED BY PASSWORD` hash.
async fn grants(conn: &mut Conn, pool: &Pool) -> Result<String, String> {
    let Conn::MySql { conn, .. } = conn else {
        return Err("not a MySQL connection".into());
    };
    let fail = |e: sqlx::Error| database_error(&e, &pool.target);
    sqlx::query("SELECT 1")
        .fetch_one(&mut *conn)
        .await
        .map_err(fail)?;
    let rows = sqlx::query("SHOW GRANTS FOR CURRENT_USER()")
        .fetch_all(&mut *conn)
        .await
        .map_err(fail)?;
    let mut parts = Vec::new();
    for row in rows {
        let grant: String = row
            .try_get::<String, _>(0)
            .or_else(|_| {
                row.try_get::<Vec<u8>, _>(0)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
            })
            .unwrap_or_default();
        let what = grant
            .strip_prefix("GRANT ")
            .and_then(|g| g.split(" TO ").next())
            .unwrap_or("(unreadable grant)");
        let with = if grant.contains("WITH GRANT OPTION") {
            " (with grant option)"
        } else {
            ""
        };
        parts.push(format!("{what}{with}"));
    }
    let mut text = parts.join("; ");
    if text.chars().count() > 300 {
        text = format!("{} ...", text.chars().take(300).collect::<String>());
    }
    Ok(if text.is_empty() { "none".into() } else { text })
}
