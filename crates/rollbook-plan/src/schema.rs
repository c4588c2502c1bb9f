//! The JSON Schema of plan files, generated from [`crate::model`], for editors
//! (`# yaml-language-server: $schema=...`) and other tools.

use crate::model::Plan;

/// The schema as pretty JSON, ending in a newline (as `schemas/plan.schema.json` holds it).
pub fn plan_schema_json() -> String {
    let schema = schemars::schema_for!(Plan);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}
