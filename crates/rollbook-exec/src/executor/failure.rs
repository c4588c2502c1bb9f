//! End states: failures and what they stop (the instance, the rollout, the phase), and
//! telling dependants when a node is satisfied.

use super::*;

impl Engine<'_, '_> {
    /// A node failed for good: `continue` goes on; otherwise its fan-out instance fails, and
    /// past `max_failures` the failure climbs to the enclosing instance, then to the run.
    pub(super) fn fail(&mut self, run: &mut PhaseRun, idx: NodeIndex, message: String) {
        if let Some(&(of, _)) = run.undo_of.get(&idx) {
            // A failed undo: the other undos go on; the run ends failed.
            run.failed = true;
            let message = format!(
                "undo of {} failed: {message} (the other undos go on; the run ends failed)",
                run.graph[of].name
            );
            self.finish(run, idx, NodeStatus::Failed, None, Some(message));
            return;
        }
        if run.graph[idx].settings.on_failure == OnFailure::Continue {
            run.nodes[idx.index()].tolerated = true;
            self.finish(run, idx, NodeStatus::Failed, None, Some(message));
            return;
        }
        // Innermost instance first; the first fan-out that tolerates it absorbs the failure.
        let chain = run.graph[idx].instances.clone();
        let absorbed = chain.iter().rev().any(|r| self.fail_instance(run, *r));
        if absorbed {
            run.nodes[idx.index()].tolerated = true;
        } else {
            run.failed = true;
        }
        self.finish(run, idx, NodeStatus::Failed, None, Some(message));
        if !absorbed {
            // Not absorbed by any rollout: the run stops starting new work.
            self.halt(run, false);
        }
    }

    /// Marks an instance failed; true when its fan-out tolerates it (`max_failures`).
    pub(super) fn fail_instance(&mut self, run: &mut PhaseRun, r: InstanceRef) -> bool {
        if !run.failed_instances.insert(r) {
            return !run.broken[r.fan_out];
        }
        // What succeeded in it is undone once nothing of it runs any more.
        run.undo_pending.push(r);
        run.failures[r.fan_out] += 1;
        let tolerated = run.failures[r.fan_out] <= run.fan_outs[r.fan_out].max_failures;
        if !tolerated {
            run.broken[r.fan_out] = true;
        }
        let name = run.instance_name(r);
        let members = run.members.get(&r).cloned().unwrap_or_default();
        for n in members {
            match run.nodes[n.index()].state {
                State::Pending | State::Ready => {
                    run.ready.remove(&n.index());
                    self.finish(
                        run,
                        n,
                        NodeStatus::Cancelled,
                        None,
                        Some(format!("not run: {name} failed")),
                    );
                }
                State::Waiting | State::Due => {
                    run.waiting -= 1;
                    run.due.retain(|d| *d != n);
                    self.finish(
                        run,
                        n,
                        NodeStatus::Cancelled,
                        None,
                        Some(format!("not run: {name} failed")),
                    );
                }
                _ => {}
            }
        }
        if tolerated {
            // Within the rollout's tolerance: what waits on this instance from outside may go on.
            let members = run.members.get(&r).cloned().unwrap_or_default();
            for n in members {
                if matches!(
                    run.nodes[n.index()].state,
                    State::Done(NodeStatus::Failed | NodeStatus::Cancelled)
                ) {
                    run.nodes[n.index()].tolerated = true;
                    self.release(run, n);
                }
            }
        }
        tolerated
    }

    /// A node reached its end state.
    pub(super) fn finish(
        &mut self,
        run: &mut PhaseRun,
        idx: NodeIndex,
        status: NodeStatus,
        outputs: Option<Value>,
        message: Option<String>,
    ) {
        let state = &mut run.nodes[idx.index()];
        if matches!(state.state, State::Done(_)) {
            return;
        }
        // Later steps read the real values; the journal and display get them redacted.
        state.outputs = outputs.clone();
        let outputs = outputs.map(|o| self.exec.redactor.redact_value(&o));
        if status == NodeStatus::Failed && state.tolerated {
            // The message is redacted already (every failure message is, before `fail`).
            self.tolerated.push(Tolerated {
                phase: run.kind,
                node: run.graph[idx].name.clone(),
                message: message.clone().unwrap_or_default(),
            });
        }
        self.emit(Event::NodeFinished {
            at: Timestamp::now(),
            phase: run.kind,
            node: run.graph[idx].name.clone(),
            status,
            outputs: if status == NodeStatus::Succeeded {
                outputs
            } else {
                None
            },
            message,
            tolerated: run.nodes[idx.index()].tolerated,
        });
        self.settle(run, idx, status);
    }

    /// Records an end state (journaled or from a resumed journal) and tells dependants.
    pub(super) fn settle(&mut self, run: &mut PhaseRun, idx: NodeIndex, status: NodeStatus) {
        run.nodes[idx.index()].state = State::Done(status);
        if status == NodeStatus::Succeeded {
            run.completed += 1;
            run.nodes[idx.index()].done_seq = run.completed;
        }
        // The next undo of its scope, whatever this one came to.
        if let Some(&(_, chain)) = run.undo_of.get(&idx)
            && let Some(next) = run.chains[chain].pop_front()
        {
            run.undo_ready.push_back(next);
        }
        run.ready.remove(&idx.index());
        for r in run.graph[idx].instances.clone() {
            let left = run.remaining.entry(r).or_default();
            *left = left.saturating_sub(1);
            if *left == 0 && run.started.contains(&r) {
                run.in_flight[r.fan_out] -= 1;
            }
        }
        if matches!(status, NodeStatus::Succeeded | NodeStatus::Skipped)
            || run.nodes[idx.index()].tolerated
        {
            self.release(run, idx);
        }
    }

    /// Tells a satisfied node's dependants; an expanded join finishes with its instances.
    pub(super) fn release(&mut self, run: &mut PhaseRun, idx: NodeIndex) {
        if std::mem::replace(&mut run.nodes[idx.index()].released, true) {
            return;
        }
        let next: Vec<NodeIndex> = run
            .graph
            .neighbors_directed(idx, Direction::Outgoing)
            .collect();
        for m in next {
            let s = &mut run.nodes[m.index()];
            s.waiting_on = s.waiting_on.saturating_sub(1);
            if s.waiting_on > 0 {
                continue;
            }
            match s.state {
                State::Pending => {
                    s.state = State::Ready;
                    run.ready.insert(m.index());
                }
                State::Expanded => {
                    let instances = run
                        .fan_outs
                        .iter()
                        .rev()
                        .find(|f| f.path == run.graph[m].name)
                        .map_or(0, |f| f.instances.len());
                    self.finish(
                        run,
                        m,
                        NodeStatus::Succeeded,
                        Some(json!({})),
                        Some(format!("{instances} instances done")),
                    );
                }
                _ => {}
            }
        }
    }
}
