//! Checks a decoded plan for everything that can be known before it runs, and reports all of
//! it at once: ids and `needs`, cycles, settings that contradict each other, parameters, and
//! every template and jq expression (syntax, the names they read, and that step outputs they
//! read come from steps upstream).

use std::collections::{HashMap, HashSet};

use petgraph::algo::tarjan_scc;
use petgraph::graph::DiGraph;

use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::model::*;
use crate::template::{self, Reference};
use crate::{Span, jq, params};

mod actions;
mod expressions;

/// Validates `plan`. `expected_name` is the file stem the plan's `name` must equal.
/// `text` is the plan's source; with it, problems inside a template or jq expression are
/// pointed at the exact name or column instead of the whole value.
pub fn validate(plan: &Plan, expected_name: Option<&str>, text: Option<&str>) -> Vec<Diagnostic> {
    let mut v = Validator {
        plan,
        text,
        diags: Vec::new(),
        pending_jq: Vec::new(),
        cleanup: false,
    };
    v.top_level(expected_name);
    v.scope(&plan.steps, false, &Scope::root());
    // `on_failure` and `finally` are graphs of their own: they read `run.status` and
    // params, not the outputs of main steps (which may not have run).
    let after = Scope::root();
    v.cleanup = true;
    v.scope(&plan.on_failure, false, &after);
    v.scope(&plan.finally, false, &after);
    v.compile_jq();
    v.size();
    v.diags
}

struct Validator<'p> {
    plan: &'p Plan,
    text: Option<&'p str>,
    diags: Vec<Diagnostic>,
    /// jq expressions seen, with what they are for (`until`, `capture`, ...).
    pending_jq: Vec<(Jq, &'static str)>,
    /// Checking `on_failure` or `finally` steps.
    cleanup: bool,
}

/// What the steps of one scope can see from around them.
#[derive(Clone)]
struct Scope<'p> {
    /// Steps whose outputs are readable, by id (upstream steps of enclosing scopes).
    visible: HashMap<&'p str, &'p Step>,
    /// Inside a `for_each`: `item` and `index` exist.
    in_for_each: bool,
    /// `host` may exist: in an `ssh` step, or inside a `for_each` (over inventory hosts).
    host: bool,
}

impl Scope<'_> {
    /// The scope of the plan's top level and of the `on_failure` and `finally` phases: no
    /// step outputs, no item.
    fn root() -> Self {
        Scope {
            visible: HashMap::new(),
            in_for_each: false,
            host: false,
        }
    }
}

/// A step whose effect can be put back: it has an `undo`, only reads (`sleep`, `confirm`, an
/// HTTP `GET` or `HEAD`, an SQL `query` that is a `SELECT`), is a group of such steps, or
/// calls a plan (whose steps have their own `undo`).
fn undoable(step: &Step) -> bool {
    if step.undo.is_some() {
        return true;
    }
    match step.action() {
        ActionRef::Sleep(_) | ActionRef::Confirm(_) => true,
        ActionRef::Group(steps) => steps.iter().all(undoable),
        ActionRef::Http(a) => a
            .method
            .as_ref()
            .is_none_or(|m| matches!(m.value.to_ascii_uppercase().as_str(), "GET" | "HEAD")),
        ActionRef::Sql(a) => {
            a.statements.is_none()
                && a.query.as_ref().is_some_and(|q| {
                    let q = q.value.trim_start().to_ascii_lowercase();
                    q.starts_with("select") || q.starts_with("show")
                })
        }
        // A called plan's steps carry their own `undo`s.
        ActionRef::Call(_) => true,
        ActionRef::Ssh(_) | ActionRef::Shell(_) => false,
    }
}

/// Where a template's text goes, which decides what it may contain.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sink {
    /// Shell commands: values are quoted.
    Shell,
    /// SQL text: values must be bound through `args`.
    Sql,
    /// Shown as is on the operator's terminal (a `confirm` question): no secrets.
    Terminal,
    /// Everything else.
    Text,
}

/// The `needs` of one scope: node weights are indexes into the scope's steps, edges go from
/// a step to the steps it needs.
type NeedsGraph = DiGraph<usize, ()>;

/// The steps upstream of `steps[i]` in its scope (what it needs, transitively), without
/// itself.
fn upstream(graph: &NeedsGraph, i: usize) -> HashSet<usize> {
    let node = |j: usize| petgraph::graph::NodeIndex::new(j);
    let mut found: HashSet<usize> = HashSet::new();
    let mut todo: Vec<usize> = graph.neighbors(node(i)).map(|n| graph[n]).collect();
    while let Some(j) = todo.pop() {
        if found.insert(j) {
            todo.extend(graph.neighbors(node(j)).map(|n| graph[n]));
        }
    }
    found.remove(&i);
    found
}

/// Whether an action has a result that `until` can check and `capture` can read.
fn has_result(action: &ActionRef<'_>) -> bool {
    !matches!(
        action,
        ActionRef::Sleep(_) | ActionRef::Confirm(_) | ActionRef::Group(_) | ActionRef::Call(_)
    )
}

/// Longest lock name: its file name (`NAME.lock`) stays well under the 255 bytes file
/// systems allow.
pub const MAX_LOCK_NAME: usize = 128;

/// What is wrong with a lock name, if anything.
fn lock_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name.len() > MAX_LOCK_NAME {
        return Some(format!("it is {} characters long", name.chars().count()));
    }
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .map(|c| format!("it holds {c:?}"))
}

fn is_valid_id(id: &str) -> bool {
    let mut bytes = id.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

impl<'p> Validator<'p> {
    /// The plan compiles to at most [`crate::compile::size::MAX_NODES`] nodes, counted from
    /// the lists and inventory groups its `for_each` name (params are counted at compile time).
    fn size(&mut self) {
        use crate::compile::size;
        let (groups, _) = crate::compile::merge_inventory(
            &self.plan.inventory,
            &std::collections::BTreeMap::new(),
        );
        // Groups that cannot be expanded are reported by `inventory`; counted as empty here.
        let inventory = crate::inventory::expand(&groups).unwrap_or_default();
        let context = serde_json::json!({ "inventory": inventory });
        if let (total, Some((step, nodes))) = size::planned_nodes(self.plan, &context)
            && total > size::MAX_NODES
        {
            self.push(
                Diagnostic::error("too-many-nodes", step.id.span, size::too_many(total, step, nodes))
                    .label("expands to too many nodes")
                    .help("nested `for_each` multiply: split the plan, or run it for part of the hosts at a time"),
            );
        }
    }

    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// The span of `len` bytes at `offset` inside the value written at `span`, when the value
    /// stands on one line as written (plain or quoted, without escapes before that point);
    /// otherwise the whole value.
    fn inside(&self, span: Span, value: &str, offset: usize, len: usize) -> Span {
        let Some(text) = self.text else { return span };
        let Some(written) = text.get(span.offset..span.offset + span.len) else {
            return span;
        };
        let quoted = written.starts_with(['\'', '"']) as usize;
        let start = span.offset + quoted;
        let prefix = &value[..offset.min(value.len())];
        match text.get(start..start + prefix.len()) {
            Some(found) if found == prefix && !prefix.contains('\n') => {
                let len = len.min(span.offset + span.len - (start + prefix.len()));
                Span::new(start + prefix.len(), len)
            }
            _ => span,
        }
    }

    /// The plan's own keys: version, name, confirmation phrase, params, inventory,
    /// connections and defaults.
    fn top_level(&mut self, expected_name: Option<&str>) {
        self.version();
        self.plan_name(expected_name);
        self.confirm_phrase();
        self.lock_name();
        for (name, param) in self.plan.params.iter() {
            self.param(name, param);
        }
        self.inventory();
        self.connections();
        self.defaults();
    }

    /// Only version 1 is known (a missing version is reported by the decoder).
    fn version(&mut self) {
        let version = &self.plan.version;
        if version.value != 1 && version.span != Span::default() {
            self.push(
                Diagnostic::error(
                    "bad-version",
                    version.span,
                    format!("plan format version {} is not known", version.value),
                )
                .label("expected 1")
                .help("this rollbook reads version 1 plans"),
            );
        }
    }

    /// The plan's name is an id and equals its file stem.
    fn plan_name(&mut self, expected_name: Option<&str>) {
        let name = &self.plan.name;
        if let Some(expected) = expected_name
            && !name.value.is_empty()
            && name.value != expected
        {
            self.push(
                Diagnostic::error("name-mismatch", name.span, format!("the plan is named `{}` but its file is `{expected}.yaml`", name.value))
                    .label(format!("expected `{expected}`"))
                    .help("a plan's name equals its file stem, so `rollbook run NAME` finds it: rename one of them"),
            );
        }
        if !name.value.is_empty() && !is_valid_id(&name.value) {
            self.push(
                Diagnostic::error(
                    "bad-id",
                    name.span,
                    format!("`{}` is not a valid plan name", name.value),
                )
                .help(
                    "use lowercase letters, digits, `-` and `_`, starting with a letter or digit",
                ),
            );
        }
    }

    /// A confirmation phrase has something to type.
    fn confirm_phrase(&mut self) {
        if let Some(c) = &self.plan.confirm
            && c.value.trim().is_empty()
        {
            self.push(
                Diagnostic::error("bad-value", c.span, "the confirmation phrase is empty")
                    .help("write the phrase to type, e.g. `confirm: ROLLBACK`"),
            );
        }
    }

    /// A lock name is the name of its file under `locks/`: non-empty, short, and of
    /// characters that need no encoding, so two names never share a file.
    fn lock_name(&mut self) {
        let Some(lock) = &self.plan.lock else { return };
        if let Some(problem) = lock_name_problem(&lock.value) {
            self.push(
                Diagnostic::error("bad-lock", lock.span, format!("bad lock name: {problem}"))
                    .help(format!(
                        "use 1 to {MAX_LOCK_NAME} letters, digits, `.`, `_` and `-`, e.g. `lock: platform`"
                    )),
            );
        }
    }

    /// The inventory's groups: children that exist, no cycle, no host listed twice in a group
    /// or defined twice with different settings, no group named `hosts`
    /// ([`crate::inventory::check`]).
    fn inventory(&mut self) {
        let defs: Vec<crate::inventory::Defined<'_>> = self
            .plan
            .inventory
            .iter()
            .map(|(name, group)| crate::inventory::Defined {
                file: 0,
                name,
                group,
            })
            .collect();
        // One file: every place is in it, so no diagnostic names another file.
        let place = |_: usize, _: Span| String::new();
        for (_, d) in crate::inventory::check(&defs, &place) {
            self.push(d);
        }
    }

    /// The templates of each connection, which see the plan's context but no step.
    fn connections(&mut self) {
        let root = Scope::root();
        for (_, conn) in self.plan.connections.iter() {
            match conn {
                Connection::Sql(c) => self.template(&c.url, &root, Sink::Text),
                Connection::Http(c) => {
                    self.template(&c.base_url, &root, Sink::Text);
                    for (_, h) in c.headers.iter() {
                        self.template(h, &root, Sink::Text);
                    }
                    self.tls(c.tls.as_ref(), &root);
                }
            }
        }
    }

    /// `defaults`: durations, retry, the default SQL connection, and the templates of the
    /// HTTP and SSH defaults.
    fn defaults(&mut self) {
        let d = &self.plan.defaults;
        for duration in d.durations() {
            self.duration_param(duration);
        }
        if let Some(t) = &d.timeout {
            self.positive(t, "timeout");
        }
        if let Some(r) = &d.retry {
            self.retry(r);
        }
        if let Some(c) = d.sql.as_ref().and_then(|s| s.connection.as_ref()) {
            self.connection_ref(c, "sql");
        }
        let root = Scope::root();
        if let Some(http) = &d.http {
            for (_, h) in http.headers.iter() {
                self.template(h, &root, Sink::Text);
            }
            self.tls(http.tls.as_ref(), &root);
        }
        if let Some(ssh) = &d.ssh {
            self.ssh_settings(ssh, &root);
        }
    }

    /// A param's `enum` values and default fit its type.
    fn param(&mut self, name: &Spanned<String>, param: &Param) {
        let ty = param.ty();
        let choices: Vec<(serde_json::Value, Span)> = param
            .choices
            .iter()
            .flatten()
            .map(|n| (n.to_json(), n.span))
            .collect();
        for (value, span) in &choices {
            if let Err(why) = params::check_value(ty, value) {
                self.push(Diagnostic::error(
                    "bad-param",
                    *span,
                    format!(
                        "a choice of param `{}` is not a {}: {why}",
                        name.value,
                        ty.as_str()
                    ),
                ));
            }
        }
        if let Some(default) = &param.default {
            self.param_default(name, param, default, &choices);
        }
    }

    /// A param's default fits its type and its `enum`, and is not combined with `required`.
    fn param_default(
        &mut self,
        name: &Spanned<String>,
        param: &Param,
        default: &crate::yaml::Node,
        choices: &[(serde_json::Value, Span)],
    ) {
        let ty = param.ty();
        let value = default.to_json();
        match params::check_value(ty, &value) {
            Err(why) => self.push(
                Diagnostic::error(
                    "bad-param",
                    default.span,
                    format!(
                        "the default of param `{}` does not fit its type {}: {why}",
                        name.value,
                        ty.as_str()
                    ),
                )
                .label(format!("expected {}", ty.as_str())),
            ),
            Ok(v)
                if !choices.is_empty()
                    && !choices
                        .iter()
                        .any(|(c, _)| params::check_value(ty, c).ok().as_ref() == Some(&v)) =>
            {
                let allowed: Vec<String> = choices
                    .iter()
                    .map(|(c, _)| params::display_value(c))
                    .collect();
                let mut d = Diagnostic::error(
                    "bad-param",
                    default.span,
                    format!(
                        "the default of param `{}` is not one of its `enum` values",
                        name.value
                    ),
                )
                .label(format!("expected one of: {}", allowed.join(", ")));
                if let Some(s) = did_you_mean(
                    &params::display_value(&v),
                    allowed.iter().map(String::as_str),
                ) {
                    d = d.help(format!("did you mean `{s}`?"));
                }
                self.push(d);
            }
            Ok(_) => {}
        }
        if param.is_required() {
            self.push(
                Diagnostic::warning(
                    "required-with-default",
                    default.span,
                    format!(
                        "param `{}` is required but has a default: the default is used when no value is given, so `required` has no effect",
                        name.value
                    ),
                )
                .help("drop `required: true` (to use the default) or the default (to insist on a value)"),
            );
        }
    }

    /// A duration written as `{{ params.NAME }}` must name a param of type duration.
    fn duration_param(&mut self, d: &Spanned<Duration>) {
        let Duration::Param(name) = &d.value else {
            return;
        };
        match self.plan.params.get(name) {
            None => {
                let names = self.plan.params.iter().map(|(n, _)| n.value.as_str());
                let mut diag = Diagnostic::error(
                    "unknown-name",
                    d.span,
                    format!("the duration reads `params.{name}`, but there is no param `{name}`"),
                )
                .label("unknown param");
                if let Some(s) = did_you_mean(name, names) {
                    diag = diag.help(format!("did you mean `{s}`?"));
                } else {
                    diag = diag.help(format!(
                        "declare it under `params:` with `type: duration`: `{name}: {{ type: duration, default: 5m }}`"
                    ));
                }
                self.push(diag);
            }
            Some(p) if p.ty.as_ref().map(|t| t.value) != Some(ParamType::Duration) => {
                self.push(
                    Diagnostic::error(
                        "bad-duration",
                        d.span,
                        format!("param `{name}` is not of type duration"),
                    )
                    .label("not a duration param")
                    .help(format!(
                        "give `{name}` `type: duration`, or write a length here (30s, 5m)"
                    )),
                );
            }
            Some(_) => {}
        }
    }

    fn positive(&mut self, d: &Spanned<Duration>, what: &str) {
        if d.value.fixed().is_some_and(|d| d.is_zero()) {
            self.push(
                Diagnostic::error("bad-duration", d.span, format!("a {what} of zero"))
                    .help("give it a length, like 30s"),
            );
        }
    }

    fn retry(&mut self, r: &Retry) {
        if r.attempts.value == 0 {
            self.push(
                Diagnostic::error(
                    "bad-retry",
                    r.attempts.span,
                    "`attempts` is 0: the step would never run",
                )
                .help("attempts counts the first try: 1 means no retry, 3 means two retries"),
            );
        } else if r.attempts.value > 1000 {
            self.push(
                Diagnostic::error(
                    "bad-retry",
                    r.attempts.span,
                    format!(
                        "{} attempts is more than the 1000 allowed",
                        r.attempts.value
                    ),
                )
                .help("use `until` with a `deadline` for long waits"),
            );
        }
        if let (Some(delay), Some(max)) = (&r.delay, &r.max_delay)
            && let (Some(delay_len), Some(max_len)) = (delay.value.fixed(), max.value.fixed())
            && max_len < delay_len
        {
            self.push(
                Diagnostic::error("bad-retry", max.span, "`max_delay` is shorter than `delay`")
                    .related(delay.span, "delay"),
            );
        }
        if let Some(max) = &r.max_delay
            && r.backoff.as_ref().is_none_or(|b| b.value == Backoff::Fixed)
        {
            self.push(
                Diagnostic::warning(
                    "unused-setting",
                    max.span,
                    "`max_delay` only applies with `backoff: exponential`",
                )
                .help("add `backoff: exponential` or drop `max_delay`"),
            );
        }
    }

    fn connection_ref(&mut self, name: &Spanned<String>, kind: &str) {
        match self.plan.connections.get(&name.value) {
            Some(Connection::Sql(_)) if kind == "sql" => {}
            Some(Connection::Http(_)) if kind == "http" => {}
            Some(_) => self.push(Diagnostic::error(
                "bad-connection",
                name.span,
                format!("connection `{}` is not an {kind} connection", name.value),
            )),
            None => {
                let mut d = Diagnostic::error(
                    "unknown-connection",
                    name.span,
                    format!("no connection named `{}`", name.value),
                )
                .label("not in `connections`");
                d = match did_you_mean(&name.value, self.plan.connections.names()) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help(format!(
                        "declare it under `connections:` as `{}: {{ {kind}: {{ ... }} }}`",
                        name.value
                    )),
                };
                self.push(d);
            }
        }
    }

    /// Checks the steps of one scope and, recursively, of the groups in it. `parallel` is
    /// the group's `parallel: true`.
    fn scope(&mut self, steps: &'p [Step], parallel: bool, outer: &Scope<'p>) {
        let index = self.step_ids(steps);
        let graph = self.needs_graph(steps, parallel, &index, outer);
        self.cycles(steps, parallel, &index, &graph);
        if !parallel {
            self.written_for_roots(steps);
        }
        for (i, step) in steps.iter().enumerate() {
            let mut visible = outer.visible.clone();
            for j in upstream(&graph, i) {
                visible.insert(&steps[j].id.value, &steps[j]);
            }
            let in_for_each = outer.in_for_each || step.for_each.is_some();
            let here = Scope {
                visible,
                in_for_each,
                host: in_for_each || matches!(step.action(), ActionRef::Ssh(_)),
            };
            self.step(step, outer, &here);
            self.irreversible_after_steps_without_undo(steps, &graph, i);
        }
    }

    /// Each step id is well formed and unique in its scope. Returns the index of each id's
    /// first step.
    fn step_ids(&mut self, steps: &'p [Step]) -> HashMap<&'p str, usize> {
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, step) in steps.iter().enumerate() {
            let id = &step.id;
            if id.value.is_empty() {
                continue;
            }
            if !is_valid_id(&id.value) {
                self.push(
                    Diagnostic::error("bad-id", id.span, format!("`{}` is not a valid step id", id.value))
                        .help("use lowercase letters, digits, `-` and `_`, starting with a letter or digit"),
                );
            }
            match index.get(id.value.as_str()) {
                Some(&first) => self.push(
                    Diagnostic::error(
                        "duplicate-id",
                        id.span,
                        format!("two steps have the id `{}`", id.value),
                    )
                    .label("second")
                    .related(steps[first].id.span, "first")
                    .help("ids are unique within a scope; rename one"),
                ),
                None => {
                    index.insert(&id.value, i);
                }
            }
        }
        index
    }

    /// The graph of a scope: node `i` is `steps[i]`, with an edge to each step it waits for
    /// (what it needs, else the step above it). Reports needs listed twice, on the step
    /// itself, or on no step of the scope.
    fn needs_graph(
        &mut self,
        steps: &'p [Step],
        parallel: bool,
        index: &HashMap<&'p str, usize>,
        outer: &Scope<'p>,
    ) -> NeedsGraph {
        let mut graph = NeedsGraph::new();
        let nodes: Vec<_> = (0..steps.len()).map(|i| graph.add_node(i)).collect();
        for (i, (step, waits)) in steps.iter().zip(waits(steps, parallel)).enumerate() {
            if let Waits::Above(j) = waits {
                graph.add_edge(nodes[i], nodes[j], ());
            }
            let mut seen = HashSet::new();
            for need in step.needs_written() {
                if !seen.insert(need.value.as_str()) {
                    self.push(Diagnostic::warning(
                        "duplicate-need",
                        need.span,
                        format!("`{}` is listed twice in `needs`", need.value),
                    ));
                    continue;
                }
                match index.get(need.value.as_str()) {
                    Some(&j) if j == i => self.push(Diagnostic::error(
                        "cycle",
                        need.span,
                        format!("step `{}` needs itself", step.id.value),
                    )),
                    Some(&j) => {
                        graph.add_edge(nodes[i], nodes[j], ());
                    }
                    None => self.unknown_need(step, need, steps, index, outer),
                }
            }
        }
        graph
    }

    /// `step` needs `need`, which is not a step of its scope.
    fn unknown_need(
        &mut self,
        step: &Step,
        need: &Spanned<String>,
        steps: &[Step],
        index: &HashMap<&'p str, usize>,
        outer: &Scope<'p>,
    ) {
        let d = Diagnostic::error(
            "unknown-need",
            need.span,
            format!(
                "step `{}` needs `{}`, which is not a step here",
                step.id.value, need.value
            ),
        )
        .label("no such step");
        let d = match did_you_mean(&need.value, index.keys().copied()) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None if outer.visible.contains_key(need.value.as_str()) => {
                d.help("`needs` names steps of the same scope; a group's steps already run after what the group needs")
            }
            None => d.help(format!(
                "the steps here are: {}",
                steps
                    .iter()
                    .map(|s| s.id.value.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        self.push(d);
    }

    /// Steps that need each other in a cycle: one diagnostic per cycle, naming every step on
    /// it and pointing at each `needs` entry that closes it.
    fn cycles(
        &mut self,
        steps: &[Step],
        parallel: bool,
        index: &HashMap<&'p str, usize>,
        graph: &NeedsGraph,
    ) {
        let waits = waits(steps, parallel);
        for scc in tarjan_scc(graph) {
            if scc.len() < 2 {
                continue;
            }
            let mut members: Vec<usize> = scc.iter().map(|n| graph[*n]).collect();
            members.sort_unstable();
            let names: Vec<String> = members
                .iter()
                .map(|&i| format!("`{}`", steps[i].id.value))
                .collect();
            let mut d = Diagnostic::error(
                "cycle",
                steps[members[0]].id.span,
                format!("steps {} need each other in a cycle", names.join(", ")),
            )
            .help("remove one of the `needs` on the cycle so the steps have an order");
            for &i in &members {
                if let Waits::Above(j) = waits[i]
                    && members.contains(&j)
                {
                    d = d.related(
                        steps[i].id.span,
                        format!(
                            "`{}` has no `needs`: it runs after `{}`, the step above it",
                            steps[i].id.value, steps[j].id.value
                        ),
                    )
                    .help("a step without `needs` runs after the step above it: give it `needs` (`needs: []` starts it at once), or move it");
                }
                for need in steps[i].needs_written() {
                    if let Some(&j) = index.get(need.value.as_str())
                        && members.contains(&j)
                    {
                        d = d.related(
                            need.span,
                            format!("`{}` needs `{}`", steps[i].id.value, need.value),
                        );
                    }
                }
            }
            self.push(d);
        }
    }

    /// A list that says `needs: [X]` where X is the step just above (which it waits for anyway)
    /// was likely written when steps without `needs` started at once: each step of that list
    /// without `needs` (other than the first) now waits for the step above it, and is named.
    fn written_for_roots(&mut self, steps: &[Step]) {
        let redundant = steps.iter().enumerate().skip(1).find(|(i, s)| {
            matches!(s.needs.as_deref(), Some([only]) if only.value == steps[i - 1].id.value)
        });
        let Some((r, example)) = redundant else {
            return;
        };
        for (i, step) in steps.iter().enumerate().skip(1) {
            if step.needs.is_some() {
                continue;
            }
            let above = &steps[i - 1].id.value;
            self.push(
                Diagnostic::warning(
                    "implicit-order",
                    step.id.span,
                    format!("step `{}` has no `needs`, so it runs after `{above}`, the step above it", step.id.value),
                )
                .label(format!("waits for `{above}`"))
                .related(example.needs_written()[0].span, format!("`{}` names the step above it, which it waits for anyway", example.id.value))
                .help(format!(
                    "the steps of a list run in the order they are written. To start `{}` at once, write `needs: []`; if the order is right, drop the `needs` that only name the step above (like the one on `{}`)",
                    step.id.value, steps[r].id.value
                )),
            );
        }
    }

    /// `parallel` says how the steps of a group run: on any other step it means nothing.
    fn parallel_only_on_groups(&mut self, step: &Step) {
        let Some(p) = &step.parallel else { return };
        let action = step.action();
        if !matches!(action, ActionRef::Group(_)) {
            self.push(
                Diagnostic::error(
                    "bad-parallel",
                    p.span,
                    format!(
                        "`parallel` is for a group's steps, and step `{}` is not a group (its action is `{}`)",
                        step.id.value,
                        action.kind()
                    ),
                )
                .label("not a group")
                .help("drop it; to start this step at the same time as the step above it, write `needs: []`"),
            );
        }
    }

    /// Checks one step. `outer` is the scope around it (for `for_each`, which is evaluated
    /// before the step's items exist); `here` is the step's own.
    fn step(&mut self, step: &'p Step, outer: &Scope<'p>, here: &Scope<'p>) {
        if let Some(name) = &step.name {
            self.template(name, here, Sink::Text);
        }
        self.for_each(step, outer, here);
        self.fan_out_settings(step);
        self.parallel_only_on_groups(step);
        for duration in step.durations() {
            self.duration_param(duration);
        }
        if let Some(t) = &step.timeout {
            self.positive(t, "timeout");
        }
        if let Some(r) = &step.retry {
            self.retry(r);
        }
        if let Some(w) = &step.when {
            self.jq(w, here, "when");
        }
        match &step.until {
            Some(until) => self.until_gate(step, until, here),
            None => self.gate_settings_need_until(step),
        }
        self.captures(step, here);
        self.action(step, here);
        self.undo(step, here);
    }

    /// A step's `undo`: on a step with an action, in the main steps; its action is checked
    /// as any step's, with the step's own outputs readable (`steps.<id>.outputs`).
    fn undo(&mut self, step: &'p Step, here: &Scope<'p>) {
        let Some(undo) = &step.undo else {
            return;
        };
        if let ActionRef::Group(_) = step.action() {
            self.push(
                Diagnostic::error(
                    "bad-undo",
                    undo.span,
                    format!("group `{}` cannot have an `undo`", step.id.value),
                )
                .help("put `undo` on the steps of the group that change something"),
            );
            return;
        }
        if self.cleanup {
            self.push(
                Diagnostic::error(
                    "bad-undo",
                    undo.span,
                    format!(
                        "step `{}` is an `on_failure` or `finally` step: those are not undone",
                        step.id.value
                    ),
                )
                .help("`undo` belongs to the steps of `steps`"),
            );
            return;
        }
        let mut scope = here.clone();
        scope.visible.insert(&step.id.value, step);
        match (&undo.ssh, &step.ssh) {
            // What the undo takes from its step (`host`, settings) was checked with the step.
            (Some(a), Some(own)) => {
                if a.host != own.host {
                    self.template(&a.host, &scope, Sink::Text);
                }
                for t in [&a.run, &a.script].into_iter().flatten() {
                    self.template(t, &scope, Sink::Shell);
                }
                if let Some(u) = &a.upload {
                    self.template(&u.from, &scope, Sink::Text);
                    self.template(&u.to, &scope, Sink::Text);
                }
                if a.settings != own.settings {
                    self.ssh_settings(&a.settings, &scope);
                }
            }
            (Some(a), None) => self.ssh(a, &scope),
            _ => {}
        }
        if let Some(a) = &undo.http {
            self.http(a, &scope);
        }
        if let Some(a) = &undo.sql {
            self.sql(a, &scope);
        }
        if let Some(a) = &undo.shell {
            self.shell(a, &scope);
        }
    }

    /// An irreversible step whose steps before it (those it waits for, in its scope) cannot
    /// all be undone: if it, or a step after it, fails, what ran before stays as it is.
    fn irreversible_after_steps_without_undo(
        &mut self,
        steps: &'p [Step],
        graph: &NeedsGraph,
        i: usize,
    ) {
        let step = &steps[i];
        let Some(mark) = step.irreversible.as_ref().filter(|m| m.value) else {
            return;
        };
        let mut before: Vec<usize> = upstream(graph, i).into_iter().collect();
        before.sort_unstable();
        let missing: Vec<String> = before
            .into_iter()
            .filter(|&j| !undoable(&steps[j]))
            .map(|j| format!("`{}`", steps[j].id.value))
            .collect();
        if missing.is_empty() {
            return;
        }
        self.push(
            Diagnostic::warning(
                "irreversible-without-undo",
                mark.span,
                format!(
                    "step `{}` is irreversible, and steps before it have no `undo`: {}",
                    step.id.value,
                    missing.join(", ")
                ),
            )
            .label("point of no return")
            .help("if the run stops before this step, what those steps did stays done: give them an `undo`"),
        );
    }

    /// A `for_each` is a list (an empty one is a warning) or one expression that yields a
    /// list, evaluated after the step's needs but before its items exist.
    fn for_each(&mut self, step: &'p Step, outer: &Scope<'p>, here: &Scope<'p>) {
        match &step.for_each {
            Some(ForEach::Template(t)) => {
                let before_items = Scope {
                    visible: here.visible.clone(),
                    in_for_each: outer.in_for_each,
                    host: outer.in_for_each,
                };
                self.template(t, &before_items, Sink::Text);
                if template::single_expression(&t.value).is_none() {
                    self.push(
                        Diagnostic::error("bad-for-each", t.span, "`for_each` must be a list, or a single `{{ expression }}` that yields one")
                            .help("e.g. `for_each: \"{{ inventory.operators }}\"` or `for_each: \"{{ params.nodes }}\"`"),
                    );
                }
            }
            Some(ForEach::List(items)) if items.is_empty() => {
                self.push(Diagnostic::warning(
                    "empty-for-each",
                    step.span,
                    format!(
                        "step `{}` runs for an empty list: it never runs",
                        step.id.value
                    ),
                ));
            }
            _ => {}
        }
    }

    /// `concurrency` is not 0, and it and `max_failures` are only set on a `for_each`.
    fn fan_out_settings(&mut self, step: &Step) {
        if let Some(c) = &step.concurrency
            && c.value == 0
        {
            self.push(
                Diagnostic::error(
                    "bad-value",
                    c.span,
                    "`concurrency: 0` would never start anything",
                )
                .help("use 1 for one at a time"),
            );
        }
        if step.for_each.is_some() {
            return;
        }
        for (key, value) in [
            ("concurrency", &step.concurrency),
            ("max_failures", &step.max_failures),
        ] {
            if let Some(v) = value {
                self.push(
                    Diagnostic::warning("unused-setting", v.span, format!("`{key}` applies to the instances of a `for_each`, and step `{}` has none", step.id.value))
                        .help("add `for_each`, or drop the setting"),
                );
            }
        }
    }

    /// An `until` gate: its condition, an `interval` no longer than the `deadline`, durations
    /// that are not zero, and an action with a result to check.
    fn until_gate(&mut self, step: &'p Step, until: &'p Jq, here: &Scope<'p>) {
        self.jq(until, here, "until");
        if let (Some(i), Some(d)) = (&step.interval, &step.deadline)
            && let (Some(il), Some(dl)) = (i.value.fixed(), d.value.fixed())
            && il > dl
        {
            self.push(
                Diagnostic::error(
                    "bad-gate",
                    i.span,
                    "`interval` is longer than `deadline`: the gate would poll only twice",
                )
                .related(d.span, "deadline"),
            );
        }
        for d in [&step.interval, &step.deadline].into_iter().flatten() {
            self.positive(d, "gate duration");
        }
        let action = step.action();
        if !has_result(&action) {
            self.push(Diagnostic::error(
                "bad-gate",
                until.span,
                format!(
                    "`until` repeats an action and checks its result; a `{}` has none to check",
                    action.kind()
                ),
            ));
        }
    }

    /// Without `until`, `interval` and `deadline` mean nothing.
    fn gate_settings_need_until(&mut self, step: &Step) {
        for (key, value) in [("interval", &step.interval), ("deadline", &step.deadline)] {
            if let Some(v) = value {
                self.push(
                    Diagnostic::error(
                        "bad-gate",
                        v.span,
                        format!(
                            "`{key}` belongs to an `until` gate, and step `{}` has no `until`",
                            step.id.value
                        ),
                    )
                    .help("add `until: <jq condition>`, or drop it"),
                );
            }
        }
    }

    /// Capture names are identifiers without `-`, each capture is a jq expression, and the
    /// step has a result to capture from.
    fn captures(&mut self, step: &'p Step, here: &Scope<'p>) {
        for (name, expr) in step.capture.iter() {
            if !is_valid_id(&name.value) || name.value.contains('-') {
                self.push(
                    Diagnostic::error(
                        "bad-id",
                        name.span,
                        format!("`{}` is not a valid capture name", name.value),
                    )
                    .help("use lowercase letters, digits and `_`"),
                );
            }
            self.jq(expr, here, "capture");
        }
        let action = step.action();
        if !step.capture.is_empty() && !has_result(&action) {
            self.push(Diagnostic::error(
                "bad-capture",
                step.span,
                format!("a `{}` step has no result to capture from", action.kind()),
            ));
        }
    }

    /// The step's action, by kind; a group's steps are a scope of their own.
    fn action(&mut self, step: &'p Step, here: &Scope<'p>) {
        match step.action() {
            ActionRef::Ssh(a) => self.ssh(a, here),
            ActionRef::Http(a) => self.http(a, here),
            ActionRef::Sql(a) => self.sql(a, here),
            ActionRef::Shell(a) => self.shell(a, here),
            // Checked against the called plan by `calls::check_calls`.
            ActionRef::Sleep(_) | ActionRef::Call(_) => {}
            ActionRef::Confirm(t) => self.template(t, here, Sink::Terminal),
            ActionRef::Group(steps) => {
                if steps.is_empty() && step.steps.is_some() {
                    self.push(Diagnostic::error(
                        "empty-group",
                        step.id.span,
                        format!("group `{}` has no steps", step.id.value),
                    ));
                }
                self.scope(steps, step.is_parallel(), here);
            }
        }
    }
}
