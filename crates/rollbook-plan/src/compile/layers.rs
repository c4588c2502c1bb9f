//! Topological layers for the dry run, counting fan-out concurrency.

use super::*;

impl Phase {
    /// Nodes in topological layers: a node's layer comes after the layers of everything it
    /// waits for, counting a fan-out's `concurrency` (with `concurrency: c`, instance `i`
    /// waits for instance `i - c`), so nodes of one layer can really run at the same time.
    /// Within a layer, nodes keep the order they were declared in.
    pub fn layers(&self) -> Vec<Vec<NodeIndex>> {
        let g = &self.graph;
        // Nodes of each (fan-out, instance), for the concurrency windows.
        let mut members: HashMap<InstanceRef, Vec<NodeIndex>> = HashMap::new();
        for n in g.node_indices() {
            for r in &g[n].instances {
                members.entry(*r).or_default().push(n);
            }
        }
        let mut waits: HashMap<NodeIndex, Vec<NodeIndex>> = HashMap::new();
        for (r, nodes) in &members {
            let Some(c) = self.fan_outs[r.fan_out].concurrency else {
                continue;
            };
            let Some(earlier) = r.instance.checked_sub(c as usize) else {
                continue;
            };
            let key = InstanceRef {
                fan_out: r.fan_out,
                instance: earlier,
            };
            if let Some(before) = members.get(&key) {
                for &n in nodes {
                    waits.entry(n).or_default().extend(before);
                }
            }
        }
        let mut depth: Vec<Option<usize>> = vec![None; g.node_count()];
        fn depth_of(
            n: NodeIndex,
            g: &DiGraph<Node, ()>,
            waits: &HashMap<NodeIndex, Vec<NodeIndex>>,
            depth: &mut [Option<usize>],
        ) -> usize {
            // Iterative post-order, so a long chain cannot overflow the stack.
            let mut stack = vec![(n, false)];
            while let Some((m, expanded)) = stack.pop() {
                if depth[m.index()].is_some() {
                    continue;
                }
                let preds = g
                    .neighbors_directed(m, petgraph::Direction::Incoming)
                    .chain(waits.get(&m).into_iter().flatten().copied());
                if expanded {
                    let d = preds
                        .map(|p| depth[p.index()].map_or(0, |d| d + 1))
                        .max()
                        .unwrap_or(0);
                    depth[m.index()] = Some(d);
                } else {
                    stack.push((m, true));
                    stack.extend(
                        preds
                            .filter(|p| depth[p.index()].is_none())
                            .map(|p| (p, false)),
                    );
                }
            }
            depth[n.index()].unwrap_or(0)
        }
        let mut layers: Vec<Vec<NodeIndex>> = Vec::new();
        for n in g.node_indices() {
            let d = depth_of(n, g, &waits, &mut depth);
            if layers.len() <= d {
                layers.resize(d + 1, Vec::new());
            }
            layers[d].push(n);
        }
        layers
    }
}
