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

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What one attempt came to. A failed step is data, not an `Err`: the executor decides from
/// it whether to retry, continue or abort.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The result document (`{exit_code, stdout, stderr, json}`, `{status, headers, body,
    /// json}`, `{rows, rows_affected}`), which `until` and `capture` read.
    Succeeded { result: Value },
    Failed {
        message: String,
        result: Option<Value>,
    },
}

impl Outcome {
    pub fn failed(message: impl Into<String>) -> Self {
        Outcome::Failed {
            message: message.into(),
            result: None,
        }
    }

    pub fn result(&self) -> Option<&Value> {
        match self {
            Outcome::Succeeded { result } => Some(result),
            Outcome::Failed { result, .. } => result.as_ref(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A line of a step's output, for its log and the live display.
#[derive(Debug, Clone)]
pub struct OutputLine {
    pub node: Arc<str>,
    pub stream: Stream,
    pub line: String,
}

/// Where a runner streams the output of its attempt.
#[derive(Clone)]
pub struct OutputSink {
    node: Arc<str>,
    tx: mpsc::UnboundedSender<OutputLine>,
}

impl OutputSink {
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
    pub fn new() -> Self {
        Runners::default()
    }

    pub fn with(mut self, runner: impl Runner) -> Self {
        self.by_kind.insert(runner.kind(), Arc::new(runner));
        self
    }

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
    pub fn new(limit: usize) -> Self {
        Tail {
            text: String::new(),
            limit,
            dropped: 0,
        }
    }

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
