//! What a step's templates and jq read: the step outputs it depends on.

use super::*;

/// Step ids whose outputs a step's templates and jq read.
pub fn step_reads(step: &Step) -> Vec<String> {
    let mut ids = Vec::new();
    let mut texts: Vec<&str> = Vec::new();
    visit_templates(step, &mut |t| texts.push(t));
    // A group's steps may read steps outside it: the group node carries those inputs too,
    // so that it can be expanded at run time.
    if let ActionRef::Group(inner) = step.action() {
        for s in inner {
            ids.extend(step_reads(s));
        }
    }
    for text in texts {
        ids.extend(template::step_ids(text));
    }
    for jq in [&step.when, &step.until]
        .into_iter()
        .flatten()
        .chain(step.capture.iter().map(|(_, j)| j))
        .map(|j| j.value.as_str())
        .chain(action_jq(step))
    {
        ids.extend(
            crate::jq::step_references(jq)
                .into_iter()
                .map(|(id, _, _)| id),
        );
    }
    ids.sort();
    ids.dedup();
    ids
}

fn action_jq(step: &Step) -> Option<&str> {
    step.http
        .as_ref()
        .and_then(|h| h.expect.as_ref())
        .and_then(|e| e.jq.as_ref())
        .map(|j| j.value.as_str())
}

/// Calls `f` with every template string of a step's own fields (not its group's steps),
/// its `undo`'s included (so the node carries what its undo reads: the undo is rendered with
/// the same values).
pub fn visit_templates<'s>(step: &'s Step, f: &mut dyn FnMut(&'s str)) {
    if let Some(ForEach::Template(t)) = &step.for_each {
        f(&t.value);
    }
    visit_action(step.action(), f);
    if let Some(u) = &step.undo {
        let actions = [
            u.ssh.as_ref().map(ActionRef::Ssh),
            u.http.as_ref().map(ActionRef::Http),
            u.sql.as_ref().map(ActionRef::Sql),
            u.shell.as_ref().map(ActionRef::Shell),
        ];
        for a in actions.into_iter().flatten() {
            visit_action(a, f);
        }
    }
}

fn visit_action<'s>(action: ActionRef<'s>, f: &mut dyn FnMut(&'s str)) {
    let opt = |t: &'s Option<Template>, f: &mut dyn FnMut(&'s str)| {
        if let Some(t) = t {
            f(&t.value);
        }
    };
    match action {
        ActionRef::Ssh(a) => {
            f(&a.host.value);
            opt(&a.run, f);
            opt(&a.script, f);
            opt(&a.settings.user, f);
            for (_, t) in a.settings.env.iter() {
                f(&t.value);
            }
            if let Some(u) = &a.upload {
                f(&u.from.value);
                f(&u.to.value);
            }
        }
        ActionRef::Http(a) => {
            opt(&a.url, f);
            opt(&a.path, f);
            opt(&a.body, f);
            for map in [&a.headers, &a.query, &a.form] {
                for (_, t) in map.iter() {
                    f(&t.value);
                }
            }
            if let Some(j) = &a.json {
                visit_node_strings(j, f);
            }
        }
        ActionRef::Sql(a) => {
            opt(&a.url, f);
            opt(&a.query, f);
            for s in a.statements.iter().flatten() {
                f(&s.query.value);
                for arg in &s.args {
                    visit_node_strings(arg, f);
                }
            }
            for arg in &a.args {
                visit_node_strings(arg, f);
            }
        }
        ActionRef::Shell(a) => {
            opt(&a.run, f);
            opt(&a.script, f);
            opt(&a.cwd, f);
            for (_, t) in a.env.iter() {
                f(&t.value);
            }
        }
        ActionRef::Confirm(t) => f(&t.value),
        ActionRef::Sleep(_) | ActionRef::Group(_) | ActionRef::Call(_) => {}
    }
}

fn visit_node_strings<'s>(node: &'s crate::yaml::Node, f: &mut dyn FnMut(&'s str)) {
    use crate::yaml::NodeKind;
    match &node.kind {
        NodeKind::Scalar { text, .. } => f(text),
        NodeKind::Seq(items) => items.iter().for_each(|n| visit_node_strings(n, f)),
        NodeKind::Map(entries) => entries.iter().for_each(|(_, v)| visit_node_strings(v, f)),
    }
}
