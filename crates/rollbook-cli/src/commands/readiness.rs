//! `rollbook readiness [PLAN…]`: whether each plan was practised lately, on its current
//! text, in the environment asked for. The verdicts are `crate::readiness`'s; this reads the
//! plans and the runs, prints, and turns "not ready" into exit code 1.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rollbook_exec::{Timestamp, journal};
use serde::Serialize;
use serde_json::json;

use crate::readiness::{self, Options, PlanNow, Verdict, Why};
use crate::terminal::escape as esc;
use crate::{Failure, locate};

/// `--max-age`: a duration, with the text it was given as (shown back as written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxAge {
    pub text: String,
    pub duration: Duration,
}

impl FromStr for MaxAge {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let duration = humantime::parse_duration(text)
            .map_err(|e| format!("{e}: give a duration such as 30d, 2w or 36h"))?;
        Ok(MaxAge {
            text: text.to_string(),
            duration,
        })
    }
}

/// What `readiness` was asked.
pub struct Request<'a> {
    /// Plan names or paths; none for every plan in the plans directory.
    pub plans: &'a [String],
    pub max_age: &'a MaxAge,
    pub inventory: Option<String>,
    pub json: bool,
}

pub fn run(
    plans_dir: &Path,
    state: &crate::state::State,
    request: &Request,
) -> Result<(), Failure> {
    let plans = plans_now(plans_dir, request.plans)?;
    let runs = state.store.list().map_err(Failure::from)?;
    let options = Options {
        max_age: request.max_age.duration,
        inventory: request.inventory.clone(),
    };
    let verdicts = readiness::judge(&plans, &runs, Timestamp::now(), &options);
    let max_age = &request.max_age.text;
    let out = if request.json {
        json_document(&verdicts, &options, max_age)
    } else {
        text(&verdicts, &options, max_age)
    };
    crate::print(&out);
    let not_ready = verdicts.iter().filter(|v| !v.ready()).count();
    let within = match &options.inventory {
        Some(inventory) => format!("--max-age {max_age}, --inventory {}", esc(inventory)),
        None => format!("--max-age {max_age}"),
    };
    let plans = |n: usize| if n == 1 { "plan" } else { "plans" };
    let is = |n: usize| if n == 1 { "is" } else { "are" };
    let all = verdicts.len();
    if not_ready > 0 {
        return Err(Failure::NotReady(format!(
            "{not_ready} of {all} {} {} not ready ({within})",
            plans(all),
            is(not_ready)
        )));
    }
    say!("ok: {all} {} {} ready ({within})", plans(all), is(all));
    Ok(())
}

/// The plans to judge, by name (their file's stem, which a valid plan's `name` is) with the
/// hash of their text as `run` would journal it. A plan that cannot be found or read, or
/// no plan at all, is a usage error (exit 2): a gate with nothing to check must not pass.
fn plans_now(plans_dir: &Path, named: &[String]) -> Result<Vec<PlanNow>, Failure> {
    let files: Vec<PathBuf> = if named.is_empty() {
        let files = locate::plan_files(&[plans_dir.to_path_buf()]).map_err(Failure::invalid)?;
        let same = locate::same_names(&files);
        if !same.is_empty() {
            let errors: Vec<String> = same
                .iter()
                .map(|(name, files)| locate::same_name_error(name, files))
                .collect();
            return Err(Failure::invalid(errors.join("\n")));
        }
        if files.is_empty() {
            return Err(Failure::invalid(format!(
                "no plans in {}: name the plans, or set --plans-dir or ROLLBOOK_PLANS",
                plans_dir.display()
            )));
        }
        files
    } else {
        named
            .iter()
            .map(|plan| locate::find_plan(plans_dir, plan).map_err(Failure::invalid))
            .collect::<Result<_, _>>()?
    };
    files
        .iter()
        .map(|path| {
            let source = super::read_source(path)?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(PlanNow {
                name,
                hash: journal::hash_text(&source.text),
            })
        })
        .collect()
}

fn text(verdicts: &[Verdict], options: &Options, max_age: &str) -> String {
    let width = verdicts
        .iter()
        .map(|v| v.plan.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!("{:width$}  READY  WHY\n", "PLAN");
    for v in verdicts {
        out.push_str(&format!(
            "{:width$}  {:5}  {}\n",
            esc(&v.plan),
            if v.ready() { "yes" } else { "no" },
            esc(&v.message(options, max_age))
        ));
    }
    out
}

#[derive(Serialize)]
struct JsonVerdict<'a> {
    plan: &'a str,
    ready: bool,
    why: Why,
    message: String,
    run: Option<serde_json::Value>,
    /// Seconds since `run` ended.
    age_s: Option<u64>,
}

fn json_document(verdicts: &[Verdict], options: &Options, max_age: &str) -> String {
    let plans: Vec<JsonVerdict> = verdicts
        .iter()
        .map(|v| JsonVerdict {
            plan: &v.plan,
            ready: v.ready(),
            why: v.why,
            message: v.message(options, max_age),
            run: v.run.map(|r| {
                json!({
                    "run_id": r.meta.run_id,
                    "status": r.status.as_str(),
                    "finished_at": r.finished_at,
                    "inventory": readiness::environment(&r.meta),
                    "inventory_path": r.meta.inventory_path,
                    "limit": r.meta.limit,
                    "plan_hash": r.meta.plan_hash,
                    "user": r.meta.user,
                    "host": r.meta.host,
                })
            }),
            age_s: v.age.map(|a| a.as_secs()),
        })
        .collect();
    let doc = json!({
        "version": 1,
        "ready": verdicts.iter().all(Verdict::ready),
        "max_age": max_age,
        "max_age_s": options.max_age.as_secs(),
        "inventory": options.inventory,
        "plans": plans,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}
