//! The journal folded node by node: milestones, nodes with where they acted, the plan's
//! top-level steps, targets, failures with their logs' last lines.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use rollbook_exec::Event;
use rollbook_plan::Plan;

use super::facts::*;
use super::plan::{check_reason, find_step, phase_steps, step_path};
use super::target::target_group;
use crate::runs::{self, NodeHistory};

pub(super) fn ms_between(a: &str, b: &str) -> Option<u64> {
    runs::duration_between(a, b).map(|d| d.as_millis() as u64)
}

pub(super) fn milestones(events: &[Event], run_started_at: &str) -> (Vec<Milestone>, Vec<Resume>) {
    let mut milestones = Vec::new();
    let mut resumes = Vec::new();
    let mut phase_started: HashMap<&str, &str> = HashMap::new();
    for (seq, e) in events.iter().enumerate() {
        let mut m = Milestone {
            at: e.at().to_string(),
            event: "",
            phase: None,
            status: None,
            nodes: None,
            duration_ms: None,
            unknown: None,
            hard: None,
            seq,
        };
        match e {
            Event::RunStarted { .. } => m.event = "run_started",
            Event::RunResumed { at, unknown } => {
                m.event = "run_resumed";
                m.unknown = Some(unknown.clone());
                resumes.push(Resume {
                    at: at.clone(),
                    stopped_at: seq.checked_sub(1).map(|i| events[i].at().to_string()),
                    unknown: unknown.clone(),
                });
            }
            Event::PhaseStarted { at, phase, nodes } => {
                phase_started.insert(phase, at);
                m.event = "phase_started";
                m.phase = Some(phase.clone());
                m.nodes = Some(*nodes);
            }
            Event::PhaseFinished { at, phase, status } => {
                m.event = "phase_finished";
                m.phase = Some(phase.clone());
                m.status = Some(status.as_str());
                m.duration_ms = phase_started
                    .get(phase.as_str())
                    .and_then(|start| ms_between(start, at));
            }
            Event::Cancelling { hard, .. } => {
                m.event = "cancelling";
                m.hard = Some(*hard);
            }
            Event::RunFinished { at, status } => {
                m.event = "run_finished";
                m.status = Some(status.as_str());
                m.duration_ms = ms_between(run_started_at, at);
            }
            _ => continue,
        }
        milestones.push(m);
    }
    (milestones, resumes)
}

/// What the journal says per node beyond [`runs::history`]: where in the journal it (last)
/// started, where it acted, and when the process running it stopped.
#[derive(Default)]
struct Seen {
    seq: usize,
    target: Option<String>,
    stopped_at: Option<String>,
    expanded_into: Option<Vec<String>>,
}

pub(super) fn nodes(events: &[Event], plan: Option<&Plan>) -> Vec<NodeFacts> {
    // The last entry of each process's stretch of the journal (a resume starts a new one).
    let mut stretch_ends: Vec<(usize, String)> = Vec::new();
    for (seq, e) in events.iter().enumerate() {
        let next_is_resume = matches!(events.get(seq + 1), Some(Event::RunResumed { .. }));
        if next_is_resume || seq + 1 == events.len() {
            stretch_ends.push((seq, e.at().to_string()));
        }
    }
    let mut seen: HashMap<(String, String), Seen> = HashMap::new();
    for (seq, e) in events.iter().enumerate() {
        let Some((phase, node)) = e.node() else {
            continue;
        };
        let s = seen
            .entry((phase.into(), node.into()))
            .or_insert_with(|| Seen {
                seq,
                ..Seen::default()
            });
        match e {
            // Mirrors `history`: a node's start is its last first attempt.
            Event::AttemptStarted {
                attempt, target, ..
            } => {
                if *attempt == 1 {
                    s.seq = seq;
                }
                s.target = target.clone();
                s.stopped_at = stretch_ends
                    .iter()
                    .find(|(end, _)| *end >= seq)
                    .map(|(_, at)| at.clone());
            }
            Event::NodeExpanded { instances, .. } => s.expanded_into = Some(instances.clone()),
            _ => {}
        }
    }
    let mut nodes: Vec<NodeFacts> = runs::history(events)
        .into_iter()
        .map(|h| {
            let s = seen
                .remove(&(h.phase.clone(), h.node.clone()))
                .unwrap_or_default();
            node_facts(h, s, plan)
        })
        .collect();
    nodes.sort_by_key(|n| n.seq);
    nodes
}

fn node_facts(h: NodeHistory, seen: Seen, plan: Option<&Plan>) -> NodeFacts {
    let path = step_path(&h.node);
    let step = plan.and_then(|p| find_step(phase_steps(p, &h.phase), &path));
    let started = h.attempts > 0 && seen.expanded_into.is_none();
    let target_group = started.then(|| target_group(seen.target.as_deref()));
    NodeFacts {
        step: path.join("."),
        kind: step.map(|s| s.action().kind()),
        check: check_reason(&path, step),
        target: seen.target,
        target_group,
        stopped_at: (h.status == "unknown").then_some(seen.stopped_at).flatten(),
        expanded_into: seen.expanded_into,
        seq: seen.seq,
        phase: h.phase,
        node: h.node,
        status: h.status,
        tolerated: h.tolerated,
        attempts: h.attempts,
        started_at: h.started_at,
        finished_at: h.finished_at,
        // A node that never started took no time; `history` says 0 from its end to its end.
        duration_ms: h.duration_ms.filter(|_| h.attempts > 0),
        exit_code: h.exit_code,
        message: h.message,
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
                    phase: n.phase.clone(),
                    step: id.to_string(),
                    name: plan
                        .and_then(|p| find_step(phase_steps(p, &n.phase), &[id]))
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
        *s.statuses.entry(n.status.clone()).or_default() += 1;
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
            phase: n.phase.clone(),
            node: n.node.clone(),
            kind: n.kind,
            target: n.target.clone(),
            status: n.status.clone(),
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
        .filter(|n| n.failed() || n.status == "unknown")
        .map(|n| {
            let log = rollbook_exec::journal::log_path(&n.phase, &n.node);
            let log_tail = tail(&dir.join(&log), LOG_TAIL_LINES);
            FailureFacts {
                phase: n.phase.clone(),
                node: n.node.clone(),
                status: n.status.clone(),
                tolerated: n.tolerated,
                attempts: n.attempts,
                finished_at: n.finished_at.clone(),
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
                phase: n.phase.clone(),
                node: n.node.clone(),
                why: n.check?,
                status: n.status.clone(),
                tolerated: n.tolerated,
                attempts: n.attempts,
                finished_at: n.finished_at.clone(),
                duration_ms: n.duration_ms,
                message: n.message.clone(),
            })
        });
    let never = not_reached.iter().filter_map(|n| {
        Some(Check {
            phase: n.phase.clone(),
            node: n.node.clone(),
            why: n.check?,
            status: "not_reached".into(),
            tolerated: false,
            attempts: 0,
            finished_at: None,
            duration_ms: None,
            message: None,
        })
    });
    ran.chain(never).collect()
}
