//! The run as a Mermaid `gantt` chart: one section per phase, one bar per node that ran. A
//! failure that stopped the run is `crit` (red); a failure the run went on after is
//! `done, crit` (grey with a red border) and says `(tolerated)`; a node in flight at a crash
//! is `active`; a success `done`. Past [`MOST_BARS`] nodes, one bar per step instead (a big
//! fan-out drawn node by node is a wall of bars nobody reads).

use std::fmt::Write;

use rollbook_exec::Timestamp;
use rollbook_exec::history::NodeState;
use rollbook_plan::compile::PhaseKind;

use super::facts::{NodeFacts, Report};

/// Most bars drawn one per node.
pub const MOST_BARS: usize = 200;

/// One bar: a node, or all nodes of one step.
struct Bar {
    label: String,
    start: String,
    end: String,
    /// A failure the run did not go on after.
    failed: bool,
    /// A failure the run went on after (`on_failure: continue`, `max_failures`).
    tolerated: bool,
    unknown: bool,
    succeeded: bool,
}

impl Bar {
    /// The Mermaid tags: what stopped the run first, then what is unknown, then what was
    /// tolerated.
    fn tags(&self) -> &'static str {
        if self.failed {
            "crit, "
        } else if self.unknown {
            "active, "
        } else if self.tolerated {
            "done, crit, "
        } else if self.succeeded {
            "done, "
        } else {
            ""
        }
    }
}

/// The chart's Mermaid source (without the code fence).
pub fn chart(report: &Report) -> String {
    let drawn: Vec<&NodeFacts> = report.nodes.iter().filter(|n| n.ran()).collect();
    let grouped = drawn.len() > MOST_BARS;
    let mut title = format!("{} run {} (UTC)", report.run.plan, report.run.run_id);
    if grouped {
        let _ = write!(title, ", one bar per step for {} nodes", drawn.len());
    }
    let mut out = String::new();
    let _ = writeln!(out, "gantt");
    let _ = writeln!(out, "    title {}", safe(&title));
    let _ = writeln!(out, "    dateFormat YYYY-MM-DD HH:mm:ss.SSS");
    let _ = writeln!(out, "    axisFormat %H:%M:%S");
    for phase in PhaseKind::ALL {
        let nodes: Vec<&NodeFacts> = drawn.iter().copied().filter(|n| n.phase == phase).collect();
        let bars = if grouped {
            step_bars(&nodes)
        } else {
            nodes.iter().filter_map(|n| node_bar(n)).collect()
        };
        if bars.is_empty() {
            continue;
        }
        let _ = writeln!(out, "    section {phase}");
        for bar in bars {
            let _ = writeln!(
                out,
                "    {} :{}{}, {}",
                safe(&bar.label),
                bar.tags(),
                bar.start,
                bar.end
            );
        }
    }
    out
}

fn node_bar(n: &NodeFacts) -> Option<Bar> {
    let start = n.started_at?;
    // An end before the start (a clock step) draws a bar of no length.
    let end = n
        .finished_at
        .or(n.stopped_at)
        .filter(|end| *end >= start)
        .unwrap_or(start);
    let tolerated = n.failed() && n.tolerated;
    Some(Bar {
        label: if tolerated {
            format!("{} (tolerated)", n.node)
        } else {
            n.node.clone()
        },
        start: mermaid_time(start),
        end: mermaid_time(end),
        failed: n.failed() && !tolerated,
        tolerated,
        unknown: n.status == NodeState::Unknown,
        succeeded: n.status == NodeState::Succeeded,
    })
}

/// How many nodes a step bar stands for, and how many of them failed.
#[derive(Default)]
struct Tally {
    nodes: usize,
    failed: usize,
    tolerated: usize,
}

impl Tally {
    fn add(&mut self, bar: &Bar) {
        self.nodes += 1;
        self.failed += usize::from(bar.failed || bar.tolerated);
        self.tolerated += usize::from(bar.tolerated);
    }

    /// `restart[*].start x6, 2 failed (1 tolerated)`.
    fn label(&self, key: &str) -> String {
        let mut label = format!("{key} x{}", self.nodes);
        if self.failed > 0 {
            let _ = write!(label, ", {} failed", self.failed);
        }
        if self.tolerated == self.failed && self.failed > 0 {
            label.push_str(" (tolerated)");
        } else if self.tolerated > 0 {
            let _ = write!(label, " ({} tolerated)", self.tolerated);
        }
        label
    }
}

/// One bar per step (`restart[*].stop`), from its first start to its last end.
fn step_bars(nodes: &[&NodeFacts]) -> Vec<Bar> {
    let mut bars: Vec<(String, Tally, Bar)> = Vec::new();
    for n in nodes {
        let Some(bar) = node_bar(n) else { continue };
        let key = step_key(&n.node);
        match bars.iter_mut().find(|(k, ..)| *k == key) {
            Some((_, tally, b)) => {
                tally.add(&bar);
                if bar.start < b.start {
                    b.start = bar.start;
                }
                if bar.end > b.end {
                    b.end = bar.end;
                }
                b.failed |= bar.failed;
                b.tolerated |= bar.tolerated;
                b.unknown |= bar.unknown;
                b.succeeded &= bar.succeeded;
            }
            None => {
                let mut tally = Tally::default();
                tally.add(&bar);
                bars.push((key, tally, bar));
            }
        }
    }
    bars.into_iter()
        .map(|(key, tally, mut bar)| {
            bar.label = tally.label(&key);
            bar
        })
        .collect()
}

/// A node's step with its instance keys as `*`: `restart[web-1].stop` → `restart[*].stop`.
fn step_key(node: &str) -> String {
    let mut key = String::with_capacity(node.len());
    let mut depth = 0usize;
    for c in node.chars() {
        match c {
            '[' => {
                if depth == 0 {
                    key.push_str("[*]");
                }
                depth += 1;
            }
            ']' => depth = depth.saturating_sub(1),
            c if depth == 0 => key.push(c),
            _ => {}
        }
    }
    key
}

/// A journal time as the chart's `dateFormat` reads it: `2026-11-25 13:32:14.149`, in UTC
/// (fixed width, so bars compare as text).
fn mermaid_time(at: Timestamp) -> String {
    let canonical = at.to_string();
    format!("{} {}", &canonical[..10], &canonical[11..23])
}

/// Mermaid ends a task's name at `:`, and reads `;` and `#` specially.
fn safe(text: &str) -> String {
    text.chars()
        .map(|c| if matches!(c, ':' | ';' | '#') { '_' } else { c })
        .collect()
}
