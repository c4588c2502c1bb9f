//! The YAML tree → the typed [`Plan`], collecting every shape error on the way.
//!
//! Each model type has a small function here that reads a mapping through `Fields`, which
//! reports unknown keys (with a suggestion), duplicate keys and missing required keys. A value
//! that cannot be read is reported and left out, so decoding always goes on and the validator
//! still sees the rest of the plan.

use std::time::Duration as StdDuration;

use crate::Span;
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::model::*;
use crate::yaml::{Node, NodeKind};

mod actions;
pub mod keys;

/// Reads a plan from its YAML tree. Returns the plan as far as it could be read; problems go
/// to `diags`. `None` only when the document is not a mapping at all.
pub fn decode_plan(root: &Node, diags: &mut Vec<Diagnostic>) -> Option<Plan> {
    let mut d = Decoder { diags };
    let f = d.fields(root, "the plan", keys::PLAN)?;
    let version = match f.get("version") {
        Some(v) => d.uint(v),
        None => {
            d.diags.push(
                Diagnostic::error(
                    "missing-version",
                    Span::new(root.span.offset, 0),
                    "the plan has no `version`",
                )
                .label("expected `version: 1` here")
                .help("start the plan with `version: 1`, the format this rollbook reads"),
            );
            None
        }
    };
    let name = d.required(&f, "name", root).and_then(|n| d.string(n));
    let steps = match f.get("steps") {
        Some(n) => d.steps(n),
        None => {
            d.diags.push(
                Diagnostic::error("missing-key", key_span(root), "the plan has no `steps`")
                    .help("add `steps:` with the rollback's steps"),
            );
            Vec::new()
        }
    };
    let plan = Plan {
        version: version.unwrap_or(Spanned::new(1, Span::default())),
        name: name.unwrap_or_else(|| Spanned::new(String::new(), key_span(root))),
        description: f.get("description").and_then(|n| d.string(n)),
        severity: f.get("severity").and_then(|n| {
            d.choice(
                n,
                "severity",
                Severity::NAMES,
                &[
                    Severity::Critical,
                    Severity::High,
                    Severity::Medium,
                    Severity::Low,
                ],
            )
        }),
        confirm: f.get("confirm").and_then(|n| d.string(n)),
        lock: f.get("lock").and_then(|n| d.string(n)),
        budget: f.get("budget").and_then(|n| d.duration(n)),
        params: f
            .get("params")
            .map(|n| d.entries(n, "params", |d, v| d.param(v)))
            .unwrap_or_default(),
        inventory: f
            .get("inventory")
            .map(|n| d.entries(n, "inventory", |d, v| d.group(v)))
            .unwrap_or_default(),
        secrets: f
            .get("secrets")
            .map(|n| d.entries(n, "secrets", |d, v| d.secret(v)))
            .unwrap_or_default(),
        connections: f
            .get("connections")
            .map(|n| d.entries(n, "connections", |d, v| d.connection(v)))
            .unwrap_or_default(),
        defaults: f
            .get("defaults")
            .and_then(|n| d.defaults(n))
            .unwrap_or_default(),
        steps,
        on_failure: f.get("on_failure").map(|n| d.steps(n)).unwrap_or_default(),
        finally: f.get("finally").map(|n| d.steps(n)).unwrap_or_default(),
        span: root.span,
    };
    Some(plan)
}

/// Where a mapping starts, as a zero-length span (for "missing key" messages).
fn key_span(node: &Node) -> Span {
    Span::new(node.span.offset, 0)
}

/// The keys of one mapping, checked against the keys its type knows.
struct Fields<'n> {
    entries: Vec<(&'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| *v)
    }
    fn key(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, _)| *k)
    }
}

struct Decoder<'d> {
    diags: &'d mut Vec<Diagnostic>,
}

impl Decoder<'_> {
    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn type_error(&mut self, node: &Node, expected: &str) {
        let found = node.kind_name();
        self.push(
            Diagnostic::error(
                "wrong-type",
                node.span,
                format!("expected {expected}, found {found}"),
            )
            .label(format!("expected {expected}")),
        );
    }

    /// Reads a mapping whose keys must be among `known`.
    fn fields<'n>(&mut self, node: &'n Node, what: &str, known: &[&str]) -> Option<Fields<'n>> {
        let NodeKind::Map(entries) = &node.kind else {
            let found = node.kind_name();
            self.push(
                Diagnostic::error(
                    "wrong-type",
                    node.span,
                    format!("{what} must be a mapping, found {found}"),
                )
                .label("expected `key: value` lines"),
            );
            return None;
        };
        let mut seen: Vec<(&str, Span)> = Vec::new();
        let mut kept = Vec::new();
        for (k, v) in entries {
            let name = k.as_str().unwrap_or_default();
            // `x-…` keys of the plan hold anchors to share (`x-defaults: &defaults …`); the
            // plan itself ignores them.
            if what == "the plan" && name.starts_with("x-") {
                continue;
            }
            if let Some((_, first)) = seen.iter().find(|(s, _)| *s == name) {
                self.push(
                    Diagnostic::error(
                        "duplicate-key",
                        k.span,
                        format!("`{name}` is given twice in {what}"),
                    )
                    .label("second time")
                    .related(*first, "first time")
                    .help("remove one of them"),
                );
                continue;
            }
            seen.push((name, k.span));
            if !known.contains(&name) {
                let mut diag = Diagnostic::error(
                    "unknown-key",
                    k.span,
                    format!("unknown key `{name}` in {what}"),
                )
                .label("not a key here");
                diag = match did_you_mean(name, known.iter().copied()) {
                    Some(s) => diag.help(format!("did you mean `{s}`?")),
                    None => diag.help(format!("the keys here are: {}", known.join(", "))),
                };
                self.push(diag);
                continue;
            }
            kept.push((k, v));
        }
        Some(Fields { entries: kept })
    }

    fn required<'n>(&mut self, f: &Fields<'n>, key: &str, map: &Node) -> Option<&'n Node> {
        let v = f.get(key);
        if v.is_none() {
            self.push(
                Diagnostic::error(
                    "missing-key",
                    key_span(map),
                    format!("`{key}` is required here"),
                )
                .label(format!("this needs `{key}:`")),
            );
        }
        v
    }

    fn scalar<'n>(&mut self, node: &'n Node, expected: &str) -> Option<(&'n str, bool)> {
        match &node.kind {
            NodeKind::Scalar { text, plain } if !node.is_null() => Some((text.as_str(), *plain)),
            _ => {
                self.type_error(node, expected);
                None
            }
        }
    }

    fn string(&mut self, node: &Node) -> Option<Spanned<String>> {
        let (s, _) = self.scalar(node, "text")?;
        Some(Spanned::new(s.to_string(), node.span))
    }

    fn bool(&mut self, node: &Node) -> Option<Spanned<bool>> {
        match self.scalar(node, "true or false")? {
            ("true", true) => Some(Spanned::new(true, node.span)),
            ("false", true) => Some(Spanned::new(false, node.span)),
            _ => {
                self.type_error(node, "true or false");
                None
            }
        }
    }

    fn uint(&mut self, node: &Node) -> Option<Spanned<u64>> {
        let (s, plain) = self.scalar(node, "a whole number")?;
        match s.parse::<u64>() {
            Ok(n) if plain => Some(Spanned::new(n, node.span)),
            _ => {
                self.push(
                    Diagnostic::error(
                        "wrong-type",
                        node.span,
                        format!("expected a whole number, found `{s}`"),
                    )
                    .label("not a whole number"),
                );
                None
            }
        }
    }

    fn port(&mut self, node: &Node) -> Option<Spanned<u16>> {
        let n = self.uint(node)?;
        match u16::try_from(n.value) {
            Ok(p) if p > 0 => Some(Spanned::new(p, n.span)),
            _ => {
                self.push(
                    Diagnostic::error(
                        "bad-port",
                        node.span,
                        format!("{} is not a TCP port", n.value),
                    )
                    .label("expected 1 to 65535"),
                );
                None
            }
        }
    }

    fn duration(&mut self, node: &Node) -> Option<Spanned<Duration>> {
        let (s, _) = self.scalar(node, "a duration like 30s")?;
        if s.contains("{{") {
            return match duration_param(s) {
                Some(name) => Some(Spanned::new(Duration::Param(name.to_string()), node.span)),
                None => {
                    self.push(
                        Diagnostic::error(
                            "bad-duration",
                            node.span,
                            format!("`{s}` is not a duration"),
                        )
                        .label("a duration is fixed when params are bound")
                        .help("write a length (30s, 5m) or exactly `{{ params.NAME }}` naming a param of type duration"),
                    );
                    None
                }
            };
        }
        match parse_duration(s) {
            Ok(d) => Some(Spanned::new(Duration::Fixed(d), node.span)),
            Err(why) => {
                self.push(
                    Diagnostic::error(
                        "bad-duration",
                        node.span,
                        format!("`{s}` is not a duration: {why}"),
                    )
                    .label("not a duration")
                    .help("write a number and a unit: 500ms, 30s, 5m, 1h30m"),
                );
                None
            }
        }
    }

    fn choice<T: Copy>(
        &mut self,
        node: &Node,
        what: &str,
        names: &[&str],
        values: &[T],
    ) -> Option<Spanned<T>> {
        let (s, _) = self.scalar(node, "a name")?;
        if let Some(i) = names.iter().position(|n| *n == s) {
            return Some(Spanned::new(values[i], node.span));
        }
        let article = if what.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        let mut diag = Diagnostic::error(
            "bad-value",
            node.span,
            format!("`{s}` is not {article} {what}"),
        )
        .label(format!("expected one of: {}", names.join(", ")));
        if let Some(m) = did_you_mean(s, names.iter().copied()) {
            diag = diag.help(format!("did you mean `{m}`?"));
        }
        self.push(diag);
        None
    }

    fn list<T>(
        &mut self,
        node: &Node,
        mut item: impl FnMut(&mut Self, &Node) -> Option<T>,
    ) -> Vec<T> {
        match &node.kind {
            NodeKind::Seq(items) => items.iter().filter_map(|n| item(self, n)).collect(),
            _ => {
                self.type_error(node, "a list");
                Vec::new()
            }
        }
    }

    fn entries<V>(
        &mut self,
        node: &Node,
        what: &str,
        mut value: impl FnMut(&mut Self, &Node) -> Option<V>,
    ) -> Entries<V> {
        let NodeKind::Map(items) = &node.kind else {
            if !node.is_null() {
                self.type_error(node, &format!("a mapping of {what}"));
            }
            return Entries::default();
        };
        let mut out: Vec<(Spanned<String>, V)> = Vec::new();
        for (k, v) in items {
            let name = Spanned::new(k.as_str().unwrap_or_default().to_string(), k.span);
            if let Some((first, _)) = out.iter().find(|(n, _)| n.value == name.value) {
                let first = first.span;
                self.push(
                    Diagnostic::error(
                        "duplicate-key",
                        k.span,
                        format!("`{}` is given twice in {what}", name.value),
                    )
                    .label("second time")
                    .related(first, "first time"),
                );
                continue;
            }
            if let Some(v) = value(self, v) {
                out.push((name, v));
            }
        }
        Entries(out)
    }

    fn templates(&mut self, node: &Node, what: &str) -> Entries<Template> {
        self.entries(node, what, |d, v| d.string(v))
    }

    fn param(&mut self, node: &Node) -> Option<Param> {
        let f = self.fields(node, "a param", keys::PARAM)?;
        Some(Param {
            ty: f.get("type").and_then(|n| {
                self.choice(
                    n,
                    "param type",
                    ParamType::NAMES,
                    &[
                        ParamType::String,
                        ParamType::Int,
                        ParamType::Bool,
                        ParamType::List,
                        ParamType::Duration,
                    ],
                )
            }),
            default: f.get("default").cloned(),
            required: f.get("required").and_then(|n| self.bool(n)),
            choices: f.get("enum").map(|n| self.list(n, |_, v| Some(v.clone()))),
            description: f.get("description").and_then(|n| self.string(n)),
            span: f.key("type").map_or(node.span, |k| k.span),
        })
    }

    /// An inventory group: a list of hosts, or a mapping of `hosts` and `children`.
    fn group(&mut self, node: &Node) -> Option<Group> {
        match &node.kind {
            NodeKind::Seq(_) => Some(Group::Hosts(self.list(node, |d, h| d.host(h)))),
            NodeKind::Map(_) => {
                let f = self.fields(node, "an inventory group", keys::GROUP)?;
                Some(Group::Nested(GroupDetails {
                    hosts: f
                        .get("hosts")
                        .map(|n| self.list(n, |d, h| d.host(h)))
                        .unwrap_or_default(),
                    children: f
                        .get("children")
                        .map(|n| self.list(n, |d, c| d.string(c)))
                        .unwrap_or_default(),
                }))
            }
            _ => {
                self.type_error(
                    node,
                    "a list of hosts, or a mapping with `hosts` and `children`",
                );
                None
            }
        }
    }

    fn host(&mut self, node: &Node) -> Option<Host> {
        if let NodeKind::Scalar { .. } = node.kind {
            return self.string(node).map(Host::Name);
        }
        let f = self.fields(node, "a host", keys::HOST)?;
        let name = self
            .required(&f, "name", node)
            .and_then(|n| self.string(n))?;
        Some(Host::Detailed(HostDetails {
            name,
            address: f.get("address").and_then(|n| self.string(n)),
            port: f.get("port").and_then(|n| self.port(n)),
            user: f.get("user").and_then(|n| self.string(n)),
            vars: f
                .get("vars")
                .map(|n| self.entries(n, "vars", |_, v| Some(v.clone())))
                .unwrap_or_default(),
        }))
    }

    /// A mapping that must hold exactly one of `variants` (`{ env: NAME }`, `{ sql: {..} }`).
    fn one_of<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        variants: &[&str],
    ) -> Option<(&'n str, &'n Node)> {
        let f = self.fields(node, what, variants)?;
        match f.entries.as_slice() {
            [(k, v)] => Some((k.as_str().unwrap_or_default(), v)),
            [] => {
                self.push(
                    Diagnostic::error(
                        "missing-key",
                        node.span,
                        format!("{what} needs one of: {}", variants.join(", ")),
                    )
                    .label("empty"),
                );
                None
            }
            [_, (second, _), ..] => {
                self.push(
                    Diagnostic::error(
                        "conflicting-keys",
                        second.span,
                        format!("{what} takes only one of: {}", variants.join(", ")),
                    )
                    .label("a second one"),
                );
                None
            }
        }
    }

    fn secret(&mut self, node: &Node) -> Option<SecretSource> {
        let (kind, v) = self.one_of(node, "a secret", keys::SECRET)?;
        let value = self.string(v)?;
        Some(if kind == "env" {
            SecretSource::Env(value)
        } else {
            SecretSource::File(value)
        })
    }

    fn connection(&mut self, node: &Node) -> Option<Connection> {
        let (kind, v) = self.one_of(node, "a connection", keys::CONNECTION)?;
        if kind == "sql" {
            let f = self.fields(v, "a sql connection", keys::SQL_CONNECTION)?;
            let url = self.required(&f, "url", v).and_then(|n| self.string(n))?;
            Some(Connection::Sql(SqlConnection { url }))
        } else {
            let f = self.fields(v, "an http connection", keys::HTTP_CONNECTION)?;
            let base_url = self
                .required(&f, "base_url", v)
                .and_then(|n| self.string(n))?;
            Some(Connection::Http(HttpConnection {
                base_url,
                headers: f
                    .get("headers")
                    .map(|n| self.templates(n, "headers"))
                    .unwrap_or_default(),
                tls: f.get("tls").and_then(|n| self.tls(n)),
            }))
        }
    }

    fn defaults(&mut self, node: &Node) -> Option<Defaults> {
        let f = self.fields(node, "defaults", keys::DEFAULTS)?;
        Some(Defaults {
            timeout: f.get("timeout").and_then(|n| self.duration(n)),
            retry: f.get("retry").and_then(|n| self.retry(n)),
            ssh: f.get("ssh").and_then(|n| {
                let f = self.fields(n, "defaults.ssh", keys::SSH_SETTINGS)?;
                Some(self.ssh_settings(&f))
            }),
            http: f.get("http").and_then(|n| {
                let f = self.fields(n, "defaults.http", keys::HTTP_SETTINGS)?;
                Some(HttpSettings {
                    headers: f
                        .get("headers")
                        .map(|n| self.templates(n, "headers"))
                        .unwrap_or_default(),
                    tls: f.get("tls").and_then(|n| self.tls(n)),
                })
            }),
            sql: f.get("sql").and_then(|n| {
                let f = self.fields(n, "defaults.sql", keys::SQL_SETTINGS)?;
                Some(SqlSettings {
                    connection: f.get("connection").and_then(|n| self.string(n)),
                    lock_timeout: f.get("lock_timeout").and_then(|n| self.duration(n)),
                })
            }),
        })
    }

    fn retry(&mut self, node: &Node) -> Option<Retry> {
        let f = self.fields(node, "retry", keys::RETRY)?;
        let attempts = self
            .required(&f, "attempts", node)
            .and_then(|n| self.uint(n))?;
        Some(Retry {
            attempts,
            delay: f.get("delay").and_then(|n| self.duration(n)),
            backoff: f.get("backoff").and_then(|n| {
                self.choice(
                    n,
                    "backoff",
                    &["fixed", "exponential"],
                    &[Backoff::Fixed, Backoff::Exponential],
                )
            }),
            max_delay: f.get("max_delay").and_then(|n| self.duration(n)),
            jitter: f.get("jitter").and_then(|n| self.bool(n)),
            span: node.span,
        })
    }

    fn ssh_settings(&mut self, f: &Fields<'_>) -> SshSettings {
        SshSettings {
            user: f.get("user").and_then(|n| self.string(n)),
            port: f.get("port").and_then(|n| self.port(n)),
            sudo: f.get("sudo").and_then(|n| self.bool(n)),
            env: f
                .get("env")
                .map(|n| self.templates(n, "env"))
                .unwrap_or_default(),
            identity_file: f.get("identity_file").and_then(|n| self.string(n)),
            known_hosts: f.get("known_hosts").and_then(|n| self.string(n)),
            host_key_policy: f.get("host_key_policy").and_then(|n| {
                self.choice(
                    n,
                    "host key policy",
                    &["strict", "accept-new"],
                    &[HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew],
                )
            }),
            connect_timeout: f.get("connect_timeout").and_then(|n| self.duration(n)),
        }
    }

    fn tls(&mut self, node: &Node) -> Option<Tls> {
        let f = self.fields(node, "tls", keys::TLS)?;
        Some(Tls {
            ca_file: f.get("ca_file").and_then(|n| self.string(n)),
            client_cert: f.get("client_cert").and_then(|n| self.string(n)),
            client_key: f.get("client_key").and_then(|n| self.string(n)),
            insecure: f.get("insecure").and_then(|n| self.bool(n)),
        })
    }

    fn steps(&mut self, node: &Node) -> Vec<Step> {
        if node.is_null() {
            return Vec::new();
        }
        self.list(node, |d, n| d.step(n))
    }

    fn step(&mut self, node: &Node) -> Option<Step> {
        let known: Vec<&str> = keys::STEP_COMMON
            .iter()
            .chain(keys::ACTIONS)
            .chain(keys::CALL)
            .copied()
            .collect();
        let f = self.fields(node, "a step", &known)?;
        let id = self.required(&f, "id", node).and_then(|n| self.string(n));
        self.one_action(&f, id.as_ref(), node);
        let ssh = f.get("ssh").and_then(|n| self.ssh(n, None));
        let undo = f
            .get("undo")
            .and_then(|n| self.undo(n, ssh.as_ref()))
            .map(|u| Undo {
                span: f.key("undo").map_or(u.span, |k| k.span),
                ..u
            });
        let step = Step {
            id: id.unwrap_or_else(|| Spanned::new(String::new(), key_span(node))),
            name: f.get("name").and_then(|n| self.string(n)),
            needs: f.get("needs").map(|n| self.string_or_list(n)),
            parallel: f.get("parallel").and_then(|n| self.bool(n)),
            when: f.get("when").and_then(|n| self.string(n)),
            for_each: f.get("for_each").and_then(|n| self.for_each(n)),
            concurrency: f.get("concurrency").and_then(|n| self.uint(n)),
            max_failures: f.get("max_failures").and_then(|n| self.uint(n)),
            timeout: f.get("timeout").and_then(|n| self.duration(n)),
            retry: f.get("retry").and_then(|n| self.retry(n)),
            until: f.get("until").and_then(|n| self.string(n)),
            interval: f.get("interval").and_then(|n| self.duration(n)),
            deadline: f.get("deadline").and_then(|n| self.duration(n)),
            capture: f
                .get("capture")
                .map(|n| self.entries(n, "capture", |d, v| d.string(v)))
                .unwrap_or_default(),
            on_failure: f.get("on_failure").and_then(|n| {
                self.choice(
                    n,
                    "on_failure value",
                    &["abort", "continue"],
                    &[OnFailure::Abort, OnFailure::Continue],
                )
            }),
            resume: f.get("resume").and_then(|n| {
                self.choice(
                    n,
                    "resume policy",
                    &["rerun", "ask"],
                    &[ResumePolicy::Rerun, ResumePolicy::Ask],
                )
            }),
            ssh,
            http: f.get("http").and_then(|n| self.http(n)),
            sql: f.get("sql").and_then(|n| self.sql(n)),
            shell: f.get("shell").and_then(|n| self.shell(n)),
            sleep: f.get("sleep").and_then(|n| self.duration(n)),
            confirm: f.get("confirm").and_then(|n| self.string(n)),
            steps: f.get("steps").map(|n| self.steps(n)),
            undo,
            irreversible: f.get("irreversible").and_then(|n| self.bool(n)),
            check: f.get("check").and_then(|n| self.bool(n)),
            plan: f.get("plan").and_then(|n| self.string(n)),
            params: f
                .get("params")
                .map(|n| self.entries(n, "params", |_, v| Some(v.clone())))
                .unwrap_or_default(),
            secrets: f
                .get("secrets")
                .map(|n| self.entries(n, "secrets", |d, v| d.string(v)))
                .unwrap_or_default(),
            span: node.span,
        };
        Some(step)
    }

    /// A step has exactly one action (or `steps:`, a group).
    fn one_action(&mut self, f: &Fields<'_>, id: Option<&Spanned<String>>, node: &Node) {
        let mut actions: Vec<&Node> = keys::ACTIONS.iter().filter_map(|a| f.key(a)).collect();
        actions.sort_by_key(|n| n.span.offset);
        let id_text = id.map_or("this step".to_string(), |i| format!("step `{}`", i.value));
        match actions.as_slice() {
            [] => self.push(
                Diagnostic::error("no-action", id.map_or(key_span(node), |i| i.span), format!("{id_text} has no action"))
                    .label("does nothing")
                    .help("give it one of: ssh, http, sql, shell, sleep, confirm, `steps:` for a group, or `plan:` to call a plan"),
            ),
            [_] => {}
            [first, second, ..] => self.push(
                Diagnostic::error(
                    "two-actions",
                    second.span,
                    format!(
                        "{id_text} has two actions, `{}` and `{}`",
                        first.as_str().unwrap_or_default(),
                        second.as_str().unwrap_or_default()
                    ),
                )
                .label("second action")
                .related(first.span, "first action")
                .help("a step does one thing: split it into two steps, one after the other"),
            ),
        }
    }

    /// `needs: a` is read as `needs: [a]`.
    fn string_or_list(&mut self, node: &Node) -> Vec<Spanned<String>> {
        match &node.kind {
            NodeKind::Scalar { .. } => self.string(node).into_iter().collect(),
            _ => self.list(node, |d, n| d.string(n)),
        }
    }

    fn for_each(&mut self, node: &Node) -> Option<ForEach> {
        match &node.kind {
            NodeKind::Seq(items) => Some(ForEach::List(items.clone())),
            _ => self.string(node).map(ForEach::Template),
        }
    }
}

/// Parses a duration: `500ms`, `30s`, `5m`, `1h30m`, `1h 30m`. Zero is allowed (`sleep: 0s`).
/// `NAME` when `text` is exactly `{{ params.NAME }}` (spaces inside the braces allowed).
fn duration_param(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let name = inner.strip_prefix("params.")?;
    (!name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'))
    .then_some(name)
}

/// Reads a duration written as a length (`30s`, `5m`, `1h30m`); the error says why not.
pub fn parse_duration(text: &str) -> Result<StdDuration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("it is empty".into());
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return Err("it has no unit".into());
    }
    humantime::parse_duration(t).map_err(|e| e.to_string())
}

/// Reads an inventory file: groups of hosts, as under a plan's `inventory:`.
pub fn decode_inventory(root: &Node, diags: &mut Vec<Diagnostic>) -> Entries<Group> {
    let mut d = Decoder { diags };
    d.entries(root, "inventory", |d, v| d.group(v))
}
