//! `rollbook plan NAME --summary`: what a reviewer reads before the dry run. Phases, fan-outs
//! with their hosts, confirmations, irreversible steps, targets, connections, and how long
//! the plan can take at worst (`rollbook_plan::timing`) against its `budget` and, when the
//! state holds successful runs of it, how long they took.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::time::Duration;

use rollbook_exec::RunStatus;
use rollbook_exec::journal::RunSummary;
use rollbook_plan::compile::{CompiledPlan, PhaseKind};
use rollbook_plan::timing::{self, PlanBound};
use serde::Serialize;

/// The summary, as data (`--format json`).
#[derive(Debug, Serialize)]
pub struct Summary {
    pub version: u32,
    pub plan: String,
    pub severity: Option<&'static str>,
    pub confirm: Option<String>,
    pub lock: String,
    pub phases: Vec<PhaseCount>,
    pub fan_outs: Vec<FanOutFacts>,
    /// `confirm` steps: a person answers during the run.
    pub confirm_steps: Vec<String>,
    /// Steps marked `irreversible: true`.
    pub irreversible: Vec<String>,
    /// Where the plan acts: SSH hosts, HTTP hosts, databases, `local`.
    pub targets: Vec<String>,
    pub connections: Vec<String>,
    pub time: Time,
}

#[derive(Debug, Serialize)]
pub struct PhaseCount {
    pub phase: &'static str,
    pub nodes: usize,
}

#[derive(Debug, Serialize)]
pub struct FanOutFacts {
    pub path: String,
    pub instances: usize,
    pub concurrency: Option<u64>,
    pub max_failures: u64,
    pub continue_on_failure: bool,
}

/// How long the plan takes.
#[derive(Debug, Serialize)]
pub struct Time {
    /// `steps` and `finally` at worst; `None` when a step has no timeout.
    pub worst_s: Option<f64>,
    /// With `on_failure` too.
    pub worst_failing_s: Option<f64>,
    /// Steps with no bound (no timeout).
    pub unbounded: Vec<String>,
    /// The longest chain of the main steps (one instance of a fan-out).
    pub critical_path: Vec<String>,
    pub budget_s: Option<f64>,
    /// `fits`, `over`, `unbounded`, or absent without a budget.
    pub budget_verdict: Option<&'static str>,
    /// Successful, whole runs of this plan in the state.
    pub past_runs: usize,
    pub past_median_s: Option<f64>,
    pub past_longest_s: Option<f64>,
}

/// `7m10s`, `90s`, `1h5m`: [`crate::terminal::duration`].
pub fn human(d: Duration) -> String {
    crate::terminal::duration(d)
}

/// Whether the worst case fits the budget.
pub fn verdict(bound: &PlanBound, budget: Option<Duration>) -> Option<&'static str> {
    let budget = budget?;
    Some(match bound.worst() {
        None => "unbounded",
        Some(w) if w <= budget => "fits",
        Some(_) => "over",
    })
}

/// The durations of the successful, whole runs of `plan` (not narrowed with `--limit`).
fn past(plan: &str, runs: &[RunSummary]) -> Vec<Duration> {
    runs.iter()
        .filter(|r| {
            r.meta.plan == plan && r.status == RunStatus::Succeeded && r.meta.limit.is_empty()
        })
        .filter_map(|r| {
            let start = rollbook_exec::Timestamp::parse(&r.meta.started_at)?;
            r.finished_at?.since(start)
        })
        .collect()
}

pub fn gather(
    plan: &CompiledPlan,
    dry_run: &serde_json::Value,
    parallelism: usize,
    runs: &[RunSummary],
) -> Summary {
    let bound = timing::bound(plan, parallelism);
    let mut confirm_steps = Vec::new();
    let mut irreversible = Vec::new();
    let mut targets = BTreeSet::new();
    for phase in dry_run["phases"].as_array().into_iter().flatten() {
        for node in phase["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|l| l.as_array().into_iter().flatten())
        {
            let name = node["name"].as_str().unwrap_or_default().to_string();
            if node["kind"] == "confirm" {
                confirm_steps.push(name.clone());
            }
            if node["irreversible"] == serde_json::Value::Bool(true) {
                irreversible.push(name.clone());
            }
            let acts = matches!(
                node["kind"].as_str(),
                Some("ssh" | "http" | "sql" | "shell")
            );
            if let Some(t) = node["target"].as_str().filter(|_| acts) {
                targets.insert(t.to_string());
            }
        }
    }
    let mut durations = past(&plan.name, runs);
    durations.sort();
    let main = bound.phases.iter().find(|p| p.kind == PhaseKind::Main);
    Summary {
        version: 1,
        plan: plan.name.clone(),
        severity: plan.severity.map(|s| s.as_str()),
        confirm: plan.confirm.clone(),
        lock: plan.lock.clone(),
        phases: plan
            .phases
            .iter()
            .filter(|p| p.graph.node_count() > 0)
            .map(|p| PhaseCount {
                phase: p.kind.as_str(),
                nodes: p.graph.node_count(),
            })
            .collect(),
        fan_outs: plan
            .phases
            .iter()
            .flat_map(|p| &p.fan_outs)
            .filter(|f| !f.path.contains('['))
            .map(|f| FanOutFacts {
                path: f.path.clone(),
                instances: f.instances.len(),
                concurrency: f.concurrency,
                max_failures: f.max_failures,
                continue_on_failure: f.continue_on_failure,
            })
            .collect(),
        confirm_steps,
        irreversible,
        targets: targets.into_iter().collect(),
        connections: plan
            .connections
            .iter()
            .map(|(name, c)| {
                let kind = match c {
                    rollbook_plan::model::Connection::Sql(_) => "sql",
                    rollbook_plan::model::Connection::Http(_) => "http",
                };
                format!("{} ({kind})", name.value)
            })
            .collect(),
        time: Time {
            worst_s: bound.worst().map(|d| d.as_secs_f64()),
            worst_failing_s: bound.worst_failing().map(|d| d.as_secs_f64()),
            unbounded: bound
                .phases
                .iter()
                .flat_map(|p| p.unbounded.iter().cloned())
                .collect(),
            critical_path: main.map(|m| m.critical_path.clone()).unwrap_or_default(),
            budget_s: plan.budget.map(|b| b.as_secs_f64()),
            budget_verdict: verdict(&bound, plan.budget),
            past_runs: durations.len(),
            past_median_s: durations
                .get(durations.len() / 2)
                .map(Duration::as_secs_f64),
            past_longest_s: durations.last().map(Duration::as_secs_f64),
        },
    }
}

fn secs(s: f64) -> String {
    human(Duration::from_secs_f64(s))
}

/// The summary for people: a dozen lines whatever the plan's size.
pub fn text(s: &Summary) -> String {
    let mut out = String::new();
    let severity = s
        .severity
        .map_or(String::new(), |v| format!(", severity {v}"));
    let _ = writeln!(out, "plan {}{severity}", s.plan);
    match &s.confirm {
        Some(phrase) => {
            let _ = writeln!(
                out,
                "  confirm: type {phrase:?} before it runs; lock `{}`",
                s.lock
            );
        }
        None => {
            let _ = writeln!(out, "  confirm: none; lock `{}`", s.lock);
        }
    }
    let phases: Vec<String> = s
        .phases
        .iter()
        .map(|p| format!("{} {}", p.phase, p.nodes))
        .collect();
    let _ = writeln!(out, "  nodes: {}", phases.join(", "));
    for f in &s.fan_outs {
        let width = f
            .concurrency
            .map_or("all at once".to_string(), |c| format!("{c} at a time"));
        let failures = if f.continue_on_failure {
            "failures do not stop it".to_string()
        } else if f.max_failures == 0 {
            "stops at the first failure".to_string()
        } else {
            format!("tolerates {} failed", f.max_failures)
        };
        let _ = writeln!(
            out,
            "  fan-out {}: {} instances, {width}, {failures}",
            f.path, f.instances
        );
    }
    if !s.confirm_steps.is_empty() {
        let _ = writeln!(out, "  asks a person: {}", s.confirm_steps.join(", "));
    }
    if !s.irreversible.is_empty() {
        let _ = writeln!(out, "  irreversible: {}", s.irreversible.join(", "));
    }
    let shown: Vec<&str> = s.targets.iter().take(8).map(String::as_str).collect();
    let more = s.targets.len().saturating_sub(shown.len());
    let _ = writeln!(
        out,
        "  targets: {} ({}{})",
        s.targets.len(),
        shown.join(", "),
        if more > 0 {
            format!(", {more} more")
        } else {
            String::new()
        }
    );
    if !s.connections.is_empty() {
        let _ = writeln!(out, "  connections: {}", s.connections.join(", "));
    }
    let t = &s.time;
    let worst = match t.worst_s {
        Some(w) => format!("at worst {}", secs(w)),
        None => format!(
            "no bound: {} without a timeout",
            t.unbounded
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let failing = t
        .worst_failing_s
        .filter(|f| Some(*f) != t.worst_s)
        .map_or(String::new(), |f| format!(" ({} with on_failure)", secs(f)));
    let _ = writeln!(out, "  time: {worst}{failing}");
    if let Some(b) = t.budget_s {
        let said = match t.budget_verdict {
            Some("fits") => "fits",
            Some("over") => "OVER: the worst case does not fit",
            _ => "cannot be checked: a step has no timeout",
        };
        let _ = writeln!(out, "  budget: {} — {said}", secs(b));
    }
    if t.critical_path.len() > 1 {
        let shown: Vec<&str> = t.critical_path.iter().take(6).map(String::as_str).collect();
        let more = if t.critical_path.len() > 6 {
            " → …"
        } else {
            ""
        };
        let _ = writeln!(out, "  longest chain: {}{more}", shown.join(" → "));
    }
    if t.past_runs > 0 {
        let _ = writeln!(
            out,
            "  past runs: {} succeeded, median {}, longest {}",
            t.past_runs,
            secs(t.past_median_s.unwrap_or_default()),
            secs(t.past_longest_s.unwrap_or_default())
        );
    }
    out
}
