//! What a change does to a rollback: two versions of a plan compared as their dry runs
//! (compiled, rendered nodes for the same params and inventory), not as text. A reviewer
//! reads the risks first (concurrency up, a confirmation gone, a step that can no longer be
//! undone), then the changes, each node change said once for all the instances of a step
//! (`roll[*].restore (9 nodes): timeout 60s → 90s`).
//!
//! Pure: the two dry-run documents in (`dry_run::json_value`), a [`PlanDiff`] out, rendered as
//! text, Markdown (a pull-request comment) or JSON by the functions at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::Serialize;
use serde_json::{Map, Value};

/// The version of the JSON document's shape.
pub const DIFF_VERSION: u32 = 1;

/// One plan's changes.
#[derive(Debug, Serialize)]
pub struct PlanDiff {
    pub plan: String,
    /// What was compared, for people (`a1b2c3d` → `working tree`).
    pub base: String,
    pub head: String,
    /// `changed`, `unchanged`, `added` or `removed`.
    pub status: &'static str,
    /// What a reviewer must look at first.
    pub risks: Vec<String>,
    pub changes: Vec<Change>,
}

/// One change, said once for every node of a step that changed the same way.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Change {
    /// `plan`, a fan-out's path, or a node pattern (`roll[*].restore`).
    pub what: String,
    /// How many nodes it covers (0 for plan-wide changes).
    pub nodes: usize,
    /// `added`, `removed`, or the field that changed (`timeout`, `command`, `needs`, …).
    pub field: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A node's name with its instances' items replaced by `*`: `roll[us-east-op-2].restore` →
/// `roll[*].restore`, so that the nine instances of a step are one line.
pub fn pattern(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut depth = 0;
    for c in name.chars() {
        match c {
            '[' => {
                if depth == 0 {
                    out.push_str("[*");
                }
                depth += 1;
            }
            ']' => {
                depth -= 1;
                if depth == 0 {
                    out.push(']');
                }
            }
            _ if depth > 0 => {}
            _ => out.push(c),
        }
    }
    out
}

/// Every node of a dry-run document by `(phase, name)`.
fn nodes(doc: &Value) -> BTreeMap<(String, String), &Map<String, Value>> {
    let mut all = BTreeMap::new();
    for phase in doc["phases"].as_array().into_iter().flatten() {
        let kind = phase["phase"].as_str().unwrap_or_default().to_string();
        for layer in phase["layers"].as_array().into_iter().flatten() {
            for node in layer.as_array().into_iter().flatten() {
                if let (Some(name), Some(map)) = (node["name"].as_str(), node.as_object()) {
                    all.insert((kind.clone(), name.to_string()), map);
                }
            }
        }
    }
    all
}

/// Every fan-out by `(phase, path)`.
fn fan_outs(doc: &Value) -> BTreeMap<(String, String), &Map<String, Value>> {
    let mut all = BTreeMap::new();
    for phase in doc["phases"].as_array().into_iter().flatten() {
        let kind = phase["phase"].as_str().unwrap_or_default().to_string();
        for f in phase["fan_outs"].as_array().into_iter().flatten() {
            if let (Some(path), Some(map)) = (f["path"].as_str(), f.as_object()) {
                all.insert((kind.clone(), path.to_string()), map);
            }
        }
    }
    all
}

/// A value as people read it: strings bare, durations with their unit, lists joined.
fn shown(field: &str, v: &Value) -> String {
    match v {
        Value::Null if field == "concurrency" => "unlimited".into(),
        Value::Null => "none".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) if field.ends_with("secs") => seconds(n.as_f64().unwrap_or_default()),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            let words: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            if words.is_empty() {
                "nothing".into()
            } else {
                words.join(", ")
            }
        }
        other => other.to_string(),
    }
}

/// A length in seconds as people read it ([`crate::terminal::duration`]).
fn seconds(s: f64) -> String {
    crate::terminal::duration(std::time::Duration::from_secs_f64(s.max(0.0)))
}

/// A change as said: the field, its value before and after.
type Said = (String, Option<String>, Option<String>);

/// The fields of a node compared, with the name a reviewer reads. The rest of a node's
/// document (its name, label, layer) says where it is, not what it does.
const NODE_FIELDS: &[(&str, &str)] = &[
    ("kind", "kind"),
    ("target", "target"),
    ("body", "command"),
    ("notes", "notes"),
    ("needs", "runs after"),
    ("timeout_secs", "timeout"),
    ("attempts", "attempts"),
    ("retry_delay_secs", "retry delay"),
    ("backoff", "backoff"),
    ("gate", "gate"),
    ("when", "when"),
    ("on_failure", "on_failure"),
    ("resume", "resume"),
    ("irreversible", "irreversible"),
    ("undo", "undo"),
];

/// Compares two dry runs of one plan. `base` or `head` is `None` when the plan is not there
/// on that side.
pub fn compare(
    plan: &str,
    (base_name, base): (&str, Option<&Value>),
    (head_name, head): (&str, Option<&Value>),
) -> PlanDiff {
    let mut diff = PlanDiff {
        plan: plan.to_string(),
        base: base_name.to_string(),
        head: head_name.to_string(),
        status: "unchanged",
        risks: Vec::new(),
        changes: Vec::new(),
    };
    let (base, head) = match (base, head) {
        (Some(b), Some(h)) => (b, h),
        (None, Some(_)) => {
            diff.status = "added";
            diff.risks.push("a new plan".into());
            return diff;
        }
        (Some(_), None) => {
            diff.status = "removed";
            diff.risks.push("the plan is removed".into());
            return diff;
        }
        (None, None) => return diff,
    };
    plan_fields(base, head, &mut diff);
    fan_out_changes(base, head, &mut diff);
    node_changes(base, head, &mut diff);
    if !diff.changes.is_empty() || !diff.risks.is_empty() {
        diff.status = "changed";
    }
    diff
}

fn plan_fields(base: &Value, head: &Value, diff: &mut PlanDiff) {
    for field in ["confirm", "lock", "severity", "secrets", "params"] {
        let (b, h) = (&base[field], &head[field]);
        if b == h {
            continue;
        }
        match field {
            "confirm" if h.is_null() => diff.risks.push("confirmation removed".into()),
            "confirm" if b.is_null() => diff.risks.push("confirmation added".into()),
            "confirm" => diff.risks.push("confirmation phrase changed".into()),
            "lock" => diff.risks.push(format!(
                "lock `{}` → `{}`: runs of the old key no longer wait for this plan",
                shown(field, b),
                shown(field, h)
            )),
            _ => {}
        }
        diff.changes.push(Change {
            what: "plan".into(),
            nodes: 0,
            field: field.into(),
            from: Some(shown(field, b)),
            to: Some(shown(field, h)),
        });
    }
}

fn fan_out_changes(base: &Value, head: &Value, diff: &mut PlanDiff) {
    let (b, h) = (fan_outs(base), fan_outs(head));
    for (key, hf) in &h {
        let Some(bf) = b.get(key) else { continue };
        let hosts = hf["instances"].as_array().map_or(0, Vec::len);
        let at = format!("`{}` ({hosts} instances)", key.1);
        let concurrency = |f: &Map<String, Value>| f["concurrency"].as_u64();
        let (bc, hc) = (concurrency(bf), concurrency(hf));
        if bc != hc {
            let more = match (bc, hc) {
                (Some(b), Some(h)) => h > b,
                (Some(_), None) => true,
                _ => false,
            };
            let line = format!(
                "concurrency {} → {} on {at}",
                shown("concurrency", &bf["concurrency"]),
                shown("concurrency", &hf["concurrency"])
            );
            if more {
                diff.risks.push(line);
            }
            push_field(diff, &key.1, hosts, "concurrency", bf, hf);
        }
        if bf["max_failures"] != hf["max_failures"] {
            let (b, h) = (
                bf["max_failures"].as_u64().unwrap_or(0),
                hf["max_failures"].as_u64().unwrap_or(0),
            );
            if h > b {
                diff.risks.push(format!(
                    "max_failures {b} → {h} on {at}: more failed hosts are tolerated"
                ));
            }
            push_field(diff, &key.1, hosts, "max_failures", bf, hf);
        }
        if bf["continue_on_failure"] != hf["continue_on_failure"] {
            if hf["continue_on_failure"] == Value::Bool(true) {
                diff.risks.push(format!(
                    "failures on {at} no longer stop the run (on_failure: continue)"
                ));
            }
            push_field(diff, &key.1, hosts, "continue_on_failure", bf, hf);
        }
    }
}

fn push_field(
    diff: &mut PlanDiff,
    what: &str,
    nodes: usize,
    field: &str,
    b: &Map<String, Value>,
    h: &Map<String, Value>,
) {
    diff.changes.push(Change {
        what: format!("{what} ({nodes} instances)"),
        nodes: 0,
        field: field.to_string(),
        from: Some(shown(field, &b[field])),
        to: Some(shown(field, &h[field])),
    });
}

fn node_changes(base: &Value, head: &Value, diff: &mut PlanDiff) {
    let (b, h) = (nodes(base), nodes(head));
    // (phase, pattern, what changed) → how many nodes.
    let mut counted: BTreeMap<(String, String, Said), usize> = BTreeMap::new();
    let mut count =
        |phase: &str, name: &str, field: &str, from: Option<String>, to: Option<String>| {
            *counted
                .entry((
                    phase.to_string(),
                    pattern(name),
                    (field.to_string(), from, to),
                ))
                .or_default() += 1;
        };
    let names: BTreeSet<&(String, String)> = b.keys().chain(h.keys()).collect();
    let common = b.keys().filter(|k| h.contains_key(*k)).count();
    for key in names {
        let (phase, name) = key;
        match (b.get(key), h.get(key)) {
            (None, Some(n)) => count(phase, name, "added", None, Some(summary(n))),
            (Some(n), None) => count(phase, name, "removed", Some(summary(n)), None),
            (Some(bn), Some(hn)) => {
                for (field, said) in NODE_FIELDS {
                    let (bv, hv) = (
                        bn.get(*field).unwrap_or(&Value::Null),
                        hn.get(*field).unwrap_or(&Value::Null),
                    );
                    if bv != hv {
                        count(
                            phase,
                            name,
                            said,
                            Some(shown(field, bv)),
                            Some(shown(field, hv)),
                        );
                    }
                }
            }
            (None, None) => {}
        }
    }
    // A change every node shares (a plan-wide default) is one line, not one per step.
    let mut shared: BTreeMap<Said, usize> = BTreeMap::new();
    for ((_, _, said), n) in &counted {
        if !matches!(said.0.as_str(), "added" | "removed") {
            *shared.entry(said.clone()).or_default() += n;
        }
    }
    let everywhere: BTreeSet<Said> = shared
        .into_iter()
        .filter(|(_, n)| common > 1 && *n == common)
        .map(|(k, _)| k)
        .collect();
    for (field, from, to) in &everywhere {
        diff.changes.push(Change {
            what: "every node".into(),
            nodes: common,
            field: field.clone(),
            from: from.clone(),
            to: to.clone(),
        });
    }
    // The same change on several steps is one line that names them all.
    let mut alike: BTreeMap<Said, (Vec<String>, usize)> = BTreeMap::new();
    for ((phase, what, key), n) in &counted {
        if everywhere.contains(key) || matches!(key.0.as_str(), "added" | "removed") {
            continue;
        }
        let what = if phase == "steps" {
            what.clone()
        } else {
            format!("{what} ({phase})")
        };
        let entry = alike.entry(key.clone()).or_default();
        entry.0.push(what);
        entry.1 += n;
    }
    for ((field, from, to), (whats, n)) in &alike {
        if whats.len() > 1 {
            diff.changes.push(Change {
                what: fold(whats),
                nodes: *n,
                field: field.clone(),
                from: from.clone(),
                to: to.clone(),
            });
        }
    }
    for ((phase, what, key), n) in counted {
        if everywhere.contains(&key) {
            continue;
        }
        let folded = alike.get(&key).is_some_and(|(w, _)| w.len() > 1);
        let (field, from, to) = key;
        let at = if phase == "steps" {
            format!("`{what}`")
        } else {
            format!("`{what}` ({phase})")
        };
        let many = if n > 1 {
            format!(" ({n} nodes)")
        } else {
            String::new()
        };
        let risk = match (field.as_str(), to.as_deref()) {
            ("added", Some(to)) if to.ends_with(IRREVERSIBLE) => {
                Some(format!("new irreversible step {at}{many}"))
            }
            ("added", _) => Some(format!("new step {at}{many}")),
            ("removed", _) => Some(format!("step {at} removed{many}")),
            ("irreversible", Some("true")) => Some(format!("{at}{many} is now irreversible")),
            ("undo", Some("none")) => Some(format!("{at}{many} can no longer be undone")),
            ("on_failure", Some("continue")) => {
                Some(format!("failures of {at}{many} no longer stop the run"))
            }
            ("command", _) => Some(format!("command changed on {at}{many}")),
            _ => None,
        };
        diff.risks.extend(risk);
        if folded {
            continue;
        }
        let what = if phase == "steps" {
            what
        } else {
            format!("{what} ({phase})")
        };
        diff.changes.push(Change {
            what,
            nodes: n,
            field,
            from,
            to,
        });
    }
}

/// Several node patterns as one: those under one parent share it
/// (`roll[*].{start, stop}`), in their order.
fn fold(whats: &[String]) -> String {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for w in whats {
        let (parent, leaf) = match w.rsplit_once('.') {
            Some((p, l)) if !l.contains(' ') => (p.to_string(), l.to_string()),
            _ => (String::new(), w.clone()),
        };
        match groups
            .iter_mut()
            .find(|(p, _)| *p == parent && !p.is_empty())
        {
            Some((_, leaves)) => leaves.push(leaf),
            None => groups.push((parent, vec![leaf])),
        }
    }
    groups
        .into_iter()
        .map(|(parent, leaves)| match (parent.is_empty(), leaves.len()) {
            (true, _) => leaves.join(", "),
            (false, 1) => format!("{parent}.{}", leaves[0]),
            (false, _) => format!("{parent}.{{{}}}", leaves.join(", ")),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How an added node's line ends when the step cannot be undone.
const IRREVERSIBLE: &str = " (irreversible)";

/// One line for an added or removed node: its kind and first line of body, and whether it
/// is irreversible.
fn summary(n: &Map<String, Value>) -> String {
    let line = summary_line(n);
    if n.get("irreversible") == Some(&Value::Bool(true)) {
        format!("{line}{IRREVERSIBLE}")
    } else {
        line
    }
}

fn summary_line(n: &Map<String, Value>) -> String {
    let kind = n.get("kind").and_then(Value::as_str).unwrap_or("step");
    let first = n
        .get("body")
        .and_then(Value::as_array)
        .and_then(|b| b.first())
        .and_then(Value::as_str)
        .unwrap_or_default();
    if first.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {first}")
    }
}

/// Longest a value is shown in a change line; the rest is in the JSON.
const SHOWN: usize = 120;

fn clip(s: &str) -> String {
    let one_line = s.replace('\n', " ⏎ ");
    if one_line.chars().count() <= SHOWN {
        one_line
    } else {
        let cut: String = one_line.chars().take(SHOWN).collect();
        format!("{cut}…")
    }
}

fn change_line(c: &Change) -> String {
    let nodes = if c.nodes > 1 {
        format!(" ({} nodes)", c.nodes)
    } else {
        String::new()
    };
    match (c.field.as_str(), &c.from, &c.to) {
        ("added", _, Some(to)) => format!("+ {}{nodes}: {}", c.what, clip(to)),
        ("removed", Some(from), _) => format!("- {}{nodes}: {}", c.what, clip(from)),
        (field, from, to) => format!(
            "~ {}{nodes}: {field} {} → {}",
            c.what,
            clip(from.as_deref().unwrap_or("none")),
            clip(to.as_deref().unwrap_or("none"))
        ),
    }
}

/// The diff for a terminal or a log.
pub fn text(diffs: &[PlanDiff]) -> String {
    let mut out = String::new();
    for d in diffs {
        let _ = writeln!(out, "{} ({} → {}): {}", d.plan, d.base, d.head, d.status);
        for r in &d.risks {
            let _ = writeln!(out, "  ! {}", r.replace('`', ""));
        }
        for c in &d.changes {
            let _ = writeln!(out, "  {}", change_line(c));
        }
    }
    out
}

/// The diff as a pull-request comment: the risks first, then the changes in a table.
pub fn markdown(diffs: &[PlanDiff]) -> String {
    let mut out = String::from("## rollbook diff\n\n");
    let changed: Vec<&PlanDiff> = diffs.iter().filter(|d| d.status != "unchanged").collect();
    if changed.is_empty() {
        out.push_str("No plan's rollback changes.\n");
        return out;
    }
    for d in changed {
        let _ = writeln!(
            out,
            "### `{}` ({})\n\n{} → {}\n",
            d.plan, d.status, d.base, d.head
        );
        if !d.risks.is_empty() {
            out.push_str("**Look at first**\n\n");
            for r in &d.risks {
                let _ = writeln!(out, "- {}", md_text(r));
            }
            out.push('\n');
        }
        if !d.changes.is_empty() {
            out.push_str("| what | nodes | change |\n| --- | --- | --- |\n");
            for c in &d.changes {
                let change = match (c.field.as_str(), &c.from, &c.to) {
                    ("added", _, Some(to)) => format!("added: {}", md_code(&clip(to))),
                    ("removed", Some(from), _) => format!("removed: {}", md_code(&clip(from))),
                    (field, from, to) => format!(
                        "{field}: {} → {}",
                        md_code(&clip(from.as_deref().unwrap_or("none"))),
                        md_code(&clip(to.as_deref().unwrap_or("none")))
                    ),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} |",
                    md_code(&c.what),
                    if c.nodes == 0 {
                        "-".into()
                    } else {
                        c.nodes.to_string()
                    },
                    change
                );
            }
            out.push('\n');
        }
    }
    out
}

/// Text from plans inside Markdown: no HTML, no table breaks. Backticks already in the text
/// (risk lines name steps in them) are kept.
fn md_text(s: &str) -> String {
    s.replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
}

/// A value as inline code, whatever backticks it holds.
fn md_code(s: &str) -> String {
    let s = s
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// The diff as JSON, in the envelope every JSON output of rollbook shares.
pub fn json(diffs: &[PlanDiff]) -> String {
    #[derive(Serialize)]
    struct Doc<'a> {
        version: u32,
        plans: &'a [PlanDiff],
    }
    serde_json::to_string_pretty(&Doc {
        version: DIFF_VERSION,
        plans: diffs,
    })
    .unwrap_or_default()
        + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, timeout: f64, body: &str) -> Value {
        json!({"name": name, "step": name, "kind": "ssh", "target": "h", "body": [body],
               "needs": [], "timeout_secs": timeout, "attempts": 1, "on_failure": "abort"})
    }

    fn doc(concurrency: u64, timeout: f64, hosts: &[&str]) -> Value {
        let layer: Vec<Value> = hosts
            .iter()
            .map(|h| node(&format!("roll[{h}].restore"), timeout, "cp a b"))
            .collect();
        json!({"confirm": "ROLLBACK", "lock": "platform", "phases": [{"phase": "steps",
            "fan_outs": [{"path": "roll", "instances": hosts, "concurrency": concurrency,
                          "max_failures": 0, "continue_on_failure": false}],
            "layers": [layer]}]})
    }

    #[test]
    fn the_instances_of_a_step_are_one_pattern() {
        assert_eq!(pattern("roll[us-east-op-2].restore"), "roll[*].restore");
        assert_eq!(pattern("a[x[1]].b[y]"), "a[*].b[*]");
        assert_eq!(pattern("plain"), "plain");
    }

    #[test]
    fn a_timeout_and_a_concurrency_change_are_two_lines_and_one_risk() {
        let hosts = ["op-1", "op-2", "op-3"];
        let d = compare(
            "operator-rollback",
            ("base", Some(&doc(1, 60.0, &hosts))),
            ("head", Some(&doc(3, 90.0, &hosts))),
        );
        assert_eq!(d.status, "changed");
        assert_eq!(d.risks, ["concurrency 1 → 3 on `roll` (3 instances)"]);
        let lines: Vec<String> = d.changes.iter().map(change_line).collect();
        assert_eq!(
            lines,
            [
                "~ roll (3 instances): concurrency 1 → 3",
                "~ every node (3 nodes): timeout 60s → 90s"
            ]
        );
    }

    #[test]
    fn a_removed_confirmation_is_a_risk() {
        let mut head = doc(1, 60.0, &["a"]);
        head["confirm"] = Value::Null;
        let d = compare("p", ("b", Some(&doc(1, 60.0, &["a"]))), ("h", Some(&head)));
        assert!(
            d.risks.contains(&"confirmation removed".to_string()),
            "{:?}",
            d.risks
        );
    }

    #[test]
    fn the_same_plan_is_unchanged() {
        let d = compare(
            "p",
            ("b", Some(&doc(1, 60.0, &["a"]))),
            ("h", Some(&doc(1, 60.0, &["a"]))),
        );
        assert_eq!(d.status, "unchanged");
        assert!(d.changes.is_empty() && d.risks.is_empty());
    }

    #[test]
    fn code_in_markdown_survives_backticks_and_pipes() {
        assert_eq!(md_code("a`b|c"), "``a`b\\|c``");
        assert_eq!(md_code("`x`"), "`` `x` ``");
    }
}
