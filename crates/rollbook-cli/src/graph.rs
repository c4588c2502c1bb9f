//! `rollbook graph`: the concrete DAG as Mermaid (renders in pull requests) or Graphviz dot.

use std::fmt::Write;

use clap::ValueEnum;
use petgraph::visit::EdgeRef;
use rollbook_plan::compile::CompiledPlan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Mermaid,
    Dot,
}

fn label(name: &str, kind: &str) -> String {
    format!("{name} ({kind})").replace('"', "'")
}

pub fn render(plan: &CompiledPlan, format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Mermaid => {
            out.push_str("flowchart TD\n");
            for (p, phase) in plan.phases.iter().enumerate() {
                if phase.graph.node_count() == 0 {
                    continue;
                }
                let _ = writeln!(out, "  subgraph {}", phase.kind.as_str());
                for idx in phase.graph.node_indices() {
                    let node = &phase.graph[idx];
                    let _ = writeln!(
                        out,
                        "    p{p}n{}[\"{}\"]",
                        idx.index(),
                        label(&node.name, node.step.action().kind())
                    );
                }
                for e in phase.graph.edge_references() {
                    let _ = writeln!(
                        out,
                        "    p{p}n{} --> p{p}n{}",
                        e.source().index(),
                        e.target().index()
                    );
                }
                out.push_str("  end\n");
            }
            let shown: Vec<_> = plan
                .phases
                .iter()
                .filter(|p| p.graph.node_count() > 0)
                .map(|p| p.kind.as_str())
                .collect();
            for pair in shown.windows(2) {
                let _ = writeln!(out, "  {} -.-> {}", pair[0], pair[1]);
            }
        }
        Format::Dot => {
            let _ = writeln!(out, "digraph \"{}\" {{", plan.name);
            out.push_str("  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n");
            for (p, phase) in plan.phases.iter().enumerate() {
                if phase.graph.node_count() == 0 {
                    continue;
                }
                let _ = writeln!(out, "  subgraph cluster_{p} {{");
                let _ = writeln!(out, "    label=\"{}\";", phase.kind.as_str());
                for idx in phase.graph.node_indices() {
                    let node = &phase.graph[idx];
                    let _ = writeln!(
                        out,
                        "    p{p}n{} [label=\"{}\"];",
                        idx.index(),
                        label(&node.name, node.step.action().kind())
                    );
                }
                for e in phase.graph.edge_references() {
                    let _ = writeln!(
                        out,
                        "    p{p}n{} -> p{p}n{};",
                        e.source().index(),
                        e.target().index()
                    );
                }
                out.push_str("  }\n");
            }
            out.push_str("}\n");
        }
    }
    out
}
