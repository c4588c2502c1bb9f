//! What a node would do, rendered for the dry run: the host and command, the request, the SQL.
//! It renders through [`crate::render`], like a real run, with secrets as `***` and values that
//! only exist at run time as their names (`<steps.find.outputs.node_id>`).

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::action::{Action, HttpBody, ShellText};
use crate::compile::{CompiledPlan, Node, Phase};
use crate::model::{RowsExpect, StatusExpect};
use crate::params::display_value;
use crate::render::{RunState, node_context, render_action};
use crate::template::{Escape, Renderer, redact_url, shell_quote};

/// The rendered action of one node, as lines for people.
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
    let secrets: Map<String, Value> = plan
        .secrets
        .names()
        .map(|n| (n.to_string(), json!(MASK)))
        .collect();
    let placeholders = |n: petgraph::graph::NodeIndex| {
        let step = &phase.graph[n].step;
        let outputs: Map<String, Value> = step
            .capture
            .names()
            .map(|c| {
                (
                    c.to_string(),
                    json!(format!("<steps.{}.outputs.{c}>", step.id.value)),
                )
            })
            .collect();
        Some(Value::Object(outputs))
    };
    let status = match phase.kind {
        crate::compile::PhaseKind::Main => "running",
        crate::compile::PhaseKind::OnFailure => "failed",
        crate::compile::PhaseKind::Finally => "<succeeded|failed|cancelled>",
    };
    // After the main graph, one placeholder failure shows what a template makes of the list.
    let tolerated = match phase.kind {
        crate::compile::PhaseKind::Main => json!([]),
        _ => json!([{ "phase": "<phase>", "node": "<node>", "message": "<message>" }]),
    };
    let run = RunState {
        status,
        tolerated: &tolerated,
    };
    let mut ctx = node_context(plan, &phase.graph, node, &secrets, run, &placeholders);
    if node.deferred.is_some() {
        ctx["item"] = json!("<item>");
        ctx["index"] = json!("<index>");
    }
    ctx
}

/// Renders what `node` would do.
pub fn preview(plan: &CompiledPlan, phase: &Phase, node: &Node, renderer: &Renderer) -> Preview {
    let ctx = preview_context(plan, phase, node);
    let title = node.step.name.as_ref().map(|n| {
        renderer
            .render(&n.value, &ctx, Escape::None)
            .unwrap_or_else(|_| n.value.clone())
    });
    let kind = node.step.action().kind();
    if let crate::model::ActionRef::Group(steps) = node.step.action() {
        // A group over a step's output: its steps are known, their items are not yet.
        return Preview {
            title,
            kind,
            target: "a group, per item".into(),
            body: steps
                .iter()
                .map(|s| format!("{} ({})", s.id.value, s.action().kind()))
                .collect(),
            notes: Vec::new(),
        };
    }
    match render_action(plan, node, &ctx, renderer) {
        Ok(action) => Preview {
            title,
            ..describe(&action)
        },
        Err(e) => Preview {
            title,
            kind,
            target: String::new(),
            body: vec![format!("<{e}>")],
            notes: Vec::new(),
        },
    }
}

fn lines(s: &str) -> impl Iterator<Item = String> + '_ {
    s.lines().map(str::to_string)
}

/// Where an action acts, in one line: `deploy@web-1:22 (10.0.0.5)`, `GET http://...`,
/// `connection db`, `local`. The journal records it for every attempt, so it is kept cheap.
pub fn target(action: &Action) -> String {
    match action {
        Action::Ssh(a) => {
            let address = if a.address != a.host {
                format!(" ({})", a.address)
            } else {
                String::new()
            };
            format!(
                "{}{}{}{address}",
                a.user.as_ref().map_or(String::new(), |u| format!("{u}@")),
                a.host,
                a.port.map_or(String::new(), |p| format!(":{p}")),
            )
        }
        // A password written into a URL is no secret the redactor knows: hidden here, for
        // the dry run and the journal alike, as a sql URL's is.
        Action::Http(a) => match &a.address {
            Some(address) => format!("{} {} (at {address})", a.method, redact_url(&a.url)),
            None => format!("{} {}", a.method, redact_url(&a.url)),
        },
        Action::Sql(a) => match &a.connection {
            Some(c) => format!("connection {c}"),
            None => redact_url(&a.url),
        },
        Action::Shell(a) => a
            .cwd
            .as_ref()
            .map_or("local".into(), |c| format!("local, in {c}")),
        Action::Sleep { duration } => humantime::format_duration(*duration).to_string(),
        Action::Confirm { .. } => "a person answers".into(),
    }
}

/// A rendered action as lines for people.
pub fn describe(action: &Action) -> Preview {
    let mut notes = Vec::new();
    let mut body = Vec::new();
    match action {
        Action::Ssh(a) => {
            if a.sudo {
                notes.push("sudo".into());
            }
            command_lines(&a.env, &a.command, &a.script, &mut body, &mut notes);
            if let Some(u) = &a.upload {
                let mode = u.mode.map_or(String::new(), |m| format!(" (mode {m:04o})"));
                body.push(format!("upload {} -> {}{mode}", u.from, u.to));
            }
        }
        Action::Http(a) => {
            body.extend(a.headers.iter().map(|(k, v)| format!("{k}: {v}")));
            match &a.body {
                Some(HttpBody::Json(j)) => {
                    body.extend(lines(&serde_json::to_string_pretty(j).unwrap_or_default()))
                }
                Some(HttpBody::Text(t)) => body.extend(lines(t)),
                Some(HttpBody::Form(f)) => body.extend(f.iter().map(|(k, v)| format!("{k}={v}"))),
                None => {}
            }
            if let Some(s) = &a.expect_status {
                notes.push(format!("expect status {}", status_text(s)));
            }
            if let Some(b) = &a.expect_body_contains {
                notes.push(format!("expect body contains {b:?}"));
            }
            if let Some(j) = &a.expect_jq {
                notes.push(format!("expect jq `{j}`"));
            }
            if a.tls.insecure {
                notes.push("TLS NOT VERIFIED (insecure: true)".into());
            }
            if let Some(ca) = &a.tls.ca_file {
                notes.push(format!("TLS CA {ca}"));
            }
        }
        Action::Sql(a) => {
            for s in &a.statements {
                body.extend(lines(&format!("{};", s.text.trim().trim_end_matches(';'))));
                for (i, arg) in s.args.iter().enumerate() {
                    body.push(format!("  -- ${} = {}", i + 1, display_value(arg)));
                }
            }
            if a.transaction {
                notes.push("one transaction".into());
            }
            if let Some(e) = &a.expect_rows_affected {
                notes.push(match e {
                    RowsExpect::Exactly(n) => format!("expect {n} rows affected"),
                    RowsExpect::Range { min, max } => match (min, max) {
                        (Some(min), Some(max)) => {
                            format!("expect {min} to {max} rows affected")
                        }
                        (Some(min), None) => format!("expect at least {min} rows affected"),
                        (None, Some(max)) => format!("expect at most {max} rows affected"),
                        (None, None) => "any number of rows affected".into(),
                    },
                });
            }
            if let Some(l) = a.lock_timeout {
                notes.push(format!("lock timeout {}", humantime::format_duration(l)));
            }
        }
        Action::Shell(a) => {
            command_lines(&a.env, &a.command, &a.script, &mut body, &mut notes);
        }
        Action::Sleep { .. } => {}
        Action::Confirm { prompt } => body.extend(lines(prompt)),
    }
    Preview {
        title: None,
        kind: action.kind(),
        target: target(action),
        body,
        notes,
    }
}

/// The environment, command or script of an `ssh` or `shell` action, as shown.
fn command_lines(
    env: &[(String, String)],
    command: &Option<ShellText>,
    script: &Option<ShellText>,
    body: &mut Vec<String>,
    notes: &mut Vec<String>,
) {
    body.extend(
        env.iter()
            .map(|(k, v)| format!("export {k}={}", shell_quote(v))),
    );
    if let Some(c) = command {
        body.extend(lines(&format!("$ {}", c.shown)));
    }
    if let Some(s) = script {
        notes.push("script on stdin to `sh -se`".into());
        body.extend(lines(&s.shown));
    }
}

/// An expected status as people read it: `200`, `200 or 204`, `2xx`.
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
