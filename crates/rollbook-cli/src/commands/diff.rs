//! `rollbook diff BASE [HEAD] [PLAN...]`: what a change does to the rollbacks, for review.
//! BASE and HEAD are git revisions (HEAD left out: the working tree), or two plan files. Each
//! side is compiled with the same params and inventory and compared as its dry run
//! (`crate::diff`).

use std::path::{Path, PathBuf};
use std::process::Command;

use rollbook_plan::SourceFile;

use super::{BindFiles, Called, PlanFile};
use crate::diff;
use crate::{BindArgs, Failure, diagnostics};

/// How the diff is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For a terminal or a log.
    Text,
    /// A pull-request comment: the risks first, then a table of changes.
    Markdown,
    /// `{"version": 1, "plans": [...]}`.
    Json,
}

/// What `rollbook diff` was asked for.
pub struct Request<'a> {
    pub base: &'a str,
    pub head: Option<&'a str>,
    pub plans: &'a [String],
    pub bind: &'a BindArgs,
    pub format: Format,
}

/// Where one side's plan texts come from.
enum Side {
    /// A git revision: `git show REV:./PATH`.
    Rev { rev: String, short: String },
    /// The files as they are now.
    WorkingTree,
}

impl Side {
    fn name(&self) -> String {
        match self {
            Side::Rev { short, .. } => short.clone(),
            Side::WorkingTree => "working tree".into(),
        }
    }

    /// The text of `path` on this side; `None` when it is not there.
    fn read(&self, path: &Path) -> Result<Option<String>, Failure> {
        match self {
            Side::WorkingTree => match std::fs::metadata(path) {
                Ok(_) => super::read_source(path).map(|s| Some(s.text.to_string())),
                Err(_) => Ok(None),
            },
            Side::Rev { rev, .. } => {
                let spec = format!("{rev}:./{}", path.display());
                let out = git(&["show", &spec])?;
                if !out.status.success() {
                    return Ok(None);
                }
                String::from_utf8(out.stdout)
                    .map(Some)
                    .map_err(|_| Failure::invalid(format!("{spec} is not UTF-8")))
            }
        }
    }
}

fn git(args: &[&str]) -> Result<std::process::Output, Failure> {
    Command::new("git")
        .args(args)
        .output()
        .map_err(|e| Failure::internal(format!("cannot run git: {e}")))
}

/// A revision that names a commit, with its short name.
fn revision(rev: &str) -> Result<Side, Failure> {
    let spec = format!("{rev}^{{commit}}");
    let out = git(&["rev-parse", "--verify", "--quiet", &spec])?;
    if !out.status.success() {
        return Err(Failure::invalid(format!(
            "`{}` is neither a plan file nor a git revision here",
            crate::terminal::escape(rev)
        )));
    }
    let full = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let short = git(&["rev-parse", "--short", &full])
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| full.clone());
    Ok(Side::Rev { rev: full, short })
}

pub fn run(plans_dir: &Path, req: &Request, style: diagnostics::Style) -> Result<(), Failure> {
    let files = BindFiles::read(req.bind)?;
    let two_files = req
        .head
        .is_some_and(|h| Path::new(h).is_file() && Path::new(req.base).is_file());
    let diffs = if two_files {
        let head = req.head.unwrap_or_default();
        if !req.plans.is_empty() {
            return Err(Failure::invalid(
                "with two plan files there is nothing more to name: `rollbook diff OLD.yaml NEW.yaml`",
            ));
        }
        let (b, h) = (Path::new(req.base), Path::new(head));
        let here = Side::WorkingTree;
        let side = |path: &Path| {
            let text = super::read_source(path).ok().map(|s| s.text.to_string());
            compiled(
                path,
                text,
                (plans_dir, &here),
                req.bind,
                &files,
                style,
                true,
            )
        };
        let (base, head_doc) = (side(b)?, side(h)?);
        let name = h
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        vec![diff::compare(
            &name,
            (req.base, base.as_ref()),
            (head, head_doc.as_ref()),
        )]
    } else {
        let base = revision(req.base)?;
        let head = match req.head {
            Some(h) => revision(h)?,
            None => Side::WorkingTree,
        };
        let paths = if req.plans.is_empty() {
            changed_plans(plans_dir, &base, &head)?
        } else {
            req.plans.iter().map(|p| named_plan(plans_dir, p)).collect()
        };
        let mut diffs = Vec::new();
        for path in paths {
            let b = compiled(
                &path,
                base.read(&path)?,
                (plans_dir, &base),
                req.bind,
                &files,
                style,
                false,
            )?;
            let h = compiled(
                &path,
                head.read(&path)?,
                (plans_dir, &head),
                req.bind,
                &files,
                style,
                false,
            )?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            diffs.push(diff::compare(
                &name,
                (&base.name(), b.as_ref()),
                (&head.name(), h.as_ref()),
            ));
        }
        diffs
    };
    let out = match req.format {
        Format::Text if diffs.is_empty() => "no plan changed\n".to_string(),
        Format::Text => diff::text(&diffs),
        Format::Markdown => diff::markdown(&diffs),
        Format::Json => diff::json(&diffs),
    };
    crate::print(&out);
    Ok(())
}

/// A plan named on the command line: a path, or a name in the plans directory (`NAME.yaml`,
/// else `NAME.yml`, where it is now; a plan that is gone is looked for as `NAME.yaml`).
fn named_plan(plans_dir: &Path, plan: &str) -> PathBuf {
    crate::locate::find_plan(plans_dir, plan).unwrap_or_else(|_| {
        if plan.contains('/') {
            PathBuf::from(plan)
        } else {
            plans_dir.join(format!("{plan}.yaml"))
        }
    })
}

/// The plan files under the plans directory that differ between the two sides (added,
/// removed or changed), plans not yet committed included when the head is the working tree.
fn changed_plans(plans_dir: &Path, base: &Side, head: &Side) -> Result<Vec<PathBuf>, Failure> {
    let Side::Rev { rev, .. } = base else {
        return Ok(Vec::new());
    };
    let dir = plans_dir.display().to_string();
    let mut args = vec![
        "diff",
        "--name-only",
        "--relative",
        "--no-renames",
        rev.as_str(),
    ];
    if let Side::Rev { rev: head, .. } = head {
        args.push(head.as_str());
    }
    args.extend(["--", dir.as_str()]);
    let out = git(&args)?;
    if !out.status.success() {
        return Err(Failure::invalid(format!(
            "git diff failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut paths: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .collect();
    if matches!(head, Side::WorkingTree) {
        let new = git(&["ls-files", "--others", "--exclude-standard", "--", &dir])?;
        paths.extend(
            String::from_utf8_lossy(&new.stdout)
                .lines()
                .map(PathBuf::from),
        );
    }
    paths.retain(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")));
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// One side's dry run as a JSON document; `None` when the plan is not on that side. A plan
/// that does not compile there is reported with its diagnostics (exit 2). With
/// `any_file_name`, the file's name need not be the plan's (`old.yaml` against `new.yaml`).
fn compiled(
    path: &Path,
    text: Option<String>,
    (plans_dir, side): (&Path, &Side),
    bind: &BindArgs,
    files: &BindFiles,
    style: diagnostics::Style,
    any_file_name: bool,
) -> Result<Option<serde_json::Value>, Failure> {
    let Some(text) = text else { return Ok(None) };
    let source = SourceFile::new(path.display().to_string(), text);
    let named = any_file_name
        .then(|| rollbook_plan::check(source.clone(), None).plan)
        .flatten()
        .map(|plan| PathBuf::from(format!("{}.yaml", plan.name.value)));
    // The plans it calls, as they are on the same side.
    let read = |p: &Path| {
        side.read(p)
            .map(|text| text.map(|t| SourceFile::new(p.display().to_string(), t)))
    };
    let called = Called::find_with(plans_dir, &source, &[], &read)?;
    let file = PlanFile {
        path: named.unwrap_or_else(|| path.to_path_buf()),
        source,
        called,
    };
    let info = super::dry_run_info("(diff)".into());
    let plan = super::compile_source(&file, bind, files, &info, style)?;
    Ok(Some(crate::dry_run::value(
        &plan,
        crate::DEFAULT_PARALLELISM,
    )))
}
