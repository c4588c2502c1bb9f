//! `rollbook runs` and `rollbook show RUN_ID`: what the journal knows, for people and tools.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use rollbook_exec::journal;
use rollbook_exec::{Event, NodeStatus, RunStatus};
use serde::Serialize;
use serde_json::Value;

use crate::{Failure, exit};

pub(crate) fn parse_time(at: &str) -> Option<std::time::SystemTime> {
    humantime::parse_rfc3339_weak(at).ok()
}

pub(crate) fn duration_between(a: &str, b: &str) -> Option<std::time::Duration> {
    parse_time(b)?.duration_since(parse_time(a)?).ok()
}

/// A duration as `show` and `report` print it: `340ms`, `2s`, `1m12s`.
pub(crate) fn short(d: std::time::Duration) -> String {
    if d.as_secs() == 0 {
        return format!("{}ms", d.as_millis());
    }
    humantime::format_duration(std::time::Duration::from_secs(d.as_secs()))
        .to_string()
        .replace(' ', "")
}

/// `rollbook runs`: the runs under the state dir, newest first.
pub fn cmd_runs(state_dir: &Path, json: bool) -> Result<u8, Failure> {
    let runs = journal::list_runs(state_dir).map_err(|e| Failure::internal(e.to_string()))?;
    let mut out = String::new();
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&runs).unwrap_or_default()
        );
        return crate::print_stdout(&out);
    }
    if runs.is_empty() {
        crate::say!("no runs in {}", state_dir.display());
        return Ok(exit::OK);
    }
    let _ = writeln!(
        out,
        "{:<22}  {:<28}  {:<10}  {:<20}  {:>8}  {:<12}  REASON",
        "ID", "PLAN", "STATUS", "STARTED", "DURATION", "USER"
    );
    for r in &runs {
        let duration = r
            .finished_at
            .as_deref()
            .and_then(|f| duration_between(&r.meta.started_at, f))
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
    }
    crate::print_stdout(&out)
}

/// One node as the journal tells it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct NodeHistory {
    pub phase: String,
    pub node: String,
    /// `succeeded`, `failed`, `skipped`, `cancelled`, or `unknown` (in flight at a crash).
    pub status: String,
    pub attempts: u32,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub exit_code: Option<i64>,
    pub message: Option<String>,
    pub outputs: Option<Value>,
    pub tolerated: bool,
}

/// A run's nodes in the order they first started (never-started nodes are not listed).
pub fn history(events: &[Event]) -> Vec<NodeHistory> {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut nodes: BTreeMap<(String, String), NodeHistory> = BTreeMap::new();
    for e in events {
        let Some((phase, node)) = e.node() else {
            continue;
        };
        let key = (phase.to_string(), node.to_string());
        let h = nodes.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            NodeHistory {
                phase: phase.to_string(),
                node: node.to_string(),
                status: "pending".into(),
                ..NodeHistory::default()
            }
        });
        match e {
            Event::AttemptStarted { at, attempt, .. } => {
                // Attempts in all, across resumes; the duration is that of the last run of
                // the node (a resumed node starts again at attempt 1).
                h.attempts += 1;
                if *attempt == 1 || h.started_at.is_none() {
                    h.started_at = Some(at.clone());
                }
                h.status = "running".into();
            }
            Event::AttemptFinished {
                exit_code, message, ..
            } => {
                h.exit_code = *exit_code;
                h.message = message.clone();
                h.status = "waiting".into();
            }
            Event::NodeFinished {
                at,
                status,
                outputs,
                message,
                tolerated,
                ..
            } => {
                h.status = match status {
                    NodeStatus::Succeeded => "succeeded",
                    NodeStatus::Failed => "failed",
                    NodeStatus::Skipped => "skipped",
                    NodeStatus::Cancelled => "cancelled",
                }
                .into();
                h.finished_at = Some(at.clone());
                h.started_at.get_or_insert_with(|| at.clone());
                h.outputs = outputs.clone();
                if message.is_some() {
                    h.message = message.clone();
                }
                h.tolerated = *tolerated;
                h.duration_ms = h
                    .started_at
                    .as_deref()
                    .and_then(|s| duration_between(s, at))
                    .map(|d| d.as_millis() as u64);
            }
            _ => {}
        }
    }
    // Phases in the order they run, nodes in the order they first started.
    let rank = |phase: &str| {
        ["steps", "on_failure", "finally"]
            .iter()
            .position(|p| *p == phase)
            .unwrap_or(3)
    };
    order.sort_by_key(|(phase, _)| rank(phase));
    order
        .into_iter()
        .filter_map(|k| nodes.remove(&k))
        .map(|mut h| {
            if h.status == "running" || h.status == "waiting" {
                h.status = "unknown".into();
            }
            h
        })
        .collect()
}

/// A journaled run as `show` and `report` read it.
pub struct JournaledRun {
    pub dir: PathBuf,
    pub meta: journal::RunMeta,
    pub events: Vec<Event>,
}

/// The plan of a journaled run compiled as it ran: with the params it bound, its copy of
/// `--inventory`, and its id, reason, user and start (`resume` and `report`).
pub(crate) fn compile_as_run(
    plan: &rollbook_plan::Plan,
    meta: &journal::RunMeta,
    dir: &Path,
) -> Result<rollbook_plan::compile::CompiledPlan, String> {
    use rollbook_plan::compile::{self, ParamInput, RunInfo};
    let input = ParamInput {
        file: meta
            .params
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        cli: Vec::new(),
    };
    let params = compile::bind_params(plan, &input).map_err(|e| e.to_string())?;
    let inventory = if meta.inventory {
        let text = std::fs::read_to_string(dir.join("inventory.yaml"))
            .map_err(|e| format!("cannot read the run's inventory copy: {e}"))?;
        rollbook_plan::load_inventory(&rollbook_plan::SourceFile::new("inventory.yaml", text))
            .map_err(|_| "the run's inventory copy does not read".to_string())?
    } else {
        Default::default()
    };
    let info = RunInfo {
        id: meta.run_id.clone(),
        reason: meta.reason.clone(),
        user: meta.user.clone(),
        started_at: meta.started_at.clone(),
    };
    compile::compile(plan, params, &inventory, &info).map_err(|e| e.to_string())
}

/// Reads a run's directory; an unknown run id is exit code 2, an unreadable run (or state
/// dir) exit code 5.
pub fn open_run(state_dir: &Path, run_id: &str) -> Result<JournaledRun, Failure> {
    let dir = journal::runs_dir(state_dir).join(run_id);
    crate::commands::run_exists(state_dir, run_id, &dir)?;
    let meta = journal::read_meta(&dir).map_err(|e| Failure::internal(e.to_string()))?;
    let events = journal::read_events(&dir).map_err(|e| Failure::internal(e.to_string()))?;
    Ok(JournaledRun { dir, meta, events })
}

/// How the run ended: `succeeded`, `failed`, `cancelled`, or `unfinished` (going on, or
/// stopped without an end: a crash).
pub(crate) fn run_status(events: &[Event]) -> &'static str {
    rollbook_exec::resume::replay(events)
        .finished
        .map_or("unfinished", |s| s.as_str())
}

/// `rollbook show RUN_ID`.
pub fn cmd_show(state_dir: &Path, run_id: &str, json: bool) -> Result<u8, Failure> {
    let JournaledRun { dir, meta, events } = open_run(state_dir, run_id)?;
    let status = run_status(&events);
    let nodes = history(&events);
    let mut out = String::new();
    if json {
        #[derive(Serialize)]
        struct Show<'a> {
            run: &'a journal::RunMeta,
            status: &'a str,
            nodes: &'a [NodeHistory],
        }
        let doc = Show {
            run: &meta,
            status,
            nodes: &nodes,
        };
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        );
        return crate::print_stdout(&out);
    }
    let _ = writeln!(out, "run {} of {} — {status}", meta.run_id, meta.plan);
    let _ = writeln!(
        out,
        "  by {} on {} at {}: {}",
        meta.user, meta.host, meta.started_at, meta.reason
    );
    if !meta.params.is_empty() {
        let params: Vec<String> = meta
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", rollbook_plan::params::display_value(v)))
            .collect();
        let _ = writeln!(out, "  params {}", params.join(" "));
    }
    let width = nodes.iter().map(|n| n.node.len()).max().unwrap_or(4).max(4);
    let mut phase = String::new();
    for n in &nodes {
        if n.phase != phase {
            phase = n.phase.clone();
            let _ = writeln!(out, "\n{phase}:");
        }
        let duration = n
            .duration_ms
            .map_or("-".into(), |ms| short(std::time::Duration::from_millis(ms)));
        let mut line = format!(
            "  {:<width$}  {:<9}  {:>7}  {} {}",
            n.node,
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
        if let Some(m) = &n.message {
            line.push_str(&format!("  {m}"));
        }
        if let Some(Value::Object(o)) = &n.outputs
            && !o.is_empty()
        {
            line.push_str(&format!("  outputs {}", Value::Object(o.clone())));
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = writeln!(out, "\nlogs: {}", dir.join("logs").display());
    crate::print_stdout(&out)
}
