//! `rollbook runs`: the runs under the state dir.

use std::fmt::Write;
use std::path::Path;

use rollbook_exec::journal::RunSummary;
use rollbook_exec::{RunStatus, Timestamp, journal};
use serde::Serialize;

use crate::Failure;
use crate::runs::short;
use crate::terminal::escape as esc;

/// A run directory whose `run.json` does not read: listed, not left out, so a damaged run
/// is noticed.
#[derive(Debug, Serialize)]
struct Unreadable {
    run_id: String,
    /// Always `unreadable`.
    status: &'static str,
    error: String,
}

/// The run directories that `list_runs` could not read, newest id first.
fn unreadable_runs(state_dir: &Path, listed: &[RunSummary]) -> Vec<Unreadable> {
    let Ok(entries) = std::fs::read_dir(journal::runs_dir(state_dir)) else {
        return Vec::new();
    };
    let mut found: Vec<Unreadable> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|id| !listed.iter().any(|r| &r.meta.run_id == id))
        .map(|run_id| {
            let dir = journal::runs_dir(state_dir).join(&run_id);
            let error = match journal::read_meta(&dir) {
                Err(e) => e.to_string(),
                Ok(_) => "run.json names another run".into(),
            };
            Unreadable {
                run_id,
                status: "unreadable",
                error,
            }
        })
        .collect();
    found.sort_by(|a, b| b.run_id.cmp(&a.run_id));
    found
}

/// `rollbook runs`: the runs under the state dir, newest first.
pub fn run(state: &crate::state::State, json: bool) -> Result<(), Failure> {
    let runs = state.store.list().map_err(Failure::from)?;
    let unreadable = match &state.files {
        Some(dir) => unreadable_runs(dir, &runs),
        None => Vec::new(),
    };
    let mut out = String::new();
    if json {
        let mut all = serde_json::to_value(&runs).unwrap_or_default();
        if let Some(list) = all.as_array_mut() {
            list.extend(
                unreadable
                    .iter()
                    .filter_map(|u| serde_json::to_value(u).ok()),
            );
        }
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&all).unwrap_or_default()
        );
        crate::print(&out);
        return Ok(());
    }
    if runs.is_empty() && unreadable.is_empty() {
        crate::say!("no runs in {}", state.store.describe());
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{:<22}  {:<28}  {:<10}  {:<20}  {:>8}  {:<12}  REASON",
        "ID", "PLAN", "STATUS", "STARTED", "DURATION", "USER"
    );
    for r in &runs {
        let duration = r
            .finished_at
            .zip(Timestamp::parse(&r.meta.started_at))
            .and_then(|(end, start)| end.since(start))
            .map_or("-".into(), short);
        let status = match r.status {
            RunStatus::Running => "unfinished",
            s => s.as_str(),
        };
        let _ = writeln!(
            out,
            "{:<22}  {:<28}  {:<10}  {:<20}  {:>8}  {:<12}  {}",
            esc(&r.meta.run_id),
            esc(&r.meta.plan),
            status,
            esc(r.meta.started_at.get(..19).unwrap_or(&r.meta.started_at)),
            duration,
            esc(&r.meta.user),
            esc(&r.meta.reason)
        );
        // Under the run's plan, which failures it went on after.
        if let Some(t) = crate::runs::tolerated_summary(&r.tolerated) {
            let _ = writeln!(out, "{:<22}  {}", "", esc(&t));
        }
    }
    for u in &unreadable {
        let _ = writeln!(
            out,
            "{:<22}  {:<28}  {:<10}  {}",
            esc(&u.run_id),
            "-",
            "unreadable",
            esc(&u.error)
        );
    }
    crate::print(&out);
    Ok(())
}
