//! The plan crate's tests: one binary, so linking stays cheap.

mod calls;
mod compile;
mod expressions;
mod inventory;
mod loader;
mod order;
mod schema;
mod timing;

use rollbook_plan::{Plan, SourceFile};

/// Checks a plan written inline and returns it, failing on any diagnostic.
pub fn plan(text: &str) -> Plan {
    let checked = rollbook_plan::check(SourceFile::new("test.yaml", text), None);
    assert!(checked.diagnostics.is_empty(), "{:#?}", checked.diagnostics);
    checked.plan.unwrap()
}

/// The codes of the diagnostics of a plan written inline.
pub fn codes(text: &str) -> Vec<&'static str> {
    rollbook_plan::check(SourceFile::new("test.yaml", text), None)
        .diagnostics
        .iter()
        .map(|d| d.code)
        .collect()
}
