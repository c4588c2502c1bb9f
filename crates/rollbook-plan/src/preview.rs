//! What a node would do, rendered for the dry run: the host and command, the request, the SQL.
//! Secrets show as `***`; values that only exist at run time show as their names.

use serde::Serialize;
use serde_json::{Value, json};

use crate::compile::{CompiledPlan, Node, Phase};
use crate::model::*;
use crate::params::display_value;
use crate::template::{Escape, Renderer};

/// The rendered action of one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preview {
    /// The step's `name`, rendered (it may use `{{ item }}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `ssh`, `http`, `sql`, `shell`, `sleep`, `confirm`.
    pub kind: &'static str,
    /// Where it acts: `deploy@us-east-op-1:22`, `POST http://…`, `connection db`, `local`.
    pub target: String,
    /// The command, script, SQL statements or request body, line by line.
    pub body: Vec<String>,
    /// Facts a reviewer should see: sudo, transaction, expectations, TLS.
    pub notes: Vec<String>,
}

/// Placeholder for a secret's value in anything shown to people.
pub const MASK: &str = "***";

/// The context a node's templates see in a dry run.
pub fn preview_context(plan: &CompiledPlan, phase: &Phase, node: &Node) -> Value {
    let mut ctx = plan.context.clone();
    let secrets: serde_json::Map<String, Value> = plan
        .secrets
        .names()
        .map(|n| (n.to_string(), json!(MASK)))
        .collect();
    ctx["secrets"] = Value::Object(secrets);
    let mut steps = serde_json::Map::new();
    for (id, nodes) in &node.inputs {
        let Some(&first) = nodes.first() else {
            continue;
        };
        let captured = &phase.graph[first].step.capture;
        let outputs: serde_json::Map<String, Value> = captured
            .names()
            .map(|n| (n.to_string(), json!(format!("<steps.{id}.outputs.{n}>"))))
            .collect();
        steps.insert(id.clone(), json!({ "outputs": outputs }));
    }
    ctx["steps"] = Value::Object(steps);
    if let Some((item, index)) = &node.item {
        ctx["item"] = item.clone();
        ctx["index"] = json!(index);
    }
    if node.deferred.is_some() {
        ctx["item"] = json!("<item>");
        ctx["index"] = json!("<index>");
    }
    ctx
}

struct Render<'a> {
    renderer: &'a Renderer,
    ctx: &'a Value,
}

impl Render<'_> {
    fn text(&self, t: &str, escape: Escape) -> String {
        self.renderer
            .render(t, self.ctx, escape)
            .unwrap_or_else(|e| format!("<cannot render: {e}>"))
    }
    fn plain(&self, t: &Template) -> String {
        self.text(&t.value, Escape::None)
    }
    fn json(&self, node: &crate::yaml::Node) -> Value {
        use crate::yaml::NodeKind;
        match &node.kind {
            NodeKind::Scalar { text, .. } if text.contains("{{") => {
                Value::String(self.text(text, Escape::None))
            }
            NodeKind::Seq(items) => Value::Array(items.iter().map(|n| self.json(n)).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), self.json(v)))
                    .collect(),
            ),
            NodeKind::Scalar { .. } => node.to_json(),
        }
    }
}

/// Renders what `node` would do.
pub fn preview(plan: &CompiledPlan, phase: &Phase, node: &Node, renderer: &Renderer) -> Preview {
    let ctx = preview_context(plan, phase, node);
    let r = Render {
        renderer,
        ctx: &ctx,
    };
    let step = &node.step;
    let mut notes = Vec::new();
    let lines = |s: String| s.lines().map(str::to_string).collect::<Vec<_>>();
    let title = step.name.as_ref().map(|n| r.plain(n));
    let preview = match step.action() {
        ActionRef::Ssh(a) => {
            let defaults = plan.defaults.ssh.clone().unwrap_or_default();
            let host_name = r.plain(&a.host);
            let host = plan.hosts.get(&host_name);
            let user = a
                .settings
                .user
                .as_ref()
                .map(|u| r.plain(u))
                .or_else(|| host.and_then(|h| h.user.as_ref()).map(|u| u.value.clone()))
                .or_else(|| defaults.user.as_ref().map(|u| r.plain(u)));
            let port = a
                .settings
                .port
                .as_ref()
                .or(host.and_then(|h| h.port.as_ref()))
                .or(defaults.port.as_ref())
                .map(|p| p.value);
            let address = host
                .and_then(|h| h.address.as_ref())
                .map(|a| format!(" ({})", a.value))
                .unwrap_or_default();
            let target = format!(
                "{}{host_name}{}{address}",
                user.map_or(String::new(), |u| format!("{u}@")),
                port.map_or(String::new(), |p| format!(":{p}"))
            );
            if a.settings
                .sudo
                .as_ref()
                .or(defaults.sudo.as_ref())
                .is_some_and(|s| s.value)
            {
                notes.push("sudo".into());
            }
            let env = a.settings.env.iter().chain(defaults.env.iter());
            let mut body: Vec<String> = env
                .map(|(k, v)| {
                    format!(
                        "export {}={}",
                        k.value,
                        crate::template::shell_quote(&r.plain(v))
                    )
                })
                .collect();
            if let Some(run) = &a.run {
                body.extend(lines(format!("$ {}", r.text(&run.value, Escape::Shell))));
            }
            if let Some(script) = &a.script {
                notes.push("script on stdin to `sh -se`".into());
                body.extend(lines(r.text(&script.value, Escape::Shell)));
            }
            if let Some(u) = &a.upload {
                body.push(format!(
                    "upload {} -> {}{}",
                    r.plain(&u.from),
                    r.plain(&u.to),
                    u.mode
                        .as_ref()
                        .map_or(String::new(), |m| format!(" (mode {})", m.value))
                ));
            }
            Preview {
                title: None,
                kind: "ssh",
                target,
                body,
                notes,
            }
        }
        ActionRef::Http(a) => {
            let method = a
                .method
                .as_ref()
                .map_or("GET".to_string(), |m| m.value.clone());
            let mut tls = a.tls.as_ref();
            let mut url = a.url.as_ref().map(|u| r.plain(u)).unwrap_or_default();
            let mut headers: Vec<(String, String)> = Vec::new();
            if let Some(Connection::Http(c)) = a
                .connection
                .as_ref()
                .and_then(|c| plan.connections.get(&c.value))
            {
                url = format!(
                    "{}{}",
                    r.plain(&c.base_url).trim_end_matches('/'),
                    a.path.as_ref().map(|p| r.plain(p)).unwrap_or_default()
                );
                headers.extend(c.headers.iter().map(|(k, v)| (k.value.clone(), r.plain(v))));
                tls = tls.or(c.tls.as_ref());
            }
            if let Some(d) = &plan.defaults.http {
                headers.extend(d.headers.iter().map(|(k, v)| (k.value.clone(), r.plain(v))));
                tls = tls.or(d.tls.as_ref());
            }
            headers.extend(a.headers.iter().map(|(k, v)| (k.value.clone(), r.plain(v))));
            if !a.query.is_empty() {
                let q: Vec<String> = a
                    .query
                    .iter()
                    .map(|(k, v)| format!("{}={}", k.value, r.plain(v)))
                    .collect();
                url = format!("{url}?{}", q.join("&"));
            }
            let mut body: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            if let Some(j) = &a.json {
                body.extend(lines(
                    serde_json::to_string_pretty(&r.json(j)).unwrap_or_default(),
                ));
            }
            if let Some(b) = &a.body {
                body.extend(lines(r.plain(b)));
            }
            if !a.form.is_empty() {
                body.extend(
                    a.form
                        .iter()
                        .map(|(k, v)| format!("{}={}", k.value, r.plain(v))),
                );
            }
            if let Some(e) = &a.expect {
                if let Some(s) = &e.status {
                    notes.push(format!("expect status {}", status_text(&s.value)));
                }
                if let Some(b) = &e.body_contains {
                    notes.push(format!("expect body contains {:?}", r.plain(b)));
                }
                if let Some(j) = &e.jq {
                    notes.push(format!("expect jq `{}`", j.value));
                }
            }
            if let Some(tls) = tls {
                if tls.insecure.as_ref().is_some_and(|i| i.value) {
                    notes.push("TLS NOT VERIFIED (insecure: true)".into());
                }
                if let Some(ca) = &tls.ca_file {
                    notes.push(format!("TLS CA {}", r.plain(ca)));
                }
            }
            Preview {
                title: None,
                kind: "http",
                target: format!("{method} {url}"),
                body,
                notes,
            }
        }
        ActionRef::Sql(a) => {
            let target = match (&a.connection, &a.url) {
                (Some(c), _) => format!("connection {}", c.value),
                (None, Some(u)) => crate::template::redact_url(&r.plain(u)),
                (None, None) => plan
                    .defaults
                    .sql
                    .as_ref()
                    .and_then(|s| s.connection.as_ref())
                    .map_or("(no connection)".into(), |c| {
                        format!("connection {}", c.value)
                    }),
            };
            let mut body = Vec::new();
            for s in a.all_statements() {
                let text = r.plain(&s.query);
                body.extend(lines(format!("{};", text.trim().trim_end_matches(';'))));
                for (i, arg) in s.args.iter().enumerate() {
                    body.push(format!("  -- ${} = {}", i + 1, display_value(&r.json(arg))));
                }
            }
            if a.transaction.as_ref().is_some_and(|t| t.value) {
                notes.push("one transaction".into());
            }
            if let Some(e) = &a.expect {
                notes.push(match &e.rows_affected.value {
                    RowsExpect::Exactly(n) => format!("expect {n} rows affected"),
                    RowsExpect::Range { min, max } => format!(
                        "expect rows affected in {}..={}",
                        min.map_or(String::new(), |m| m.to_string()),
                        max.map_or(String::new(), |m| m.to_string())
                    ),
                });
            }
            if let Some(l) = a.lock_timeout.as_ref().or(plan
                .defaults
                .sql
                .as_ref()
                .and_then(|s| s.lock_timeout.as_ref()))
            {
                notes.push(format!(
                    "lock timeout {}",
                    humantime::format_duration(l.value.0)
                ));
            }
            Preview {
                title: None,
                kind: "sql",
                target,
                body,
                notes,
            }
        }
        ActionRef::Shell(a) => {
            let mut body: Vec<String> = a
                .env
                .iter()
                .map(|(k, v)| {
                    format!(
                        "export {}={}",
                        k.value,
                        crate::template::shell_quote(&r.plain(v))
                    )
                })
                .collect();
            if let Some(run) = &a.run {
                body.extend(lines(format!("$ {}", r.text(&run.value, Escape::Shell))));
            }
            if let Some(script) = &a.script {
                notes.push("script on stdin to `sh -se`".into());
                body.extend(lines(r.text(&script.value, Escape::Shell)));
            }
            let target = a
                .cwd
                .as_ref()
                .map_or("local".into(), |c| format!("local, in {}", r.plain(c)));
            Preview {
                title: None,
                kind: "shell",
                target,
                body,
                notes,
            }
        }
        ActionRef::Sleep(d) => Preview {
            title: None,
            kind: "sleep",
            target: humantime::format_duration(d.value.0).to_string(),
            body: Vec::new(),
            notes,
        },
        ActionRef::Confirm(t) => Preview {
            title: None,
            kind: "confirm",
            target: "a person answers".into(),
            body: lines(r.plain(t)),
            notes,
        },
        ActionRef::Group(_) => Preview {
            title: None,
            kind: "steps",
            target: String::new(),
            body: Vec::new(),
            notes,
        },
    };
    Preview { title, ..preview }
}

pub fn status_text(s: &StatusExpect) -> String {
    match s {
        StatusExpect::Code(c) => c.to_string(),
        StatusExpect::Codes(cs) => cs
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(" or "),
        StatusExpect::Class(c) => c.clone(),
    }
}
