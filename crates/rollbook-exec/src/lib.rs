//! rollbook's executor: walks a compiled plan with tokio, runs each node through the runner of
//! its kind, and journals every state change so a run can be resumed and reported.
//!
//! - [`executor`] — the scheduler: one loop that owns all run state; attempts run as tasks
//!   and report back on a channel; timeouts, retries, gates and cancellation live here.
//! - [`runner`] — the narrow trait runners implement (`kind`, `check`, `run` one attempt).
//! - [`runners`] — the built-in local runners: `shell`, `sleep`, `confirm`.
//! - [`journal`] — the on-disk journal (and the trait other backends implement).
//! - [`resume`] — rebuilding a run's state from its journal.
//! - [`lock`] — plan locks.
//! - [`event`] — the events everything observable is made of.

pub mod event;
pub mod executor;
pub mod journal;
pub mod lock;
pub mod redact;
pub mod resume;
pub mod runner;
pub mod runners;

pub use event::{Event, NodeStatus, RunStatus};
pub use executor::{Control, Execution, Options, RunOutcome};
pub use runner::{Attempt, Outcome, OutputLine, OutputSink, Runner, Runners, Stream};

/// The executor's own faults (a failed step is not one: it is data in the journal).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: unreadable journal entry: {message}")]
    Corrupt {
        path: String,
        line: usize,
        message: String,
    },
    #[error("the lock `{}` is held by {}", .0.key, .0)]
    LockHeld(Box<lock::LockHolder>),
    #[error("the lock `{}` was left by {}, which is no longer running", .0.key, .0)]
    StaleLock(Box<lock::LockHolder>),
    #[error("no runner for `{0}` steps in this build")]
    NoRunner(String),
    #[error("{0}")]
    Resume(String),
}
