//! Finding plan files: by name in the plans directory, or by path.

use std::path::{Path, PathBuf};

fn is_plan_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// Why `path` is not a regular file that can be read, in words for the person who named it
/// (`None` when it is one). A FIFO or a device is never read: it may never end.
pub fn not_a_regular_file(path: &Path) -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some(format!("no such file or directory: {shown}"));
        }
        // ELOOP: the path goes round through symbolic links.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Some(format!("{shown} is a loop of symbolic links"));
        }
        Err(e) => return Some(format!("cannot read {shown}: {e}")),
    };
    let kind = meta.file_type();
    let what = if kind.is_file() {
        return None;
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Some(format!("{shown} is {what}: give a regular file"))
}

/// The plan files named by `paths`: files as given; directories searched, with their
/// subdirectories, for `*.yaml` and `*.yml` (hidden directories such as `.git` and
/// `.rollbook` aside, and symbolic links to directories not followed), sorted by path. The
/// same files `plan` and `run` find by name, so a plan that runs is a plan that `validate`
/// checks.
pub fn plan_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found)?;
            found.sort();
            files.extend(found);
        } else if let Some(problem) = not_a_regular_file(path) {
            return Err(problem);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// The plan files under `dir`, depth first.
fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read directory {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && !hidden {
            walk(&path, found)?;
        } else if !kind.is_dir() && is_plan_file(&path) && path.is_file() {
            found.push(path);
        }
    }
    Ok(())
}

/// Plans that share a name (their file stem) in `files`: each name with all its files. A
/// name must pick one plan.
pub fn same_names(files: &[PathBuf]) -> Vec<(String, Vec<PathBuf>)> {
    let mut by_name: std::collections::BTreeMap<String, Vec<PathBuf>> = Default::default();
    for file in files {
        if let Some(stem) = file.file_stem() {
            by_name
                .entry(stem.to_string_lossy().into_owned())
                .or_default()
                .push(file.clone());
        }
    }
    by_name.into_iter().filter(|(_, f)| f.len() > 1).collect()
}

/// The words for plans that share a name.
pub fn same_name_error(name: &str, files: &[PathBuf]) -> String {
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    format!(
        "{} plans are named `{name}`: {}; rename all but one (a plan's name is its file name without .yaml/.yml)",
        files.len(),
        files.join(" and ")
    )
}

/// A plan given as a path (it contains a `/` or ends in `.yaml`/`.yml`) or as a name looked up
/// in `plans_dir`.
pub fn find_plan(plans_dir: &Path, plan: &str) -> Result<PathBuf, String> {
    let as_path = Path::new(plan);
    if plan.contains('/') || is_plan_file(as_path) {
        return match not_a_regular_file(as_path) {
            None => Ok(as_path.to_path_buf()),
            Some(_) if !as_path.exists() && as_path.symlink_metadata().is_err() => {
                Err(format!("no plan file at {plan}"))
            }
            Some(problem) => Err(problem),
        };
    }
    let files = plan_files(&[plans_dir.to_path_buf()]).unwrap_or_default();
    let named: Vec<PathBuf> = files
        .iter()
        .filter(|p| p.file_stem().is_some_and(|s| s == plan))
        .cloned()
        .collect();
    match named.len() {
        0 => {}
        1 => return Ok(named[0].clone()),
        _ => return Err(same_name_error(plan, &named)),
    }
    let names: Vec<String> = files
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
