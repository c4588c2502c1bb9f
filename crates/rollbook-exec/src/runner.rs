//! The narrow interface every step runner implements, and what an attempt gets and returns.
//!
//! A runner runs one attempt of one action. Retries, timeouts, gates and cancellation policy
//! belong to the executor; a runner only has to stop promptly when its token is cancelled.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use rollbook_plan::action::Action;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::event::ProcessGroup;
use crate::redact::{Redactor, StreamRedactor};

/// The longest output line a runner keeps whole; the rest of a longer line is dropped and the
/// line marked ([`line_cut_note`]), so a command printing a gigabyte without a newline costs
/// this much, not a crash.
pub const MAX_LINE: usize = 64 * 1024;

/// What ends a line of which `dropped` bytes were cut (nothing when none were).
fn line_cut_note(dropped: usize) -> String {
    if dropped == 0 {
        String::new()
    } else {
        format!(" [line cut: {dropped} more bytes]")
    }
}

/// Splits a command's output bytes into lines, as they arrive in pieces: each line without its
/// line break (and any `\r` before it), at most [`MAX_LINE`] bytes of it kept and the rest
/// counted ([`line_cut_note`]). The one splitter of the runners that read output.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
    /// Bytes of the current line past [`MAX_LINE`], dropped.
    dropped: usize,
}

impl LineSplitter {
    /// The lines that `data` completes.
    pub fn feed(&mut self, mut data: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        while !data.is_empty() {
            let (text, ends) = match data.iter().position(|&b| b == b'\n') {
                Some(at) => (&data[..at], true),
                None => (data, false),
            };
            let kept = text.len().min(MAX_LINE.saturating_sub(self.partial.len()));
            self.partial.extend_from_slice(&text[..kept]);
            self.dropped += text.len() - kept;
            data = &data[text.len() + usize::from(ends)..];
            if ends {
                lines.push(self.take());
            }
        }
        lines
    }

    /// The last line, when the output ended without a line break after it.
    pub fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty() || self.dropped > 0).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let mut line = String::from_utf8_lossy(&self.partial)
            .trim_end_matches('\r')
            .to_string();
        line.push_str(&line_cut_note(self.dropped));
        self.partial.clear();
        self.dropped = 0;
        line
    }
}

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
    Stdout = 0,
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

/// Where a runner streams the output of its attempt. Clones share one stream per output
/// stream; when the sink redacts, each is redacted as a stream, not line by line
/// ([`StreamRedactor`]), and what it holds back is written by [`OutputSink::finish`] (or
/// when the last clone is dropped).
#[derive(Clone)]
pub struct OutputSink {
    shared: Arc<Shared>,
}

struct Shared {
    node: Arc<str>,
    tx: mpsc::UnboundedSender<OutputLine>,
    /// The bytes on their way to the logs, when the receiver counts them.
    backlog: Option<Arc<Backlog>>,
    /// stdout and stderr, when the sink redacts.
    streams: Option<Mutex<[RedactedLines; 2]>>,
}

/// One output stream, redacted as a stream and cut into lines again.
struct RedactedLines {
    redactor: StreamRedactor,
    /// Redacted text of a line not ended yet.
    partial: String,
}

impl RedactedLines {
    /// Takes a line; answers the redacted lines that are complete now.
    fn push(&mut self, line: &str) -> Vec<String> {
        let mut text = String::with_capacity(line.len() + 1);
        text.push_str(line);
        text.push('\n');
        let redacted = self.redactor.push(&text);
        self.lines(&redacted)
    }

    /// The end of the stream: the rest, line by line.
    fn finish(&mut self) -> Vec<String> {
        let rest = self.redactor.finish();
        let mut lines = self.lines(&rest);
        if !self.partial.is_empty() {
            lines.push(std::mem::take(&mut self.partial));
        }
        lines
    }

    fn lines(&mut self, redacted: &str) -> Vec<String> {
        self.partial.push_str(redacted);
        let Some(last) = self.partial.rfind('\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(last + 1);
        let done = std::mem::replace(&mut self.partial, rest);
        done[..last].split('\n').map(str::to_string).collect()
    }
}

impl Shared {
    fn send(&self, stream: Stream, line: String) {
        if let Some(backlog) = &self.backlog {
            backlog.add(line.len());
        }
        let _ = self.tx.send(OutputLine {
            node: self.node.clone(),
            stream,
            line,
        });
    }

    fn finish(&self) {
        let Some(streams) = &self.streams else {
            return;
        };
        let mut streams = streams.lock().unwrap_or_else(|p| p.into_inner());
        for (stream, lines) in [Stream::Stdout, Stream::Stderr]
            .into_iter()
            .zip(streams.iter_mut())
        {
            for line in lines.finish() {
                self.send(stream, line);
            }
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.finish();
    }
}

impl OutputSink {
    /// A sink for `node`'s lines, sent to `tx` as they are.
    pub fn new(node: Arc<str>, tx: mpsc::UnboundedSender<OutputLine>) -> Self {
        OutputSink {
            shared: Arc::new(Shared {
                node,
                tx,
                backlog: None,
                streams: None,
            }),
        }
    }

    /// A sink for `node`'s lines, sent to `tx` with every secret `redactor` knows masked.
    pub fn redacted(
        node: Arc<str>,
        tx: mpsc::UnboundedSender<OutputLine>,
        redactor: &Redactor,
    ) -> Self {
        if redactor.is_empty() {
            return OutputSink::new(node, tx);
        }
        let lines = || RedactedLines {
            redactor: StreamRedactor::new(redactor.clone()),
            partial: String::new(),
        };
        OutputSink {
            shared: Arc::new(Shared {
                node,
                tx,
                backlog: None,
                streams: Some(Mutex::new([lines(), lines()])),
            }),
        }
    }

    /// The same sink, with the bytes it sends counted in `backlog` (which the receiver
    /// drains), so that [`OutputSink::room`] can make a runner wait.
    pub fn counted(self, backlog: Arc<Backlog>) -> Self {
        let mut shared = Arc::try_unwrap(self.shared)
            .unwrap_or_else(|_| unreachable!("a sink is counted before it is cloned"));
        shared.backlog = Some(backlog);
        OutputSink {
            shared: Arc::new(shared),
        }
    }

    /// Waits while the lines sent wait to be written: a runner calls it between reads, so a
    /// command that prints faster than the logs are written waits on its pipe, and the run's
    /// memory does not grow with what it prints.
    pub async fn room(&self) {
        if let Some(backlog) = &self.shared.backlog {
            backlog.room().await;
        }
    }

    /// A sink that drops everything (tests, preflight).
    pub fn discard() -> Self {
        let (tx, _rx) = mpsc::unbounded_channel();
        OutputSink::new(Arc::from(""), tx)
    }

    /// Sends a line (dropped when nobody listens). A redacting sink may hold it back while
    /// it could be the start of a secret that goes on in the next lines.
    pub fn line(&self, stream: Stream, line: &str) {
        let Some(streams) = &self.shared.streams else {
            self.shared.send(stream, line.to_string());
            return;
        };
        let lines = {
            let mut streams = streams.lock().unwrap_or_else(|p| p.into_inner());
            streams[stream as usize].push(line)
        };
        for line in lines {
            self.shared.send(stream, line);
        }
    }

    /// The end of the attempt's output: sends what a redacting sink held back.
    pub fn finish(&self) {
        self.shared.finish();
    }
}

/// The most bytes of output lines on their way to the logs before runners wait.
pub const MAX_BACKLOG: usize = 4 * 1024 * 1024;

/// Bytes of output lines sent and not yet written (see [`OutputSink::room`]).
#[derive(Debug, Default)]
pub struct Backlog {
    bytes: std::sync::atomic::AtomicUsize,
    drained: tokio::sync::Notify,
}

impl Backlog {
    fn add(&self, bytes: usize) {
        self.bytes
            .fetch_add(bytes, std::sync::atomic::Ordering::AcqRel);
    }

    /// `bytes` of lines were written: runners waiting for room may go on.
    pub fn remove(&self, bytes: usize) {
        let before = self
            .bytes
            .fetch_sub(bytes, std::sync::atomic::Ordering::AcqRel);
        if before.saturating_sub(bytes) <= MAX_BACKLOG {
            self.drained.notify_waiters();
        }
    }

    async fn room(&self) {
        loop {
            let drained = self.drained.notified();
            if self.bytes.load(std::sync::atomic::Ordering::Acquire) <= MAX_BACKLOG {
                return;
            }
            drained.await;
        }
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
    /// Where the runner tells the process group of the command it started, for the journal.
    pub processes: ProcessReport,
    /// The process group of this node's previous attempt (a retry), or of its attempt in
    /// flight when an earlier controller died (a resume): the runner makes sure it is gone
    /// before it starts the command again.
    pub previous: Option<ProcessGroup>,
}

impl Attempt {
    /// A first attempt with nothing before it, whose process groups are not recorded.
    pub fn new(node: Arc<str>, number: u32, cancel: CancellationToken, output: OutputSink) -> Self {
        Attempt {
            node,
            number,
            cancel,
            output,
            processes: ProcessReport::ignored(),
            previous: None,
        }
    }
}

/// Where a runner reports the process group of an attempt's command, once it is known.
#[derive(Clone)]
pub struct ProcessReport(Option<Arc<dyn Fn(ProcessGroup) + Send + Sync>>);

impl ProcessReport {
    /// Reports to `to`.
    pub fn new(to: impl Fn(ProcessGroup) + Send + Sync + 'static) -> Self {
        ProcessReport(Some(Arc::new(to)))
    }

    /// Reports go nowhere (tests, preflight checks).
    pub fn ignored() -> Self {
        ProcessReport(None)
    }

    /// The command's process group is `group`.
    pub fn started(&self, group: ProcessGroup) {
        if let Some(report) = &self.0 {
            report(group);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn received(rx: &mut mpsc::UnboundedReceiver<OutputLine>) -> Vec<(Stream, String)> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|l| (l.stream, l.line))
            .collect()
    }

    #[test]
    fn a_redacting_sink_masks_a_secret_split_over_lines_per_stream() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let redactor = Redactor::new(["key-line-1\nkey-line-2".to_string()]);
        let sink = OutputSink::redacted(Arc::from("n"), tx, &redactor);
        sink.line(Stream::Stdout, "before key-line-1");
        sink.line(Stream::Stderr, "an error");
        assert_eq!(received(&mut rx), [(Stream::Stderr, "an error".into())]);
        sink.line(Stream::Stdout, "key-line-2 after");
        sink.line(Stream::Stdout, "key-line-1");
        assert_eq!(
            received(&mut rx),
            [(Stream::Stdout, "before *** after".into())]
        );
        sink.finish();
        assert_eq!(received(&mut rx), [(Stream::Stdout, "***".into())]);
    }

    #[tokio::test]
    async fn a_counted_sink_makes_its_runner_wait_until_the_lines_are_written() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(Backlog::default());
        let sink = OutputSink::new(Arc::from("n"), tx).counted(backlog.clone());
        let line = "x".repeat(1024 * 1024);
        for _ in 0..4 {
            sink.line(Stream::Stdout, &line);
        }
        sink.room().await; // 4 MiB: at the bound, not past it
        sink.line(Stream::Stdout, "one more");
        let waiting = tokio::spawn({
            let sink = sink.clone();
            async move { sink.room().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "past the bound a runner waits");
        // The receiver writes the first line: room again.
        let written = rx.try_recv().unwrap();
        backlog.remove(written.line.len());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the runner goes on once lines are written")
            .unwrap();
    }

    #[test]
    fn what_a_sink_held_back_is_sent_when_its_last_clone_is_dropped() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let redactor = Redactor::new(["key-line-1\nkey-line-2".to_string()]);
        let sink = OutputSink::redacted(Arc::from("n"), tx, &redactor);
        let clone = sink.clone();
        sink.line(Stream::Stdout, "key-line-1");
        drop(sink);
        assert_eq!(received(&mut rx), []);
        drop(clone);
        assert_eq!(received(&mut rx), [(Stream::Stdout, "***".into())]);
    }
}
