//! Rebuilding a run's state from its journal, for `rollbook resume`.

use std::collections::HashMap;

use crate::event::{Event, RunStatus};
use crate::executor::Prior;
use crate::history::{NodeKey, RunHistory};

/// What the journal says about a run.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// Nodes that succeeded or were skipped: never run again.
    pub prior: Prior,
    /// Nodes whose attempt was in flight when the process stopped: their outcome is unknown.
    pub unknown: Vec<NodeKey>,
    /// How the run ended, if it did.
    pub finished: Option<RunStatus>,
}

/// Folds a run's events into what a resume needs.
pub fn replay(events: &[Event]) -> Replay {
    Replay::from(RunHistory::fold(events))
}

impl From<RunHistory> for Replay {
    fn from(history: RunHistory) -> Self {
        // The groups of the attempts whose outcome is unknown: they may still be running.
        let groups = history
            .nodes
            .iter()
            .filter(|n| history.in_flight.contains(&n.key))
            .filter_map(|n| Some((n.key.clone(), n.group.clone()?)))
            .collect();
        // A node whose undo succeeded after it did is not done any more: it runs again. An
        // undo is never done (it runs only when its scope fails again).
        let undone = history.undone();
        let order = history
            .nodes
            .iter()
            .map(|n| (n.key.clone(), n.seq))
            .collect();
        let done = history
            .nodes
            .into_iter()
            .filter(|n| n.done() && !undone.contains(&n.key))
            .filter_map(|n| Some((n.key, (n.finished?, n.outputs))))
            .collect();
        Replay {
            prior: Prior {
                done,
                marked: HashMap::new(),
                groups,
                order,
            },
            unknown: history.in_flight,
            finished: history.finished,
        }
    }
}
