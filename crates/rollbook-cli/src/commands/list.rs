//! `rollbook list`: the plans of the plans directory, one line each, and under each its
//! last successful run per environment (from the state directory).

use std::path::Path;

use rollbook_exec::Timestamp;
use rollbook_exec::journal::{self, RunSummary};
use rollbook_plan::Checked;

use crate::readiness::{self, LastSuccess};
use crate::terminal::escape as esc;
use crate::{Failure, ListFormat, diagnostics, exit, locate};

pub fn run(
    dir: &Path,
    state: &crate::state::State,
    format: ListFormat,
    style: diagnostics::Style,
) -> Result<(), Failure> {
    let files = locate::plan_files(&[dir.to_path_buf()]).map_err(Failure::invalid)?;
    // No state directory is no runs.
    let runs = state.store.list().map_err(Failure::from)?;
    let mut rows = Vec::new();
    for path in &files {
        let checked = super::validate::check_file(dir, path, &files)?;
        rows.push(ListRow::new(path, &checked, &runs));
    }
    let out = match format {
        ListFormat::Json => {
            let doc = serde_json::json!({ "version": 1, "plans": rows });
            serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
        }
        ListFormat::Text => text(&rows, Timestamp::now()),
    };
    crate::print(&out);
    let same = locate::same_names(&files);
    for (name, files) in &same {
        say!(
            "{}",
            style.error_line(&locate::same_name_error(name, files))
        );
    }
    if !same.is_empty() {
        return Err(Failure::AlreadyReported(exit::INVALID));
    }
    if rows.iter().any(|r| !r.valid) {
        say!(
            "{}",
            style.error_line("some plans are invalid: run `rollbook validate` for the details")
        );
        return Err(Failure::AlreadyReported(exit::INVALID));
    }
    Ok(())
}

#[derive(Debug, serde::Serialize)]
struct ListRow<'a> {
    name: String,
    severity: Option<&'static str>,
    steps: usize,
    description: String,
    path: String,
    valid: bool,
    /// Per environment, the last run that succeeded without `--limit`.
    last_success: Vec<Success<'a>>,
}

/// A plan's last success in one environment, as `list` shows it.
#[derive(Debug, serde::Serialize)]
struct Success<'a> {
    /// The environment: the inventory's stem, `-` without one, `?` when not recorded.
    inventory: String,
    inventory_path: Option<&'a str>,
    run_id: &'a str,
    finished_at: Option<Timestamp>,
    /// The plan's text changed since that run.
    plan_changed: bool,
    #[serde(skip)]
    run: &'a RunSummary,
}

impl<'a> Success<'a> {
    fn new(last: LastSuccess<'a>) -> Self {
        let run = last.run;
        Success {
            inventory: last.environment(),
            inventory_path: run.meta.inventory_path.as_deref(),
            run_id: &run.meta.run_id,
            finished_at: readiness::finished(run),
            plan_changed: last.plan_changed,
            run,
        }
    }
}

impl<'a> ListRow<'a> {
    fn new(path: &Path, checked: &Checked, runs: &'a [RunSummary]) -> Self {
        let plan = checked.plan.as_ref();
        let stem = || {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let name = plan
            .map(|p| p.name.value.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(stem);
        let hash = journal::hash_text(&checked.file.text);
        let last_success = readiness::last_successes(&name, &hash, runs)
            .into_iter()
            .map(Success::new)
            .collect();
        ListRow {
            name,
            severity: plan
                .and_then(|p| p.severity.as_ref())
                .map(|s| s.value.as_str()),
            steps: plan.map_or(0, count_steps),
            description: plan
                .and_then(|p| p.description.as_ref())
                .map(|d| d.value.clone())
                .unwrap_or_default(),
            path: path.display().to_string(),
            valid: checked.is_ok(),
            last_success,
        }
    }
}

/// Steps written in a plan, groups' steps included.
fn count_steps(plan: &rollbook_plan::Plan) -> usize {
    fn count(steps: &[rollbook_plan::model::Step]) -> usize {
        steps
            .iter()
            .map(|s| 1 + s.steps.as_deref().map_or(0, count))
            .sum()
    }
    count(&plan.steps) + count(&plan.on_failure) + count(&plan.finally)
}

fn text(rows: &[ListRow], now: Timestamp) -> String {
    let name_w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!(
        "{:name_w$}  {:8}  {:>5}  DESCRIPTION\n",
        "NAME", "SEVERITY", "STEPS"
    );
    for r in rows {
        let severity = if r.valid {
            r.severity.unwrap_or("-")
        } else {
            "INVALID"
        };
        out.push_str(&format!(
            "{:name_w$}  {:8}  {:>5}  {}\n",
            r.name, severity, r.steps, r.description
        ));
        for s in &r.last_success {
            let place = match s.inventory.as_str() {
                readiness::NO_INVENTORY => "no inventory".into(),
                readiness::UNKNOWN_INVENTORY => "unrecorded inventory".into(),
                e => esc(e),
            };
            let ago = readiness::age(s.run, now).map_or("?".into(), readiness::short_age);
            out.push_str(&format!(
                "  {place}: succeeded {} ({ago} ago, run {}){}\n",
                readiness::day(s.run),
                esc(s.run_id),
                if s.plan_changed {
                    ", plan changed since"
                } else {
                    ""
                }
            ));
        }
    }
    out
}
