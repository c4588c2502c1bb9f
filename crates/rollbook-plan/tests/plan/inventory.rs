//! Inventories: groups of groups, host records in templates, inventories made of files.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rollbook_plan::compile::{self, CompiledPlan, ParamInput, RunInfo};
use rollbook_plan::inventory::{self, ExpandError};
use rollbook_plan::model::{Group, GroupDetails, Host, Spanned};
use rollbook_plan::render::{RunState, node_context};
use rollbook_plan::{SourceFile, Span};
use serde_json::{Value, json};

use crate::compile::names;

fn run_info() -> RunInfo {
    RunInfo {
        id: "r1".into(),
        reason: "test".into(),
        user: "alice".into(),
        started_at: "2026-11-25T00:00:00Z".into(),
    }
}

fn compile_full(
    text: &str,
    extra: &BTreeMap<String, Group>,
    limit: &[&str],
) -> Result<CompiledPlan, rollbook_plan::Error> {
    let plan = crate::plan(text);
    let params = compile::bind_params(&plan, &ParamInput::default()).unwrap();
    let limit: Vec<String> = limit.iter().map(|s| s.to_string()).collect();
    compile::compile_limited(&plan, params, extra, &run_info(), &limit)
}

fn compiled(text: &str) -> CompiledPlan {
    compile_full(text, &BTreeMap::new(), &[]).unwrap()
}

/// The rendered previews (target and body) of a phase's nodes, by name.
fn previews(c: &CompiledPlan) -> BTreeMap<String, String> {
    let renderer = rollbook_plan::template::Renderer::new();
    let phase = &c.phases[0];
    phase
        .graph
        .node_indices()
        .map(|n| {
            let node = &phase.graph[n];
            let p = rollbook_plan::preview::preview(c, phase, node, &renderer);
            (
                node.name.clone(),
                format!(
                    "{} | {} | {}",
                    p.title.unwrap_or_default(),
                    p.target,
                    p.body.join("; ")
                ),
            )
        })
        .collect()
}

const FLEET: &str = r#"
version: 1
name: fleet
inventory:
  us-east:
    - { name: op-1, address: 10.0.0.1, port: 2222, user: ops, vars: { datacenter: iad-1, rack: 4 } }
    - op-2
  eu-west:
    - { name: eu-1, vars: { datacenter: fra-2 } }
  operators:
    children: [us-east, eu-west]
  workers: [w-1, op-2]
  all:
    hosts: [bastion]
    children: [operators, workers]
steps:
  - id: each
    for_each: "{{ inventory.all }}"
    shell: { run: "echo {{ item }}" }
"#;

#[test]
fn a_group_holds_its_hosts_then_its_childrens_each_once() {
    let c = compiled(FLEET);
    assert_eq!(c.inventory["operators"], ["op-1", "op-2", "eu-1"]);
    // Own hosts first, then each child in order; op-2 (in operators and workers) once.
    assert_eq!(
        c.inventory["all"],
        ["bastion", "op-1", "op-2", "eu-1", "w-1"]
    );
    assert_eq!(
        names(&c.phases[0]),
        [
            "each[bastion]",
            "each[op-1]",
            "each[op-2]",
            "each[eu-1]",
            "each[w-1]"
        ]
    );
}

#[test]
fn limit_to_a_group_means_its_children_too() {
    let c = compile_full(FLEET, &BTreeMap::new(), &["operators"]).unwrap();
    assert_eq!(
        names(&c.phases[0]),
        ["each[op-1]", "each[op-2]", "each[eu-1]"]
    );
}

#[test]
fn an_inventory_file_replaces_a_child_and_the_parent_follows() {
    let extra =
        rollbook_plan::load_inventory(&SourceFile::new("prod.yaml", "eu-west: [eu-7, eu-8]\n"))
            .unwrap();
    let c = compile_full(FLEET, &extra, &[]).unwrap();
    assert_eq!(c.inventory["operators"], ["op-1", "op-2", "eu-7", "eu-8"]);
}

#[test]
fn groups_that_contain_each_other_only_with_the_file_are_refused_at_compile_time() {
    let extra = rollbook_plan::load_inventory(&SourceFile::new(
        "prod.yaml",
        "eu-west: { children: [extra] }\nextra: { children: [side] }\nside: [x]\n",
    ))
    .unwrap();
    assert!(compile_full(FLEET, &extra, &[]).is_ok());
    let cyclic = rollbook_plan::load_inventory(&SourceFile::new(
        "prod.yaml",
        "eu-west: { children: [more] }\nmore: { children: [x] }\nx: []\n",
    ))
    .unwrap();
    assert!(compile_full(FLEET, &cyclic, &[]).is_ok());
    // `us-east` of the file holds `all` of the plan, which holds `us-east` (through operators).
    let looping = rollbook_plan::load_inventory(&SourceFile::new(
        "prod.yaml",
        "us-east: { hosts: [z], children: [more] }\nmore: [y]\n",
    ))
    .unwrap();
    assert!(compile_full(FLEET, &looping, &[]).is_ok());
    let mut back = looping.clone();
    back.insert(
        "more".into(),
        Group::Nested(GroupDetails {
            hosts: vec![],
            children: vec![Spanned::new("all".into(), Span::default())],
        }),
    );
    let err = compile_full(FLEET, &back, &[]).unwrap_err().to_string();
    assert!(err.contains("inventory groups contain each other"), "{err}");
    assert!(
        err.contains("all") && err.contains("us-east") && err.contains("more"),
        "{err}"
    );
}

const HOSTS: &str = r#"
version: 1
name: hosts
inventory:
  operators:
    - { name: op-1, address: 10.0.0.1, port: 2222, user: ops, vars: { datacenter: iad-1, rack: 4 } }
    - { name: op-2, vars: { datacenter: fra-2 } }
  bastions: [bastion]
steps:
  - id: per-host
    for_each: "{{ inventory.operators }}"
    steps:
      - id: say
        name: "{{ item }} in {{ host.vars.datacenter }}"
        shell: { run: "echo {{ host.address }} {{ host.vars.datacenter }}" }
  - id: over-ssh
    ssh:
      host: op-1
      run: "echo {{ host.vars.rack }} {{ host.port }} {{ host.user }}"
  - id: anywhere
    shell: { run: "echo {{ inventory.hosts.op-2.vars.datacenter }} {{ inventory.hosts.bastion.address }}" }
  - id: objects
    for_each:
      - { name: op-2, extra: 1 }
    shell: { run: "echo {{ host.vars.datacenter }}" }
"#;

#[test]
fn host_vars_are_read_where_a_host_is_in_scope_and_through_inventory_hosts() {
    let c = compiled(HOSTS);
    let p = previews(&c);
    let (one, two) = (&p["per-host[op-1].say"], &p["per-host[op-2].say"]);
    assert!(one.starts_with("op-1 in iad-1 |"), "{one}");
    assert!(one.ends_with("echo 10.0.0.1 iad-1"), "{one}");
    assert!(two.ends_with("echo op-2 fra-2"), "{two}");
    assert!(
        p["over-ssh"].ends_with("echo 4 2222 ops"),
        "{}",
        p["over-ssh"]
    );
    assert!(
        p["anywhere"].ends_with("echo fra-2 bastion"),
        "{}",
        p["anywhere"]
    );
    assert!(
        p["objects[op-2]"].ends_with("echo fra-2"),
        "{}",
        p["objects[op-2]"]
    );
}

#[test]
fn the_ssh_host_wins_over_the_item() {
    let c = compiled(
        r#"
version: 1
name: jump
inventory:
  operators: [{ name: op-1, vars: { role: op } }]
  bastions: [{ name: jump-1, vars: { role: bastion } }]
steps:
  - id: via
    for_each: "{{ inventory.operators }}"
    ssh: { host: jump-1, run: "echo {{ host.vars.role }} {{ item }}" }
"#,
    );
    assert!(previews(&c)["via[op-1]"].ends_with("echo bastion op-1"));
}

#[test]
fn a_host_record_does_not_bring_the_inventory_into_a_nodes_context() {
    // The scale property: a node gets the inventory only when a template names it.
    let c = compiled(HOSTS);
    let phase = &c.phases[0];
    let secrets = serde_json::Map::new();
    let ctx = |name: &str| {
        let n = phase
            .graph
            .node_indices()
            .find(|&n| phase.graph[n].name == name)
            .unwrap();
        node_context(
            &c,
            &phase.graph,
            &phase.graph[n],
            &secrets,
            RunState::running(),
            &|_| None,
        )
    };
    let per_host = ctx("per-host[op-2].say");
    assert_eq!(per_host["inventory"], json!({}));
    assert_eq!(
        per_host["host"],
        json!({ "name": "op-2", "address": "op-2", "vars": { "datacenter": "fra-2" } })
    );
    let anywhere = ctx("anywhere");
    assert_eq!(
        anywhere["inventory"]["hosts"]["op-1"]["vars"]["rack"],
        json!(4)
    );
    assert!(anywhere.get("host").is_none());
}

#[test]
fn host_outside_a_for_each_or_ssh_step_is_no_host_and_typos_are_caught() {
    let base = |steps: &str| {
        format!(
            "version: 1\nname: t\ninventory:\n  ops: [{{ name: a, vars: {{ dc: x }} }}]\n  all: {{ children: [ops] }}\nsteps:\n{steps}"
        )
    };
    assert_eq!(
        crate::codes(&base(
            "  - id: s\n    shell: { run: \"echo {{ host.vars.dc }}\" }\n"
        )),
        ["no-host"]
    );
    assert_eq!(
        crate::codes(&base(
            "  - id: s\n    for_each: \"{{ inventory.all }}\"\n    shell: { run: \"echo {{ host.varz.dc }}\" }\n"
        )),
        ["unknown-name"]
    );
    assert_eq!(
        crate::codes(&base(
            "  - id: s\n    shell: { run: \"echo {{ inventory.alll }}\" }\n"
        )),
        ["unknown-name"]
    );
    assert_eq!(
        crate::codes(&base(
            "  - id: s\n    shell: { run: \"echo {{ inventory.hosts.a.vars.dc }} {{ inventory.hosts.elsewhere.address }}\" }\n"
        )),
        Vec::<&str>::new()
    );
    assert_eq!(
        crate::codes(&base(
            "  - id: s\n    shell: { run: \"echo {{ inventory.hosts.a.adress }}\" }\n"
        )),
        ["unknown-name"]
    );
    // A group with children is a declared group; so is a group read by for_each.
    assert_eq!(
        crate::codes(&base(
            "  - id: s\n    ssh: { host: a, run: \"echo {{ host.address }} {{ inventory.all }}\" }\n"
        )),
        Vec::<&str>::new()
    );
}

fn inventory_codes(text: &str) -> Vec<&'static str> {
    let full = format!("version: 1\nname: t\ninventory:\n{text}steps:\n  - id: s\n    sleep: 1s\n");
    crate::codes(&full)
}

#[test]
fn inventory_problems_are_diagnostics() {
    assert_eq!(
        inventory_codes("  a: { children: [b] }\n  b: { children: [c] }\n  c: { children: [a] }\n"),
        ["group-cycle"]
    );
    assert_eq!(inventory_codes("  a: { children: [a] }\n"), ["group-cycle"]);
    assert_eq!(
        inventory_codes("  a: { children: [bee] }\n  be: []\n"),
        ["unknown-group"]
    );
    assert_eq!(inventory_codes("  a: { hots: [x] }\n"), ["unknown-key"]);
    assert_eq!(inventory_codes("  hosts: [x]\n"), ["reserved-name"]);
    assert_eq!(
        inventory_codes("  a: [{ name: x, port: 22 }]\n  b: [{ name: x, port: 2222 }]\n"),
        ["duplicate-host"]
    );
    assert_eq!(
        inventory_codes(
            "  a: [{ name: x, vars: { dc: 1 } }]\n  b: [{ name: x, vars: { dc: 2 } }]\n"
        ),
        ["duplicate-host"]
    );
    // The same details twice, or the name alone elsewhere: fine.
    assert!(inventory_codes(
        "  a: [{ name: x, port: 22, vars: { dc: 1 } }]\n  b: [{ name: x, port: 22, vars: { dc: 1 } }, y]\n  c: [x]\n"
    )
    .is_empty());
    assert_eq!(inventory_codes("  a: [x, x]\n"), ["duplicate-host"]);
    assert_eq!(inventory_codes("  a: 3\n"), ["wrong-type"]);
}

#[test]
fn a_cycle_names_every_group_on_it_with_each_children_entry() {
    let text = "version: 1\nname: t\ninventory:\n  a: { children: [b] }\n  b: { children: [c] }\n  c: { children: [a, d] }\n  d: []\nsteps:\n  - id: s\n    sleep: 1s\n";
    let checked = rollbook_plan::check(SourceFile::new("t.yaml", text), None);
    let d = &checked.diagnostics[0];
    assert_eq!(d.code, "group-cycle");
    assert_eq!(
        d.message,
        "groups `a`, `b`, `c` contain each other: a → b → c → a"
    );
    // At the `b` of `a`'s children; the `c` of `b`'s and the `a` of `c`'s are marked.
    assert_eq!(&text[d.span.offset..d.span.offset + d.span.len], "b");
    let marked: Vec<&str> = d
        .related
        .iter()
        .map(|(s, _)| &text[s.offset..s.offset + s.len])
        .collect();
    assert_eq!(marked, ["c", "a"]);
}

#[test]
fn inventory_files_are_one_inventory_and_name_both_places_of_a_conflict() {
    let files = [
        SourceFile::new("inv/a.yaml", "all: { children: [web, db] }\nweb: [web-1]\n"),
        SourceFile::new("inv/b.yaml", "db: [{ name: db-1, address: 10.0.0.5 }]\n"),
    ];
    let groups = rollbook_plan::load_inventory_files(&files).unwrap();
    let expanded = inventory::expand(&groups).unwrap();
    assert_eq!(expanded["all"], ["web-1", "db-1"]);

    let files = [
        SourceFile::new("inv/a.yaml", "web: [{ name: web-1, port: 22 }]\n"),
        SourceFile::new(
            "inv/b.yaml",
            "# more\nweb: [web-2]\nother: [{ name: web-1, port: 2222 }]\n",
        ),
    ];
    let diags = rollbook_plan::load_inventory_files(&files).unwrap_err();
    let found: Vec<(usize, &str, String)> = diags
        .iter()
        .map(|(f, d)| (*f, d.code, d.help.clone().unwrap_or_default()))
        .collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!((found[0].0, found[0].1), (1, "duplicate-group"));
    assert!(
        found[0].2.contains("first definition: inv/a.yaml:1:1"),
        "{}",
        found[0].2
    );
    assert_eq!((found[1].0, found[1].1), (1, "duplicate-host"));
    assert!(
        found[1].2.contains("first definition: inv/a.yaml:1:15"),
        "{}",
        found[1].2
    );
}

#[test]
fn a_bundle_of_files_reads_back_as_the_same_files() {
    let files = vec![
        SourceFile::new("inv/a.yaml", "web: [web-1]\n"),
        SourceFile::new("inv/b c.yml", "  # indented first line\ndb: [db-1]\n\n\n"),
        SourceFile::new("inv/\"q\".yaml", "x: [y]"),
        SourceFile::new("inv/empty.yaml", ""),
        SourceFile::new("inv/crlf.yaml", "x: [y]\r\n"),
    ];
    let text = inventory::bundle(&files);
    let back = inventory::unbundle(&text).expect("a bundle");
    let pairs = |f: &[SourceFile]| -> Vec<(String, String)> {
        f.iter()
            .map(|f| (f.name.clone(), f.text.to_string()))
            .collect()
    };
    assert_eq!(pairs(&back), pairs(&files), "{text}");
    // An inventory file is not a bundle.
    assert!(inventory::unbundle("web: [web-1]\n").is_none());
    assert!(inventory::unbundle("rollbook_inventory_files: [a]\n").is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any text of each file comes back as it was.
    #[test]
    fn bundles_keep_any_text(texts in proptest::collection::vec("(?s).{0,80}", 1..4)) {
        let files: Vec<SourceFile> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| SourceFile::new(format!("f{i}.yaml"), t.as_str()))
            .collect();
        let back = inventory::unbundle(&inventory::bundle(&files)).expect("a bundle");
        let got: Vec<String> = back.iter().map(|f| f.text.to_string()).collect();
        prop_assert_eq!(got, texts);
    }

    /// On any graph of groups: expansion ends; with no cycle it gives each group every host
    /// of the groups it reaches, each once, its own first in order; with a cycle it says so.
    #[test]
    fn expansion_gives_each_host_once_and_ends_on_any_graph(
        n in 1usize..12,
        edges in proptest::collection::vec((0usize..12, 0usize..12), 0..30),
        own in proptest::collection::vec(proptest::collection::vec(0usize..8, 0..4), 12),
        acyclic in any::<bool>(),
    ) {
        // Only edges from a lower to a higher index when the graph must be a DAG.
        let edges: Vec<(usize, usize)> = edges
            .into_iter()
            .map(|(a, b)| (a % n, b % n))
            .filter(|(a, b)| !acyclic || a < b)
            .collect();
        let name = |i: usize| format!("g{i}");
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        for (i, own_hosts) in own.iter().enumerate().take(n) {
            let children: Vec<Spanned<String>> = edges
                .iter()
                .filter(|(a, _)| *a == i)
                .map(|(_, b)| Spanned::new(name(*b), Span::default()))
                .collect();
            let hosts: Vec<Host> = own_hosts
                .iter()
                .map(|h| Host::Name(Spanned::new(format!("h{h}"), Span::default())))
                .collect();
            groups.insert(name(i), Group::Nested(GroupDetails { hosts, children }));
        }
        let mut graph = petgraph::graph::DiGraph::<usize, ()>::new();
        let nodes: Vec<_> = (0..n).map(|i| graph.add_node(i)).collect();
        for (a, b) in &edges {
            graph.add_edge(nodes[*a], nodes[*b], ());
        }
        match inventory::expand(&groups) {
            Ok(expanded) => {
                prop_assert!(!petgraph::algo::is_cyclic_directed(&graph));
                for i in 0..n {
                    let list = &expanded[&name(i)];
                    let unique: BTreeSet<&String> = list.iter().collect();
                    prop_assert_eq!(unique.len(), list.len(), "a host twice in {:?}", list);
                    let mut reach = BTreeSet::new();
                    let mut dfs = petgraph::visit::Dfs::new(&graph, nodes[i]);
                    while let Some(x) = dfs.next(&graph) {
                        for h in &own[graph[x]] {
                            reach.insert(format!("h{h}"));
                        }
                    }
                    prop_assert_eq!(unique.into_iter().cloned().collect::<BTreeSet<_>>(), reach);
                    let mut first_own: Vec<String> = Vec::new();
                    for h in &own[i] {
                        let h = format!("h{h}");
                        if !first_own.contains(&h) {
                            first_own.push(h);
                        }
                    }
                    prop_assert_eq!(&list[..first_own.len()], &first_own[..]);
                }
            }
            Err(ExpandError::Cycle(path)) => {
                prop_assert!(petgraph::algo::is_cyclic_directed(&graph));
                prop_assert_eq!(path.first(), path.last());
                prop_assert!(path.len() >= 2);
            }
            Err(ExpandError::TooLarge) => prop_assert!(false, "too large"),
        }
    }
}

#[test]
fn a_long_chain_of_groups_expands_without_deep_recursion() {
    let n = 50_000;
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for i in 0..n {
        let children = if i + 1 < n {
            vec![Spanned::new(format!("g{}", i + 1), Span::default())]
        } else {
            vec![]
        };
        groups.insert(
            format!("g{i}"),
            Group::Nested(GroupDetails {
                hosts: vec![],
                children,
            }),
        );
    }
    groups.insert(
        format!("g{}", n - 1),
        Group::Hosts(vec![Host::Name(Spanned::new("h".into(), Span::default()))]),
    );
    let expanded = inventory::expand(&groups).unwrap();
    assert_eq!(expanded["g0"], ["h"]);
    // Each of 2,000 groups holding the next and a host of its own: past the cap, refused.
    let mut squares: BTreeMap<String, Group> = BTreeMap::new();
    for i in 0..2_000 {
        squares.insert(
            format!("g{i:05}"),
            Group::Nested(GroupDetails {
                hosts: vec![Host::Name(Spanned::new(format!("h{i}"), Span::default()))],
                children: vec![Spanned::new(format!("g{:05}", i + 1), Span::default())],
            }),
        );
    }
    assert_eq!(inventory::expand(&squares), Err(ExpandError::TooLarge));
}

#[test]
fn host_records_in_the_context() {
    let c = compiled(HOSTS);
    assert_eq!(
        c.context["inventory"]["hosts"]["op-1"],
        json!({"name": "op-1", "address": "10.0.0.1", "port": 2222, "user": "ops", "vars": {"datacenter": "iad-1", "rack": 4}})
    );
    assert_eq!(
        c.context["inventory"]["hosts"]["bastion"],
        json!({"name": "bastion", "address": "bastion", "vars": {}})
    );
    assert_eq!(c.context["inventory"]["operators"], json!(["op-1", "op-2"]));
    let _: &Value = &c.context;
}
