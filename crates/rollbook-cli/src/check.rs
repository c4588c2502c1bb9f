//! `rollbook plan NAME --check`: the preflight. Every node's action is rendered with the real
//! secrets and handed to its runner's `check`, which reaches the target without changing
//! anything (connect and authenticate, resolve and connect, `sudo -n true`, ...). What is
//! checked once is not checked again.

use std::collections::BTreeMap;
use std::fmt::Write;

use rollbook_exec::runner::Runners;
use rollbook_plan::compile::CompiledPlan;
use rollbook_plan::preview::describe;
use rollbook_plan::render::{RunState, node_context, render_action};
use rollbook_plan::template::Renderer;
use serde_json::{Map, Value};

/// One line of the preflight table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CheckRow {
    pub kind: String,
    pub target: String,
    /// `Ok(what was checked)` or `Err(why not)`; `None` when it cannot be checked before the
    /// run (it depends on a value only the run produces).
    pub result: Option<Result<String, String>>,
    /// Nodes that share this target.
    pub nodes: Vec<String>,
}

/// Runs every runner's check for the targets the plan would touch.
pub async fn preflight(
    plan: &CompiledPlan,
    runners: &Runners,
    secrets: &Map<String, Value>,
) -> Vec<CheckRow> {
    let renderer = Renderer::new();
    // Everything shown comes from actions rendered with the real secrets.
    let redactor = crate::redaction::redactor(plan, secrets, &[]);
    let mut rows: BTreeMap<(String, String), CheckRow> = BTreeMap::new();
    let mut actions = Vec::new();
    for phase in &plan.phases {
        for node in phase.graph.node_weights() {
            let kind = node.step.action().kind().to_string();
            if matches!(kind.as_str(), "sleep" | "confirm") {
                continue; // nothing to reach
            }
            let no_outputs = |_| None;
            let ctx = node_context(
                plan,
                &phase.graph,
                node,
                secrets,
                RunState::running(),
                &no_outputs,
            );
            let rendered = if node.deferred.is_some() {
                Err("expands at run time".to_string())
            } else {
                render_action(plan, node, &ctx, &renderer).map_err(|e| e.to_string())
            };
            match rendered {
                Ok(action) => {
                    let target = redactor.redact(&describe(&action).target);
                    let key = (kind.clone(), target.clone());
                    let row = rows.entry(key.clone()).or_insert_with(|| {
                        actions.push((key, action));
                        CheckRow {
                            kind,
                            target,
                            result: None,
                            nodes: Vec::new(),
                        }
                    });
                    row.nodes.push(node.name.clone());
                }
                Err(_) => {
                    let key = (kind.clone(), format!("{} (run-time values)", node.name));
                    rows.entry(key).or_insert_with(|| CheckRow {
                        kind,
                        target: node.name.clone(),
                        result: None,
                        nodes: vec![node.name.clone()],
                    });
                }
            }
        }
    }
    let mut set = tokio::task::JoinSet::new();
    for (key, action) in actions {
        let Some(runner) = runners.get(action.kind()) else {
            if let Some(row) = rows.get_mut(&key) {
                row.result = Some(Err(format!(
                    "no runner for `{}` steps in this build",
                    action.kind()
                )));
            }
            continue;
        };
        set.spawn(async move {
            let result = runner.check(&action).await;
            (key, result)
        });
    }
    while let Some(done) = set.join_next().await {
        if let Ok((key, result)) = done
            && let Some(row) = rows.get_mut(&key)
        {
            let redact = |text: String| redactor.redact(&text);
            row.result = Some(result.map(redact).map_err(redact));
        }
    }
    rows.into_values().collect()
}

/// The preflight as a table; `true` when nothing failed.
pub fn table(rows: &[CheckRow]) -> (String, bool) {
    let mut out = String::from("\npreflight (`--check`): what the plan would reach\n");
    let kind_w = rows.iter().map(|r| r.kind.len()).max().unwrap_or(4).max(4);
    let target_w = rows
        .iter()
        .map(|r| r.target.len())
        .max()
        .unwrap_or(6)
        .clamp(6, 60);
    let mut ok = true;
    for r in rows {
        let (mark, text) = match &r.result {
            Some(Ok(what)) => ("ok  ", what.clone()),
            Some(Err(why)) => {
                ok = false;
                ("FAIL", why.clone())
            }
            None => (
                "--  ",
                "not checked: depends on values the run produces".to_string(),
            ),
        };
        let used = match r.nodes.len() {
            1 => r.nodes[0].clone(),
            n => format!("{} and {} more", r.nodes[0], n - 1),
        };
        let _ = writeln!(
            out,
            "  {mark}  {:kind_w$}  {:target_w$}  {text}  ({used})",
            r.kind, r.target
        );
    }
    let failed = rows
        .iter()
        .filter(|r| matches!(r.result, Some(Err(_))))
        .count();
    let _ = writeln!(
        out,
        "{}: {} targets, {failed} failed",
        if ok {
            "preflight ok"
        } else {
            "preflight FAILED"
        },
        rows.len()
    );
    (out, ok)
}
