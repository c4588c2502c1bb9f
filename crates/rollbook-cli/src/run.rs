//! What `rollbook run` and `rollbook resume` (`commands::run`, `commands::resume`) share:
//! everything around the executor that touches the outside world: secrets from the
//! environment, the confirmation phrase, the lock, Ctrl-C, the terminal for `confirm` steps,
//! the runners wired together, and the run's end as a result.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use rollbook_exec::executor::{Asker, Control, Execution, Options, Prior};
use rollbook_exec::lock::{LockHolder, Stale};
use rollbook_exec::redact::Redactor;
use rollbook_exec::runner::{BoxFuture, Runners};
use rollbook_exec::runners::{Answer, ConfirmRunner, Prompter, ShellRunner, SleepRunner};
use rollbook_exec::state::{Lease, RunJournal, SharedCopy};
use rollbook_exec::{Error as ExecError, RunStatus};
use rollbook_plan::compile::CompiledPlan;
use rollbook_plan::model::SecretSource;
use serde_json::{Map, Value};

use crate::display::{self, Mode};
use crate::{Failure, exit};

/// Options shared by `run` and `resume`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Answer every confirmation (the plan's phrase and `confirm` steps) with yes.
    #[arg(long)]
    pub yes: bool,
    /// Most steps in flight at once.
    #[arg(long, default_value_t = crate::DEFAULT_PARALLELISM, value_parser = crate::at_least_one)]
    pub parallelism: usize,
    /// Write one JSON event per line on stdout (for tools) instead of the display.
    #[arg(long, value_name = "FORMAT", value_parser = ["json"])]
    pub events: Option<String>,
    /// Take over a lock left by a run that died.
    #[arg(long)]
    pub break_lock: bool,
    /// Do not run the steps' `undo` when a scope fails (the journal says what was not undone).
    #[arg(long)]
    pub no_undo: bool,
    #[command(flatten)]
    pub ssh: SshArgs,
}

/// SSH settings that belong to the operator, not the plan.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SshArgs {
    /// A private key to try for SSH (after ssh-agent, before ~/.ssh/id_*)
    /// [env: ROLLBOOK_SSH_IDENTITY].
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// A known_hosts file checked before ~/.ssh/known_hosts [env: ROLLBOOK_SSH_KNOWN_HOSTS].
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
}

impl SshArgs {
    /// The SSH runner's options: these, what the environment says of the local user (home,
    /// login name, ssh-agent), and at most `max_connections` open at once.
    pub fn options(&self, max_connections: usize) -> rollbook_ssh::SshOptions {
        rollbook_ssh::SshOptions {
            identity: self.identity.clone(),
            known_hosts: self.known_hosts.clone(),
            agent_socket: non_empty_var("SSH_AUTH_SOCK").map(PathBuf::from),
            max_connections,
            ..rollbook_ssh::SshOptions::new(home_dir(), login_user())
        }
    }

    /// The options for running `plan` at `parallelism`: SSH connections capped below the
    /// open-files limit, with the warning to show when that limit is too low for the plan.
    pub fn options_for(
        &self,
        plan: &CompiledPlan,
        parallelism: usize,
    ) -> (rollbook_ssh::SshOptions, Option<String>) {
        let limits = crate::open_files::current();
        let fan_out = crate::open_files::FanOut::of(plan, parallelism);
        (
            self.options(fan_out.ssh_cap(limits)),
            fan_out.warning(limits),
        )
    }
}

/// An environment variable that is set and not empty.
fn non_empty_var(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// The local user's home: `HOME`, else /etc/passwd's, else `/`.
fn home_dir() -> PathBuf {
    non_empty_var("HOME")
        .map(PathBuf::from)
        .or_else(|| passwd_field(5).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// The local login name (the SSH user when nothing else says).
fn login_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        // `USER` is not set under cron: the name in /etc/passwd.
        .or_else(|| passwd_field(0))
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

/// Field `index` of this process's user's line in /etc/passwd (0 the name, 5 the home).
fn passwd_field(index: usize) -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() }.to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.get(2) == Some(&uid.as_str()))
            .then(|| fields.get(index).map(|f| f.to_string()))
            .flatten()
    })
}

pub(crate) fn host_name() -> String {
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
    /// The question is rendered with the real secrets.
    redactor: Redactor,
}

impl TerminalPrompter {
    /// The answer when nobody is asked: yes with `--yes`, an error (`no_terminal`'s words)
    /// without a terminal; `None` when a person is to be asked.
    fn without_asking(
        &self,
        no_terminal: impl FnOnce() -> String,
    ) -> Option<Result<Answer, String>> {
        if self.yes {
            return Some(Ok(Answer {
                yes: true,
                by: format!("{} (--yes)", self.user),
            }));
        }
        (!std::io::stdin().is_terminal()).then(|| Err(no_terminal()))
    }
}

impl Prompter for TerminalPrompter {
    fn ask<'a>(&'a self, node: &'a str, prompt: &'a str) -> BoxFuture<'a, Result<Answer, String>> {
        Box::pin(async move {
            if let Some(answer) = self.without_asking(|| {
                format!(
                    "step {node} asks a person to confirm, and there is no terminal to ask on; answer with --yes"
                )
            }) {
                return answer;
            }
            let prompt = self.redactor.redact(prompt);
            let question = format!("\n{node}: {prompt}\nType yes to go on: ");
            let user = self.user.clone();
            // One question at a time; the read runs on a blocking thread so that a timeout or
            // Ctrl-C can still stop the step while it waits.
            let _one_at_a_time = self.lock.lock().await;
            // The live display leaves the question alone until it is answered.
            let _paused = crate::display::Paused::new();
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

    /// The plan's phrase typed exactly (`yes` when it has none), or `--yes`.
    fn confirm_irreversible<'a>(
        &'a self,
        node: &'a str,
        phrase: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Answer, String>> {
        Box::pin(async move {
            if let Some(answer) = self.without_asking(|| {
                format!("there is no terminal to ask on: pass --yes to confirm {node}")
            }) {
                return answer;
            }
            let expected = phrase.unwrap_or("yes").to_string();
            let question = format!(
                "\n{}: ",
                rollbook_exec::runners::irreversible_question(node, phrase)
            );
            let user = self.user.clone();
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
                yes: line.trim_end_matches(['\n', '\r']) == expected,
                by: user,
            })
        })
    }
}

/// The one who answers questions during a run: the terminal, or `--yes`.
pub(crate) fn prompter(yes: bool, user: &str, redactor: &Redactor) -> Arc<dyn Prompter> {
    Arc::new(TerminalPrompter {
        yes,
        user: user.to_string(),
        lock: tokio::sync::Mutex::new(()),
        redactor: redactor.clone(),
    })
}

/// The runners this build has; `confirm` questions are asked through `prompter`.
pub(crate) fn runners(
    prompter: Arc<dyn Prompter>,
    ssh: rollbook_ssh::SshOptions,
    groups: Option<rollbook_exec::runners::GroupWatch>,
) -> Runners {
    Runners::new()
        .with(ShellRunner {
            groups,
            open_files: crate::open_files::started_with(),
            hidden_env: crate::state::HIDDEN_FROM_STEPS
                .iter()
                .map(|n| n.to_string())
                .collect(),
            ..ShellRunner::default()
        })
        .with(SleepRunner)
        .with(ConfirmRunner::new(prompter))
        .with(rollbook_http::HttpRunner::new())
        .with(rollbook_ssh::SshRunner::new(ssh))
        .with(rollbook_sql::SqlRunner::new())
}

/// The plan's confirmation phrase, typed exactly, before anything runs.
pub(crate) fn confirm_phrase(plan: &CompiledPlan, yes: bool) -> Result<(), Failure> {
    let Some(phrase) = &plan.confirm else {
        return Ok(());
    };
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Cancelled(format!(
            "plan `{}` asks to type {phrase:?} before it runs, and there is no terminal to ask on: pass --yes to confirm",
            plan.name
        )));
    }
    // What is about to run, as `plan --summary` says it, before the question.
    let doc = crate::dry_run::value(plan, crate::DEFAULT_PARALLELISM);
    let summary = crate::summary::gather(plan, &doc, crate::DEFAULT_PARALLELISM, &[]);
    crate::say_part!(
        "{}",
        crate::terminal::escape(&crate::summary::text(&summary))
    );
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
        Err(Failure::Cancelled("not confirmed: nothing was run".into()))
    }
}

/// Takes the plan's lock. A stale lock says how to go on: resume the run that left it
/// (`run_hint`), or break it.
pub(crate) fn take_lock(
    state: &crate::state::State,
    holder: &LockHolder,
    stale: Stale,
    run_hint: bool,
) -> Result<Box<dyn Lease>, Failure> {
    state.store.lock(holder, stale).map_err(|e| match &e {
        ExecError::StaleLock(h) if run_hint => Failure::Locked(format!(
            "{e}: resume it with `rollbook resume {}`, or take the lock with --break-lock",
            h.run_id
        )),
        ExecError::StaleLock(_) => Failure::Locked(format!("{e}: take the lock with --break-lock")),
        _ => Failure::from(e),
    })
}

/// Who holds the lock for this run: this process, from now.
pub(crate) fn lock_holder(key: &str, run_id: &str, user: &str, since: String) -> LockHolder {
    LockHolder {
        key: key.to_string(),
        run_id: run_id.to_string(),
        user: user.to_string(),
        host: host_name(),
        pid: std::process::id(),
        since,
    }
}

/// For a `resume: ask` step whose outcome is unknown: run it again?
pub(crate) fn ask_rerun(node: &str, yes: bool) -> Result<bool, Failure> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Cancelled(format!(
            "{node} was running when the run stopped and says `resume: ask`; there is no terminal to ask on: pass --yes to run it again"
        )));
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
        _ => Err(Failure::Cancelled("no answer: nothing was run".into())),
    }
}

/// Where a run starts from: nothing (`run`), or what the journal says already happened
/// (`resume`).
pub(crate) struct Start {
    pub secrets: Map<String, Value>,
    pub prior: Prior,
    /// The nodes whose outcome was unknown, for a resume.
    pub resumed: Option<Vec<String>>,
}

/// Runs the plan with the display and the signals (Ctrl-C, SIGTERM, SIGHUP) wired in; the
/// run's status is the answer.
#[allow(clippy::too_many_arguments)]
pub(crate) fn execute(
    compiled: &CompiledPlan,
    state: &crate::state::State,
    journal: &mut dyn RunJournal,
    lease: &dyn Lease,
    start: Start,
    args: &RunArgs,
    user: &str,
    run_id: &str,
    color: bool,
) -> Result<(), Failure> {
    let Start {
        secrets,
        prior,
        resumed,
    } = start;
    // What a resume finished before: their end is not shown again.
    let earlier = prior
        .done
        .keys()
        .filter(|k| k.phase == rollbook_plan::compile::PhaseKind::Main)
        .count();
    let redactor = crate::redaction::redactor(compiled, &secrets, &state.passwords);
    // Stops the local commands still running if this process dies (see `reaper.rs`).
    let reaper = crate::reaper::Reaper::start();
    let (ssh, warning) = args.ssh.options_for(compiled, args.parallelism);
    if let Some(warning) = warning {
        crate::say!("warning: {warning}");
    }
    let prompter = prompter(args.yes, user, &redactor);
    let runners = runners(prompter.clone(), ssh, reaper.as_ref().map(|r| r.watch()));
    let mode = display_mode(args);
    let total: usize = compiled.phases.iter().map(|p| p.graph.node_count()).sum();
    let runtime = crate::commands::runtime()?;
    let control = Control::default();
    let controller = rollbook_exec::Controller {
        user: user.to_string(),
        host: host_name(),
        pid: std::process::id(),
        lock: compiled.lock.clone(),
        token: lease.token(),
        state: state.store.describe(),
    };
    let run_dir = journal.dir().to_path_buf();
    let shared = journal.shared();
    let outcome = runtime.block_on(async {
        let (obs_tx, obs_rx) = rollbook_exec::executor::observe::channel();
        let shown = tokio::spawn(display::show(
            mode,
            display::Run {
                id: run_id.to_string(),
                plan: compiled.name.clone(),
                total,
                earlier,
            },
            color,
            obs_rx,
        ));
        let last_words = LastWords {
            run_dir: run_dir.clone(),
            release: lease.on_exit(),
        };
        let signals = tokio::spawn(on_signals(control.clone(), last_words));
        let lapse = tokio::spawn(on_lapse(
            lease.lapsed(),
            control.clone(),
            run_id.to_string(),
        ));
        let behind = shared.map(|s| tokio::spawn(on_shared_copy(s, run_dir.clone())));
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
                controller: Some(controller),
                no_undo: args.no_undo,
                asker: Some(Asker(prompter)),
            },
            prior,
            resumed,
        };
        let outcome = execution.run().await;
        signals.abort();
        lapse.abort();
        if let Some(behind) = behind {
            behind.abort();
        }
        let _ = shown.await;
        outcome
    })?;
    match journal.settle(SETTLE) {
        Some(copy) if copy.taken_over => crate::say!(
            "warning: run {run_id} was taken over by a later controller: the last {} events of this machine's copy ({}) are not in the shared copy and will not be; they stay here for the review (`rollbook state sync` names them)",
            copy.behind,
            run_dir.display()
        ),
        Some(copy) => crate::say!(
            "warning: the shared copy of run {run_id} is {} events behind this machine's ({}){}: `rollbook state sync` sends them when the database answers",
            copy.behind,
            run_dir.display(),
            copy.error.map(|e| format!(": {e}")).unwrap_or_default()
        ),
        None => {}
    }
    if let Some(reaper) = reaper {
        reaper.finish();
    }
    if mode != Mode::Json {
        crate::say!(
            "{}",
            display::verdict(outcome.status, run_id, &outcome.tolerated)
        );
    }
    match outcome.status {
        RunStatus::Succeeded => Ok(()),
        RunStatus::Cancelled => Err(Failure::Cancelled(String::new())),
        _ => Err(Failure::RunFailed),
    }
}

/// How long the end of a run waits for the shared copy to have every event.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(10);

/// When the lock's lease lapses, the run starts nothing new: what is in flight finishes,
/// `finally` runs, and the run ends cancelled, saying why and how to go on.
async fn on_lapse(
    mut lapsed: tokio::sync::watch::Receiver<Option<String>>,
    control: Control,
    run_id: String,
) {
    let Ok(why) = lapsed.wait_for(Option::is_some).await.map(|w| w.clone()) else {
        return;
    };
    let why = why.unwrap_or_default();
    let reason = format!(
        "{why}: no new step starts; the steps in flight finish and `finally` runs. Go on with `rollbook resume {run_id}` (from any machine with the same --state) once the database answers"
    );
    display::say_above(&format!("warning: {reason}"));
    control.stop_because(reason);
}

/// Says when the shared copy falls behind (the database cannot be reached) and when it has
/// caught up: the run goes on either way, journaled on this machine first.
async fn on_shared_copy(mut copy: tokio::sync::watch::Receiver<SharedCopy>, dir: PathBuf) {
    let mut warned = false;
    while copy.changed().await.is_ok() {
        let now = copy.borrow().clone();
        if now.taken_over {
            display::say_above(&format!(
                "warning: {}; this run's events from now on stay on this machine, in {}",
                now.error.unwrap_or_default(),
                dir.display()
            ));
            return;
        }
        match (&now.error, warned) {
            (Some(e), false) => {
                warned = true;
                display::say_above(&format!(
                    "warning: the shared copy is behind ({e}); the run goes on, journaled in {}, and the shared copy catches up when the database answers",
                    dir.display()
                ));
            }
            (None, true) if now.behind == 0 => {
                warned = false;
                display::say_above("the shared copy has caught up");
            }
            _ => {}
        }
    }
}

/// JSON events with `--events json`, else live on a terminal, else lines.
fn display_mode(args: &RunArgs) -> Mode {
    if args.events.is_some() {
        Mode::Json
    } else if std::io::stderr().is_terminal() {
        Mode::Live
    } else {
        Mode::Lines
    }
}

/// Ctrl-C (SIGINT), SIGTERM and SIGHUP, counted together: the first stops starting steps,
/// the second aborts the running ones, the third exits. SIGTERM is what systemd, Kubernetes
/// and CI runners send, SIGHUP what a closed SSH session sends: each gets `finally` run and the
/// lock released, as the first Ctrl-C does.
async fn on_signals(control: Control, last_words: LastWords) {
    use tokio::signal::unix::{SignalKind, signal};
    // One listener per signal for the whole run: a signal that comes while the last one is
    // being handled is counted, not lost.
    let (Ok(mut interrupt), Ok(mut terminate), Ok(mut hangup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    let mut presses = 0;
    loop {
        let (received, signal_name) = tokio::select! {
            s = interrupt.recv() => (s, "SIGINT"),
            s = terminate.recv() => (s, "SIGTERM"),
            s = hangup.recv() => (s, "SIGHUP"),
        };
        if received.is_none() {
            return;
        }
        presses += 1;
        match presses {
            1 => control.stop.cancel(),
            2 => control.abort.cancel(),
            _ => {
                last_words.say(signal_name);
                std::process::exit(i32::from(exit::CANCELLED))
            }
        }
    }
}

/// What a run does on its way out at a third signal, where nothing is waited for: the
/// journal says why the run has no end, and the lock is given up (for the file lock, its
/// holder file is removed: the lock itself ends with the process), so the next run is not
/// told of a stale lock. The shared copy gets the event at the next `state sync` or resume.
struct LastWords {
    run_dir: std::path::PathBuf,
    release: Box<dyn Fn() + Send + Sync>,
}

impl LastWords {
    fn say(&self, signal: &str) {
        let event = rollbook_exec::Event::RunAbandoned {
            at: rollbook_exec::Timestamp::now(),
            message: format!(
                "rollbook exited at a third signal ({signal}) without waiting for the steps in flight; `rollbook resume` goes on with the run"
            ),
        };
        let _ = rollbook_exec::journal::append_one(&self.run_dir, &event);
        (self.release)();
    }
}
