//! rollbook's `sql` step runner: PostgreSQL, MySQL/MariaDB and SQLite through sqlx.
//!
//! One attempt runs a step's statements in order on one connection, with every argument
//! bound as a parameter (never spliced into the SQL), optionally in one transaction whose
//! `expect.rows_affected` guard is checked before COMMIT. The result document is
//!
//! ```json
//! { "rows": [ { "version": "20240101" } ], "rows_affected": 27, "truncated": false }
//! ```
//!
//! with the rows of the last statement (at most [`MAX_ROWS`]) and the rows affected by all
//! of them. The executor owns retries, timeouts and captures; this runner maps the step's
//! timeout and `lock_timeout` onto the server (so a query stops there too), and on
//! cancellation closes the connection and cancels the query on the server from a second one.
//!
//! Module map: [`target`] (URLs, names, scrubbing secrets), `sqltext` (placeholders and
//! verbs), `values` (arguments in, rows out), `conn` (connections and the per-URL pool),
//! `attempt` (the statements, the guard, COMMIT/ROLLBACK), `check` (`plan --check`).

mod attempt;
mod check;
mod conn;
mod errors;
mod sqltext;
pub mod target;
mod values;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rollbook_exec::runner::{Attempt, BoxFuture, Outcome, OutputSink, Runner, Stream};
use rollbook_plan::action::{Action, SqlCall};

pub use conn::{CONNECT_TIMEOUT, MAX_CONNECTIONS};
pub use values::MAX_ROWS;

use crate::attempt::Work;
use crate::conn::Pool;
use crate::sqltext::Prepared;
use crate::target::{Dialect, Target};

/// The `sql` runner. Keep one per run: it holds one pool of connections per database URL,
/// so the steps of a run share connections instead of logging in for each step.
#[derive(Default)]
pub struct SqlRunner {
    pools: Mutex<HashMap<String, Arc<Pool>>>,
}

impl SqlRunner {
    /// A runner with no connections yet: pools open on first use, one per URL.
    pub fn new() -> Self {
        SqlRunner::default()
    }

    fn pool(&self, url: &str) -> Result<Arc<Pool>, String> {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = pools.get(url) {
            return Ok(p.clone());
        }
        let pool = Arc::new(Pool::new(Target::parse(url)?));
        pools.insert(url.to_string(), pool.clone());
        Ok(pool)
    }

    async fn attempt(&self, call: &SqlCall, attempt: &Attempt) -> Outcome {
        let pool = match self.pool(&call.url) {
            Ok(p) => p,
            Err(why) => return Outcome::failed(why),
        };
        let target = &pool.target;
        let prepared = match prepare_all(call, target) {
            Ok(p) => p,
            Err(why) => return Outcome::failed(why),
        };
        let out = &attempt.output;
        let cancel = &attempt.cancel;
        let mut lent = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                return Outcome::failed(format!("cancelled while connecting to {}", target.name()));
            }
            lent = pool.acquire() => match lent {
                Ok(l) => l,
                Err(why) => return Outcome::failed(why),
            },
        };
        if call.transaction && target.dialect == Dialect::MySql {
            warn_implicit_commits(call, &prepared, out, lent.conn.is_mariadb());
        }
        let killer = lent.conn.killer();
        let progress = AtomicUsize::new(0);
        let work = Work {
            call,
            prepared: &prepared,
            target,
            out,
            progress: &progress,
        };
        let finished = tokio::select! {
            biased;
            _ = cancel.cancelled() => None,
            f = work.run(&mut lent.conn) => Some(f),
        };
        let Some(finished) = finished else {
            // Closing the connection ends an open transaction on the server (it rolls back);
            // the query itself is cancelled from another connection.
            drop(lent);
            return cancelled(&work, &pool, killer, progress.load(Ordering::Relaxed)).await;
        };
        if finished.reusable {
            pool.release(lent);
        }
        if finished.ok {
            Outcome::Succeeded {
                result: finished.result.unwrap_or_default(),
            }
        } else {
            Outcome::Failed {
                message: finished.message,
                result: finished.result,
            }
        }
    }
}

/// The attempt was cancelled (timeout, second Ctrl-C) while statement `running` (1-based;
/// 0: none yet) ran: stop it on the server, and say what that leaves behind.
async fn cancelled(work: &Work<'_>, pool: &Pool, killer: conn::Killer, running: usize) -> Outcome {
    let at = match running {
        0 => "before the first statement".to_string(),
        i => format!("during {}", work.statement_name(i - 1)),
    };
    let after = if work.call.transaction {
        "the connection was closed, so the server rolls the transaction back"
    } else {
        "statements before it ran without a transaction and stay committed"
    };
    let mut message = format!("cancelled {at}; {after}");
    if let Some(killed) = pool.kill(killer).await {
        message.push_str(&format!("; {killed}"));
    }
    work.out.line(Stream::Stderr, &message);
    Outcome::failed(message)
}

/// Readies every statement before anything is sent, so a plan mistake (placeholders that do
/// not match the args, `$N` out of order for MySQL, a COMMIT inside a runner-owned
/// transaction) fails the step without touching the database.
fn prepare_all(call: &SqlCall, target: &Target) -> Result<Vec<Prepared>, String> {
    let n = call.statements.len();
    if n == 0 {
        return Err("the step has no statements".into());
    }
    let mut out = Vec::with_capacity(n);
    for (i, s) in call.statements.iter().enumerate() {
        let name = || format!("statement {}/{n} ({})", i + 1, sqltext::first_line(&s.text));
        let p = sqltext::prepare(&s.text, target.dialect, s.args.len())
            .map_err(|why| format!("{}: {why}", name()))?;
        if call.transaction && p.controls_transaction(&s.text, target.dialect) {
            return Err(format!(
                "{}: with `transaction: true` the runner itself sends BEGIN and COMMIT; remove this statement",
                name()
            ));
        }
        out.push(p);
    }
    Ok(out)
}

/// MySQL and MariaDB commit DDL implicitly, in the middle of the step's transaction: what
/// ran before it cannot be rolled back. Said before anything runs, on the step's output.
fn warn_implicit_commits(call: &SqlCall, prepared: &[Prepared], out: &OutputSink, mariadb: bool) {
    let ddl: Vec<String> = prepared
        .iter()
        .enumerate()
        .filter(|(_, p)| p.commits_implicitly_on_mysql())
        .map(|(i, _)| (i + 1).to_string())
        .collect();
    if ddl.is_empty() {
        return;
    }
    let product = if mariadb { "MariaDB" } else { "MySQL" };
    out.line(
        Stream::Stderr,
        &format!(
            "warning: {product} commits DDL implicitly: statement{} {} of {} commit what ran before them, so this step is not all-or-nothing there (a failure rolls back only the statements after the last of them)",
            if ddl.len() == 1 { "" } else { "s" },
            ddl.join(", "),
            call.statements.len()
        ),
    );
}

impl Runner for SqlRunner {
    fn kind(&self) -> &'static str {
        "sql"
    }

    fn check<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let Action::Sql(call) = action else {
                return Err("the sql runner got another kind of step".into());
            };
            let pool = self.pool(&call.url)?;
            let prepared = prepare_all(call, &pool.target)?;
            match tokio::time::timeout(check::CHECK_TIMEOUT, check::check(&pool, call, &prepared))
                .await
            {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "no answer from {} within {}s",
                    pool.target.name(),
                    check::CHECK_TIMEOUT.as_secs()
                )),
            }
        })
    }

    fn run<'a>(&'a self, action: &'a Action, attempt: Attempt) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Action::Sql(call) = action else {
                return Outcome::failed("the sql runner got another kind of step");
            };
            self.attempt(call, &attempt).await
        })
    }
}
