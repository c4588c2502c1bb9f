//! The narrow interface every step runner implements, and what an attempt gets and returns.
//!
//! A runner runs one attempt of one action. Retries, timeouts, gates and cancellation policy
//! belong to the executor; a runner only has to stop promptly when its token is cancelled.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rollbook_plan::action::Action;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A boxed future, for the object-safe [`Runner`] trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What one attempt came to. A failed step is data, not an `Err`: the executor decides from
/// it whether to retry, continue or abort.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It worked.
    Succeeded {
        /// The result document (`{exit_code, stdout, stderr, json}`, `{status, headers,
        /// body, json}`, `{rows, rows_affected}`), which `until` and `capture` read.
        result: Value,
    },
    /// It did not.
    Failed {
        /// Why, for people.
        message: String,
        /// The result document, when the step got as far as one (a non-zero exit code).
        result: Option<Value>,
    },
}

impl Outcome {
    /// A failure without a result document.
    pub fn failed(message: impl Into<String>) -> Self {
        Outcome::Failed {
            message: message.into(),
            result: None,
        }
    }

    /// The result document, if there is one.
    pub fn result(&self) -> Option<&Value> {
        match self {
            Outcome::Succeeded { result } => Some(result),
            Outcome::Failed { result, .. } => result.as_ref(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
/// Which of a command's output streams a line came from.
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A line of a step's output, for its log and the live display.
#[derive(Debug, Clone)]
pub struct OutputLine {
    /// The node that wrote it.
    pub node: Arc<str>,
    /// Which stream.
    pub stream: Stream,
    /// The line, without its newline.
    pub line: String,
}

/// Where a runner streams the output of its attempt.
#[derive(Clone)]
pub struct OutputSink {
    node: Arc<str>,
    tx: mpsc::UnboundedSender<OutputLine>,
}

impl OutputSink {
    /// A sink for `node`'s lines, sent to `tx`.
    pub fn new(node: Arc<str>, tx: mpsc::UnboundedSender<OutputLine>) -> Self {
        OutputSink { node, tx }
    }

    /// A sink that drops everything (tests, preflight).
    pub fn discard() -> Self {
        let (tx, _rx) = mpsc::unbounded_channel();
        OutputSink {
            node: Arc::from(""),
            tx,
        }
    }

    /// Sends a line (dropped when nobody listens).
    pub fn line(&self, stream: Stream, line: &str) {
        let _ = self.tx.send(OutputLine {
            node: self.node.clone(),
            stream,
            line: line.to_string(),
        });
    }
}

/// What a runner gets for one attempt.
pub struct Attempt {
    /// The node's name, e.g. `roll[us-east-op-2].restore`.
    pub node: Arc<str>,
    /// 1 for the first try.
    pub number: u32,
    /// Cancelled on timeout or a second Ctrl-C: stop, and kill what was started.
    pub cancel: CancellationToken,
    /// Where its output lines go.
    pub output: OutputSink,
}

/// A step runner: `ssh`, `http`, `sql`, `shell`, `sleep`, `confirm`.
pub trait Runner: Send + Sync + 'static {
    /// The action kind it runs.
    fn kind(&self) -> &'static str;

    /// Preflight for `plan --check`: can this action run (reach, auth, permissions)? Says
    /// what was checked. Runs nothing that changes anything.
    fn check<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<String, String>> {
        let _ = action;
        Box::pin(async { Ok("nothing to check".to_string()) })
    }

    /// Runs one attempt.
    fn run<'a>(&'a self, action: &'a Action, attempt: Attempt) -> BoxFuture<'a, Outcome>;
}

/// The runners of a run, by kind.
#[derive(Clone, Default)]
pub struct Runners {
    by_kind: HashMap<&'static str, Arc<dyn Runner>>,
}

impl Runners {
    /// No runners yet.
    pub fn new() -> Self {
        Runners::default()
    }

    /// Adds a runner for its kind.
    pub fn with(mut self, runner: impl Runner) -> Self {
        self.by_kind.insert(runner.kind(), Arc::new(runner));
        self
    }

    /// The runner of a kind.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn Runner>> {
        self.by_kind.get(kind).cloned()
    }
}

/// Keeps the last `limit` bytes of a stream, on a character boundary.
#[derive(Debug, Default)]
pub struct Tail {
    text: String,
    limit: usize,
    dropped: usize,
}

impl Tail {
    /// Keeps at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Tail {
            text: String::new(),
            limit,
            dropped: 0,
        }
    }

    /// Adds a line (and its newline), dropping the oldest text past the limit.
    pub fn push_line(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
        if self.text.len() > self.limit {
            let mut cut = self.text.len() - self.limit;
            while !self.text.is_char_boundary(cut) {
                cut += 1;
            }
            self.dropped += cut;
            self.text.drain(..cut);
        }
    }

    /// The kept text, and how many bytes were dropped before it.
    pub fn finish(self) -> (String, usize) {
        (self.text, self.dropped)
    }
}
