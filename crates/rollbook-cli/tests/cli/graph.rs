//! `rollbook graph`: every plan renders where people look (within Mermaid's default limits),
//! and a rolling rollout is drawn as it runs, one instance after the other.

use std::collections::HashSet;

use rollbook_cli::graph::{self, Format};

use crate::dry_runs::{compile_file, plan_files};

/// Mermaid 11's default `maxEdges`: past it, a chart fails with "Edge limit exceeded".
const MAX_EDGES: usize = 500;
/// Mermaid 11's default `maxTextSize`, in characters.
const MAX_TEXT: usize = 50_000;

/// The edges of a Mermaid flowchart (`a --> b`, `a -.-> b`) as id pairs, after checking that
/// the chart is well formed: subgraphs closed, ids declared once, every edge between ids
/// declared (nodes, subgraphs or the phases).
fn mermaid_edges(text: &str) -> Vec<(String, String)> {
    assert!(text.starts_with("flowchart TD\n"), "{text}");
    let mut declared: HashSet<String> = HashSet::new();
    let mut edges = Vec::new();
    let mut depth = 0usize;
    for line in text.lines().skip(1) {
        let line = line.trim();
        if line == "end" {
            depth = depth.checked_sub(1).expect("`end` without `subgraph`");
        } else if let Some(rest) = line.strip_prefix("subgraph ") {
            depth += 1;
            let id = rest.split([' ', '[']).next().unwrap().to_string();
            assert!(declared.insert(id.clone()), "{id} declared twice");
        } else if let Some((from, to)) = line
            .split_once(" --> ")
            .or_else(|| line.split_once(" -.-> "))
        {
            edges.push((from.to_string(), to.to_string()));
        } else {
            let (id, label) = line.split_once('[').expect(line);
            assert!(label.starts_with('"') && label.ends_with("\"]"), "{line}");
            assert!(declared.insert(id.to_string()), "{id} declared twice");
        }
    }
    assert_eq!(depth, 0, "a subgraph is not closed");
    for (from, to) in &edges {
        assert!(declared.contains(from), "edge from undeclared `{from}`");
        assert!(declared.contains(to), "edge to undeclared `{to}`");
    }
    edges
}

#[test]
fn every_plan_and_example_renders_within_mermaids_default_limits() {
    let mut checked = Vec::new();
    for dir in ["plans", "examples"] {
        for path in plan_files(&crate::workspace().join(dir)) {
            let compiled = compile_file(&path);
            let text = graph::render(&compiled, Format::Mermaid);
            let edges = mermaid_edges(&text).len();
            let chars = text.chars().count();
            assert!(edges < MAX_EDGES, "{}: {edges} edges", path.display());
            assert!(chars < MAX_TEXT, "{}: {chars} characters", path.display());
            checked.push((compiled.name, edges, chars));
        }
    }
    assert!(checked.len() >= 14, "{checked:?}");
    // The largest plan, which had 1,485 edges when every end of a step was linked to every
    // start of the next.
    let (_, edges, _) = checked
        .iter()
        .find(|(name, _, _)| name == "emergency-platform-rollback")
        .unwrap();
    assert!(*edges < 150, "{edges}");
}

/// The id and the line of the subgraph whose label starts with `label`.
fn subgraph<'t>(text: &'t str, label: &str) -> (&'t str, &'t str) {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("subgraph ") && l.contains(&format!("[\"{label}")))
        .map(|l| (l["subgraph ".len()..].split(' ').next().unwrap(), l))
        .unwrap_or_else(|| panic!("no subgraph `{label}` in\n{text}"))
}

/// The ids of the nodes whose label starts with `label`, in the order drawn.
fn nodes<'t>(text: &'t str, label: &str) -> Vec<&'t str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("subgraph ") && l.contains(&format!("[\"{label}")))
        .map(|l| l.split('[').next().unwrap())
        .collect()
}

#[test]
fn a_one_at_a_time_rollout_is_one_box_with_its_instances_in_a_chain() {
    let path = crate::workspace().join("plans/emergency-platform-rollback.yaml");
    let text = graph::render(&compile_file(&path), Format::Mermaid);
    let edges = mermaid_edges(&text);
    let has = |from: &str, arrow: &str, to: &str| text.contains(&format!("{from} {arrow} {to}\n"));

    // Phase 1 rolls over the nine operators one at a time: one labelled box, its instances
    // chained in inventory order, and one arrow from the box to the next step's box.
    let (stop_edge, line) = subgraph(&text, "stop-edge-proxies ·");
    assert!(
        line.contains("9 instances · concurrency 1 (one at a time) · max_failures 0"),
        "{line}"
    );
    let instances = nodes(&text, "stop-edge-proxies[");
    assert_eq!(instances.len(), 9);
    assert!(text.contains("[\"stop-edge-proxies[us-east-op-1] (ssh)\"]"));
    for pair in instances.windows(2) {
        assert!(
            has(pair[0], "-.->", pair[1]),
            "{} -.-> {}",
            pair[0],
            pair[1]
        );
    }
    let (stop_all, line) = subgraph(&text, "stop-all-services ·");
    assert!(
        line.contains("no concurrency limit (all at once)"),
        "{line}"
    );
    assert!(has(stop_edge, "-->", stop_all));
    // Nothing else leaves the rollout: no arrow from one of its instances to a later step.
    let leaving: Vec<_> = edges
        .iter()
        .filter(|(from, to)| {
            instances.contains(&from.as_str()) && !instances.contains(&to.as_str())
        })
        .collect();
    assert!(leaving.is_empty(), "{leaving:?}");
    // Run at once, the 27 instances of phase 2 are not chained.
    let all = nodes(&text, "stop-all-services[");
    assert_eq!(all.len(), 27);
    assert!(!edges.iter().any(|(from, _)| all.contains(&from.as_str())));
}

#[test]
fn small_graphs_in_both_formats() {
    let path = crate::workspace().join("examples/rolling-restart.yaml");
    let compiled = compile_file(&path);
    insta::assert_snapshot!(
        "graph__rolling_restart__mermaid",
        graph::render(&compiled, Format::Mermaid)
    );
    insta::assert_snapshot!(
        "graph__rolling_restart__dot",
        graph::render(&compiled, Format::Dot)
    );
}
