//! Everything observable about a run is an [`Event`] on one stream. The journal, the live
//! display and `--events json` are its consumers; the executor never prints.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A node's final state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    Succeeded,
    /// Its attempts failed (or its gate was not met in time).
    Failed,
    /// `when` was false; counts as satisfied for the steps that need it.
    Skipped,
    /// Stopped by Ctrl-C, by the run aborting, or because its instance failed.
    Cancelled,
}

/// How a run (or a phase) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// One thing that happened. `at` is RFC 3339 (UTC, milliseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        at: String,
        run_id: String,
        plan: String,
    },
    /// `rollbook resume` picked the run up again.
    RunResumed {
        at: String,
        /// Nodes that were in flight when the process stopped: their outcome is unknown.
        unknown: Vec<String>,
    },
    PhaseStarted {
        at: String,
        phase: String,
        nodes: usize,
    },
    /// A `for_each` over a step output became concrete instances.
    NodeExpanded {
        at: String,
        phase: String,
        node: String,
        instances: Vec<String>,
    },
    AttemptStarted {
        at: String,
        phase: String,
        node: String,
        attempt: u32,
        /// Where the attempt acts, as the dry run describes it (`deploy@web-1:22`,
        /// `GET http://web-1:8080/health`, `connection db`, `local`), secrets redacted. `None`
        /// for `sleep` and `confirm`, and in journals written before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
    },
    AttemptFinished {
        at: String,
        phase: String,
        node: String,
        attempt: u32,
        ok: bool,
        duration_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    RetryScheduled {
        at: String,
        phase: String,
        node: String,
        next_attempt: u32,
        delay_ms: u64,
    },
    /// An `until` gate is not met yet.
    GateWaiting {
        at: String,
        phase: String,
        node: String,
        attempt: u32,
        elapsed_ms: u64,
        deadline_ms: u64,
        next_in_ms: u64,
    },
    NodeFinished {
        at: String,
        phase: String,
        node: String,
        status: NodeStatus,
        /// Captured values (`steps.<id>.outputs`), secrets redacted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outputs: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// Failed, but `on_failure: continue` (or a tolerated rollout failure) let the run go on.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        tolerated: bool,
    },
    /// Ctrl-C: `hard` when in-flight attempts are being cancelled too.
    Cancelling {
        at: String,
        hard: bool,
    },
    PhaseFinished {
        at: String,
        phase: String,
        status: RunStatus,
    },
    RunFinished {
        at: String,
        status: RunStatus,
    },
}

impl Event {
    /// When it happened (RFC 3339, UTC, milliseconds).
    pub fn at(&self) -> &str {
        match self {
            Event::RunStarted { at, .. }
            | Event::RunResumed { at, .. }
            | Event::PhaseStarted { at, .. }
            | Event::NodeExpanded { at, .. }
            | Event::AttemptStarted { at, .. }
            | Event::AttemptFinished { at, .. }
            | Event::RetryScheduled { at, .. }
            | Event::GateWaiting { at, .. }
            | Event::NodeFinished { at, .. }
            | Event::Cancelling { at, .. }
            | Event::PhaseFinished { at, .. }
            | Event::RunFinished { at, .. } => at,
        }
    }

    /// Events that change a node's or the run's state; the journal makes these durable before
    /// the executor goes on.
    pub fn node(&self) -> Option<(&str, &str)> {
        match self {
            Event::NodeExpanded { phase, node, .. }
            | Event::AttemptStarted { phase, node, .. }
            | Event::AttemptFinished { phase, node, .. }
            | Event::RetryScheduled { phase, node, .. }
            | Event::GateWaiting { phase, node, .. }
            | Event::NodeFinished { phase, node, .. } => Some((phase, node)),
            _ => None,
        }
    }
}

/// The current time as the journal writes it.
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_started_reads_journals_written_before_targets() {
        let old = r#"{"event":"attempt_started","at":"2026-11-25T13:32:12.124Z","phase":"steps","node":"hello","attempt":1}"#;
        let event: Event = serde_json::from_str(old).unwrap();
        assert!(matches!(event, Event::AttemptStarted { target: None, .. }));
        assert_eq!(serde_json::to_string(&event).unwrap(), old);

        let new = Event::AttemptStarted {
            at: "2026-11-25T13:32:12.124Z".into(),
            phase: "steps".into(),
            node: "restart[web-1].stop".into(),
            attempt: 1,
            target: Some("deploy@web-1:22".into()),
        };
        let line = serde_json::to_string(&new).unwrap();
        assert!(
            line.ends_with(r#""attempt":1,"target":"deploy@web-1:22"}"#),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), new);
    }
}
