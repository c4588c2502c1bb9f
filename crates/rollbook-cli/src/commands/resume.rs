//! `rollbook resume RUN_ID`: go on with a run that failed, was cancelled or crashed. What
//! succeeded is not run again; a step whose outcome is unknown runs again, or, when it says
//! `resume: ask`, a person decides.

use std::io::{BufRead, IsTerminal};
use std::path::Path;

use rollbook_exec::RunStatus;
use rollbook_exec::executor::Prior;
use rollbook_exec::history::NodeKey;
use rollbook_exec::journal::{self, RunMeta};
use rollbook_exec::lock::Stale;
use rollbook_exec::resume::Replay;
use rollbook_plan::SourceFile;
use rollbook_plan::compile::CompiledPlan;
use rollbook_plan::model::ResumePolicy;

use crate::run::{RunArgs, Start};
use crate::runs::JournaledRun;
use crate::{Failure, diagnostics};

/// Nodes a person finished by hand (`--mark-done`), and why (`--reason`).
pub struct ByHand {
    pub nodes: Vec<String>,
    pub reason: String,
}

pub fn run(
    state: &crate::state::State,
    run_id: &str,
    allow_changed_plan: bool,
    by_hand: &ByHand,
    args: &RunArgs,
    style: diagnostics::Style,
) -> Result<(), Failure> {
    let JournaledRun {
        dir,
        mut meta,
        history,
        events,
    } = crate::runs::open_run(state, run_id)?;
    if events.is_empty() {
        ask_rerun_everything(run_id, args.yes)?;
    }
    let records = history.nodes.clone();
    let replay = Replay::from(history);
    if replay.finished == Some(RunStatus::Succeeded) {
        say!("run {run_id} already succeeded: nothing to resume");
        return Ok(());
    }
    let plan_text = plan_to_resume(state, &dir, &mut meta, allow_changed_plan)?;
    let compiled = compile(&dir, &meta, plan_text, style)?;
    let secrets = crate::run::resolve_secrets(&compiled)?;
    let user = crate::run::current_user();
    let marked_by_hand: Vec<NodeKey> = by_hand
        .nodes
        .iter()
        .map(|n| known_node(&compiled, &records, n))
        .collect::<Result<_, _>>()?;
    let (mut prior, unknown) = settle_unknown(&compiled, replay, args.yes, &user)?;
    for key in marked_by_hand {
        let why = format!("done by hand, said {user}: {}", by_hand.reason);
        say!(
            "{}: {}",
            crate::terminal::escape(&key.node),
            crate::terminal::escape(&why)
        );
        prior.marked.insert(key, why);
    }
    let holder = crate::run::lock_holder(
        &compiled.lock,
        &meta.run_id,
        &user,
        rollbook_exec::event::now(),
    );
    let stale = if args.break_lock {
        Stale::Break
    } else {
        Stale::IfRun
    };
    let lock = crate::run::take_lock(state, &holder, stale, false)?;
    settle_leftovers(&prior, args.yes)?;
    let mut journal = state.store.reopen(run_id)?;
    same_history(&events, journal.dir(), run_id)?;
    let start = Start {
        secrets,
        prior,
        resumed: Some(unknown),
    };
    crate::run::execute(
        &compiled,
        state,
        journal.as_mut(),
        lock.as_ref(),
        start,
        args,
        &user,
        &meta.run_id,
    )
}

/// The journal the resume appends to tells what the resume was decided on: with a shared
/// store, a controller that was still finishing could have added to it between the first
/// read and the lock.
fn same_history(read: &[rollbook_exec::Event], dir: &Path, run_id: &str) -> Result<(), Failure> {
    let healed =
        |e: &&rollbook_exec::Event| matches!(e, rollbook_exec::Event::JournalHealed { .. });
    let now = journal::read_events(dir)?;
    if now.iter().filter(|e| !healed(e)).count() > read.iter().filter(|e| !healed(e)).count() {
        return Err(Failure::Cancelled(format!(
            "run {run_id} went on while this resume read it (another controller was finishing its steps); nothing was run: resume again"
        )));
    }
    Ok(())
}

/// The run goes on with the plan it started with; a plan changed since is refused unless
/// asked for, because steps that already ran were the old ones. When it is asked for, the
/// new plan becomes the run's plan: a later resume compares against it.
fn plan_to_resume(
    state: &crate::state::State,
    dir: &Path,
    meta: &mut RunMeta,
    allow_changed_plan: bool,
) -> Result<String, Failure> {
    let copy = dir.join("plan.yaml");
    let kept = std::fs::read_to_string(&copy).map_err(|e| {
        Failure::internal(format!(
            "cannot read the run's plan copy {}: {e}",
            copy.display()
        ))
    })?;
    let current = std::fs::read_to_string(&meta.plan_path)
        .ok()
        .map(|text| (journal::hash_text(&text), text));
    let called_changed = changed_calls(meta);
    let Some((hash, text)) = current.filter(|(hash, _)| *hash != meta.plan_hash) else {
        if called_changed.is_empty() {
            return Ok(kept);
        }
        // A called plan changed: as with the plan itself, the steps that ran were the old ones.
        if !allow_changed_plan {
            let (name, path, _) = &called_changed[0];
            return Err(Failure::invalid(format!(
                "{path} (plan `{name}`, called by the run's plan) changed since run {} started; resume with --allow-changed-plan to use the new plan, or restore the old one (kept in {})",
                meta.run_id,
                dir.join("run.json").display()
            )));
        }
        for (name, _, text) in called_changed {
            if let Some(called) = meta.calls.get_mut(&name) {
                called.hash = journal::hash_text(&text);
                called.text = text;
            }
        }
        state.store.replace_plan(meta, &kept)?;
        return Ok(kept);
    };
    for (name, _, text) in called_changed {
        if let Some(called) = meta.calls.get_mut(&name) {
            called.hash = journal::hash_text(&text);
            called.text = text;
        }
    }
    if !allow_changed_plan {
        return Err(Failure::invalid(format!(
            "{} changed since run {} started; resume with --allow-changed-plan to use the new plan, or restore the old one (kept in {})",
            meta.plan_path,
            meta.run_id,
            copy.display()
        )));
    }
    meta.plan_hash = hash;
    state.store.replace_plan(meta, &text)?;
    Ok(text)
}

/// The plans the run's plan called whose file has changed since: name, path and new text.
fn changed_calls(meta: &RunMeta) -> Vec<(String, String, String)> {
    meta.calls
        .iter()
        .filter_map(|(name, called)| {
            let text = std::fs::read_to_string(&called.path).ok()?;
            (journal::hash_text(&text) != called.hash)
                .then(|| (name.clone(), called.path.clone(), text))
        })
        .collect()
}

/// Checks the plan text and compiles it as the run did: its params, its inventory copy, its
/// id, reason, user and start.
fn compile(
    dir: &Path,
    meta: &RunMeta,
    plan_text: String,
    style: diagnostics::Style,
) -> Result<CompiledPlan, Failure> {
    let stem = Path::new(&meta.plan_path)
        .file_stem()
        .and_then(|s| s.to_str());
    let checked = rollbook_plan::check_with(
        SourceFile::new(meta.plan_path.clone(), plan_text),
        stem,
        &crate::runs::called_library(meta),
    );
    let plan = super::valid_plan(&checked, style)?;
    crate::runs::compile_as_run(plan, meta, dir).map_err(Failure::invalid)
}

/// The nodes that were in flight when the run stopped: each runs again, unless it says
/// `resume: ask` and the person at the terminal says it had completed. Returns what the
/// executor starts from, and the names of those nodes.
fn settle_unknown(
    compiled: &CompiledPlan,
    replay: Replay,
    yes: bool,
    user: &str,
) -> Result<(Prior, Vec<String>), Failure> {
    let mut prior = replay.prior;
    let mut names = Vec::new();
    for key in replay.unknown {
        if asks_on_resume(compiled, &key) && !crate::run::ask_rerun(&key.node, yes)? {
            names.push(key.node.clone());
            prior.marked.insert(
                key,
                format!("not run again after the crash: {user} said it had completed"),
            );
        } else {
            names.push(key.node);
        }
    }
    Ok((prior, names))
}

/// A node of the run's main steps that `--mark-done` names: one of the plan's, or one the
/// journal knows (an instance of a `for_each` over a step output), that has not succeeded or
/// been skipped already.
fn known_node(
    compiled: &CompiledPlan,
    records: &[rollbook_exec::NodeRecord],
    node: &str,
) -> Result<NodeKey, Failure> {
    use rollbook_plan::compile::PhaseKind;
    let key = NodeKey::new(PhaseKind::Main, node);
    if let Some(record) = records.iter().find(|r| r.key == key)
        && record.done()
    {
        return Err(Failure::invalid(format!(
            "--mark-done {node}: it already ended as {}, nothing to mark",
            record.state
        )));
    }
    let planned: Vec<&str> = compiled
        .phases
        .iter()
        .filter(|p| p.kind == PhaseKind::Main)
        .flat_map(|p| p.graph.node_weights())
        .map(|n| n.name.as_str())
        .collect();
    if planned.contains(&node) || records.iter().any(|r| r.key == key) {
        return Ok(key);
    }
    let hint = rollbook_plan::diagnostic::did_you_mean(node, planned.iter().copied())
        .map_or(String::new(), |s| format!("; did you mean `{s}`?"));
    Err(Failure::invalid(format!(
        "--mark-done {node}: the run has no such step{hint}"
    )))
}

/// The commands of the attempts in flight when the earlier controller stopped may still be
/// running: a step must never run beside a leftover copy of itself. A local one still there
/// is waited for or stopped (asked; `--yes` stops it); one on an SSH host is named here, and
/// the SSH runner makes sure it has ended before it runs the step again.
fn settle_leftovers(prior: &Prior, yes: bool) -> Result<(), Failure> {
    let here = rollbook_exec::process::machine_name();
    let mut groups: Vec<_> = prior.groups.iter().collect();
    groups.sort_by(|a, b| a.0.cmp(b.0));
    for (key, group) in groups {
        let node = crate::terminal::escape(&key.node);
        let shown = crate::terminal::escape(&group.to_string()).into_owned();
        if group.host.is_some() {
            say!(
                "{node} was running as {shown} when the run stopped: it is stopped there, if still running, before the step runs again"
            );
            continue;
        }
        if group.machine.is_some() && group.machine != here {
            say!(
                "{node} was running as {shown} when the run stopped: another machine, which rollbook cannot check from here"
            );
            continue;
        }
        if !rollbook_exec::process::alive(group) {
            continue;
        }
        stop_or_wait(&node, &shown, group, yes)?;
    }
    Ok(())
}

/// A local leftover that is still running: stopped with `--yes`, else the person at the
/// terminal says whether to stop it or wait for it to end.
fn stop_or_wait(
    node: &str,
    shown: &str,
    group: &rollbook_exec::ProcessGroup,
    yes: bool,
) -> Result<(), Failure> {
    use std::time::Duration;
    let what = format!("{node} is still running from the run's earlier controller ({shown})");
    let stop = if yes {
        say!("{what}: stopping it (--yes)");
        true
    } else if !std::io::stdin().is_terminal() {
        return Err(Failure::Cancelled(format!(
            "{what}; there is no terminal to ask on: pass --yes to stop it, or resume once it has ended"
        )));
    } else {
        crate::say_part!("{what}.\nType stop to stop it now, or wait to wait until it ends: ");
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        match line.trim().to_ascii_lowercase().as_str() {
            "stop" => true,
            "wait" => false,
            _ => return Err(Failure::Cancelled("no answer: nothing was run".into())),
        }
    };
    if stop {
        if !rollbook_exec::process::stop(group, Duration::from_secs(2)) {
            return Err(Failure::internal(format!(
                "{what}, and it could not be stopped: nothing was run"
            )));
        }
        say!("stopped {shown}");
    } else {
        say!("waiting for {shown} to end (Ctrl-C to give up)");
        while !rollbook_exec::process::gone_within(group, Duration::from_secs(3600)) {}
    }
    Ok(())
}

/// A journal with no events says nothing of what already ran: resuming runs every step again,
/// which a person agrees to first (`--yes` does).
fn ask_rerun_everything(run_id: &str, yes: bool) -> Result<(), Failure> {
    let what = format!(
        "the journal of run {run_id} is empty or missing: nothing says what already ran, so resuming runs every step again"
    );
    if yes {
        say!("{what} (--yes)");
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Cancelled(format!(
            "{what}; there is no terminal to ask on: pass --yes to rerun everything"
        )));
    }
    crate::say_part!("{what}.\nRun every step again? Type yes to go on: ");
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if line.trim().eq_ignore_ascii_case("yes") {
        return Ok(());
    }
    Err(Failure::Cancelled(format!(
        "run {run_id} not resumed: its journal is empty"
    )))
}

/// Whether a node says `resume: ask`.
fn asks_on_resume(compiled: &CompiledPlan, key: &NodeKey) -> bool {
    compiled
        .phases
        .iter()
        .filter(|p| p.kind == key.phase)
        .flat_map(|p| p.graph.node_weights())
        .find(|n| n.name == key.node)
        .is_some_and(|n| n.settings.resume == ResumePolicy::Ask)
}
