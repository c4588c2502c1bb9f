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

/// Names a template may start with.
const ROOTS: &[&str] = &[
    "params",
    "inventory",
    "secrets",
    "item",
    "index",
    "steps",
    "run",
    "plan",
];
const RUN_FIELDS: &[&str] = &["id", "reason", "status", "user", "started_at"];
const PLAN_FIELDS: &[&str] = &["name", "severity"];

/// Validates `plan`. `expected_name` is the file stem the plan's `name` must equal.
/// `text` is the plan's source; with it, problems inside a template or jq expression are
/// pointed at the exact name or column instead of the whole value.
pub fn validate(plan: &Plan, expected_name: Option<&str>, text: Option<&str>) -> Vec<Diagnostic> {
    let mut v = Validator {
        plan,
        text,
        diags: Vec::new(),
        pending_jq: Vec::new(),
    };
    v.top_level(expected_name);
    let main_scope = Scope {
        visible: HashMap::new(),
        in_for_each: false,
    };
    v.scope(&plan.steps, &main_scope);
    // `on_failure` and `finally` run after the main graph: they may read its top-level outputs.
    // `on_failure` and `finally` are graphs of their own: they read `run.status` and
    // params, not the outputs of main steps (which may not have run).
    let after = Scope {
        visible: HashMap::new(),
        in_for_each: false,
    };
    v.scope(&plan.on_failure, &after);
    v.scope(&plan.finally, &after);
    v.compile_jq();
    v.diags
}

struct Validator<'p> {
    plan: &'p Plan,
    text: Option<&'p str>,
    diags: Vec<Diagnostic>,
    /// jq expressions seen, with what they are for (`until`, `capture`, ...).
    pending_jq: Vec<(Jq, &'static str)>,
}

/// What the steps of one scope can see from around them.
#[derive(Clone)]
struct Scope<'p> {
    /// Steps whose outputs are readable, by id (upstream steps of enclosing scopes).
    visible: HashMap<&'p str, &'p Step>,
    /// Inside a `for_each`: `item` and `index` exist.
    in_for_each: bool,
}

/// Where a template's text goes, which decides what it may contain.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sink {
    /// Shell commands: values are quoted.
    Shell,
    /// SQL text: values must be bound through `args`.
    Sql,
    /// Everything else.
    Text,
}

/// The `$N` placeholders of a SQL text, outside quoted strings and comments.
fn placeholders(sql: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'$' => {
                let digits: String = sql[i + 1..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if let Ok(n) = digits.parse() {
                    out.push(n);
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn is_valid_id(id: &str) -> bool {
    let mut bytes = id.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

impl<'p> Validator<'p> {
    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn compile_jq(&mut self) {
        let pending = std::mem::take(&mut self.pending_jq);
        let exprs: Vec<&str> = pending.iter().map(|(e, _)| e.value.as_str()).collect();
        for ((expr, what), error) in pending.iter().zip(jq::check_all(&exprs)) {
            let Some(e) = error else { continue };
            let at = e.offset.map_or(String::new(), |o| {
                format!(
                    " at column {}",
                    expr.value[..o.min(expr.value.len())].chars().count() + 1
                )
            });
            let span = e.offset.map_or(expr.span, |o| {
                self.inside(expr.span, &expr.value, o, e.len.max(1))
            });
            self.push(
                Diagnostic::error(
                    "bad-jq",
                    span,
                    format!(
                        "the `{what}` expression does not compile{at}: {}",
                        e.message
                    ),
                )
                .label("jq")
                .help(format!(
                    "the result is `.`; the run context is in {}",
                    jq::VARIABLES.join(", ")
                )),
            );
        }
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

    fn top_level(&mut self, expected_name: Option<&str>) {
        let plan = self.plan;
        if plan.version.value != 1 && plan.version.span != Span::default() {
            self.push(
                Diagnostic::error(
                    "bad-version",
                    plan.version.span,
                    format!("plan format version {} is not known", plan.version.value),
                )
                .label("expected 1")
                .help("this rollbook reads version 1 plans"),
            );
        }
        if let Some(expected) = expected_name
            && !plan.name.value.is_empty()
            && plan.name.value != expected
        {
            self.push(
                Diagnostic::error("name-mismatch", plan.name.span, format!("the plan is named `{}` but its file is `{expected}.yaml`", plan.name.value))
                    .label(format!("expected `{expected}`"))
                    .help("a plan's name equals its file stem, so `rollbook run NAME` finds it: rename one of them"),
            );
        }
        if !plan.name.value.is_empty() && !is_valid_id(&plan.name.value) {
            self.push(
                Diagnostic::error(
                    "bad-id",
                    plan.name.span,
                    format!("`{}` is not a valid plan name", plan.name.value),
                )
                .help(
                    "use lowercase letters, digits, `-` and `_`, starting with a letter or digit",
                ),
            );
        }
        if let Some(c) = &plan.confirm
            && c.value.trim().is_empty()
        {
            self.push(
                Diagnostic::error("bad-value", c.span, "the confirmation phrase is empty")
                    .help("write the phrase to type, e.g. `confirm: ROLLBACK`"),
            );
        }
        for (name, param) in plan.params.iter() {
            self.param(name, param);
        }
        for (name, hosts) in plan.inventory.iter() {
            let mut seen: HashMap<&str, Span> = HashMap::new();
            for host in hosts {
                let h = host.name();
                if let Some(first) = seen.insert(&h.value, h.span) {
                    self.push(
                        Diagnostic::error(
                            "duplicate-host",
                            h.span,
                            format!(
                                "host `{}` is listed twice in group `{}`",
                                h.value, name.value
                            ),
                        )
                        .related(first, "first time"),
                    );
                }
            }
        }
        for (name, conn) in plan.connections.iter() {
            let root = Scope {
                visible: HashMap::new(),
                in_for_each: false,
            };
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
            let _ = name;
        }
        let d = &plan.defaults;
        if let Some(t) = &d.timeout {
            self.positive(t, "timeout");
        }
        if let Some(r) = &d.retry {
            self.retry(r);
        }
        if let Some(c) = d.sql.as_ref().and_then(|s| s.connection.as_ref()) {
            self.connection_ref(c, "sql");
        }
        if let Some(http) = &d.http {
            let root = Scope {
                visible: HashMap::new(),
                in_for_each: false,
            };
            for (_, h) in http.headers.iter() {
                self.template(h, &root, Sink::Text);
            }
            self.tls(http.tls.as_ref(), &root);
        }
        if let Some(ssh) = &d.ssh {
            self.ssh_settings(
                ssh,
                &Scope {
                    visible: HashMap::new(),
                    in_for_each: false,
                },
            );
        }
    }

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
    }

    fn positive(&mut self, d: &Spanned<Duration>, what: &str) {
        if d.value.0.is_zero() {
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
            && max.value < delay.value
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

    /// Checks the steps of one scope and, recursively, of the groups in it.
    fn scope(&mut self, steps: &'p [Step], outer: &Scope<'p>) {
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
            if let Some(&first) = index.get(id.value.as_str()) {
                self.push(
                    Diagnostic::error(
                        "duplicate-id",
                        id.span,
                        format!("two steps have the id `{}`", id.value),
                    )
                    .label("second")
                    .related(steps[first].id.span, "first")
                    .help("ids are unique within a scope; rename one"),
                );
            } else {
                index.insert(&id.value, i);
            }
        }

        // Edges from each step to the steps it needs.
        let mut graph: DiGraph<usize, ()> = DiGraph::new();
        let nodes: Vec<_> = (0..steps.len()).map(|i| graph.add_node(i)).collect();
        for (i, step) in steps.iter().enumerate() {
            let mut seen = HashSet::new();
            for need in &step.needs {
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
                    None => {
                        let mut d = Diagnostic::error(
                            "unknown-need",
                            need.span,
                            format!(
                                "step `{}` needs `{}`, which is not a step here",
                                step.id.value, need.value
                            ),
                        )
                        .label("no such step");
                        d = match did_you_mean(&need.value, index.keys().copied()) {
                            Some(s) => d.help(format!("did you mean `{s}`?")),
                            None if outer.visible.contains_key(need.value.as_str()) => {
                                d.help("`needs` names steps of the same scope; a group's steps already run after what the group needs")
                            }
                            None => d.help(format!("the steps here are: {}", steps.iter().map(|s| s.id.value.as_str()).collect::<Vec<_>>().join(", "))),
                        };
                        self.push(d);
                    }
                }
            }
        }
        for scc in tarjan_scc(&graph) {
            if scc.len() < 2 {
                continue;
            }
            let mut members: Vec<usize> = scc.iter().map(|n| graph[*n]).collect();
            members.sort_unstable();
            let names: Vec<&str> = members
                .iter()
                .map(|&i| steps[i].id.value.as_str())
                .collect();
            let first = &steps[members[0]];
            let mut d = Diagnostic::error(
                "cycle",
                first.id.span,
                format!(
                    "steps {} need each other in a cycle",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .help("remove one of the `needs` on the cycle so the steps have an order");
            for &i in &members {
                for need in &steps[i].needs {
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

        for (i, step) in steps.iter().enumerate() {
            // Steps upstream of this one: its needs, transitively.
            let mut upstream: HashSet<usize> = HashSet::new();
            let mut todo: Vec<usize> = graph.neighbors(nodes[i]).map(|n| graph[n]).collect();
            while let Some(j) = todo.pop() {
                if upstream.insert(j) {
                    todo.extend(graph.neighbors(nodes[j]).map(|n| graph[n]));
                }
            }
            upstream.remove(&i);
            let mut visible = outer.visible.clone();
            for j in upstream {
                visible.insert(&steps[j].id.value, &steps[j]);
            }
            let here = Scope {
                visible,
                in_for_each: outer.in_for_each || step.for_each.is_some(),
            };
            self.step(step, outer, &here);
        }
    }

    /// Checks one step. `outer` is the scope around it (for `for_each`, which is evaluated
    /// before the step's items exist); `here` is the step's own.
    fn step(&mut self, step: &'p Step, outer: &Scope<'p>, here: &Scope<'p>) {
        let action = step.action();
        if let Some(name) = &step.name {
            self.template(name, here, Sink::Text);
        }
        match &step.for_each {
            Some(ForEach::Template(t)) => {
                // Evaluated before the step's items exist, but after what it needs.
                let before_items = Scope {
                    visible: here.visible.clone(),
                    in_for_each: outer.in_for_each,
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
        if step.for_each.is_none() {
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
            Some(u) => {
                self.jq(u, here, "until");
                if let (Some(i), Some(d)) = (&step.interval, &step.deadline)
                    && i.value > d.value
                {
                    self.push(
                        Diagnostic::error(
                            "bad-gate",
                            i.span,
                            "`interval` is longer than `deadline`: the gate would try once",
                        )
                        .related(d.span, "deadline"),
                    );
                }
                for d in [&step.interval, &step.deadline].into_iter().flatten() {
                    self.positive(d, "gate duration");
                }
                if matches!(
                    action,
                    ActionRef::Sleep(_) | ActionRef::Confirm(_) | ActionRef::Group(_)
                ) {
                    self.push(Diagnostic::error("bad-gate", u.span, format!("`until` repeats an action and checks its result; a `{}` has none to check", action.kind())));
                }
            }
            None => {
                for (key, value) in [("interval", &step.interval), ("deadline", &step.deadline)] {
                    if let Some(v) = value {
                        self.push(
                            Diagnostic::error("bad-gate", v.span, format!("`{key}` belongs to an `until` gate, and step `{}` has no `until`", step.id.value))
                                .help("add `until: <jq condition>`, or drop it"),
                        );
                    }
                }
            }
        }
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
        if !step.capture.is_empty()
            && matches!(
                action,
                ActionRef::Group(_) | ActionRef::Sleep(_) | ActionRef::Confirm(_)
            )
        {
            self.push(Diagnostic::error(
                "bad-capture",
                step.span,
                format!("a `{}` step has no result to capture from", action.kind()),
            ));
        }
        match action {
            ActionRef::Ssh(a) => self.ssh(a, here),
            ActionRef::Http(a) => self.http(a, here),
            ActionRef::Sql(a) => self.sql(a, here),
            ActionRef::Shell(a) => {
                for t in [&a.run, &a.script].into_iter().flatten() {
                    self.template(t, here, Sink::Shell);
                }
                for (_, t) in a.env.iter() {
                    self.template(t, here, Sink::Text);
                }
                if let Some(t) = &a.cwd {
                    self.template(t, here, Sink::Text);
                }
            }
            ActionRef::Sleep(_) => {}
            ActionRef::Confirm(t) => self.template(t, here, Sink::Text),
            ActionRef::Group(steps) => {
                if steps.is_empty() && step.steps.is_some() {
                    self.push(Diagnostic::error(
                        "empty-group",
                        step.id.span,
                        format!("group `{}` has no steps", step.id.value),
                    ));
                }
                self.scope(steps, here);
            }
        }
    }

    fn ssh_settings(&mut self, s: &SshSettings, scope: &Scope<'p>) {
        for t in [&s.user, &s.identity_file, &s.known_hosts]
            .into_iter()
            .flatten()
        {
            self.template(t, scope, Sink::Text);
        }
        for (_, t) in s.env.iter() {
            self.template(t, scope, Sink::Text);
        }
    }

    fn ssh(&mut self, a: &SshAction, scope: &Scope<'p>) {
        self.template(&a.host, scope, Sink::Text);
        for t in [&a.run, &a.script].into_iter().flatten() {
            self.template(t, scope, Sink::Shell);
        }
        if let Some(u) = &a.upload {
            self.template(&u.from, scope, Sink::Text);
            self.template(&u.to, scope, Sink::Text);
        }
        self.ssh_settings(&a.settings, scope);
    }

    fn tls(&mut self, tls: Option<&Tls>, scope: &Scope<'p>) {
        let Some(tls) = tls else { return };
        for t in [&tls.ca_file, &tls.client_cert, &tls.client_key]
            .into_iter()
            .flatten()
        {
            self.template(t, scope, Sink::Text);
        }
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            let at = tls
                .client_cert
                .as_ref()
                .or(tls.client_key.as_ref())
                .map(|t| t.span)
                .unwrap_or_default();
            self.push(Diagnostic::error(
                "bad-tls",
                at,
                "`client_cert` and `client_key` go together",
            ));
        }
        if let Some(i) = &tls.insecure
            && i.value
        {
            self.push(
                Diagnostic::warning(
                    "tls-insecure",
                    i.span,
                    "TLS certificates are not verified for this request",
                )
                .help("prefer `ca_file` with the CA that signed the server's certificate"),
            );
        }
    }

    fn http(&mut self, a: &HttpAction, scope: &Scope<'p>) {
        if let Some(c) = &a.connection {
            self.connection_ref(c, "http");
            if a.path.is_none() {
                self.push(
                    Diagnostic::error(
                        "missing-key",
                        c.span,
                        "`connection` needs a `path` to request",
                    )
                    .help("add `path: /api/v1/...`"),
                );
            }
        } else if let Some(p) = &a.path {
            self.push(
                Diagnostic::error("conflicting-keys", p.span, "`path` goes with `connection`")
                    .help("use `url:` for a full address"),
            );
        }
        let mut templates: Vec<&Template> =
            [&a.url, &a.path, &a.body].into_iter().flatten().collect();
        for map in [&a.headers, &a.query, &a.form] {
            templates.extend(map.iter().map(|(_, t)| t));
        }
        if let Some(e) = &a.expect
            && let Some(b) = &e.body_contains
        {
            templates.push(b);
        }
        for t in templates {
            self.template(t, scope, Sink::Text);
        }
        if let Some(json) = &a.json {
            self.json_templates(json, scope);
        }
        if let Some(jq) = a.expect.as_ref().and_then(|e| e.jq.as_ref()) {
            self.jq(jq, scope, "expect.jq");
        }
        self.tls(a.tls.as_ref(), scope);
    }

    fn json_templates(&mut self, node: &crate::yaml::Node, scope: &Scope<'p>) {
        use crate::yaml::NodeKind;
        match &node.kind {
            NodeKind::Scalar { text, .. } if text.contains("{{") => {
                self.template(&Spanned::new(text.clone(), node.span), scope, Sink::Text);
            }
            NodeKind::Scalar { .. } => {}
            NodeKind::Seq(items) => items.iter().for_each(|n| self.json_templates(n, scope)),
            NodeKind::Map(entries) => entries
                .iter()
                .for_each(|(_, v)| self.json_templates(v, scope)),
        }
    }

    fn sql(&mut self, a: &SqlAction, scope: &Scope<'p>) {
        match (&a.connection, &a.url) {
            (Some(c), _) => self.connection_ref(c, "sql"),
            (None, Some(u)) => self.template(u, scope, Sink::Text),
            (None, None) => {
                if self
                    .plan
                    .defaults
                    .sql
                    .as_ref()
                    .and_then(|s| s.connection.as_ref())
                    .is_none()
                {
                    self.push(
                        Diagnostic::error("missing-key", Span::new(a.span.offset, 0), "a sql action needs `connection` or `url`")
                            .help("name a connection from `connections:`, or set `defaults.sql.connection`"),
                    );
                }
            }
        }
        for statement in a.all_statements() {
            self.template(&statement.query, scope, Sink::Sql);
            for arg in &statement.args {
                self.json_templates(arg, scope);
            }
            let highest = placeholders(&statement.query.value)
                .into_iter()
                .max()
                .unwrap_or(0);
            let given = statement.args.len();
            if highest > given {
                self.push(
                    Diagnostic::error(
                        "sql-args",
                        statement.query.span,
                        format!(
                            "the statement uses ${highest} but has {given} {}",
                            if given == 1 { "arg" } else { "args" }
                        ),
                    )
                    .help("give one value per placeholder in `args:`, in order ($1 is the first)"),
                );
            } else if given > highest {
                self.push(
                    Diagnostic::error("sql-args", statement.query.span, format!("the statement has {given} {} but uses {}", if given == 1 { "arg" } else { "args" }, if highest == 0 { "no placeholder".to_string() } else { format!("only up to ${highest}") }))
                        .help("bind each value with a placeholder: $1, $2, ... (rewritten to ? for MySQL)"),
                );
            }
        }
        if let Some(stmts) = &a.statements
            && stmts.is_empty()
        {
            self.push(Diagnostic::error(
                "bad-value",
                a.span,
                "`statements` is empty",
            ));
        }
    }

    fn template(&mut self, t: &Template, scope: &Scope<'_>, sink: Sink) {
        if !t.value.contains("{{") {
            return;
        }
        let parsed = match template::parse(&t.value) {
            Ok(p) => p,
            Err(e) => {
                let opens = t.value.matches("{{").count();
                let closes = t.value.matches("}}").count();
                let (message, span) = if opens > closes {
                    let last_open = t.value.rfind("{{").unwrap_or(0);
                    (
                        "a `{{` is not closed by `}}`".to_string(),
                        self.inside(t.span, &t.value, last_open, 2),
                    )
                } else {
                    let at = e.position.map_or(String::new(), |(l, c)| {
                        format!(" (line {l}, column {c} of the template)")
                    });
                    let detail = e
                        .message
                        .trim_end_matches('.')
                        .replace("invalid handlebars syntax: ", "");
                    (format!("the template does not parse{at}: {detail}"), t.span)
                };
                self.push(
                    Diagnostic::error("bad-template", span, message)
                        .label("here")
                        .help("templates are Handlebars: `{{ params.name }}`; a literal `{{` is written `\\{{`"),
                );
                return;
            }
        };
        for r in template::references(&parsed) {
            self.reference(&r, t, scope, sink);
        }
        let known = || {
            template::BUILTIN_HELPERS
                .iter()
                .chain(template::HELPERS)
                .copied()
        };
        for h in template::helpers(&parsed) {
            if !known().any(|k| k == h) {
                let at = t
                    .value
                    .find(&h)
                    .map_or(t.span, |o| self.inside(t.span, &t.value, o, h.len()));
                let mut d = Diagnostic::error(
                    "unknown-helper",
                    at,
                    format!("the template calls `{h}`, which is not a helper"),
                )
                .label("unknown helper");
                d = match did_you_mean(&h, known()) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help(format!(
                        "the helpers are: {}",
                        known().collect::<Vec<_>>().join(", ")
                    )),
                };
                self.push(d);
            }
        }
    }

    fn reference(&mut self, r: &Reference, t: &Template, scope: &Scope<'_>, sink: Sink) {
        let shown = r.path.join(".");
        // Point at the name inside the template when it can be found as written.
        let span = match t
            .value
            .find(r.path.first().map(String::as_str).unwrap_or_default())
        {
            Some(at) if t.value[at..].starts_with(&shown) => {
                self.inside(t.span, &t.value, at, shown.len())
            }
            _ => t.span,
        };
        let field = |i: usize| r.path.get(i).map(String::as_str);
        let unknown = |what: &str, name: &str, known: Vec<&str>, help_decl: String| {
            let mut d = Diagnostic::error(
                "unknown-name",
                span,
                format!("the template reads `{shown}`, but there is no {what} `{name}`"),
            )
            .label(format!("unknown {what}"));
            d = match did_you_mean(name, known.iter().copied()) {
                Some(s) => d.help(format!("did you mean `{s}`?")),
                None => d.help(help_decl),
            };
            d
        };
        match field(0).unwrap_or_default() {
            "params" => {
                if let Some(name) = field(1)
                    && !self.plan.params.contains(name)
                {
                    let d = unknown(
                        "param",
                        name,
                        self.plan.params.names().collect(),
                        format!("declare it under `params:` as `{name}: {{ type: string }}`"),
                    );
                    self.push(d);
                }
            }
            "secrets" => {
                if let Some(name) = field(1)
                    && !self.plan.secrets.contains(name)
                {
                    let d = unknown(
                        "secret",
                        name,
                        self.plan.secrets.names().collect(),
                        format!("declare it under `secrets:` as `{name}: {{ env: VARIABLE }}`"),
                    );
                    self.push(d);
                }
            }
            "inventory" => {
                if let Some(name) = field(1)
                    && !self.plan.inventory.contains(name)
                {
                    let d = unknown(
                        "inventory group",
                        name,
                        self.plan.inventory.names().collect(),
                        format!(
                            "declare the group under `inventory:` as `{name}: [host-1, host-2]`"
                        ),
                    );
                    self.push(d);
                }
            }
            "item" | "index" if !scope.in_for_each => self.push(
                Diagnostic::error(
                    "no-item",
                    span,
                    format!("the template reads `{shown}`, but this step runs once, not per item"),
                )
                .label("outside a for_each")
                .help("`item` and `index` exist inside a step or group with `for_each`"),
            ),
            "item" | "index" => {}
            "run" => self.known_field(span, &shown, "run", field(1), RUN_FIELDS),
            "plan" => self.known_field(span, &shown, "plan", field(1), PLAN_FIELDS),
            "steps" => self.step_output(span, &shown, field(1), field(2), field(3), scope),
            other => {
                let d = unknown(
                    "name",
                    other,
                    ROOTS.to_vec(),
                    format!("templates can read: {}", ROOTS.join(", ")),
                );
                self.push(d);
            }
        }
        if sink == Sink::Sql && r.escaped {
            self.push(
                Diagnostic::error("sql-splice", span, format!("`{shown}` would be spliced into SQL text"))
                    .label("a value inside SQL")
                    .help("bind it instead: write `$1` (PostgreSQL) or `?` (MySQL, SQLite) and add `args: [\"{{ ... }}\"]`; `{{{ }}}` splices on purpose"),
            );
        }
    }

    fn known_field(
        &mut self,
        span: Span,
        shown: &str,
        root: &str,
        field: Option<&str>,
        known: &[&str],
    ) {
        match field {
            Some(f) if !known.contains(&f) => {
                let mut d = Diagnostic::error(
                    "unknown-name",
                    span,
                    format!("the template reads `{shown}`, but `{root}` has no `{f}`"),
                );
                d = d.help(format!("`{root}` has: {}", known.join(", ")));
                self.push(d);
            }
            _ => {}
        }
    }

    fn step_output(
        &mut self,
        span: Span,
        shown: &str,
        id: Option<&str>,
        outputs: Option<&str>,
        name: Option<&str>,
        scope: &Scope<'_>,
    ) {
        let Some(id) = id else {
            self.push(
                Diagnostic::error("bad-output", span, format!("`{shown}` names no step"))
                    .help("read `steps.ID.outputs.NAME`"),
            );
            return;
        };
        let Some(step) = scope.visible.get(id) else {
            let d = Diagnostic::error("not-upstream", span, format!("`{shown}` reads step `{id}`, which does not run before this step"))
                .label("not upstream")
                .help(format!(
                    "a step can read the outputs of the steps it `needs` (directly or through others); add `{id}` to `needs`, or check the id"
                ));
            self.push(d);
            return;
        };
        if outputs != Some("outputs") {
            self.push(Diagnostic::error(
                "bad-output",
                span,
                format!("`{shown}`: a step's values are read as `steps.{id}.outputs.NAME`"),
            ));
            return;
        }
        if let Some(name) = name
            && !step.capture.contains(name)
        {
            let mut d = Diagnostic::error(
                "unknown-output",
                span,
                format!("step `{id}` captures no `{name}`"),
            )
            .label("not captured");
            d = match did_you_mean(name, step.capture.names()) {
                Some(s) => d.help(format!("did you mean `{s}`?")),
                None => d.help(format!(
                    "add `capture: {{ {name}: <jq expression> }}` to step `{id}`"
                )),
            };
            self.push(d);
        }
    }

    fn jq(&mut self, expr: &Jq, scope: &Scope<'_>, what: &'static str) {
        // Compiled all together at the end (see `jq::check_all`).
        self.pending_jq.push((expr.clone(), what));
        if !scope.in_for_each && jq::uses_item(&expr.value) {
            self.push(Diagnostic::error("no-item", expr.span, format!("the `{what}` expression reads `$item` or `$index`, but this step runs once, not per item")));
        }
        for (id, output, at) in jq::step_references(&expr.value) {
            let shown = match &output {
                Some(o) => format!("$steps.{id}.outputs.{o}"),
                None => format!("$steps.{id}"),
            };
            let outputs = output.as_ref().map(|_| "outputs");
            if scope.visible.contains_key(id.as_str()) && output.is_none() {
                continue;
            }
            let span = self.inside(expr.span, &expr.value, at, shown.len());
            self.step_output(
                span,
                &shown,
                Some(&id),
                outputs.or(Some("outputs")),
                output.as_deref(),
                scope,
            );
        }
    }
}
