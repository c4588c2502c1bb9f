//! `rollbook list`: the plans of the plans directory, one line each.

use std::path::Path;

use rollbook_plan::Checked;

use crate::{Failure, ListFormat, diagnostics, exit, locate};

pub fn run(dir: &Path, format: ListFormat, style: diagnostics::Style) -> Result<(), Failure> {
    let files = locate::plan_files(&[dir.to_path_buf()]).map_err(Failure::invalid)?;
    let mut rows = Vec::new();
    for path in &files {
        let checked = super::validate::check_file(path)?;
        rows.push(ListRow::new(path, &checked));
    }
    let out = match format {
        ListFormat::Json => serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n",
        ListFormat::Text => text(&rows),
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
struct ListRow {
    name: String,
    severity: Option<&'static str>,
    steps: usize,
    description: String,
    path: String,
    valid: bool,
}

impl ListRow {
    fn new(path: &Path, checked: &Checked) -> Self {
        let plan = checked.plan.as_ref();
        let stem = || {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        ListRow {
            name: plan
                .map(|p| p.name.value.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(stem),
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

fn text(rows: &[ListRow]) -> String {
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
    }
    out
}
