//! The [`Redactor`] of a run and of `plan --check`: every secret the plan declares, and the
//! user names the plan sends a secret with (`user:{{ secrets.NAME }}` in a URL, a header or
//! a command), so that the basic-auth encoding of the pair is masked whole.

use std::collections::BTreeSet;

use rollbook_exec::redact::Redactor;
use rollbook_plan::compile::{CompiledPlan, visit_templates};
use rollbook_plan::model::{ActionRef, Connection, Step};
use serde_json::{Map, Value};

/// Masks every secret's value in all its forms, and `user:value` for the users the plan
/// writes before it.
/// `also` are more values to hide: the shared store's passwords, during a run.
pub fn redactor(plan: &CompiledPlan, secrets: &Map<String, Value>, also: &[String]) -> Redactor {
    let mut builder = Redactor::builder();
    for value in also {
        builder = builder.secret(value);
    }
    for value in secrets.values().filter_map(Value::as_str) {
        builder = builder.secret(value);
    }
    for (user, name) in logins(plan) {
        if let Some(value) = secrets.get(&name).and_then(Value::as_str) {
            builder = builder.login(&user, value);
        }
    }
    builder.build()
}

/// Every `(user, secret name)` pair the plan's templates write as `user:{{ secrets.NAME }}`
/// (in a called plan's templates, its name for a secret becomes the run's).
fn logins(plan: &CompiledPlan) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    let mut calls: Vec<&rollbook_plan::compile::Called> = Vec::new();
    for phase in &plan.phases {
        for node in phase.graph.node_weights() {
            let params = node
                .call
                .as_ref()
                .and_then(|c| c.context["params"].as_object())
                .unwrap_or(&plan.params);
            let mut scan = |text: &str| found.extend(logins_in(text, params));
            visit_step(&node.step, &mut scan);
            if let Some(call) = &node.call
                && !calls.iter().any(|c| c.at == call.at)
            {
                calls.push(call);
            }
        }
    }
    scan_connections(&plan.connections, &plan.params, &mut found);
    for call in &calls {
        let mut inner = BTreeSet::new();
        let params = call.context["params"].as_object().unwrap_or(&plan.params);
        scan_connections(&call.connections, params, &mut inner);
        found.extend(inner);
    }
    // A called plan's names for secrets, as the run's.
    let renamed: BTreeSet<(String, String)> = found
        .iter()
        .flat_map(|(user, name)| {
            let mut names = vec![(user.clone(), name.clone())];
            for call in &calls {
                names.extend(
                    call.secrets
                        .iter()
                        .filter(|(called, _)| called == name)
                        .map(|(_, run)| (user.clone(), run.clone())),
                );
            }
            names
        })
        .collect();
    renamed
}

fn scan_connections(
    connections: &rollbook_plan::model::Entries<Connection>,
    params: &Map<String, Value>,
    found: &mut BTreeSet<(String, String)>,
) {
    let mut scan = |text: &str| found.extend(logins_in(text, params));
    for (_, connection) in connections.iter() {
        match connection {
            Connection::Sql(c) => scan(&c.url.value),
            Connection::Http(c) => {
                scan(&c.base_url.value);
                for (_, header) in c.headers.iter() {
                    scan(&header.value);
                }
            }
        }
    }
}

/// A step's templates, and those of the steps of a group it stands for.
fn visit_step(step: &Step, scan: &mut dyn FnMut(&str)) {
    visit_templates(step, &mut |t| scan(t));
    if let ActionRef::Group(inner) = step.action() {
        for s in inner {
            visit_step(s, scan);
        }
    }
}

/// The `user:{{ secrets.NAME }}` pairs of one template. The user is the word before the
/// colon, or the value of a `{{ params.NAME }}` written there.
fn logins_in(text: &str, params: &Map<String, Value>) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find("{{").map(|i| from + i) {
        from = open + 2;
        let Some(name) = secret_reference(&text[open..]) else {
            continue;
        };
        let Some(before) = text[..open].strip_suffix(':') else {
            continue;
        };
        if let Some(user) = user_before(before, params) {
            pairs.push((user, name));
        }
    }
    pairs
}

/// `NAME` when `text` starts with `{{ secrets.NAME }}` (or `{{{ … }}}`).
fn secret_reference(text: &str) -> Option<String> {
    let inner = text.trim_start_matches('{').trim_start();
    let rest = inner.strip_prefix("secrets.")?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(rest.len());
    let after = rest[end..].trim_start();
    (end > 0 && after.starts_with("}}")).then(|| rest[..end].to_string())
}

/// The user written at the end of `before`: `{{ params.NAME }}`'s value, or the last word.
fn user_before(before: &str, params: &Map<String, Value>) -> Option<String> {
    if let Some(body) = before.strip_suffix("}}") {
        let open = body.rfind("{{")?;
        let reference = body[open..].trim_start_matches('{').trim();
        let name = reference.strip_prefix("params.")?;
        return params.get(name).and_then(Value::as_str).map(str::to_string);
    }
    let delimiter = |c: char| c.is_whitespace() || "/@\"'=(,;`".contains(c);
    let start = before.rfind(delimiter).map_or(0, |i| i + 1);
    let user = &before[start..];
    (!user.is_empty()).then(|| user.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_written_before_a_secret_are_found() {
        let params: Map<String, Value> =
            serde_json::from_str(r#"{"user": "ops", "n": 3}"#).unwrap();
        let pairs = |t: &str| logins_in(t, &params);
        assert_eq!(
            pairs("http://deploy:{{ secrets.api_pw }}@127.0.0.1/x"),
            vec![("deploy".into(), "api_pw".into())]
        );
        assert_eq!(
            pairs("curl -u admin:{{{secrets.pw}}} https://h"),
            vec![("admin".into(), "pw".into())]
        );
        assert_eq!(
            pairs("{{ params.user }}:{{ secrets.pw }}"),
            vec![("ops".into(), "pw".into())]
        );
        assert!(pairs("{{ params.n }}:{{ secrets.pw }}").is_empty());
        assert!(pairs("token {{ secrets.pw }} and x: {{ secrets.pw }}").is_empty());
        assert!(pairs("a:{{ secrets.pw | json }}").is_empty());
    }
}
