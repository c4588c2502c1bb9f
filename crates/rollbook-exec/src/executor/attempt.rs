//! One attempt's life: rendered and journaled, run as a task, and its outcome judged
//! (expectations, gates, captures, retries).

use rollbook_plan::action::Action;
use rollbook_plan::preview;

use super::*;
use crate::result::{CommandResult, ConfirmResult};

impl Engine<'_, '_> {
    pub(super) fn start_attempt(&mut self, run: &mut PhaseRun, idx: NodeIndex) {
        self.mark_started(run, idx);
        let ctx = self.context(run, idx);
        let plan = self.exec.plan;
        let action = match render_action(plan, &run.graph[idx], &ctx, &self.renderer) {
            Ok(a) => a,
            Err(e) => {
                let message = self.exec.redactor.redact(&e.to_string());
                self.fail(run, idx, message);
                return;
            }
        };
        let Some(runner) = self.exec.runners.get(action.kind()) else {
            self.fail(
                run,
                idx,
                Error::NoRunner(action.kind().to_string()).to_string(),
            );
            return;
        };
        let state = &mut run.nodes[idx.index()];
        state.attempt += 1;
        state.state = State::Running;
        state.first_start.get_or_insert_with(Instant::now);
        let attempt = state.attempt;
        run.running += 1;
        let node_name: Arc<str> = Arc::from(run.graph[idx].name.as_str());
        // Where it acts, for the report's "what was rolled back where"; sleeping and asking
        // act nowhere.
        let target = match &action {
            Action::Sleep { .. } | Action::Confirm { .. } => None,
            _ => Some(self.exec.redactor.redact(&preview::target(&action))),
        };
        // Journaled before the runner is called: after a crash, this attempt's outcome is
        // known to be unknown.
        self.emit(Event::AttemptStarted {
            at: Timestamp::now(),
            phase: run.kind,
            node: node_name.to_string(),
            attempt,
            target,
        });
        // The group its last attempt left, or, for a resumed node's first attempt here, the
        // one in flight when the earlier controller stopped.
        let previous = run.nodes[idx.index()].group.clone().or_else(|| {
            let key = NodeKey::new(run.kind, node_name.as_ref());
            self.exec.prior.groups.get(&key).cloned()
        });
        self.launches.push(Launch {
            idx,
            runner,
            action,
            attempt,
            node: node_name,
            timeout: run.graph[idx].settings.timeout,
            previous,
        });
    }

    /// Makes the attempts started this turn durable in the journal (one sync), then runs
    /// them. Nothing runs unrecorded: if the journal cannot be written, nothing starts.
    pub(super) fn launch(&mut self, abort: &CancellationToken) -> Result<(), Error> {
        if self.launches.is_empty() {
            return Ok(());
        }
        self.flush()?;
        for launch in std::mem::take(&mut self.launches) {
            let Launch {
                idx,
                runner,
                action,
                attempt,
                node,
                timeout,
                previous,
            } = launch;
            let cancel = abort.child_token();
            let tx = self.tx.clone();
            let output =
                OutputSink::redacted(node.clone(), self.out_tx.clone(), &self.exec.redactor)
                    .counted(self.backlog.clone());
            let output_end = output.clone();
            let groups = self.tx.clone();
            let processes = ProcessReport::new(move |group| {
                let _ = groups.send(Msg::Group {
                    idx,
                    attempt,
                    group,
                });
            });
            tokio::spawn(async move {
                let started = Instant::now();
                let fut = runner.run(
                    &action,
                    Attempt {
                        node,
                        number: attempt,
                        cancel: cancel.clone(),
                        output,
                        processes,
                        previous,
                    },
                );
                tokio::pin!(fut);
                let outcome = match timeout {
                    Some(limit) => tokio::select! {
                        o = &mut fut => o,
                        _ = tokio::time::sleep(limit) => {
                            cancel.cancel();
                            let _ = (&mut fut).await;
                            Outcome::failed(format!("timed out after {}", humantime::format_duration(limit)))
                        }
                    },
                    None => fut.await,
                };
                // What the redaction held back comes before the attempt's end.
                output_end.finish();
                let _ = tx.send(Msg::Done {
                    idx,
                    attempt,
                    outcome,
                    elapsed: started.elapsed(),
                });
            });
        }
        Ok(())
    }

    /// An attempt came back: journal it, then judge it (expectations, the gate), and either
    /// finish the node with its captures or schedule what comes next.
    pub(super) fn attempt_done(
        &mut self,
        run: &mut PhaseRun,
        idx: NodeIndex,
        attempt: u32,
        outcome: Outcome,
        elapsed: Duration,
    ) {
        run.running -= 1;
        let outcome = self.expect_jq(run, idx, outcome);
        let message = match &outcome {
            Outcome::Succeeded { .. } => None,
            Outcome::Failed { message, .. } => Some(self.exec.redactor.redact(message)),
        };
        self.emit(Event::AttemptFinished {
            at: Timestamp::now(),
            phase: run.kind,
            node: run.graph[idx].name.clone(),
            attempt,
            ok: message.is_none(),
            duration_ms: elapsed.as_millis() as u64,
            exit_code: outcome.result().and_then(CommandResult::exit_code_in),
            message: message.clone(),
        });
        if run.hard && message.is_some() {
            self.finish(run, idx, NodeStatus::Cancelled, None, message);
            return;
        }
        let ctx = self.context(run, idx);
        if !self.gate_passed(run, idx, attempt, &outcome, &ctx) {
            return;
        }
        match outcome {
            Outcome::Succeeded { result } => self.succeed(run, idx, &result, &ctx),
            Outcome::Failed { message, .. } => {
                let message = self.exec.redactor.redact(&message);
                self.retry_or_fail(run, idx, attempt, message);
            }
        }
    }

    /// Judges an `until` gate: `true` when there is none or it holds. Otherwise the node
    /// fails (past its deadline, or the run is stopping) or waits for its next poll.
    fn gate_passed(
        &mut self,
        run: &mut PhaseRun,
        idx: NodeIndex,
        attempt: u32,
        outcome: &Outcome,
        ctx: &Value,
    ) -> bool {
        let Some(gate) = run.graph[idx].settings.gate.clone() else {
            return true;
        };
        let held = match outcome {
            Outcome::Succeeded { result } => self.condition(&gate.until, result, ctx),
            Outcome::Failed { message, .. } => Err(message.clone()),
        };
        let detail = match held {
            Ok(true) => return true,
            Err(e) => self.exec.redactor.redact(&e),
            Ok(false) => format!("`{}` is not true yet", gate.until),
        };
        let since = run.nodes[idx.index()]
            .first_start
            .map_or(Duration::ZERO, |t| t.elapsed());
        if since >= gate.deadline || run.halted {
            let message = if run.halted {
                format!("gate not met when the run stopped: {detail}")
            } else {
                format!(
                    "gate not met within {}: {detail}",
                    humantime::format_duration(gate.deadline)
                )
            };
            self.fail(run, idx, message);
            return false;
        }
        // The last poll is at the deadline itself, even when the interval would step past
        // it: a gate is given its whole deadline.
        let next = gate.interval.min(gate.deadline - since);
        run.nodes[idx.index()].last_message = Some(detail);
        self.emit(Event::GateWaiting {
            at: Timestamp::now(),
            phase: run.kind,
            node: run.graph[idx].name.clone(),
            attempt,
            elapsed_ms: since.as_millis() as u64,
            deadline_ms: gate.deadline.as_millis() as u64,
            next_in_ms: next.as_millis() as u64,
        });
        self.wait(run, idx, next);
        false
    }

    /// The node succeeded: its captures become its outputs (a capture that fails fails it).
    fn succeed(&mut self, run: &mut PhaseRun, idx: NodeIndex, result: &Value, ctx: &Value) {
        let outputs = match self.capture(run, idx, result, ctx) {
            Ok(outputs) => outputs,
            Err(message) => {
                self.fail(run, idx, message);
                return;
            }
        };
        // Who answered a `confirm` step belongs in the journal (and the report).
        let answered = ConfirmResult::read(result)
            .map(|c| format!("answered {} by {}", c.answer(), c.answered_by));
        self.finish(
            run,
            idx,
            NodeStatus::Succeeded,
            Some(Value::Object(outputs)),
            answered,
        );
    }

    /// The step's `capture` expressions run on its result; the first that fails says why.
    fn capture(
        &mut self,
        run: &PhaseRun,
        idx: NodeIndex,
        result: &Value,
        ctx: &Value,
    ) -> Result<Map<String, Value>, String> {
        let mut outputs = Map::new();
        let step = run.graph[idx].step.clone();
        let vars = Self::jq_vars(ctx);
        for (name, expr) in step.capture.iter() {
            let value = self
                .program(&expr.value)
                .and_then(|p| p.run(result, [&vars[0], &vars[1], &vars[2], &vars[3], &vars[4]]));
            match value {
                Ok(values) => {
                    let first = values.into_iter().next().unwrap_or(Value::Null);
                    outputs.insert(name.value.clone(), first);
                }
                Err(e) => {
                    let e = self.exec.redactor.redact(&e);
                    return Err(format!("capture `{}`: {e}", name.value));
                }
            }
        }
        Ok(outputs)
    }

    /// A failed attempt: another one after the retry delay (with jitter) while attempts are
    /// left and the run goes on, else the node fails.
    fn retry_or_fail(&mut self, run: &mut PhaseRun, idx: NodeIndex, attempt: u32, message: String) {
        let retry = &run.graph[idx].settings.retry;
        // A halted run retries nothing, but its undos (which is what it runs when halted).
        let stopping = run.halted && (run.cancelled || !run.undo_of.contains_key(&idx));
        if u64::from(attempt) >= retry.attempts || stopping {
            self.fail(run, idx, message);
            return;
        }
        let mut delay = retry.delay_before(u64::from(attempt) + 1);
        if retry.jitter {
            delay = delay.mul_f64(0.5 + self.jitter.next() * 0.5);
        }
        run.nodes[idx.index()].last_message = Some(message);
        self.emit(Event::RetryScheduled {
            at: Timestamp::now(),
            phase: run.kind,
            node: run.graph[idx].name.clone(),
            next_attempt: attempt + 1,
            delay_ms: delay.as_millis() as u64,
        });
        self.wait(run, idx, delay);
    }

    /// `expect.jq` of an HTTP step, checked here because it may read the run context
    /// (`$params`, `$item`, `$steps`) that runners do not have.
    pub(super) fn expect_jq(
        &mut self,
        run: &PhaseRun,
        idx: NodeIndex,
        outcome: Outcome,
    ) -> Outcome {
        let step = run.graph[idx].step.clone();
        let Some(jq) = step
            .http
            .as_ref()
            .and_then(|h| h.expect.as_ref())
            .and_then(|e| e.jq.as_ref())
        else {
            return outcome;
        };
        let Outcome::Succeeded { result } = outcome else {
            return outcome;
        };
        let ctx = self.context(run, idx);
        match self.condition(&jq.value, &result, &ctx) {
            Ok(true) => Outcome::Succeeded { result },
            Ok(false) => {
                let body: String = result["body"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect();
                Outcome::Failed {
                    message: format!(
                        "expected `{}` to hold, it did not; status {}: {body}",
                        jq.value, result["status"]
                    ),
                    result: Some(result),
                }
            }
            Err(e) => Outcome::Failed {
                message: format!("`expect.jq`: {e}"),
                result: Some(result),
            },
        }
    }

    pub(super) fn wait(&mut self, run: &mut PhaseRun, idx: NodeIndex, delay: Duration) {
        run.nodes[idx.index()].state = State::Waiting;
        run.waiting += 1;
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Msg::Wake { idx });
        });
    }
}
