//! Calling a plan from a plan (`plan: NAME`).
//!
//! A call step runs another plan's `steps` as a sub-graph of the caller's run. This crate does
//! no I/O: the caller of [`crate::check_with`] and [`crate::compile::compile_with`] (the CLI)
//! finds the called plans by name and hands their text in as a [`Library`].
//!
//! The rules, checked here (all of them, at once, in the caller's file):
//! - a call stands in one of the plan's lists (`steps`, `on_failure`, `finally`), not inside a
//!   group, and takes no settings of its own but `name`, `needs` and `on_failure`;
//! - the called plan exists (else "did you mean"), is valid, and has no `confirm`, `lock`,
//!   `on_failure` or `finally`: the run is the caller's, with its one lock, its one phrase
//!   and its own phases;
//! - calls form no cycle (every plan on it named, with the place of each `plan:`);
//! - every secret of the called plan is given one of the caller's (`secrets: { called:
//!   caller }`), and nothing else is passed: a called plan sees no other secret;
//! - params are the called plan's: unknown names, missing required ones, and literal values
//!   of the wrong type or outside `enum` are errors here; templated values are checked when
//!   the plan is compiled. A param's template is rendered when the plan is compiled, so it may
//!   read `params`, `inventory`, `plan` and `run.id|reason|user|started_at`, not
//!   `run.status`, step outputs or secrets.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::diagnostic::{Diagnostic, SourceFile, did_you_mean};
use crate::model::{ActionRef, Entries, Plan, Spanned, Step};
use crate::template;
use crate::yaml::{Node, NodeKind};

/// The plans that plans may call, by name (their file stem): the names of every plan there
/// is (for "did you mean"), and the text of the ones that are called.
#[derive(Debug, Clone, Default)]
pub struct Library {
    known: BTreeSet<String>,
    plans: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    file: SourceFile,
    plan: Option<Plan>,
}

impl Library {
    /// An empty library: a plan that calls another is then refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// A plan named `name` exists (its text is not needed unless it is called).
    pub fn know(&mut self, name: impl Into<String>) {
        self.known.insert(name.into());
    }

    /// The text of the plan named `name`.
    pub fn insert(&mut self, name: impl Into<String>, file: SourceFile) {
        let name = name.into();
        let mut ignored = Vec::new();
        let plan = crate::load(&file, &mut ignored);
        self.known.insert(name.clone());
        self.plans.insert(name, Entry { file, plan });
    }

    /// Whether the text of plan `name` is here.
    pub fn contains(&self, name: &str) -> bool {
        self.plans.contains_key(name)
    }

    /// The decoded plan named `name`, if its text is here and decodes.
    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.plans.get(name).and_then(|e| e.plan.as_ref())
    }

    /// The file of plan `name`, if its text is here.
    pub fn file(&self, name: &str) -> Option<&SourceFile> {
        self.plans.get(name).map(|e| &e.file)
    }

    /// The plans whose text is here, by name.
    pub fn files(&self) -> impl Iterator<Item = (&str, &SourceFile)> {
        self.plans.iter().map(|(n, e)| (n.as_str(), &e.file))
    }

    /// Whether no plan's text is here.
    pub fn is_empty(&self) -> bool {
        self.plans.is_empty()
    }
}

/// The names of the plans `plan` calls, with where, in the order written (calls inside
/// groups too, so that they can be reported).
pub fn called_names(plan: &Plan) -> Vec<&Spanned<String>> {
    fn walk<'p>(steps: &'p [Step], out: &mut Vec<&'p Spanned<String>>) {
        for step in steps {
            if let Some(name) = &step.plan {
                out.push(name);
            }
            if let Some(inner) = &step.steps {
                walk(inner, out);
            }
        }
    }
    let mut out = Vec::new();
    for list in [&plan.steps, &plan.on_failure, &plan.finally] {
        walk(list, &mut out);
    }
    out
}

/// Every problem with the calls of `plan` (see the module's rules), in `plan`'s file.
pub fn check_calls(plan: &Plan, library: &Library) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut stack = vec![plan.name.value.clone()];
    check_plan(plan, library, &mut stack, &mut out);
    out
}

fn check_plan(plan: &Plan, library: &Library, stack: &mut Vec<String>, out: &mut Vec<Diagnostic>) {
    for list in [&plan.steps, &plan.on_failure, &plan.finally] {
        for step in list.iter() {
            if step.plan.is_some() {
                check_call(plan, step, library, stack, out);
            }
            if let Some(inner) = &step.steps {
                calls_in_groups(inner, out);
            }
        }
        for step in list.iter().filter(|s| s.plan.is_none()) {
            for (key, entries) in [
                ("params", !step.params.is_empty()),
                ("secrets", !step.secrets.is_empty()),
            ] {
                if entries {
                    out.push(
                        Diagnostic::error(
                            "bad-call",
                            step.id.span,
                            format!("step `{}` has `{key}`, which only a call of a plan (`plan:`) takes", step.id.value),
                        )
                        .help("add `plan: NAME` to call a plan, or drop it"),
                    );
                }
            }
        }
    }
}

/// A call inside a group is refused: the group's settings and `when` would have to reach
/// into a plan that does not know them.
fn calls_in_groups(steps: &[Step], out: &mut Vec<Diagnostic>) {
    for step in steps {
        if let Some(name) = &step.plan {
            out.push(
                Diagnostic::error(
                    "call-in-group",
                    name.span,
                    format!(
                        "step `{}` calls plan `{}` inside a group",
                        step.id.value, name.value
                    ),
                )
                .label("inside a group")
                .help("call a plan from the plan's `steps`, `on_failure` or `finally` list itself"),
            );
        }
        if let Some(inner) = &step.steps {
            calls_in_groups(inner, out);
        }
    }
}

/// The keys a call step takes no value for, with where each is written.
fn settings_of_a_call(step: &Step) -> Vec<(&'static str, crate::Span)> {
    let mut found = Vec::new();
    let mut add = |key: &'static str, span: Option<crate::Span>| {
        if let Some(span) = span {
            found.push((key, span));
        }
    };
    add("parallel", step.parallel.as_ref().map(|v| v.span));
    add("when", step.when.as_ref().map(|v| v.span));
    add(
        "for_each",
        step.for_each.as_ref().map(|f| match f {
            crate::model::ForEach::Template(t) => t.span,
            crate::model::ForEach::List(_) => step.id.span,
        }),
    );
    add("concurrency", step.concurrency.as_ref().map(|v| v.span));
    add("max_failures", step.max_failures.as_ref().map(|v| v.span));
    add("timeout", step.timeout.as_ref().map(|v| v.span));
    add("retry", step.retry.as_ref().map(|r| r.attempts.span));
    add("until", step.until.as_ref().map(|v| v.span));
    add("interval", step.interval.as_ref().map(|v| v.span));
    add("deadline", step.deadline.as_ref().map(|v| v.span));
    add("capture", step.capture.iter().next().map(|(k, _)| k.span));
    add("resume", step.resume.as_ref().map(|v| v.span));
    found
}

fn check_call(
    plan: &Plan,
    step: &Step,
    library: &Library,
    stack: &mut Vec<String>,
    out: &mut Vec<Diagnostic>,
) {
    let Some(name) = &step.plan else { return };
    let id = &step.id.value;
    for (key, span) in settings_of_a_call(step) {
        out.push(
            Diagnostic::error(
                "bad-call",
                span,
                format!("`{key}` does not apply to step `{id}`, a call of plan `{}`", name.value),
            )
            .label("not for a call")
            .help("a call takes `name`, `needs`, `on_failure`, `params` and `secrets`; settings belong on the called plan's steps"),
        );
    }
    for (_, caller) in step.secrets.iter() {
        if !plan.secrets.contains(&caller.value) {
            let hint = match did_you_mean(&caller.value, plan.secrets.names()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "declare it under `secrets:` first".into(),
            };
            out.push(
                Diagnostic::error(
                    "unknown-secret",
                    caller.span,
                    format!(
                        "plan `{}` has no secret `{}` to give",
                        plan.name.value, caller.value
                    ),
                )
                .help(hint),
            );
        }
    }
    param_templates(plan, step, out);
    // The called plan.
    if stack.contains(&name.value) {
        // Reached again inside the plans it calls (the plan checked calls itself when the
        // stack is only itself).
        let start = stack.iter().position(|p| *p == name.value).unwrap_or(0);
        let mut chain = stack[start..].to_vec();
        chain.push(name.value.clone());
        out.push(cycle(&chain, name, library));
        return;
    }
    let Some(file) = library.file(&name.value) else {
        let hint = match did_you_mean(&name.value, library.known.iter().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`?"),
            None if library.known.is_empty() => "no plans were found to call".into(),
            None => format!(
                "the plans are: {}",
                library.known.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        };
        out.push(
            Diagnostic::error(
                "unknown-plan",
                name.span,
                format!(
                    "step `{id}` calls plan `{}`, and there is no plan of that name",
                    name.value
                ),
            )
            .label("no such plan")
            .help(hint),
        );
        return;
    };
    if stack.len() == 1
        && let Some(back) = path_back(&name.value, &stack[0], library)
    {
        let mut chain = vec![stack[0].clone()];
        chain.extend(back);
        chain.push(stack[0].clone());
        out.push(cycle(&chain, name, library));
        return;
    }
    let checked = crate::check(file.clone(), Some(&name.value));
    let Some(callee) = checked.plan.as_ref() else {
        out.push(invalid(step, name, file, 1));
        return;
    };
    stack.push(name.value.clone());
    let mut inner = Vec::new();
    check_plan(callee, library, stack, &mut inner);
    stack.pop();
    let errors = checked
        .diagnostics
        .iter()
        .chain(&inner)
        .filter(|d| d.is_error())
        .count();
    if errors > 0 {
        out.push(invalid(step, name, file, errors));
        return;
    }
    // What a called plan may not have.
    let mut refused: Vec<(&str, crate::Span)> = Vec::new();
    if let Some(c) = &callee.confirm {
        refused.push(("confirm", c.span));
    }
    if let Some(l) = &callee.lock {
        refused.push(("lock", l.span));
    }
    if let Some(s) = callee.on_failure.first() {
        refused.push(("on_failure", s.span));
    }
    if let Some(s) = callee.finally.first() {
        refused.push(("finally", s.span));
    }
    for (key, at) in refused {
        let (line, col) = file.line_col(at.offset);
        out.push(
            Diagnostic::error(
                "bad-call",
                name.span,
                format!(
                    "plan `{}` has `{key}` ({}:{line}:{col}), which a called plan may not have",
                    name.value, file.name
                ),
            )
            .label("called here")
            .help("a called plan's steps run inside this run: its lock, confirmation phrase, `on_failure` and `finally` are this plan's. Move them to the calling plans, or make a plan of the steps to share"),
        );
    }
    secrets(step, name, callee, out);
    params(step, name, callee, out);
}

fn invalid(step: &Step, name: &Spanned<String>, file: &SourceFile, errors: usize) -> Diagnostic {
    let s = if errors == 1 { "" } else { "s" };
    Diagnostic::error(
        "called-plan-invalid",
        name.span,
        format!(
            "step `{}` calls plan `{}`, which has {errors} error{s} ({})",
            step.id.value, name.value, file.name
        ),
    )
    .label("invalid plan")
    .help(format!("`rollbook validate {}` shows them", file.name))
}

/// The plans from `from` on that lead back to a plan calling `to` (`from` first), if any.
fn path_back(from: &str, to: &str, library: &Library) -> Option<Vec<String>> {
    fn walk(
        at: &str,
        to: &str,
        library: &Library,
        seen: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> bool {
        if !seen.insert(at.to_string()) {
            return false;
        }
        path.push(at.to_string());
        if let Some(plan) = library.plan(at) {
            let callees: Vec<&str> = called_names(plan)
                .iter()
                .map(|c| c.value.as_str())
                .collect();
            if callees.contains(&to) {
                return true;
            }
            for callee in callees {
                if walk(callee, to, library, seen, path) {
                    return true;
                }
            }
        }
        path.pop();
        false
    }
    let mut path = Vec::new();
    walk(from, to, library, &mut BTreeSet::new(), &mut path).then_some(path)
}

/// A cycle of calls: `chain` names each plan on it, the first again last; `at` is the call
/// in the plan checked.
fn cycle(chain: &[String], at: &Spanned<String>, library: &Library) -> Diagnostic {
    // Where each plan after the first calls the next, in its own file.
    let mut places = Vec::new();
    for pair in chain.windows(2).skip(1) {
        let (caller, callee) = (&pair[0], &pair[1]);
        if let (Some(plan), Some(file)) = (library.plan(caller), library.file(caller))
            && let Some(call) = called_names(plan).into_iter().find(|c| c.value == *callee)
        {
            let (line, col) = file.line_col(call.span.offset);
            places.push(format!(
                "`{caller}` calls `{callee}` at {}:{line}:{col}",
                file.name
            ));
        }
    }
    let message = if chain.len() == 2 {
        format!("plan `{}` calls itself", chain[0])
    } else {
        let names: Vec<String> = chain.iter().map(|p| format!("`{p}`")).collect();
        format!("plans call each other in a cycle: {}", names.join(" → "))
    };
    let mut d =
        Diagnostic::error("call-cycle", at.span, message).label(format!("calls `{}`", at.value));
    d = if places.is_empty() {
        d.help("a plan cannot run inside itself: remove the call")
    } else {
        d.help(format!(
            "{}; remove one of the calls on the cycle",
            places.join(", ")
        ))
    };
    d
}

/// Every secret of the called plan is given, and only those.
fn secrets(step: &Step, name: &Spanned<String>, callee: &Plan, out: &mut Vec<Diagnostic>) {
    let missing: Vec<&str> = callee
        .secrets
        .names()
        .filter(|s| !step.secrets.contains(s))
        .collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|s| format!("`{s}`")).collect();
        let s = if missing.len() == 1 { "" } else { "s" };
        out.push(
            Diagnostic::error(
                "missing-secret",
                name.span,
                format!(
                    "plan `{}` needs secret{s} {} from step `{}`",
                    name.value,
                    list.join(", "),
                    step.id.value
                ),
            )
            .label("not given")
            .help(format!(
                "give each one of this plan's secrets: `secrets: {{ {}: <a secret of this plan> }}`",
                missing[0]
            )),
        );
    }
    for (called, _) in step.secrets.iter() {
        if !callee.secrets.contains(&called.value) {
            let hint = what_it_takes(&called.value, &callee.secrets);
            out.push(
                Diagnostic::error(
                    "unknown-secret",
                    called.span,
                    format!("plan `{}` has no secret `{}`", name.value, called.value),
                )
                .help(hint),
            );
        }
    }
}

/// The help for a secret or param the called plan does not have: the closest name, else
/// the names it has.
fn what_it_takes<V>(wanted: &str, has: &Entries<V>) -> String {
    match did_you_mean(wanted, has.names()) {
        Some(s) => format!("did you mean `{s}`?"),
        None if has.is_empty() => "it takes none".into(),
        None => format!("it takes: {}", has.names().collect::<Vec<_>>().join(", ")),
    }
}

/// The params given are the called plan's, the required ones are given, and literal values
/// fit their type and `enum`.
fn params(step: &Step, name: &Spanned<String>, callee: &Plan, out: &mut Vec<Diagnostic>) {
    for (given, value) in step.params.iter() {
        let Some(param) = callee.params.get(&given.value) else {
            let hint = what_it_takes(&given.value, &callee.params);
            out.push(
                Diagnostic::error(
                    "unknown-param",
                    given.span,
                    format!("plan `{}` has no param `{}`", name.value, given.value),
                )
                .help(hint),
            );
            continue;
        };
        if has_template(value) {
            continue;
        }
        let problem = match crate::params::check_value(param.ty(), &value.to_json()) {
            Err(why) => Some(why),
            Ok(v) => param.choices.as_ref().and_then(|choices| {
                let allowed: Vec<Value> = choices
                    .iter()
                    .filter_map(|c| crate::params::check_value(param.ty(), &c.to_json()).ok())
                    .collect();
                (!v.is_null() && !allowed.contains(&v)).then(|| {
                    let list: Vec<String> =
                        allowed.iter().map(crate::params::display_value).collect();
                    format!("not one of: {}", list.join(", "))
                })
            }),
        };
        if let Some(why) = problem {
            out.push(
                Diagnostic::error(
                    "bad-param",
                    value.span,
                    format!("param `{}` of plan `{}`: {why}", given.value, name.value),
                )
                .label("wrong value"),
            );
        }
    }
    let missing: Vec<&str> = callee
        .params
        .iter()
        .filter(|(n, p)| p.is_required() && p.default.is_none() && !step.params.contains(&n.value))
        .map(|(n, _)| n.value.as_str())
        .collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|s| format!("`{s}`")).collect();
        let s = if missing.len() == 1 { "" } else { "s" };
        out.push(
            Diagnostic::error(
                "missing-param",
                name.span,
                format!(
                    "plan `{}` requires param{s} {}, and step `{}` does not give {}",
                    name.value,
                    list.join(", "),
                    step.id.value,
                    if missing.len() == 1 { "it" } else { "them" }
                ),
            )
            .label("required params missing")
            .help(format!(
                "add them under `params:`, e.g. `params: {{ {}: ... }}`",
                missing[0]
            )),
        );
    }
}

/// The names a call's param templates read are known when the plan is compiled.
fn param_templates(plan: &Plan, step: &Step, out: &mut Vec<Diagnostic>) {
    let mut scalars = Vec::new();
    for (_, value) in step.params.iter() {
        template_scalars(value, &mut scalars);
    }
    for (text, span) in scalars {
        let parsed = match template::parse(text) {
            Ok(p) => p,
            Err(e) => {
                out.push(Diagnostic::error(
                    "bad-template",
                    span,
                    format!("the template does not parse: {}", e.message),
                ));
                continue;
            }
        };
        for r in template::references(&parsed) {
            let root = r.path.first().map(String::as_str).unwrap_or_default();
            let second = r.path.get(1).map(String::as_str).unwrap_or_default();
            let why = match root {
                "params" if !second.is_empty() && !plan.params.contains(second) => Some(format!(
                    "plan `{}` has no param `{second}`",
                    plan.name.value
                )),
                "params" | "inventory" | "plan" => None,
                "run" if matches!(second, "id" | "reason" | "user" | "started_at") => None,
                "run" => Some(format!(
                    "`run.{second}` is known only while a step runs, and a call's params are rendered when the plan is compiled: read it in the called plan (it sees this run's `run`)"
                )),
                "steps" | "secrets" | "item" | "index" => Some(format!(
                    "`{root}` has no value when a call's params are rendered (when the plan is compiled): a call's params may read `params`, `inventory`, `plan` and `run.id`, `run.reason`, `run.user`, `run.started_at`"
                )),
                other => Some(format!("unknown name `{other}`")),
            };
            if let Some(why) = why {
                out.push(
                    Diagnostic::error("call-param", span, why)
                        .label(format!("reads `{}`", r.path.join("."))),
                );
            }
        }
    }
}

fn template_scalars<'n>(node: &'n Node, out: &mut Vec<(&'n str, crate::Span)>) {
    match &node.kind {
        NodeKind::Scalar { text, .. } if text.contains("{{") => out.push((text, node.span)),
        NodeKind::Scalar { .. } => {}
        NodeKind::Seq(items) => items.iter().for_each(|n| template_scalars(n, out)),
        NodeKind::Map(entries) => entries.iter().for_each(|(_, v)| template_scalars(v, out)),
    }
}

fn has_template(node: &Node) -> bool {
    let mut found = Vec::new();
    template_scalars(node, &mut found);
    !found.is_empty()
}

/// A call's params rendered in the caller's context (`params`, `inventory`, `plan`, `run`):
/// a string that is one `{{ expression }}` keeps the expression's JSON type.
pub fn render_params(
    step: &Step,
    context: &Value,
    renderer: &template::Renderer,
) -> Result<Map<String, Value>, String> {
    step.params
        .iter()
        .map(|(k, v)| Ok((k.value.clone(), render_value(v, context, renderer)?)))
        .collect()
}

fn render_value(node: &Node, ctx: &Value, renderer: &template::Renderer) -> Result<Value, String> {
    Ok(match &node.kind {
        NodeKind::Scalar { text, .. } if text.contains("{{") => {
            match template::eval_single(text, ctx) {
                Ok(Some(v)) => v,
                _ => Value::String(renderer.render(text, ctx, template::Escape::None)?),
            }
        }
        NodeKind::Scalar { .. } => node.to_json(),
        NodeKind::Seq(items) => Value::Array(
            items
                .iter()
                .map(|n| render_value(n, ctx, renderer))
                .collect::<Result<_, _>>()?,
        ),
        NodeKind::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    Ok((
                        k.as_str().unwrap_or_default().to_string(),
                        render_value(v, ctx, renderer)?,
                    ))
                })
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// Whether `step` is a call of a plan.
pub fn is_call(step: &Step) -> bool {
    matches!(step.action(), ActionRef::Call(_))
}
