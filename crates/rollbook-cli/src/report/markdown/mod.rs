//! The report as Markdown, in the order of the incident template: header, summary, timeline
//! (here), where the rollback acted, checks, failures, the Gantt chart, then the blanks people
//! fill in (`sections`). `inline` escapes text and formats times.

mod inline;
mod sections;

use std::fmt::Write;

use rollbook_plan::params::display_value;

use rollbook_exec::history::NodeState;

use super::facts::{LOCAL, Milestone, NodeFacts, Report};
use super::utc;
use crate::runs::{MOST_NAMED_TOLERATED, tolerated_name};
use inline::*;

/// What a blank says.
const BLANK: &str = "_(to fill in)_";

/// Targets named in the header's "Services Affected" before "and N more".
const MOST_NAMED_TARGETS: usize = 8;

/// The report with the default template ([`DEFAULT_TEMPLATE`]): today's sections in order.
pub fn render(r: &Report) -> String {
    render_with(DEFAULT_TEMPLATE, "the default template", r)
        .unwrap_or_else(|e| format!("the default report template does not render: {e}\n"))
}

/// The default template: each built-in section, in order. A team's template (`report
/// --template FILE`) reorders them, leaves some out, writes its own words around them, or
/// builds its own from the facts.
pub const DEFAULT_TEMPLATE: &str = include_str!("default.md.hbs");

/// Each built-in section as Markdown, by name (the names templates use under `sections.`).
pub fn sections(r: &Report) -> Vec<(&'static str, String)> {
    let one = |f: &dyn Fn(&mut String, &Report)| {
        let mut out = String::new();
        f(&mut out, r);
        out
    };
    vec![
        ("header", one(&header)),
        ("summary", one(&summary)),
        ("timeline", one(&timeline)),
        ("targets", one(&sections::targets)),
        ("checks", one(&sections::checks)),
        ("failures", one(&sections::failures)),
        ("chart", one(&sections::chart)),
        ("blanks", one(&sections::blanks)),
    ]
}

/// Renders a Handlebars `template` (named `name` in errors) with the report's facts as its
/// context (the `--format json` document) and `sections.NAME` holding each built-in
/// section. `{{ }}` escapes what would turn into HTML or break a table; `{{{ }}}` writes a
/// value as it is (the sections are Markdown already). A name the facts do not have is an
/// error, with the template's line, not an empty string.
pub fn render_with(template: &str, name: &str, r: &Report) -> Result<String, String> {
    let mut hb = handlebars::Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(text);
    hb.register_template_string(name, template)
        .map_err(|e| format!("{name}: {e}"))?;
    let mut context = serde_json::to_value(r).map_err(|e| e.to_string())?;
    let sections: serde_json::Map<String, serde_json::Value> = sections(r)
        .into_iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
        .collect();
    context["sections"] = serde_json::Value::Object(sections);
    hb.render(name, &context)
        .map_err(|e| format!("{name}: {e}"))
}

fn header(out: &mut String, r: &Report) {
    let run = &r.run;
    let _ = writeln!(out, "# Rollback Incident Report: {}\n", run.plan);
    let _ = writeln!(
        out,
        "> Filled in by `rollbook report` from the journal of run `{}`. The parts marked \
         {BLANK} are for people.\n",
        run.run_id
    );
    let date = utc(&run.started_at).map_or(run.started_at.clone(), |t| {
        format!("{} {} UTC", &t[..10], &t[11..16])
    });
    let _ = writeln!(out, "- **Date**: {date}");
    let _ = writeln!(out, "- **Duration**: {}", duration_line(r));
    if let Some(budget) = r.run.budget_s {
        let budget = crate::summary::human(std::time::Duration::from_secs_f64(budget));
        let kept = match r.run.budget_kept {
            Some(true) => "kept".to_string(),
            Some(false) => "**not kept**".to_string(),
            None => "the run has not finished".to_string(),
        };
        let _ = writeln!(out, "- **Budget**: {budget}: {kept}");
    }
    let severity = run.severity.map_or("not set in the plan".to_string(), |s| {
        let mut s = s.to_string();
        s[..1].make_ascii_uppercase();
        format!("{s} (the plan's severity)")
    });
    let _ = writeln!(out, "- **Severity**: {severity}");
    let remote: Vec<&str> = r
        .targets
        .iter()
        .map(|t| t.target.as_str())
        .filter(|t| *t != LOCAL)
        .collect();
    let acted = if remote.is_empty() {
        "the run acted only on the machine it ran on".to_string()
    } else {
        let mut named: Vec<String> = remote
            .iter()
            .take(MOST_NAMED_TARGETS)
            .map(|t| text(t))
            .collect();
        if remote.len() > MOST_NAMED_TARGETS {
            named.push(format!("and {} more", remote.len() - MOST_NAMED_TARGETS));
        }
        format!("the run acted on {}", named.join(", "))
    };
    let _ = writeln!(out, "- **Services Affected**: {BLANK}; {acted}");
    let _ = writeln!(
        out,
        "- **Rollback status**: **{}**{}\n",
        run.status,
        tolerated_note(r)
    );
}

/// ` (1 failure tolerated)`, after a run's status; empty when it tolerated none.
fn tolerated_note(r: &Report) -> String {
    match r.run.tolerated.len() {
        0 => String::new(),
        1 => " (1 failure tolerated)".into(),
        n => format!(" ({n} failures tolerated)"),
    }
}

/// The summary's line naming the failures the run went on after, if any.
fn tolerated_line(r: &Report) -> Option<String> {
    let tolerated = &r.run.tolerated;
    if tolerated.is_empty() {
        return None;
    }
    let mut names: Vec<String> = tolerated
        .iter()
        .take(MOST_NAMED_TOLERATED)
        .map(|t| code(&tolerated_name(t)))
        .collect();
    if tolerated.len() > MOST_NAMED_TOLERATED {
        names.push(format!("{} more", tolerated.len() - MOST_NAMED_TOLERATED));
    }
    let pronoun = if tolerated.len() == 1 { "it" } else { "them" };
    Some(format!(
        "- **Tolerated failures**: {}; the run went on after {pronoun} \
         (`on_failure: continue` or `max_failures`)",
        and_list(&names)
    ))
}

/// `1m12s`; for a resumed run, how long it was stopped; for an unfinished run, that it is a
/// lower bound.
fn duration_line(r: &Report) -> String {
    let Some(ms) = r.run.duration_ms else {
        return "unknown".into();
    };
    let mut line = took(ms);
    let stopped: u64 = r
        .resumes
        .iter()
        .filter_map(|res| {
            let from = res.stopped_at?;
            res.at.since(from).map(|d| d.as_millis() as u64)
        })
        .sum();
    if stopped > 0 {
        let _ = write!(line, ", of which {} stopped before a resume", took(stopped));
    }
    if r.run.finished_at.is_none() {
        line = format!("at least {line} (unfinished: the journal ends there)");
    }
    line
}

fn summary(out: &mut String, r: &Report) {
    let run = &r.run;
    let _ = writeln!(out, "## Summary\n");
    let description = run
        .description
        .as_deref()
        .map_or(String::new(), |d| format!(": {}", text(d)));
    let _ = writeln!(out, "- **Plan**: `{}`{description}", run.plan);
    let _ = writeln!(out, "- **Status**: **{}**; {}", run.status, counts(r));
    if let Some(line) = tolerated_line(r) {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "- **Started**: {}", when(&run.started_at));
    match &run.finished_at {
        Some(at) => {
            let _ = writeln!(out, "- **Finished**: {}", when(at));
        }
        None => {
            let last = run.last_event_at.map_or("-".into(), |at| when(&at));
            let _ = writeln!(
                out,
                "- **Finished**: not finished; the journal ends at {last} (a crash, or still running)"
            );
        }
    }
    let _ = writeln!(out, "- **Run by**: {}@{}", text(&run.user), text(&run.host));
    let _ = writeln!(out, "- **Reason**: {}", text(&run.reason));
    let _ = writeln!(out, "- **Run id**: `{}`", run.run_id);
    let params: Vec<String> = run
        .params
        .iter()
        .map(|(k, v)| code(&format!("{k}={}", display_value(v))))
        .collect();
    let params = if params.is_empty() {
        "none".to_string()
    } else {
        params.join(", ")
    };
    let _ = writeln!(out, "- **Params**: {params}");
    if !run.limit.is_empty() {
        let limit: Vec<String> = run.limit.iter().map(|p| format!("`{}`", text(p))).collect();
        let _ = writeln!(
            out,
            "- **Limited to**: {} (`--limit`: instances over other hosts did not run)",
            limit.join(", ")
        );
    }
    if r.resumes.is_empty() {
        let _ = writeln!(out, "- **Resumed**: no");
    } else {
        let times = match r.resumes.len() {
            1 => "once".to_string(),
            2 => "twice".to_string(),
            n => format!("{n} times"),
        };
        let _ = writeln!(out, "- **Resumed**: {times}");
        for res in &r.resumes {
            let stopped = res.stopped_at.map_or(String::new(), |s| {
                format!(", after it stopped at {}", when(&s))
            });
            let unknown = if res.unknown.is_empty() {
                String::new()
            } else {
                format!("; outcome unknown for {}", code_list(&res.unknown))
            };
            let _ = writeln!(out, "  - at {}{stopped}{unknown}", when(&res.at));
        }
    }
    if !r.controllers.is_empty() {
        let _ = writeln!(out, "- **Run by these rollbook processes**:");
        for c in &r.controllers {
            let token = c
                .controller
                .token
                .map_or(String::new(), |t| format!(", fencing token {t}"));
            let _ = writeln!(
                out,
                "  - from {}: {}@{} (pid {}), lock `{}`{token}, state {}",
                when(&c.at),
                text(&c.controller.user),
                text(&c.controller.host),
                c.controller.pid,
                text(&c.controller.lock),
                text(&c.controller.state)
            );
        }
    }
    let _ = writeln!(out, "- **rollbook**: {}", text(&run.rollbook_version));
    let _ = writeln!(
        out,
        "- **Plan file**: `{}`, SHA-256 `{}`\n",
        run.plan_path, run.plan_hash
    );
}

/// The node states the report counts, in the order it names them.
pub(super) const COUNTED: [NodeState; 5] = [
    NodeState::Succeeded,
    NodeState::Failed,
    NodeState::Unknown,
    NodeState::Cancelled,
    NodeState::Skipped,
];

/// `14 nodes: 11 succeeded, 2 failed (1 tolerated), 1 cancelled`.
fn counts(r: &Report) -> String {
    let nodes: Vec<&NodeFacts> = r
        .nodes
        .iter()
        .filter(|n| n.expanded_into.is_none())
        .collect();
    let mut parts = Vec::new();
    for status in COUNTED {
        let count = nodes.iter().filter(|n| n.status == status).count();
        if count == 0 {
            continue;
        }
        let tolerated = nodes
            .iter()
            .filter(|n| n.status == status && n.tolerated)
            .count();
        let mut part = format!("{count} {status}");
        if tolerated == count {
            part.push_str(" (tolerated)");
        } else if tolerated > 0 {
            let _ = write!(part, " ({tolerated} tolerated)");
        }
        parts.push(part);
    }
    if !r.not_reached.is_empty() {
        parts.push(format!("{} never reached", r.not_reached.len()));
    }
    let total = nodes.len() + r.not_reached.len();
    let noun = if total == 1 { "node" } else { "nodes" };
    let all = format!("{total} ");
    match parts.as_slice() {
        [] => format!("{total} {noun}"),
        [only] if total > 1 && only.starts_with(&all) => {
            format!("{total} {noun}, all {}", &only[all.len()..])
        }
        _ => format!("{total} {noun}: {}", parts.join(", ")),
    }
}

fn timeline(out: &mut String, r: &Report) {
    let run = &r.run;
    let day = day_of(&run.started_at);
    let _ = writeln!(out, "## Timeline\n");
    let _ = writeln!(out, "Times are UTC, on {day}.\n");
    let _ = writeln!(out, "- **HH:MM:SS** - Upgrade started: {BLANK}");
    let _ = writeln!(out, "- **HH:MM:SS** - Issue detected: {BLANK}");
    let _ = writeln!(out, "- **HH:MM:SS** - Rollback decision made: {BLANK}");
    let _ = writeln!(
        out,
        "- **{}** - Rollback initiated: {}@{} ran `{}` (reason: {})",
        clock(&run.started_at, &day),
        text(&run.user),
        text(&run.host),
        run.plan,
        text(&run.reason)
    );
    for res in &r.resumes {
        let stopped = res.stopped_at.map_or(String::new(), |at| {
            format!(", after it stopped at {}", clock(&at, &day))
        });
        let _ = writeln!(
            out,
            "- **{}** - Rollback resumed with `rollbook resume`{stopped}",
            clock(&res.at, &day)
        );
    }
    for m in r.milestones.iter().filter(|m| m.event == "cancelling") {
        let what = match (&m.reason, m.hard) {
            (Some(reason), _) => format!("The run was stopped: {}", text(reason)),
            (None, Some(true)) => "Ctrl-C again: the running steps were cancelled".into(),
            (None, _) => {
                "Ctrl-C: the run was asked to stop (nothing new starts, running steps finish)"
                    .into()
            }
        };
        let _ = writeln!(out, "- **{}** - {what}", clock(&m.at, &day));
    }
    match &run.finished_at {
        Some(at) => {
            let _ = writeln!(
                out,
                "- **{}** - Rollback finished: **{}**{}",
                clock(at, &day),
                run.status,
                tolerated_note(r)
            );
        }
        None => {
            let last = match &run.last_event_at {
                Some(at) => clock(at, &day),
                None => clock(&run.started_at, &day),
            };
            let _ = writeln!(
                out,
                "- **{last}** - Rollback stopped without an end (last journal entry)"
            );
        }
    }
    let _ = writeln!(out, "- **HH:MM:SS** - Services restored: {BLANK}");
    let _ = writeln!(out, "- {}\n", verified_line(r, &day));

    let _ = writeln!(out, "### Run timeline\n");
    let _ = writeln!(out, "| Time | What | Status | Took | Attempts |");
    let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
    let mut milestones = r.milestones.iter().peekable();
    for n in &r.nodes {
        while let Some(m) = milestones.next_if(|m| m.seq <= n.seq) {
            milestone_row(out, m, &day);
        }
        node_row(out, n, &day);
    }
    for m in milestones {
        milestone_row(out, m, &day);
    }
    out.push('\n');
}

/// The template's "Full functionality verified", as far as the run's own checks tell.
fn verified_line(r: &Report, day: &str) -> String {
    let passed = r
        .checks
        .iter()
        .filter(|c| c.status == NodeState::Succeeded)
        .count();
    let total = r.checks.len();
    let last = r.checks.iter().filter_map(|c| c.finished_at).max();
    match last {
        Some(at) if total == 1 && passed == 1 => format!(
            "**{}** - Full functionality verified: {BLANK}; the run's one check passed",
            clock(&at, day)
        ),
        Some(at) if total > 0 && passed == total => format!(
            "**{}** - Full functionality verified: {BLANK}; all {total} checks of the run passed",
            clock(&at, day)
        ),
        _ if total == 0 => {
            format!("**HH:MM:SS** - Full functionality verified: {BLANK}; the run has no checks")
        }
        _ => format!(
            "**HH:MM:SS** - Full functionality verified: {BLANK}; the run's checks: {}",
            check_tally(r)
        ),
    }
}

/// `1 passed, 1 failed, 2 not run`.
fn check_tally(r: &Report) -> String {
    let outcome = |status: &str| match status {
        "succeeded" => "passed",
        "failed" => "failed",
        "unknown" => "unknown",
        "skipped" => "skipped",
        _ => "not run",
    };
    let mut parts = Vec::new();
    for word in ["passed", "failed", "unknown", "skipped", "not run"] {
        let count = r
            .checks
            .iter()
            .filter(|c| outcome(c.status.as_str()) == word)
            .count();
        if count > 0 {
            parts.push(format!("{count} {word}"));
        }
    }
    parts.join(", ")
}

fn milestone_row(out: &mut String, m: &Milestone, day: &str) {
    let phase = m.phase.map(|p| p.as_str()).unwrap_or_default();
    let what = match m.event {
        "run_started" => "**run started**".to_string(),
        "run_resumed" => match m.unknown.as_deref() {
            Some(unknown) if !unknown.is_empty() => format!(
                "**run resumed**; outcome unknown for {}",
                code_list(unknown)
            ),
            _ => "**run resumed**".to_string(),
        },
        "phase_started" => {
            let nodes = m.nodes.unwrap_or(0);
            let noun = if nodes == 1 { "node" } else { "nodes" };
            format!("**`{phase}` started**, {nodes} {noun}")
        }
        "phase_finished" => format!("**`{phase}` finished**"),
        "cancelling" if m.reason.is_some() => {
            format!(
                "**stopped**: {}",
                text(m.reason.as_deref().unwrap_or_default())
            )
        }
        "cancelling" if m.hard == Some(true) => {
            "**Ctrl-C again**: cancelling the running steps".to_string()
        }
        "cancelling" => "**Ctrl-C**: nothing new starts, running steps finish".to_string(),
        "undoing" => {
            let scope = m.scope.as_deref().unwrap_or("run");
            let nodes = code_list(m.undone.as_deref().unwrap_or_default());
            if m.skipped == Some(true) {
                format!("**not undone** (`--no-undo`): {} of {nodes}", code(scope))
            } else {
                format!("**undoing** {}: {nodes}, in this order", code(scope))
            }
        }
        "run_finished" => "**run finished**".to_string(),
        other => other.to_string(),
    };
    let status = m.status.map_or(String::new(), |s| format!("**{s}**"));
    let duration = m.duration_ms.map_or(String::new(), took);
    let _ = writeln!(
        out,
        "| {} | {what} | {status} | {duration} | |",
        clock(&m.at, day)
    );
}

fn node_row(out: &mut String, n: &NodeFacts, day: &str) {
    let time = n.started_at.map_or(String::new(), |at| clock(&at, day));
    let (what, status) = match &n.expanded_into {
        Some(instances) => (
            format!(
                "{} expanded into {} instances",
                code(&n.node),
                instances.len()
            ),
            String::new(),
        ),
        None => (node_what(n), status_cell(n)),
    };
    let duration = if n.ran() {
        n.duration_ms.map_or("-".into(), took)
    } else {
        "-".into()
    };
    let _ = writeln!(
        out,
        "| {time} | {what} | {status} | {duration} | {} |",
        n.attempts
    );
}

/// The node, with what marks it: the step it undoes, the point of no return.
fn node_what(n: &NodeFacts) -> String {
    let mut what = code(&n.node);
    if let Some(of) = &n.undoes {
        let _ = write!(what, " (undoes {})", code(of));
    }
    if n.irreversible {
        what.push_str(" **irreversible**");
        if let Some(by) = &n.confirmed_by {
            let _ = write!(what, ", confirmed by {}", text(by));
        }
    }
    what
}

fn status_cell(n: &NodeFacts) -> String {
    match n.status.as_str() {
        "failed" if n.tolerated => "**failed** (tolerated)".into(),
        "failed" => "**failed**".into(),
        "unknown" => "**unknown** (in flight when the run stopped)".into(),
        "cancelled" if n.attempts == 0 => "cancelled (not started)".into(),
        // Who answered a `confirm`, why a step was skipped: worth keeping in the record.
        status @ ("succeeded" | "skipped") => match &n.message {
            Some(m) => format!("{status} ({})", text(m)),
            None => status.into(),
        },
        other => other.into(),
    }
}
