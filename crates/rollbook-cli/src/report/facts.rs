//! The facts of one run, folded from its journal, its metadata and the plan text it ran: what
//! both the markdown and the JSON report say. Nothing here is prose; the fold is in `fold`,
//! what the plan adds in `plan`, and where targets are in `target`.

use std::collections::BTreeMap;

use rollbook_exec::history::NodeState;
use rollbook_exec::{Timestamp, Tolerated};
use rollbook_plan::compile::PhaseKind;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{fold, plan};
use crate::runs::{self, JournaledRun};

/// Lines of a failed node's log that the report shows.
pub const LOG_TAIL_LINES: usize = 10;

/// Where nodes without a recorded target are listed: `shell`, `sleep`, `confirm`, and every
/// node of a journal written before targets were recorded.
pub const LOCAL: &str = "local";

/// The version of the JSON document's shape.
pub const REPORT_VERSION: u32 = 1;

/// Everything the report says, as data: the `--format json` document.
#[derive(Debug, Serialize)]
pub struct Report {
    pub version: u32,
    pub run: RunFacts,
    pub resumes: Vec<Resume>,
    /// Every process that ran the run (`rollbook run`, then each `resume`), in order: on a
    /// shared store, possibly on different machines. Not written for journals from before
    /// controllers were journaled.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub controllers: Vec<ControllerFacts>,
    /// The run's own moments, in journal order.
    pub milestones: Vec<Milestone>,
    /// Every node that appears in the journal, in the order it (last) started.
    pub nodes: Vec<NodeFacts>,
    /// The plan's top-level steps, each with the nodes it became.
    pub steps: Vec<StepFacts>,
    /// Nodes grouped by where they acted; `local` last.
    pub targets: Vec<Target>,
    pub failures: Vec<FailureFacts>,
    pub checks: Vec<Check>,
    /// Nodes of the plan the journal never mentions: in a phase that started, or in
    /// `finally` of an unfinished run. What a crash left undone.
    pub not_reached: Vec<NotReached>,
}

/// Who ran what, when, why, and how it ended.
#[derive(Debug, Serialize)]
pub struct RunFacts {
    pub run_id: String,
    pub plan: String,
    pub description: Option<String>,
    /// The plan's `severity` (`critical`, `high`, `medium`, `low`), if it has one.
    pub severity: Option<&'static str>,
    /// `succeeded`, `failed`, `cancelled` or `unfinished`.
    pub status: &'static str,
    /// The failures the run went on after (`on_failure: continue`, `max_failures`): they do
    /// not make it fail. Not written when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tolerated: Vec<Tolerated>,
    pub started_at: String,
    /// The last `run_finished`; `null` while unfinished.
    pub finished_at: Option<Timestamp>,
    pub last_event_at: Option<Timestamp>,
    /// From the start to `finished_at`, or to `last_event_at` for an unfinished run.
    pub duration_ms: Option<u64>,
    pub user: String,
    pub host: String,
    pub reason: String,
    pub params: Map<String, Value>,
    /// `--limit`: the hosts the run was narrowed to, as given (absent: not narrowed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub limit: Vec<String>,
    /// The plan's `budget` (seconds), and whether the run kept it (finished within it;
    /// absent while unfinished). Not written for a plan without a budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_kept: Option<bool>,
    pub plan_path: String,
    pub plan_hash: String,
    pub rollbook_version: String,
}

/// A `rollbook resume` of the run.
#[derive(Debug, Serialize)]
pub struct Resume {
    pub at: Timestamp,
    /// The last journal entry before the resume: when the earlier process stopped.
    pub stopped_at: Option<Timestamp>,
    /// Nodes in flight when it stopped: their outcome was unknown.
    pub unknown: Vec<String>,
}

/// A process that ran the run, from the journal's `controller_started`.
#[derive(Debug, Serialize)]
pub struct ControllerFacts {
    pub at: Timestamp,
    #[serde(flatten)]
    pub controller: rollbook_exec::Controller,
}

/// A moment of the run itself (not of a node).
#[derive(Debug, Serialize)]
pub struct Milestone {
    pub at: Timestamp,
    /// `run_started`, `run_resumed`, `phase_started`, `phase_finished`, `cancelling`,
    /// `run_finished`: the journal's event names.
    pub event: &'static str,
    pub phase: Option<PhaseKind>,
    pub status: Option<&'static str>,
    /// Nodes of a phase that starts.
    pub nodes: Option<usize>,
    /// Of a finished phase (since it started) or run (since the run started).
    pub duration_ms: Option<u64>,
    pub unknown: Option<Vec<String>>,
    pub hard: Option<bool>,
    /// `cancelling` that was not a person's Ctrl-C: why (a lease that lapsed, an
    /// irreversible step not confirmed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `undoing`: the failed instance, or `run`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `undoing`: the nodes undone, in the order their undos ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undone: Option<Vec<String>>,
    /// `undoing` with `--no-undo`: none ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<bool>,
    /// Position in the journal, to merge with the nodes.
    #[serde(skip)]
    pub seq: usize,
}

/// One node as the journal tells it (`rollbook_exec::history`), with where it acted and
/// what its step is.
#[derive(Debug, Serialize)]
pub struct NodeFacts {
    pub phase: PhaseKind,
    pub node: String,
    /// The step ids from the outermost group in: `restart.stop` for `restart[web-1].stop`.
    pub step: String,
    /// `ssh`, `http`, `sql`, `shell`, `sleep`, `confirm`, when the plan text says.
    pub kind: Option<&'static str>,
    /// `succeeded`, `failed`, `skipped`, `cancelled`, or `unknown` (in flight at a crash).
    pub status: NodeState,
    pub tolerated: bool,
    pub attempts: u32,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub duration_ms: Option<u64>,
    /// Where its last attempt acted, as journaled.
    pub target: Option<String>,
    /// The host, URL host or database of `target`, or `local`; `null` for a node that never
    /// started.
    pub target_group: Option<String>,
    pub exit_code: Option<i64>,
    pub message: Option<String>,
    /// Why it counts as a check (`until`, `expect`, `name`), if it does.
    pub check: Option<&'static str>,
    /// For a `for_each` over a step output: the instances it became at run time (the node
    /// itself runs nothing).
    pub expanded_into: Option<Vec<String>>,
    /// An undo node (`<node>.undo`): the node it undid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undoes: Option<String>,
    /// Its step is `irreversible: true`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub irreversible: bool,
    /// An irreversible step: who confirmed the run again before it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed_by: Option<String>,
    #[serde(skip)]
    pub seq: usize,
    /// For a node still in flight: the last journal entry of the process that ran it.
    #[serde(skip)]
    pub stopped_at: Option<Timestamp>,
}

impl NodeFacts {
    pub fn failed(&self) -> bool {
        self.status == NodeState::Failed
    }

    /// It acted: at least one attempt started (not skipped, not cancelled before it began,
    /// not a node that only expanded into others).
    pub fn ran(&self) -> bool {
        self.attempts > 0 && self.expanded_into.is_none()
    }
}

/// A top-level step of the plan and the nodes it became.
#[derive(Debug, Serialize)]
pub struct StepFacts {
    pub phase: PhaseKind,
    pub step: String,
    /// The step's `name` as written (it may hold templates).
    pub name: Option<String>,
    pub nodes: usize,
    /// `for_each` instances, for a step that fans out.
    pub instances: Option<usize>,
    /// Nodes by status.
    pub statuses: BTreeMap<&'static str, usize>,
    pub tolerated: usize,
}

/// The nodes that acted on one place.
#[derive(Debug, Serialize)]
pub struct Target {
    pub target: String,
    pub nodes: Vec<TargetNode>,
}

#[derive(Debug, Serialize)]
pub struct TargetNode {
    pub phase: PhaseKind,
    pub node: String,
    pub kind: Option<&'static str>,
    /// Where it acted, in full (`deploy@web-1:22`).
    pub target: Option<String>,
    pub status: NodeState,
    pub tolerated: bool,
}

/// A failed node, or one whose outcome is unknown, with the end of its log.
#[derive(Debug, Serialize)]
pub struct FailureFacts {
    pub phase: PhaseKind,
    pub node: String,
    /// `failed`, or `unknown` for a node in flight when an unfinished run stopped.
    pub status: NodeState,
    pub tolerated: bool,
    pub attempts: u32,
    pub finished_at: Option<Timestamp>,
    pub target: Option<String>,
    pub exit_code: Option<i64>,
    pub message: Option<String>,
    /// The node's log, relative to the run directory, when it has one.
    pub log: Option<String>,
    /// Its last lines (already redacted when written).
    pub log_tail: Vec<String>,
}

/// A node of the plan the journal never mentions.
#[derive(Debug, Serialize)]
pub struct NotReached {
    pub phase: PhaseKind,
    pub node: String,
    pub check: Option<&'static str>,
}

/// A node that verifies (the rule: `plan::check_reason`) and how it went.
#[derive(Debug, Serialize)]
pub struct Check {
    pub phase: PhaseKind,
    pub node: String,
    pub why: &'static str,
    pub status: NodeState,
    pub tolerated: bool,
    pub attempts: u32,
    pub finished_at: Option<Timestamp>,
    pub duration_ms: Option<u64>,
    pub message: Option<String>,
}

/// Folds a run into its report.
pub fn gather(run: &JournaledRun) -> Report {
    let JournaledRun {
        dir,
        meta,
        events,
        history,
    } = run;
    let checked = plan::read_plan(dir);
    let plan = checked.as_ref().and_then(|c| c.plan.as_ref());
    let budget = plan.and_then(|p| p.budget.as_ref()).map(|b| {
        b.value
            .resolve(&serde_json::Value::Object(meta.params.clone()))
    });
    let last_event_at = history.last_event_at;
    let status = runs::run_status(history);
    let finished_at = history.finished.and(history.finished_at);
    let started_at = Timestamp::parse(&meta.started_at);
    let duration_ms = finished_at
        .or(last_event_at)
        .zip(started_at)
        .and_then(|(end, start)| fold::ms_between(start, end));

    let milestones = fold::milestones(events, started_at);
    let resumes = fold::resumes(history);
    let called = crate::runs::called_library(meta);
    let nodes = fold::nodes(history, plan, &called);
    let not_reached = checked
        .as_ref()
        .map(|c| plan::not_reached(c, run, &nodes, status))
        .unwrap_or_default();
    let steps = fold::steps(&nodes, plan);
    let targets = fold::targets(&nodes);
    let failures = fold::failures(&nodes, dir);
    let checks = fold::checks(&nodes, &not_reached);
    Report {
        version: REPORT_VERSION,
        run: RunFacts {
            run_id: meta.run_id.clone(),
            plan: meta.plan.clone(),
            description: plan
                .and_then(|p| p.description.as_ref())
                .map(|d| d.value.clone()),
            severity: plan
                .and_then(|p| p.severity.as_ref())
                .map(|s| s.value.as_str()),
            status,
            tolerated: history.tolerated(),
            started_at: meta.started_at.clone(),
            finished_at,
            last_event_at,
            duration_ms,
            user: meta.user.clone(),
            host: meta.host.clone(),
            reason: meta.reason.clone(),
            params: meta.params.clone(),
            limit: meta.limit.clone(),
            budget_s: budget.map(|b| b.as_secs_f64()),
            budget_kept: budget
                .zip(finished_at.and(duration_ms))
                .map(|(b, ms)| u128::from(ms) <= b.as_millis()),
            plan_path: meta.plan_path.clone(),
            plan_hash: meta.plan_hash.clone(),
            rollbook_version: meta.rollbook_version.clone(),
        },
        resumes,
        controllers: events
            .iter()
            .filter_map(|e| match e {
                rollbook_exec::Event::ControllerStarted { at, controller } => {
                    Some(ControllerFacts {
                        at: *at,
                        controller: controller.clone(),
                    })
                }
                _ => None,
            })
            .collect(),
        milestones,
        nodes,
        steps,
        targets,
        failures,
        checks,
        not_reached,
    }
}
