//! rollbook's executor: walks a compiled plan with tokio, runs each node through the runner of
//! its kind, and journals every state change so a run can be resumed and reported.
//!
//! - [`executor`] — the scheduler: one loop that owns all run state; attempts run as tasks
//!   and report back on a channel; timeouts, retries, gates and cancellation live here.
//! - [`runner`] — the narrow trait runners implement (`kind`, `check`, `run` one attempt).
//! - [`runners`] — the built-in local runners: `shell`, `sleep`, `confirm`.
//! - [`journal`] — the on-disk journal (and the trait other backends implement).
//! - [`history`] — the one fold of a journal: each node's facts ([`NodeKey`],
//!   [`history::NodeState`]) and the run's (how it ended, its resumes, what was in flight).
//! - [`resume`] — what a resume needs, from the history.
//! - [`result`] — the result documents of command and `confirm` steps.
//! - [`lock`] — plan locks.
//! - [`state`] — where runs and locks are kept: the [`state::Store`] trait and the file store.
//! - [`redact`] — secret values hidden in everything a run writes.
//! - [`event`] — the events everything observable is made of.

pub mod event;
pub mod executor;
pub mod history;
pub mod journal;
pub mod lock;
pub mod process;
pub mod redact;
pub mod result;
pub mod resume;
pub mod runner;
pub mod runners;
pub mod state;

pub use event::{Controller, Event, NodeStatus, ProcessGroup, RunStatus, Timestamp, Tolerated};
pub use executor::{Control, Execution, Options, RunOutcome};
pub use history::{NodeKey, NodeRecord, NodeState, RunHistory};
pub use runner::{
    Attempt, Outcome, OutputLine, OutputSink, ProcessReport, Runner, Runners, Stream,
};

/// The executor's own faults (a failed step is not one: it is data in the journal).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the journal or a lock could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A journal file that does not read (not a line cut short by a crash).
    #[error("{path}:{line}: unreadable journal entry: {message}")]
    Corrupt {
        /// The file.
        path: String,
        /// Its line, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// Another run holds the plan's lock.
    #[error("the lock `{}` is held by {}", .0.key, .0)]
    LockHeld(Box<lock::LockHolder>),
    /// A run that is gone left the plan's lock.
    #[error("the lock `{}` was left by {}, which is no longer running", .0.key, .0)]
    StaleLock(Box<lock::LockHolder>),
    /// The shared state store could not do what was asked (the database is unreachable, a
    /// run was taken over); the message names the store without its password.
    #[error("{0}")]
    Store(String),
    /// A step's kind has no runner in this build.
    #[error("no runner for `{0}` steps in this build")]
    NoRunner(String),
}
