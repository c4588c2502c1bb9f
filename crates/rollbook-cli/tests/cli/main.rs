//! The `rollbook` command's tests: one binary, so linking stays cheap.

mod architecture;
mod commands;
mod dry_runs;
mod exit_codes;
mod fleet;
mod http_plans;
mod invalid_plans;
mod old_journals;
mod report;
mod run;
mod sql_plans;

use std::path::{Path, PathBuf};

/// The workspace root, where `plans/` and `examples/` are.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// This crate's directory (fixtures are under `tests/fixtures`).
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The settings `rollbook` reads from the environment: a test sets what it needs itself.
pub const ROLLBOOK_ENV: [&str; 5] = [
    "ROLLBOOK_PLANS",
    "ROLLBOOK_STATE_DIR",
    "ROLLBOOK_INVENTORY",
    "ROLLBOOK_SSH_IDENTITY",
    "ROLLBOOK_SSH_KNOWN_HOSTS",
];

/// `rollbook` run in `dir`, with none of the environment's rollbook settings and no colors.
pub fn rollbook_in(dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("rollbook").unwrap();
    cmd.current_dir(dir).env("NO_COLOR", "1");
    for var in ROLLBOOK_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// The run ids under a state dir, oldest first by name.
pub fn run_ids_in(state_dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(state_dir.join("runs"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}
