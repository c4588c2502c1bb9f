//! A phase's nodes inside the steps they were expanded from: groups, `for_each` fan-outs and
//! their instances. Seen at that level, the edges of a rollout are a handful (one per step
//! and the step above it), not every end of one step to every start of the next, so the
//! graph and the dry run can say "after `restore-configs` (all 27 instances)".

use super::*;

/// One level of the tree a phase's nodes were expanded from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Part {
    /// A group without `for_each`, by path: `checks`, `roll[us-east-op-1].verify`.
    Group(String),
    /// All the instances of a `for_each`: an index into the phase's `fan_outs`.
    FanOut(usize),
    /// One instance of a `for_each` over a group, by name: `roll[us-east-op-1]`.
    Instance(String),
    /// One node.
    Node(NodeIndex),
}

/// The parts around every node of a phase.
#[derive(Debug, Clone)]
pub struct Outline {
    /// By node index: the parts around the node, outermost first, the node itself last.
    paths: Vec<Vec<Part>>,
    /// Each part's children, in the order the plan writes them (`None`: the phase's top).
    children: HashMap<Option<Part>, Vec<Part>>,
}

impl Phase {
    /// The tree of groups, fan-outs and instances the nodes were expanded from.
    ///
    /// Read from the node names, which compilation builds as `GROUP.STEP` and `STEP[KEY]`:
    /// ids hold no `.` or `[`, and instance keys no `.`, `[` or `]`.
    pub fn outline(&self) -> Outline {
        let fan_outs: HashMap<&str, usize> = self
            .fan_outs
            .iter()
            .enumerate()
            .map(|(i, f)| (f.path.as_str(), i))
            .collect();
        let paths: Vec<Vec<Part>> = self
            .graph
            .node_indices()
            .map(|n| parts_of(&self.graph[n].name, n, &fan_outs))
            .collect();
        let mut children: HashMap<Option<Part>, Vec<Part>> = HashMap::new();
        for path in &paths {
            let parents = std::iter::once(None).chain(path.iter().cloned().map(Some));
            for (parent, child) in parents.zip(path) {
                let list = children.entry(parent).or_default();
                if !list.contains(child) {
                    list.push(child.clone());
                }
            }
        }
        Outline { paths, children }
    }
}

/// The parts of the node named `name`, the node itself last.
fn parts_of(name: &str, n: NodeIndex, fan_outs: &HashMap<&str, usize>) -> Vec<Part> {
    let segments: Vec<&str> = name.split('.').collect();
    let mut parts = Vec::new();
    let mut prefix = String::new();
    for (k, segment) in segments.iter().enumerate() {
        let last = k + 1 == segments.len();
        match segment.split_once('[') {
            Some((id, _)) => {
                if let Some(&f) = fan_outs.get(format!("{prefix}{id}").as_str()) {
                    parts.push(Part::FanOut(f));
                }
                if !last {
                    parts.push(Part::Instance(format!("{prefix}{segment}")));
                }
            }
            None if !last => parts.push(Part::Group(format!("{prefix}{segment}"))),
            None => {}
        }
        prefix.push_str(segment);
        prefix.push('.');
    }
    parts.push(Part::Node(n));
    parts
}

impl Outline {
    /// The parts around node `n`, outermost first, ending with the node itself.
    pub fn path(&self, n: NodeIndex) -> &[Part] {
        &self.paths[n.index()]
    }

    /// The parts inside `parent` (`None`: the phase's top level), in the plan's order.
    pub fn children(&self, parent: Option<&Part>) -> &[Part] {
        self.children
            .get(&parent.cloned())
            .map_or(&[], Vec::as_slice)
    }

    /// The edge `from → to` seen where the two nodes' paths part: the part holding `from`
    /// that the part holding `to` waits for, both directly inside the same parent.
    pub fn edge(&self, from: NodeIndex, to: NodeIndex) -> (&Part, &Part) {
        let (a, b) = (self.path(from), self.path(to));
        let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        (&a[common], &b[common])
    }

    /// Every edge of `phase` seen at its parts (see [`Outline::edge`]), each once, in the
    /// order of the graph's edges.
    pub fn edges(&self, phase: &Phase) -> Vec<(Part, Part)> {
        let mut seen: HashSet<(&Part, &Part)> = HashSet::new();
        let mut out = Vec::new();
        for e in phase.graph.edge_indices() {
            let Some((from, to)) = phase.graph.edge_endpoints(e) else {
                continue;
            };
            let pair = self.edge(from, to);
            if seen.insert(pair) {
                out.push((pair.0.clone(), pair.1.clone()));
            }
        }
        out
    }

    /// The nodes inside `part` (every node under a group, fan-out or instance).
    pub fn nodes_in(&self, part: &Part) -> Vec<NodeIndex> {
        self.paths
            .iter()
            .enumerate()
            .filter(|(_, path)| path.contains(part))
            .map(|(i, _)| NodeIndex::new(i))
            .collect()
    }
}
