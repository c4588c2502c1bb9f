//! `rollbook report RUN_ID`: the incident report of a run, filled from its journal so nobody
//! retypes times, hosts or errors at 3 a.m. What the run knows is written out (summary,
//! timeline, targets, checks, failures, a Gantt chart); what only people know (root cause,
//! impact, lessons) is left as headed blanks, in the shape of the platform's incident template.
//!
//! `facts` is the data (also the `--format json` document), folded by `fold` from the
//! journal and by `plan` from the plan text; `markdown` and `gantt` render it.

pub mod facts;
mod fold;
pub mod gantt;
pub mod markdown;
mod plan;
mod target;

use clap::ValueEnum;

/// What `rollbook report` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Markdown,
    Json,
}

/// A journal time in one fixed-width shape, `2026-11-25T13:32:14.149Z` (UTC, milliseconds),
/// so that it slices and compares as text; `None` when it is not an RFC 3339 UTC time.
pub(crate) fn utc(at: &str) -> Option<String> {
    rollbook_exec::Timestamp::parse(at).map(|t| t.to_string())
}
