//! `rollbook schema`: the JSON Schema of plan files.

use crate::Failure;

pub fn run() -> Result<(), Failure> {
    crate::print(&rollbook_plan::schema::plan_schema_json());
    Ok(())
}
