//! One attempt of a `sql` step on a connection: the statements in order, the rows-affected
//! guard, and the end of the transaction.
//!
//! With `transaction: true` the guard is checked after the last statement and before COMMIT,
//! so a count outside the bounds rolls everything back. Without it each statement commits as
//! it runs; the guard can then only report, and its message says the changes are in.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rollbook_exec::runner::{OutputSink, Stream};
use rollbook_plan::action::SqlCall;
use rollbook_plan::model::RowsExpect;
use serde_json::{Value, json};

use crate::conn::{Conn, Limits};
use crate::errors::{database_error, leaves_connection_usable};
use crate::sqltext::{Prepared, first_line};
use crate::target::{Dialect, Target};
use crate::values::StatementResult;

/// How an attempt ended, and whether its connection can serve the next step.
pub struct Finished {
    pub ok: bool,
    pub message: String,
    pub result: Option<Value>,
    pub reusable: bool,
}

/// What the statements did together.
#[derive(Default)]
struct Totals {
    affected: u64,
    last: StatementResult,
    /// On MySQL: how many leading statements DDL has committed implicitly.
    committed: usize,
}

impl Totals {
    fn document(&self) -> Value {
        json!({
            "rows": self.last.rows,
            "rows_affected": self.affected,
            "truncated": self.last.truncated,
        })
    }
}

/// A failure inside the step, before the transaction is ended.
struct Failure {
    message: String,
    result: Option<Value>,
    /// The connection is unusable: no ROLLBACK or reset can be sent on it.
    broken: bool,
    /// On MySQL: how many leading statements DDL has committed implicitly (a ROLLBACK
    /// cannot undo them).
    committed: usize,
}

/// Everything an attempt needs besides the connection.
pub struct Work<'a> {
    pub call: &'a SqlCall,
    pub prepared: &'a [Prepared],
    pub target: &'a Target,
    pub out: &'a OutputSink,
    /// The statement running now (1-based; 0 before the first), for the cancel message.
    pub progress: &'a AtomicUsize,
}

impl Work<'_> {
    /// `statement 3/5 (ALTER TABLE nodes ADD ...)`
    pub fn statement_name(&self, i: usize) -> String {
        format!(
            "statement {}/{} ({})",
            i + 1,
            self.prepared.len(),
            first_line(&self.call.statements[i].text)
        )
    }

    pub async fn run(&self, conn: &mut Conn) -> Finished {
        let tx = self.call.transaction;
        let limits = Limits {
            statement: self.call.statement_timeout,
            lock: self.call.lock_timeout,
        };
        if tx && let Err(e) = conn.begin().await {
            return Finished {
                ok: false,
                message: format!("BEGIN failed: {}", database_error(&e, self.target)),
                result: None,
                reusable: false,
            };
        }
        let outcome = match conn.apply_limits(limits, tx).await {
            Ok(()) => self.statements(conn).await,
            Err(e) => Err(Failure {
                message: format!(
                    "setting the step's timeouts failed: {}",
                    database_error(&e, self.target)
                ),
                result: None,
                broken: !leaves_connection_usable(&e),
                committed: 0,
            }),
        };
        let outcome = outcome.and_then(|totals| self.guard(totals));
        let mut finished = match (tx, outcome) {
            (true, Ok(totals)) => self.commit(conn, totals).await,
            (true, Err(f)) => self.roll_back(conn, f).await,
            (false, Ok(totals)) => Finished {
                ok: true,
                message: String::new(),
                result: Some(totals.document()),
                reusable: true,
            },
            (false, Err(f)) => Finished {
                ok: false,
                message: f.message,
                result: f.result,
                reusable: !f.broken,
            },
        };
        // A step that ran its own BEGIN/COMMIT may have left a transaction open: its
        // connection is closed (which ends it) rather than lent to the next step.
        if !tx
            && self
                .prepared
                .iter()
                .zip(&self.call.statements)
                .any(|(p, s)| p.controls_transaction(&s.text, self.target.dialect))
        {
            finished.reusable = false;
        }
        if finished.reusable
            && (conn.forget_statements().await.is_err()
                || conn.reset_limits(limits, tx).await.is_err())
        {
            finished.reusable = false;
        }
        finished
    }

    async fn statements(&self, conn: &mut Conn) -> Result<Totals, Failure> {
        let n = self.prepared.len();
        let mut totals = Totals::default();
        for (i, p) in self.prepared.iter().enumerate() {
            self.progress.store(i + 1, Ordering::Relaxed);
            let started = Instant::now();
            let args = &self.call.statements[i].args;
            let r = conn
                .run(&p.sql, args, i + 1 == n)
                .await
                .map_err(|bad_arg| Failure {
                    message: format!("{}: {bad_arg}", self.statement_name(i)),
                    result: None,
                    broken: false,
                    committed: totals.committed,
                })?;
            let ms = started.elapsed().as_millis();
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    let line = format!("statement {}/{n}: failed ({ms} ms)", i + 1);
                    self.out.line(Stream::Stderr, &line);
                    return Err(self.statement_failed(i, &e, &totals));
                }
            };
            let affected = if p.reads_only() { 0 } else { r.affected };
            totals.affected += affected;
            let line = format!(
                "statement {}/{n}: {} ({ms} ms)",
                i + 1,
                counts(affected, &r, p)
            );
            self.out.line(Stream::Stdout, &line);
            if i + 1 == n {
                totals.last = r;
            }
            self.after_statement(conn, i, &mut totals).await?;
        }
        Ok(totals)
    }

    /// After a schema change: prepared statements may be stale, and on MySQL the DDL ended
    /// the transaction (MySQL is back in autocommit), so a new one is opened for what follows.
    async fn after_statement(
        &self,
        conn: &mut Conn,
        i: usize,
        totals: &mut Totals,
    ) -> Result<(), Failure> {
        let p = &self.prepared[i];
        let implicit = self.call.transaction
            && self.target.dialect == Dialect::MySql
            && p.commits_implicitly_on_mysql();
        if implicit {
            totals.committed = i + 1;
        }
        let fail = |what: &str, e: sqlx::Error| Failure {
            message: format!(
                "{what} {}: {}",
                self.statement_name(i),
                database_error(&e, self.target)
            ),
            result: None,
            broken: !leaves_connection_usable(&e),
            committed: totals.committed,
        };
        if p.is_ddl() {
            conn.forget_statements()
                .await
                .map_err(|e| fail("after", e))?;
        }
        if implicit && i + 1 < self.prepared.len() {
            conn.begin()
                .await
                .map_err(|e| fail("START TRANSACTION failed after", e))?;
        }
        Ok(())
    }

    /// `statement 3/5 (...) failed: <the database's error>`, and without a transaction,
    /// what ran before it and stays.
    fn statement_failed(&self, i: usize, e: &sqlx::Error, totals: &Totals) -> Failure {
        let mut message = format!(
            "{} failed: {}",
            self.statement_name(i),
            database_error(e, self.target)
        );
        if !self.call.transaction {
            message.push_str(&match i {
                0 => "; nothing was changed".to_string(),
                1 => "; statement 1 ran before it (without a transaction) and stays committed"
                    .to_string(),
                _ => format!(
                    "; statements 1-{i} ran before it (without a transaction) and stay committed"
                ),
            });
        }
        Failure {
            message,
            result: (i > 0 && !self.call.transaction).then(|| totals.document()),
            broken: !leaves_connection_usable(e),
            committed: totals.committed,
        }
    }

    /// The `expect.rows_affected` check, over all the statements.
    fn guard(&self, totals: Totals) -> Result<Totals, Failure> {
        let Some(expect) = &self.call.expect_rows_affected else {
            return Ok(totals);
        };
        if holds(expect, totals.affected) {
            return Ok(totals);
        }
        let n = self.prepared.len();
        let over = if n == 1 {
            String::new()
        } else {
            format!(" (all {n} statements together)")
        };
        let mut message = format!(
            "expected {} affected, got {}{over}",
            describe(expect),
            totals.affected
        );
        if !self.call.transaction {
            message.push_str(
                "; checked after the statements ran without a transaction: their changes are committed",
            );
        }
        self.out.line(Stream::Stderr, &message);
        Err(Failure {
            message,
            result: Some(totals.document()),
            broken: false,
            committed: totals.committed,
        })
    }

    async fn commit(&self, conn: &mut Conn, totals: Totals) -> Finished {
        let started = Instant::now();
        match conn.exec("COMMIT".into()).await {
            Ok(()) => {
                let ms = started.elapsed().as_millis();
                self.out
                    .line(Stream::Stdout, &format!("committed ({ms} ms)"));
                Finished {
                    ok: true,
                    message: String::new(),
                    result: Some(totals.document()),
                    reusable: true,
                }
            }
            Err(e) => {
                self.out.line(Stream::Stderr, "COMMIT failed");
                Finished {
                    ok: false,
                    message: format!(
                        "COMMIT failed: {}; the transaction was rolled back: nothing was changed",
                        database_error(&e, self.target)
                    ),
                    result: None,
                    reusable: leaves_connection_usable(&e),
                }
            }
        }
    }

    async fn roll_back(&self, conn: &mut Conn, f: Failure) -> Finished {
        let nothing = match f.committed {
            0 => "nothing was changed".to_string(),
            1 => "statement 1 stays committed (MySQL commits DDL implicitly); only what ran after it was undone".to_string(),
            k => format!("statements 1-{k} stay committed (MySQL commits DDL implicitly); only what ran after them was undone"),
        };
        let ended = if f.broken {
            format!("the connection broke, so the server rolls the transaction back: {nothing}")
        } else {
            match conn.exec("ROLLBACK".into()).await {
                Ok(()) => {
                    self.out.line(Stream::Stderr, "rolled back");
                    format!("the transaction was rolled back: {nothing}")
                }
                Err(e) => format!(
                    "ROLLBACK failed too ({}); the connection is closed, so the server rolls the transaction back",
                    database_error(&e, self.target)
                ),
            }
        };
        Finished {
            ok: false,
            message: format!("{}; {ended}", f.message),
            result: f.result,
            reusable: !f.broken && !ended.starts_with("ROLLBACK failed"),
        }
    }
}

/// `14 rows affected`, `3 rows returned`, or both.
fn counts(affected: u64, r: &StatementResult, p: &Prepared) -> String {
    let rows = |n: u64, what: &str| format!("{n} {} {what}", if n == 1 { "row" } else { "rows" });
    if p.reads_only() {
        rows(r.returned, "returned")
    } else if r.returned > 0 {
        format!(
            "{}, {}",
            rows(affected, "affected"),
            rows(r.returned, "returned")
        )
    } else {
        rows(affected, "affected")
    }
}

pub fn holds(expect: &RowsExpect, n: u64) -> bool {
    match expect {
        RowsExpect::Exactly(x) => n == *x,
        RowsExpect::Range { min, max } => min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m),
    }
}

/// `exactly 1 row`, `at most 100 rows`, `between 2 and 5 rows`.
pub fn describe(expect: &RowsExpect) -> String {
    let rows = |n: u64| if n == 1 { "row" } else { "rows" };
    match expect {
        RowsExpect::Exactly(n) => format!("exactly {n} {}", rows(*n)),
        RowsExpect::Range {
            min: Some(a),
            max: Some(b),
        } if a == b => {
            format!("exactly {a} {}", rows(*a))
        }
        RowsExpect::Range {
            min: Some(a),
            max: Some(b),
        } => format!("between {a} and {b} rows"),
        RowsExpect::Range {
            min: Some(a),
            max: None,
        } => format!("at least {a} {}", rows(*a)),
        RowsExpect::Range {
            min: None,
            max: Some(b),
        } => format!("at most {b} {}", rows(*b)),
        RowsExpect::Range {
            min: None,
            max: None,
        } => "any number of rows".into(),
    }
}
