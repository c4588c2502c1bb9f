//! `rollbook run` and `rollbook resume`: everything around the executor that touches the
//! outside world: secrets from the environment, the confirmation phrase, the lock, the
//! journal directory, Ctrl-C, the terminal for `confirm` steps, and the exit code.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use rollbook_exec::executor::{Control, Execution, Options, Prior};
use rollbook_exec::journal::{self, FileJournal, RunMeta};
use rollbook_exec::lock::{self, LockHolder, Stale};
use rollbook_exec::redact::Redactor;
use rollbook_exec::runner::{BoxFuture, Runners};
use rollbook_exec::runners::{Answer, ConfirmRunner, Prompter, ShellRunner, SleepRunner};
use rollbook_exec::{Error as ExecError, RunStatus};
use rollbook_plan::compile::{CompiledPlan, RunInfo};
use rollbook_plan::model::{ResumePolicy, SecretSource};
use rollbook_plan::{Checked, SourceFile};
use serde_json::{Map, Value};

use crate::display::{self, Mode};
use crate::{BindArgs, Failure, exit};

/// Options shared by `run` and `resume`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Answer every confirmation (the plan's phrase and `confirm` steps) with yes.
    #[arg(long)]
    pub yes: bool,
    /// Most steps in flight at once.
    #[arg(long, default_value_t = crate::DEFAULT_PARALLELISM)]
    pub parallelism: usize,
    /// Write one JSON event per line on stdout (for tools) instead of the display.
    #[arg(long, value_name = "FORMAT", value_parser = ["json"])]
    pub events: Option<String>,
    /// Take over a lock left by a run that died.
    #[arg(long)]
    pub break_lock: bool,
    #[command(flatten)]
    pub ssh: SshArgs,
}

/// SSH settings that belong to the operator, not the plan.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SshArgs {
    /// A private key to try for SSH (after ssh-agent, before ~/.ssh/id_*).
    #[arg(long, value_name = "FILE", env = "ROLLBOOK_SSH_IDENTITY")]
    pub identity: Option<std::path::PathBuf>,
    /// A known_hosts file checked before ~/.ssh/known_hosts.
    #[arg(long, value_name = "FILE", env = "ROLLBOOK_SSH_KNOWN_HOSTS")]
    pub known_hosts: Option<std::path::PathBuf>,
}

impl SshArgs {
    pub fn options(&self) -> rollbook_ssh::SshOptions {
        rollbook_ssh::SshOptions {
            identity: self.identity.clone(),
            known_hosts: self.known_hosts.clone(),
            default_user: login_user(),
            ..rollbook_ssh::SshOptions::default()
        }
    }
}

/// The local login name (the SSH user when nothing else says).
fn login_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(user_from_passwd)
        .unwrap_or_else(|| "unknown".into())
}

/// Who is running this, for the journal and the lock.
pub fn current_user() -> String {
    let user = login_user();
    match std::env::var("SUDO_USER") {
        Ok(by) if by != user => format!("{user} (sudo by {by})"),
        _ => user,
    }
}

/// The name of this process's user in /etc/passwd (when `USER` is not set, as under cron).
fn user_from_passwd() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() }.to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid).then(|| name.to_string())
    })
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Reads every secret the plan declares; all missing ones are reported together.
pub(crate) fn resolve_secrets(plan: &CompiledPlan) -> Result<Map<String, Value>, Failure> {
    let mut values = Map::new();
    let mut problems = Vec::new();
    for (name, source) in plan.secrets.iter() {
        match source {
            SecretSource::Env(var) => match std::env::var(&var.value) {
                Ok(v) if !v.is_empty() => {
                    values.insert(name.value.clone(), Value::String(v));
                }
                _ => problems.push(format!(
                    "secret `{}` is not set: export {} before the run",
                    name.value, var.value
                )),
            },
            SecretSource::File(path) => match std::fs::read_to_string(&path.value) {
                Ok(v) => {
                    let v = v.strip_suffix('\n').unwrap_or(&v).to_string();
                    values.insert(name.value.clone(), Value::String(v));
                }
                Err(e) => problems.push(format!(
                    "secret `{}` cannot be read from {}: {e}",
                    name.value, path.value
                )),
            },
        }
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(Failure::invalid(problems.join("\n")))
    }
}

/// Asks on the terminal (one question at a time); with `--yes`, answers yes itself.
struct TerminalPrompter {
    yes: bool,
    user: String,
    lock: tokio::sync::Mutex<()>,
}

impl Prompter for TerminalPrompter {
    fn ask<'a>(&'a self, node: &'a str, prompt: &'a str) -> BoxFuture<'a, Result<Answer, String>> {
        Box::pin(async move {
            if self.yes {
                return Ok(Answer {
                    yes: true,
                    by: format!("{} (--yes)", self.user),
                });
            }
            if !std::io::stdin().is_terminal() {
                return Err(format!(
                    "step {node} asks a person to confirm, and there is no terminal to ask on; answer with --yes"
                ));
            }
            let question = format!("\n{node}: {prompt}\nType yes to go on: ");
            let user = self.user.clone();
            // One question at a time; the read runs on a blocking thread so that a timeout or
            // Ctrl-C can still stop the step while it waits.
            let _one_at_a_time = self.lock.lock().await;
            crate::say_part!("{question}");
            let _ = std::io::stderr().flush();
            let line = tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line).map(|_| line)
            })
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .map_err(|e| format!("reading the answer: {e}"))?;
            Ok(Answer {
                yes: line.trim().eq_ignore_ascii_case("yes"),
                by: user,
            })
        })
    }
}

/// The runners this build has.
pub(crate) fn runners(yes: bool, user: &str, ssh: &SshArgs) -> Runners {
    let prompter = Arc::new(TerminalPrompter {
        yes,
        user: user.to_string(),
        lock: tokio::sync::Mutex::new(()),
    });
    Runners::new()
        .with(ShellRunner::default())
        .with(SleepRunner)
        .with(ConfirmRunner::new(prompter))
        .with(rollbook_http::HttpRunner::new())
        .with(rollbook_ssh::SshRunner::new(ssh.options()))
        .with(rollbook_sql::SqlRunner::new())
}

/// The plan's confirmation phrase, typed exactly, before anything runs.
fn confirm_phrase(plan: &CompiledPlan, yes: bool) -> Result<(), Failure> {
    let Some(phrase) = &plan.confirm else {
        return Ok(());
    };
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure {
            code: exit::CANCELLED,
            message: format!(
                "plan `{}` asks to type {phrase:?} before it runs, and there is no terminal to ask on: pass --yes to confirm",
                plan.name
            ),
        });
    }
    let severity = plan
        .severity
        .map_or(String::new(), |s| format!(" ({})", s.as_str()));
    crate::say_part!(
        "{}{severity}: {}\nType {phrase} to run it: ",
        plan.name,
        plan.description.as_deref().unwrap_or("")
    );
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if line.trim_end_matches(['\n', '\r']) == phrase {
        Ok(())
    } else {
        Err(Failure {
            code: exit::CANCELLED,
            message: "not confirmed: nothing was run".into(),
        })
    }
}

fn lock_failure(e: ExecError, run_hint: bool) -> Failure {
    let message = match &e {
        ExecError::StaleLock(h) if run_hint => format!(
            "{e}: resume it with `rollbook resume {}`, or take the lock with --break-lock",
            h.run_id
        ),
        ExecError::StaleLock(_) => format!("{e}: take the lock with --break-lock"),
        _ => e.to_string(),
    };
    Failure {
        code: exit::LOCKED,
        message,
    }
}

fn exec_failure(e: ExecError) -> Failure {
    Failure {
        code: exit::FAILED,
        message: e.to_string(),
    }
}

/// `rollbook run NAME --reason TEXT`.
pub fn cmd_run(
    plans_dir: &Path,
    state_dir: &Path,
    plan_ref: &str,
    reason: &str,
    bind: &BindArgs,
    args: &RunArgs,
    style: crate::diagnostics::Style,
) -> Result<u8, Failure> {
    if reason.trim().is_empty() {
        return Err(Failure::invalid("--reason must say why the rollback runs"));
    }
    let user = current_user();
    let run_id = journal::new_run_id();
    let info = RunInfo {
        id: run_id.clone(),
        reason: reason.to_string(),
        user: user.clone(),
        started_at: rollbook_exec::event::now(),
    };
    let path = crate::locate::find_plan(plans_dir, plan_ref).map_err(Failure::invalid)?;
    let plan_text = std::fs::read_to_string(&path)
        .map_err(|e| Failure::invalid(format!("cannot read {}: {e}", path.display())))?;
    let inventory_text = match &bind.inventory {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| Failure::invalid(format!("cannot read {}: {e}", f.display())))?,
        ),
        None => None,
    };
    let compiled = crate::compile_plan(plans_dir, plan_ref, bind, &info, style)?;
    let secrets = resolve_secrets(&compiled)?;
    confirm_phrase(&compiled, args.yes)?;
    let holder = LockHolder {
        key: compiled.lock.clone(),
        run_id: run_id.clone(),
        user: user.clone(),
        host: host_name(),
        pid: std::process::id(),
        since: info.started_at.clone(),
    };
    let stale = if args.break_lock {
        Stale::Break
    } else {
        Stale::Refuse
    };
    let _lock = lock::acquire(state_dir, &holder, stale).map_err(|e| lock_failure(e, true))?;
    let meta = RunMeta {
        run_id: run_id.clone(),
        plan: compiled.name.clone(),
        plan_path: path.display().to_string(),
        plan_hash: journal::hash_text(&plan_text),
        params: compiled.params.clone(),
        reason: reason.to_string(),
        user: user.clone(),
        host: holder.host.clone(),
        pid: holder.pid,
        started_at: info.started_at.clone(),
        lock: compiled.lock.clone(),
        parallelism: args.parallelism,
        inventory: inventory_text.is_some(),
        rollbook_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let mut journal = FileJournal::create(state_dir, &meta, &plan_text, inventory_text.as_deref())
        .map_err(exec_failure)?;
    execute(
        &compiled,
        &mut journal,
        secrets,
        Prior::default(),
        None,
        args,
        &user,
        &run_id,
    )
}

/// `rollbook resume RUN_ID`.
pub fn cmd_resume(
    state_dir: &Path,
    run_id: &str,
    allow_changed_plan: bool,
    args: &RunArgs,
    style: crate::diagnostics::Style,
) -> Result<u8, Failure> {
    let run_dir = journal::runs_dir(state_dir).join(run_id);
    if !run_dir.join("run.json").is_file() {
        return Err(Failure::invalid(format!(
            "no run {run_id} in {}: `rollbook runs` lists them",
            state_dir.display()
        )));
    }
    let mut meta = journal::read_meta(&run_dir).map_err(exec_failure)?;
    let events = journal::read_events(&run_dir).map_err(exec_failure)?;
    let replay = rollbook_exec::resume::replay(&events);
    if replay.finished == Some(RunStatus::Succeeded) {
        crate::say!("run {run_id} already succeeded: nothing to resume");
        return Ok(exit::OK);
    }
    // The run goes on with the plan it started with; a plan changed since is refused unless
    // asked for, because steps that already ran were the old ones.
    let kept_text = std::fs::read_to_string(run_dir.join("plan.yaml"))
        .map_err(|e| Failure::invalid(format!("cannot read the run's plan copy: {e}")))?;
    let current = std::fs::read_to_string(&meta.plan_path).ok();
    let plan_text = match current {
        Some(text) if journal::hash_text(&text) != meta.plan_hash => {
            if !allow_changed_plan {
                return Err(Failure::invalid(format!(
                    "{} changed since run {run_id} started; resume with --allow-changed-plan to use the new plan, or restore the old one (kept in {})",
                    meta.plan_path,
                    run_dir.join("plan.yaml").display()
                )));
            }
            // From now on this is the run's plan: a later resume compares against it.
            meta.plan_hash = journal::hash_text(&text);
            journal::replace_plan(&run_dir, &meta, &text).map_err(exec_failure)?;
            text
        }
        _ => kept_text,
    };
    let stem = Path::new(&meta.plan_path)
        .file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_string);
    let checked = rollbook_plan::check(
        SourceFile::new(meta.plan_path.clone(), plan_text),
        stem.as_deref(),
    );
    let plan = valid_plan(checked, style)?;
    let compiled = crate::runs::compile_as_run(&plan, &meta, &run_dir).map_err(Failure::invalid)?;
    let secrets = resolve_secrets(&compiled)?;
    let user = current_user();
    let mut prior = replay.prior;
    let mut unknown_names = Vec::new();
    for key in &replay.unknown {
        let node = &key.node;
        unknown_names.push(node.clone());
        let ask = compiled
            .phases
            .iter()
            .filter(|p| p.kind == key.phase)
            .flat_map(|p| p.graph.node_weights())
            .find(|n| &n.name == node)
            .is_some_and(|n| n.settings.resume == ResumePolicy::Ask);
        if ask && !ask_rerun(node, args.yes)? {
            prior.marked.insert(
                key.clone(),
                format!("not run again after the crash: {user} said it had completed"),
            );
        }
    }
    let holder = LockHolder {
        key: compiled.lock.clone(),
        run_id: meta.run_id.clone(),
        user: user.clone(),
        host: host_name(),
        pid: std::process::id(),
        since: rollbook_exec::event::now(),
    };
    let stale = if args.break_lock {
        Stale::Break
    } else {
        Stale::IfRun
    };
    let _lock = lock::acquire(state_dir, &holder, stale).map_err(|e| lock_failure(e, false))?;
    let mut journal = FileJournal::open(&run_dir).map_err(exec_failure)?;
    execute(
        &compiled,
        &mut journal,
        secrets,
        prior,
        Some(unknown_names),
        args,
        &user,
        &meta.run_id,
    )
}

fn valid_plan(
    checked: Checked,
    style: crate::diagnostics::Style,
) -> Result<rollbook_plan::Plan, Failure> {
    if !checked.is_ok() {
        crate::say_part!(
            "{}",
            crate::diagnostics::render_all(
                std::slice::from_ref(&checked),
                crate::diagnostics::Format::Human,
                style
            )
        );
        return Err(Failure::invalid(""));
    }
    checked
        .plan
        .ok_or_else(|| Failure::invalid("the plan could not be read"))
}

/// For a `resume: ask` step whose outcome is unknown: run it again?
fn ask_rerun(node: &str, yes: bool) -> Result<bool, Failure> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure {
            code: exit::CANCELLED,
            message: format!(
                "{node} was running when the run stopped and says `resume: ask`; there is no terminal to ask on: pass --yes to run it again"
            ),
        });
    }
    crate::say_part!(
        "{node} was running when the run stopped: its outcome is unknown.\nRun it again? Type yes to rerun, no if it completed: "
    );
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    match line.trim().to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(Failure {
            code: exit::CANCELLED,
            message: "no answer: nothing was run".into(),
        }),
    }
}

#[allow(clippy::too_many_arguments)]
fn execute(
    compiled: &CompiledPlan,
    journal: &mut FileJournal,
    secrets: Map<String, Value>,
    prior: Prior,
    resumed: Option<Vec<String>>,
    args: &RunArgs,
    user: &str,
    run_id: &str,
) -> Result<u8, Failure> {
    let redactor = Redactor::new(
        secrets
            .values()
            .filter_map(|v| v.as_str().map(str::to_string)),
    );
    let runners = runners(args.yes, user, &args.ssh);
    let mode = if args.events.is_some() {
        Mode::Json
    } else if std::io::stderr().is_terminal() {
        Mode::Live
    } else {
        Mode::Lines
    };
    let total: usize = compiled.phases.iter().map(|p| p.graph.node_count()).sum();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::invalid(format!("cannot start the runtime: {e}")))?;
    let control = Control::default();
    let status = runtime.block_on(async {
        let (obs_tx, obs_rx) = tokio::sync::mpsc::unbounded_channel();
        let shown = tokio::spawn(display::show(mode, total, obs_rx));
        let signals = {
            let control = control.clone();
            tokio::spawn(async move {
                let mut presses = 0;
                while tokio::signal::ctrl_c().await.is_ok() {
                    presses += 1;
                    match presses {
                        1 => control.stop.cancel(),
                        2 => control.abort.cancel(),
                        _ => std::process::exit(i32::from(exit::CANCELLED)),
                    }
                }
            })
        };
        let execution = Execution {
            plan: compiled,
            runners: &runners,
            secrets,
            redactor,
            journal,
            observer: Some(obs_tx),
            control: control.clone(),
            options: Options {
                parallelism: args.parallelism,
            },
            prior,
            resumed,
        };
        let outcome = execution.run().await;
        signals.abort();
        let _ = shown.await;
        outcome
    });
    let outcome = status.map_err(exec_failure)?;
    if mode != Mode::Json {
        crate::say!("{}", display::verdict(outcome.status, run_id));
    }
    Ok(match outcome.status {
        RunStatus::Succeeded => exit::OK,
        RunStatus::Cancelled => exit::CANCELLED,
        _ => exit::FAILED,
    })
}
