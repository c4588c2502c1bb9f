//! `rollbook runs`: the runs under the state dir.

use std::fmt::Write;
use std::path::Path;

use rollbook_exec::{RunStatus, Timestamp, journal};

use crate::Failure;
use crate::runs::short;

/// `rollbook runs`: the runs under the state dir, newest first.
pub fn run(state_dir: &Path, json: bool) -> Result<(), Failure> {
    let runs = journal::list_runs(state_dir).map_err(|e| Failure::internal(e.to_string()))?;
    let mut out = String::new();
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&runs).unwrap_or_default()
        );
        crate::print(&out);
        return Ok(());
    }
    if runs.is_empty() {
        crate::say!("no runs in {}", state_dir.display());
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
            r.meta.run_id,
            r.meta.plan,
            status,
            r.meta.started_at.get(..19).unwrap_or(&r.meta.started_at),
            duration,
            r.meta.user,
            r.meta.reason
        );
        // Under the run's plan, which failures it went on after.
        if let Some(t) = crate::runs::tolerated_summary(&r.tolerated) {
            let _ = writeln!(out, "{:<22}  {t}", "");
        }
    }
    crate::print(&out);
    Ok(())
}
