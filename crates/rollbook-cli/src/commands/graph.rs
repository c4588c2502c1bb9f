//! `rollbook graph PLAN`: the compiled graph as Mermaid or Graphviz (drawn by `crate::graph`).

use std::path::Path;

use crate::{BindArgs, Failure, diagnostics, graph};

pub fn run(
    plans_dir: &Path,
    plan: &str,
    bind: &BindArgs,
    format: graph::Format,
    style: diagnostics::Style,
) -> Result<(), Failure> {
    let info = super::dry_run_info("(dry run)".into());
    let compiled = super::compile_plan(plans_dir, plan, bind, &info, style)?;
    crate::print(&graph::render(&compiled, format));
    Ok(())
}
