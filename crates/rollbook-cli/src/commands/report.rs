//! `rollbook report RUN_ID`: the incident report of a run (the facts and their rendering
//! are in `report/`).

use crate::report::{Format, facts, markdown};
use crate::{Failure, runs};

/// `rollbook report RUN_ID`.
pub fn run(state: &crate::state::State, run_id: &str, format: Format) -> Result<(), Failure> {
    let run = runs::open_run(state, run_id)?;
    let report = facts::gather(&run);
    let text = match format {
        Format::Markdown => crate::terminal::escape_lines(&markdown::render(&report)),
        Format::Json => serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
    };
    crate::print(&text);
    Ok(())
}
