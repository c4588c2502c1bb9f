//! What the plan text of a run adds to its journal: each node's step (its kind, whether it is
//! a check), and, compiled with the run's params as `resume` does, the nodes the journal never
//! reached.

use std::collections::HashSet;
use std::path::Path;

use rollbook_plan::compile::{CompiledPlan, PhaseKind};
use rollbook_plan::model::Step;
use rollbook_plan::{Checked, Plan, SourceFile};

use super::facts::{NodeFacts, NotReached};
use crate::runs::JournaledRun;

/// The plan as it ran (the run directory's copy); `None` when there is none. A plan with
/// validation errors still names its steps.
pub(super) fn read_plan(dir: &Path) -> Option<Checked> {
    let text = std::fs::read_to_string(dir.join("plan.yaml")).ok()?;
    Some(rollbook_plan::check(
        SourceFile::new("plan.yaml", text),
        None,
    ))
}

/// The plan compiled with the run's params and inventory, as `resume` does; `None` when it
/// does not compile (the report then goes by the journal alone).
fn compile_run(checked: &Checked, run: &JournaledRun) -> Option<CompiledPlan> {
    let plan = checked.plan.as_ref().filter(|_| checked.is_ok())?;
    crate::runs::compile_as_run(plan, &run.meta, &run.dir).ok()
}

pub(super) fn not_reached(
    checked: &Checked,
    run: &JournaledRun,
    nodes: &[NodeFacts],
    status: &str,
) -> Vec<NotReached> {
    let Some(compiled) = compile_run(checked, run) else {
        return Vec::new();
    };
    let started = &run.history.phases_started;
    let seen: HashSet<(PhaseKind, &str)> =
        nodes.iter().map(|n| (n.phase, n.node.as_str())).collect();
    let mut out = Vec::new();
    for phase in &compiled.phases {
        let kind = phase.kind;
        // `finally` always runs: an unfinished run that never got there never ran it.
        let expected =
            started.contains(&kind) || (status == "unfinished" && kind == PhaseKind::Finally);
        if !expected {
            continue;
        }
        for node in phase.graph.node_weights() {
            if seen.contains(&(kind, node.name.as_str())) {
                continue;
            }
            let path = step_path(&node.name);
            out.push(NotReached {
                phase: kind,
                node: node.name.clone(),
                check: check_reason(&path, Some(&node.step)),
            });
        }
    }
    out
}

pub(super) fn phase_steps(plan: &Plan, phase: PhaseKind) -> &[Step] {
    match phase {
        PhaseKind::Main => &plan.steps,
        PhaseKind::OnFailure => &plan.on_failure,
        PhaseKind::Finally => &plan.finally,
    }
}

/// The step ids in a node's name, outermost first: `restart[web-1].stop` → `restart`, `stop`.
/// Only dots outside brackets separate steps (an instance key may be a number like `1.5`).
pub fn step_path(node: &str) -> Vec<&str> {
    let mut path = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut id_end = None;
    for (i, c) in node.char_indices() {
        match c {
            '[' => {
                if depth == 0 {
                    id_end.get_or_insert(i);
                }
                depth += 1;
            }
            ']' => depth = depth.saturating_sub(1),
            '.' if depth == 0 => {
                path.push(&node[start..id_end.unwrap_or(i)]);
                start = i + 1;
                id_end = None;
            }
            _ => {}
        }
    }
    path.push(&node[start..id_end.unwrap_or(node.len())]);
    path
}

/// The step a node path names; below a call of a plan (`notify.slack`), the called plan's
/// step, from the texts the run kept (`called`).
pub(super) fn find_step<'a>(
    steps: &'a [Step],
    path: &[&str],
    called: &'a rollbook_plan::calls::Library,
) -> Option<&'a Step> {
    let (first, rest) = path.split_first()?;
    let step = steps.iter().find(|s| s.id.value == *first)?;
    if rest.is_empty() {
        return Some(step);
    }
    match &step.plan {
        Some(name) => find_step(&called.plan(&name.value)?.steps, rest, called),
        None => find_step(step.steps.as_deref()?, rest, called),
    }
}

/// The check rule (docs/cli.md, "rollbook report"): a step with an `until` gate or an
/// `expect`, or whose id (or a group's around it) starts with `verify` or `check` or
/// contains `health`.
pub(super) fn check_reason(path: &[&str], step: Option<&Step>) -> Option<&'static str> {
    // What the plan says wins over any guess.
    match step.and_then(|s| s.check.as_ref()).map(|c| c.value) {
        Some(true) => return Some("marked"),
        Some(false) => return None,
        None => {}
    }
    if let Some(step) = step {
        if step.until.is_some() {
            return Some("until");
        }
        let http_expect = step.http.as_ref().is_some_and(|h| h.expect.is_some());
        let sql_expect = step.sql.as_ref().is_some_and(|s| s.expect.is_some());
        if http_expect || sql_expect {
            return Some("expect");
        }
    }
    let named =
        |id: &&str| id.starts_with("verify") || id.starts_with("check") || id.contains("health");
    path.iter().any(named).then_some("name")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_paths_drop_instance_keys() {
        assert_eq!(step_path("prepare"), ["prepare"]);
        assert_eq!(step_path("restart[web-1].stop"), ["restart", "stop"]);
        assert_eq!(step_path("a[1.5].b[x].c"), ["a", "b", "c"]);
        assert_eq!(step_path("check[db-1]"), ["check"]);
    }
}
