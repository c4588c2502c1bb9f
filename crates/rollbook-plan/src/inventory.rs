//! Inventories: groups of hosts, groups made of groups (`children`), hosts with their details.
//!
//! The same checks run on a plan's `inventory:` (from `validate`) and on the files of
//! `--inventory FILE|DIR` ([`crate::load_inventory_files`]): a child that is not a group, groups
//! that contain each other, a host listed twice in a group or defined twice with different
//! settings, two files defining one group, and the reserved group name `hosts`.
//!
//! [`expand`] gives each group its hosts: its own in the order written, then each child's
//! (expanded the same way) in the order the children are listed; a host already there is not
//! added again. So `all: { children: [operators, workers] }` is the operators, then the
//! workers, each host once.
//!
//! [`bundle`] writes the files of a directory as one YAML document (what a run keeps as
//! `inventory.yaml`); [`unbundle`] gives them back, so `resume` and `report` read the same
//! files the run read.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value, json};

use crate::diagnostic::{Diagnostic, SourceFile, Span, did_you_mean};
use crate::model::{Group, Host, HostDetails, Spanned};

/// The name no group may have: `inventory.hosts` holds every host's details.
pub const RESERVED_GROUP: &str = "hosts";

/// The most host entries all groups may hold together once expanded (a chain of groups each
/// holding the next one grows as its square): past it an inventory is refused, not expanded.
pub const MAX_MEMBERS: usize = 1_000_000;

/// The fields of a host record (`host.FIELD`, `inventory.hosts.NAME.FIELD`).
pub const HOST_FIELDS: &[&str] = &["name", "address", "port", "user", "vars"];

/// A group as written: in which file (an index into the files checked together), under which
/// name.
#[derive(Debug, Clone, Copy)]
pub struct Defined<'a> {
    /// The file, as an index into the files checked together (0 for a plan).
    pub file: usize,
    /// The group's name, where it is written.
    pub name: &'a Spanned<String>,
    /// The group.
    pub group: &'a Group,
}

/// Why groups could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// Groups that contain each other: the path, its first group again at its end.
    Cycle(Vec<String>),
    /// The groups would hold more than [`MAX_MEMBERS`] host entries in all.
    TooLarge,
}

impl std::fmt::Display for ExpandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpandError::Cycle(path) => write!(
                f,
                "inventory groups contain each other: {}",
                path.join(" → ")
            ),
            ExpandError::TooLarge => write!(
                f,
                "the inventory's groups hold more than {MAX_MEMBERS} hosts in all once their children are counted"
            ),
        }
    }
}

/// Each group's hosts: its own, then its children's, each host once (see the module docs).
/// Children that are not groups are left out (checking reports them).
pub fn expand(
    groups: &BTreeMap<String, Group>,
) -> Result<BTreeMap<String, Vec<String>>, ExpandError> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        Open,
        Done,
    }
    let mut state: HashMap<&str, State> = groups.keys().map(|k| (k.as_str(), State::New)).collect();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut total = 0usize;
    for start in groups.keys() {
        if state[start.as_str()] == State::Done {
            continue;
        }
        // Depth first without recursion: a chain of 100,000 groups must not overflow the stack.
        let mut stack: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
        state.insert(start.as_str(), State::Open);
        while let Some(&(name, next)) = stack.last() {
            if let Some(child) = groups[name].children().get(next) {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                let child = child.value.as_str();
                match state.get(child) {
                    Some(State::New) => {
                        state.insert(child, State::Open);
                        stack.push((child, 0));
                    }
                    Some(State::Open) => {
                        let from = stack.iter().position(|(n, _)| *n == child).unwrap_or(0);
                        let mut path: Vec<String> =
                            stack[from..].iter().map(|(n, _)| n.to_string()).collect();
                        path.push(child.to_string());
                        return Err(ExpandError::Cycle(path));
                    }
                    Some(State::Done) | None => {}
                }
                continue;
            }
            stack.pop();
            let group = &groups[name];
            let mut seen: HashSet<&str> = HashSet::new();
            let mut hosts: Vec<String> = Vec::new();
            for h in group.hosts() {
                if seen.insert(h.name().value.as_str()) {
                    hosts.push(h.name().value.clone());
                }
            }
            for child in group.children() {
                for h in out.get(child.value.as_str()).into_iter().flatten() {
                    if seen.insert(h.as_str()) {
                        hosts.push(h.clone());
                    }
                }
            }
            drop(seen);
            total = total.saturating_add(hosts.len());
            if total > MAX_MEMBERS {
                return Err(ExpandError::TooLarge);
            }
            state.insert(name, State::Done);
            out.insert(name.to_string(), hosts);
        }
    }
    Ok(out)
}

/// Checks groups defined together (a plan's, or the files of one `--inventory`). `place`
/// names a place in another file (`inventories/prod/b.yaml:3:5`) for a diagnostic whose
/// other end is not in its own file. Diagnostics come with the file they belong to.
pub fn check(
    defs: &[Defined<'_>],
    place: &dyn Fn(usize, Span) -> String,
) -> Vec<(usize, Diagnostic)> {
    let mut out: Vec<(usize, Diagnostic)> = Vec::new();
    // Adds a related place: beside the diagnostic in the same file, else in its help.
    let relate = |d: Diagnostic, at: usize, file: usize, span: Span, label: String| {
        if file == at {
            d.related(span, label)
        } else {
            let help = format!("{label}: {}", place(file, span));
            let help = match &d.help {
                Some(h) => format!("{h}; {help}"),
                None => help,
            };
            d.help(help)
        }
    };
    // Reserved name and groups defined twice.
    let mut first: HashMap<&str, Defined<'_>> = HashMap::new();
    for def in defs {
        let name = def.name.value.as_str();
        if name == RESERVED_GROUP {
            out.push((
                def.file,
                Diagnostic::error(
                    "reserved-name",
                    def.name.span,
                    "`hosts` cannot name a group: `inventory.hosts` is every host's details",
                )
                .label("reserved")
                .help("give the group another name"),
            ));
        }
        match first.get(name) {
            Some(f) => {
                let d = Diagnostic::error(
                    "duplicate-group",
                    def.name.span,
                    format!("group `{name}` is defined twice"),
                )
                .label("second definition")
                .help("define each group in one file; list it under `children` to reuse it");
                out.push((
                    def.file,
                    relate(d, def.file, f.file, f.name.span, "first definition".into()),
                ));
            }
            None => {
                first.insert(name, *def);
            }
        }
    }
    // Hosts: listed twice in one group, defined twice with different settings.
    let mut details: HashMap<&str, (usize, &HostDetails)> = HashMap::new();
    for def in defs {
        let mut listed: HashMap<&str, Span> = HashMap::new();
        for host in def.group.hosts() {
            let h = host.name();
            if let Some(before) = listed.insert(&h.value, h.span) {
                out.push((
                    def.file,
                    Diagnostic::error(
                        "duplicate-host",
                        h.span,
                        format!(
                            "host `{}` is listed twice in group `{}`",
                            h.value, def.name.value
                        ),
                    )
                    .related(before, "first time"),
                ));
            }
            let Host::Detailed(d) = host else { continue };
            match details.get(d.name.value.as_str()) {
                Some((file, before)) if !same_settings(before, d) => {
                    let diag = Diagnostic::error(
                        "duplicate-host",
                        d.name.span,
                        format!("host `{}` is defined twice with different settings", d.name.value),
                    )
                    .label("second definition")
                    .help("write a host's address, port, user and vars once (a group may only place hosts) and its name alone elsewhere");
                    out.push((
                        def.file,
                        relate(
                            diag,
                            def.file,
                            *file,
                            before.name.span,
                            "first definition".into(),
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    details.insert(&d.name.value, (def.file, d));
                }
            }
        }
    }
    // Children that are not groups.
    for def in defs {
        for child in def.group.children() {
            if first.contains_key(child.value.as_str()) {
                continue;
            }
            let d = Diagnostic::error(
                "unknown-group",
                child.span,
                format!(
                    "group `{}` lists `{}` as a child, but no group is named so",
                    def.name.value, child.value
                ),
            )
            .label("not a group");
            let d = match did_you_mean(&child.value, first.keys().copied()) {
                Some(s) => d.help(format!("did you mean `{s}`?")),
                None => d.help("a child is the name of another group of the inventory"),
            };
            out.push((def.file, d));
        }
    }
    out.extend(cycles(defs, &first, &relate));
    if !out.iter().any(|(_, d)| d.is_error())
        && let Some(def) = defs.first()
    {
        let groups: BTreeMap<String, Group> = first
            .iter()
            .map(|(k, d)| (k.to_string(), d.group.clone()))
            .collect();
        if expand(&groups) == Err(ExpandError::TooLarge) {
            out.push((
                def.file,
                Diagnostic::error(
                    "too-many-hosts",
                    def.name.span,
                    ExpandError::TooLarge.to_string(),
                )
                .help("a group holds its children's hosts: split the inventory, or list fewer groups as children"),
            ));
        }
    }
    out
}

/// Groups that contain each other: one diagnostic per set of them (a strongly connected
/// component), naming every group in it, at the first `children` entry of the cycle shown.
fn cycles<'a>(
    defs: &[Defined<'a>],
    first: &HashMap<&str, Defined<'a>>,
    relate: &dyn Fn(Diagnostic, usize, usize, Span, String) -> Diagnostic,
) -> Vec<(usize, Diagnostic)> {
    use petgraph::graph::{DiGraph, NodeIndex};
    let order: Vec<&Defined<'a>> = defs
        .iter()
        .filter(|d| {
            first
                .get(d.name.value.as_str())
                .is_some_and(|f| std::ptr::eq(f.name, d.name))
        })
        .collect();
    let index: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.value.as_str(), i))
        .collect();
    let mut graph: DiGraph<usize, ()> = DiGraph::new();
    let nodes: Vec<NodeIndex> = (0..order.len()).map(|i| graph.add_node(i)).collect();
    for (i, d) in order.iter().enumerate() {
        for child in d.group.children() {
            if let Some(&j) = index.get(child.value.as_str()) {
                graph.update_edge(nodes[i], nodes[j], ());
            }
        }
    }
    let mut out = Vec::new();
    for component in petgraph::algo::tarjan_scc(&graph) {
        let mut members: Vec<usize> = component.iter().map(|n| graph[*n]).collect();
        members.sort_unstable();
        let start = members[0];
        let self_loop = order[start]
            .group
            .children()
            .iter()
            .any(|c| c.value == order[start].name.value);
        if members.len() == 1 && !self_loop {
            continue;
        }
        // One cycle through `start`, found breadth first within the component.
        let inside: HashSet<usize> = members.iter().copied().collect();
        let path = cycle_through(start, &order, &index, &inside);
        let names: Vec<String> = members
            .iter()
            .map(|&i| format!("`{}`", order[i].name.value))
            .collect();
        let shown: Vec<&str> = path.iter().map(|&i| order[i].name.value.as_str()).collect();
        let message = if members.len() == 1 {
            format!(
                "group `{}` lists itself as a child",
                order[start].name.value
            )
        } else {
            format!(
                "groups {} contain each other: {}",
                names.join(", "),
                shown.join(" → ")
            )
        };
        // The `children` entry of each step of the path.
        let entry = |from: usize, to: usize| {
            order[from]
                .group
                .children()
                .iter()
                .find(|c| c.value == order[to].name.value)
                .map_or(order[from].name.span, |c| c.span)
        };
        let at = order[start].file;
        let mut d = Diagnostic::error("group-cycle", entry(path[0], path[1]), message)
            .label(format!(
                "`{}` contains `{}`",
                order[path[0]].name.value, order[path[1]].name.value
            ))
            .help("remove one of the `children` on the cycle: a group cannot contain itself");
        for w in path.windows(2).skip(1) {
            let label = format!(
                "`{}` contains `{}`",
                order[w[0]].name.value, order[w[1]].name.value
            );
            d = relate(d, at, order[w[0]].file, entry(w[0], w[1]), label);
        }
        for &m in &members {
            if !path.contains(&m) {
                d = relate(
                    d,
                    at,
                    order[m].file,
                    order[m].name.span,
                    format!("`{}` is on the cycle too", order[m].name.value),
                );
            }
        }
        out.push((at, d));
    }
    out
}

/// A path from `start` back to itself through groups of `inside` (its first and last element
/// are `start`).
fn cycle_through(
    start: usize,
    order: &[&Defined<'_>],
    index: &HashMap<&str, usize>,
    inside: &HashSet<usize>,
) -> Vec<usize> {
    let mut before: HashMap<usize, usize> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(at) = queue.pop_front() {
        for child in order[at].group.children() {
            let Some(&next) = index.get(child.value.as_str()) else {
                continue;
            };
            if !inside.contains(&next) {
                continue;
            }
            if next == start {
                let mut path = vec![start];
                let mut cur = at;
                while cur != start {
                    path.push(cur);
                    cur = before[&cur];
                }
                path.push(start);
                path.reverse();
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = before.entry(next) {
                e.insert(at);
                queue.push_back(next);
            }
        }
    }
    vec![start, start]
}

/// Whether two definitions of a host say the same: address, port, user and vars (positions
/// aside).
fn same_settings(a: &HostDetails, b: &HostDetails) -> bool {
    let v = |s: &Option<Spanned<String>>| s.as_ref().map(|s| s.value.clone());
    let vars = |h: &HostDetails| -> Vec<(String, Value)> {
        h.vars
            .iter()
            .map(|(k, n)| (k.value.clone(), n.to_json()))
            .collect()
    };
    v(&a.address) == v(&b.address)
        && a.port.as_ref().map(|p| p.value) == b.port.as_ref().map(|p| p.value)
        && v(&a.user) == v(&b.user)
        && vars(a) == vars(b)
}

/// A host's record as templates see it (`host`, `inventory.hosts.NAME`): `name`, `address`
/// (the name when none is written), `port` and `user` when written, `vars`.
pub fn host_record(name: &str, details: Option<&HostDetails>) -> Value {
    let mut r = Map::new();
    r.insert("name".into(), json!(name));
    let address = details
        .and_then(|d| d.address.as_ref())
        .map_or(name, |a| a.value.as_str());
    r.insert("address".into(), json!(address));
    if let Some(p) = details.and_then(|d| d.port.as_ref()) {
        r.insert("port".into(), json!(p.value));
    }
    if let Some(u) = details.and_then(|d| d.user.as_ref()) {
        r.insert("user".into(), json!(u.value));
    }
    let vars: Map<String, Value> = details
        .map(|d| {
            d.vars
                .iter()
                .map(|(k, n)| (k.value.clone(), n.to_json()))
                .collect()
        })
        .unwrap_or_default();
    r.insert("vars".into(), Value::Object(vars));
    Value::Object(r)
}

/// The top-level key of a bundle of inventory files (see [`bundle`]).
pub const BUNDLE_KEY: &str = "rollbook_inventory_files";

/// The files of an inventory directory as one YAML document: a mapping under [`BUNDLE_KEY`]
/// of each file's name to its text (a literal block, or a quoted string for text a block
/// cannot hold as is). No inventory can look like this (a group is a list or a mapping of
/// `hosts` and `children`), so [`unbundle`] tells a bundle from an inventory file.
pub fn bundle(files: &[SourceFile]) -> String {
    let mut out = String::from(
        "# The inventory this run used: the files of an `--inventory` directory, in the order read.\n",
    );
    out.push_str(BUNDLE_KEY);
    out.push_str(":\n");
    for f in files {
        out.push_str("  ");
        out.push_str(&double_quoted(&f.name));
        out.push(':');
        let text: &str = &f.text;
        let blockable = !text.is_empty()
            && !text.chars().any(|c| {
                (c.is_control() && c != '\n' && c != '\t')
                    || matches!(c, '\u{feff}' | '\u{2028}' | '\u{2029}')
            });
        if !blockable {
            out.push(' ');
            out.push_str(&double_quoted(text));
            out.push('\n');
            continue;
        }
        let body = text.strip_suffix('\n');
        out.push_str(if body.is_some() { " |2+\n" } else { " |2-\n" });
        for line in body.unwrap_or(text).split('\n') {
            if !line.is_empty() {
                out.push_str("    ");
                out.push_str(line);
            }
            out.push('\n');
        }
    }
    out
}

/// `text` as a YAML double-quoted scalar: `"` and `\` escaped, and every character YAML
/// may not hold as is, or could read as a line break, as `\uXXXX`.
fn double_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() || matches!(c, '\u{feff}' | '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The files of a bundle written by [`bundle`]; `None` when `text` is not one (an inventory
/// file as it was given).
pub fn unbundle(text: &str) -> Option<Vec<SourceFile>> {
    use crate::yaml::NodeKind;
    // Each file was at most the size of a file; the bundle holds several, each one scalar.
    let limits = crate::yaml::Limits {
        max_file_bytes: usize::MAX,
        max_scalar_bytes: usize::MAX,
        ..crate::yaml::Limits::default()
    };
    let root = crate::yaml::parse(text, &limits).ok()??;
    let NodeKind::Map(entries) = &root.kind else {
        return None;
    };
    let [(key, files)] = entries.as_slice() else {
        return None;
    };
    if key.as_str() != Some(BUNDLE_KEY) {
        return None;
    }
    let NodeKind::Map(files) = &files.kind else {
        return None;
    };
    files
        .iter()
        .map(|(name, text)| match (&name.kind, &text.kind) {
            (NodeKind::Scalar { text: name, .. }, NodeKind::Scalar { text, plain: false }) => {
                Some(SourceFile::new(name.clone(), text.clone()))
            }
            _ => None,
        })
        .collect()
}
