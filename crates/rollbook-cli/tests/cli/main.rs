//! The `rollbook` command's tests: one binary, so linking stays cheap.

mod commands;
mod dry_runs;
mod fleet;
mod http_plans;
mod invalid_plans;
mod report;
mod run;
mod sql_plans;
mod support;

pub use support::*;
