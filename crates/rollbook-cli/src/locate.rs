//! Finding plan files: by name in the plans directory, or by path.

use std::path::{Path, PathBuf};

fn is_plan_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// The plan files named by `paths`: files as given, directories searched (not recursively)
/// for `*.yaml`, sorted by name. (`*.yml` files in a directory are left alone: plans are
/// `NAME.yaml`, and CI workflows beside them are `.yml`.)
pub fn plan_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path)
                .map_err(|e| format!("cannot read directory {}: {e}", path.display()))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml"))
                .collect();
            found.sort();
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(format!("no such file or directory: {}", path.display()));
        }
    }
    Ok(files)
}

/// A plan given as a path (it contains a `/` or ends in `.yaml`/`.yml`) or as a name looked up
/// in `plans_dir`.
pub fn find_plan(plans_dir: &Path, plan: &str) -> Result<PathBuf, String> {
    let as_path = Path::new(plan);
    if plan.contains('/') || is_plan_file(as_path) {
        return if as_path.is_file() {
            Ok(as_path.to_path_buf())
        } else {
            Err(format!("no plan file at {plan}"))
        };
    }
    for ext in ["yaml", "yml"] {
        let candidate = plans_dir.join(format!("{plan}.{ext}"));
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    let names: Vec<String> = plan_files(&[plans_dir.to_path_buf()])
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    let hint = match rollbook_plan::diagnostic::did_you_mean(plan, names.iter().map(String::as_str))
    {
        Some(s) => format!("; did you mean `{s}`?"),
        None if names.is_empty() => {
            String::from("; it has no plans (set --plans-dir or ROLLBOOK_PLANS)")
        }
        None => format!("; the plans are: {}", names.join(", ")),
    };
    Err(format!(
        "no plan named `{plan}` in {}{hint}",
        plans_dir.display()
    ))
}
