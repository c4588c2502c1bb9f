//! `rollbook graph`: the compiled graph as Mermaid (renders in pull requests) or Graphviz dot.
//!
//! Drawn as the plan is written: every group, `for_each` and group instance is a box of its
//! own, and a step waits for the step before it with one arrow between the two, not one per
//! node pair. A `for_each` with `concurrency: 1` chains its instances with dotted arrows, one
//! at a time. So a plan of a few hundred nodes stays far below Mermaid's default limits
//! (500 edges, 50,000 characters), and a rolling rollout reads as one.

use std::collections::HashMap;
use std::fmt::Write;

use clap::ValueEnum;
use rollbook_plan::compile::{CompiledPlan, FanOut, Outline, Part, Phase};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Mermaid,
    Dot,
}

pub fn render(plan: &CompiledPlan, format: Format) -> String {
    match format {
        Format::Mermaid => mermaid(plan),
        Format::Dot => dot(plan),
    }
}

/// One phase, ready to draw: the outline of its nodes and an id for each part.
struct Drawing<'a> {
    phase: &'a Phase,
    outline: Outline,
    /// `p0n3` for a node, `p0c1` for a group, fan-out or instance.
    ids: HashMap<Part, String>,
}

impl<'a> Drawing<'a> {
    fn new(p: usize, phase: &'a Phase) -> Self {
        let outline = phase.outline();
        let mut ids = HashMap::new();
        let mut clusters = 0;
        // Clusters numbered in the order the plan writes them (depth first).
        let mut todo: Vec<Part> = outline.children(None).iter().rev().cloned().collect();
        while let Some(part) = todo.pop() {
            let id = match &part {
                Part::Node(n) => format!("p{p}n{}", n.index()),
                _ => {
                    clusters += 1;
                    format!("p{p}c{clusters}")
                }
            };
            todo.extend(outline.children(Some(&part)).iter().rev().cloned());
            ids.insert(part, id);
        }
        Drawing {
            phase,
            outline,
            ids,
        }
    }

    fn id(&self, part: &Part) -> &str {
        &self.ids[part]
    }

    /// A node's box: its name and action (`roll[web-1].stop (ssh)`).
    fn node_label(&self, part: &Part) -> String {
        let Part::Node(n) = part else {
            return String::new();
        };
        let node = &self.phase.graph[*n];
        let kind = node.step.action().kind();
        let mut label = match node.deferred {
            Some(_) => format!("{} ({kind}, for_each at run time)", node.name),
            None => format!("{} ({kind})", node.name),
        };
        // The point of no return, and the steps that can be put back.
        if node.step.is_irreversible() {
            label.push_str(" ⚠ irreversible");
        }
        if node.step.undo.is_some() {
            label.push_str(" ↺ undo");
        }
        label
    }

    /// A box around nodes: a group, a group's instance, or a `for_each` with its limits.
    fn cluster_label(&self, part: &Part) -> String {
        match part {
            Part::Group(path) if self.is_parallel(part) => format!("{path} · steps together"),
            Part::Group(path) if self.called(part).is_some() => {
                format!("{path} · plan {}", self.called(part).unwrap_or_default())
            }
            Part::Group(path) | Part::Instance(path) => path.clone(),
            Part::FanOut(f) => fan_out_label(&self.phase.fan_outs[*f]),
            Part::Node(_) => String::new(),
        }
    }

    /// The plan a group stands for, when it is a call (`plan: NAME`).
    fn called(&self, part: &Part) -> Option<String> {
        let &n = self.outline.nodes_in(part).first()?;
        let path = self.outline.path(n);
        let depth = path
            .iter()
            .take_while(|p| *p != part)
            .filter(|p| matches!(p, Part::Group(_) | Part::Instance(_)))
            .count();
        let group = self.phase.graph[n].groups.get(depth)?;
        group.plan.as_ref().map(|p| p.value.clone())
    }

    /// A group whose steps say `parallel: true`.
    fn is_parallel(&self, part: &Part) -> bool {
        let Some(&n) = self.outline.nodes_in(part).first() else {
            return false;
        };
        let path = self.outline.path(n);
        let depth = path
            .iter()
            .take_while(|p| *p != part)
            .filter(|p| matches!(p, Part::Group(_) | Part::Instance(_)))
            .count();
        self.phase.graph[n]
            .groups
            .get(depth)
            .is_some_and(|g| g.is_parallel())
    }

    /// One arrow per step and the step before it, where their nodes' paths part.
    fn order_edges(&self) -> Vec<(Part, Part)> {
        self.outline.edges(self.phase)
    }

    /// Dotted arrows from each instance of a one-at-a-time `for_each` to the next.
    fn one_at_a_time_edges(&self) -> Vec<(Part, Part)> {
        let mut out = Vec::new();
        for (f, fan_out) in self.phase.fan_outs.iter().enumerate() {
            if fan_out.concurrency != Some(1) {
                continue;
            }
            let instances = self.outline.children(Some(&Part::FanOut(f)));
            for pair in instances.windows(2) {
                out.push((pair[0].clone(), pair[1].clone()));
            }
        }
        out
    }

    /// A node inside `part`, for Graphviz edges that start or end at a cluster.
    fn any_node(&self, part: &Part) -> String {
        match part {
            Part::Node(_) => self.id(part).to_string(),
            _ => self
                .outline
                .nodes_in(part)
                .first()
                .map(|n| self.id(&Part::Node(*n)).to_string())
                .unwrap_or_default(),
        }
    }
}

/// `roll · 9 instances · concurrency 1 (one at a time) · max_failures 0`.
fn fan_out_label(f: &FanOut) -> String {
    let n = f.instances.len();
    let limit = match f.concurrency {
        Some(1) => "concurrency 1 (one at a time)".to_string(),
        Some(c) => format!("concurrency {c} (at most {c} at a time)"),
        None => "no concurrency limit (all at once)".to_string(),
    };
    let mut label = format!(
        "{} · {n} {} · {limit} · max_failures {}",
        f.path,
        if n == 1 { "instance" } else { "instances" },
        f.max_failures
    );
    if f.continue_on_failure {
        label.push_str(" · on_failure: continue");
    }
    label
}

/// The phases that have nodes, with their index (for ids).
fn drawings(plan: &CompiledPlan) -> Vec<(usize, Drawing<'_>)> {
    plan.phases
        .iter()
        .enumerate()
        .filter(|(_, phase)| phase.graph.node_count() > 0)
        .map(|(p, phase)| (p, Drawing::new(p, phase)))
        .collect()
}

/// Text inside a Mermaid `"..."` label: quotes, `#` and angle brackets as entity codes.
pub(crate) fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn mermaid(plan: &CompiledPlan) -> String {
    let mut out = String::from("flowchart TD\n");
    let drawn = drawings(plan);
    for (_, d) in &drawn {
        let _ = writeln!(out, "  subgraph {}", d.phase.kind.as_str());
        for part in d.outline.children(None) {
            mermaid_part(&mut out, d, part, 2);
        }
        for (from, to) in d.order_edges() {
            let _ = writeln!(out, "    {} --> {}", d.id(&from), d.id(&to));
        }
        for (from, to) in d.one_at_a_time_edges() {
            let _ = writeln!(out, "    {} -.-> {}", d.id(&from), d.id(&to));
        }
        out.push_str("  end\n");
    }
    for pair in drawn.windows(2) {
        let (a, b) = (pair[0].1.phase.kind, pair[1].1.phase.kind);
        let _ = writeln!(out, "  {a} -.-> {b}");
    }
    out
}

fn mermaid_part(out: &mut String, d: &Drawing<'_>, part: &Part, depth: usize) {
    let pad = "  ".repeat(depth);
    if let Part::Node(_) = part {
        let _ = writeln!(
            out,
            "{pad}{}[\"{}\"]",
            d.id(part),
            mermaid_text(&d.node_label(part))
        );
        return;
    }
    let _ = writeln!(
        out,
        "{pad}subgraph {} [\"{}\"]",
        d.id(part),
        mermaid_text(&d.cluster_label(part))
    );
    for child in d.outline.children(Some(part)) {
        mermaid_part(out, d, child, depth + 1);
    }
    let _ = writeln!(out, "{pad}end");
}

/// Text inside a Graphviz `"..."` string.
fn dot_text(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(['\n', '\r'], " ")
}

fn dot(plan: &CompiledPlan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", dot_text(&plan.name));
    out.push_str("  rankdir=TB;\n  compound=true;\n  node [shape=box, fontname=\"monospace\"];\n");
    for (p, d) in drawings(plan) {
        let _ = writeln!(out, "  subgraph cluster_{p} {{");
        let _ = writeln!(out, "    label=\"{}\";", d.phase.kind.as_str());
        for part in d.outline.children(None) {
            dot_part(&mut out, &d, part, 2);
        }
        for (from, to) in d.order_edges() {
            let _ = writeln!(out, "    {};", dot_edge(&d, &from, &to));
        }
        for (from, to) in d.one_at_a_time_edges() {
            let _ = writeln!(out, "    {} [style=dashed];", dot_edge(&d, &from, &to));
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}

fn dot_part(out: &mut String, d: &Drawing<'_>, part: &Part, depth: usize) {
    let pad = "  ".repeat(depth);
    if let Part::Node(_) = part {
        let _ = writeln!(
            out,
            "{pad}{} [label=\"{}\"];",
            d.id(part),
            dot_text(&d.node_label(part))
        );
        return;
    }
    let _ = writeln!(out, "{pad}subgraph cluster_{} {{", d.id(part));
    let _ = writeln!(
        out,
        "{pad}  label=\"{}\";",
        dot_text(&d.cluster_label(part))
    );
    for child in d.outline.children(Some(part)) {
        dot_part(out, d, child, depth + 1);
    }
    let _ = writeln!(out, "{pad}}}");
}

/// `a -> b`, drawn from and to the edge of a cluster when an end is one (`compound=true`).
fn dot_edge(d: &Drawing<'_>, from: &Part, to: &Part) -> String {
    let mut edge = format!("{} -> {}", d.any_node(from), d.any_node(to));
    let mut attrs = Vec::new();
    if !matches!(from, Part::Node(_)) {
        attrs.push(format!("ltail=cluster_{}", d.id(from)));
    }
    if !matches!(to, Part::Node(_)) {
        attrs.push(format!("lhead=cluster_{}", d.id(to)));
    }
    if !attrs.is_empty() {
        let _ = write!(edge, " [{}]", attrs.join(", "));
    }
    edge
}
