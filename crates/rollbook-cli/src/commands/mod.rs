//! One module per command: each has a `run` that does the command and answers `Ok(())` or a
//! [`Failure`]. What several commands share lives here: reading a plan and the files that
//! bind it, each once, and compiling them.

pub mod diff;
pub mod graph;
pub mod inventory;
pub mod list;
pub mod plan;
pub mod readiness;
pub mod report;
pub mod resume;
pub mod run;
pub mod runs;
pub mod schema;
pub mod show;
pub mod state;
pub mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rollbook_plan::calls::Library;
use rollbook_plan::compile::{self, CompiledPlan, ParamInput, RunInfo};
use rollbook_plan::{Checked, Plan, SourceFile};

use crate::{BindArgs, Failure, diagnostics, locate};

/// A plan file as read from disk, once: what is compiled is what a run journals and hashes.
pub struct PlanFile {
    pub path: PathBuf,
    pub source: SourceFile,
    /// The plans it calls (`plan: NAME`), read once too: a run journals these texts.
    pub called: Called,
}

/// The plans a plan calls, found by name in the plans directory, with the ones they call.
#[derive(Default)]
pub struct Called {
    /// Their texts by name, and the names of every plan in the plans directory.
    pub library: Library,
    /// Where each was read.
    pub paths: BTreeMap<String, PathBuf>,
}

impl Called {
    /// The plans `source` calls, and those they call, by name (their file stem) among
    /// `first` and then the plans of `plans_dir`. Nothing is looked up for a plan that calls
    /// none.
    pub fn find(plans_dir: &Path, source: &SourceFile, first: &[PathBuf]) -> Result<Self, Failure> {
        Self::find_with(plans_dir, source, first, &|path| {
            read_source(path).map(Some)
        })
    }

    /// [`Called::find`], with the called plans' texts read by `read` (`None`: not there),
    /// e.g. at a git revision (`diff`).
    pub fn find_with(
        plans_dir: &Path,
        source: &SourceFile,
        first: &[PathBuf],
        read: &dyn Fn(&Path) -> Result<Option<SourceFile>, Failure>,
    ) -> Result<Self, Failure> {
        let mut called = Called::default();
        let mut ignored = Vec::new();
        let Some(plan) = rollbook_plan::load(source, &mut ignored) else {
            return Ok(called);
        };
        let mut todo: Vec<String> = rollbook_plan::calls::called_names(&plan)
            .into_iter()
            .map(|n| n.value.clone())
            .collect();
        if todo.is_empty() {
            return Ok(called);
        }
        let mut files = first.to_vec();
        files.extend(locate::plan_files(&[plans_dir.to_path_buf()]).unwrap_or_default());
        let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
        for file in files {
            if let Some(stem) = file.file_stem().and_then(|s| s.to_str()) {
                by_name.entry(stem.to_string()).or_insert(file);
            }
        }
        for name in by_name.keys() {
            called.library.know(name.clone());
        }
        while let Some(name) = todo.pop() {
            if called.library.contains(&name) {
                continue;
            }
            let Some(path) = by_name.get(&name) else {
                continue;
            };
            let Some(text) = read(path)? else {
                continue;
            };
            if let Some(plan) = rollbook_plan::load(&text, &mut ignored) {
                todo.extend(
                    rollbook_plan::calls::called_names(&plan)
                        .into_iter()
                        .map(|n| n.value.clone()),
                );
            }
            called.paths.insert(name.clone(), path.clone());
            called.library.insert(name, text);
        }
        Ok(called)
    }

    /// What a run's `run.json` keeps of them: path, hash and text by name.
    pub fn journaled(&self) -> BTreeMap<String, rollbook_exec::journal::CalledPlan> {
        self.library
            .files()
            .map(|(name, file)| {
                let path = self
                    .paths
                    .get(name)
                    .map_or_else(|| file.name.clone(), |p| p.display().to_string());
                let plan = rollbook_exec::journal::CalledPlan {
                    path,
                    hash: rollbook_exec::journal::hash_text(&file.text),
                    text: file.text.to_string(),
                };
                (name.to_string(), plan)
            })
            .collect()
    }
}

impl PlanFile {
    /// Finds a plan by name or path and reads it, and the plans it calls.
    pub fn find(plans_dir: &Path, plan: &str) -> Result<Self, Failure> {
        let path = locate::find_plan(plans_dir, plan).map_err(Failure::invalid)?;
        let source = read_source(&path)?;
        let called = Called::find(plans_dir, &source, &[])?;
        Ok(PlanFile {
            path,
            source,
            called,
        })
    }

    /// The file name without its extension: what the plan's `name` must be.
    pub fn stem(&self) -> Option<&str> {
        self.path.file_stem().and_then(|s| s.to_str())
    }
}

/// The files given with `--params-file` and `--inventory`, each read once.
pub struct BindFiles {
    pub params: Option<SourceFile>,
    pub inventory: Option<InventoryFiles>,
}

impl BindFiles {
    pub fn read(bind: &BindArgs) -> Result<Self, Failure> {
        Ok(BindFiles {
            params: bind.params_file.as_deref().map(read_source).transpose()?,
            inventory: bind
                .inventory
                .as_deref()
                .map(InventoryFiles::read)
                .transpose()?,
        })
    }
}

/// What `--inventory` names: one file, or a directory whose `*.yaml` and `*.yml` files (not
/// those of its subdirectories) are one inventory, read in the order of their names.
pub struct InventoryFiles {
    pub files: Vec<SourceFile>,
    /// A directory was given (its files are kept as a bundle by a run).
    pub dir: bool,
}

impl InventoryFiles {
    pub fn read(path: &Path) -> Result<Self, Failure> {
        if !path.is_dir() {
            return Ok(InventoryFiles {
                files: vec![read_source(path)?],
                dir: false,
            });
        }
        let cannot =
            |e: std::io::Error| Failure::invalid(format!("cannot read {}: {e}", path.display()));
        let mut paths: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(cannot)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(cannot)?;
        paths.retain(|p| {
            p.extension().is_some_and(|e| e == "yaml" || e == "yml")
                && std::fs::metadata(p).is_ok_and(|m| m.is_file())
        });
        paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        if paths.is_empty() {
            return Err(Failure::invalid(format!(
                "--inventory {}: the directory has no *.yaml or *.yml file",
                path.display()
            )));
        }
        Ok(InventoryFiles {
            files: paths
                .iter()
                .map(|p| read_source(p))
                .collect::<Result<_, _>>()?,
            dir: true,
        })
    }

    /// The groups of all the files; their diagnostics printed otherwise (exit 2).
    pub fn load(
        &self,
        style: diagnostics::Style,
    ) -> Result<BTreeMap<String, rollbook_plan::model::Group>, Failure> {
        rollbook_plan::load_inventory_files(&self.files).map_err(|diags| {
            let errors = diags.iter().filter(|(_, d)| d.is_error()).count();
            let mut out = String::new();
            for (i, d) in &diags {
                let file = Checked {
                    file: self.files[*i].clone(),
                    plan: None,
                    diagnostics: Vec::new(),
                };
                out.push_str(&diagnostics::render_one(&file, d, style));
            }
            let bad: std::collections::BTreeSet<usize> = diags.iter().map(|(i, _)| *i).collect();
            let files = self.files.len();
            out.push_str(&style.error_line(&format!(
                "{errors} {} in the inventory ({} of {files} file{})",
                if errors == 1 { "error" } else { "errors" },
                bad.len(),
                if files == 1 { "" } else { "s" },
            )));
            out.push('\n');
            say_part!("{out}");
            Failure::AlreadyReported(crate::exit::INVALID)
        })
    }

    /// The text a run keeps as `inventory.yaml`: the file's own, or the directory's files as
    /// one YAML document ([`rollbook_plan::inventory::bundle`]).
    pub fn text_for_run(&self) -> String {
        match (self.dir, self.files.as_slice()) {
            (false, [file]) => file.text.to_string(),
            _ => rollbook_plan::inventory::bundle(&self.files),
        }
    }
}

/// Finds, reads, checks and compiles a plan with its params (`plan`, `graph`).
pub fn compile_plan(
    plans_dir: &Path,
    plan: &str,
    bind: &BindArgs,
    run: &RunInfo,
    style: diagnostics::Style,
) -> Result<CompiledPlan, Failure> {
    let file = PlanFile::find(plans_dir, plan)?;
    let files = BindFiles::read(bind)?;
    compile_source(&file, bind, &files, run, style)
}

/// Checks and compiles a plan already read, with the params and inventory already read.
/// Diagnostics and param errors are printed here and become exit code 2.
pub fn compile_source(
    file: &PlanFile,
    bind: &BindArgs,
    files: &BindFiles,
    run: &RunInfo,
    style: diagnostics::Style,
) -> Result<CompiledPlan, Failure> {
    let checked = rollbook_plan::check_with(file.source.clone(), file.stem(), &file.called.library);
    let plan = valid_plan(&checked, style)?;
    let mut input =
        ParamInput::from_args(&bind.params).map_err(|e| Failure::invalid(e.to_string()))?;
    if let Some(source) = &files.params {
        input.file = rollbook_plan::load_params_file(source)
            .map_err(|d| side_file_failure(source, &d, style))?;
    }
    let inventory = match &files.inventory {
        Some(inventory) => inventory.load(style)?,
        None => BTreeMap::new(),
    };
    let params = compile::bind_params(plan, &input).map_err(|e| Failure::invalid(e.to_string()))?;
    compile::compile_with(
        plan,
        params,
        &inventory,
        run,
        &bind.limit,
        &file.called.library,
    )
    .map_err(|e| compile_failure(&checked, &e))
}

/// The plan of a check without errors; otherwise its diagnostics are printed (exit 2).
pub fn valid_plan(checked: &Checked, style: diagnostics::Style) -> Result<&Plan, Failure> {
    if !checked.is_ok() {
        return Err(diagnostics_failure(checked, style));
    }
    checked
        .plan
        .as_ref()
        .ok_or_else(|| Failure::invalid("the plan could not be read"))
}

/// A compile error, with the plan's file, line and column when it points somewhere.
fn compile_failure(checked: &Checked, e: &rollbook_plan::Error) -> Failure {
    let at = match e {
        rollbook_plan::Error::Compile {
            span: Some(span), ..
        } => {
            let (line, col) = checked.file.line_col(span.offset);
            format!("{}:{line}:{col}: ", checked.file.name)
        }
        _ => String::new(),
    };
    Failure::invalid(format!("{at}{e}"))
}

/// A file the user named (a plan, a params file, an inventory), read whole; one that cannot
/// be read is a usage error. Only a regular file is read, and its size is checked before a
/// byte is: a FIFO, a device or a huge file costs nothing.
pub fn read_source(path: &Path) -> Result<SourceFile, Failure> {
    use std::io::Read;
    if let Some(problem) = crate::locate::not_a_regular_file(path) {
        return Err(Failure::invalid(problem));
    }
    let limit = rollbook_plan::yaml::Limits::default().max_file_bytes;
    let cannot =
        |e: std::io::Error| Failure::invalid(format!("cannot read {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(cannot)?;
    let size = file.metadata().map_err(cannot)?.len();
    let too_big = |size: String| {
        Failure::invalid(format!(
            "{} is {size}: plans, params files and inventories may be at most {} MiB",
            path.display(),
            limit >> 20
        ))
    };
    if size > limit as u64 {
        return Err(too_big(format!("{size} bytes")));
    }
    // Read at most one byte past the limit, in case the file grows while it is read.
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() > limit {
        return Err(too_big("more than that by the time it was read".into()));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        Failure::invalid(format!(
            "cannot read {}: not UTF-8 text (byte {})",
            path.display(),
            e.utf8_error().valid_up_to() + 1
        ))
    })?;
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
    diagnostics_failure(&checked, style)
}

/// Prints a file's diagnostics; nothing is left to say but exit code 2.
fn diagnostics_failure(checked: &Checked, style: diagnostics::Style) -> Failure {
    say_part!(
        "{}",
        diagnostics::render_all(
            std::slice::from_ref(checked),
            diagnostics::Format::Text,
            style
        )
    );
    Failure::AlreadyReported(crate::exit::INVALID)
}

/// What `run.*` says in a dry run (`plan`, `graph`).
pub fn dry_run_info(reason: String) -> RunInfo {
    RunInfo {
        id: "dry-run".into(),
        reason,
        user: crate::run::current_user(),
        started_at: "(at run time)".into(),
    }
}

/// A tokio runtime for the commands that run async code; one that does not start is
/// rollbook's fault, not the user's.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::internal(format!("cannot start the runtime: {e}")))
}

/// Whether `run_id` is shaped as run ids are made (`20261125-091500-a1b2`: date, time, four
/// hex digits). A run id becomes a path under the state directory: one with `/` or `..` in it
/// would name a directory elsewhere (exit 2).
pub fn check_run_id(run_id: &str) -> Result<(), Failure> {
    let shape = run_id.len() == 20
        && run_id.bytes().enumerate().all(|(i, b)| match i {
            8 | 15 => b == b'-',
            16.. => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
            _ => b.is_ascii_digit(),
        });
    if shape {
        Ok(())
    } else {
        Err(Failure::invalid(format!(
            "`{}` is not a run id (they look like 20261125-091500-a1b2): `rollbook runs` lists them",
            crate::terminal::escape(run_id)
        )))
    }
}

/// Whether run `run_id` exists (its `run.json` is there, readable or not). No such run is a
/// usage error (exit 2); a state directory that cannot be looked into is rollbook's (exit 5).
pub fn run_exists(state: &str, run_id: &str, run_dir: &Path) -> Result<(), Failure> {
    check_run_id(run_id)?;
    // A run directory that is a symlink would lead out of the state directory.
    if std::fs::symlink_metadata(run_dir).is_ok_and(|m| !m.is_dir()) {
        return Err(Failure::invalid(format!(
            "{} is not a run directory",
            run_dir.display()
        )));
    }
    let meta = run_dir.join("run.json");
    match std::fs::symlink_metadata(&meta) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure::invalid(format!(
            "no run {run_id} in {}: `rollbook runs` lists them",
            state
        ))),
        Err(e) => Err(Failure::internal(format!(
            "cannot look for run {run_id} in {}: {e}",
            state
        ))),
    }
}
