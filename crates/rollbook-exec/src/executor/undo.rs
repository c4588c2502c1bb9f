//! Undo and the point of no return.
//!
//! A scope that fails is undone: when a `for_each` instance fails, the steps that succeeded in
//! it (and have an `undo`) are undone in the reverse order of their completion, once nothing
//! of the instance runs any more; when the phase halts on a failure, the top-level steps
//! that succeeded are undone the same way, after the instances' undos and before
//! `on_failure`. Each undo is a node of its own (`<node>.undo`), journaled like any attempt;
//! a scope's undos run one after the other, each whatever the one before came to. A node is
//! undone at most once per run of it (`undone`).
//!
//! An `irreversible: true` step asks for the run's confirmation again before it first starts.

use super::*;

impl Engine<'_, '_> {
    /// Plans the undos of the scopes that failed and are quiet now: each failed instance once
    /// nothing of it (nor an undo of it) runs, then, after a halt on a failure, the run's.
    pub(super) fn plan_undos(&mut self, run: &mut PhaseRun) {
        if run.cancelled {
            return;
        }
        let mut i = 0;
        while i < run.undo_pending.len() {
            let r = run.undo_pending[i];
            let members = run.members.get(&r).cloned().unwrap_or_default();
            if Self::busy(run, &members) {
                i += 1;
                continue;
            }
            run.undo_pending.remove(i);
            let scope = run.instance_name(r);
            self.plan_undo(run, scope, members);
        }
        let quiet = run.running == 0
            && run.waiting == 0
            && run.undo_ready.is_empty()
            && run.undo_pending.is_empty();
        if run.halted && run.failed && quiet && !run.undo_run_planned {
            run.undo_run_planned = true;
            let top: Vec<NodeIndex> = run
                .graph
                .node_indices()
                .filter(|&n| run.graph[n].instances.is_empty())
                .collect();
            self.plan_undo(run, "run".into(), top);
        }
    }

    /// A member of the scope runs, waits, or has an undo not finished yet.
    fn busy(run: &PhaseRun, members: &[NodeIndex]) -> bool {
        let active = |n: NodeIndex| {
            matches!(
                run.nodes[n.index()].state,
                State::Running | State::Waiting | State::Due | State::Confirming
            )
        };
        members.iter().any(|&n| active(n))
            || run.undo_of.iter().any(|(&u, (of, _))| {
                !matches!(run.nodes[u.index()].state, State::Done(_)) && members.contains(of)
            })
    }

    /// The undos of `candidates` that succeeded and were not undone yet, in the reverse
    /// order of their completion: journaled (`undoing`), then run one after the other.
    fn plan_undo(&mut self, run: &mut PhaseRun, scope: String, candidates: Vec<NodeIndex>) {
        let mut done: Vec<NodeIndex> = candidates
            .into_iter()
            .filter(|&n| {
                run.nodes[n.index()].state == State::Done(NodeStatus::Succeeded)
                    && run.graph[n].deferred.is_none()
                    && run.graph[n].step.undo.is_some()
                    && !run.undone.contains(&n)
                    && !run.undo_of.contains_key(&n)
            })
            .collect();
        if done.is_empty() {
            return;
        }
        done.sort_by_key(|&n| std::cmp::Reverse(run.nodes[n.index()].done_seq));
        run.undone.extend(done.iter().copied());
        let skipped = self.exec.options.no_undo;
        self.emit(Event::Undoing {
            at: Timestamp::now(),
            phase: run.kind,
            scope,
            nodes: done.iter().map(|&n| run.graph[n].name.clone()).collect(),
            skipped,
        });
        if skipped {
            return;
        }
        let chain_id = run.chains.len();
        let mut chain = std::collections::VecDeque::new();
        for n in done {
            let Some(node) = undo_node(&run.graph, n) else {
                continue;
            };
            let u = run.graph.add_node(node);
            run.register(&[u]);
            run.undo_of.insert(u, (n, chain_id));
            chain.push_back(u);
        }
        if let Some(first) = chain.pop_front() {
            run.undo_ready.push_back(first);
        }
        run.chains.push(chain);
    }

    /// Asks for the run's confirmation before the first irreversible step starts; the answer
    /// comes back as `Msg::Confirmed`. Nobody to ask: the run is cancelled before it.
    pub(super) fn ask_irreversible(&mut self, run: &mut PhaseRun, idx: NodeIndex) {
        self.mark_started(run, idx);
        let node = run.graph[idx].name.clone();
        let Some(Asker(prompter)) = self.exec.options.asker.clone() else {
            self.confirmed(run, idx, Err("nobody can be asked".into()));
            return;
        };
        run.nodes[idx.index()].state = State::Confirming;
        run.running += 1;
        self.asking = true;
        let phrase = self.exec.plan.confirm.clone();
        let stop = run.stop.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let answer = tokio::select! {
                a = prompter.confirm_irreversible(&node, phrase.as_deref()) => a,
                _ = stop.cancelled() => Err("the run was stopped while waiting for an answer".into()),
            };
            let _ = tx.send(Msg::Confirmed { idx, answer });
        });
    }

    /// The answer before an irreversible step: yes starts it (journaled with who answered);
    /// anything else cancels the run before it.
    pub(super) fn confirmed(
        &mut self,
        run: &mut PhaseRun,
        idx: NodeIndex,
        answer: Result<Answer, String>,
    ) {
        if run.nodes[idx.index()].state == State::Confirming {
            run.running -= 1;
            self.asking = false;
        }
        let node = run.graph[idx].name.clone();
        if let Some(r) = run.in_failed_instance(idx) {
            let name = run.instance_name(r);
            let message = format!("not run: {name} failed");
            self.finish(run, idx, NodeStatus::Cancelled, None, Some(message));
            return;
        }
        if run.halted {
            let message = "not started: the run stopped".to_string();
            self.finish(run, idx, NodeStatus::Cancelled, None, Some(message));
            return;
        }
        match answer {
            Ok(Answer { yes: true, by }) => {
                self.irreversible_confirmed = true;
                self.emit(Event::IrreversibleConfirmed {
                    at: Timestamp::now(),
                    phase: run.kind,
                    node,
                    answered_by: by,
                });
                self.start_attempt(run, idx);
            }
            other => {
                let why = match other {
                    Ok(Answer { by, .. }) => format!("{by} did not confirm"),
                    Err(e) => e,
                };
                let message = format!(
                    "step {node} is irreversible and the run was not confirmed before it: {why}"
                );
                self.finish(run, idx, NodeStatus::Cancelled, None, Some(message.clone()));
                self.halt(run, true);
                self.emit(Event::Cancelling {
                    at: Timestamp::now(),
                    hard: false,
                    reason: Some(message),
                });
            }
        }
    }
}
