//! The scheduler. One loop owns all of a run's state; attempts run as tokio tasks and report
//! back on a channel; timers (retry delays, gate intervals) are tasks that send a wake-up.
//!
//! A node's life: pending → ready (its `needs` are satisfied) → running (attempt n) →
//! succeeded | failed | skipped | cancelled, with retries and `until` gates in between.
//! Every state change is journaled before the loop goes on; all changes of one turn of the
//! loop share one sync.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use rollbook_plan::compile::{
    CompiledPlan, FanOut, InstanceRef, Node, PhaseKind, expand_deferred, undo_node,
};
use rollbook_plan::jq::{self, Program};
use rollbook_plan::model::OnFailure;
use rollbook_plan::render::{RunState, node_context, render_action};
use rollbook_plan::template::{Renderer, eval_single};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Error;

mod attempt;
mod failure;
pub mod observe;
mod phase;
mod undo;
use crate::event::{Controller, Event, NodeStatus, ProcessGroup, RunStatus, Timestamp, Tolerated};
use crate::history::NodeKey;
use crate::journal::Journal;
use crate::redact::Redactor;
use crate::runner::{Attempt, Backlog, Outcome, OutputLine, OutputSink, ProcessReport, Runners};
use crate::runners::{Answer, Prompter};

/// Run-wide settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Most attempts in flight at once, over the whole run.
    pub parallelism: usize,
    /// The process running the run and its lock, journaled as `controller_started`.
    pub controller: Option<Controller>,
    /// `--no-undo`: a scope that fails is not undone (the journal names what was not).
    pub no_undo: bool,
    /// Who is asked for the plan's confirmation before the first `irreversible: true` step.
    /// Without one, nobody can be asked: the run is cancelled before that step.
    pub asker: Option<Asker>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            parallelism: 64,
            controller: None,
            no_undo: false,
            asker: None,
        }
    }
}

/// The person (or `--yes`) asked before an irreversible step.
#[derive(Clone)]
pub struct Asker(pub Arc<dyn Prompter>);

impl std::fmt::Debug for Asker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Asker")
    }
}

/// How a run is stopped from outside. `stop` (the first Ctrl-C): start nothing new, let
/// attempts in flight finish, then run `finally`. `abort` (the second): cancel them too.
#[derive(Debug, Clone, Default)]
pub struct Control {
    /// Start nothing new.
    pub stop: CancellationToken,
    /// Cancel the attempts in flight too.
    pub abort: CancellationToken,
    /// Why the run was stopped, when it was not a person: journaled with `cancelling`.
    reason: Arc<std::sync::OnceLock<String>>,
}

impl Control {
    /// Stops the run (`stop`) and says why in the journal: a lease that lapsed.
    pub fn stop_because(&self, reason: String) {
        let _ = self.reason.set(reason);
        self.stop.cancel();
    }

    /// Why the run was stopped, if it was said.
    pub fn reason(&self) -> Option<String> {
        self.reason.get().cloned()
    }
}

/// What a resumed run already knows, from its journal.
#[derive(Debug, Clone, Default)]
pub struct Prior {
    /// Nodes that succeeded or were skipped, with their outputs.
    pub done: HashMap<NodeKey, (NodeStatus, Option<Value>)>,
    /// Nodes whose outcome was unknown after a crash that a person said not to run again
    /// (`resume: ask`), with why: they count as skipped.
    pub marked: HashMap<NodeKey, String>,
    /// The process groups of attempts in flight when an earlier controller stopped: a runner
    /// makes sure such a group is gone before it runs the node's command again.
    pub groups: HashMap<NodeKey, ProcessGroup>,
    /// Where each done node stands in the journal: their undos run in the reverse order.
    pub order: HashMap<NodeKey, usize>,
}

/// What the display and `--events json` see: the journal's events and the steps' output.
#[derive(Debug, Clone)]
pub enum Observed {
    /// An event, after the journal has it.
    Event(Event),
    /// A line a step wrote (redacted).
    Output {
        /// The phase of the node that wrote it.
        phase: PhaseKind,
        /// The line.
        line: OutputLine,
    },
    /// Output lines dropped because the watcher was behind (they are in the steps' logs).
    Skipped {
        /// How many.
        lines: usize,
    },
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// How it ended.
    pub status: RunStatus,
    /// The failures it went on after, in the order they ended.
    pub tolerated: Vec<Tolerated>,
}

/// One run of a compiled plan.
pub struct Execution<'a> {
    /// The plan, compiled with its params.
    pub plan: &'a CompiledPlan,
    /// A runner for each kind of step the plan has.
    pub runners: &'a Runners,
    /// Secret values by name, for templates.
    pub secrets: Map<String, Value>,
    /// Hides the secrets' values in everything the run writes.
    pub redactor: Redactor,
    /// Where the events go (synced before the run goes on).
    pub journal: &'a mut dyn Journal,
    /// The live display or `--events json`, if any.
    pub observer: Option<observe::Observer>,
    /// Ctrl-C.
    pub control: Control,
    /// Run-wide settings.
    pub options: Options,
    /// What a resumed run already did.
    pub prior: Prior,
    /// `Some(unknown nodes)` when this is a resume.
    pub resumed: Option<Vec<String>>,
}

/// Messages from attempt tasks and timers to the loop.
enum Msg {
    Done {
        idx: NodeIndex,
        attempt: u32,
        outcome: Outcome,
        elapsed: Duration,
    },
    Wake {
        idx: NodeIndex,
    },
    /// A runner told the process group of an attempt's command.
    Group {
        idx: NodeIndex,
        attempt: u32,
        group: ProcessGroup,
    },
    /// The answer to the confirmation asked before an irreversible step.
    Confirmed {
        idx: NodeIndex,
        answer: Result<Answer, String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Ready,
    Running,
    /// Waiting for a retry delay or the next poll of a gate.
    Waiting,
    /// Its next attempt is due, as soon as the parallelism allows.
    Due,
    /// A run-time `for_each` that has been expanded: done when its instances are.
    Expanded,
    /// An irreversible step waiting for the run's confirmation.
    Confirming,
    Done(NodeStatus),
}

struct NodeState {
    state: State,
    /// Needs not yet satisfied.
    waiting_on: usize,
    attempt: u32,
    /// When the first attempt started (gate deadlines count from here).
    first_start: Option<Instant>,
    outputs: Option<Value>,
    /// Failed, but the run goes on (`on_failure: continue`, or a tolerated rollout failure).
    tolerated: bool,
    /// Its dependants have been told it is satisfied.
    released: bool,
    last_message: Option<String>,
    /// The process group of its last attempt, as its runner told it.
    group: Option<ProcessGroup>,
    /// When it succeeded, in the order nodes did (undos run in the reverse order).
    done_seq: u64,
}

impl NodeState {
    fn new() -> Self {
        NodeState {
            state: State::Pending,
            waiting_on: 0,
            attempt: 0,
            first_start: None,
            outputs: None,
            tolerated: false,
            released: false,
            last_message: None,
            group: None,
            done_seq: 0,
        }
    }
}

/// The state of one phase while it runs.
struct PhaseRun {
    kind: PhaseKind,
    run_status: RunStatus,
    /// `run.tolerated` for this phase's templates: the failures tolerated before it began.
    run_tolerated: Value,
    graph: DiGraph<Node, ()>,
    fan_outs: Vec<FanOut>,
    nodes: Vec<NodeState>,
    ready: BTreeSet<usize>,
    /// Nodes whose next attempt (retry, gate poll) is due; they go before fresh ready nodes.
    due: std::collections::VecDeque<NodeIndex>,
    /// Nodes of each fan-out instance.
    members: HashMap<InstanceRef, Vec<NodeIndex>>,
    /// Non-terminal nodes left in each instance.
    remaining: HashMap<InstanceRef, usize>,
    started: HashSet<InstanceRef>,
    failed_instances: HashSet<InstanceRef>,
    in_flight: Vec<usize>,
    failures: Vec<u64>,
    broken: Vec<bool>,
    running: usize,
    waiting: usize,
    /// No new work starts (a failure that is not tolerated, or Ctrl-C).
    halted: bool,
    failed: bool,
    cancelled: bool,
    hard: bool,
    /// Undo (`undo.rs`): failed instances whose undos are not planned yet (they wait for
    /// their steps in flight).
    undo_pending: Vec<InstanceRef>,
    /// The run's own undo (top-level steps, after a halt) was planned.
    undo_run_planned: bool,
    /// Nodes whose undo is planned (or skipped with `--no-undo`): never undone twice.
    undone: HashSet<NodeIndex>,
    /// Undo nodes: the node each undoes, and its chain.
    undo_of: HashMap<NodeIndex, (NodeIndex, usize)>,
    /// The undos of each planned scope not started yet, in the order they run.
    chains: Vec<std::collections::VecDeque<NodeIndex>>,
    /// Undo attempts to start (even when the phase is halted, unless it was cancelled).
    undo_ready: std::collections::VecDeque<NodeIndex>,
    /// Nodes that succeeded so far (for `done_seq`).
    completed: u64,
    /// Stops a question before an irreversible step (the phase's stop).
    stop: CancellationToken,
}

/// An attempt ready to run.
struct Launch {
    idx: NodeIndex,
    runner: Arc<dyn crate::runner::Runner>,
    action: rollbook_plan::action::Action,
    attempt: u32,
    node: Arc<str>,
    timeout: Option<Duration>,
    /// The process group of the node's attempt before this one, if it had one.
    previous: Option<ProcessGroup>,
}

/// A tiny xorshift generator for retry jitter (no need for cryptographic randomness).
struct Jitter(u64);

impl Jitter {
    fn next(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The loop's tools, shared by the phases.
struct Engine<'e, 'a> {
    exec: &'e mut Execution<'a>,
    renderer: Renderer,
    programs: HashMap<String, Rc<Program>>,
    batch: Vec<Event>,
    /// Attempts prepared this turn, started together after one journal sync.
    launches: Vec<Launch>,
    jitter: Jitter,
    /// Failures the run went on after (`on_failure: continue`, failed instances within
    /// `max_failures`): they neither fail the run nor trigger `on_failure`.
    tolerated: Vec<Tolerated>,
    tx: mpsc::UnboundedSender<Msg>,
    out_tx: mpsc::UnboundedSender<OutputLine>,
    /// The output bytes sent by runners and not yet written to the logs.
    backlog: Arc<Backlog>,
    /// An irreversible step waits for the run's confirmation.
    asking: bool,
    /// The run's confirmation was given again before an irreversible step (once per process).
    irreversible_confirmed: bool,
}

impl Execution<'_> {
    /// Runs the plan: the main graph, then `on_failure` if it failed, then `finally`.
    pub async fn run(mut self) -> Result<RunOutcome, Error> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        let mut engine = Engine {
            exec: &mut self,
            renderer: Renderer::new(),
            programs: HashMap::new(),
            batch: Vec::new(),
            launches: Vec::new(),
            jitter: Jitter(seed),
            tolerated: Vec::new(),
            tx,
            out_tx,
            backlog: Arc::default(),
            asking: false,
            irreversible_confirmed: false,
        };
        match engine.exec.resumed.clone() {
            Some(unknown) => engine.emit(Event::RunResumed {
                at: Timestamp::now(),
                unknown,
            }),
            None => {
                let plan = engine.exec.plan;
                let run_id = plan.context["run"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                engine.emit(Event::RunStarted {
                    at: Timestamp::now(),
                    run_id,
                    plan: plan.name.clone(),
                });
            }
        }
        if let Some(controller) = engine.exec.options.controller.clone() {
            engine.emit(Event::ControllerStarted {
                at: Timestamp::now(),
                controller,
            });
        }
        engine.flush()?;
        let main = engine
            .phase(PhaseKind::Main, RunStatus::Running, &mut rx, &mut out_rx)
            .await?;
        // Only a failure that halted the main graph fails the run and starts `on_failure`;
        // tolerated failures are reported (`run.tolerated`, `run_finished`), not counted.
        let mut status = main;
        if main == RunStatus::Failed {
            engine
                .phase(
                    PhaseKind::OnFailure,
                    RunStatus::Failed,
                    &mut rx,
                    &mut out_rx,
                )
                .await?;
        }
        let fin = engine
            .phase(PhaseKind::Finally, main, &mut rx, &mut out_rx)
            .await?;
        if fin == RunStatus::Failed && status == RunStatus::Succeeded {
            status = RunStatus::Failed;
        }
        let tolerated = engine.tolerated.clone();
        if let Some(obs) = &mut engine.exec.observer {
            obs.finish();
        }
        engine.emit(Event::RunFinished {
            at: Timestamp::now(),
            status,
            tolerated: tolerated.clone(),
        });
        engine.flush()?;
        Ok(RunOutcome { status, tolerated })
    }
}

impl Engine<'_, '_> {
    fn emit(&mut self, event: Event) {
        self.batch.push(event);
    }

    /// Journals the events of this turn (one sync), then shows them. Every event is
    /// redacted here, on its one way out.
    fn flush(&mut self) -> Result<(), Error> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let events: Vec<Event> = std::mem::take(&mut self.batch)
            .into_iter()
            .map(|e| self.exec.redactor.redact_event(e))
            .collect();
        self.exec.journal.append(&events)?;
        if let Some(obs) = &self.exec.observer {
            for e in events {
                obs.event(e);
            }
        }
        Ok(())
    }

    fn program(&mut self, code: &str) -> Result<Rc<Program>, String> {
        if let Some(p) = self.programs.get(code) {
            return Ok(p.clone());
        }
        let p = Rc::new(jq::compile(code).map_err(|e| e.message)?);
        self.programs.insert(code.to_string(), p.clone());
        Ok(p)
    }

    async fn phase(
        &mut self,
        kind: PhaseKind,
        run_status: RunStatus,
        rx: &mut mpsc::UnboundedReceiver<Msg>,
        out_rx: &mut mpsc::UnboundedReceiver<OutputLine>,
    ) -> Result<RunStatus, Error> {
        let plan = self.exec.plan;
        let Some(phase) = plan.phases.iter().find(|p| p.kind == kind) else {
            return Ok(RunStatus::Succeeded);
        };
        if phase.graph.node_count() == 0 {
            return Ok(RunStatus::Succeeded);
        }
        let mut run = PhaseRun::new(
            kind,
            run_status,
            phase.graph.clone(),
            phase.fan_outs.clone(),
        );
        run.run_tolerated = serde_json::to_value(&self.tolerated).unwrap_or_default();
        run.stop = if kind == PhaseKind::Main {
            self.exec.control.stop.clone()
        } else {
            CancellationToken::new()
        };
        self.emit(Event::PhaseStarted {
            at: Timestamp::now(),
            phase: run.kind,
            nodes: run.graph.node_count(),
        });
        // A stop before this phase (Ctrl-C during the main graph) does not stop cleanup.
        let control = if kind == PhaseKind::Main {
            self.exec.control.clone()
        } else {
            Control::default()
        };
        let all: Vec<NodeIndex> = run.graph.node_indices().collect();
        self.apply_prior(&mut run, &all);
        for n in all {
            if run.nodes[n.index()].state == State::Pending && run.nodes[n.index()].waiting_on == 0
            {
                run.nodes[n.index()].state = State::Ready;
                run.ready.insert(n.index());
            }
        }
        self.drive(&mut run, &control, rx, out_rx).await?;
        let status = self.close(&mut run);
        self.emit(Event::PhaseFinished {
            at: Timestamp::now(),
            phase: run.kind,
            status,
        });
        self.flush()?;
        Ok(status)
    }

    /// The loop: starts what can start, then handles the next message (an attempt done, a
    /// timer, a line of output, Ctrl-C), until nothing runs or waits.
    async fn drive(
        &mut self,
        run: &mut PhaseRun,
        control: &Control,
        rx: &mut mpsc::UnboundedReceiver<Msg>,
        out_rx: &mut mpsc::UnboundedReceiver<OutputLine>,
    ) -> Result<(), Error> {
        let Control { stop, abort, .. } = control;
        loop {
            // A stop that came while the last turn was handled (a lease that lapsed between
            // two messages) is seen before anything new is started.
            if stop.is_cancelled() && !run.cancelled {
                self.halt(run, true);
                let reason = control.reason();
                self.emit(Event::Cancelling {
                    at: Timestamp::now(),
                    hard: false,
                    reason,
                });
            }
            self.plan_undos(run);
            self.schedule(run);
            self.launch(abort)?;
            self.flush()?;
            if run.running == 0 && run.waiting == 0 {
                break;
            }
            tokio::select! {
                biased;
                _ = abort.cancelled(), if !run.hard => {
                    run.hard = true;
                    self.halt(run, true);
                    self.emit(Event::Cancelling { at: Timestamp::now(), hard: true, reason: None });
                }
                _ = stop.cancelled(), if !run.cancelled => {
                    self.halt(run, true);
                    let reason = control.reason();
                    self.emit(Event::Cancelling { at: Timestamp::now(), hard: false, reason });
                }
                Some(line) = out_rx.recv() => self.output(run, line)?,
                Some(msg) = rx.recv() => match msg {
                    Msg::Done { idx, attempt, outcome, elapsed } => {
                        self.attempt_done(run, idx, attempt, outcome, elapsed);
                    }
                    Msg::Group { idx, attempt, group } => self.process_group(run, idx, attempt, group),
                    Msg::Confirmed { idx, answer } => self.confirmed(run, idx, answer),
                    Msg::Wake { idx } => {
                        if run.nodes[idx.index()].state == State::Waiting {
                            // Retries and gate polls start under the same parallelism cap.
                            run.nodes[idx.index()].state = State::Due;
                            if run.undo_of.contains_key(&idx) {
                                run.undo_ready.push_front(idx);
                            } else {
                                run.due.push_back(idx);
                            }
                        }
                    }
                },
            }
        }
        while let Ok(line) = out_rx.try_recv() {
            self.output(run, line)?;
        }
        Ok(())
    }

    /// How the phase ended; what never started is finished as cancelled, saying so, for
    /// `show` and the report (and is run by `resume`).
    fn close(&mut self, run: &mut PhaseRun) -> RunStatus {
        let complete = run.nodes.iter().all(|n| matches!(n.state, State::Done(_)));
        let status = if run.cancelled {
            RunStatus::Cancelled
        } else if run.failed || !complete {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        let why = if run.cancelled {
            "not started: the run was cancelled"
        } else {
            "not started: the run stopped"
        };
        let unstarted: Vec<NodeIndex> = run
            .graph
            .node_indices()
            .filter(|n| !matches!(run.nodes[n.index()].state, State::Done(_)))
            .collect();
        for n in unstarted {
            run.nodes[n.index()].state = State::Pending;
            self.finish(run, n, NodeStatus::Cancelled, None, Some(why.into()));
        }
        status
    }

    /// A line of a step's output, redacted already by its sink ([`OutputSink::redacted`]).
    fn output(&mut self, run: &PhaseRun, line: OutputLine) -> Result<(), Error> {
        self.exec
            .journal
            .log(run.kind.as_str(), &line.node, line.stream, &line.line)?;
        self.backlog.remove(line.line.len());
        if let Some(obs) = &mut self.exec.observer {
            obs.output(run.kind, line);
        }
        Ok(())
    }

    /// An attempt's command has a process group: journaled (with the turn's other changes),
    /// and handed to the node's next attempt.
    fn process_group(
        &mut self,
        run: &mut PhaseRun,
        idx: NodeIndex,
        attempt: u32,
        group: ProcessGroup,
    ) {
        self.emit(Event::AttemptProcess {
            at: Timestamp::now(),
            phase: run.kind,
            node: run.graph[idx].name.clone(),
            attempt,
            group: group.clone(),
        });
        run.nodes[idx.index()].group = Some(group);
    }

    /// Marks nodes that a resumed run already finished.
    fn apply_prior(&mut self, run: &mut PhaseRun, nodes: &[NodeIndex]) {
        // In journal order, so that their undos run in the reverse of it.
        let mut nodes = nodes.to_vec();
        nodes.sort_by_key(|&n| {
            let key = NodeKey::new(run.kind, run.graph[n].name.as_str());
            self.exec
                .prior
                .order
                .get(&key)
                .copied()
                .unwrap_or(usize::MAX)
        });
        for n in nodes {
            let key = NodeKey::new(run.kind, run.graph[n].name.as_str());
            if run.graph[n].deferred.is_some() {
                continue;
            }
            if let Some((status, outputs)) = self.exec.prior.done.get(&key).cloned() {
                run.nodes[n.index()].outputs = outputs;
                self.settle(run, n, status);
            } else if let Some(why) = self.exec.prior.marked.get(&key).cloned() {
                self.finish(run, n, NodeStatus::Skipped, Some(json!({})), Some(why));
            }
        }
    }

    /// Stops new work: nodes waiting for a retry or a gate poll are cancelled.
    fn halt(&mut self, run: &mut PhaseRun, cancelled: bool) {
        run.halted = true;
        run.cancelled |= cancelled;
        run.due.clear();
        // Undos waiting for a retry go on after a failure (they are what a halt runs).
        let waiting: Vec<NodeIndex> = run
            .graph
            .node_indices()
            .filter(|n| matches!(run.nodes[n.index()].state, State::Waiting | State::Due))
            .filter(|n| cancelled || !run.undo_of.contains_key(n))
            .collect();
        for n in waiting {
            run.waiting -= 1;
            let why = if cancelled {
                "cancelled"
            } else {
                "the run is stopping"
            };
            self.finish(run, n, NodeStatus::Cancelled, None, Some(why.into()));
        }
    }

    /// Starts what can start: ready nodes in declared order, within the limits.
    fn schedule(&mut self, run: &mut PhaseRun) {
        let parallelism = self.exec.options.parallelism.max(1);
        // Undos start first, also in a halted phase (that is when the run's own run); a
        // cancelled run undoes nothing more.
        while !run.cancelled
            && run.running < parallelism
            && let Some(idx) = run.undo_ready.pop_front()
        {
            if run.nodes[idx.index()].state == State::Due {
                run.waiting -= 1;
            }
            self.start_attempt(run, idx);
        }
        if run.halted {
            return;
        }
        while run.running < parallelism
            && let Some(idx) = run.due.pop_front()
        {
            run.waiting -= 1;
            self.start_attempt(run, idx);
        }
        let mut i = 0;
        while let Some(&n) = run.ready.range(i..).next() {
            i = n + 1;
            if run.running >= parallelism || run.halted {
                break;
            }
            let idx = NodeIndex::new(n);
            if let Some(r) = run.in_failed_instance(idx) {
                run.ready.remove(&n);
                let name = run.instance_name(r);
                self.finish(
                    run,
                    idx,
                    NodeStatus::Cancelled,
                    None,
                    Some(format!("not run: {name} failed")),
                );
                continue;
            }
            if !run.instance_room(idx) {
                continue;
            }
            // One confirmation at a time: other irreversible steps wait for its answer.
            if self.asking && run.graph[idx].step.is_irreversible() {
                continue;
            }
            run.ready.remove(&n);
            self.begin(run, idx);
        }
    }

    /// A ready node starts: `when`, expansion, or its first attempt.
    fn begin(&mut self, run: &mut PhaseRun, idx: NodeIndex) {
        let ctx = self.context(run, idx);
        if let Some(d) = run.graph[idx].deferred.clone() {
            // Its `when` is evaluated by each instance, with its item.
            self.mark_started(run, idx);
            self.expand(run, idx, &d.for_each, &ctx);
            return;
        }
        let conditions: Vec<String> = run.graph[idx].conditions().map(str::to_string).collect();
        for when in conditions {
            match self.condition(&when, &Value::Null, &ctx) {
                Ok(true) => {}
                Ok(false) => {
                    self.mark_started(run, idx);
                    let message = format!("`{when}` is false");
                    self.finish(run, idx, NodeStatus::Skipped, None, Some(message));
                    return;
                }
                Err(e) => {
                    self.mark_started(run, idx);
                    self.fail(run, idx, format!("`when` failed: {e}"));
                    return;
                }
            }
        }
        if run.graph[idx].step.is_irreversible() && !self.irreversible_confirmed {
            self.ask_irreversible(run, idx);
            return;
        }
        self.start_attempt(run, idx);
    }

    fn mark_started(&mut self, run: &mut PhaseRun, idx: NodeIndex) {
        for r in run.graph[idx].instances.clone() {
            if run.started.insert(r) {
                run.in_flight[r.fan_out] += 1;
            }
        }
    }

    fn context(&self, run: &PhaseRun, idx: NodeIndex) -> Value {
        let outputs = |n: NodeIndex| run.nodes[n.index()].outputs.clone();
        node_context(
            self.exec.plan,
            &run.graph,
            &run.graph[idx],
            &self.exec.secrets,
            RunState {
                status: run.run_status.as_str(),
                tolerated: &run.run_tolerated,
            },
            &outputs,
        )
    }

    fn jq_vars(ctx: &Value) -> [Value; 5] {
        [
            ctx["params"].clone(),
            ctx.get("item").cloned().unwrap_or(Value::Null),
            ctx.get("index").cloned().unwrap_or(Value::Null),
            ctx["steps"].clone(),
            ctx["run"].clone(),
        ]
    }

    fn condition(&mut self, code: &str, input: &Value, ctx: &Value) -> Result<bool, String> {
        let p = self.program(code)?;
        let vars = Self::jq_vars(ctx);
        p.holds(input, [&vars[0], &vars[1], &vars[2], &vars[3], &vars[4]])
    }

    /// Expands a run-time `for_each` into its instances.
    fn expand(&mut self, run: &mut PhaseRun, idx: NodeIndex, for_each: &str, ctx: &Value) {
        let items = match eval_single(for_each, ctx) {
            Ok(Some(Value::Array(items))) => items,
            Ok(Some(Value::Null)) => Vec::new(),
            Ok(Some(other)) => {
                self.fail(run, idx, format!("`for_each` yields {other}, not a list"));
                return;
            }
            Ok(None) => {
                self.fail(
                    run,
                    idx,
                    "`for_each` must be a single `{{ expression }}`".into(),
                );
                return;
            }
            Err(e) => {
                self.fail(run, idx, format!("`for_each`: {e}"));
                return;
            }
        };
        let plan = self.exec.plan;
        let expansion = match expand_deferred(plan, &mut run.graph, &mut run.fan_outs, idx, items) {
            Ok(e) => e,
            Err(e) => {
                self.fail(run, idx, e.to_string());
                return;
            }
        };
        // The deferred node becomes a join: done when the new sinks are.
        for &s in &expansion.sinks {
            run.graph.add_edge(s, idx, ());
        }
        // The new nodes carry the deferred node's instances too: `register` counts them there.
        run.register(&expansion.nodes);
        let instances = run
            .fan_outs
            .last()
            .map(|f| f.instances.clone())
            .unwrap_or_default();
        self.emit(Event::NodeExpanded {
            at: Timestamp::now(),
            phase: run.kind,
            node: run.graph[idx].name.clone(),
            instances,
        });
        run.nodes[idx.index()].state = State::Expanded;
        run.nodes[idx.index()].waiting_on = expansion.sinks.len();
        self.apply_prior(run, &expansion.nodes);
        if expansion.sinks.is_empty() {
            self.finish(
                run,
                idx,
                NodeStatus::Succeeded,
                Some(json!({})),
                Some("no items".into()),
            );
            return;
        }
        for &n in &expansion.nodes {
            let s = &mut run.nodes[n.index()];
            if s.state == State::Pending && s.waiting_on == 0 {
                s.state = State::Ready;
                run.ready.insert(n.index());
            }
        }
    }
}
