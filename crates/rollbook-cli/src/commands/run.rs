//! `rollbook run PLAN --reason TEXT`: check and compile the plan, read its secrets, confirm,
//! take the lock, journal, run. The plan and inventory files are read once: the text that is
//! compiled is the text that is hashed and copied into the journal.

use std::path::Path;

use rollbook_exec::executor::Prior;
use rollbook_exec::journal::{self, RunMeta};
use rollbook_exec::lock::{LockHolder, Stale};
use rollbook_plan::compile::{CompiledPlan, RunInfo};

use super::{BindFiles, PlanFile};
use crate::run::{RunArgs, Start};
use crate::{BindArgs, Failure, diagnostics};

pub fn run(
    plans_dir: &Path,
    state: &crate::state::State,
    plan_ref: &str,
    reason: &str,
    bind: &BindArgs,
    args: &RunArgs,
    style: diagnostics::Style,
) -> Result<(), Failure> {
    if reason.trim().is_empty() {
        return Err(Failure::invalid("--reason must say why the rollback runs"));
    }
    let info = RunInfo {
        id: journal::new_run_id(),
        reason: reason.to_string(),
        user: crate::run::current_user(),
        started_at: rollbook_exec::event::now(),
    };
    let file = PlanFile::find(plans_dir, plan_ref)?;
    let files = BindFiles::read(bind)?;
    let compiled = super::compile_source(&file, bind, &files, &info, style)?;
    let secrets = crate::run::resolve_secrets(&compiled)?;
    crate::run::confirm_phrase(&compiled, args.yes)?;
    let holder = crate::run::lock_holder(
        &compiled.lock,
        &info.id,
        &info.user,
        info.started_at.clone(),
    );
    let stale = if args.break_lock {
        Stale::Break
    } else {
        Stale::Refuse
    };
    let lock = crate::run::take_lock(state, &holder, stale, true)?;
    let meta = run_meta(&compiled, &file, bind, &info, &holder, args);
    let inventory = files.inventory.as_ref().map(|i| i.text_for_run());
    let mut journal = state
        .store
        .create(&meta, &file.source.text, inventory.as_deref())?;
    let start = Start {
        secrets,
        prior: Prior::default(),
        resumed: None,
    };
    crate::run::execute(
        &compiled,
        state,
        journal.as_mut(),
        lock.as_ref(),
        start,
        args,
        &info.user,
        &info.id,
    )
}

/// What the journal's `run.json` says of the run.
fn run_meta(
    compiled: &CompiledPlan,
    file: &PlanFile,
    bind: &BindArgs,
    info: &RunInfo,
    holder: &LockHolder,
    args: &RunArgs,
) -> RunMeta {
    RunMeta {
        run_id: info.id.clone(),
        plan: compiled.name.clone(),
        plan_path: file.path.display().to_string(),
        plan_hash: journal::hash_text(&file.source.text),
        params: compiled.params.clone(),
        reason: info.reason.clone(),
        user: info.user.clone(),
        host: holder.host.clone(),
        pid: holder.pid,
        started_at: info.started_at.clone(),
        lock: compiled.lock.clone(),
        parallelism: args.parallelism,
        inventory: bind.inventory.is_some(),
        // As given, so `readiness --inventory` can match it and its stem names the
        // environment.
        inventory_path: bind.inventory.as_ref().map(|p| p.display().to_string()),
        limit: compiled.limit.patterns.clone(),
        rollbook_version: env!("CARGO_PKG_VERSION").to_string(),
        calls: file.called.journaled(),
    }
}
