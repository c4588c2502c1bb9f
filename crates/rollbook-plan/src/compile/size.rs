//! How many nodes a plan compiles to, counted before anything is expanded: nested `for_each`
//! multiply, so a small file can ask for millions of nodes (three `for_each` over one
//! 300-item anchored list are 27 million). The count is refused past [`MAX_NODES`], at
//! `validate` (from the lists it can see) and again before compiling (with params bound).

use serde_json::Value;

use crate::model::{ActionRef, ForEach, Plan, Step};
use crate::template;

/// The most nodes a plan may compile to, over all its phases.
pub const MAX_NODES: u64 = 100_000;

/// The top-level step with the most nodes and the plan's total, counted with `context`
/// (`params`, `inventory`) for the `for_each` templates; a `for_each` whose size is not known
/// yet (a step output, a param not bound) counts as one item.
pub fn planned_nodes<'p>(plan: &'p Plan, context: &Value) -> (u64, Option<(&'p Step, u64)>) {
    let mut total = 0u64;
    let mut biggest: Option<(&Step, u64)> = None;
    for step in plan
        .steps
        .iter()
        .chain(&plan.on_failure)
        .chain(&plan.finally)
    {
        let n = step_nodes(step, context);
        total = total.saturating_add(n);
        if biggest.is_none_or(|(_, most)| n > most) {
            biggest = Some((step, n));
        }
    }
    (total, biggest)
}

fn step_nodes(step: &Step, context: &Value) -> u64 {
    let items = match &step.for_each {
        None => 1,
        Some(ForEach::List(items)) => items.len() as u64,
        Some(ForEach::Template(t)) => match template::eval_single(&t.value, context) {
            Ok(Some(Value::Array(items))) => items.len() as u64,
            _ => 1,
        },
    };
    let each = match step.action() {
        ActionRef::Group(steps) => steps
            .iter()
            .fold(0u64, |sum, s| sum.saturating_add(step_nodes(s, context))),
        _ => 1,
    };
    items.saturating_mul(each)
}

/// The refusal of a plan too big to compile, in words.
pub fn too_many(total: u64, step: &Step, nodes: u64) -> String {
    format!(
        "the plan would compile to {total} nodes ({nodes} of them from step `{}`); a plan may have at most {MAX_NODES}",
        step.id.value
    )
}
