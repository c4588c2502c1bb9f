//! Catching up: `rollbook state sync` sends what this machine journaled while the database
//! could not be reached, and `rollbook state import DIR` copies a local state directory's
//! runs into the database.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use rollbook_exec::Event;
use rollbook_exec::journal::{self, RunMeta};

use crate::ship::Shipper;
use crate::{Error, Inner, bounded};

/// What `state sync` did for one run of this machine.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncReport {
    /// The run.
    pub run_id: String,
    /// Events sent now.
    pub sent: u64,
    /// Why events of this machine's copy were not sent (a later controller took the run
    /// over, or the database failed).
    pub not_sent: Option<String>,
}

/// What `state import` did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportReport {
    /// Runs copied (or completed, after an import that stopped half way).
    pub imported: Vec<String>,
    /// Runs the database had already.
    pub already: Vec<String>,
    /// Runs that could not be copied, and why.
    pub failed: Vec<(String, String)>,
}

/// Every log of a run's directory, as (phase, node).
fn logs_of(dir: &Path) -> BTreeSet<(String, String)> {
    let mut logs = BTreeSet::new();
    let Ok(phases) = std::fs::read_dir(dir.join("logs")) else {
        return logs;
    };
    for phase in phases.flatten() {
        let Ok(files) = std::fs::read_dir(phase.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if let Some(node) = name.strip_suffix(".log") {
                logs.insert((
                    phase.file_name().to_string_lossy().into_owned(),
                    node.to_string(),
                ));
            }
        }
    }
    logs
}

/// Events the database has of a run.
async fn shared_events(inner: &Inner, run_id: &str) -> Result<u64, Error> {
    let n: i64 = bounded(
        &inner.target,
        "reading the run's journal",
        sqlx::query_scalar("SELECT count(*) FROM rollbook_events WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(&inner.pool),
    )
    .await?;
    Ok(n as u64)
}

/// Events of a local copy that the database has: rows up to `local` written by the
/// controller of `token` or an earlier one.
async fn own_shared_events(
    inner: &Inner,
    run_id: &str,
    local: u64,
    token: i64,
) -> Result<u64, Error> {
    let n: i64 = bounded(
        &inner.target,
        "reading the run's journal",
        sqlx::query_scalar(
            "SELECT count(*) FROM rollbook_events WHERE run_id = $1 AND seq <= $2 AND token <= $3",
        )
        .bind(run_id)
        .bind(local as i64)
        .bind(token)
        .fetch_one(&inner.pool),
    )
    .await?;
    Ok(n as u64)
}

/// Sends the whole of `dir`'s journal and logs that the database does not have, under
/// `token`, in batches of whole turns.
async fn send_rest(
    inner: &Arc<Inner>,
    dir: &Path,
    run_id: &str,
    token: i64,
    local: u64,
) -> Result<u64, Error> {
    let have = shared_events(inner, run_id).await?;
    let mut shipper = Shipper::new(
        inner.clone(),
        run_id.to_string(),
        token,
        dir.to_path_buf(),
        have.min(local),
    )
    .await?;
    let mut logs = logs_of(dir);
    let mut sent_to = have.min(local);
    loop {
        let upto = local.min(sent_to + crate::ship::BATCH_EVENTS);
        shipper.ship(upto, &mut logs).await?;
        sent_to = upto;
        if sent_to >= local && logs.is_empty() {
            return Ok(local.saturating_sub(have));
        }
    }
}

/// Sends what one run's local copy has beyond the shared one, under the token of the
/// controller that wrote it (its last `controller_started`).
pub(crate) async fn sync_run(inner: &Arc<Inner>, dir: &Path) -> Result<SyncReport, Error> {
    let events = journal::read_events(dir)?;
    let meta = journal::read_meta(dir)?;
    let token = events.iter().rev().find_map(|e| match e {
        Event::ControllerStarted { controller, .. } => controller.token,
        _ => None,
    });
    let local = events.len() as u64;
    let Some(token) = token else {
        return Ok(SyncReport {
            run_id: meta.run_id,
            sent: 0,
            not_sent: Some("this copy names no controller token".into()),
        });
    };
    // Not every row of the run counts: after a takeover the later controller's rows follow
    // the ones this copy shipped, and a copy with fewer events than the shared journal has
    // was taken for complete while its own late events were in no row (`state sync` said
    // "the shared store has every event"). Only the rows of this copy's length written under
    // its token or an earlier one are its events.
    let have = own_shared_events(inner, &meta.run_id, local, token).await?;
    if local <= have {
        return Ok(SyncReport {
            run_id: meta.run_id,
            sent: 0,
            not_sent: None,
        });
    }
    match send_rest(inner, dir, &meta.run_id, token, local).await {
        Ok(sent) => Ok(SyncReport {
            run_id: meta.run_id,
            sent,
            not_sent: None,
        }),
        Err(e @ Error::Superseded { .. }) => Ok(SyncReport {
            run_id: meta.run_id,
            sent: 0,
            not_sent: Some(format!(
                "{e}: events {}–{local} of {} stay only on this machine",
                have + 1,
                dir.join("journal.jsonl").display()
            )),
        }),
        Err(e) => Err(e),
    }
}

/// `state sync`: every run of this machine's copies.
pub(crate) async fn sync_all(inner: &Arc<Inner>) -> Result<Vec<SyncReport>, Error> {
    let root = crate::runs::local_runs(inner);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(Vec::new());
    };
    let mut dirs: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("run.json").is_file())
        .collect();
    dirs.sort();
    let mut reports = Vec::new();
    for dir in dirs {
        reports.push(sync_run(inner, &dir).await?);
    }
    Ok(reports)
}

/// `state import DIR`: each run of `DIR/runs/` the database does not have, with its events
/// under token 0 (no lock of the shared store was held for them).
pub(crate) async fn import(inner: &Arc<Inner>, state_dir: &Path) -> Result<ImportReport, Error> {
    let mut report = ImportReport::default();
    let root = journal::runs_dir(state_dir);
    let entries = std::fs::read_dir(&root).map_err(|e| crate::local_io(&root, e))?;
    let mut dirs: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    dirs.sort();
    for dir in dirs {
        let Ok(meta) = journal::read_meta(&dir) else {
            continue;
        };
        match import_run(inner, &dir, &meta).await {
            Ok(true) => report.imported.push(meta.run_id),
            Ok(false) => report.already.push(meta.run_id),
            Err(e) => report.failed.push((meta.run_id, e.to_string())),
        }
    }
    Ok(report)
}

async fn import_run(inner: &Arc<Inner>, dir: &Path, meta: &RunMeta) -> Result<bool, Error> {
    let t = &inner.target;
    let local = journal::read_events(dir)?.len() as u64;
    let plan = std::fs::read_to_string(dir.join("plan.yaml")).unwrap_or_default();
    let inventory = std::fs::read_to_string(dir.join("inventory.yaml")).ok();
    let mut tx = bounded(t, "importing a run", inner.pool.begin()).await?;
    let created =
        crate::runs::insert_run(inner, &mut tx, meta, &plan, inventory.as_deref()).await?;
    if created {
        bounded(
            t,
            "importing a run",
            sqlx::query(
                "INSERT INTO rollbook_controllers (run_id, token, user_name, host, pid)
                 VALUES ($1, 0, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(&meta.run_id)
            .bind(&meta.user)
            .bind(&meta.host)
            .bind(meta.pid as i32)
            .execute(&mut *tx),
        )
        .await?;
    }
    bounded(t, "importing a run", tx.commit()).await?;
    let have = shared_events(inner, &meta.run_id).await?;
    if !created && have >= local {
        return Ok(false);
    }
    // An import that stopped half way goes on; a run that the shared store ran itself
    // (a token above 0) is never written to by an import.
    send_rest(inner, dir, &meta.run_id, 0, local).await?;
    Ok(true)
}
