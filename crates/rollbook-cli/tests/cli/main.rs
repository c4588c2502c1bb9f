//! The `rollbook` command's tests: one binary, so linking stays cheap.

mod architecture;
mod commands;
mod dry_runs;
mod exit_codes;
mod fleet;
mod graph;
mod http_plans;
mod inputs;
mod invalid_plans;
mod old_journals;
mod order;
mod report;
mod run;
mod secrets;
mod sql_plans;
mod support;
mod team_state_faults;

pub use support::*;
