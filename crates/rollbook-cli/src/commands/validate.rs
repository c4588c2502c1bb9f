//! `rollbook validate [PATHS...]`: every problem of every plan, at once. `--deny-warnings`
//! fails on warnings too.

use std::path::{Path, PathBuf};

use rollbook_plan::Checked;

use crate::{Failure, diagnostics, exit, locate};

pub fn run(
    plans_dir: &Path,
    paths: Vec<PathBuf>,
    format: diagnostics::Format,
    deny_warnings: bool,
    style: diagnostics::Style,
) -> Result<(), Failure> {
    let paths = if paths.is_empty() {
        vec![plans_dir.to_path_buf()]
    } else {
        paths
    };
    let files = locate::plan_files(&paths).map_err(Failure::invalid)?;
    let checked = check_all(plans_dir, &paths, &files)?;
    let out = diagnostics::render_all(&checked, format, style);
    match format {
        diagnostics::Format::Text => say_part!("{out}"),
        _ => crate::print(&out),
    }
    // Two plans with one name: `run NAME` could not say which it means.
    let same = locate::same_names(&files);
    for (name, files) in &same {
        say!(
            "{}",
            style.error_line(&locate::same_name_error(name, files))
        );
    }
    if checked.iter().any(|c| !c.is_ok()) || !same.is_empty() {
        return Err(Failure::AlreadyReported(exit::INVALID));
    }
    let warnings: usize = checked.iter().map(|c| c.diagnostics.len()).sum();
    if deny_warnings && warnings > 0 {
        let s = if warnings == 1 { "" } else { "s" };
        return Err(Failure::invalid(format!(
            "{warnings} warning{s}, and --deny-warnings makes warnings errors"
        )));
    }
    Ok(())
}

/// Checks the plan files named by `paths`; no file at all is a usage error.
fn check_all(
    plans_dir: &Path,
    paths: &[PathBuf],
    files: &[PathBuf],
) -> Result<Vec<Checked>, Failure> {
    if files.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(Failure::invalid(format!(
            "no plan files (*.yaml, *.yml) in {}",
            names.join(", ")
        )));
    }
    files
        .iter()
        .map(|path| check_file(plans_dir, path, files))
        .collect()
}

/// Reads and checks one plan file, and its calls of other plans: found by name among `files`,
/// then in `plans_dir`.
pub fn check_file(plans_dir: &Path, path: &Path, files: &[PathBuf]) -> Result<Checked, Failure> {
    let source = super::read_source(path)?;
    let stem = path.file_stem().and_then(|s| s.to_str());
    let called = super::Called::find(plans_dir, &source, files)?;
    let mut checked = rollbook_plan::check_with(source, stem, &called.library);
    if let Some(warning) = over_budget(&checked, &called.library) {
        checked.diagnostics.push(warning);
    }
    Ok(checked)
}

/// `over-budget`: a plan whose `budget` its worst case cannot fit (or cannot be checked
/// against: a step without a timeout). Compiled with its params' defaults; a plan with a
/// required param is checked by `plan --summary`, which is given them.
fn over_budget(
    checked: &rollbook_plan::Checked,
    library: &rollbook_plan::calls::Library,
) -> Option<rollbook_plan::Diagnostic> {
    use rollbook_plan::compile::{self, ParamInput};
    if !checked.is_ok() {
        return None;
    }
    let plan = checked.plan.as_ref()?;
    let budget = plan.budget.as_ref()?;
    let params = compile::bind_params(plan, &ParamInput::default()).ok()?;
    let info = super::dry_run_info("(validate)".into());
    let compiled =
        compile::compile_with(plan, params, &Default::default(), &info, &[], library).ok()?;
    let bound = rollbook_plan::timing::bound(&compiled, crate::DEFAULT_PARALLELISM);
    let limit = compiled.budget?;
    let said = crate::summary::human(limit);
    let diagnostic = match bound.worst() {
        Some(worst) if worst <= limit => return None,
        Some(worst) => rollbook_plan::Diagnostic::warning(
            "over-budget",
            budget.span,
            format!(
                "the plan can take {} at worst, over its budget of {said}",
                crate::summary::human(worst)
            ),
        )
        .help("lower timeouts, retries or gate deadlines on the longest chain (`rollbook plan NAME --summary` names it), run more at a time, or raise the budget"),
        None => {
            let open: Vec<String> = bound
                .phases
                .iter()
                .flat_map(|p| p.unbounded.iter().cloned())
                .take(3)
                .collect();
            rollbook_plan::Diagnostic::warning(
                "over-budget",
                budget.span,
                format!(
                    "the budget of {said} cannot be checked: {} {} no timeout",
                    open.join(", "),
                    if open.len() == 1 { "has" } else { "have" }
                ),
            )
            .help("give every step a `timeout` (or `defaults: { timeout: … }`)")
        }
    };
    Some(diagnostic.label("the budget"))
}
