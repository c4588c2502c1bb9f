//! The one fold of a run's journal: what happened to each node, and to the run. `resume`
//! ([`crate::resume::replay`]), `rollbook show` and the incident report all read a run
//! through [`RunHistory`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rollbook_plan::compile::PhaseKind;
use serde::Serialize;
use serde_json::Value;

use crate::event::{Event, NodeStatus, ProcessGroup, RunStatus, Timestamp, Tolerated};

/// A node of a run: its phase and its name there (`roll[us-east-op-2].restore`). Ordered as
/// the phases run, then by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeKey {
    /// The phase the node is in.
    pub phase: PhaseKind,
    /// The node's name, unique in its phase.
    pub node: String,
}

impl NodeKey {
    /// The key of `node` in `phase`.
    pub fn new(phase: PhaseKind, node: impl Into<String>) -> Self {
        NodeKey {
            phase,
            node: node.into(),
        }
    }
}

impl fmt::Display for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.phase, self.node)
    }
}

/// A node's state as the journal last tells it (and, for the report, as the plan adds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Mentioned, but no attempt started (an expansion waiting for its instances).
    Pending,
    /// An attempt started and has not finished.
    Running,
    /// Between attempts: a retry delay or a gate's next poll.
    Waiting,
    /// It succeeded.
    Succeeded,
    /// It failed.
    Failed,
    /// Its `when` was false, or a person said it had completed.
    Skipped,
    /// Stopped, or never started because the run stopped.
    Cancelled,
    /// In flight when its run stopped without an end (a crash): its outcome is unknown.
    Unknown,
    /// In the plan but never in the journal (the report's nodes a crash never reached).
    NotReached,
}

impl NodeState {
    /// The state as written in JSON and shown: `succeeded`, `not_reached`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Pending => "pending",
            NodeState::Running => "running",
            NodeState::Waiting => "waiting",
            NodeState::Succeeded => "succeeded",
            NodeState::Failed => "failed",
            NodeState::Skipped => "skipped",
            NodeState::Cancelled => "cancelled",
            NodeState::Unknown => "unknown",
            NodeState::NotReached => "not_reached",
        }
    }
}

impl From<NodeStatus> for NodeState {
    fn from(status: NodeStatus) -> Self {
        match status {
            NodeStatus::Succeeded => NodeState::Succeeded,
            NodeStatus::Failed => NodeState::Failed,
            NodeStatus::Skipped => NodeState::Skipped,
            NodeStatus::Cancelled => NodeState::Cancelled,
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Everything the journal says about one node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRecord {
    /// Which node.
    pub key: NodeKey,
    /// Where it ended up; `Running` and `Waiting` become `Unknown` at the end of the fold.
    pub state: NodeState,
    /// How its last `node_finished` ended it, if one did (what `resume` goes by).
    pub finished: Option<NodeStatus>,
    /// Attempts in all, across resumes.
    pub attempts: u32,
    /// When its last run began (its last first attempt, or its end when it never started).
    pub started_at: Option<Timestamp>,
    /// When it last finished.
    pub finished_at: Option<Timestamp>,
    /// From `started_at` to its last end.
    pub duration: Option<Duration>,
    /// Of its last finished attempt.
    pub exit_code: Option<i64>,
    /// The last message of its attempts or its end.
    pub message: Option<String>,
    /// What its last end captured.
    pub outputs: Option<Value>,
    /// It failed and the run went on.
    pub tolerated: bool,
    /// Where its last attempt acted, as journaled.
    pub target: Option<String>,
    /// Position in the journal where it (last) started: its first mention, or its last first
    /// attempt.
    pub seq: usize,
    /// For a `for_each` over a step output: the instances it became.
    pub expanded_into: Option<Vec<String>>,
    /// The last journal entry of the process that started its last attempt: when that
    /// process stopped, for a node still in flight.
    pub stopped_at: Option<Timestamp>,
    /// The process group of its last attempt's command, when its runner told it.
    pub group: Option<ProcessGroup>,
    /// For an undo node (`<node>.undo`): the node it undoes.
    pub undoes: Option<String>,
    /// For an irreversible step: who gave the run's confirmation again before it started.
    pub confirmed_by: Option<String>,
}

impl NodeRecord {
    fn new(key: NodeKey, seq: usize) -> Self {
        NodeRecord {
            key,
            state: NodeState::Pending,
            finished: None,
            attempts: 0,
            started_at: None,
            finished_at: None,
            duration: None,
            exit_code: None,
            message: None,
            outputs: None,
            tolerated: false,
            target: None,
            seq,
            expanded_into: None,
            stopped_at: None,
            group: None,
            undoes: None,
            confirmed_by: None,
        }
    }

    /// `resume` never runs it again: it succeeded or was skipped in the main graph (cleanup
    /// and notifications run again at the end of a resumed run).
    pub fn done(&self) -> bool {
        self.undoes.is_none()
            && self.key.phase == PhaseKind::Main
            && matches!(
                self.finished,
                Some(NodeStatus::Succeeded | NodeStatus::Skipped)
            )
    }
}

/// A `rollbook resume` of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumeRecord {
    /// When it resumed.
    pub at: Timestamp,
    /// The last journal entry before it: when the earlier process stopped.
    pub stopped_at: Option<Timestamp>,
    /// The nodes it said were in flight when that process stopped.
    pub unknown: Vec<String>,
    /// Position of its `run_resumed` in the journal.
    pub seq: usize,
}

/// A scope the run undid (or, with `--no-undo`, did not): an `undoing` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct UndoRecord {
    /// When it was decided.
    pub at: Timestamp,
    /// The phase.
    pub phase: PhaseKind,
    /// The failed instance (`restart[web-2]`), or `run`.
    pub scope: String,
    /// The nodes undone, in the order their undos ran.
    pub nodes: Vec<String>,
    /// `--no-undo`: none ran.
    pub skipped: bool,
    /// Position in the journal.
    pub seq: usize,
}

/// A run as its journal tells it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunHistory {
    /// Every node the journal mentions: phases in the order they run, nodes in the order
    /// they were first mentioned.
    pub nodes: Vec<NodeRecord>,
    /// How the run ended, if its last process ended it.
    pub finished: Option<RunStatus>,
    /// When it ended (the last `run_finished`), if its last process ended it.
    pub finished_at: Option<Timestamp>,
    /// Its resumes, in order.
    pub resumes: Vec<ResumeRecord>,
    /// The phases that started.
    pub phases_started: Vec<PhaseKind>,
    /// The last journal entry.
    pub last_event_at: Option<Timestamp>,
    /// Nodes whose attempt was in flight when the run's last process stopped (an attempt
    /// started and neither it nor the node finished), in run order.
    pub in_flight: Vec<NodeKey>,
    /// The scopes undone (or not, with `--no-undo`), in journal order.
    pub undos: Vec<UndoRecord>,
}

impl RunHistory {
    /// Folds a run's events, in journal order.
    pub fn fold(events: &[Event]) -> RunHistory {
        let stretch_ends = stretch_ends(events);
        let mut history = RunHistory::default();
        let mut index: BTreeMap<NodeKey, usize> = BTreeMap::new();
        for (seq, e) in events.iter().enumerate() {
            history.run_event(events, seq, e);
            let Some((phase, node)) = e.node() else {
                continue;
            };
            let key = NodeKey::new(phase, node);
            let i = *index.entry(key.clone()).or_insert_with(|| {
                history.nodes.push(NodeRecord::new(key, seq));
                history.nodes.len() - 1
            });
            let stopped_at = || {
                stretch_ends
                    .iter()
                    .find(|(end, _)| *end >= seq)
                    .map(|(_, at)| *at)
            };
            node_event(&mut history.nodes[i], seq, e, stopped_at);
        }
        // Each undo node says which node it undoes.
        for u in history.undos.iter().filter(|u| !u.skipped) {
            for undone in &u.nodes {
                let key = NodeKey::new(u.phase, format!("{undone}.undo"));
                if let Some(&i) = index.get(&key) {
                    history.nodes[i].undoes = Some(undone.clone());
                }
            }
        }
        // Phases in the order they run (a stable sort keeps the order within each).
        history.nodes.sort_by_key(|n| n.key.phase);
        history.in_flight = history
            .nodes
            .iter()
            .filter(|n| n.state == NodeState::Running)
            .map(|n| n.key.clone())
            .collect();
        history.in_flight.sort();
        for n in &mut history.nodes {
            if matches!(n.state, NodeState::Running | NodeState::Waiting) {
                n.state = NodeState::Unknown;
            }
        }
        history
    }

    fn run_event(&mut self, events: &[Event], seq: usize, e: &Event) {
        self.last_event_at = Some(e.at());
        match e {
            Event::RunStarted { .. } => self.finished = None,
            Event::RunResumed { at, unknown } => {
                self.finished = None;
                self.resumes.push(ResumeRecord {
                    at: *at,
                    stopped_at: stopped_before(events, seq),
                    unknown: unknown.clone(),
                    seq,
                });
            }
            Event::PhaseStarted { phase, .. } if !self.phases_started.contains(phase) => {
                self.phases_started.push(*phase);
            }
            Event::RunFinished { at, status, .. } => {
                self.finished = Some(*status);
                self.finished_at = Some(*at);
            }
            Event::Undoing {
                at,
                phase,
                scope,
                nodes,
                skipped,
            } => self.undos.push(UndoRecord {
                at: *at,
                phase: *phase,
                scope: scope.clone(),
                nodes: nodes.clone(),
                skipped: *skipped,
                seq,
            }),
            _ => {}
        }
    }

    /// The failures the run went on after, as the nodes' last ends tell them (journals written
    /// before `run_finished` listed them included): phases in run order, nodes in the order
    /// they (last) started. A node a resume ran again counts as it ended the last time.
    pub fn tolerated(&self) -> Vec<Tolerated> {
        let mut failed: Vec<&NodeRecord> = self
            .nodes
            .iter()
            .filter(|n| n.state == NodeState::Failed && n.tolerated)
            .collect();
        failed.sort_by_key(|n| (n.key.phase, n.seq));
        failed
            .into_iter()
            .map(|n| Tolerated {
                phase: n.key.phase,
                node: n.key.node.clone(),
                message: n.message.clone().unwrap_or_default(),
            })
            .collect()
    }

    /// The nodes a resume must run again although they succeeded: their undo succeeded
    /// after their last success (what they did was put back).
    pub fn undone(&self) -> Vec<NodeKey> {
        self.nodes
            .iter()
            .filter(|u| u.finished == Some(NodeStatus::Succeeded))
            .filter_map(|u| {
                let of = NodeKey::new(u.key.phase, u.undoes.clone()?);
                let node = self.node(&of)?;
                (node.finished == Some(NodeStatus::Succeeded) && node.seq < u.seq).then_some(of)
            })
            .collect()
    }

    /// The record of a node, if the journal mentions it.
    pub fn node(&self, key: &NodeKey) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| &n.key == key)
    }
}

/// The last entry of each process's stretch of the journal (a resume starts a new one). A
/// `journal_healed` entry is written by the resume, so it ends no stretch.
fn stretch_ends(events: &[Event]) -> Vec<(usize, Timestamp)> {
    let mut ends = Vec::new();
    let mut last = None;
    for (seq, e) in events.iter().enumerate() {
        match e {
            Event::JournalHealed { .. } => continue,
            Event::RunResumed { .. } => ends.extend(last),
            _ => {}
        }
        last = Some((seq, e.at()));
    }
    ends.extend(last);
    ends
}

/// When the process before a resume last wrote (the resume's own `journal_healed` aside).
fn stopped_before(events: &[Event], seq: usize) -> Option<Timestamp> {
    events[..seq]
        .iter()
        .rev()
        .find(|e| !matches!(e, Event::JournalHealed { .. }))
        .map(Event::at)
}

/// What one event says about its node.
fn node_event(
    n: &mut NodeRecord,
    seq: usize,
    e: &Event,
    stopped_at: impl FnOnce() -> Option<Timestamp>,
) {
    match e {
        Event::AttemptStarted {
            at,
            attempt,
            target,
            ..
        } => {
            // Attempts in all, across resumes; the duration is that of the last run of the
            // node (a resumed node starts again at attempt 1).
            n.attempts += 1;
            if *attempt == 1 {
                n.seq = seq;
            }
            if *attempt == 1 || n.started_at.is_none() {
                n.started_at = Some(*at);
            }
            n.state = NodeState::Running;
            n.target = target.clone();
            n.stopped_at = stopped_at();
            n.group = None;
        }
        Event::AttemptProcess { group, .. } => n.group = Some(group.clone()),
        Event::AttemptFinished {
            exit_code, message, ..
        } => {
            n.exit_code = *exit_code;
            n.message = message.clone();
            n.state = NodeState::Waiting;
        }
        Event::NodeFinished {
            at,
            status,
            outputs,
            message,
            tolerated,
            ..
        } => {
            n.state = (*status).into();
            n.finished = Some(*status);
            n.finished_at = Some(*at);
            let started = *n.started_at.get_or_insert(*at);
            n.outputs = outputs.clone();
            if message.is_some() {
                n.message = message.clone();
            }
            n.tolerated = *tolerated;
            n.duration = at.since(started);
        }
        Event::NodeExpanded { instances, .. } => n.expanded_into = Some(instances.clone()),
        Event::IrreversibleConfirmed { answered_by, .. } => {
            n.confirmed_by = Some(answered_by.clone());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u32) -> Timestamp {
        Timestamp::parse(&format!("2026-11-25T13:32:{s:02}.000Z")).unwrap()
    }

    fn end(s: u32, phase: PhaseKind, node: &str, status: NodeStatus, tolerated: bool) -> Event {
        Event::NodeFinished {
            at: at(s),
            phase,
            node: node.into(),
            status,
            outputs: None,
            message: Some(format!("{node} ended")),
            tolerated,
        }
    }

    #[test]
    fn tolerated_lists_failed_nodes_the_run_went_on_after_as_they_last_ended() {
        let events = [
            end(1, PhaseKind::Finally, "notify", NodeStatus::Failed, true),
            end(2, PhaseKind::Main, "notice", NodeStatus::Failed, true),
            // A member of a tolerated instance that never ran is not a failure.
            end(
                3,
                PhaseKind::Main,
                "roll[b].start",
                NodeStatus::Cancelled,
                true,
            ),
            end(4, PhaseKind::Main, "restore", NodeStatus::Failed, false),
            end(5, PhaseKind::Main, "probe", NodeStatus::Failed, true),
            Event::RunResumed {
                at: at(6),
                unknown: Vec::new(),
            },
            // Ran again by the resume, and succeeded this time.
            end(7, PhaseKind::Main, "probe", NodeStatus::Succeeded, false),
        ];
        let tolerated: Vec<String> = RunHistory::fold(&events)
            .tolerated()
            .iter()
            .map(|t| format!("{}/{}: {}", t.phase, t.node, t.message))
            .collect();
        assert_eq!(
            tolerated,
            ["steps/notice: notice ended", "finally/notify: notify ended"]
        );
    }
}
