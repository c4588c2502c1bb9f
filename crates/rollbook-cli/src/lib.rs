//! The `rollbook` command: argument parsing, finding plans, and turning library results into
//! output and exit codes. The only crate that prints, reads the environment or exits.

/// `eprintln!` that never panics. A rollback must not stop half way because the terminal or
/// pipe that shows it went away (`rollbook run ... 2>&1 | head`): a line that cannot be shown
/// is dropped; the journal has it.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!` that never panics (see [`say!`]).
#[macro_export]
macro_rules! say_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut err = std::io::stderr();
        let _ = write!(err, $($arg)*);
        let _ = err.flush();
    }};
}

pub mod check;
pub mod commands;
pub mod diagnostics;
pub mod diff;
pub mod display;
pub mod dry_run;
pub mod graph;
pub mod locate;
pub mod open_files;
pub mod readiness;
pub mod reaper;
pub mod redaction;
pub mod report;
pub mod run;
pub mod runs;
pub mod state;
pub mod summary;
pub mod terminal;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit codes, documented in `docs/cli.md`.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The run failed.
    pub const FAILED: u8 = 1;
    /// An invalid plan, bad params or bad usage.
    pub const INVALID: u8 = 2;
    /// Cancelled, or not confirmed.
    pub const CANCELLED: u8 = 3;
    /// Another run holds the plan's lock.
    pub const LOCKED: u8 = 4;
    /// rollbook itself could not do its job: the state directory cannot be read or written,
    /// a run's `run.json` or journal is unreadable, the async runtime does not start.
    pub const INTERNAL: u8 = 5;
}

/// `rollbook --version`: the version, the commit it was built from, the build's date.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ROLLBOOK_COMMIT"),
    ", built ",
    env!("ROLLBOOK_BUILD_DATE"),
    ")"
);

/// Parallelism of `run` when `--parallelism` is not given.
pub const DEFAULT_PARALLELISM: usize = 64;

/// `--parallelism` is 1 or more: with 0 nothing would ever start.
pub(crate) fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("it must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "rollbook",
    version = VERSION,
    about = "Declarative rollback plans: validate, dry-run and run them.",
    after_help = "Exit codes: 0 ok · 1 the run failed (readiness: a plan is not ready) · 2 invalid plan or usage · 3 cancelled or not confirmed · 4 lock held · 5 rollbook could not do its job (state directory or shared store, journal, runtime)"
)]
pub struct Cli {
    // The options the environment can set read it in `Cli::environment`, not through clap's
    // `env`: clap would show such an option in usage lines as if it were required.
    /// Where plans are found by name [env: ROLLBOOK_PLANS].
    #[arg(long, global = true, default_value = "plans")]
    pub plans_dir: PathBuf,

    /// Where runs are journaled and locks kept [env: ROLLBOOK_STATE_DIR].
    #[arg(long, global = true, default_value = ".rollbook")]
    pub state_dir: PathBuf,

    /// A shared store for runs, journals and locks instead of the state directory:
    /// `postgres://USER@HOST:PORT/DB` (`sslmode`, `sslrootcert` as libpq has them). The
    /// password comes from ROLLBOOK_STATE_PASSWORD or the file ROLLBOOK_STATE_PASSWORD_FILE
    /// names. See docs/team-state.md [env: ROLLBOOK_STATE].
    #[arg(long, global = true, value_name = "URL")]
    pub state: Option<String>,

    /// Colors in diagnostics and progress: auto (on a terminal, unless NO_COLOR), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check plans and report every problem with its file, line and column.
    Validate {
        /// Plan files or directories (default: the plans directory).
        paths: Vec<PathBuf>,
        /// How problems are printed: text (with the source lines), json, github (annotations
        /// for a pull request) or sarif (code scanning).
        #[arg(long, value_enum, default_value_t = diagnostics::Format::Text)]
        format: diagnostics::Format,
        /// Fail (exit 2) on warnings too, as CI should.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// List the plans: name, severity, steps, description.
    List {
        /// text for people, json for tools.
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Dry run: every node that would run, in order, rendered, with secrets masked.
    Plan {
        /// A plan name (found in the plans directory) or a path to a plan file.
        plan: String,
        #[command(flatten)]
        bind: BindArgs,
        /// The reason, as `run.reason` in templates.
        #[arg(long, default_value = "(dry run)")]
        reason: String,
        /// Parallelism a run would use, shown in the output.
        #[arg(long, default_value_t = DEFAULT_PARALLELISM, value_parser = at_least_one)]
        parallelism: usize,
        /// text for people, json for tools.
        #[arg(long, value_enum, default_value_t = dry_run::Format::Text)]
        format: dry_run::Format,
        /// Preflight: reach every target the plan would touch, changing nothing (needs the
        /// plan's secrets). Exit 1 when a check fails.
        #[arg(long)]
        check: bool,
        /// What a reviewer reads first instead of every node: phases, fan-outs, confirmations,
        /// irreversible steps, targets, connections, and the time the plan takes at worst
        /// against its `budget` (and past runs' times, from the state).
        #[arg(long, conflicts_with = "check")]
        summary: bool,
        #[command(flatten)]
        ssh: run::SshArgs,
    },
    /// What a change does to the rollbacks: two versions of plans compared as their dry runs
    /// (risks first: concurrency up, a confirmation gone, new irreversible steps), for review.
    Diff {
        /// The version before: a git revision (`origin/main`), or a plan file.
        base: String,
        /// The version after: a git revision, or a plan file (with a file as BASE); left
        /// out, the working tree.
        head: Option<String>,
        /// Plans to compare, by name or path (default: every plan that differs).
        #[arg(long = "plan", value_name = "PLAN")]
        plans: Vec<String>,
        #[command(flatten)]
        bind: BindArgs,
        /// text for a terminal, markdown for a pull-request comment, json for tools.
        #[arg(long, value_enum, default_value_t = commands::diff::Format::Text)]
        format: commands::diff::Format,
    },
    /// The plan's graph of concrete nodes, as Mermaid or Graphviz.
    Graph {
        /// A plan name (found in the plans directory) or a path to a plan file.
        plan: String,
        #[command(flatten)]
        bind: BindArgs,
        /// mermaid (renders in GitHub and GitLab Markdown) or dot (Graphviz).
        #[arg(long, value_enum, default_value_t = graph::Format::Mermaid)]
        format: graph::Format,
    },
    /// The inventory a plan will see: groups with their hosts (children expanded), each
    /// host's address, port, user and vars; `--graph` draws groups → children → hosts.
    Inventory {
        /// A plan name or path: its inventory, with `--inventory`'s groups over it.
        plan: Option<String>,
        /// A YAML file of inventory groups, or a directory of them [env: ROLLBOOK_INVENTORY].
        #[arg(long, value_name = "FILE|DIR")]
        inventory: Option<PathBuf>,
        /// A Mermaid graph of groups → children → hosts instead of the list.
        #[arg(long, conflicts_with = "format")]
        graph: bool,
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Run a plan: confirm, lock, execute, journal. Exit 0 succeeded, 1 failed, 3 cancelled
    /// or not confirmed, 4 lock held.
    Run {
        /// A plan name (found in the plans directory) or a path to a plan file.
        plan: String,
        /// Why the rollback runs: journaled, shown in the report and as `run.reason`.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        bind: BindArgs,
        #[command(flatten)]
        run: run::RunArgs,
    },
    /// Go on with a run that crashed, failed or was cancelled: what succeeded is not run again.
    Resume {
        /// The run's id, as `rollbook runs` lists it (20261125-091500-a1b2).
        run_id: String,
        /// Resume even though the plan file changed since the run started.
        #[arg(long)]
        allow_changed_plan: bool,
        /// A node a person finished by hand: it is not run, and the journal says who did it
        /// and why (`--reason`). Repeatable.
        #[arg(long = "mark-done", value_name = "NODE", requires = "reason")]
        mark_done: Vec<String>,
        /// Why the nodes of `--mark-done` were finished by hand.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        #[command(flatten)]
        run: run::RunArgs,
    },
    /// The runs of the state directory or shared store, newest first; filter by plan, status, start, user.
    Runs {
        #[command(flatten)]
        filter: commands::runs::Filter,
        /// text for people, json for tools.
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// One run, node by node: status, attempts, durations, exit codes, errors, outputs.
    Show {
        /// The run's id, as `rollbook runs` lists it (20261125-091500-a1b2).
        run_id: String,
        /// text for people, json for tools.
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// The incident report of a run, filled from its journal: summary, timeline, targets,
    /// checks, failures, a Gantt chart, and headed blanks for what only people know.
    Report {
        /// The run's id, as `rollbook runs` lists it (20261125-091500-a1b2).
        run_id: String,
        /// markdown (the incident report) or json (its facts, for tools).
        #[arg(long, value_enum, default_value_t = report::Format::Markdown)]
        format: report::Format,
        /// A Handlebars template for the Markdown report, with the report's facts (the JSON
        /// document) and `sections.NAME` (each built-in section) as its context.
        #[arg(long, value_name = "FILE")]
        template: Option<PathBuf>,
    },
    /// Whether plans were practised lately: a run of the current plan text that succeeded,
    /// without --limit, within --max-age. Exit 0 when all are ready, 1 when one is not.
    Readiness {
        /// Plan names or paths (default: every plan in the plans directory).
        plans: Vec<String>,
        /// The oldest a practice may be (`30d`, `2w`, `36h`).
        #[arg(long, value_name = "DURATION", default_value = "30d")]
        max_age: commands::readiness::MaxAge,
        /// Only runs in this environment count: an inventory's stem (`staging`), its path
        /// as the run was given it, or `-` for runs without an inventory.
        #[arg(long, value_name = "NAME")]
        inventory: Option<String>,
        /// text for people, json for tools.
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Print the JSON Schema of plan files.
    Schema,
    /// Print the completion script of a shell: `rollbook completions bash > /etc/bash_completion.d/rollbook`.
    Completions {
        /// bash, zsh, fish, powershell or elvish.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (`rollbook.1`, `rollbook-run.1`, …) into a directory.
    Man {
        /// Where to write them (created if missing), e.g. `/usr/local/share/man/man1`.
        dir: PathBuf,
    },
    /// The shared store (`--state postgres://…`): create its tables, send what this machine
    /// has not sent yet, import a state directory's runs.
    State {
        #[command(subcommand)]
        command: commands::state::StateCommand,
    },
    /// (Internal) The reaper of a run's local process groups: see `reaper.rs`.
    #[command(name = "__reap", hide = true)]
    Reap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

/// How a plan's params and inventory are given.
#[derive(Debug, clap::Args)]
pub struct BindArgs {
    /// A param value: `--param region=eu-west` (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// A YAML file of param values.
    #[arg(long, value_name = "FILE")]
    pub params_file: Option<PathBuf>,
    /// A YAML file of inventory groups that add to or replace the plan's, or a directory
    /// whose `*.yaml`/`*.yml` files are read as one inventory [env: ROLLBOOK_INVENTORY].
    #[arg(long, value_name = "FILE|DIR")]
    pub inventory: Option<PathBuf>,
    /// Narrow the run to these hosts: host names, group names, globs (`web-*`). `for_each`
    /// instances over other hosts of the inventory are left out (repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub limit: Vec<String>,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    // Before anything is opened: a fan-out needs a descriptor per connection (see
    // `open_files`).
    let _ = open_files::raise();
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let mut cli =
        <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    cli.environment(&matches);
    ExitCode::from(run(cli))
}

/// An environment variable that is set and not empty.
fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Cli {
    /// What the environment sets where the command line does not: `ROLLBOOK_PLANS`,
    /// `ROLLBOOK_STATE_DIR`, `ROLLBOOK_STATE`, and a command's `ROLLBOOK_INVENTORY` and SSH
    /// settings. An option typed on the command line wins.
    pub fn environment(&mut self, matches: &clap::ArgMatches) {
        let typed = |id: &str| {
            matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
                || matches.subcommand().is_some_and(|(_, m)| {
                    m.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
                })
        };
        if !typed("plans_dir")
            && let Some(dir) = env_value("ROLLBOOK_PLANS")
        {
            self.plans_dir = dir.into();
        }
        if !typed("state_dir")
            && let Some(dir) = env_value("ROLLBOOK_STATE_DIR")
        {
            self.state_dir = dir.into();
        }
        if self.state.is_none() {
            self.state = env_value("ROLLBOOK_STATE");
        }
        let (bind, ssh) = match &mut self.command {
            Command::Plan { bind, ssh, .. } => (Some(bind), Some(ssh)),
            Command::Run { bind, run, .. } => (Some(bind), Some(&mut run.ssh)),
            Command::Resume { run, .. } => (None, Some(&mut run.ssh)),
            Command::Graph { bind, .. } | Command::Diff { bind, .. } => (Some(bind), None),
            Command::Inventory { inventory, .. } => {
                if inventory.is_none() {
                    *inventory = env_value("ROLLBOOK_INVENTORY").map(PathBuf::from);
                }
                (None, None)
            }
            _ => (None, None),
        };
        if let Some(bind) = bind
            && bind.inventory.is_none()
        {
            bind.inventory = env_value("ROLLBOOK_INVENTORY").map(PathBuf::from);
        }
        if let Some(ssh) = ssh {
            if ssh.identity.is_none() {
                ssh.identity = env_value("ROLLBOOK_SSH_IDENTITY").map(PathBuf::from);
            }
            if ssh.known_hosts.is_none() {
                ssh.known_hosts = env_value("ROLLBOOK_SSH_KNOWN_HOSTS").map(PathBuf::from);
            }
        }
    }
}

/// Why a command did not succeed. The one place where faults become exit codes
/// ([`Failure::code`]), so the same fault gives the same code in every command.
#[derive(Debug)]
pub enum Failure {
    /// An invalid plan, bad params or bad usage, or a run id that does not exist (exit 2).
    Invalid(String),
    /// The run (or the preflight) failed; what failed is already on the screen (exit 1).
    RunFailed,
    /// Cancelled, or not confirmed (exit 3). The message may be empty when the display has
    /// already said so.
    Cancelled(String),
    /// A verdict of no: a plan is not ready (`readiness`), already shown; the message sums
    /// it up (exit 1, as a run that failed).
    NotReady(String),
    /// Another run holds the plan's lock (exit 4).
    Locked(String),
    /// rollbook itself could not do its job: I/O on the state directory, an unreadable
    /// `run.json` or journal, a runtime that does not start (exit 5).
    Internal(String),
    /// The problem is already reported (diagnostics printed); only the code is left.
    AlreadyReported(u8),
}

impl Failure {
    pub fn invalid(message: impl Into<String>) -> Self {
        Failure::Invalid(message.into())
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Failure::Internal(message.into())
    }

    /// The process exit code of this failure.
    pub fn code(&self) -> u8 {
        match self {
            Failure::Invalid(_) => exit::INVALID,
            Failure::RunFailed | Failure::NotReady(_) => exit::FAILED,
            Failure::Cancelled(_) => exit::CANCELLED,
            Failure::Locked(_) => exit::LOCKED,
            Failure::Internal(_) => exit::INTERNAL,
            Failure::AlreadyReported(code) => *code,
        }
    }

    /// What to tell the user, if anything is left to tell.
    pub fn message(&self) -> Option<&str> {
        match self {
            Failure::Invalid(m)
            | Failure::NotReady(m)
            | Failure::Cancelled(m)
            | Failure::Locked(m)
            | Failure::Internal(m) => Some(m.as_str()).filter(|m| !m.is_empty()),
            Failure::RunFailed | Failure::AlreadyReported(_) => None,
        }
    }
}

impl From<rollbook_exec::Error> for Failure {
    /// Errors of the executor's side of things: the lock, the journal, the state directory.
    fn from(e: rollbook_exec::Error) -> Self {
        use rollbook_exec::Error as E;
        match e {
            E::LockHeld(_) | E::StaleLock(_) => Failure::Locked(e.to_string()),
            E::Io { .. } | E::Corrupt { .. } | E::NoRunner(_) | E::Store(_) => {
                Failure::Internal(e.to_string())
            }
        }
    }
}

/// Runs one command and returns its exit code.
pub fn run(cli: Cli) -> u8 {
    let style = diagnostics::Style::from_choice(cli.color);
    match dispatch(cli, style) {
        Ok(()) => exit::OK,
        Err(failure) => {
            if let Some(message) = failure.message() {
                for line in message.lines() {
                    say!("{}", style.error_line(line));
                }
            }
            failure.code()
        }
    }
}

fn dispatch(cli: Cli, style: diagnostics::Style) -> Result<(), Failure> {
    let Cli {
        plans_dir,
        state_dir,
        state: state_url,
        command,
        ..
    } = cli;
    let open_state = || state::State::open(state_url.as_deref(), &state_dir);
    match command {
        Command::Validate {
            paths,
            format,
            deny_warnings,
        } => commands::validate::run(&plans_dir, paths, format, deny_warnings, style),
        Command::List { format } => commands::list::run(&plans_dir, &open_state()?, format, style),
        Command::Plan {
            plan,
            bind,
            reason,
            parallelism,
            format,
            check,
            summary,
            ssh,
        } => {
            // Past runs' times, when the state can be read; a summary does without them.
            let runs = if summary {
                open_state()
                    .ok()
                    .and_then(|s| s.store.list().ok())
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            let request = commands::plan::Request {
                plan: &plan,
                bind: &bind,
                reason,
                parallelism,
                format,
                check,
                summary: summary.then_some(runs),
                ssh: &ssh,
            };
            commands::plan::run(&plans_dir, &request, style)
        }
        Command::Diff {
            base,
            head,
            plans,
            bind,
            format,
        } => {
            let request = commands::diff::Request {
                base: &base,
                head: head.as_deref(),
                plans: &plans,
                bind: &bind,
                format,
            };
            commands::diff::run(&plans_dir, &request, style)
        }
        Command::Inventory {
            plan,
            inventory,
            graph,
            format,
        } => {
            let request = commands::inventory::Request {
                plan: plan.as_deref(),
                inventory: inventory.as_deref(),
                graph,
                json: format == ListFormat::Json,
            };
            commands::inventory::run(&plans_dir, &request, style)
        }
        Command::Graph { plan, bind, format } => {
            commands::graph::run(&plans_dir, &plan, &bind, format, style)
        }
        Command::Run {
            plan,
            reason,
            bind,
            run,
        } => commands::run::run(
            &plans_dir,
            &open_state()?,
            &plan,
            &reason,
            &bind,
            &run,
            style,
        ),
        Command::Resume {
            run_id,
            allow_changed_plan,
            mark_done,
            reason,
            run,
        } => {
            let by_hand = commands::resume::ByHand {
                nodes: mark_done,
                reason: reason.unwrap_or_default(),
            };
            commands::resume::run(
                &open_state()?,
                &run_id,
                allow_changed_plan,
                &by_hand,
                &run,
                style,
            )
        }
        Command::Runs { filter, format } => {
            commands::runs::run(&open_state()?, &filter, format == ListFormat::Json)
        }
        Command::Show { run_id, format } => {
            commands::show::run(&open_state()?, &run_id, format == ListFormat::Json)
        }
        Command::Report {
            run_id,
            format,
            template,
        } => commands::report::run(&open_state()?, &run_id, format, template.as_deref()),
        Command::Readiness {
            plans,
            max_age,
            inventory,
            format,
        } => {
            let request = commands::readiness::Request {
                plans: &plans,
                max_age: &max_age,
                inventory,
                json: format == ListFormat::Json,
            };
            commands::readiness::run(&plans_dir, &open_state()?, &request)
        }
        Command::Schema => commands::schema::run(),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "rollbook",
                &mut out,
            );
            print(&String::from_utf8_lossy(&out));
            Ok(())
        }
        Command::Man { dir } => commands::schema::man(&dir),
        Command::State { command } => {
            commands::state::run(state_url.as_deref(), &state_dir, &command)
        }
        Command::Reap => {
            reaper::reap();
            Ok(())
        }
    }
}

/// Writes to stdout. A closed pipe (`rollbook plan x | head`) is not an error worth
/// reporting.
pub(crate) fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
