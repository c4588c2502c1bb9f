//! Locks held by leases. A lock is a row of `rollbook_locks` with an expiry that its holder
//! renews every third of the lease; a row whose lease has expired is a stale lock, named as
//! the file lock names it, and taken over only as the file lock is (`--break-lock`, or a
//! resume of the same run). Every acquisition takes a new fencing token.
//!
//! The holder stops trusting its lease on its own clock, before the database would let
//! anyone else take it: the lease is counted from the moment the last successful renewal
//! was *sent*, and the database counts from when it *ran*.

use std::sync::Arc;
use std::time::Duration;

use rollbook_exec::lock::{LockHolder, Stale};
use rollbook_exec::state::Lease;
use sqlx::Row;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::{Error, Inner, bounded, db_error};

/// A lock held in the database.
pub(crate) struct PgLease {
    inner: Arc<Inner>,
    key: String,
    token: i64,
    lapsed: watch::Receiver<Option<String>>,
    /// Dropped with the lease: stops the renewal.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl PgLease {
    pub fn token_value(&self) -> i64 {
        self.token
    }
}

fn holder_of(row: &sqlx::postgres::PgRow, key: &str) -> LockHolder {
    LockHolder {
        key: key.to_string(),
        run_id: row.get("run_id"),
        user: row.get("user_name"),
        host: row.get("host"),
        pid: row.get::<i32, _>("pid") as u32,
        since: row.get("since"),
    }
}

/// Takes the lock `holder.key`, or says who has it (held: its lease is live; stale: it has
/// expired and `stale` does not allow taking it).
pub(crate) async fn acquire(
    inner: Arc<Inner>,
    holder: LockHolder,
    stale: Stale,
) -> Result<PgLease, Error> {
    let t = &inner.target;
    let lease_ms = inner.lease.as_millis() as i64;
    let mut tx = bounded(t, "taking the lock", inner.pool.begin()).await?;
    // Acquisitions of one key one at a time, also when no row exists yet.
    bounded(
        t,
        "taking the lock",
        sqlx::query("SELECT pg_advisory_xact_lock(7227, hashtext($1))")
            .bind(&holder.key)
            .execute(&mut *tx),
    )
    .await?;
    let sent = Instant::now();
    let current = bounded(
        t,
        "reading the lock",
        sqlx::query(
            "SELECT run_id, user_name, host, pid, since, expires_at > clock_timestamp() AS live
               FROM rollbook_locks WHERE key = $1",
        )
        .bind(&holder.key)
        .fetch_optional(&mut *tx),
    )
    .await?;
    if let Some(row) = &current {
        let previous = holder_of(row, &holder.key);
        let live: bool = row.get("live");
        if live {
            return Err(rollbook_exec::Error::LockHeld(Box::new(previous)).into());
        }
        let take = match stale {
            Stale::Break => true,
            Stale::IfRun => previous.run_id == holder.run_id,
            Stale::Refuse => false,
        };
        if !take {
            return Err(rollbook_exec::Error::StaleLock(Box::new(previous)).into());
        }
    }
    let token: i64 = bounded(
        t,
        "taking the lock",
        sqlx::query_scalar(
            "INSERT INTO rollbook_locks (key, run_id, token, user_name, host, pid, since, expires_at)
             VALUES ($1, $2, nextval('rollbook_fencing'), $3, $4, $5, $6,
                     clock_timestamp() + $7 * interval '1 millisecond')
             ON CONFLICT (key) DO UPDATE SET
                 run_id = EXCLUDED.run_id, token = EXCLUDED.token, user_name = EXCLUDED.user_name,
                 host = EXCLUDED.host, pid = EXCLUDED.pid, since = EXCLUDED.since,
                 expires_at = EXCLUDED.expires_at
             RETURNING token",
        )
        .bind(&holder.key)
        .bind(&holder.run_id)
        .bind(&holder.user)
        .bind(&holder.host)
        .bind(holder.pid as i32)
        .bind(&holder.since)
        .bind(lease_ms)
        .fetch_one(&mut *tx),
    )
    .await?;
    bounded(t, "taking the lock", tx.commit()).await?;
    let (lapse_tx, lapsed) = watch::channel(None);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let renewal = Renewal {
        inner: inner.clone(),
        key: holder.key.clone(),
        token,
        valid_until: sent + inner.lease,
    };
    inner.worker.spawn(renewal.run(lapse_tx, stop_rx));
    Ok(PgLease {
        inner,
        key: holder.key,
        token,
        lapsed,
        _stop: stop_tx,
    })
}

/// Keeps a lease alive while its run lives.
struct Renewal {
    inner: Arc<Inner>,
    key: String,
    token: i64,
    /// Until when this process may trust the lease (its own clock).
    valid_until: Instant,
}

impl Renewal {
    async fn run(
        mut self,
        lapse: watch::Sender<Option<String>>,
        mut stop: tokio::sync::oneshot::Receiver<()>,
    ) {
        let every = self.inner.lease / 3;
        let mut last_error: Option<String> = None;
        loop {
            let next = if last_error.is_some() {
                Duration::from_millis(500).min(every)
            } else {
                every
            };
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep_until(Instant::now() + next) => {}
                _ = tokio::time::sleep_until(self.valid_until) => {}
            }
            if Instant::now() >= self.valid_until {
                let why = match &last_error {
                    Some(e) => format!(
                        "the lease on lock `{}` lapsed: it could not be renewed for {}s ({e})",
                        self.key,
                        self.inner.lease.as_secs()
                    ),
                    None => format!("the lease on lock `{}` lapsed", self.key),
                };
                let _ = lapse.send(Some(why));
                return;
            }
            let sent = Instant::now();
            // The renewal must answer before the lease runs out, or it does not count.
            let budget = self.valid_until.saturating_duration_since(sent);
            let renewed = tokio::time::timeout(budget, self.renew()).await;
            match renewed {
                Ok(Ok(true)) => {
                    self.valid_until = sent + self.inner.lease;
                    last_error = None;
                }
                Ok(Ok(false)) => {
                    let by = self.taken_by().await;
                    let _ = lapse.send(Some(format!("the lock `{}` was taken over{by}", self.key)));
                    return;
                }
                Ok(Err(e)) => last_error = Some(e.to_string()),
                Err(_) => last_error = Some("no answer from the database".into()),
            }
        }
    }

    /// Extends the lease; `false` when the row is no longer this acquisition's.
    async fn renew(&self) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE rollbook_locks SET expires_at = clock_timestamp() + $3 * interval '1 millisecond'
              WHERE key = $1 AND token = $2",
        )
        .bind(&self.key)
        .bind(self.token)
        .bind(self.inner.lease.as_millis() as i64)
        .execute(&self.inner.pool)
        .await
        .map_err(|e| db_error(&self.inner.target, e))?;
        Ok(done.rows_affected() == 1)
    }

    /// ` by run X of USER on HOST (pid N)`, or nothing when it cannot be read.
    async fn taken_by(&self) -> String {
        let row = tokio::time::timeout(
            Duration::from_secs(3),
            sqlx::query(
                "SELECT run_id, user_name, host, pid, since FROM rollbook_locks WHERE key = $1",
            )
            .bind(&self.key)
            .fetch_optional(&self.inner.pool),
        )
        .await;
        match row {
            Ok(Ok(Some(row))) => format!(" by {}", holder_of(&row, &self.key)),
            _ => String::new(),
        }
    }
}

impl Lease for PgLease {
    fn token(&self) -> Option<i64> {
        Some(self.token)
    }

    fn lapsed(&self) -> watch::Receiver<Option<String>> {
        self.lapsed.clone()
    }

    fn on_exit(&self) -> Box<dyn Fn() + Send + Sync> {
        let inner = self.inner.clone();
        let key = self.key.clone();
        let token = self.token;
        Box::new(move || {
            release(&inner, &key, token, Duration::from_secs(1));
        })
    }
}

impl Drop for PgLease {
    fn drop(&mut self) {
        release(&self.inner, &self.key, self.token, Duration::from_secs(5));
    }
}

/// Gives the lock up, if it is still this acquisition's; waits at most `wait` (a lease that
/// is not released expires by itself).
fn release(inner: &Arc<Inner>, key: &str, token: i64, wait: Duration) {
    let pool = inner.pool.clone();
    let key = key.to_string();
    let _ = inner.worker.block(async move {
        let _ = tokio::time::timeout(
            wait,
            sqlx::query("DELETE FROM rollbook_locks WHERE key = $1 AND token = $2")
                .bind(key)
                .bind(token)
                .execute(&pool),
        )
        .await;
    });
}
