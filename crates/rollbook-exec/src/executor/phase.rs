//! Bookkeeping of one phase: needs, fan-out instances in flight, failed instances.

use super::*;

impl PhaseRun {
    pub(super) fn new(
        kind: PhaseKind,
        run_status: RunStatus,
        graph: DiGraph<Node, ()>,
        fan_outs: Vec<FanOut>,
    ) -> Self {
        let n = graph.node_count();
        let k = fan_outs.len();
        let mut run = PhaseRun {
            kind,
            run_status,
            run_tolerated: Value::Array(Vec::new()),
            graph,
            nodes: (0..n).map(|_| NodeState::new()).collect(),
            fan_outs,
            ready: BTreeSet::new(),
            due: std::collections::VecDeque::new(),
            members: HashMap::new(),
            remaining: HashMap::new(),
            started: HashSet::new(),
            failed_instances: HashSet::new(),
            in_flight: vec![0; k],
            failures: vec![0; k],
            broken: vec![false; k],
            running: 0,
            waiting: 0,
            halted: false,
            failed: false,
            cancelled: false,
            hard: false,
            undo_pending: Vec::new(),
            undo_run_planned: false,
            undone: HashSet::new(),
            undo_of: HashMap::new(),
            chains: Vec::new(),
            undo_ready: std::collections::VecDeque::new(),
            completed: 0,
            stop: CancellationToken::new(),
        };
        let all: Vec<NodeIndex> = run.graph.node_indices().collect();
        run.register(&all);
        run
    }

    /// Counts needs and instance membership of new nodes.
    pub(super) fn register(&mut self, nodes: &[NodeIndex]) {
        while self.nodes.len() < self.graph.node_count() {
            self.nodes.push(NodeState::new());
        }
        while self.in_flight.len() < self.fan_outs.len() {
            self.in_flight.push(0);
            self.failures.push(0);
            self.broken.push(false);
        }
        for &n in nodes {
            self.nodes[n.index()].waiting_on = self
                .graph
                .neighbors_directed(n, Direction::Incoming)
                .count();
            for r in self.graph[n].instances.clone() {
                self.members.entry(r).or_default().push(n);
                *self.remaining.entry(r).or_default() += 1;
            }
        }
    }

    /// Can `n` start now, as far as fan-out limits go?
    pub(super) fn instance_room(&self, n: NodeIndex) -> bool {
        self.graph[n].instances.iter().all(|r| {
            if self.started.contains(r) {
                return true;
            }
            let f = &self.fan_outs[r.fan_out];
            !self.broken[r.fan_out]
                && f.concurrency
                    .is_none_or(|c| (self.in_flight[r.fan_out] as u64) < c)
        })
    }

    pub(super) fn in_failed_instance(&self, n: NodeIndex) -> Option<InstanceRef> {
        self.graph[n]
            .instances
            .iter()
            .find(|r| self.failed_instances.contains(r))
            .copied()
    }

    pub(super) fn instance_name(&self, r: InstanceRef) -> String {
        let f = &self.fan_outs[r.fan_out];
        format!(
            "{}[{}]",
            f.path,
            f.instances.get(r.instance).map_or("?", String::as_str)
        )
    }
}
