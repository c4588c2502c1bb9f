//! The report's findings (targets, checks, failures, the chart) and its closing sections.

use std::fmt::Write;

use rollbook_exec::history::NodeState;
use rollbook_plan::compile::PhaseKind;

use super::inline::*;
use super::{BLANK, check_tally};
use crate::report::facts::{LOCAL, NodeFacts, Report};
use crate::report::gantt;

pub(super) fn targets(out: &mut String, r: &Report) {
    let _ = writeln!(out, "## What was rolled back where\n");
    if r.targets.is_empty() {
        let _ = writeln!(out, "No node ran.\n");
        return;
    }
    let failed_on: Vec<String> = r
        .targets
        .iter()
        .filter(|t| t.nodes.iter().any(|n| n.status != NodeState::Succeeded))
        .map(|t| format!("**{}**", text(&t.target)))
        .collect();
    let remote = r.targets.iter().filter(|t| t.target != LOCAL).count();
    match remote {
        0 => out.push_str("The run acted only on the machine it ran on."),
        1 => out.push_str("The run acted on 1 target besides the machine it ran on."),
        n => {
            let _ = write!(
                out,
                "The run acted on {n} targets besides the machine it ran on."
            );
        }
    }
    if failed_on.is_empty() {
        out.push_str(" Every node that ran succeeded.\n");
    } else {
        let _ = writeln!(
            out,
            " Not everything succeeded on {}.",
            and_list(&failed_on)
        );
    }
    let _ = writeln!(
        out,
        "Nodes that never started are not listed; `local` holds local commands, waits and \
         questions.\n"
    );
    let _ = writeln!(out, "| Target | Node | Action | Status |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for t in &r.targets {
        for (i, n) in t.nodes.iter().enumerate() {
            let target = if i == 0 {
                format!("**{}**", text(&t.target))
            } else {
                String::new()
            };
            let action = match (n.kind, &n.target) {
                (Some(kind), Some(at)) => format!("{kind} {}", code(at)),
                (None, Some(at)) => code(at),
                (Some(kind), None) => kind.to_string(),
                (None, None) => "-".into(),
            };
            let status = match n.status.as_str() {
                "failed" if n.tolerated => "**failed** (tolerated)".to_string(),
                "failed" | "unknown" => format!("**{}**", n.status),
                other => other.to_string(),
            };
            let _ = writeln!(
                out,
                "| {target} | {} | {action} | {status} |",
                code(&n.node)
            );
        }
    }
    out.push('\n');
}

pub(super) fn checks(out: &mut String, r: &Report) {
    let _ = writeln!(out, "## Verification results\n");
    let _ = writeln!(
        out,
        "_A check is a step with an `until` gate or an `expect`, or whose id (or the id of a \
         group around it) starts with `verify` or `check` or contains `health`._\n"
    );
    if r.checks.is_empty() {
        let _ = writeln!(out, "No step of this run is a check.\n");
        return;
    }
    let passed = r
        .checks
        .iter()
        .filter(|c| c.status == NodeState::Succeeded)
        .count();
    let total = r.checks.len();
    if passed == total && total == 1 {
        let _ = writeln!(out, "**The one check passed.**\n");
    } else if passed == total {
        let _ = writeln!(out, "**All {total} checks passed.**\n");
    } else {
        let _ = writeln!(out, "**Checks: {}.**\n", check_tally(r));
    }
    let _ = writeln!(
        out,
        "| Check | Phase | Why a check | Result | Attempts | Took | Message |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |");
    for c in &r.checks {
        let why = match c.why {
            "marked" => "`check: true`",
            "until" => "`until` gate",
            "expect" => "`expect`",
            _ => "its id",
        };
        let result = match c.status.as_str() {
            "succeeded" => "passed".to_string(),
            "failed" if c.tolerated => "**failed** (tolerated)".to_string(),
            "failed" => "**failed**".to_string(),
            "cancelled" if c.attempts == 0 => "not run (cancelled)".to_string(),
            "not_reached" => "**never reached**".to_string(),
            other => format!("**{other}**"),
        };
        let took = c
            .duration_ms
            .filter(|_| c.attempts > 0)
            .map_or("-".into(), took);
        let message = c.message.as_deref().map_or(String::new(), text);
        let _ = writeln!(
            out,
            "| {} | {} | {why} | {result} | {} | {took} | {message} |",
            code(&c.node),
            c.phase,
            c.attempts
        );
    }
    out.push('\n');
}

pub(super) fn failures(out: &mut String, r: &Report) {
    let _ = writeln!(out, "## Failures\n");
    if r.failures.is_empty() {
        let _ = writeln!(out, "No node failed.\n");
    }
    let day = day_of(&r.run.started_at);
    for f in &r.failures {
        let what = match f.status.as_str() {
            "unknown" => "outcome unknown: in flight when the run stopped",
            _ if f.tolerated => "failed, tolerated: the run went on",
            _ => "failed",
        };
        let _ = writeln!(out, "### {} ({what})\n", code(&f.node));
        let mut facts = vec![format!("- **Phase**: `{}`", f.phase)];
        if let Some(at) = &f.finished_at {
            facts.push(format!("- **Failed at**: {}", clock(at, &day)));
        }
        facts.push(format!("- **Attempts**: {}", f.attempts));
        if let Some(target) = &f.target {
            facts.push(format!("- **Where**: {}", code(target)));
        }
        if let Some(code) = f.exit_code {
            facts.push(format!("- **Exit code**: {code}"));
        }
        if let Some(m) = &f.message {
            facts.push(format!("- **Message**: {}", text(m)));
        }
        let _ = writeln!(out, "{}\n", facts.join("\n"));
        match &f.log {
            Some(log) if !f.log_tail.is_empty() => {
                let _ = writeln!(out, "Last lines of `{log}`:\n");
                let body = f.log_tail.join("\n");
                let fence = fence_for(&body);
                let _ = writeln!(out, "{fence}text\n{body}\n{fence}\n");
            }
            _ => {
                let _ = writeln!(out, "It wrote no output.\n");
            }
        }
    }
    let not_run: Vec<&NodeFacts> = r
        .nodes
        .iter()
        .filter(|n| n.status == NodeState::Cancelled || n.status == NodeState::Skipped)
        .collect();
    if !not_run.is_empty() || !r.not_reached.is_empty() {
        let _ = writeln!(out, "### Not run\n");
        for n in not_run {
            let message = n
                .message
                .as_deref()
                .map_or(String::new(), |m| format!(" ({})", text(m)));
            let _ = writeln!(
                out,
                "- {} in `{}`: {}{message}",
                code(&n.node),
                n.phase,
                n.status
            );
        }
        for n in &r.not_reached {
            let _ = writeln!(
                out,
                "- {} in `{}`: never reached (the run stopped before it)",
                code(&n.node),
                n.phase
            );
        }
        out.push('\n');
    }
}

pub(super) fn chart(out: &mut String, r: &Report) {
    let _ = writeln!(out, "## Gantt\n");
    let _ = writeln!(out, "```mermaid\n{}```\n", gantt::chart(r));
    let not_drawn = r
        .nodes
        .iter()
        .filter(|n| !n.ran() && n.expanded_into.is_none())
        .count()
        + r.not_reached.len();
    if not_drawn > 0 {
        let _ = writeln!(
            out,
            "{not_drawn} {} that never started {} not drawn.\n",
            if not_drawn == 1 { "node" } else { "nodes" },
            if not_drawn == 1 { "is" } else { "are" }
        );
    }
}

pub(super) fn blanks(out: &mut String, r: &Report) {
    let run = &r.run;
    let _ = writeln!(out, "## Root Cause\n\n{BLANK}: what caused the failure.\n");
    let _ = writeln!(out, "## Impact\n");
    let _ = writeln!(out, "- **Customer Impact**: _(None / Minor / Major)_");
    let _ = writeln!(out, "- **Affected Customers**: {BLANK}");
    let _ = writeln!(out, "- **Data Loss**: {BLANK}");
    let _ = writeln!(out, "- **SLA Impact**: {BLANK}\n");
    resolution(out, r);
    let _ = writeln!(out, "## Lessons Learned\n");
    let _ = writeln!(out, "1. **What went well**: {BLANK}");
    let _ = writeln!(out, "2. **What could be improved**: {BLANK}");
    let _ = writeln!(out, "3. **Action items**: {BLANK}\n");
    let _ = writeln!(out, "## Follow-up Actions\n");
    let _ = writeln!(out, "- [ ] Fix the root cause");
    let _ = writeln!(
        out,
        "- [ ] Update rollback procedures (the plan: `{}`)",
        run.plan_path
    );
    let _ = writeln!(out, "- [ ] Improve monitoring");
    let _ = writeln!(out, "- [ ] Update documentation");
    let _ = writeln!(out, "- [ ] Schedule retry\n");
    let _ = writeln!(out, "**Report By**: {}\n", text(&run.user));
    let _ = writeln!(out, "**Reviewed By**: {BLANK}");
}

/// The template's "steps taken", from the plan's top-level steps as they ran.
fn resolution(out: &mut String, r: &Report) {
    let run = &r.run;
    let _ = writeln!(out, "## Resolution\n");
    let _ = writeln!(
        out,
        "The rollback plan `{}` ran with `rollbook` and ended **{}** after {}. Its steps, in \
         the order the journal has them:\n",
        run.plan,
        run.status,
        run.duration_ms.map_or("an unknown time".into(), took)
    );
    for (i, s) in r.steps.iter().enumerate() {
        // A name written as a template (`Roll back {{ item }}`) names instances, not the step.
        let name = s
            .name
            .as_deref()
            .filter(|n| !n.contains("{{"))
            .map_or(String::new(), |n| format!(" ({})", text(n)));
        let phase = if s.phase == PhaseKind::Main {
            String::new()
        } else {
            format!(" in `{}`", s.phase)
        };
        let mut parts: Vec<String> = Vec::new();
        for status in super::COUNTED {
            let Some(count) = s.statuses.get(status.as_str()) else {
                continue;
            };
            let mut part = if s.nodes == 1 {
                status.to_string()
            } else if *count == s.nodes {
                format!("all {status}")
            } else {
                format!("{count} {status}")
            };
            if status == NodeState::Failed && s.tolerated == *count {
                part.push_str(" (tolerated)");
            } else if status == NodeState::Failed && s.tolerated > 0 {
                let _ = write!(part, " ({} tolerated)", s.tolerated);
            }
            parts.push(part);
        }
        let size = match (s.instances, s.nodes) {
            (Some(instances), nodes) if instances == nodes => format!("{instances} instances: "),
            (Some(instances), nodes) => format!("{instances} instances, {nodes} nodes: "),
            (None, 1) => String::new(),
            (None, nodes) => format!("{nodes} nodes: "),
        };
        let _ = writeln!(
            out,
            "{}. `{}`{name}{phase}: {size}{}",
            i + 1,
            s.step,
            parts.join(", ")
        );
    }
    if r.steps.is_empty() {
        let _ = writeln!(out, "No step ran.");
    }
    if !r.not_reached.is_empty() {
        let names: Vec<String> = r.not_reached.iter().map(|n| code(&n.node)).collect();
        let _ = writeln!(out, "\nNever reached: {}.", and_list(&names));
    }
    if run.status != "succeeded" {
        let _ = writeln!(
            out,
            "\nTo go on where it stopped: `rollbook resume {}` (what succeeded is not run again).",
            run.run_id
        );
    }
    out.push('\n');
}
