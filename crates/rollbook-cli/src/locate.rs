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
        } else if let Some(problem) = not_a_regular_file(path) {
            return Err(problem);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
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
