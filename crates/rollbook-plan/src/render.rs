//! A node's templates rendered against the run context: the [`Action`] a runner executes.
//!
//! The dry run and the real run go through the same code; only the context differs (secrets
//! masked and step outputs as placeholders in the dry run).

use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::{Map, Value, json};

use crate::action::*;
use crate::compile::{CompiledPlan, Node};
use crate::model::{self, ActionRef, Connection};
use crate::template::{Escape, Renderer};

/// What a phase knows of the run around it: `run.status` and `run.tolerated`.
#[derive(Debug, Clone, Copy)]
pub struct RunState<'a> {
    /// `running` in the main graph, `failed` in `on_failure`, how the main graph ended in
    /// `finally`.
    pub status: &'a str,
    /// The failures the run went on after, before the phase began: a list of
    /// `{phase, node, message}` (empty in the main graph).
    pub tolerated: &'a Value,
}

impl RunState<'static> {
    /// The main graph's: `running`, nothing tolerated yet.
    pub fn running() -> Self {
        static NONE: Value = Value::Array(Vec::new());
        RunState {
            status: "running",
            tolerated: &NONE,
        }
    }
}

/// The template context of one node: the plan's (`params`, `inventory`, `plan`, `run`) plus
/// `secrets`, the outputs of the steps it reads, and its item.
///
/// `outputs(node)` gives a finished node's captured values; a step read from outside its
/// fan-out gives the list of its instances' values.
pub fn node_context(
    plan: &CompiledPlan,
    graph: &DiGraph<Node, ()>,
    node: &Node,
    secrets: &Map<String, Value>,
    run: RunState<'_>,
    outputs: &dyn Fn(NodeIndex) -> Option<Value>,
) -> Value {
    let reads = reads(plan, node);
    // A called plan's node sees that plan's context (its params and inventory).
    let base = node.call.as_ref().map_or(&plan.context, |c| &c.context);
    let mut ctx = if reads.inventory {
        base.clone()
    } else {
        without_inventory(base)
    };
    ctx["secrets"] = match &node.call {
        None => Value::Object(secrets.clone()),
        // A called plan sees the secrets it was given, under its own names.
        Some(call) => Value::Object(
            call.secrets
                .iter()
                .filter_map(|(called, run)| secrets.get(run).map(|v| (called.clone(), v.clone())))
                .collect(),
        ),
    };
    ctx["run"]["status"] = json!(run.status);
    ctx["run"]["tolerated"] = run.tolerated.clone();
    let mut steps = Map::new();
    // An undo node reads as the node it undoes (it belongs to no instance itself).
    let own_instances = node
        .undoes
        .map_or(node.instances.len(), |u| graph[u].instances.len());
    for (id, nodes) in &node.inputs {
        let values: Vec<Value> = nodes
            .iter()
            .map(|&n| outputs(n).unwrap_or(Value::Null))
            .collect();
        let single = nodes.len() == 1 && graph[nodes[0]].instances.len() <= own_instances;
        let outputs = if single {
            values.into_iter().next().unwrap_or(Value::Null)
        } else {
            // A fan-out seen from outside: each capture becomes the list of its instances'.
            let mut merged = Map::new();
            let names: Vec<String> = nodes
                .first()
                .map(|&n| graph[n].step.capture.names().map(str::to_string).collect())
                .unwrap_or_default();
            for name in names {
                let list: Vec<Value> = values
                    .iter()
                    .map(|v| v.get(&name).cloned().unwrap_or(Value::Null))
                    .collect();
                merged.insert(name, Value::Array(list));
            }
            Value::Object(merged)
        };
        steps.insert(id.clone(), json!({ "outputs": outputs }));
    }
    ctx["steps"] = Value::Object(steps);
    if let Some((item, index)) = &node.item {
        ctx["item"] = item.clone();
        ctx["index"] = json!(index);
    }
    if reads.host
        && let Some(host) = node_host(plan, node, &ctx)
    {
        ctx["host"] = host;
    }
    ctx
}

/// The inventory host in scope of a node (`host` in templates), as its record
/// ([`crate::inventory::host_record`]):
/// 1. in an `ssh` step whose `host` renders to the name of an inventory host, that host;
/// 2. else, when the node's `for_each` item (the innermost) is the name of an inventory host,
///    or an object whose `name` is, that host.
///
/// Otherwise there is none, and a template that reads `host` fails to render.
fn node_host(plan: &CompiledPlan, node: &Node, ctx: &Value) -> Option<Value> {
    let records = node
        .call
        .as_ref()
        .map_or(&plan.context, |c| &c.context)
        .get("inventory")?
        .get(crate::inventory::RESERVED_GROUP)?;
    if let ActionRef::Ssh(a) = node.step.action()
        && let Some(record) = ssh_host(&a.host.value, ctx).and_then(|name| records.get(&name))
    {
        return Some(record.clone());
    }
    let name = match &node.item.as_ref()?.0 {
        Value::String(s) => s.as_str(),
        Value::Object(o) => o.get("name")?.as_str()?,
        _ => return None,
    };
    records.get(name).cloned()
}

/// The host an `ssh` step's `host` template names, rendered without `host` in the context.
fn ssh_host(template: &str, ctx: &Value) -> Option<String> {
    static RENDERER: std::sync::OnceLock<Renderer> = std::sync::OnceLock::new();
    if !template.contains("{{") {
        return Some(template.to_string());
    }
    match crate::template::eval_single(template, ctx) {
        Ok(Some(Value::String(s))) => Some(s),
        Ok(Some(_)) => None,
        _ => RENDERER
            .get_or_init(Renderer::new)
            .render(template, ctx, Escape::None)
            .ok(),
    }
}

/// What a node's templates may read, beyond what every node gets.
struct Reads {
    /// `inventory`: its groups and host records.
    inventory: bool,
    /// `host`: the inventory host in scope ([`node_host`]).
    host: bool,
}

/// Whether a node's templates may read `inventory` or `host`: one of them (the step's own,
/// its name and its groups' names, the `defaults` and `connections` of its plan, the called
/// plan's inside a call) names it.
/// Conservative: a mention anywhere counts. The `for_each` of the groups around the node is
/// not looked at: it was expanded when the plan was compiled (or, over a step output, by the
/// executor).
///
/// Why: the context is copied for every node, and handlebars copies it again for every
/// template. A `for_each` over 10,000 hosts reads the inventory once, when it is compiled; a
/// copy of the 10,000 names in each of its 30,000 nodes' contexts made a run quadratic
/// (48 s of copying for the dry run alone).
fn reads(plan: &CompiledPlan, node: &Node) -> Reads {
    let mut reads = Reads {
        inventory: false,
        host: false,
    };
    let mut look = |text: &str| {
        reads.inventory |= text.contains("inventory");
        reads.host |= mentions_host(text);
    };
    crate::compile::visit_templates(&node.step, &mut look);
    for step in std::iter::once(&node.step).chain(&node.groups) {
        if let Some(name) = &step.name {
            look(&name.value);
        }
    }
    let env = Env::of(plan, node);
    let plan_wide = format!("{:?}{:?}", env.defaults, env.connections);
    look(&plan_wide);
    reads
}

/// Whether `text` may read `host`: the word followed by what can follow a name in a template
/// (`host.vars.x`, `host }}`, `(host)`), so that `known_hosts` and `host_key_policy` in the
/// settings do not count.
fn mentions_host(text: &str) -> bool {
    text.match_indices("host").any(|(i, _)| {
        matches!(
            text[i + 4..].chars().next(),
            None | Some('.' | ' ' | '}' | ')' | '[' | '~' | '\n')
        )
    })
}

/// The plan's context with an empty `inventory`.
fn without_inventory(context: &Value) -> Value {
    match context {
        Value::Object(entries) => Value::Object(
            entries
                .iter()
                .map(|(key, value)| match key.as_str() {
                    "inventory" => (key.clone(), Value::Object(Map::new())),
                    _ => (key.clone(), value.clone()),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A template that could not be rendered (a name with no value at run time).
///
/// The executor turns it into the attempt's failure message, so it says which field failed
/// and why: ``cannot render `http.url`: `params.region` has no value``.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot render `{field}`: {message}")]
pub struct RenderError {
    /// Which field: `ssh.run`, `http.url`, ...
    pub field: &'static str,
    /// Why it failed, as the template engine explains it.
    pub message: String,
}

/// Renders the templates of one node against its context.
struct R<'a> {
    r: &'a Renderer,
    ctx: &'a Value,
}

impl R<'_> {
    fn text(&self, field: &'static str, t: &model::Template) -> Result<String, RenderError> {
        self.r
            .render(&t.value, self.ctx, Escape::None)
            .map_err(|message| RenderError { field, message })
    }
    /// Shell code: each value placed as data where it stands ([`crate::shell`]).
    fn shell(&self, field: &'static str, t: &model::Template) -> Result<ShellText, RenderError> {
        self.r
            .render(&t.value, self.ctx, Escape::Shell)
            .and_then(|text| crate::shell::build(&text))
            .map_err(|message| RenderError { field, message })
    }
    fn opt(
        &self,
        field: &'static str,
        t: &Option<model::Template>,
    ) -> Result<Option<String>, RenderError> {
        t.as_ref().map(|t| self.text(field, t)).transpose()
    }
    fn opt_shell(
        &self,
        field: &'static str,
        t: &Option<model::Template>,
    ) -> Result<Option<ShellText>, RenderError> {
        t.as_ref().map(|t| self.shell(field, t)).transpose()
    }
    fn pairs(
        &self,
        field: &'static str,
        map: &model::Entries<model::Template>,
    ) -> Result<Vec<(String, String)>, RenderError> {
        map.iter()
            .map(|(k, v)| Ok((k.value.clone(), self.text(field, v)?)))
            .collect()
    }
    /// A YAML value with its template strings rendered; a string that is exactly one
    /// `{{ expression }}` keeps the expression's JSON type (a number stays a number).
    fn value(&self, field: &'static str, node: &crate::yaml::Node) -> Result<Value, RenderError> {
        use crate::yaml::NodeKind;
        Ok(match &node.kind {
            NodeKind::Scalar { text, .. } if text.contains("{{") => self.scalar(field, text)?,
            NodeKind::Scalar { .. } => node.to_json(),
            NodeKind::Seq(items) => Value::Array(
                items
                    .iter()
                    .map(|n| self.value(field, n))
                    .collect::<Result<_, _>>()?,
            ),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        Ok((
                            k.as_str().unwrap_or_default().to_string(),
                            self.value(field, v)?,
                        ))
                    })
                    .collect::<Result<_, RenderError>>()?,
            ),
        })
    }
    /// A template scalar: the JSON value of a single expression when it is a scalar, else the
    /// rendered text.
    fn scalar(&self, field: &'static str, text: &str) -> Result<Value, RenderError> {
        match crate::template::eval_single(text, self.ctx) {
            Ok(Some(v)) if !v.is_object() && !v.is_array() => Ok(v),
            _ => self
                .r
                .render(text, self.ctx, Escape::None)
                .map(Value::String)
                .map_err(|message| RenderError { field, message }),
        }
    }
}

/// The host of a URL (`http://user@name:8080/x` gives `name`, `http://[::1]:8080/` gives
/// `[::1]`): enough to look the name up in the inventory. `None` when the URL does not parse
/// (e.g. it still holds a `<steps.X.outputs.Y>` placeholder) or names no host.
///
/// Hosts of `http` and `https` URLs come back lowercased, as the HTTP client sees them.
pub fn url_host(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    // `http:///path` is read by URL parsers as the host `path`; as written it names none.
    let after_scheme = &url[parsed.scheme().len()..];
    if after_scheme.starts_with(":///") {
        return None;
    }
    parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

/// Percent-encodes a query component.
fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Renders the action of `node` against `ctx` (see [`node_context`]).
///
/// A group has no action of its own: asking for one is an error.
pub fn render_action(
    plan: &CompiledPlan,
    node: &Node,
    ctx: &Value,
    renderer: &Renderer,
) -> Result<Action, RenderError> {
    let r = R { r: renderer, ctx };
    let plan = &Env::of(plan, node);
    match node.step.action() {
        ActionRef::Ssh(a) => ssh(&r, plan, a).map(Action::Ssh),
        ActionRef::Http(a) => http(&r, plan, a).map(Action::Http),
        ActionRef::Sql(a) => sql(&r, plan, node, a).map(Action::Sql),
        ActionRef::Shell(a) => shell(&r, a).map(Action::Shell),
        ActionRef::Sleep(d) => Ok(Action::Sleep {
            duration: d.value.resolve(&ctx["params"]),
        }),
        ActionRef::Confirm(t) => Ok(Action::Confirm {
            prompt: r.text("confirm", t)?,
        }),
        ActionRef::Group(_) => Err(RenderError {
            field: "steps",
            message: "a group has no action of its own".into(),
        }),
        ActionRef::Call(_) => Err(RenderError {
            field: "plan",
            message: "a call of a plan has no action of its own".into(),
        }),
    }
}

/// What a node's action is rendered with: its plan's `defaults`, `connections` and host
/// details (a called plan's own, for the nodes of a call).
struct Env<'a> {
    defaults: &'a model::Defaults,
    connections: &'a model::Entries<Connection>,
    hosts: &'a std::collections::BTreeMap<String, model::HostDetails>,
}

impl<'a> Env<'a> {
    fn of(plan: &'a CompiledPlan, node: &'a Node) -> Self {
        match &node.call {
            Some(c) => Env {
                defaults: &c.defaults,
                connections: &c.connections,
                hosts: &c.hosts,
            },
            None => Env {
                defaults: &plan.defaults,
                connections: &plan.connections,
                hosts: &plan.hosts,
            },
        }
    }
}

/// The first of `own` and `default` that is set.
fn own_or<'a, T>(own: &'a Option<T>, default: &'a Option<T>) -> &'a Option<T> {
    if own.is_some() { own } else { default }
}

/// An `ssh` step: the host's inventory details and the plan's `defaults.ssh` fill in what the
/// step leaves out.
fn ssh(r: &R<'_>, plan: &Env<'_>, a: &model::SshAction) -> Result<SshCommand, RenderError> {
    let defaults = plan.defaults.ssh.clone().unwrap_or_default();
    let host = r.text("ssh.host", &a.host)?;
    let details = plan.hosts.get(&host);
    let s = &a.settings;
    let user = ssh_user(r, s, details, &defaults)?;
    let env = ssh_env(r, s, &defaults)?;
    Ok(SshCommand {
        address: details
            .and_then(|h| h.address.as_ref())
            .map_or_else(|| host.clone(), |a| a.value.clone()),
        port: s
            .port
            .as_ref()
            .or(details.and_then(|h| h.port.as_ref()))
            .or(defaults.port.as_ref())
            .map(|p| p.value),
        user,
        command: r.opt_shell("ssh.run", &a.run)?,
        script: r.opt_shell("ssh.script", &a.script)?,
        sudo: s
            .sudo
            .as_ref()
            .or(defaults.sudo.as_ref())
            .is_some_and(|b| b.value),
        env,
        upload: a.upload.as_ref().map(|u| upload(r, u)).transpose()?,
        identity_file: r.opt(
            "ssh.identity_file",
            own_or(&s.identity_file, &defaults.identity_file),
        )?,
        known_hosts: r.opt(
            "ssh.known_hosts",
            own_or(&s.known_hosts, &defaults.known_hosts),
        )?,
        host_key_policy: s
            .host_key_policy
            .as_ref()
            .or(defaults.host_key_policy.as_ref())
            .map_or(HostKeyPolicyName::Strict, |p| p.value.into()),
        connect_timeout: s
            .connect_timeout
            .as_ref()
            .or(defaults.connect_timeout.as_ref())
            .map(|d| d.value.resolve(&r.ctx["params"])),
        host,
    })
}

/// The step's `user`, else the inventory host's, else the default.
fn ssh_user(
    r: &R<'_>,
    s: &model::SshSettings,
    details: Option<&model::HostDetails>,
    defaults: &model::SshSettings,
) -> Result<Option<String>, RenderError> {
    Ok(
        match (
            &s.user,
            details.and_then(|h| h.user.as_ref()),
            &defaults.user,
        ) {
            (Some(u), _, _) => Some(r.text("ssh.user", u)?),
            (None, Some(u), _) => Some(u.value.clone()),
            (None, None, Some(u)) => Some(r.text("ssh.user", u)?),
            _ => None,
        },
    )
}

/// The default environment with the step's variables on top (a step's value replaces the
/// default of the same name).
fn ssh_env(
    r: &R<'_>,
    s: &model::SshSettings,
    defaults: &model::SshSettings,
) -> Result<Vec<(String, String)>, RenderError> {
    let mut env = r.pairs("ssh.env", &defaults.env)?;
    for (k, v) in r.pairs("ssh.env", &s.env)? {
        env.retain(|(name, _)| *name != k);
        env.push((k, v));
    }
    Ok(env)
}

/// A file to copy before the command runs; `mode` is written in octal.
fn upload(r: &R<'_>, u: &model::Upload) -> Result<Upload, RenderError> {
    Ok(Upload {
        from: r.text("ssh.upload.from", &u.from)?,
        to: r.text("ssh.upload.to", &u.to)?,
        mode: u
            .mode
            .as_ref()
            .and_then(|m| u32::from_str_radix(&m.value, 8).ok()),
    })
}

/// An `http` step: its URL (or its connection's `base_url` and its `path`), headers from the
/// defaults, the connection and the step (later ones replace earlier ones of the same name,
/// in any case), the query, the body and the TLS settings.
fn http(r: &R<'_>, plan: &Env<'_>, a: &model::HttpAction) -> Result<HttpRequest, RenderError> {
    let mut url = r.opt("http.url", &a.url)?.unwrap_or_default();
    let mut headers = Vec::new();
    let mut tls_source = a.tls.as_ref();
    if let Some(d) = &plan.defaults.http {
        headers.extend(r.pairs("http.headers", &d.headers)?);
        tls_source = tls_source.or(d.tls.as_ref());
    }
    if let Some(Connection::Http(c)) = a
        .connection
        .as_ref()
        .and_then(|c| plan.connections.get(&c.value))
    {
        let base = r.text("connections.base_url", &c.base_url)?;
        let path = r.opt("http.path", &a.path)?.unwrap_or_default();
        url = format!(
            "{}/{}",
            base.trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        headers.extend(r.pairs("connections.headers", &c.headers)?);
        tls_source = a.tls.as_ref().or(c.tls.as_ref()).or(tls_source);
    }
    for (k, v) in r.pairs("http.headers", &a.headers)? {
        headers.retain(|(name, _): &(String, String)| !name.eq_ignore_ascii_case(&k));
        headers.push((k, v));
    }
    append_query(&mut url, &r.pairs("http.query", &a.query)?);
    let body = http_body(r, a)?;
    let tls = tls(r, tls_source)?;
    let expect = a.expect.as_ref();
    let address = url_host(&url)
        .and_then(|h| plan.hosts.get(&h))
        .and_then(|h| h.address.as_ref())
        .map(|a| a.value.clone());
    Ok(HttpRequest {
        method: a.method.as_ref().map_or("GET".into(), |m| m.value.clone()),
        url,
        address,
        headers,
        body,
        expect_status: expect
            .and_then(|e| e.status.as_ref())
            .map(|s| s.value.clone()),
        expect_body_contains: expect
            .and_then(|e| e.body_contains.as_ref())
            .map(|b| r.text("http.expect.body_contains", b))
            .transpose()?,
        expect_jq: expect.and_then(|e| e.jq.as_ref()).map(|j| j.value.clone()),
        tls,
    })
}

/// Appends `query` to `url`, percent-encoded, after the query the URL already has.
fn append_query(url: &mut String, query: &[(String, String)]) {
    if query.is_empty() {
        return;
    }
    let q: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", encode_query(k), encode_query(v)))
        .collect();
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str(&q.join("&"));
}

/// The request body: `json`, else `body`, else `form`, else none.
fn http_body(r: &R<'_>, a: &model::HttpAction) -> Result<Option<HttpBody>, RenderError> {
    Ok(if let Some(j) = &a.json {
        Some(HttpBody::Json(r.value("http.json", j)?))
    } else if let Some(b) = &a.body {
        Some(HttpBody::Text(r.text("http.body", b)?))
    } else if !a.form.is_empty() {
        Some(HttpBody::Form(r.pairs("http.form", &a.form)?))
    } else {
        None
    })
}

/// The TLS settings that apply (the step's, else its connection's, else the defaults').
fn tls(r: &R<'_>, source: Option<&model::Tls>) -> Result<Tls, RenderError> {
    let Some(t) = source else {
        return Ok(Tls::default());
    };
    Ok(Tls {
        ca_file: r.opt("http.tls.ca_file", &t.ca_file)?,
        client_cert: r.opt("http.tls.client_cert", &t.client_cert)?,
        client_key: r.opt("http.tls.client_key", &t.client_key)?,
        insecure: t.insecure.as_ref().is_some_and(|i| i.value),
    })
}

/// A `sql` step: its URL (written, else its connection's, else the default connection's),
/// its statements with their arguments, and the timeouts.
fn sql(
    r: &R<'_>,
    plan: &Env<'_>,
    node: &Node,
    a: &model::SqlAction,
) -> Result<SqlCall, RenderError> {
    let default_sql = plan.defaults.sql.as_ref();
    let connection = a
        .connection
        .as_ref()
        .or(default_sql.and_then(|s| s.connection.as_ref()))
        .filter(|_| a.url.is_none())
        .map(|c| c.value.clone());
    let url = match (&a.url, &connection) {
        (Some(u), _) => r.text("sql.url", u)?,
        (None, Some(name)) => match plan.connections.get(name) {
            Some(Connection::Sql(c)) => r.text("connections.url", &c.url)?,
            _ => String::new(),
        },
        (None, None) => String::new(),
    };
    Ok(SqlCall {
        connection,
        url,
        statements: a
            .all_statements()
            .iter()
            .map(|s| statement(r, s))
            .collect::<Result<_, _>>()?,
        transaction: a.transaction.as_ref().is_some_and(|t| t.value),
        expect_rows_affected: a.expect.as_ref().map(|e| e.rows_affected.value.clone()),
        lock_timeout: a
            .lock_timeout
            .as_ref()
            .or(default_sql.and_then(|s| s.lock_timeout.as_ref()))
            .map(|d| d.value.resolve(&r.ctx["params"])),
        statement_timeout: node.settings.timeout,
    })
}

/// One statement: its text rendered (values belong in `args`) and its arguments as JSON.
fn statement(r: &R<'_>, s: &model::Statement) -> Result<SqlStatement, RenderError> {
    Ok(SqlStatement {
        text: r.text("sql.query", &s.query)?,
        args: s
            .args
            .iter()
            .map(|a| r.value("sql.args", a))
            .collect::<Result<_, _>>()?,
    })
}

/// A `shell` step: each value in `run` or `script` reaches the shell as data.
fn shell(r: &R<'_>, a: &model::ShellAction) -> Result<ShellCommand, RenderError> {
    Ok(ShellCommand {
        command: r.opt_shell("shell.run", &a.run)?,
        script: r.opt_shell("shell.script", &a.script)?,
        env: r.pairs("shell.env", &a.env)?,
        cwd: r.opt("shell.cwd", &a.cwd)?,
    })
}

#[cfg(test)]
mod tests {
    use super::url_host;

    fn host(url: &str) -> Option<String> {
        url_host(url)
    }

    #[test]
    fn url_host_finds_the_name_between_scheme_and_port_or_path() {
        assert_eq!(
            host("http://us-east-op-1:8080/health").as_deref(),
            Some("us-east-op-1")
        );
        assert_eq!(
            host("https://api.example.com/v1?x=1").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(host("http://user:pw@web-2/x").as_deref(), Some("web-2"));
        assert_eq!(host("http://[::1]:8080/").as_deref(), Some("[::1]"));
        assert_eq!(host("http://h#frag").as_deref(), Some("h"));
        assert_eq!(host("not a url"), None);
        assert_eq!(host("http:///path"), None);
    }

    #[test]
    fn url_host_reads_userinfo_ipv6_and_missing_ports() {
        assert_eq!(host("http://web-2").as_deref(), Some("web-2"));
        assert_eq!(host("http://web-2?x=1").as_deref(), Some("web-2"));
        assert_eq!(host("http://[::1]/x").as_deref(), Some("[::1]"));
        assert_eq!(
            host("http://[2001:db8::1]:8080").as_deref(),
            Some("[2001:db8::1]")
        );
        // The host follows the last `@`: one in the password does not end the userinfo.
        assert_eq!(host("http://app:p@ss@db-1:8080/").as_deref(), Some("db-1"));
        assert_eq!(host("http://app:p:w@db-1/").as_deref(), Some("db-1"));
        assert_eq!(host("http://app:p%40ss@db-1/").as_deref(), Some("db-1"));
        assert_eq!(host("http://app@db-1/").as_deref(), Some("db-1"));
    }

    #[test]
    fn url_host_of_a_url_that_does_not_parse_is_none() {
        assert_eq!(host("http://<steps.find.outputs.host>:8080/"), None);
        assert_eq!(host("http://web-1:port/"), None);
        assert_eq!(host("http://[::1/"), None);
        assert_eq!(host("/relative/path"), None);
        assert_eq!(host(""), None);
    }

    #[test]
    fn render_error_says_which_field_and_why() {
        let e = super::RenderError {
            field: "http.url",
            message: "`params.region` has no value".into(),
        };
        assert_eq!(
            e.to_string(),
            "cannot render `http.url`: `params.region` has no value"
        );
        let _: &dyn std::error::Error = &e;
    }
}
