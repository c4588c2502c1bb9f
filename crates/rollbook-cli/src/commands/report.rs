//! `rollbook report RUN_ID [--template FILE]`: the incident report of a run (the facts and
//! their rendering are in `report/`).

use std::path::Path;

use crate::report::{Format, facts, markdown};
use crate::{Failure, runs};

/// `rollbook report RUN_ID`.
pub fn run(
    state: &crate::state::State,
    run_id: &str,
    format: Format,
    template: Option<&Path>,
) -> Result<(), Failure> {
    // The template is read (and so checked to be there) before the run is.
    let template = template
        .map(|path| {
            super::read_source(path).map(|s| (path.display().to_string(), s.text.to_string()))
        })
        .transpose()?;
    let run = runs::open_run(state, run_id)?;
    let report = facts::gather(&run);
    let text = match (format, template) {
        (Format::Markdown, None) => markdown::render(&report),
        (Format::Markdown, Some((name, text))) => {
            markdown::render_with(&text, &name, &report).map_err(Failure::invalid)?
        }
        (Format::Json, Some(_)) => {
            return Err(Failure::invalid(
                "--template shapes the Markdown report; --format json is the facts themselves",
            ));
        }
        (Format::Json, None) => serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
    };
    let text = match format {
        Format::Markdown => crate::terminal::escape_lines(&text),
        Format::Json => text,
    };
    crate::print(&text);
    Ok(())
}
