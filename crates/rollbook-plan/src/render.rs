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
    run_status: &str,
    outputs: &dyn Fn(NodeIndex) -> Option<Value>,
) -> Value {
    let mut ctx = plan.context.clone();
    ctx["secrets"] = Value::Object(secrets.clone());
    ctx["run"]["status"] = json!(run_status);
    let mut steps = Map::new();
    for (id, nodes) in &node.inputs {
        let values: Vec<Value> = nodes
            .iter()
            .map(|&n| outputs(n).unwrap_or(Value::Null))
            .collect();
        let single = nodes.len() == 1 && graph[nodes[0]].instances.len() <= node.instances.len();
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
    ctx
}

/// A template that could not be rendered (a name with no value at run time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderError {
    /// Which field: `ssh.run`, `http.url`, ...
    pub field: &'static str,
    pub message: String,
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot render `{}`: {}", self.field, self.message)
    }
}

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
    fn shell(&self, field: &'static str, t: &model::Template) -> Result<String, RenderError> {
        self.r
            .render(&t.value, self.ctx, Escape::Shell)
            .map_err(|message| RenderError { field, message })
    }
    fn opt(
        &self,
        field: &'static str,
        t: &Option<model::Template>,
    ) -> Result<Option<String>, RenderError> {
        t.as_ref().map(|t| self.text(field, t)).transpose()
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
            NodeKind::Scalar { text, .. } if text.contains("{{") => {
                match crate::template::eval_single(text, self.ctx) {
                    Ok(Some(v)) if !v.is_object() && !v.is_array() => v,
                    _ => Value::String(
                        self.r
                            .render(text, self.ctx, Escape::None)
                            .map_err(|message| RenderError { field, message })?,
                    ),
                }
            }
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
}

/// The host of a URL as written (`http://user@name:8080/x` gives `name`), without parsing
/// the rest: enough to look the name up in the inventory.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port.split_inclusive(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
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
pub fn render_action(
    plan: &CompiledPlan,
    node: &Node,
    ctx: &Value,
    renderer: &Renderer,
) -> Result<Action, RenderError> {
    let r = R { r: renderer, ctx };
    Ok(match node.step.action() {
        ActionRef::Ssh(a) => {
            let defaults = plan.defaults.ssh.clone().unwrap_or_default();
            let host = r.text("ssh.host", &a.host)?;
            let details = plan.hosts.get(&host);
            let s = &a.settings;
            let user = match (
                &s.user,
                details.and_then(|h| h.user.as_ref()),
                &defaults.user,
            ) {
                (Some(u), _, _) => Some(r.text("ssh.user", u)?),
                (None, Some(u), _) => Some(u.value.clone()),
                (None, None, Some(u)) => Some(r.text("ssh.user", u)?),
                _ => None,
            };
            let mut env = r.pairs("ssh.env", &defaults.env)?;
            for (k, v) in r.pairs("ssh.env", &s.env)? {
                env.retain(|(name, _)| *name != k);
                env.push((k, v));
            }
            Action::Ssh(SshCommand {
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
                command: a.run.as_ref().map(|t| r.shell("ssh.run", t)).transpose()?,
                script: a
                    .script
                    .as_ref()
                    .map(|t| r.shell("ssh.script", t))
                    .transpose()?,
                sudo: s
                    .sudo
                    .as_ref()
                    .or(defaults.sudo.as_ref())
                    .is_some_and(|b| b.value),
                env,
                upload: match &a.upload {
                    Some(u) => Some(Upload {
                        from: r.text("ssh.upload.from", &u.from)?,
                        to: r.text("ssh.upload.to", &u.to)?,
                        mode: u
                            .mode
                            .as_ref()
                            .and_then(|m| u32::from_str_radix(&m.value, 8).ok()),
                    }),
                    None => None,
                },
                identity_file: r.opt(
                    "ssh.identity_file",
                    if s.identity_file.is_some() {
                        &s.identity_file
                    } else {
                        &defaults.identity_file
                    },
                )?,
                known_hosts: r.opt(
                    "ssh.known_hosts",
                    if s.known_hosts.is_some() {
                        &s.known_hosts
                    } else {
                        &defaults.known_hosts
                    },
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
                    .map(|d| d.value.resolve(&ctx["params"])),
                host,
            })
        }
        ActionRef::Http(a) => {
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
            let query = r.pairs("http.query", &a.query)?;
            if !query.is_empty() {
                let q: Vec<String> = query
                    .iter()
                    .map(|(k, v)| format!("{}={}", encode_query(k), encode_query(v)))
                    .collect();
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(&q.join("&"));
            }
            let body = if let Some(j) = &a.json {
                Some(HttpBody::Json(r.value("http.json", j)?))
            } else if let Some(b) = &a.body {
                Some(HttpBody::Text(r.text("http.body", b)?))
            } else if !a.form.is_empty() {
                Some(HttpBody::Form(r.pairs("http.form", &a.form)?))
            } else {
                None
            };
            let tls = match tls_source {
                Some(t) => Tls {
                    ca_file: r.opt("http.tls.ca_file", &t.ca_file)?,
                    client_cert: r.opt("http.tls.client_cert", &t.client_cert)?,
                    client_key: r.opt("http.tls.client_key", &t.client_key)?,
                    insecure: t.insecure.as_ref().is_some_and(|i| i.value),
                },
                None => Tls::default(),
            };
            let expect = a.expect.as_ref();
            let address = url_host(&url)
                .and_then(|h| plan.hosts.get(h))
                .and_then(|h| h.address.as_ref())
                .map(|a| a.value.clone());
            Action::Http(HttpRequest {
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
        ActionRef::Sql(a) => {
            let connection = a
                .connection
                .as_ref()
                .or(plan
                    .defaults
                    .sql
                    .as_ref()
                    .and_then(|s| s.connection.as_ref()))
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
            let statements = a
                .all_statements()
                .iter()
                .map(|s| {
                    Ok(SqlStatement {
                        text: r.text("sql.query", &s.query)?,
                        args: s
                            .args
                            .iter()
                            .map(|a| r.value("sql.args", a))
                            .collect::<Result<_, _>>()?,
                    })
                })
                .collect::<Result<_, RenderError>>()?;
            Action::Sql(SqlCall {
                connection,
                url,
                statements,
                transaction: a.transaction.as_ref().is_some_and(|t| t.value),
                expect_rows_affected: a.expect.as_ref().map(|e| e.rows_affected.value.clone()),
                lock_timeout: a
                    .lock_timeout
                    .as_ref()
                    .or(plan
                        .defaults
                        .sql
                        .as_ref()
                        .and_then(|s| s.lock_timeout.as_ref()))
                    .map(|d| d.value.resolve(&ctx["params"])),
                statement_timeout: node.settings.timeout,
            })
        }
        ActionRef::Shell(a) => Action::Shell(ShellCommand {
            command: a
                .run
                .as_ref()
                .map(|t| r.shell("shell.run", t))
                .transpose()?,
            script: a
                .script
                .as_ref()
                .map(|t| r.shell("shell.script", t))
                .transpose()?,
            env: r.pairs("shell.env", &a.env)?,
            cwd: r.opt("shell.cwd", &a.cwd)?,
        }),
        ActionRef::Sleep(d) => Action::Sleep {
            duration: d.value.resolve(&ctx["params"]),
        },
        ActionRef::Confirm(t) => Action::Confirm {
            prompt: r.text("confirm", t)?,
        },
        ActionRef::Group(_) => {
            return Err(RenderError {
                field: "steps",
                message: "a group has no action of its own".into(),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn url_host_finds_the_name_between_scheme_and_port_or_path() {
        assert_eq!(
            url_host("http://us-east-op-1:8080/health"),
            Some("us-east-op-1")
        );
        assert_eq!(
            url_host("https://api.example.com/v1?x=1"),
            Some("api.example.com")
        );
        assert_eq!(url_host("http://user:pw@web-2/x"), Some("web-2"));
        assert_eq!(url_host("http://[::1]:8080/"), Some("[::1]"));
        assert_eq!(url_host("http://h#frag"), Some("h"));
        assert_eq!(url_host("not a url"), None);
        assert_eq!(url_host("http:///path"), None);
    }
}
