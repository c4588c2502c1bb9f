//! Rebuilding a run's state from its journal, for `rollbook resume`.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::event::{Event, NodeStatus, RunStatus};
use crate::executor::Prior;

/// What the journal says about a run.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// Nodes that succeeded or were skipped: never run again.
    pub prior: Prior,
    /// Nodes whose attempt was in flight when the process stopped: their outcome is unknown.
    pub unknown: Vec<(String, String)>,
    /// How the run ended, if it did.
    pub finished: Option<RunStatus>,
}

/// Folds a run's events into what a resume needs.
pub fn replay(events: &[Event]) -> Replay {
    let mut done: HashMap<(String, String), (NodeStatus, Option<Value>)> = HashMap::new();
    let mut in_flight: BTreeSet<(String, String)> = BTreeSet::new();
    let mut finished = None;
    for e in events {
        match e {
            Event::AttemptStarted { phase, node, .. } => {
                in_flight.insert((phase.clone(), node.clone()));
            }
            Event::AttemptFinished { phase, node, .. } => {
                in_flight.remove(&(phase.clone(), node.clone()));
            }
            Event::NodeFinished {
                phase,
                node,
                status,
                outputs,
                ..
            } => {
                let key = (phase.clone(), node.clone());
                in_flight.remove(&key);
                match status {
                    // Cleanup and notifications run again at the end of a resumed run: only
                    // the main graph's finished work is carried over.
                    NodeStatus::Succeeded | NodeStatus::Skipped if phase == "steps" => {
                        done.insert(key, (*status, outputs.clone()));
                    }
                    NodeStatus::Succeeded | NodeStatus::Skipped => {}
                    NodeStatus::Failed | NodeStatus::Cancelled => {
                        done.remove(&key);
                    }
                }
            }
            Event::RunStarted { .. } | Event::RunResumed { .. } => finished = None,
            Event::RunFinished { status, .. } => finished = Some(*status),
            _ => {}
        }
    }
    Replay {
        prior: Prior {
            done,
            marked: HashMap::new(),
        },
        unknown: in_flight.into_iter().collect(),
        finished,
    }
}
