//! Connections: opening them, keeping them per URL for the run, and the few statements the
//! runner itself sends (transaction control, timeouts, cancelling a query on the server).
//!
//! The pool is the runner's own rather than sqlx's: a connection goes back only after its
//! step ended cleanly (committed, rolled back, session settings reset); one that was
//! cancelled mid-statement, or whose step ran its own BEGIN/COMMIT, is closed instead, so no
//! step ever inherits another's open transaction or settings.

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlConnection, MySqlQueryResult};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgQueryResult, Postgres};
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqliteConnection, SqliteQueryResult};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::errors::connect_error;
use crate::target::{Dialect, Target};
use crate::values::{self, StatementResult};

/// Time allowed to open a connection (TCP, TLS, login). The step's `timeout` bounds the rest.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once to one URL. A fan-out of more SQL steps waits for a free one.
pub const MAX_CONNECTIONS: usize = 16;
/// How long cancelling a query on the server may take before the runner gives up on it.
const KILL_TIMEOUT: Duration = Duration::from_secs(3);
/// PostgreSQL statements kept prepared on a connection within a step. When the cache is
/// full it is emptied at once (one round trip for all of them) instead of letting sqlx
/// evict one statement per new one (one round trip each): a step of 10,000 different
/// statements is then about two round trips per statement, not three.
const PG_STATEMENT_CACHE: usize = 100;
/// sqlx's default SQLite busy timeout, restored after a step that set `lock_timeout`.
const SQLITE_DEFAULT_BUSY_MS: u128 = 5000;

/// One open connection, with what the runner learnt about it when it opened.
pub enum Conn {
    Pg {
        conn: PgConnection,
        /// The backend's process id, for `pg_cancel_backend`.
        pid: i32,
    },
    MySql {
        conn: MySqlConnection,
        /// `CONNECTION_ID()`, for `KILL QUERY`.
        id: u64,
        /// MariaDB has `max_statement_time` for every statement; MySQL has
        /// `max_execution_time`, for SELECT only.
        mariadb: bool,
    },
    Sqlite {
        conn: SqliteConnection,
    },
}

/// How to stop this connection's running query from elsewhere.
#[derive(Debug, Clone, Copy)]
pub enum Killer {
    Pg(i32),
    MySql(u64),
    None,
}

/// The server-side limits of one step.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub statement: Option<Duration>,
    pub lock: Option<Duration>,
}

impl Conn {
    pub async fn open(target: &Target) -> Result<Conn, String> {
        match tokio::time::timeout(CONNECT_TIMEOUT, Self::open_now(target)).await {
            Ok(r) => r.map_err(|e| connect_error(&e, target)),
            Err(_) => Err(format!(
                "cannot connect to {}: no answer within {}s",
                target.name(),
                CONNECT_TIMEOUT.as_secs()
            )),
        }
    }

    async fn open_now(target: &Target) -> Result<Conn, sqlx::Error> {
        let url = target.connect_url.as_str();
        Ok(match target.dialect {
            Dialect::Postgres => {
                let opts = PgConnectOptions::from_str(url)?
                    .application_name("rollbook")
                    .statement_cache_capacity(PG_STATEMENT_CACHE)
                    .disable_statement_logging();
                let mut conn = opts.connect().await?;
                let pid: i32 = sqlx::query("SELECT pg_backend_pid()")
                    .fetch_one(&mut conn)
                    .await?
                    .try_get(0)?;
                Conn::Pg { conn, pid }
            }
            Dialect::MySql => {
                // The server's own sql_mode and time zone, as the mysql client has them: a
                // plan's SQL means what it means there (sqlx would add PIPES_AS_CONCAT and
                // switch the session to UTC).
                let opts = MySqlConnectOptions::from_str(url)?
                    .pipes_as_concat(false)
                    .no_engine_substitution(false)
                    .timezone(None)
                    .disable_statement_logging();
                let mut conn = opts.connect().await?;
                let row = sqlx::query("SELECT VERSION(), CONNECTION_ID()")
                    .fetch_one(&mut conn)
                    .await?;
                let version: String = row.try_get(0)?;
                let id: u64 = row.try_get(1)?;
                Conn::MySql {
                    conn,
                    id,
                    mariadb: version.contains("MariaDB"),
                }
            }
            Dialect::Sqlite => {
                let opts = SqliteConnectOptions::from_str(url)?.disable_statement_logging();
                Conn::Sqlite {
                    conn: opts.connect().await?,
                }
            }
        })
    }

    pub fn killer(&self) -> Killer {
        match self {
            Conn::Pg { pid, .. } => Killer::Pg(*pid),
            Conn::MySql { id, .. } => Killer::MySql(*id),
            Conn::Sqlite { .. } => Killer::None,
        }
    }

    pub fn is_mariadb(&self) -> bool {
        matches!(self, Conn::MySql { mariadb: true, .. })
    }

    /// Runs one statement of a plan with its arguments bound.
    pub async fn run(
        &mut self,
        sql: &str,
        args: &[Value],
        keep_rows: bool,
    ) -> Result<Result<StatementResult, sqlx::Error>, String> {
        Ok(match self {
            // Named statements: sqlx's unnamed path fails (26000) when a result column has a
            // type it must look up first (an enum, a domain), because that lookup replaces
            // the unnamed statement.
            Conn::Pg { conn, .. } => {
                let args = values::pg_args(args)?;
                if conn.cached_statements_size() + 1 >= PG_STATEMENT_CACHE
                    && let Err(e) = conn.clear_cached_statements().await
                {
                    return Ok(Err(e));
                }
                values::fetch::<Postgres>(
                    conn,
                    sql,
                    args,
                    true,
                    keep_rows,
                    values::pg_row,
                    PgQueryResult::rows_affected,
                )
                .await
            }
            Conn::MySql { conn, .. } => {
                let args = values::mysql_args(args)?;
                values::fetch::<MySql>(
                    conn,
                    sql,
                    args,
                    false,
                    keep_rows,
                    values::mysql_row,
                    MySqlQueryResult::rows_affected,
                )
                .await
            }
            Conn::Sqlite { conn } => {
                let args = values::sqlite_args(args)?;
                values::fetch::<Sqlite>(
                    conn,
                    sql,
                    args,
                    false,
                    keep_rows,
                    values::sqlite_row,
                    SqliteQueryResult::rows_affected,
                )
                .await
            }
        })
    }

    /// Drops the statements PostgreSQL has prepared on this connection. A rollback changes
    /// schemas, and a prepared `SELECT *` run again after an `ALTER TABLE` fails ("cached plan
    /// must not change result type"): so they are dropped after DDL and at the end of each
    /// step, and never outlive the step that made them.
    pub async fn forget_statements(&mut self) -> Result<(), sqlx::Error> {
        match self {
            Conn::Pg { conn, .. } => conn.clear_cached_statements().await,
            Conn::MySql { .. } | Conn::Sqlite { .. } => Ok(()),
        }
    }

    /// Sends a statement of the runner's own (no arguments, no rows wanted).
    pub async fn exec(&mut self, sql: String) -> Result<(), sqlx::Error> {
        let q = sqlx::raw_sql(AssertSqlSafe(sql));
        match self {
            Conn::Pg { conn, .. } => q.execute(conn).await.map(drop),
            Conn::MySql { conn, .. } => q.execute(conn).await.map(drop),
            Conn::Sqlite { conn } => q.execute(conn).await.map(drop),
        }
    }

    pub async fn begin(&mut self) -> Result<(), sqlx::Error> {
        let sql = match self {
            Conn::Pg { .. } => "BEGIN",
            Conn::MySql { .. } => "START TRANSACTION",
            // Takes the write lock now (waiting up to the busy timeout) instead of failing
            // with SQLITE_BUSY halfway through when a read lock cannot be upgraded.
            Conn::Sqlite { .. } => "BEGIN IMMEDIATE",
        };
        self.exec(sql.into()).await
    }

    /// Sets the step's timeouts on the server. In a PostgreSQL transaction they are
    /// `SET LOCAL` (they end with it); elsewhere they are session settings that
    /// [`Conn::reset_limits`] undoes before the connection is used again.
    pub async fn apply_limits(
        &mut self,
        limits: Limits,
        in_transaction: bool,
    ) -> Result<(), sqlx::Error> {
        let ms = |d: Duration| d.as_millis().max(1);
        let secs = |d: Duration| d.as_secs_f64().ceil().max(1.0) as u64;
        let sql = match self {
            Conn::Pg { .. } => {
                let scope = if in_transaction { "LOCAL" } else { "SESSION" };
                let mut sets = Vec::new();
                if let Some(d) = limits.statement {
                    sets.push(format!("SET {scope} statement_timeout = {}", ms(d)));
                }
                if let Some(d) = limits.lock {
                    sets.push(format!("SET {scope} lock_timeout = {}", ms(d)));
                }
                sets.join("; ")
            }
            Conn::MySql { mariadb, .. } => {
                let mut sets = Vec::new();
                if let Some(d) = limits.statement {
                    sets.push(if *mariadb {
                        format!(
                            "SESSION max_statement_time = {:.3}",
                            d.as_secs_f64().max(0.001)
                        )
                    } else {
                        format!("SESSION max_execution_time = {}", ms(d))
                    });
                }
                if let Some(d) = limits.lock {
                    sets.push(format!("SESSION innodb_lock_wait_timeout = {}", secs(d)));
                    sets.push(format!("SESSION lock_wait_timeout = {}", secs(d)));
                }
                if sets.is_empty() {
                    String::new()
                } else {
                    format!("SET {}", sets.join(", "))
                }
            }
            Conn::Sqlite { .. } => match limits.lock {
                Some(d) => format!("PRAGMA busy_timeout = {}", ms(d)),
                None => String::new(),
            },
        };
        if sql.is_empty() {
            Ok(())
        } else {
            self.exec(sql).await
        }
    }

    /// Puts the session settings of [`Conn::apply_limits`] back to the server's defaults.
    pub async fn reset_limits(
        &mut self,
        limits: Limits,
        in_transaction: bool,
    ) -> Result<(), sqlx::Error> {
        let sql = match self {
            Conn::Pg { .. } if in_transaction => String::new(),
            Conn::Pg { .. } => {
                let mut resets = Vec::new();
                if limits.statement.is_some() {
                    resets.push("RESET statement_timeout");
                }
                if limits.lock.is_some() {
                    resets.push("RESET lock_timeout");
                }
                resets.join("; ")
            }
            Conn::MySql { mariadb, .. } => {
                let mut sets = Vec::new();
                if limits.statement.is_some() {
                    sets.push(if *mariadb {
                        "SESSION max_statement_time = DEFAULT"
                    } else {
                        "SESSION max_execution_time = DEFAULT"
                    });
                }
                if limits.lock.is_some() {
                    sets.push("SESSION innodb_lock_wait_timeout = DEFAULT");
                    sets.push("SESSION lock_wait_timeout = DEFAULT");
                }
                if sets.is_empty() {
                    String::new()
                } else {
                    format!("SET {}", sets.join(", "))
                }
            }
            Conn::Sqlite { .. } if limits.lock.is_some() => {
                format!("PRAGMA busy_timeout = {SQLITE_DEFAULT_BUSY_MS}")
            }
            Conn::Sqlite { .. } => String::new(),
        };
        if sql.is_empty() {
            Ok(())
        } else {
            self.exec(sql).await
        }
    }

    /// Checks that an idle connection still works (the server may have restarted while it
    /// waited between steps).
    async fn alive(&mut self) -> bool {
        let ping = async {
            match self {
                Conn::Pg { conn, .. } => conn.ping().await,
                Conn::MySql { conn, .. } => conn.ping().await,
                Conn::Sqlite { conn } => conn.ping().await,
            }
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(5), ping).await,
            Ok(Ok(()))
        )
    }
}

/// A connection lent to one attempt; its permit counts it against [`MAX_CONNECTIONS`].
pub struct Lent {
    pub conn: Conn,
    _permit: OwnedSemaphorePermit,
}

/// The connections of one URL, for the whole run.
pub struct Pool {
    pub target: Target,
    idle: Mutex<Vec<Conn>>,
    slots: Arc<Semaphore>,
}

impl Pool {
    pub fn new(target: Target) -> Pool {
        Pool {
            target,
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        }
    }

    /// An idle connection that still answers, else a new one.
    pub async fn acquire(&self) -> Result<Lent, String> {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| "the connection pool is closed".to_string())?;
        while let Some(mut conn) = self.take_idle() {
            if conn.alive().await {
                return Ok(Lent {
                    conn,
                    _permit: permit,
                });
            }
        }
        let conn = Conn::open(&self.target).await?;
        Ok(Lent {
            conn,
            _permit: permit,
        })
    }

    fn take_idle(&self) -> Option<Conn> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// Keeps a connection whose step ended cleanly, for the next step.
    pub fn release(&self, lent: Lent) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(lent.conn);
    }

    /// Stops the query running on the connection `killer` names, from another connection:
    /// closing our end does not stop a query on the server (PostgreSQL and MariaDB notice a
    /// gone client only when they next write to it). Best effort, bounded by a few seconds.
    pub async fn kill(&self, killer: Killer) -> Option<String> {
        if matches!(killer, Killer::None) {
            return None;
        }
        let work = async {
            let mut conn = match self.take_idle() {
                Some(c) => c,
                None => Conn::open(&self.target).await?,
            };
            let sql = match killer {
                Killer::Pg(pid) => format!("SELECT pg_cancel_backend({pid})"),
                Killer::MySql(id) => format!("KILL QUERY {id}"),
                Killer::None => unreachable!("checked above"),
            };
            let r = conn.exec(sql).await;
            let what = match (&r, killer) {
                (Ok(()), Killer::Pg(pid)) => {
                    format!("cancelled the query of backend {pid} on the server")
                }
                (Ok(()), _) => "killed the query on the server".to_string(),
                (Err(e), _) => format!(
                    "could not cancel the query on the server: {}",
                    crate::errors::database_error(e, &self.target)
                ),
            };
            if r.is_ok() {
                self.idle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(conn);
            }
            Ok::<_, String>(what)
        };
        match tokio::time::timeout(KILL_TIMEOUT, work).await {
            Ok(Ok(what)) => Some(what),
            Ok(Err(why)) => Some(format!("could not cancel the query on the server: {why}")),
            Err(_) => Some("could not cancel the query on the server in time".into()),
        }
    }
}
