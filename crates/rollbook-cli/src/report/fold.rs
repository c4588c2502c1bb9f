//! The run's history (`rollbook_exec::history`, the journal's one fold) as the report groups
//! it: milestones, nodes with their steps, the plan's top-level steps, targets, failures with
//! their logs' last lines, checks.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use rollbook_exec::history::{NodeRecord, NodeState, RunHistory};
use rollbook_exec::{Event, Timestamp};
use rollbook_plan::Plan;
use rollbook_plan::compile::PhaseKind;

use super::facts::*;
use super::plan::{check_reason, find_step, phase_steps, step_path};
use super::target::target_group;

/// Milliseconds from `start` to `end`; `None` when the end is before the start.
pub(super) fn ms_between(start: Timestamp, end: Timestamp) -> Option<u64> {
    end.since(start).map(|d| d.as_millis() as u64)
}

pub(super) fn milestones(events: &[Event], run_started_at: Option<Timestamp>) -> Vec<Milestone> {
    let mut milestones = Vec::new();
    let mut phase_started: HashMap<PhaseKind, Timestamp> = HashMap::new();
    for (seq, e) in events.iter().enumerate() {
        let mut m = Milestone {
            at: e.at(),
            event: "",
            phase: None,
            status: None,
            nodes: None,
            duration_ms: None,
            unknown: None,
            hard: None,
            reason: None,
            scope: None,
            undone: None,
            skipped: None,
            seq,
        };
        match e {
            Event::RunStarted { .. } => m.event = "run_started",
            Event::RunResumed { unknown, .. } => {
                m.event = "run_resumed";
                m.unknown = Some(unknown.clone());
            }
            Event::PhaseStarted { at, phase, nodes } => {
                phase_started.insert(*phase, *at);
                m.event = "phase_started";
                m.phase = Some(*phase);
                m.nodes = Some(*nodes);
            }
            Event::PhaseFinished { at, phase, status } => {
                m.event = "phase_finished";
                m.phase = Some(*phase);
                m.status = Some(status.as_str());
                m.duration_ms = phase_started
                    .get(phase)
                    .and_then(|start| ms_between(*start, *at));
            }
            Event::Cancelling { hard, reason, .. } => {
                m.event = "cancelling";
                m.hard = Some(*hard);
                m.reason = reason.clone();
            }
            Event::Undoing {
                phase,
                scope,
                nodes,
                skipped,
                ..
            } => {
                m.event = "undoing";
                m.phase = Some(*phase);
                m.scope = Some(scope.clone());
                m.undone = Some(nodes.clone());
                m.skipped = Some(*skipped);
            }
            Event::RunFinished { at, status, .. } => {
                m.event = "run_finished";
                m.status = Some(status.as_str());
                m.duration_ms = run_started_at.and_then(|start| ms_between(start, *at));
            }
            _ => continue,
        }
        milestones.push(m);
    }
    milestones
}

pub(super) fn resumes(history: &RunHistory) -> Vec<Resume> {
    history
        .resumes
        .iter()
        .map(|r| Resume {
            at: r.at,
            stopped_at: r.stopped_at,
            unknown: r.unknown.clone(),
        })
        .collect()
}

/// The journal's nodes in the order they (last) started, with their steps from the plan.
pub(super) fn nodes(
    history: &RunHistory,
    plan: Option<&Plan>,
    called: &rollbook_plan::calls::Library,
) -> Vec<NodeFacts> {
    let mut nodes: Vec<NodeFacts> = history
        .nodes
        .iter()
        .map(|n| node_facts(n, plan, called))
        .collect();
    nodes.sort_by_key(|n| n.seq);
    nodes
}

fn node_facts(
    n: &NodeRecord,
    plan: Option<&Plan>,
    called: &rollbook_plan::calls::Library,
) -> NodeFacts {
    // An undo node is its step's: its kind is the undo's action, and it checks nothing.
    let path = step_path(n.undoes.as_deref().unwrap_or(&n.key.node));
    let step = plan.and_then(|p| find_step(phase_steps(p, n.key.phase), &path, called));
    let started = n.attempts > 0 && n.expanded_into.is_none();
    let target_group = started.then(|| target_group(n.target.as_deref()));
    let (kind, check) = match &n.undoes {
        Some(_) => (
            step.and_then(|s| s.undo_step()).map(|u| u.action().kind()),
            None,
        ),
        None => (step.map(|s| s.action().kind()), check_reason(&path, step)),
    };
    NodeFacts {
        step: path.join("."),
        kind,
        check,
        undoes: n.undoes.clone(),
        irreversible: n.undoes.is_none() && step.is_some_and(|s| s.is_irreversible()),
        confirmed_by: n.confirmed_by.clone(),
        target: n.target.clone(),
        target_group,
        stopped_at: n.stopped_at.filter(|_| n.state == NodeState::Unknown),
        expanded_into: n.expanded_into.clone(),
        seq: n.seq,
        phase: n.key.phase,
        node: n.key.node.clone(),
        status: n.state,
        tolerated: n.tolerated,
        attempts: n.attempts,
        started_at: n.started_at,
        finished_at: n.finished_at,
        // A node that never started took no time; the history says 0 from its end to its end.
        duration_ms: n
            .duration
            .filter(|_| n.attempts > 0)
            .map(|d| d.as_millis() as u64),
        exit_code: n.exit_code,
        message: n.message.clone(),
    }
}

pub(super) fn steps(nodes: &[NodeFacts], plan: Option<&Plan>) -> Vec<StepFacts> {
    let mut out: Vec<StepFacts> = Vec::new();
    let mut instances: Vec<Vec<&str>> = Vec::new();
    for n in nodes.iter().filter(|n| n.expanded_into.is_none()) {
        let top = n.node.split('.').next().unwrap_or(&n.node);
        let (id, fans_out) = match top.split_once('[') {
            Some((id, _)) => (id, true),
            None => (top, false),
        };
        let i = match out.iter().position(|s| s.phase == n.phase && s.step == id) {
            Some(i) => i,
            None => {
                out.push(StepFacts {
                    phase: n.phase,
                    step: id.to_string(),
                    name: plan
                        .and_then(|p| phase_steps(p, n.phase).iter().find(|s| s.id.value == id))
                        .and_then(|s| s.name.as_ref())
                        .map(|name| name.value.clone()),
                    nodes: 0,
                    instances: None,
                    statuses: BTreeMap::new(),
                    tolerated: 0,
                });
                instances.push(Vec::new());
                out.len() - 1
            }
        };
        let s = &mut out[i];
        s.nodes += 1;
        *s.statuses.entry(n.status.as_str()).or_default() += 1;
        s.tolerated += usize::from(n.tolerated);
        if fans_out && !instances[i].contains(&top) {
            instances[i].push(top);
        }
    }
    for (s, keys) in out.iter_mut().zip(&instances) {
        s.instances = (!keys.is_empty()).then_some(keys.len());
    }
    out
}

pub(super) fn targets(nodes: &[NodeFacts]) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for n in nodes.iter().filter(|n| n.ran()) {
        let node = TargetNode {
            phase: n.phase,
            node: n.node.clone(),
            kind: n.kind,
            target: n.target.clone(),
            status: n.status,
            tolerated: n.tolerated,
        };
        let group = n.target_group.as_deref().unwrap_or(LOCAL);
        match out.iter_mut().find(|t| t.target == group) {
            Some(t) => t.nodes.push(node),
            None => out.push(Target {
                target: group.to_string(),
                nodes: vec![node],
            }),
        }
    }
    // Local work last: the targets are what the run reached out to.
    out.sort_by_key(|t| t.target == LOCAL);
    out
}

pub(super) fn failures(nodes: &[NodeFacts], dir: &Path) -> Vec<FailureFacts> {
    nodes
        .iter()
        .filter(|n| n.failed() || n.status == NodeState::Unknown)
        .map(|n| {
            let log = rollbook_exec::journal::log_path(n.phase.as_str(), &n.node);
            let log_tail = tail(&dir.join(&log), LOG_TAIL_LINES);
            FailureFacts {
                phase: n.phase,
                node: n.node.clone(),
                status: n.status,
                tolerated: n.tolerated,
                attempts: n.attempts,
                finished_at: n.finished_at,
                target: n.target.clone(),
                exit_code: n.exit_code,
                message: n.message.clone(),
                log: dir.join(&log).is_file().then(|| log.display().to_string()),
                log_tail,
            }
        })
        .collect()
}

/// The last `n` lines of a file, reading no more than its last 64 KiB.
fn tail(path: &Path, n: usize) -> Vec<String> {
    const MOST: u64 = 64 * 1024;
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let from = len.saturating_sub(MOST);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if from > 0 && !lines.is_empty() {
        lines.remove(0); // cut in the middle
    }
    let skip = lines.len().saturating_sub(n);
    lines[skip..].iter().map(|l| l.to_string()).collect()
}

/// The checks among the journal's nodes, then among those never reached.
pub(super) fn checks(nodes: &[NodeFacts], not_reached: &[NotReached]) -> Vec<Check> {
    let ran = nodes
        .iter()
        .filter(|n| n.expanded_into.is_none())
        .filter_map(|n| {
            Some(Check {
                phase: n.phase,
                node: n.node.clone(),
                why: n.check?,
                status: n.status,
                tolerated: n.tolerated,
                attempts: n.attempts,
                finished_at: n.finished_at,
                duration_ms: n.duration_ms,
                message: n.message.clone(),
            })
        });
    let never = not_reached.iter().filter_map(|n| {
        Some(Check {
            phase: n.phase,
            node: n.node.clone(),
            why: n.check?,
            status: NodeState::NotReached,
            tolerated: false,
            attempts: 0,
            finished_at: None,
            duration_ms: None,
            message: None,
        })
    });
    ran.chain(never).collect()
}
