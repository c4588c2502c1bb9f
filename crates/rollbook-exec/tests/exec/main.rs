//! The executor's tests: one binary, so linking stays cheap.
//!
//! Most tests run real plans (YAML, validated and compiled by `rollbook-plan`) through the
//! real scheduler, with a [`ScriptedRunner`] in place of the shell: it looks the rendered
//! command up in a script (outcome per attempt, simulated duration) and records what it saw.
//! They run on tokio's paused clock (`start_paused = true`), so simulated minutes take no
//! real time and every instant is exact. The tests in `shell` run the real `ShellRunner`.

// Helpers of a test binary, not an API: the crate's `missing_docs` is for its library.
#![allow(missing_docs)]

mod cancel;
mod expect;
mod failures;
mod gates;
mod journal;
mod journal_cut;
mod retries;
mod scheduling;
mod shell;
mod undo;
mod values;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rollbook_exec::NodeKey;
use rollbook_exec::event::{Event, NodeStatus, RunStatus};
use rollbook_exec::executor::{Asker, Control, Execution, Options, Prior};
use rollbook_exec::journal::Journal;
use rollbook_exec::redact::Redactor;
use rollbook_exec::runner::{Attempt, BoxFuture, Outcome, Runner, Runners, Stream};
use rollbook_exec::runners::SleepRunner;
use rollbook_plan::SourceFile;
use rollbook_plan::action::Action;
use rollbook_plan::compile::{self, CompiledPlan, ParamInput, RunInfo};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

// ---------------------------------------------------------------------------------------------
// Plans

pub fn run_info() -> RunInfo {
    RunInfo {
        id: "20260101-000000-test".into(),
        reason: "testing".into(),
        user: "tester".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
    }
}

/// Validates and compiles a plan written inline (warnings are allowed, errors are not).
pub fn compile(text: &str) -> CompiledPlan {
    compile_with(text, &[])
}

/// Same, with `--param name=value` arguments.
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

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Asserts two durations are equal within the timer's resolution (a few milliseconds).
#[track_caller]
pub fn assert_about(actual: Duration, expected: Duration, what: &str) {
    let diff = actual.abs_diff(expected);
    assert!(
        diff <= Duration::from_millis(5),
        "{what}: expected about {expected:?}, got {actual:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The scripted runner

/// What one attempt of a scripted command answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Succeeds with this result document.
    Ok(Value),
    /// Fails with this message.
    Fail(String),
}

/// How a scripted command behaves: a reply per attempt (the last one repeats) and how long
/// each attempt takes.
#[derive(Debug, Clone)]
pub struct Behaviour {
    replies: Vec<Reply>,
    duration: Duration,
}

impl Behaviour {
    /// Succeeds with `{"exit_code": 0}`.
    pub fn ok() -> Self {
        Self::result(json!({ "exit_code": 0 }))
    }

    /// Succeeds with `result` as the result document.
    pub fn result(result: Value) -> Self {
        Behaviour {
            replies: vec![Reply::Ok(result)],
            duration: Duration::ZERO,
        }
    }

    /// Fails on every attempt.
    pub fn fail(message: &str) -> Self {
        Behaviour {
            replies: vec![Reply::Fail(message.to_string())],
            duration: Duration::ZERO,
        }
    }

    /// Fails `n` times, then succeeds with `{"exit_code": 0}`.
    pub fn fails_then_ok(n: usize) -> Self {
        let mut replies = vec![Reply::Fail("scripted failure".into()); n];
        replies.push(Reply::Ok(json!({ "exit_code": 0 })));
        Behaviour {
            replies,
            duration: Duration::ZERO,
        }
    }

    /// One reply per attempt, in order (the last one repeats).
    pub fn replies(replies: Vec<Reply>) -> Self {
        assert!(!replies.is_empty());
        Behaviour {
            replies,
            duration: Duration::ZERO,
        }
    }

    /// Each attempt takes `d` (simulated).
    pub fn lasting(mut self, d: Duration) -> Self {
        self.duration = d;
        self
    }

    fn reply(&self, attempt: u32) -> Reply {
        let i = (attempt.max(1) as usize - 1).min(self.replies.len() - 1);
        self.replies[i].clone()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Start,
    End,
}

/// One thing the scripted runner saw, in the order it saw them.
#[derive(Debug, Clone)]
pub struct Entry {
    pub mark: Mark,
    pub command: String,
    pub node: String,
    pub attempt: u32,
    pub at: Instant,
    /// For an `End`: the attempt stopped because its token was cancelled.
    pub cancelled: bool,
    /// For an `End`: the attempt succeeded.
    pub ok: bool,
}

struct Inner {
    /// (key, behaviour): a key matches a command equal to it or starting with it and a space.
    rules: Mutex<Vec<(String, Behaviour)>>,
    log: Mutex<Vec<Entry>>,
    t0: Instant,
}

/// A `shell` runner that runs nothing: it answers from a script and records what it saw.
/// Clones share the script and the record.
#[derive(Clone)]
pub struct ScriptedRunner {
    inner: Arc<Inner>,
}

impl Default for ScriptedRunner {
    fn default() -> Self {
        Self::new()
    }
}

impl ScriptedRunner {
    pub fn new() -> Self {
        ScriptedRunner {
            inner: Arc::new(Inner {
                rules: Mutex::new(Vec::new()),
                log: Mutex::new(Vec::new()),
                t0: Instant::now(),
            }),
        }
    }

    /// Scripts the commands equal to `key` or starting with `key ` (the longest key wins).
    /// Commands nobody scripted succeed at once with `{"exit_code": 0}`.
    pub fn on(self, key: impl Into<String>, behaviour: Behaviour) -> Self {
        self.inner
            .rules
            .lock()
            .unwrap()
            .push((key.into(), behaviour));
        self
    }

    fn behaviour(&self, command: &str) -> Behaviour {
        let rules = self.inner.rules.lock().unwrap();
        rules
            .iter()
            .filter(|(k, _)| {
                command == k
                    || command
                        .strip_prefix(k.as_str())
                        .is_some_and(|rest| rest.starts_with(' '))
            })
            .max_by_key(|(k, _)| k.len())
            .map_or_else(Behaviour::ok, |(_, b)| b.clone())
    }

    fn record(
        &self,
        mark: Mark,
        command: &str,
        node: &str,
        attempt: u32,
        cancelled: bool,
        ok: bool,
    ) {
        self.inner.log.lock().unwrap().push(Entry {
            mark,
            command: command.to_string(),
            node: node.to_string(),
            attempt,
            at: Instant::now(),
            cancelled,
            ok,
        });
    }

    /// Everything recorded so far, in order.
    pub fn log(&self) -> Vec<Entry> {
        self.inner.log.lock().unwrap().clone()
    }

    /// When the runner was created (the test's time zero).
    pub fn t0(&self) -> Instant {
        self.inner.t0
    }

    /// The commands of every attempt, in the order they started.
    pub fn commands(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|e| e.mark == Mark::Start)
            .map(|e| e.command)
            .collect()
    }

    pub fn ran(&self, command: &str) -> bool {
        self.commands().iter().any(|c| c == command)
    }

    /// How many attempts of `command` started.
    pub fn attempts(&self, command: &str) -> usize {
        self.commands().iter().filter(|c| *c == command).count()
    }

    fn position(&self, mark: Mark, command: &str, last: bool) -> Option<usize> {
        let log = self.log();
        let mut it = log
            .iter()
            .enumerate()
            .filter(|(_, e)| e.mark == mark && e.command == command);
        if last { it.next_back() } else { it.next() }.map(|(i, _)| i)
    }

    /// Position in the record of the first start of `command`.
    #[track_caller]
    pub fn start_seq(&self, command: &str) -> usize {
        self.position(Mark::Start, command, false)
            .unwrap_or_else(|| panic!("`{command}` never started"))
    }

    /// Position in the record of the last end of `command`.
    #[track_caller]
    pub fn end_seq(&self, command: &str) -> usize {
        self.position(Mark::End, command, true)
            .unwrap_or_else(|| panic!("`{command}` never ended"))
    }

    /// Start times (since t0) of every attempt of `command`.
    pub fn starts(&self, command: &str) -> Vec<Duration> {
        self.log()
            .iter()
            .filter(|e| e.mark == Mark::Start && e.command == command)
            .map(|e| e.at - self.t0())
            .collect()
    }

    /// When (since t0) `command` first started.
    #[track_caller]
    pub fn started_at(&self, command: &str) -> Duration {
        *self
            .starts(command)
            .first()
            .unwrap_or_else(|| panic!("`{command}` never started"))
    }

    /// The last end of `command`: when (since t0), and whether it was cancelled.
    #[track_caller]
    pub fn ended(&self, command: &str) -> (Duration, bool) {
        self.log()
            .iter()
            .rev()
            .find(|e| e.mark == Mark::End && e.command == command)
            .map(|e| (e.at - self.t0(), e.cancelled))
            .unwrap_or_else(|| panic!("`{command}` never ended"))
    }

    /// Most attempts of commands matching `pred` in flight at once.
    pub fn max_in_flight(&self, pred: impl Fn(&str) -> bool) -> usize {
        let mut now = 0usize;
        let mut max = 0usize;
        for e in self.log().iter().filter(|e| pred(&e.command)) {
            match e.mark {
                Mark::Start => {
                    now += 1;
                    max = max.max(now);
                }
                Mark::End => now -= 1,
            }
        }
        max
    }

    /// Spans of instances: for each key (`key(command)`), the position of its first start
    /// and of its last end in the record, in order of first start.
    pub fn instance_spans(
        &self,
        key: impl Fn(&str) -> Option<String>,
    ) -> Vec<(String, usize, usize)> {
        let mut spans: Vec<(String, usize, usize)> = Vec::new();
        for (i, e) in self.log().iter().enumerate() {
            let Some(k) = key(&e.command) else { continue };
            match spans.iter_mut().find(|(name, _, _)| *name == k) {
                Some(span) => {
                    if e.mark == Mark::End {
                        span.2 = i;
                    }
                }
                None => spans.push((k, i, i)),
            }
        }
        spans
    }

    /// Most instances in flight at once, an instance spanning from its first step's start to
    /// its last step's end.
    pub fn max_instances(&self, key: impl Fn(&str) -> Option<String>) -> usize {
        let spans = self.instance_spans(key);
        let mut points: Vec<(usize, i32)> = Vec::new();
        for (_, start, end) in &spans {
            points.push((*start, 1));
            points.push((*end, -1));
        }
        points.sort();
        let mut now = 0;
        let mut max = 0;
        for (_, d) in points {
            now += d;
            max = max.max(now);
        }
        max as usize
    }
}

impl Runner for ScriptedRunner {
    fn kind(&self) -> &'static str {
        "shell"
    }

    fn run<'a>(&'a self, action: &'a Action, attempt: Attempt) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Action::Shell(c) = action else {
                return Outcome::failed("the scripted runner got another kind of step");
            };
            let command = c
                .command
                .as_ref()
                .or(c.script.as_ref())
                .map(|t| t.shown.clone())
                .unwrap_or_default();
            let behaviour = self.behaviour(&command);
            let n = attempt.number;
            self.record(Mark::Start, &command, &attempt.node, n, false, false);
            attempt
                .output
                .line(Stream::Stdout, &format!("ran {command}"));
            let cancelled = tokio::select! {
                biased;
                _ = attempt.cancel.cancelled() => true,
                _ = tokio::time::sleep(behaviour.duration) => false,
            };
            if cancelled {
                self.record(Mark::End, &command, &attempt.node, n, true, false);
                return Outcome::failed("scripted: cancelled");
            }
            let reply = behaviour.reply(n);
            let ok = matches!(reply, Reply::Ok(_));
            self.record(Mark::End, &command, &attempt.node, n, false, ok);
            match reply {
                Reply::Ok(result) => Outcome::Succeeded { result },
                Reply::Fail(message) => Outcome::Failed {
                    message,
                    result: Some(json!({ "exit_code": 1 })),
                },
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// An in-memory journal

/// Keeps events and log lines in memory.
#[derive(Debug, Default)]
pub struct MemJournal {
    pub events: Vec<Event>,
    /// (phase, node, stream, line)
    pub logs: Vec<(String, String, Stream, String)>,
    /// Calls to `append` (one per turn of the loop).
    pub appends: usize,
}

impl Journal for MemJournal {
    fn append(&mut self, events: &[Event]) -> Result<(), rollbook_exec::Error> {
        self.appends += 1;
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

/// A node's `NodeFinished` events: (status, message, tolerated).
pub fn finished_of(
    events: &[Event],
    phase: &str,
    node: &str,
) -> Vec<(NodeStatus, Option<String>, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::NodeFinished {
                phase: p,
                node: n,
                status,
                message,
                tolerated,
                ..
            } if p == phase && n == node => Some((*status, message.clone(), *tolerated)),
            _ => None,
        })
        .collect()
}

/// A node's one end state.
#[track_caller]
pub fn status_of(events: &[Event], phase: &str, node: &str) -> NodeStatus {
    let f = finished_of(events, phase, node);
    assert_eq!(
        f.len(),
        1,
        "`{phase}/{node}` finished {} times: {f:?}",
        f.len()
    );
    f[0].0
}

/// A node's one end state with its message and `tolerated` flag.
#[track_caller]
pub fn finish_of(events: &[Event], phase: &str, node: &str) -> (NodeStatus, Option<String>, bool) {
    let f = finished_of(events, phase, node);
    assert_eq!(
        f.len(),
        1,
        "`{phase}/{node}` finished {} times: {f:?}",
        f.len()
    );
    f[0].clone()
}

/// The failures `run_finished` says the run went on after, as `phase/node: message`.
#[track_caller]
pub fn tolerated_at_end(events: &[Event]) -> Vec<String> {
    match events.last() {
        Some(Event::RunFinished { tolerated, .. }) => tolerated
            .iter()
            .map(|t| format!("{}/{}: {}", t.phase, t.node, t.message))
            .collect(),
        other => panic!("the journal does not end with run_finished: {other:?}"),
    }
}

/// Which phases started, in order.
pub fn phases_started(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::PhaseStarted { phase, .. } => Some(phase.to_string()),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Running

/// What a run gets besides the plan and its runners.
pub struct Setup {
    pub parallelism: usize,
    pub control: Control,
    pub prior: Prior,
    pub resumed: Option<Vec<String>>,
    pub secrets: Map<String, Value>,
    pub redactor: Redactor,
    /// `--no-undo`.
    pub no_undo: bool,
    /// Who answers before an irreversible step.
    pub asker: Option<Asker>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            parallelism: 64,
            control: Control::default(),
            prior: Prior::default(),
            resumed: None,
            secrets: Map::new(),
            redactor: Redactor::default(),
            no_undo: false,
            asker: None,
        }
    }
}

/// The runners of a scripted run: the scripted `shell`, and the real `sleep`.
pub fn runners(scripted: &ScriptedRunner) -> Runners {
    Runners::new().with(scripted.clone()).with(SleepRunner)
}

/// Runs `plan` to its end.
pub async fn execute(
    plan: &CompiledPlan,
    runners: &Runners,
    setup: Setup,
    journal: &mut dyn Journal,
) -> RunStatus {
    Execution {
        plan,
        runners,
        secrets: setup.secrets,
        redactor: setup.redactor,
        journal,
        observer: None,
        control: setup.control,
        options: Options {
            parallelism: setup.parallelism,
            no_undo: setup.no_undo,
            asker: setup.asker,
            ..Options::default()
        },
        prior: setup.prior,
        resumed: setup.resumed,
    }
    .run()
    .await
    .expect("the executor itself does not fail")
    .status
}

/// Runs `plan` with the scripted runner, `parallelism`, and an in-memory journal.
pub async fn run_scripted(
    plan: &CompiledPlan,
    scripted: &ScriptedRunner,
    parallelism: usize,
) -> (RunStatus, MemJournal) {
    let mut journal = MemJournal::default();
    let setup = Setup {
        parallelism,
        ..Setup::default()
    };
    let status = execute(plan, &runners(scripted), setup, &mut journal).await;
    (status, journal)
}

/// Every (phase, node) that got a `NodeFinished`, with how many.
pub fn finish_counts(events: &[Event]) -> HashMap<NodeKey, usize> {
    let mut counts = HashMap::new();
    for e in events {
        if let Event::NodeFinished { phase, node, .. } = e {
            *counts
                .entry(NodeKey::new(*phase, node.as_str()))
                .or_default() += 1;
        }
    }
    counts
}

/// The names of the nodes of a phase of a compiled plan (`steps`, `on_failure`, `finally`).
pub fn node_names(plan: &CompiledPlan, phase: &str) -> HashSet<String> {
    plan.phases
        .iter()
        .filter(|p| p.kind.as_str() == phase)
        .flat_map(|p| p.graph.node_indices().map(|n| p.graph[n].name.clone()))
        .collect()
}
