//! `rollbook show RUN_ID`: a run's nodes as its journal tells them.

use std::fmt::Write;

use rollbook_exec::{Tolerated, journal};
use serde::Serialize;
use serde_json::Value;

use crate::Failure;
use crate::runs::{self, JournaledRun, NodeHistory, open_run, run_status, short};
use crate::terminal::escape as esc;

/// `rollbook show RUN_ID`.
pub fn run(state: &crate::state::State, run_id: &str, json: bool) -> Result<(), Failure> {
    let JournaledRun {
        dir, meta, history, ..
    } = open_run(state, run_id)?;
    let status = run_status(&history);
    let tolerated = history.tolerated();
    let nodes = runs::history(&history);
    let undos = runs::undos(&history);
    let mut out = String::new();
    if json {
        #[derive(Serialize)]
        struct Show<'a> {
            version: u32,
            run: &'a journal::RunMeta,
            status: &'a str,
            /// Written only when the run went on after failures.
            #[serde(skip_serializing_if = "<[Tolerated]>::is_empty")]
            tolerated: &'a [Tolerated],
            /// Written only when a scope failed and was undone (or not, `--no-undo`).
            #[serde(skip_serializing_if = "<[runs::UndoHistory]>::is_empty")]
            undos: &'a [runs::UndoHistory],
            nodes: &'a [NodeHistory],
        }
        let doc = Show {
            version: 1,
            run: &meta,
            status,
            tolerated: &tolerated,
            undos: &undos,
            nodes: &nodes,
        };
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        );
        crate::print(&out);
        return Ok(());
    }
    let _ = writeln!(
        out,
        "run {} of {} — {status}",
        esc(&meta.run_id),
        esc(&meta.plan)
    );
    let _ = writeln!(
        out,
        "  by {} on {} at {}: {}",
        esc(&meta.user),
        esc(&meta.host),
        esc(&meta.started_at),
        esc(&meta.reason)
    );
    if !meta.params.is_empty() {
        let params: Vec<String> = meta
            .params
            .iter()
            .map(|(k, v)| {
                let value = rollbook_plan::params::display_value(v);
                format!("{}={}", esc(k), esc(&value))
            })
            .collect();
        let _ = writeln!(out, "  params {}", params.join(" "));
    }
    if let Some(t) = runs::tolerated_summary(&tolerated) {
        let _ = writeln!(out, "  {}", esc(&t));
    }
    for u in &undos {
        let _ = writeln!(out, "  {}", esc(&runs::undo_line(u)));
    }
    let width = nodes.iter().map(|n| n.node.len()).max().unwrap_or(4).max(4);
    let mut phase = None;
    for n in &nodes {
        if phase != Some(n.phase) {
            phase = Some(n.phase);
            let _ = writeln!(out, "\n{}:", n.phase);
        }
        let duration = n
            .duration_ms
            .map_or("-".into(), |ms| short(std::time::Duration::from_millis(ms)));
        let mut line = format!(
            "  {:<width$}  {:<9}  {:>7}  {} {}",
            esc(&n.node),
            n.status,
            duration,
            n.attempts,
            if n.attempts == 1 {
                "attempt "
            } else {
                "attempts"
            }
        );
        if let Some(code) = n.exit_code {
            line.push_str(&format!("  exit {code}"));
        }
        if let Some(of) = &n.undoes {
            line.push_str(&format!("  undoes {}", esc(of)));
        }
        if let Some(by) = &n.confirmed_by {
            line.push_str(&format!("  irreversible, confirmed by {}", esc(by)));
        }
        if let Some(m) = &n.message {
            line.push_str(&format!("  {}", esc(m)));
        }
        if let Some(Value::Object(o)) = &n.outputs
            && !o.is_empty()
        {
            line.push_str(&format!("  outputs {}", Value::Object(o.clone())));
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = writeln!(out, "\nlogs: {}", dir.join("logs").display());
    crate::print(&out);
    Ok(())
}
