//! Rollback readiness: which plans were practised, in which environment, how lately, and
//! whether the plan text changed since. Pure functions over run summaries (wherever the runs
//! are kept); `list` and `readiness` get the runs and the plans' text and print the answer.
//!
//! A practice is a run that succeeded without `--limit`: a run narrowed to some hosts
//! proves the plan works for those hosts only, not that the whole plan does.

use std::time::Duration;

use rollbook_exec::journal::{RunMeta, RunSummary};
use rollbook_exec::{RunStatus, Timestamp};
use serde::Serialize;

/// The environment of a run that was given no `--inventory`.
pub const NO_INVENTORY: &str = "-";

/// The environment of a run that was given an `--inventory` whose path was not recorded
/// (runs made before rollbook kept it).
pub const UNKNOWN_INVENTORY: &str = "?";

/// The environment a run acted on: its inventory file's stem (`inventories/staging.yaml` →
/// `staging`; a directory's name, `inventories/prod/` → `prod`), [`NO_INVENTORY`] without one, [`UNKNOWN_INVENTORY`] when only the fact that
/// there was one is known.
pub fn environment(meta: &RunMeta) -> String {
    match &meta.inventory_path {
        Some(path) => std::path::Path::new(path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| path.clone()),
        None if meta.inventory => UNKNOWN_INVENTORY.into(),
        None => NO_INVENTORY.into(),
    }
}

/// Whether `wanted` (`--inventory` of `readiness`) names the run's environment: its stem
/// (`staging`, or `-` for none) or its path as the run was given it
/// (`inventories/staging.yaml`).
pub fn in_environment(meta: &RunMeta, wanted: &str) -> bool {
    environment(meta) == wanted || meta.inventory_path.as_deref() == Some(wanted)
}

/// A run that counts as a practice of the whole plan: it succeeded and was not narrowed
/// with `--limit`.
pub fn is_practice(run: &RunSummary) -> bool {
    run.status == RunStatus::Succeeded && run.meta.limit.is_empty()
}

/// When a run ended; when it did not (or the end is not known), when it started.
pub fn finished(run: &RunSummary) -> Option<Timestamp> {
    run.finished_at
        .or_else(|| Timestamp::parse(&run.meta.started_at))
}

/// The newest of `runs` (by end, then id), if any.
fn newest<'a>(runs: impl IntoIterator<Item = &'a RunSummary>) -> Option<&'a RunSummary> {
    runs.into_iter()
        .max_by(|a, b| (finished(a), &a.meta.run_id).cmp(&(finished(b), &b.meta.run_id)))
}

/// How long before `now` a run ended: zero for an end in the future (a clock that was
/// ahead), `None` when no time is known.
pub fn age(run: &RunSummary, now: Timestamp) -> Option<Duration> {
    finished(run).map(|end| now.since(end).unwrap_or_default())
}

/// An age in the largest whole unit: `40d`, `5h`, `12m`, `30s`.
pub fn short_age(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        86_400.. => format!("{}d", s / 86_400),
        3_600.. => format!("{}h", s / 3_600),
        60.. => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// The UTC day a run ended (`2026-12-01`), `?` when no time is known.
pub fn day(run: &RunSummary) -> String {
    finished(run).map_or("?".into(), |t| t.to_string().chars().take(10).collect())
}

/// A plan's last practice in one environment.
#[derive(Debug, Clone, Copy)]
pub struct LastSuccess<'a> {
    pub run: &'a RunSummary,
    /// The plan's text is not the text that run ran.
    pub plan_changed: bool,
}

impl LastSuccess<'_> {
    /// The run's environment.
    pub fn environment(&self) -> String {
        environment(&self.run.meta)
    }
}

/// For plan `plan` whose text now hashes to `hash`: its last practice in each environment,
/// by environment name.
pub fn last_successes<'a>(plan: &str, hash: &str, runs: &'a [RunSummary]) -> Vec<LastSuccess<'a>> {
    let mut by_env: std::collections::BTreeMap<String, Vec<&RunSummary>> = Default::default();
    for run in runs
        .iter()
        .filter(|r| r.meta.plan == plan && is_practice(r))
    {
        by_env.entry(environment(&run.meta)).or_default().push(run);
    }
    by_env
        .into_values()
        .filter_map(newest)
        .map(|run| LastSuccess {
            run,
            plan_changed: run.meta.plan_hash != hash,
        })
        .collect()
}

/// A plan as it is now: its name and the hash of its text
/// (`rollbook_exec::journal::hash_text`, as `run` journals it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanNow {
    pub name: String,
    pub hash: String,
}

/// What a plan must have to be ready.
#[derive(Debug, Clone)]
pub struct Options {
    /// The oldest a practice may be.
    pub max_age: Duration,
    /// Only runs in this environment count (a stem, `-`, or an inventory path as given).
    pub inventory: Option<String>,
}

/// Why a plan is ready or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// A practice of the current text, within the age limit.
    Ready,
    /// No run of the plan at all (in that environment).
    NeverRun,
    /// Runs, none of them succeeded: `run` is the newest.
    NoSuccess,
    /// Only runs narrowed with `--limit` succeeded: `run` is the newest of them.
    OnlyLimited,
    /// The last practice of the current text is older than the limit: `run`.
    TooOld,
    /// No practice of the current text; `run` is the last practice, of an older text.
    PlanChanged,
}

/// One plan's verdict.
#[derive(Debug, Clone)]
pub struct Verdict<'a> {
    pub plan: String,
    pub why: Why,
    /// The run the verdict rests on (see [`Why`]); `None` for [`Why::NeverRun`].
    pub run: Option<&'a RunSummary>,
    /// How long ago `run` ended.
    pub age: Option<Duration>,
}

impl Verdict<'_> {
    pub fn ready(&self) -> bool {
        self.why == Why::Ready
    }

    /// The verdict in words, without the plan's name: `never run in staging`, `last success
    /// 40d ago, on 2026-10-26 (run …): older than 30d`.
    pub fn message(&self, options: &Options, max_age: &str) -> String {
        let env = |run: &RunSummary| match environment(&run.meta).as_str() {
            NO_INVENTORY => String::new(),
            e => format!(", {e}"),
        };
        let ago = self.age.map_or("?".into(), short_age);
        let Some(run) = self.run else {
            return match &options.inventory {
                Some(inventory) => format!("never run in {inventory}"),
                None => "never run".into(),
            };
        };
        let id = &run.meta.run_id;
        let day = day(run);
        match self.why {
            Why::Ready => format!("last success {day} ({ago} ago, run {id}{})", env(run)),
            Why::NeverRun => "never run".into(),
            Why::NoSuccess => {
                let ended = match run.status {
                    RunStatus::Failed => "failed",
                    RunStatus::Cancelled => "was cancelled",
                    _ => "did not finish",
                };
                format!("no successful run: the last one, on {day} (run {id}), {ended}")
            }
            Why::OnlyLimited => format!(
                "only runs with --limit succeeded, the last on {day} (run {id}, --limit {}): \
                 a limited run does not practise the whole plan",
                run.meta.limit.join(",")
            ),
            Why::TooOld => format!(
                "last success {ago} ago, on {day} (run {id}{}): older than --max-age {max_age}",
                env(run)
            ),
            Why::PlanChanged => {
                format!(
                    "plan changed since its last success on {day} (run {id}{})",
                    env(run)
                )
            }
        }
    }
}

/// Each plan's verdict, in the order given: ready when a run of it succeeded, without
/// `--limit`, in the environment asked for (any, without one), on the plan's current text,
/// and ended at most `max_age` before `now`.
pub fn judge<'a>(
    plans: &[PlanNow],
    runs: &'a [RunSummary],
    now: Timestamp,
    options: &Options,
) -> Vec<Verdict<'a>> {
    plans
        .iter()
        .map(|plan| judge_one(plan, runs, now, options))
        .collect()
}

fn judge_one<'a>(
    plan: &PlanNow,
    runs: &'a [RunSummary],
    now: Timestamp,
    options: &Options,
) -> Verdict<'a> {
    let ran: Vec<&RunSummary> = runs
        .iter()
        .filter(|r| r.meta.plan == plan.name)
        .filter(|r| {
            options
                .inventory
                .as_deref()
                .is_none_or(|wanted| in_environment(&r.meta, wanted))
        })
        .collect();
    let verdict = |why, run: Option<&'a RunSummary>| Verdict {
        plan: plan.name.clone(),
        why,
        run,
        age: run.and_then(|r| age(r, now)),
    };
    let practices = ran.iter().copied().filter(|r| is_practice(r));
    if let Some(run) = newest(practices.clone().filter(|r| r.meta.plan_hash == plan.hash)) {
        let fresh = age(run, now).is_some_and(|a| a <= options.max_age);
        return verdict(if fresh { Why::Ready } else { Why::TooOld }, Some(run));
    }
    if let Some(run) = newest(practices) {
        return verdict(Why::PlanChanged, Some(run));
    }
    let succeeded = ran
        .iter()
        .copied()
        .filter(|r| r.status == RunStatus::Succeeded);
    if let Some(run) = newest(succeeded) {
        return verdict(Why::OnlyLimited, Some(run));
    }
    match newest(ran) {
        Some(run) => verdict(Why::NoSuccess, Some(run)),
        None => verdict(Why::NeverRun, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn now() -> Timestamp {
        Timestamp::parse("2026-12-05T12:00:00.000Z").unwrap()
    }

    /// A run of `plan` (text `hash`) that ended `days` before [`now`].
    fn run(id: &str, plan: &str, hash: &str, status: RunStatus, days: u64) -> RunSummary {
        let end = Timestamp::from_system_time(now().system_time() - DAY * days as u32);
        let start = Timestamp::from_system_time(end.system_time() - Duration::from_secs(60));
        RunSummary {
            meta: RunMeta {
                run_id: id.into(),
                plan: plan.into(),
                plan_path: format!("plans/{plan}.yaml"),
                plan_hash: hash.into(),
                params: Default::default(),
                reason: "practice".into(),
                user: "dana".into(),
                host: "ops-1".into(),
                pid: 1,
                started_at: start.to_string(),
                lock: plan.into(),
                parallelism: 64,
                inventory: false,
                inventory_path: None,
                limit: Vec::new(),
                rollbook_version: "test".into(),
                calls: Default::default(),
            },
            status,
            finished_at: (status != RunStatus::Running).then_some(end),
            tolerated: Vec::new(),
        }
    }

    fn in_inventory(mut run: RunSummary, path: &str) -> RunSummary {
        run.meta.inventory = true;
        run.meta.inventory_path = Some(path.into());
        run
    }

    fn limited(mut run: RunSummary) -> RunSummary {
        run.meta.limit = vec!["web-1".into()];
        run
    }

    fn options(days: u64, inventory: Option<&str>) -> Options {
        Options {
            max_age: DAY * days as u32,
            inventory: inventory.map(String::from),
        }
    }

    fn plan(name: &str, hash: &str) -> PlanNow {
        PlanNow {
            name: name.into(),
            hash: hash.into(),
        }
    }

    /// The verdict of plan `web` (text `h2`) over `runs`: why, and the run it rests on.
    fn verdict(runs: &[RunSummary], options: &Options) -> (Why, Option<String>) {
        let v = judge(&[plan("web", "h2")], runs, now(), options);
        assert_eq!(v.len(), 1);
        (v[0].why, v[0].run.map(|r| r.meta.run_id.clone()))
    }

    #[test]
    fn environment_is_the_inventory_stem() {
        let r = run("a", "web", "h", RunStatus::Succeeded, 1);
        assert_eq!(environment(&r.meta), "-");
        let r = in_inventory(r, "inventories/staging.yaml");
        assert_eq!(environment(&r.meta), "staging");
        assert!(in_environment(&r.meta, "staging"));
        assert!(in_environment(&r.meta, "inventories/staging.yaml"));
        assert!(!in_environment(&r.meta, "other/staging.yaml"));
        assert!(!in_environment(&r.meta, "prod"));
        let mut old = run("b", "web", "h", RunStatus::Succeeded, 1);
        old.meta.inventory = true;
        assert_eq!(environment(&old.meta), "?");
        // An inventory directory: its name, with or without the trailing slash.
        for dir in ["inventories/prod", "inventories/prod/"] {
            let r = in_inventory(run("c", "web", "h", RunStatus::Succeeded, 1), dir);
            assert_eq!(environment(&r.meta), "prod");
        }
    }

    #[test]
    fn a_recent_success_of_the_current_text_is_ready() {
        let runs = [
            run("new-fail", "web", "h2", RunStatus::Failed, 1),
            run("ok", "web", "h2", RunStatus::Succeeded, 3),
            run("other-plan", "db", "h2", RunStatus::Succeeded, 1),
        ];
        assert_eq!(
            verdict(&runs, &options(30, None)),
            (Why::Ready, Some("ok".into()))
        );
    }

    #[test]
    fn no_run_is_never_run() {
        let runs = [run("db", "db", "h2", RunStatus::Succeeded, 1)];
        assert_eq!(verdict(&runs, &options(30, None)), (Why::NeverRun, None));
        assert_eq!(verdict(&[], &options(30, None)), (Why::NeverRun, None));
    }

    #[test]
    fn a_success_older_than_max_age_is_too_old() {
        let runs = [run("old", "web", "h2", RunStatus::Succeeded, 40)];
        assert_eq!(
            verdict(&runs, &options(30, None)),
            (Why::TooOld, Some("old".into()))
        );
        assert_eq!(
            verdict(&runs, &options(41, None)),
            (Why::Ready, Some("old".into()))
        );
        let v = judge(&[plan("web", "h2")], &runs, now(), &options(30, None));
        assert_eq!(v[0].age, Some(DAY * 40));
    }

    #[test]
    fn a_success_of_another_text_is_plan_changed() {
        let runs = [
            run("older", "web", "h1", RunStatus::Succeeded, 9),
            run("newer", "web", "h1", RunStatus::Succeeded, 2),
        ];
        assert_eq!(
            verdict(&runs, &options(30, None)),
            (Why::PlanChanged, Some("newer".into()))
        );
        // An older practice of the current text wins over a newer one of another text.
        let mut runs = runs.to_vec();
        runs.push(run("same-text", "web", "h2", RunStatus::Succeeded, 20));
        assert_eq!(
            verdict(&runs, &options(30, None)),
            (Why::Ready, Some("same-text".into()))
        );
    }

    #[test]
    fn a_limited_run_does_not_count() {
        let runs = [
            limited(run("limited", "web", "h2", RunStatus::Succeeded, 1)),
            run("failed", "web", "h2", RunStatus::Failed, 2),
        ];
        assert_eq!(
            verdict(&runs, &options(30, None)),
            (Why::OnlyLimited, Some("limited".into()))
        );
        let mut runs = runs.to_vec();
        runs.push(run("whole", "web", "h2", RunStatus::Succeeded, 5));
        assert_eq!(
            verdict(&runs, &options(30, None)),
            (Why::Ready, Some("whole".into()))
        );
    }

    #[test]
    fn runs_that_did_not_succeed_are_no_success() {
        let runs = [
            run("cancelled", "web", "h2", RunStatus::Cancelled, 3),
            run("crashed", "web", "h2", RunStatus::Running, 1),
        ];
        let (why, run) = verdict(&runs, &options(30, None));
        assert_eq!(why, Why::NoSuccess);
        // The crashed run has no end: its start (a day ago) makes it the newest.
        assert_eq!(run.as_deref(), Some("crashed"));
    }

    #[test]
    fn only_runs_in_the_inventory_asked_for_count() {
        let runs = [
            in_inventory(
                run("staging", "web", "h2", RunStatus::Succeeded, 2),
                "inventories/staging.yaml",
            ),
            in_inventory(
                run("prod-old", "web", "h2", RunStatus::Succeeded, 50),
                "inventories/production.yaml",
            ),
            run("none", "web", "h2", RunStatus::Succeeded, 1),
        ];
        assert_eq!(
            verdict(&runs, &options(30, Some("staging"))),
            (Why::Ready, Some("staging".into()))
        );
        assert_eq!(
            verdict(&runs, &options(30, Some("inventories/staging.yaml"))),
            (Why::Ready, Some("staging".into()))
        );
        assert_eq!(
            verdict(&runs, &options(30, Some("production"))),
            (Why::TooOld, Some("prod-old".into()))
        );
        assert_eq!(
            verdict(&runs, &options(30, Some("-"))),
            (Why::Ready, Some("none".into()))
        );
        assert_eq!(
            verdict(&runs, &options(30, Some("dev"))),
            (Why::NeverRun, None)
        );
        // Without an inventory, any environment counts: the newest.
        assert_eq!(
            verdict(&runs, &options(30, None)),
            (Why::Ready, Some("none".into()))
        );
    }

    #[test]
    fn an_end_in_the_future_is_no_age() {
        let mut r = run("ahead", "web", "h2", RunStatus::Succeeded, 0);
        r.finished_at = Some(Timestamp::from_system_time(now().system_time() + DAY));
        let runs = [r];
        let v = judge(&[plan("web", "h2")], &runs, now(), &options(1, None));
        assert_eq!((v[0].why, v[0].age), (Why::Ready, Some(Duration::ZERO)));
    }

    #[test]
    fn messages_name_the_day_the_age_and_the_run() {
        let runs = [
            in_inventory(
                run(
                    "20261025-115900-0001",
                    "web",
                    "h2",
                    RunStatus::Succeeded,
                    41,
                ),
                "inventories/staging.yaml",
            ),
            limited(run(
                "20261204-115900-0002",
                "db",
                "h2",
                RunStatus::Succeeded,
                1,
            )),
            run(
                "20261130-115900-0003",
                "cache",
                "h1",
                RunStatus::Succeeded,
                5,
            ),
        ];
        let opts = options(30, None);
        let plans = [
            plan("web", "h2"),
            plan("db", "h2"),
            plan("cache", "h2"),
            plan("dns", "h2"),
        ];
        let messages: Vec<String> = judge(&plans, &runs, now(), &opts)
            .iter()
            .map(|v| v.message(&opts, "30d"))
            .collect();
        assert_eq!(
            messages,
            [
                "last success 41d ago, on 2026-10-25 (run 20261025-115900-0001, staging): older than --max-age 30d",
                "only runs with --limit succeeded, the last on 2026-12-04 (run 20261204-115900-0002, --limit web-1): a limited run does not practise the whole plan",
                "plan changed since its last success on 2026-11-30 (run 20261130-115900-0003)",
                "never run",
            ]
        );
        let opts = options(30, Some("staging"));
        let v = judge(&plans[3..], &runs, now(), &opts);
        assert_eq!(v[0].message(&opts, "30d"), "never run in staging");
    }

    #[test]
    fn last_successes_per_environment() {
        let runs = [
            in_inventory(
                run("s-new", "web", "h1", RunStatus::Succeeded, 1),
                "inventories/staging.yaml",
            ),
            in_inventory(
                run("s-old", "web", "h2", RunStatus::Succeeded, 9),
                "inventories/staging.yaml",
            ),
            in_inventory(
                limited(run("p-limited", "web", "h2", RunStatus::Succeeded, 1)),
                "inventories/production.yaml",
            ),
            in_inventory(
                run("p-failed", "web", "h2", RunStatus::Failed, 1),
                "inventories/production.yaml",
            ),
            run("none", "web", "h2", RunStatus::Succeeded, 3),
            run("other", "db", "h2", RunStatus::Succeeded, 3),
        ];
        let found: Vec<(String, String, bool)> = last_successes("web", "h2", &runs)
            .iter()
            .map(|l| (l.environment(), l.run.meta.run_id.clone(), l.plan_changed))
            .collect();
        assert_eq!(
            found,
            [
                ("-".into(), "none".into(), false),
                ("staging".into(), "s-new".into(), true),
            ]
        );
    }

    #[test]
    fn short_ages() {
        let s = Duration::from_secs;
        assert_eq!(short_age(s(0)), "0s");
        assert_eq!(short_age(s(59)), "59s");
        assert_eq!(short_age(s(60 * 90)), "1h");
        assert_eq!(short_age(s(86_399)), "23h");
        assert_eq!(short_age(DAY * 40 + s(3_600)), "40d");
    }
}
