//! The `rollbook` command's tests: one binary, so linking stays cheap.

mod architecture;
mod budget;
mod calls;
mod commands;
mod completions;
mod diff;
mod dry_runs;
mod exit_codes;
mod fleet;
mod graph;
mod http_plans;
mod inputs;
mod invalid_plans;
mod inventory;
mod old_journals;
mod order;
mod readiness;
mod report;
mod review_action;
mod run;
mod runs_filters;
mod secrets;
mod sql_plans;
mod support;
mod team;
mod team_state;
mod team_state_faults;
mod undo;

pub use support::*;
