//! Checks of templates and jq expressions: syntax, the names they read, and that step
//! outputs come from upstream.

use super::*;

/// Names a template may start with.
const ROOTS: &[&str] = &[
    "params",
    "inventory",
    "secrets",
    "item",
    "index",
    "host",
    "steps",
    "run",
    "plan",
];
const RUN_FIELDS: &[&str] = &["id", "reason", "status", "tolerated", "user", "started_at"];
const PLAN_FIELDS: &[&str] = &["name", "severity"];

impl<'p> Validator<'p> {
    pub(super) fn compile_jq(&mut self) {
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

    pub(super) fn json_templates(&mut self, node: &crate::yaml::Node, scope: &Scope<'p>) {
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

    /// A template: it parses, the names it reads exist (and may go where `sink` sends the
    /// text), and the helpers it calls exist.
    pub(super) fn template(&mut self, t: &Template, scope: &Scope<'_>, sink: Sink) {
        if !t.value.contains("{{") {
            return;
        }
        let parsed = match template::parse(&t.value) {
            Ok(p) => p,
            Err(e) => {
                self.template_does_not_parse(t, &e);
                return;
            }
        };
        for r in template::references(&parsed) {
            self.reference(&r, t, scope, sink);
        }
        self.helpers_exist(t, &parsed);
        if sink == Sink::Shell {
            self.shell_placements(t);
        }
    }

    /// Where each value stands in a shell command: quotes that do nothing, and values inside
    /// another language's code.
    fn shell_placements(&mut self, t: &Template) {
        use crate::shell::Position;
        for (range, p) in crate::shell::placements(&t.value) {
            let expr = &t.value[range.clone()];
            let quoted = matches!(p.position, Position::DoubleQuoted | Position::SingleQuoted);
            if quoted && p.alone_in_quotes && p.depth == 0 {
                let span = self.inside(t.span, &t.value, range.start - 1, range.len() + 2);
                self.push(
                    Diagnostic::warning(
                        "needless-quotes",
                        span,
                        format!("the quotes around `{expr}` are not needed"),
                    )
                    .label("quotes around a value")
                    .help(format!(
                        "a value always reaches the shell as one word, whatever it holds: write `{expr}` without quotes"
                    )),
                );
            }
            let in_text = quoted || matches!(p.position, Position::Heredoc { .. });
            let program = if p.position == Position::Arithmetic {
                Some("$(( ))")
            } else {
                p.interpreter.filter(|_| in_text && !p.alone_in_quotes)
            };
            if let Some(program) = program {
                let span = self.inside(t.span, &t.value, range.start, range.len());
                self.push(
                    Diagnostic::warning(
                        "value-in-code",
                        span,
                        format!("`{expr}` is written into `{program}`'s own code"),
                    )
                    .label(format!("a value inside {program} code"))
                    .help(if program == "$(( ))" {
                        "the shell evaluates the value's text as arithmetic (bash runs a `$(…)` in an array subscript there): check that it is a number first, or compute outside the shell".to_string()
                    } else {
                        format!(
                            "the shell passes it as data, but `{program}` reads the text as code: pass the value as an argument or variable of its own (`jq --arg`, `awk -v`, `psql -v`), or use a `sql` step with `args`"
                        )
                    }),
                );
            }
        }
    }

    /// Reports a template that does not parse, at its last unclosed `{{` when that is why.
    fn template_does_not_parse(&mut self, t: &Template, e: &template::ParseError) {
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
    }

    /// Every helper the template calls is Handlebars' or ours.
    fn helpers_exist(&mut self, t: &Template, parsed: &handlebars::template::Template) {
        let known = || {
            template::BUILTIN_HELPERS
                .iter()
                .chain(template::HELPERS)
                .copied()
        };
        for h in template::helpers(parsed) {
            if known().any(|k| k == h) {
                continue;
            }
            let at = t
                .value
                .find(&h)
                .map_or(t.span, |o| self.inside(t.span, &t.value, o, h.len()));
            let d = Diagnostic::error(
                "unknown-helper",
                at,
                format!("the template calls `{h}`, which is not a helper"),
            )
            .label("unknown helper");
            let d = match did_you_mean(&h, known()) {
                Some(s) => d.help(format!("did you mean `{s}`?")),
                None => d.help(format!(
                    "the helpers are: {}",
                    known().collect::<Vec<_>>().join(", ")
                )),
            };
            self.push(d);
        }
    }

    /// A name a template reads: it exists where the template is, and may go where `sink`
    /// sends the text.
    pub(super) fn reference(&mut self, r: &Reference, t: &Template, scope: &Scope<'_>, sink: Sink) {
        let shown = r.path.join(".");
        let span = self.reference_span(r, t, &shown);
        let field = |i: usize| r.path.get(i).map(String::as_str);
        let plan = self.plan;
        match field(0).unwrap_or_default() {
            "params" => self.declared(span, &shown, "param", field(1), &plan.params, |name| {
                format!("declare it under `params:` as `{name}: {{ type: string }}`")
            }),
            "secrets" => self.declared(span, &shown, "secret", field(1), &plan.secrets, |name| {
                format!("declare it under `secrets:` as `{name}: {{ env: VARIABLE }}`")
            }),
            "inventory" if field(1) == Some(crate::inventory::RESERVED_GROUP) => {
                // `inventory.hosts.NAME.FIELD`: any host name (an `--inventory` file may bring
                // it), but only the fields a host record has.
                if field(2).is_some() {
                    let root = format!("inventory.hosts.{}", field(2).unwrap_or_default());
                    self.known_field(span, &shown, &root, field(3), crate::inventory::HOST_FIELDS);
                }
            }
            "inventory" => self.declared(
                span,
                &shown,
                "inventory group",
                field(1),
                &plan.inventory,
                |name| {
                    format!("declare the group under `inventory:` as `{name}: [host-1, host-2]`")
                },
            ),
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
            "host" if !scope.host => self.push(
                Diagnostic::error(
                    "no-host",
                    span,
                    format!("the template reads `{shown}`, but no host is in scope here"),
                )
                .label("not an ssh step, nor inside a for_each")
                .help("`host` is the inventory host an `ssh` step connects to, or the host a `for_each` item names; elsewhere read `inventory.hosts.NAME`"),
            ),
            "host" => self.known_field(span, &shown, "host", field(1), crate::inventory::HOST_FIELDS),
            "run" => self.known_field(span, &shown, "run", field(1), RUN_FIELDS),
            "plan" => self.known_field(span, &shown, "plan", field(1), PLAN_FIELDS),
            "steps" => self.step_output(span, &shown, field(1), field(2), field(3), scope),
            other => self.push(unknown_name(
                span,
                &shown,
                "name",
                other,
                ROOTS.iter().copied(),
                format!("templates can read: {}", ROOTS.join(", ")),
            )),
        }
        self.reference_fits_sink(r, span, &shown, sink);
    }

    /// Where a reference is: the name inside the template when it can be found as written,
    /// else the whole template.
    fn reference_span(&self, r: &Reference, t: &Template, shown: &str) -> Span {
        match t
            .value
            .find(r.path.first().map(String::as_str).unwrap_or_default())
        {
            Some(at) if t.value[at..].starts_with(shown) => {
                self.inside(t.span, &t.value, at, shown.len())
            }
            _ => t.span,
        }
    }

    /// `params.NAME`, `secrets.NAME`, `inventory.NAME`: `NAME` is declared in `entries`.
    fn declared<V>(
        &mut self,
        span: Span,
        shown: &str,
        what: &str,
        name: Option<&str>,
        entries: &Entries<V>,
        declare: impl Fn(&str) -> String,
    ) {
        if let Some(name) = name
            && !entries.contains(name)
        {
            self.push(unknown_name(
                span,
                shown,
                what,
                name,
                entries.names(),
                declare(name),
            ));
        }
    }

    /// No secret in a `confirm` question, and no value spliced into SQL text; a value given at
    /// run time spliced into a command as code is worth a warning.
    fn reference_fits_sink(&mut self, r: &Reference, span: Span, shown: &str, sink: Sink) {
        if matches!(sink, Sink::Shell | Sink::Sql)
            && r.spliced
            && let Some(source) = spliced_source(&r.path)
        {
            let language = if sink == Sink::Shell { "shell" } else { "SQL" };
            self.push(
                Diagnostic::warning(
                    "raw-splice",
                    span,
                    format!("`{{{{{{ {shown} }}}}}}` splices {source} into the {language} text as code"),
                )
                .label(format!("{source} as {language} code"))
                .help(format!(
                    "whoever sets {source} can run any {language}: write `{{{{ {shown} }}}}` to pass it as data; keep `{{{{{{ }}}}}}` only for text the plan's authors control"
                )),
            );
        }
        if sink == Sink::Terminal && r.path.first().is_some_and(|p| p == "secrets") {
            self.push(
                Diagnostic::error(
                    "secret-shown",
                    span,
                    format!("`{shown}` would be shown on the terminal"),
                )
                .label("a secret in a question")
                .help("a confirm question is printed as is: ask without the secret's value"),
            );
        }
        if sink == Sink::Sql && r.escaped {
            self.push(
                Diagnostic::error("sql-splice", span, format!("`{shown}` would be spliced into SQL text"))
                    .label("a value inside SQL")
                    .help("bind it instead: write `$1` (PostgreSQL) or `?` (MySQL, SQLite) and add `args: [\"{{ ... }}\"]`; `{{{ }}}` splices on purpose"),
            );
        }
    }

    pub(super) fn known_field(
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

    pub(super) fn step_output(
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
            let help = if self.cleanup && self.plan.steps.iter().any(|s| s.id.value == id) {
                format!(
                    "`on_failure` and `finally` steps run after the main steps, which may not have run: they cannot read `{id}`'s outputs; use params and `run.status`"
                )
            } else {
                format!(
                    "a step can read the outputs of the steps it waits for (the step above it, or those its `needs` names), directly or through others; add `{id}` to `needs`, or check the id"
                )
            };
            let d = Diagnostic::error(
                "not-upstream",
                span,
                format!("`{shown}` reads step `{id}`, which does not run before this step"),
            )
            .label("not upstream")
            .help(help);
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

    pub(super) fn jq(&mut self, expr: &Jq, scope: &Scope<'_>, what: &'static str) {
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

/// A template reads `shown`, whose `what` (param, secret, ...) `name` does not exist; the
/// help suggests a close name from `known`, else says how to declare it (`declare`).
fn unknown_name<'a>(
    span: Span,
    shown: &str,
    what: &str,
    name: &str,
    known: impl Iterator<Item = &'a str>,
    declare: String,
) -> Diagnostic {
    let d = Diagnostic::error(
        "unknown-name",
        span,
        format!("the template reads `{shown}`, but there is no {what} `{name}`"),
    )
    .label(format!("unknown {what}"));
    match did_you_mean(name, known) {
        Some(s) => d.help(format!("did you mean `{s}`?")),
        None => d.help(declare),
    }
}

/// Who sets the value a spliced reference reads, when it is not the plan's author: a param,
/// the item of a `for_each`, a step's output, the run's reason.
fn spliced_source(path: &[String]) -> Option<String> {
    let field = |i: usize| path.get(i).map_or("?", String::as_str);
    match path.first()?.as_str() {
        "params" => Some(format!("the param `{}`", field(1))),
        "item" | "index" => Some("the item of a `for_each`".into()),
        "steps" => Some(format!("the output `{}` of step `{}`", field(3), field(1))),
        "run" if field(1) == "reason" => Some("the run's reason".into()),
        _ => None,
    }
}
