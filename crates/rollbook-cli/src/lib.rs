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
pub mod display;
pub mod dry_run;
pub mod graph;
pub mod locate;
pub mod report;
pub mod run;
pub mod runs;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use rollbook_plan::compile::{self, CompiledPlan, ParamInput, RunInfo};
use rollbook_plan::{Checked, SourceFile};

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
}

/// Parallelism of `run` when `--parallelism` is not given.
pub const DEFAULT_PARALLELISM: usize = 64;

#[derive(Debug, Parser)]
#[command(
    name = "rollbook",
    version,
    about = "Declarative rollback plans: validate, dry-run and run them.",
    after_help = "Exit codes: 0 ok · 1 the run failed · 2 invalid plan or usage · 3 cancelled or not confirmed · 4 lock held"
)]
pub struct Cli {
    /// Where plans are found by name.
    #[arg(long, global = true, env = "ROLLBOOK_PLANS", default_value = "plans")]
    pub plans_dir: PathBuf,

    /// Where runs are journaled and locks kept.
    #[arg(
        long,
        global = true,
        env = "ROLLBOOK_STATE_DIR",
        default_value = ".rollbook"
    )]
    pub state_dir: PathBuf,

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
        #[arg(long, value_enum, default_value_t = diagnostics::Format::Human)]
        format: diagnostics::Format,
    },
    /// List the plans: name, severity, steps, description.
    List {
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
        #[arg(long, default_value_t = DEFAULT_PARALLELISM)]
        parallelism: usize,
        #[arg(long, value_enum, default_value_t = dry_run::Format::Text)]
        format: dry_run::Format,
        /// Preflight: reach every target the plan would touch, changing nothing (needs the
        /// plan's secrets). Exit 1 when a check fails.
        #[arg(long)]
        check: bool,
        #[command(flatten)]
        ssh: run::SshArgs,
    },
    /// The plan's graph of concrete nodes, as Mermaid or Graphviz.
    Graph {
        plan: String,
        #[command(flatten)]
        bind: BindArgs,
        #[arg(long, value_enum, default_value_t = graph::Format::Mermaid)]
        format: graph::Format,
    },
    /// Run a plan: confirm, lock, execute, journal. Exit 0 succeeded, 1 failed, 3 cancelled
    /// or not confirmed, 4 lock held.
    Run {
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
        run_id: String,
        /// Resume even though the plan file changed since the run started.
        #[arg(long)]
        allow_changed_plan: bool,
        #[command(flatten)]
        run: run::RunArgs,
    },
    /// The runs in the state dir, newest first.
    Runs {
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// One run, node by node: status, attempts, durations, exit codes, errors, outputs.
    Show {
        run_id: String,
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// The incident report of a run, filled from its journal: summary, timeline, targets,
    /// checks, failures, a Gantt chart, and headed blanks for what only people know.
    Report {
        run_id: String,
        #[arg(long, value_enum, default_value_t = report::Format::Markdown)]
        format: report::Format,
    },
    /// Print the JSON Schema of plan files.
    Schema,
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
    /// A YAML file of inventory groups that add to or replace the plan's.
    #[arg(long, value_name = "FILE", env = "ROLLBOOK_INVENTORY")]
    pub inventory: Option<PathBuf>,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    ExitCode::from(run(cli))
}

/// An error shown to the user as one message and an exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn invalid(message: impl Into<String>) -> Self {
        Failure {
            code: exit::INVALID,
            message: message.into(),
        }
    }
}

pub fn run(cli: Cli) -> u8 {
    let style = diagnostics::Style::from_choice(cli.color);
    let result = match cli.command {
        Command::Validate { paths, format } => {
            let paths = if paths.is_empty() {
                vec![cli.plans_dir.clone()]
            } else {
                paths
            };
            cmd_validate(&paths, format, style)
        }
        Command::List { format } => cmd_list(&cli.plans_dir, format, style),
        Command::Plan {
            plan,
            bind,
            reason,
            parallelism,
            format,
            check,
            ssh,
        } => {
            let run = dry_run_info(reason);
            compile_plan(&cli.plans_dir, &plan, &bind, &run, style).and_then(|compiled| {
                let text = match format {
                    dry_run::Format::Text => dry_run::text(&compiled, parallelism),
                    dry_run::Format::Json => dry_run::json(&compiled, parallelism),
                };
                print_stdout(&text)?;
                if check {
                    cmd_check(&compiled, format == dry_run::Format::Json, &ssh)
                } else {
                    Ok(exit::OK)
                }
            })
        }
        Command::Graph { plan, bind, format } => {
            let run = dry_run_info("(dry run)".into());
            compile_plan(&cli.plans_dir, &plan, &bind, &run, style)
                .and_then(|compiled| print_stdout(&graph::render(&compiled, format)))
        }
        Command::Run {
            plan,
            reason,
            bind,
            run,
        } => run::cmd_run(
            &cli.plans_dir,
            &cli.state_dir,
            &plan,
            &reason,
            &bind,
            &run,
            style,
        ),
        Command::Resume {
            run_id,
            allow_changed_plan,
            run,
        } => run::cmd_resume(&cli.state_dir, &run_id, allow_changed_plan, &run, style),
        Command::Runs { format } => {
            commands::runs::cmd_runs(&cli.state_dir, format == ListFormat::Json)
        }
        Command::Show { run_id, format } => {
            commands::show::cmd_show(&cli.state_dir, &run_id, format == ListFormat::Json)
        }
        Command::Report { run_id, format } => {
            commands::report::cmd_report(&cli.state_dir, &run_id, format)
        }
        Command::Schema => print_stdout(&rollbook_plan::schema::plan_schema_json()),
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            for line in f.message.lines() {
                say!("{}", style.error_line(line));
            }
            f.code
        }
    }
}

/// The preflight table goes to stdout after the dry-run text, or to stderr when stdout holds
/// the dry run's JSON.
fn cmd_check(compiled: &CompiledPlan, json: bool, ssh: &run::SshArgs) -> Result<u8, Failure> {
    let secrets = run::resolve_secrets(compiled)?;
    let runners = run::runners(true, &run::current_user(), ssh);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::invalid(format!("cannot start the runtime: {e}")))?;
    let rows = runtime.block_on(check::preflight(compiled, &runners, &secrets));
    let (table, ok) = check::table(&rows);
    if json {
        say_part!("{table}");
    } else {
        print_stdout(&table)?;
    }
    Ok(if ok { exit::OK } else { exit::FAILED })
}

pub(crate) fn print_stdout(text: &str) -> Result<u8, Failure> {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`rollbook plan x | head`) is not an error worth reporting.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    Ok(exit::OK)
}

fn dry_run_info(reason: String) -> RunInfo {
    RunInfo {
        id: "dry-run".into(),
        reason,
        user: run::current_user(),
        started_at: "(at run time)".into(),
    }
}

fn cmd_validate(
    paths: &[PathBuf],
    format: diagnostics::Format,
    style: diagnostics::Style,
) -> Result<u8, Failure> {
    let files = locate::plan_files(paths).map_err(Failure::invalid)?;
    if files.is_empty() {
        return Err(Failure::invalid(format!(
            "no plan files (*.yaml) in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut checked = Vec::new();
    for path in &files {
        checked.push(check_file(path)?);
    }
    let out = diagnostics::render_all(&checked, format, style);
    match format {
        diagnostics::Format::Human => say_part!("{out}"),
        _ => {
            let _ = print_stdout(&out);
        }
    }
    let failed = checked.iter().any(|c| !c.is_ok());
    Ok(if failed { exit::INVALID } else { exit::OK })
}

/// Reads and checks one plan file.
pub fn check_file(path: &Path) -> Result<Checked, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::invalid(format!("cannot read {}: {e}", path.display())))?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_string);
    Ok(rollbook_plan::check(
        SourceFile::new(path.display().to_string(), text),
        stem.as_deref(),
    ))
}

fn cmd_list(dir: &Path, format: ListFormat, style: diagnostics::Style) -> Result<u8, Failure> {
    let files = locate::plan_files(&[dir.to_path_buf()]).map_err(Failure::invalid)?;
    let mut rows = Vec::new();
    let mut invalid = false;
    for path in &files {
        let checked = check_file(path)?;
        invalid |= !checked.is_ok();
        rows.push(ListRow::new(path, &checked));
    }
    let out = match format {
        ListFormat::Json => serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n",
        ListFormat::Text => list_text(&rows),
    };
    print_stdout(&out)?;
    if invalid {
        say!(
            "{}",
            style.error_line("some plans are invalid: run `rollbook validate` for the details")
        );
        return Ok(exit::INVALID);
    }
    Ok(exit::OK)
}

#[derive(Debug, serde::Serialize)]
struct ListRow {
    name: String,
    severity: Option<&'static str>,
    steps: usize,
    description: String,
    path: String,
    valid: bool,
}

impl ListRow {
    fn new(path: &Path, checked: &Checked) -> Self {
        let plan = checked.plan.as_ref();
        let stem = || {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        ListRow {
            name: plan
                .map(|p| p.name.value.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(stem),
            severity: plan
                .and_then(|p| p.severity.as_ref())
                .map(|s| s.value.as_str()),
            steps: plan.map_or(0, count_steps),
            description: plan
                .and_then(|p| p.description.as_ref())
                .map(|d| d.value.clone())
                .unwrap_or_default(),
            path: path.display().to_string(),
            valid: checked.is_ok(),
        }
    }
}

/// Steps written in a plan, groups' steps included.
fn count_steps(plan: &rollbook_plan::Plan) -> usize {
    fn count(steps: &[rollbook_plan::model::Step]) -> usize {
        steps
            .iter()
            .map(|s| 1 + s.steps.as_deref().map_or(0, count))
            .sum()
    }
    count(&plan.steps) + count(&plan.on_failure) + count(&plan.finally)
}

fn list_text(rows: &[ListRow]) -> String {
    let name_w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!(
        "{:name_w$}  {:8}  {:>5}  DESCRIPTION\n",
        "NAME", "SEVERITY", "STEPS"
    );
    for r in rows {
        let severity = if r.valid {
            r.severity.unwrap_or("-")
        } else {
            "INVALID"
        };
        out.push_str(&format!(
            "{:name_w$}  {:8}  {:>5}  {}\n",
            r.name, severity, r.steps, r.description
        ));
    }
    out
}

/// Finds, checks and compiles a plan with its params; diagnostics and param errors are
/// printed here and become exit code 2.
pub fn compile_plan(
    plans_dir: &Path,
    plan: &str,
    bind: &BindArgs,
    run: &RunInfo,
    style: diagnostics::Style,
) -> Result<CompiledPlan, Failure> {
    let path = locate::find_plan(plans_dir, plan).map_err(Failure::invalid)?;
    let checked = check_file(&path)?;
    if !checked.is_ok() {
        say_part!(
            "{}",
            diagnostics::render_all(
                std::slice::from_ref(&checked),
                diagnostics::Format::Human,
                style
            )
        );
        return Err(Failure::invalid(""));
    }
    let Some(plan) = checked.plan else {
        return Err(Failure::invalid("the plan could not be read"));
    };
    let mut input =
        ParamInput::from_args(&bind.params).map_err(|e| Failure::invalid(e.to_string()))?;
    if let Some(file) = &bind.params_file {
        let source = read_source(file)?;
        input.file = rollbook_plan::load_params_file(&source)
            .map_err(|d| side_file_failure(&source, &d, style))?;
    }
    let inventory = match &bind.inventory {
        Some(file) => {
            let source = read_source(file)?;
            rollbook_plan::load_inventory(&source)
                .map_err(|d| side_file_failure(&source, &d, style))?
        }
        None => BTreeMap::new(),
    };
    let params =
        compile::bind_params(&plan, &input).map_err(|e| Failure::invalid(e.to_string()))?;
    compile::compile(&plan, params, &inventory, run).map_err(|e| {
        let at = match &e {
            rollbook_plan::Error::Compile {
                span: Some(span), ..
            } => {
                let (line, col) = checked.file.line_col(span.offset);
                format!("{}:{line}:{col}: ", checked.file.name)
            }
            _ => String::new(),
        };
        Failure::invalid(format!("{at}{e}"))
    })
}

fn read_source(path: &Path) -> Result<SourceFile, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::invalid(format!("cannot read {}: {e}", path.display())))?;
    Ok(SourceFile::new(path.display().to_string(), text))
}

fn side_file_failure(
    source: &SourceFile,
    diags: &[rollbook_plan::Diagnostic],
    style: diagnostics::Style,
) -> Failure {
    let checked = Checked {
        file: source.clone(),
        plan: None,
        diagnostics: diags.to_vec(),
    };
    say_part!(
        "{}",
        diagnostics::render_all(&[checked], diagnostics::Format::Human, style)
    );
    Failure::invalid("")
}
