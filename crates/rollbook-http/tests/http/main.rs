//! The HTTP runner's tests: one binary, so linking stays cheap.
//!
//! Every test talks to a real HTTP server (axum, or axum behind rustls) that it starts on
//! `127.0.0.1:0`, so the runner is seen working against real sockets, real redirects and real
//! certificates. Tests that are about the runner alone call it directly ([`attempt`]); tests
//! that are about how it fits the executor (retries, timeouts, gates, captures, redaction)
//! run a compiled plan through `rollbook_exec::Execution` with the real [`HttpRunner`]. They
//! run on real time: the durations are kept short (tens to hundreds of milliseconds).

// Helpers of a test binary, not an API: the crate's `missing_docs` is for its library.
#![allow(missing_docs)]

mod check;
mod drain;
mod expectations;
mod limits;
mod plans;
mod secrets;
mod timeouts;
mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use rollbook_exec::event::{Event, RunStatus};
use rollbook_exec::executor::{Control, Execution, Options, Prior};
use rollbook_exec::journal::Journal;
use rollbook_exec::redact::Redactor;
use rollbook_exec::runner::{Attempt, Outcome, OutputSink, Runner, Runners, Stream};
use rollbook_http::HttpRunner;
use rollbook_plan::SourceFile;
use rollbook_plan::action::{Action, HttpRequest, Tls};
use rollbook_plan::compile::{self, CompiledPlan, ParamInput, RunInfo};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// Servers

/// A server running on a loopback port until it is dropped.
pub struct Server {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` over plain HTTP on `127.0.0.1:0`.
pub async fn serve(router: Router) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Server { addr, task }
}

/// A loopback port that refuses connections, reserved while the socket lives: bound, never
/// listening (a port found by binding and closing a listener could be taken by another test
/// in the meantime).
pub fn closed_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// Counts the requests a server saw. Clones share the count.
#[derive(Clone, Default)]
pub struct Hits(Arc<AtomicUsize>);

impl Hits {
    /// Counts one request; returns how many there were before it.
    pub fn hit(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst)
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------------------------
// The runner alone

/// A GET of `url` with no expectations and no TLS settings.
pub fn get(url: &str) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        url: url.into(),
        address: None,
        headers: Vec::new(),
        body: None,
        expect_status: None,
        expect_body_contains: None,
        expect_jq: None,
        tls: Tls::default(),
    }
}

/// What one attempt came to, and the lines it wrote.
pub struct Tried {
    pub outcome: Outcome,
    pub lines: Vec<(Stream, String)>,
    pub elapsed: Duration,
}

impl Tried {
    #[track_caller]
    pub fn result(&self) -> &Value {
        self.outcome.result().expect("a result document")
    }

    #[track_caller]
    pub fn message(&self) -> &str {
        match &self.outcome {
            Outcome::Failed { message, .. } => message,
            Outcome::Succeeded { result } => panic!("expected a failure, it succeeded: {result}"),
        }
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Value {
        match &self.outcome {
            Outcome::Succeeded { result } => result,
            Outcome::Failed { message, .. } => panic!("expected success, it failed: {message}"),
        }
    }

    pub fn text(&self) -> String {
        self.lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Runs one attempt of `req` with `runner`, cancelled by `cancel`.
pub async fn attempt_with(
    runner: &HttpRunner,
    req: HttpRequest,
    cancel: CancellationToken,
) -> Tried {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let action = Action::Http(req);
    let started = Instant::now();
    let outcome = runner
        .run(
            &action,
            Attempt::new(
                Arc::from("test"),
                1,
                cancel,
                OutputSink::new(Arc::from("test"), tx),
            ),
        )
        .await;
    let elapsed = started.elapsed();
    let mut lines = Vec::new();
    while let Ok(l) = rx.try_recv() {
        lines.push((l.stream, l.line));
    }
    Tried {
        outcome,
        lines,
        elapsed,
    }
}

/// Runs one attempt of `req` with a new runner.
pub async fn attempt(req: HttpRequest) -> Tried {
    attempt_with(&HttpRunner::new(), req, CancellationToken::new()).await
}

// ---------------------------------------------------------------------------------------------
// Plans through the executor

pub fn run_info() -> RunInfo {
    RunInfo {
        id: "20260101-000000-test".into(),
        reason: "testing".into(),
        user: "tester".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
    }
}

/// Validates and compiles a plan written inline, with `--param name=value` arguments.
pub fn compile_with(text: &str, args: &[&str]) -> CompiledPlan {
    let checked = rollbook_plan::check(SourceFile::new("test.yaml", text), None);
    let errors: Vec<_> = checked
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    assert!(errors.is_empty(), "the test plan is invalid: {errors:#?}");
    let plan = checked.plan.expect("a plan");
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let params = compile::bind_params(&plan, &ParamInput::from_args(&args).unwrap()).unwrap();
    compile::compile(&plan, params, &BTreeMap::new(), &run_info()).unwrap()
}

/// Keeps events and log lines in memory.
#[derive(Debug, Default)]
pub struct MemJournal {
    pub events: Vec<Event>,
    /// (phase, node, stream, line)
    pub logs: Vec<(String, String, Stream, String)>,
}

impl Journal for MemJournal {
    fn append(&mut self, events: &[Event]) -> Result<(), rollbook_exec::Error> {
        self.events.extend_from_slice(events);
        Ok(())
    }

    fn log(
        &mut self,
        phase: &str,
        node: &str,
        stream: Stream,
        line: &str,
    ) -> Result<(), rollbook_exec::Error> {
        self.logs
            .push((phase.into(), node.into(), stream, line.into()));
        Ok(())
    }
}

impl MemJournal {
    /// Every event, one JSON document per line, as the file journal would write them.
    pub fn events_json(&self) -> String {
        self.events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The log lines of one node.
    pub fn log_of(&self, node: &str) -> Vec<String> {
        self.logs
            .iter()
            .filter(|(_, n, _, _)| n == node)
            .map(|(_, _, _, l)| l.clone())
            .collect()
    }

    /// The messages of a node's finished attempts, in order (`None` for a success).
    pub fn attempt_messages(&self, node: &str) -> Vec<Option<String>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::AttemptFinished {
                    node: n, message, ..
                } if n == node => Some(message.clone()),
                _ => None,
            })
            .collect()
    }

    /// A node's `NodeFinished`: (status, outputs, message).
    #[track_caller]
    pub fn finished(
        &self,
        node: &str,
    ) -> (rollbook_exec::NodeStatus, Option<Value>, Option<String>) {
        self.events
            .iter()
            .find_map(|e| match e {
                Event::NodeFinished {
                    node: n,
                    status,
                    outputs,
                    message,
                    ..
                } if n == node => Some((*status, outputs.clone(), message.clone())),
                _ => None,
            })
            .unwrap_or_else(|| panic!("`{node}` never finished: {:#?}", self.events))
    }
}

/// How a plan run went.
pub struct Ran {
    pub status: RunStatus,
    pub journal: MemJournal,
    pub elapsed: Duration,
}

/// Runs a plan with the real HTTP runner (and nothing else), params from `args`, the given
/// secret values (redacted everywhere, as the CLI does), and an in-memory journal.
pub async fn run_plan(text: &str, args: &[&str], secrets: &[(&str, &str)]) -> Ran {
    let plan = compile_with(text, args);
    let runners = Runners::new().with(HttpRunner::new());
    let mut values = Map::new();
    for (k, v) in secrets {
        values.insert(k.to_string(), Value::String(v.to_string()));
    }
    let redactor = Redactor::new(secrets.iter().map(|(_, v)| v.to_string()));
    let mut journal = MemJournal::default();
    let started = Instant::now();
    let outcome = Execution {
        plan: &plan,
        runners: &runners,
        secrets: values,
        redactor,
        journal: &mut journal,
        observer: None,
        control: Control::default(),
        options: Options {
            parallelism: 16,
            ..Options::default()
        },
        prior: Prior::default(),
        resumed: None,
    }
    .run()
    .await
    .expect("the executor itself does not fail");
    Ran {
        status: outcome.status,
        journal,
        elapsed: started.elapsed(),
    }
}
