//! `rollbook plan`: what a run would do, node by node, in order.

use std::fmt::Write;

use clap::ValueEnum;
use petgraph::Direction;
use petgraph::graph::NodeIndex;
use rollbook_plan::compile::{CompiledPlan, Node, Outline, Part, Phase, Settings};
use rollbook_plan::model::{Backoff, OnFailure, ResumePolicy};
use rollbook_plan::params::display_value;
use rollbook_plan::preview::{Preview, preview};
use rollbook_plan::template::Renderer;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

fn human(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string().replace(' ', "")
}

/// One line of the settings that govern a node's attempts.
fn settings_line(s: &Settings, node: &Node) -> String {
    let mut parts = Vec::new();
    if let Some(t) = s.timeout {
        parts.push(format!("timeout {}", human(t)));
    }
    let r = &s.retry;
    if r.attempts > 1 {
        let mut retry = format!("{} attempts, {} apart", r.attempts, human(r.delay));
        if r.backoff == Backoff::Exponential {
            retry = format!("{} attempts, from {} doubling", r.attempts, human(r.delay));
            if let Some(m) = r.max_delay {
                retry.push_str(&format!(" up to {}", human(m)));
            }
        }
        if r.jitter {
            retry.push_str(" with jitter");
        }
        parts.push(retry);
    }
    if let Some(g) = &s.gate {
        parts.push(format!(
            "until `{}` every {} for up to {}",
            g.until,
            human(g.interval),
            human(g.deadline)
        ));
    }
    for w in node.conditions() {
        parts.push(format!("when `{w}`"));
    }
    for (name, expr) in node.step.capture.iter() {
        parts.push(format!("capture {} = `{}`", name.value, expr.value));
    }
    if s.on_failure == OnFailure::Continue {
        parts.push("on failure: continue".into());
    }
    if s.resume == ResumePolicy::Ask {
        parts.push("after a crash: ask before rerunning".into());
    }
    parts.join(" · ")
}

/// The dry run as text.
pub fn text(plan: &CompiledPlan, parallelism: usize) -> String {
    let renderer = Renderer::new();
    let mut out = String::new();
    let _ = write!(out, "plan {}", plan.name);
    if let Some(d) = &plan.description {
        let _ = write!(out, " — {d}");
    }
    out.push('\n');
    let mut facts = Vec::new();
    if let Some(s) = plan.severity {
        facts.push(format!("severity {}", s.as_str()));
    }
    facts.push(format!("lock {}", plan.lock));
    if let Some(c) = &plan.confirm {
        facts.push(format!("confirm by typing {c:?} (or --yes)"));
    }
    facts.push(format!("parallelism {parallelism}"));
    let _ = writeln!(out, "  {}", facts.join(" · "));
    if !plan.params.is_empty() {
        let params: Vec<String> = plan
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", display_value(v)))
            .collect();
        let _ = writeln!(out, "  params {}", params.join(" "));
    }
    if !plan.limit.is_none() {
        let hosts: Vec<&str> = plan.limit.hosts().collect();
        let _ = writeln!(
            out,
            "  limited to {} ({} {}: {})",
            plan.limit.patterns.join(", "),
            hosts.len(),
            if hosts.len() == 1 { "host" } else { "hosts" },
            hosts.join(", ")
        );
    }
    let secrets: Vec<&str> = plan.secrets.names().collect();
    if !secrets.is_empty() {
        let _ = writeln!(
            out,
            "  secrets {} (read at run time, shown as ***)",
            secrets.join(", ")
        );
    }
    for phase in &plan.phases {
        if phase.graph.node_count() == 0 {
            continue;
        }
        out.push('\n');
        phase_text(&mut out, plan, phase, &renderer);
    }
    out
}

fn phase_text(out: &mut String, plan: &CompiledPlan, phase: &Phase, renderer: &Renderer) {
    let layers = phase.layers();
    let outline = phase.outline();
    let n = phase.graph.node_count();
    let when = match phase.kind {
        rollbook_plan::compile::PhaseKind::Main => "",
        rollbook_plan::compile::PhaseKind::OnFailure => ", only if the steps failed",
        rollbook_plan::compile::PhaseKind::Finally => ", always, after everything else",
    };
    let _ = writeln!(
        out,
        "{}: {n} {} in {} {}{when}",
        phase.kind.as_str(),
        if n == 1 { "node" } else { "nodes" },
        layers.len(),
        if layers.len() == 1 { "layer" } else { "layers" },
    );
    for f in &phase.fan_outs {
        let limit = match f.concurrency {
            Some(1) => "one at a time".to_string(),
            Some(c) => format!("at most {c} at a time"),
            None => "all at once (up to the parallelism)".to_string(),
        };
        let stop = match f.max_failures {
            _ if f.continue_on_failure => "failures are recorded and the rest go on".to_string(),
            0 => "stops at the first failure".to_string(),
            1 => "tolerates 1 failed instance, stops at the second".to_string(),
            m => format!("tolerates {m} failed instances, stops at the next"),
        };
        let n = f.instances.len();
        let noun = if n == 1 { "instance" } else { "instances" };
        let _ = writeln!(out, "  {}: {n} {noun}, {limit}, {stop}", f.path);
    }
    for (i, layer) in layers.iter().enumerate() {
        let _ = writeln!(out, "\n  layer {}", i + 1);
        for &idx in layer {
            node_text(out, plan, phase, &outline, idx, renderer);
        }
    }
}

fn node_text(
    out: &mut String,
    plan: &CompiledPlan,
    phase: &Phase,
    outline: &Outline,
    idx: NodeIndex,
    renderer: &Renderer,
) {
    let node = &phase.graph[idx];
    let p = preview(plan, phase, node, renderer);
    let mut head = format!("    {}  {} {}", node.name, p.kind, p.target);
    if !p.notes.is_empty() {
        head.push_str(&format!(" · {}", p.notes.join(" · ")));
    }
    let _ = writeln!(out, "{}", head.trim_end());
    if let Some(title) = &p.title {
        let _ = writeln!(out, "      \"{title}\"");
    }
    if let Some(call) = &node.call {
        let _ = writeln!(out, "      plan {}, called by `{}`", call.plan, call.at);
    }
    if node.step.is_irreversible() {
        let _ = writeln!(
            out,
            "      IRREVERSIBLE: the run asks for the plan's confirmation again before it starts"
        );
    }
    let waits = waits_for(phase, outline, idx);
    if waits.is_empty() {
        let _ = writeln!(out, "      starts at once");
    } else {
        let _ = writeln!(out, "      after {}", waits.join(", "));
    }
    if let Some(d) = &node.deferred {
        let _ = writeln!(
            out,
            "      expands at run time, once per item of {}",
            d.for_each.trim()
        );
    }
    let settings = settings_line(&node.settings, node);
    if !settings.is_empty() {
        let _ = writeln!(out, "      {settings}");
    }
    for line in &p.body {
        let _ = writeln!(out, "      │ {line}");
    }
    if let Some(undo) = undo_preview(plan, phase, idx, renderer) {
        let mut head = format!("      undo  {} {}", undo.kind, undo.target);
        if !undo.notes.is_empty() {
            head.push_str(&format!(" · {}", undo.notes.join(" · ")));
        }
        let _ = writeln!(out, "{}", head.trim_end());
        for line in &undo.body {
            let _ = writeln!(out, "      ↺ {line}");
        }
    }
}

/// What a node's `undo` would do, rendered as the node's own action is.
fn undo_preview(
    plan: &CompiledPlan,
    phase: &Phase,
    idx: NodeIndex,
    renderer: &Renderer,
) -> Option<Preview> {
    let mut undo = rollbook_plan::compile::undo_node(&phase.graph, idx)?;
    // A `for_each` known at run time shows its item as a placeholder, as the step does.
    undo.deferred = phase.graph[idx].deferred.clone();
    let mut p = preview(plan, phase, &undo, renderer);
    p.title = None;
    Some(p)
}

/// What a node waits for before it starts, as the plan writes it: the steps before it (a
/// whole group or `for_each` named once), and in a `for_each` with `concurrency`, its place.
/// Empty when it starts at once.
fn waits_for(phase: &Phase, outline: &Outline, idx: NodeIndex) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for from in phase.graph.neighbors_directed(idx, Direction::Incoming) {
        let name = describe(phase, outline.edge(from, idx).0);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.sort();
    if names.len() > 6 {
        let more = names.len() - 4;
        names.truncate(4);
        names.push(format!("and {more} more"));
    }
    names.extend(place_in_fan_outs(phase, outline, idx));
    names
}

/// A part as the dry run names it: a node by its name, a group or `for_each` as a whole.
fn describe(phase: &Phase, part: &Part) -> String {
    match part {
        Part::Node(n) => phase.graph[*n].name.clone(),
        Part::FanOut(f) => {
            let f = &phase.fan_outs[*f];
            match f.instances.len() {
                1 => format!("{} (its one instance)", f.path),
                n => format!("{} (all {n} instances)", f.path),
            }
        }
        Part::Group(path) | Part::Instance(path) => format!("{path} (all its steps)"),
    }
}

/// For each `for_each` with `concurrency` whose instance starts with this node: the earlier
/// instance it waits for (one at a time), or a free place (at most N at a time).
fn place_in_fan_outs(phase: &Phase, outline: &Outline, idx: NodeIndex) -> Vec<String> {
    let path = outline.path(idx);
    let mut out = Vec::new();
    for r in &phase.graph[idx].instances {
        let f = &phase.fan_outs[r.fan_out];
        let Some(c) = f.concurrency else { continue };
        if r.instance < c as usize {
            continue;
        }
        let at = path.iter().position(|p| *p == Part::FanOut(r.fan_out));
        let Some(instance) = at.and_then(|i| path.get(i + 1)) else {
            continue;
        };
        let first_in_instance = phase
            .graph
            .neighbors_directed(idx, Direction::Incoming)
            .all(|from| !outline.path(from).contains(instance));
        if !first_in_instance {
            continue;
        }
        out.push(match c {
            1 => format!(
                "{}[{}] (one at a time)",
                f.path,
                f.instances[r.instance - 1]
            ),
            c => format!("a free place in {} (at most {c} at a time)", f.path),
        });
    }
    out
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    version: u32,
    name: &'a str,
    description: Option<&'a str>,
    severity: Option<&'static str>,
    lock: &'a str,
    confirm: Option<&'a str>,
    parallelism: usize,
    params: &'a serde_json::Map<String, serde_json::Value>,
    secrets: Vec<&'a str>,
    /// `--limit`, as given, and the hosts it keeps (absent when the run is not limited).
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<JsonLimit<'a>>,
    phases: Vec<JsonPhase<'a>>,
}

#[derive(Serialize)]
struct JsonLimit<'a> {
    patterns: &'a [String],
    hosts: Vec<&'a str>,
}

#[derive(Serialize)]
struct JsonPhase<'a> {
    phase: &'static str,
    fan_outs: Vec<JsonFanOut<'a>>,
    layers: Vec<Vec<JsonNode<'a>>>,
}

#[derive(Serialize)]
struct JsonFanOut<'a> {
    path: &'a str,
    instances: &'a [String],
    concurrency: Option<u64>,
    max_failures: u64,
    continue_on_failure: bool,
}

#[derive(Serialize)]
struct JsonNode<'a> {
    name: &'a str,
    step: &'a str,
    label: &'a str,
    /// For the nodes of a called plan: that plan's name (the call is the first part of the
    /// node's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<&'a str>,
    needs: Vec<&'a str>,
    #[serde(flatten)]
    action: Preview,
    timeout_secs: Option<f64>,
    attempts: u64,
    retry_delay_secs: f64,
    backoff: &'static str,
    gate: Option<JsonGate<'a>>,
    when: Vec<&'a str>,
    on_failure: &'static str,
    resume: &'static str,
    expands_at_run_time: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    irreversible: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    undo: Option<Preview>,
}

#[derive(Serialize)]
struct JsonGate<'a> {
    until: &'a str,
    interval_secs: f64,
    deadline_secs: f64,
}

/// The dry run as JSON, for tools.
pub fn json(plan: &CompiledPlan, parallelism: usize) -> String {
    serde_json::to_string_pretty(&document(plan, parallelism)).unwrap_or_default() + "\n"
}

/// The dry run's JSON document as a value, for what reads it inside rollbook (`diff`, the
/// summary), without printing and parsing it again.
pub fn value(plan: &CompiledPlan, parallelism: usize) -> serde_json::Value {
    serde_json::to_value(document(plan, parallelism)).unwrap_or_default()
}

fn document(plan: &CompiledPlan, parallelism: usize) -> JsonPlan<'_> {
    let renderer = Renderer::new();
    let phases = plan
        .phases
        .iter()
        .map(|phase| JsonPhase {
            phase: phase.kind.as_str(),
            fan_outs: phase
                .fan_outs
                .iter()
                .map(|f| JsonFanOut {
                    path: &f.path,
                    instances: &f.instances,
                    concurrency: f.concurrency,
                    max_failures: f.max_failures,
                    continue_on_failure: f.continue_on_failure,
                })
                .collect(),
            layers: phase
                .layers()
                .into_iter()
                .map(|layer| {
                    layer
                        .into_iter()
                        .map(|idx| json_node(plan, phase, idx, &renderer))
                        .collect()
                })
                .collect(),
        })
        .collect();
    JsonPlan {
        version: 1,
        name: &plan.name,
        description: plan.description.as_deref(),
        severity: plan.severity.map(|s| s.as_str()),
        lock: &plan.lock,
        confirm: plan.confirm.as_deref(),
        parallelism,
        params: &plan.params,
        secrets: plan.secrets.names().collect(),
        limit: (!plan.limit.is_none()).then(|| JsonLimit {
            patterns: &plan.limit.patterns,
            hosts: plan.limit.hosts().collect(),
        }),
        phases,
    }
}

fn json_node<'a>(
    plan: &CompiledPlan,
    phase: &'a Phase,
    idx: NodeIndex,
    renderer: &Renderer,
) -> JsonNode<'a> {
    let node = &phase.graph[idx];
    let s = &node.settings;
    let mut needs: Vec<&str> = phase
        .graph
        .neighbors_directed(idx, Direction::Incoming)
        .map(|n| phase.graph[n].name.as_str())
        .collect();
    needs.sort_unstable();
    JsonNode {
        name: &node.name,
        step: &node.step.id.value,
        label: node.step.label(),
        plan: node.call.as_ref().map(|c| c.plan.as_str()),
        needs,
        action: preview(plan, phase, node, renderer),
        timeout_secs: s.timeout.map(|t| t.as_secs_f64()),
        attempts: s.retry.attempts,
        retry_delay_secs: s.retry.delay.as_secs_f64(),
        backoff: match s.retry.backoff {
            Backoff::Fixed => "fixed",
            Backoff::Exponential => "exponential",
        },
        gate: s.gate.as_ref().map(|g| JsonGate {
            until: &g.until,
            interval_secs: g.interval.as_secs_f64(),
            deadline_secs: g.deadline.as_secs_f64(),
        }),
        when: node.conditions().collect(),
        on_failure: match s.on_failure {
            OnFailure::Abort => "abort",
            OnFailure::Continue => "continue",
        },
        resume: match s.resume {
            ResumePolicy::Rerun => "rerun",
            ResumePolicy::Ask => "ask",
        },
        expands_at_run_time: node.deferred.as_ref().map(|d| d.for_each.as_str()),
        irreversible: node.step.is_irreversible(),
        undo: undo_preview(plan, phase, idx, renderer),
    }
}
