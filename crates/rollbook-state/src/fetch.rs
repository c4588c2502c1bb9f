//! A shared run as a local directory in the file journal's layout, for the commands that read
//! runs (`show`, `report`, `resume`).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt as _;

use rollbook_exec::journal;
use sqlx::Row;

use crate::{Error, Inner, bounded};

/// A fresh copy of the run for reading, under `<local>/view/<run-id>/`; `None` when the
/// database has no such run.
pub(crate) async fn view(inner: &Inner, run_id: &str) -> Result<Option<PathBuf>, Error> {
    let dir = inner.local.join("view").join(run_id);
    let exists: bool = bounded(
        &inner.target,
        "reading the run",
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM rollbook_runs WHERE run_id = $1)")
            .bind(run_id)
            .fetch_one(&inner.pool),
    )
    .await?;
    if !exists {
        return Ok(None);
    }
    download(inner, run_id, &dir).await?;
    Ok(Some(dir))
}

/// Writes the run as the database has it into `dir`, replacing what was there; answers how
/// many events it has. The copy is written beside `dir` and renamed into place, so a
/// reader never sees half of it. A copy in `dir` with events the database does not have
/// (left by a controller that a later one superseded) is kept aside as `<dir>.late-<n>`.
pub(crate) async fn download(inner: &Inner, run_id: &str, dir: &Path) -> Result<u64, Error> {
    let t = &inner.target;
    let row = bounded(
        t,
        "reading the run",
        sqlx::query("SELECT meta, plan_text, inventory_text FROM rollbook_runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(&inner.pool),
    )
    .await?
    .ok_or_else(|| Error::Database {
        at: t.shown(),
        message: format!("it has no run {run_id}"),
    })?;
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| crate::local_io(parent, e))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let fresh = parent.join(format!(".{name}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&fresh);
    std::fs::create_dir_all(&fresh).map_err(|e| crate::local_io(&fresh, e))?;
    let write = |rel: &Path, bytes: &[u8]| -> Result<(), Error> {
        let path = fresh.join(rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(|e| crate::local_io(p, e))?;
        }
        std::fs::write(&path, bytes).map_err(|e| crate::local_io(&path, e))
    };
    let meta: String = row.get("meta");
    // `run.json` as the file journal writes it: pretty.
    let pretty = serde_json::from_str::<serde_json::Value>(&meta)
        .ok()
        .and_then(|v| serde_json::to_vec_pretty(&v).ok())
        .unwrap_or_else(|| meta.clone().into_bytes());
    write(Path::new("run.json"), &pretty)?;
    write(
        Path::new("plan.yaml"),
        row.get::<String, _>("plan_text").as_bytes(),
    )?;
    if let Some(inv) = row.get::<Option<String>, _>("inventory_text") {
        write(Path::new("inventory.yaml"), inv.as_bytes())?;
    }
    // The journal and the logs are streamed into their files, row by row: a run with
    // gigabytes of output is never held in memory. Each row must come within the bound.
    let events = {
        let path = fresh.join("journal.jsonl");
        let file = std::fs::File::create(&path).map_err(|e| crate::local_io(&path, e))?;
        let mut out = BufWriter::new(file);
        let mut rows = sqlx::query_scalar::<_, String>(
            "SELECT line FROM rollbook_events WHERE run_id = $1 ORDER BY seq",
        )
        .bind(run_id)
        .fetch(&inner.pool);
        let mut n = 0u64;
        while let Some(line) = bounded(t, "reading the run's journal", rows.try_next()).await? {
            out.write_all(line.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                .map_err(|e| crate::local_io(&path, e))?;
            n += 1;
        }
        out.flush().map_err(|e| crate::local_io(&path, e))?;
        n
    };
    let mut rows = sqlx::query(
        "SELECT phase, node, chunk FROM rollbook_logs WHERE run_id = $1
          ORDER BY phase, node, \"offset\"",
    )
    .bind(run_id)
    .fetch(&inner.pool);
    let mut open: Option<((String, String), PathBuf, BufWriter<std::fs::File>)> = None;
    while let Some(r) = bounded(t, "reading the run's logs", rows.try_next()).await? {
        let key = (r.get::<String, _>("phase"), r.get::<String, _>("node"));
        if open.as_ref().is_none_or(|(k, _, _)| *k != key) {
            if let Some((_, path, mut w)) = open.take() {
                w.flush().map_err(|e| crate::local_io(&path, e))?;
            }
            let path = fresh.join(journal::log_path(&key.0, &key.1));
            if let Some(p) = path.parent() {
                std::fs::create_dir_all(p).map_err(|e| crate::local_io(p, e))?;
            }
            let file = std::fs::File::create(&path).map_err(|e| crate::local_io(&path, e))?;
            open = Some((key, path, BufWriter::new(file)));
        }
        if let Some((_, path, w)) = open.as_mut() {
            w.write_all(r.get::<&[u8], _>("chunk"))
                .map_err(|e| crate::local_io(path, e))?;
        }
    }
    if let Some((_, path, mut w)) = open.take() {
        w.flush().map_err(|e| crate::local_io(&path, e))?;
    }
    if dir.exists() {
        let local = journal::read_events(dir).map(|e| e.len()).unwrap_or(0);
        if local as u64 > events {
            let aside = (1..)
                .map(|n| parent.join(format!("{name}.late-{n}")))
                .find(|p| !p.exists())
                .expect("some number is free");
            std::fs::rename(dir, &aside).map_err(|e| crate::local_io(dir, e))?;
        } else {
            std::fs::remove_dir_all(dir).map_err(|e| crate::local_io(dir, e))?;
        }
    }
    std::fs::rename(&fresh, dir).map_err(|e| crate::local_io(dir, e))?;
    Ok(events)
}
