//! Everything observable about a run is an [`Event`] on one stream. The journal, the live
//! display and `--events json` are its consumers; the executor never prints.

use std::fmt;
use std::time::{Duration, SystemTime};

use rollbook_plan::compile::PhaseKind;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A node's final state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Its last attempt succeeded and its gate and captures held.
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
    /// Not ended (or stopped without an end: a crash).
    Running,
    /// Everything it ran succeeded.
    Succeeded,
    /// Something failed.
    Failed,
    /// Stopped by Ctrl-C.
    Cancelled,
}

impl RunStatus {
    /// As written in the journal: `running`, `succeeded`, `failed`, `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// A failure the run went on after: a step with `on_failure: continue`, or a failed
/// `for_each` instance within its rollout's `max_failures`. `run.tolerated` in templates and
/// jq is the list of these, and `run_finished` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tolerated {
    /// The phase of the node.
    pub phase: PhaseKind,
    /// The node, e.g. `restart[web-2].start`.
    pub node: String,
    /// Why it failed (redacted).
    #[serde(default)]
    pub message: String,
}

/// A command's process group: on this machine (`host: None`) or on an SSH host. A group
/// outlives its leader while any member is left, and its number is not given to another
/// process while it exists; `leader_start` (the leader's start time, in clock ticks since
/// boot, `/proc/PGID/stat` field 22) tells the leader from a later process of the same number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessGroup {
    /// The SSH host's label (`deploy@web-1:22`); `None` on the machine that ran rollbook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The machine that ran rollbook, for a local group (its host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// The process group id.
    pub pgid: u32,
    /// The leader's start time, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_start: Option<u64>,
}

impl fmt::Display for ProcessGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host, &self.machine) {
            (Some(host), _) => write!(f, "process group {} on {host}", self.pgid),
            (None, Some(machine)) => write!(f, "process group {} on {machine} (local)", self.pgid),
            (None, None) => write!(f, "local process group {}", self.pgid),
        }
    }
}

/// A process that runs a run: who started it, where, and the lock it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Controller {
    /// Who.
    pub user: String,
    /// On which machine.
    pub host: String,
    /// Its process id there.
    pub pid: u32,
    /// The lock's key.
    pub lock: String,
    /// The fencing token of its lock (shared state only): it grows with every acquisition, so
    /// the journal tells which controller held the lock later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<i64>,
    /// Where the run's state is kept (`directory .rollbook`, `postgres://ops@db:5432/ops`),
    /// never with a password.
    pub state: String,
}

/// One thing that happened. `at` is RFC 3339 (UTC, milliseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A run began.
    RunStarted {
        /// When it happened.
        at: Timestamp,
        /// The run's id.
        run_id: String,
        /// The plan's name.
        plan: String,
    },
    /// `rollbook resume` picked the run up again.
    RunResumed {
        /// When it happened.
        at: Timestamp,
        /// Nodes that were in flight when the process stopped: their outcome is unknown.
        unknown: Vec<String>,
    },
    /// A phase (`steps`, `on_failure`, `finally`) began.
    PhaseStarted {
        /// When it happened.
        at: Timestamp,
        /// The phase.
        phase: PhaseKind,
        /// Nodes in the phase's graph.
        nodes: usize,
    },
    /// A `for_each` over a step output became concrete instances.
    NodeExpanded {
        /// When it happened.
        at: Timestamp,
        /// The phase.
        phase: PhaseKind,
        /// The node, e.g. `roll[us-east-op-2].restore`.
        node: String,
        /// The instances' names.
        instances: Vec<String>,
    },
    /// An attempt of a node is about to run (journaled before its runner is called).
    AttemptStarted {
        /// When it happened.
        at: Timestamp,
        /// The phase.
        phase: PhaseKind,
        /// The node, e.g. `roll[us-east-op-2].restore`.
        node: String,
        /// 1 for the first try.
        attempt: u32,
        /// Where the attempt acts, as the dry run describes it (`deploy@web-1:22`,
        /// `GET http://web-1:8080/health`, `connection db`, `local`), secrets redacted. `None`
        /// for `sleep` and `confirm`, and in journals written before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
    },
    /// A running attempt's command has a process group, on this machine or on an SSH host:
    /// after a crash, `resume` checks that it is gone before the step runs again.
    AttemptProcess {
        /// When it happened.
        at: Timestamp,
        /// The phase.
        phase: PhaseKind,
        /// The node, e.g. `roll[us-east-op-2].restore`.
        node: String,
        /// 1 for the first try.
        attempt: u32,
        /// Where the group is, and which one.
        #[serde(flatten)]
        group: ProcessGroup,
    },
    /// An attempt came back.
    AttemptFinished {
        /// When it happened.
        at: Timestamp,
        /// The phase.
        phase: PhaseKind,
        /// The node, e.g. `roll[us-east-op-2].restore`.
        node: String,
        /// 1 for the first try.
        attempt: u32,
        /// It succeeded (its result is judged afterwards: gates, captures).
        ok: bool,
        /// How long it ran.
        duration_ms: u64,
        /// A command's exit code.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i64>,
        /// Why it failed, or what else there is to say (redacted).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A failed attempt is tried again after a delay.
    RetryScheduled {
        /// When it happened.
        at: Timestamp,
        /// The phase.
        phase: PhaseKind,
        /// The node, e.g. `roll[us-east-op-2].restore`.
        node: String,
        /// The attempt that will run.
        next_attempt: u32,
        /// In how long.
        delay_ms: u64,
    },
    /// An `until` gate is not met yet.
    GateWaiting {
        /// When it happened.
        at: Timestamp,
        /// The phase.
        phase: PhaseKind,
        /// The node, e.g. `roll[us-east-op-2].restore`.
        node: String,
        /// 1 for the first try.
        attempt: u32,
        /// Since the first attempt started.
        elapsed_ms: u64,
        /// The gate's deadline, from the first attempt.
        deadline_ms: u64,
        /// When the next poll is.
        next_in_ms: u64,
    },
    /// A node reached its end state.
    NodeFinished {
        /// When it happened.
        at: Timestamp,
        /// The phase.
        phase: PhaseKind,
        /// The node, e.g. `roll[us-east-op-2].restore`.
        node: String,
        /// How it ended.
        status: NodeStatus,
        /// Captured values (`steps.<id>.outputs`), secrets redacted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outputs: Option<Value>,
        /// Why it failed, or what else there is to say (redacted).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// Failed, but `on_failure: continue` (or a tolerated rollout failure) let the run go on.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        tolerated: bool,
    },
    /// A scope failed and the steps that succeeded in it are undone, in this order (the
    /// reverse of their completion): each undo is then the node `<node>.undo`. `scope` is the
    /// failed `for_each` instance (`restart[web-2]`), or `run` when the run halted. With
    /// `--no-undo` (`skipped`), the undos that would have run are named, and none runs.
    Undoing {
        /// When it happened.
        at: Timestamp,
        /// The phase.
        phase: PhaseKind,
        /// The failed instance, or `run`.
        scope: String,
        /// The nodes undone, in the order their undos run.
        nodes: Vec<String>,
        /// `--no-undo`: nothing was undone.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        skipped: bool,
    },
    /// The run's confirmation was asked again before an `irreversible: true` step, and given.
    IrreversibleConfirmed {
        /// When it happened.
        at: Timestamp,
        /// The phase.
        phase: PhaseKind,
        /// The irreversible node about to start.
        node: String,
        /// Who answered: the user at the terminal, or `USER (--yes)`.
        answered_by: String,
    },
    /// Ctrl-C, SIGTERM, SIGHUP, or a lock's lease that lapsed: `hard` when in-flight attempts
    /// are being cancelled too.
    Cancelling {
        /// When it happened.
        at: Timestamp,
        /// In-flight attempts are cancelled too.
        hard: bool,
        /// Why, when it was not a person (a lease that lapsed), with how to go on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A controller (one `rollbook run` or `resume` process) took the run's lock and goes on
    /// with it: journaled right after `run_started` or `run_resumed`, so the journal names every
    /// controller of a run and the fencing token each held.
    ControllerStarted {
        /// When it happened.
        at: Timestamp,
        /// Who and where.
        #[serde(flatten)]
        controller: Controller,
    },
    /// A phase ended.
    PhaseFinished {
        /// When it happened.
        at: Timestamp,
        /// The phase.
        phase: PhaseKind,
        /// How it ended.
        status: RunStatus,
    },
    /// Opening the journal to append found a line that does not read (cut short by a crash, a
    /// full disk, NUL bytes) and cut the journal back to the last complete line before it.
    JournalHealed {
        /// When it happened.
        at: Timestamp,
        /// The first line cut (1-based).
        #[serde(default)]
        line: usize,
        /// How many bytes were cut.
        #[serde(default)]
        bytes: u64,
        /// The side file beside the journal that keeps the cut bytes.
        #[serde(default)]
        kept_in: String,
    },
    /// rollbook exited at once at a third signal (Ctrl-C, SIGTERM, SIGHUP), without waiting
    /// for the steps in flight: the run has no end, and `resume` goes on with it.
    RunAbandoned {
        /// When it happened.
        at: Timestamp,
        /// What happened, for people.
        message: String,
    },
    /// The run ended.
    RunFinished {
        /// When it happened.
        at: Timestamp,
        /// How it ended.
        status: RunStatus,
        /// The failures the run went on after, in the order they ended (not written when
        /// there are none; journals written before it have none).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tolerated: Vec<Tolerated>,
    },
}

impl Event {
    /// When it happened.
    pub fn at(&self) -> Timestamp {
        match self {
            Event::RunStarted { at, .. }
            | Event::RunResumed { at, .. }
            | Event::PhaseStarted { at, .. }
            | Event::NodeExpanded { at, .. }
            | Event::AttemptStarted { at, .. }
            | Event::AttemptProcess { at, .. }
            | Event::AttemptFinished { at, .. }
            | Event::RetryScheduled { at, .. }
            | Event::GateWaiting { at, .. }
            | Event::NodeFinished { at, .. }
            | Event::Undoing { at, .. }
            | Event::IrreversibleConfirmed { at, .. }
            | Event::Cancelling { at, .. }
            | Event::ControllerStarted { at, .. }
            | Event::PhaseFinished { at, .. }
            | Event::JournalHealed { at, .. }
            | Event::RunAbandoned { at, .. }
            | Event::RunFinished { at, .. } => *at,
        }
    }

    /// The phase and node an event is about; `None` for the run's and phases' own events.
    pub fn node(&self) -> Option<(PhaseKind, &str)> {
        match self {
            Event::NodeExpanded { phase, node, .. }
            | Event::AttemptStarted { phase, node, .. }
            | Event::AttemptProcess { phase, node, .. }
            | Event::AttemptFinished { phase, node, .. }
            | Event::RetryScheduled { phase, node, .. }
            | Event::GateWaiting { phase, node, .. }
            | Event::IrreversibleConfirmed { phase, node, .. }
            | Event::NodeFinished { phase, node, .. } => Some((*phase, node)),
            _ => None,
        }
    }
}

/// The current time as the journal writes it (RFC 3339, UTC, milliseconds), for `run.json`
/// and lock files.
pub fn now() -> String {
    Timestamp::now().to_string()
}

/// A moment of a run, to the millisecond: written RFC 3339 in UTC with milliseconds
/// (`2026-11-25T13:32:12.124Z`), as every journal has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(SystemTime);

impl Timestamp {
    /// Now, cut to the millisecond (what the journal can hold).
    pub fn now() -> Self {
        Timestamp::from_system_time(SystemTime::now())
    }

    /// A moment, cut to the millisecond.
    pub fn from_system_time(time: SystemTime) -> Self {
        let since = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let millis = Duration::from_millis(since.as_millis() as u64);
        Timestamp(SystemTime::UNIX_EPOCH + millis)
    }

    /// Reads an RFC 3339 time (`2026-11-25T13:32:12.124Z`, or with an offset); `None` when it
    /// is not one.
    pub fn parse(text: &str) -> Option<Self> {
        humantime::parse_rfc3339_weak(text)
            .ok()
            .map(Timestamp::from_system_time)
    }

    /// The moment as a `SystemTime`.
    pub fn system_time(self) -> SystemTime {
        self.0
    }

    /// How long after `earlier` this is; `None` when it is before (a clock step).
    pub fn since(self, earlier: Timestamp) -> Option<Duration> {
        self.0.duration_since(earlier.0).ok()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&humantime::format_rfc3339_millis(self.0), f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text}")))
    }
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
            at: Timestamp::parse("2026-11-25T13:32:12.124Z").unwrap(),
            phase: PhaseKind::Main,
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

    #[test]
    fn run_finished_reads_journals_written_before_tolerated_failures() {
        let old = r#"{"event":"run_finished","at":"2026-11-25T13:32:12.124Z","status":"failed"}"#;
        let event: Event = serde_json::from_str(old).unwrap();
        assert!(
            matches!(&event, Event::RunFinished { status: RunStatus::Failed, tolerated, .. } if tolerated.is_empty())
        );
        assert_eq!(serde_json::to_string(&event).unwrap(), old);

        let new = Event::RunFinished {
            at: Timestamp::parse("2026-11-25T13:32:12.124Z").unwrap(),
            status: RunStatus::Succeeded,
            tolerated: vec![Tolerated {
                phase: PhaseKind::Main,
                node: "notify".into(),
                message: "timed out after 5s".into(),
            }],
        };
        let line = serde_json::to_string(&new).unwrap();
        assert!(
            line.ends_with(r#""status":"succeeded","tolerated":[{"phase":"steps","node":"notify","message":"timed out after 5s"}]}"#),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), new);
    }

    #[test]
    fn undo_entries_read_and_write_without_skipped_when_they_ran() {
        let line = r#"{"event":"undoing","at":"2026-12-05T09:40:02.100Z","phase":"steps","scope":"roll[h2]","nodes":["roll[h2].stop"]}"#;
        let event: Event = serde_json::from_str(line).unwrap();
        assert!(
            matches!(&event, Event::Undoing { skipped: false, nodes, .. } if nodes == &["roll[h2].stop"])
        );
        assert_eq!(serde_json::to_string(&event).unwrap(), line);
        let confirmed = r#"{"event":"irreversible_confirmed","at":"2026-12-05T09:41:00.000Z","phase":"steps","node":"drop","answered_by":"ana (--yes)"}"#;
        let event: Event = serde_json::from_str(confirmed).unwrap();
        assert_eq!(event.node(), Some((PhaseKind::Main, "drop")));
        assert_eq!(serde_json::to_string(&event).unwrap(), confirmed);
    }

    #[test]
    fn timestamps_read_and_write_as_the_journal_has_them() {
        let text = "2026-11-25T13:32:12.124Z";
        let at: Timestamp = serde_json::from_str(&format!("\"{text}\"")).unwrap();
        assert_eq!(at.to_string(), text);
        assert_eq!(serde_json::to_string(&at).unwrap(), format!("\"{text}\""));
        let later = Timestamp::parse("2026-11-25T13:33:00.000Z").unwrap();
        assert_eq!(later.since(at), Some(Duration::from_millis(47_876)));
        assert_eq!(at.since(later), None);
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
        let now = Timestamp::now();
        assert_eq!(Timestamp::parse(&now.to_string()), Some(now));
    }
}
