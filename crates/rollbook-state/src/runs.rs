//! A run in the shared store: created or reopened under the lock's fencing token, journaled
//! into this machine's copy first and shipped from there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rollbook_exec::Event;
use rollbook_exec::journal::{self, FileJournal, Journal, RunMeta};
use rollbook_exec::lock::LockHolder;
use rollbook_exec::runner::Stream;
use rollbook_exec::state::{RunJournal, SharedCopy};
use tokio::sync::{mpsc, watch};

use crate::ship::{Mark, Shipper};
use crate::{Error, Inner, bounded};

/// The lock this process took for `run_id`: who holds it, and its fencing token.
fn held_for(inner: &Inner, run_id: &str) -> Result<(LockHolder, i64), Error> {
    match &*inner.token.lock().expect("token lock") {
        Some((holder, token)) if holder.run_id == run_id => Ok((holder.clone(), *token)),
        _ => Err(Error::Database {
            at: inner.target.shown(),
            message: format!("run {run_id}'s lock must be taken before its journal is written"),
        }),
    }
}

/// This machine's copies of the shared runs.
pub(crate) fn local_runs(inner: &Inner) -> PathBuf {
    journal::runs_dir(&inner.local)
}

/// The fence of every write to a run, inside the writing transaction: takes the run's
/// advisory lock (writers of one run one at a time, until the transaction ends) and refuses
/// when a controller with a larger token than `token` has registered. Answers how many
/// events the shared journal has (read under the lock, in the same round trip).
pub(crate) async fn fence(
    inner: &Inner,
    tx: &mut sqlx::PgConnection,
    run_id: &str,
    token: i64,
) -> Result<i64, Error> {
    let t = &inner.target;
    bounded(
        t,
        "locking the run",
        sqlx::query("SELECT pg_advisory_xact_lock(7226, hashtext($1))")
            .bind(run_id)
            .execute(&mut *tx),
    )
    .await?;
    // A statement of its own after the lock: a statement's snapshot is taken when it starts.
    let (later, have): (Option<i64>, i64) = bounded(
        t,
        "reading the run's controllers",
        sqlx::query_as(
            "SELECT (SELECT max(token) FROM rollbook_controllers WHERE run_id = $1),
                    (SELECT coalesce(max(seq), 0) FROM rollbook_events WHERE run_id = $1)",
        )
        .bind(run_id)
        .fetch_one(&mut *tx),
    )
    .await?;
    match later.filter(|l| *l > token) {
        Some(later) => Err(Error::Superseded {
            run_id: run_id.to_string(),
            token,
            later,
        }),
        None => Ok(have),
    }
}

/// The run's row: its metadata, plan and inventory text. `false` when it was there already.
pub(crate) async fn insert_run(
    inner: &Inner,
    tx: &mut sqlx::PgConnection,
    meta: &RunMeta,
    plan: &str,
    inventory: Option<&str>,
) -> Result<bool, Error> {
    let text = serde_json::to_string(meta).expect("run metadata serializes");
    let done = bounded(
        &inner.target,
        "recording the run",
        sqlx::query(
            "INSERT INTO rollbook_runs (run_id, plan, started_at, meta, plan_text, inventory_text)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id) DO NOTHING",
        )
        .bind(&meta.run_id)
        .bind(&meta.plan)
        .bind(&meta.started_at)
        .bind(&text)
        .bind(plan)
        .bind(inventory)
        .execute(&mut *tx),
    )
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a controller of the run under its token, refusing when a later one exists.
async fn register(
    inner: &Inner,
    tx: &mut sqlx::PgConnection,
    holder: &LockHolder,
    token: i64,
) -> Result<(), Error> {
    let t = &inner.target;
    fence(inner, tx, &holder.run_id, token).await?;
    bounded(
        t,
        "recording the controller",
        sqlx::query(
            "INSERT INTO rollbook_controllers (run_id, token, user_name, host, pid)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&holder.run_id)
        .bind(token)
        .bind(&holder.user)
        .bind(&holder.host)
        .bind(holder.pid as i32)
        .execute(&mut *tx),
    )
    .await?;
    Ok(())
}

/// A new run: its row and first controller in the database, then its local copy.
pub(crate) async fn create(
    inner: Arc<Inner>,
    meta: RunMeta,
    plan: String,
    inventory: Option<String>,
) -> Result<PgJournal, Error> {
    let (holder, token) = held_for(&inner, &meta.run_id)?;
    let t = &inner.target;
    let mut tx = bounded(t, "creating the run", inner.pool.begin()).await?;
    if !insert_run(&inner, &mut tx, &meta, &plan, inventory.as_deref()).await? {
        return Err(Error::Database {
            at: t.shown(),
            message: format!("it has a run {} already", meta.run_id),
        });
    }
    register(&inner, &mut tx, &holder, token).await?;
    bounded(t, "creating the run", tx.commit()).await?;
    let local = FileJournal::create(&inner.local, &meta, &plan, inventory.as_deref())?;
    PgJournal::start(inner, local, meta.run_id, token, 0).await
}

/// A run to go on with: this machine's copy is sent first (what a crash here left
/// unshipped), then replaced by the shared copy, which may have gone further on another
/// machine.
pub(crate) async fn reopen(inner: Arc<Inner>, run_id: String) -> Result<PgJournal, Error> {
    let (holder, token) = held_for(&inner, &run_id)?;
    let dir = local_runs(&inner).join(&run_id);
    if dir.join("run.json").exists() {
        // Best effort: a copy that a later controller superseded stays as it is (`fetch`
        // below moves it aside).
        let _ = crate::sync::sync_run(&inner, &dir).await;
    }
    let t = &inner.target;
    let mut tx = bounded(t, "reopening the run", inner.pool.begin()).await?;
    register(&inner, &mut tx, &holder, token).await?;
    bounded(t, "reopening the run", tx.commit()).await?;
    let shared = crate::fetch::download(&inner, &run_id, &dir).await?;
    let local = FileJournal::open(&dir)?;
    PgJournal::start(inner, local, run_id, token, shared).await
}

/// A changed plan for a resumed run: the run's row and this machine's copy.
pub(crate) async fn replace_plan(inner: &Inner, meta: &RunMeta, plan: &str) -> Result<(), Error> {
    let text = serde_json::to_string(meta).expect("run metadata serializes");
    bounded(
        &inner.target,
        "recording the changed plan",
        sqlx::query("UPDATE rollbook_runs SET meta = $2, plan_text = $3 WHERE run_id = $1")
            .bind(&meta.run_id)
            .bind(&text)
            .bind(plan)
            .execute(&inner.pool),
    )
    .await?;
    let dir = local_runs(inner).join(&meta.run_id);
    if dir.exists() {
        journal::replace_plan(&dir, meta, plan)?;
    }
    Ok(())
}

/// The journal of a run in the shared store: this machine's file journal (synced, the
/// write-ahead copy) and a shipper that sends each turn to the database.
pub struct PgJournal {
    local: FileJournal,
    inner: Arc<Inner>,
    /// Events in the local copy.
    events: u64,
    /// Nodes that logged since the last turn.
    logged: BTreeSet<(String, String)>,
    marks: mpsc::UnboundedSender<Mark>,
    status: watch::Receiver<SharedCopy>,
    /// Marks sent so far, and the last one the shipper has sent whole.
    marked: u64,
    done: watch::Receiver<u64>,
}

impl PgJournal {
    async fn start(
        inner: Arc<Inner>,
        local: FileJournal,
        run_id: String,
        token: i64,
        shared_events: u64,
    ) -> Result<Self, Error> {
        let events = journal::read_events(local.dir())?.len() as u64;
        let (marks, marks_rx) = mpsc::unbounded_channel();
        let shipper = Shipper::new(
            inner.clone(),
            run_id,
            token,
            local.dir().to_path_buf(),
            shared_events,
        )
        .await?;
        let (status_tx, status) = watch::channel(SharedCopy {
            behind: events.saturating_sub(shared_events),
            error: None,
            taken_over: false,
        });
        let (done_tx, done) = watch::channel(0);
        inner
            .worker
            .spawn(shipper.run(marks_rx, status_tx, done_tx));
        let mut journal = PgJournal {
            local,
            inner,
            events,
            logged: BTreeSet::new(),
            marks,
            status,
            marked: 0,
            done,
        };
        if events > shared_events {
            journal.mark();
        }
        Ok(journal)
    }

    /// Tells the shipper of the turn just journaled.
    fn mark(&mut self) {
        self.marked += 1;
        let _ = self.marks.send(Mark {
            n: self.marked,
            events: self.events,
            logs: std::mem::take(&mut self.logged).into_iter().collect(),
        });
    }
}

impl Journal for PgJournal {
    fn append(&mut self, events: &[Event]) -> Result<(), rollbook_exec::Error> {
        if events.is_empty() {
            return Ok(());
        }
        self.local.append(events)?;
        self.events += events.len() as u64;
        self.mark();
        Ok(())
    }

    fn log(
        &mut self,
        phase: &str,
        node: &str,
        stream: Stream,
        line: &str,
    ) -> Result<(), rollbook_exec::Error> {
        if !self.logged.contains(&(phase.to_string(), node.to_string())) {
            self.logged.insert((phase.to_string(), node.to_string()));
        }
        self.local.log(phase, node, stream, line)
    }
}

impl RunJournal for PgJournal {
    fn dir(&self) -> &Path {
        self.local.dir()
    }

    fn shared(&self) -> Option<watch::Receiver<SharedCopy>> {
        Some(self.status.clone())
    }

    fn settle(&mut self, wait: Duration) -> Option<SharedCopy> {
        self.local.flush_logs();
        self.mark();
        let mut done = self.done.clone();
        let last = self.marked;
        let caught_up = self.inner.worker.block(async move {
            let sent = tokio::time::timeout(wait, done.wait_for(|n| *n >= last)).await;
            matches!(sent, Ok(Ok(_)))
        });
        if caught_up == Some(true) {
            None
        } else {
            Some(self.status.borrow().clone())
        }
    }
}
