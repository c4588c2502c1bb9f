//! The `rollbook` command's tests: one binary, so linking stays cheap.

mod commands;
mod dry_runs;
mod fleet;
mod http_plans;
mod invalid_plans;
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
