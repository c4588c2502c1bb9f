//! How long a compiled plan can take at worst: the bound a `budget` is checked against.
//!
//! A node's worst case is what its settings allow: every attempt running to its timeout with
//! the waits between retries (half again with jitter), a gate polling to its deadline plus a
//! last attempt, a `sleep` its length. A node without a timeout has no bound, and neither has
//! the plan then; a `confirm` waits for a person and counts as nothing (the summary says so).
//! A phase's worst case is its longest chain of `needs`, plus, for each outermost `for_each`,
//! the waves its `concurrency` makes: `ceil(instances / concurrency) - 1` more times its
//! longest instance. That over-counts fan-outs that run side by side, never under-counts: a
//! budget that fits this bound is kept by every run the settings allow.

use std::time::Duration;

use petgraph::Direction;
use petgraph::graph::NodeIndex;
use petgraph::visit::{EdgeRef, Topo};

use crate::compile::{CompiledPlan, Node, Phase, PhaseKind};
use crate::model::ActionRef;

/// A phase's worst case.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseBound {
    /// The phase.
    pub kind: PhaseKind,
    /// `None` when a node on it has no bound.
    pub worst: Option<Duration>,
    /// The nodes with no bound (no timeout), in the phase's order.
    pub unbounded: Vec<String>,
    /// The longest chain, first node first (one instance of a fan-out).
    pub critical_path: Vec<String>,
    /// Nodes that wait for a person (`confirm`): counted as nothing.
    pub people: Vec<String>,
}

/// The plan's worst case: `steps` then `finally` (a run that goes well), and `on_failure`
/// apart.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanBound {
    /// Each phase's, in run order.
    pub phases: Vec<PhaseBound>,
}

impl PlanBound {
    /// `steps` plus `finally`; `None` when either has no bound.
    pub fn worst(&self) -> Option<Duration> {
        self.phases
            .iter()
            .filter(|p| p.kind != PhaseKind::OnFailure)
            .try_fold(Duration::ZERO, |sum, p| Some(sum + p.worst?))
    }

    /// With `on_failure` too: a run that fails and cleans up.
    pub fn worst_failing(&self) -> Option<Duration> {
        self.phases
            .iter()
            .try_fold(Duration::ZERO, |sum, p| Some(sum + p.worst?))
    }
}

/// The worst case of every phase of `plan`, at `parallelism` (the cap on a fan-out without a
/// `concurrency` of its own).
pub fn bound(plan: &CompiledPlan, parallelism: usize) -> PlanBound {
    PlanBound {
        phases: plan
            .phases
            .iter()
            .map(|p| phase_bound(plan, p, parallelism))
            .collect(),
    }
}

/// One node at worst; `None` when it has no bound.
pub fn node_worst(plan: &CompiledPlan, node: &Node) -> Option<Duration> {
    let s = &node.settings;
    match node.step.action() {
        ActionRef::Sleep(d) => return Some(d.value.resolve(&plan.context["params"])),
        ActionRef::Confirm(_) => return Some(Duration::ZERO),
        _ => {}
    }
    let timeout = s.timeout?;
    if let Some(gate) = &s.gate {
        return Some(gate.deadline + timeout);
    }
    let attempts = s.retry.attempts.max(1);
    let mut total = timeout.saturating_mul(attempts.min(u64::from(u32::MAX)) as u32);
    for n in 2..=attempts.min(1000) {
        let wait = s.retry.delay_before(n);
        total += if s.retry.jitter {
            wait + wait / 2
        } else {
            wait
        };
    }
    Some(total)
}

fn phase_bound(plan: &CompiledPlan, phase: &Phase, parallelism: usize) -> PhaseBound {
    let g = &phase.graph;
    let mut unbounded = Vec::new();
    let mut people = Vec::new();
    let weight: Vec<Option<Duration>> = g
        .node_indices()
        .map(|n| {
            let node = &g[n];
            if matches!(node.step.action(), ActionRef::Confirm(_)) {
                people.push(node.name.clone());
            }
            let w = node_worst(plan, node);
            if w.is_none() {
                unbounded.push(node.name.clone());
            }
            w
        })
        .collect();
    let all: Vec<NodeIndex> = g.node_indices().collect();
    let (longest, path) = longest_chain(phase, &all, &weight);
    // The waves of each outermost fan-out: its longest instance, again for each wave after
    // the first.
    let mut extra = Duration::ZERO;
    for (f, fan_out) in phase.fan_outs.iter().enumerate() {
        let outermost = g
            .node_indices()
            .any(|n| g[n].instances.first().is_some_and(|i| i.fan_out == f));
        if !outermost || fan_out.instances.is_empty() {
            continue;
        }
        let width = fan_out
            .concurrency
            .map_or(parallelism as u64, |c| c.min(parallelism as u64))
            .max(1);
        let waves = (fan_out.instances.len() as u64).div_ceil(width);
        if waves <= 1 {
            continue;
        }
        let mut longest_instance = Duration::ZERO;
        for i in 0..fan_out.instances.len() {
            let members: Vec<NodeIndex> = g
                .node_indices()
                .filter(|n| {
                    g[*n]
                        .instances
                        .first()
                        .is_some_and(|r| r.fan_out == f && r.instance == i)
                })
                .collect();
            let (len, _) = longest_chain(phase, &members, &weight);
            longest_instance = longest_instance.max(len);
        }
        extra += longest_instance.saturating_mul((waves - 1).min(u64::from(u32::MAX)) as u32);
    }
    PhaseBound {
        kind: phase.kind,
        worst: unbounded.is_empty().then_some(longest + extra),
        unbounded,
        critical_path: path,
        people,
    }
}

/// The longest chain of `needs` among `members` (unbounded nodes count as nothing here; the
/// caller knows them), and its nodes.
fn longest_chain(
    phase: &Phase,
    members: &[NodeIndex],
    weight: &[Option<Duration>],
) -> (Duration, Vec<String>) {
    let g = &phase.graph;
    let member = |n: NodeIndex| members.contains(&n);
    let mut dist: Vec<Option<(Duration, Option<NodeIndex>)>> = vec![None; g.node_count()];
    let mut topo = Topo::new(g);
    while let Some(n) = topo.next(g) {
        if !member(n) {
            continue;
        }
        let before = g
            .edges_directed(n, Direction::Incoming)
            .filter_map(|e| {
                let p = e.source();
                dist[p.index()].map(|(d, _)| (d, p))
            })
            .max_by_key(|(d, _)| *d);
        let own = weight[n.index()].unwrap_or_default();
        dist[n.index()] = Some(match before {
            Some((d, p)) => (d + own, Some(p)),
            None => (own, None),
        });
    }
    let Some((end, (total, _))) = dist
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.map(|d| (i, d)))
        .max_by_key(|(_, (d, _))| *d)
    else {
        return (Duration::ZERO, Vec::new());
    };
    let mut path = Vec::new();
    let mut at = Some(NodeIndex::new(end));
    while let Some(n) = at {
        path.push(g[n].name.clone());
        at = dist[n.index()].and_then(|(_, p)| p);
    }
    path.reverse();
    (total, path)
}
