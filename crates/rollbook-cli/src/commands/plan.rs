//! `rollbook plan PLAN [--check]`: the dry run, and with `--check` the preflight.

use std::path::Path;

use rollbook_plan::compile::CompiledPlan;

use crate::run::SshArgs;
use crate::{BindArgs, Failure, check, diagnostics, dry_run};

/// What `rollbook plan` was asked for.
pub struct Request<'a> {
    pub plan: &'a str,
    pub bind: &'a BindArgs,
    pub reason: String,
    pub parallelism: usize,
    pub format: dry_run::Format,
    pub check: bool,
    /// `--summary`, with the runs of the state (for past times).
    pub summary: Option<Vec<rollbook_exec::journal::RunSummary>>,
    pub ssh: &'a SshArgs,
}

pub fn run(plans_dir: &Path, req: &Request, style: diagnostics::Style) -> Result<(), Failure> {
    let info = super::dry_run_info(req.reason.clone());
    let compiled = super::compile_plan(plans_dir, req.plan, req.bind, &info, style)?;
    if let Some(runs) = &req.summary {
        let doc = dry_run::value(&compiled, req.parallelism);
        let summary = crate::summary::gather(&compiled, &doc, req.parallelism, runs);
        let text = match req.format {
            dry_run::Format::Text => crate::summary::text(&summary),
            dry_run::Format::Json => {
                serde_json::to_string_pretty(&summary).unwrap_or_default() + "\n"
            }
        };
        crate::print(&text);
        return Ok(());
    }
    let text = match req.format {
        dry_run::Format::Text => dry_run::text(&compiled, req.parallelism),
        dry_run::Format::Json => dry_run::json(&compiled, req.parallelism),
    };
    crate::print(&text);
    if req.check {
        preflight(
            &compiled,
            req.format == dry_run::Format::Json,
            req.ssh,
            req.parallelism,
        )?;
    }
    Ok(())
}

/// The preflight table goes to stdout after the dry-run text, or to stderr when stdout holds
/// the dry run's JSON. A failed check is exit code 1.
/// The open-files limit is checked against the run's fan-out at `parallelism` (a warning on
/// stderr when it is too low).
fn preflight(
    compiled: &CompiledPlan,
    json: bool,
    ssh: &SshArgs,
    parallelism: usize,
) -> Result<(), Failure> {
    let secrets = crate::run::resolve_secrets(compiled)?;
    let (ssh, warning) = ssh.options_for(compiled, parallelism);
    if let Some(warning) = warning {
        say!("warning: {warning}");
    }
    // Nothing is asked in a preflight: no question to redact.
    let prompter = crate::run::prompter(
        true,
        &crate::run::current_user(),
        &rollbook_exec::redact::Redactor::default(),
    );
    let runners = crate::run::runners(prompter, ssh, None);
    let rows = super::runtime()?.block_on(check::preflight(compiled, &runners, &secrets));
    let (table, ok) = check::table(&rows);
    if json {
        say_part!("{table}");
    } else {
        crate::print(&table);
    }
    if ok { Ok(()) } else { Err(Failure::RunFailed) }
}
