//! `rollbook runs`: the runs under the state dir, with filters (plan, status, start,
//! user, how many). [`select`] is pure: it works on the runs wherever they are kept.

use std::fmt::Write;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use rollbook_exec::journal::RunSummary;
use rollbook_exec::{RunStatus, Timestamp, journal};
use serde::Serialize;

use crate::Failure;
use crate::runs::short;
use crate::terminal::escape as esc;

/// Which runs `rollbook runs` lists.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Filter {
    /// Only runs of this plan (its name).
    #[arg(long, value_name = "NAME")]
    pub plan: Option<String>,
    /// Only runs that ended so (`unfinished`: going on, or stopped without an end).
    #[arg(long, value_enum)]
    pub status: Option<StatusFilter>,
    /// Only runs started since then: a duration ago (`7d`, `12h`) or an RFC 3339 date or
    /// time (`2026-12-01`, `2026-12-01T09:00:00Z`).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<Since>,
    /// Only runs started by this user.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// The newest N runs (after the other filters).
    #[arg(long, value_name = "N", value_parser = crate::at_least_one)]
    pub limit: Option<usize>,
}

impl Filter {
    /// Whether a filter asks for a fact a run directory whose `run.json` does not read
    /// cannot give (plan, status, start, user): such runs are then left out.
    pub fn needs_facts(&self) -> bool {
        self.plan.is_some() || self.status.is_some() || self.since.is_some() || self.user.is_some()
    }

    fn keeps(&self, run: &RunSummary, since: Option<Timestamp>) -> bool {
        let meta = &run.meta;
        self.plan.as_ref().is_none_or(|p| &meta.plan == p)
            && self.user.as_ref().is_none_or(|u| &meta.user == u)
            && self.status.is_none_or(|s| s.matches(run.status))
            && since.is_none_or(|since| {
                Timestamp::parse(&meta.started_at).is_some_and(|started| started >= since)
            })
    }
}

/// `--status`: how a run ended, as `runs` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFilter {
    Succeeded,
    Failed,
    Cancelled,
    Unfinished,
}

impl StatusFilter {
    fn matches(self, status: RunStatus) -> bool {
        matches!(
            (self, status),
            (StatusFilter::Succeeded, RunStatus::Succeeded)
                | (StatusFilter::Failed, RunStatus::Failed)
                | (StatusFilter::Cancelled, RunStatus::Cancelled)
                | (StatusFilter::Unfinished, RunStatus::Running)
        )
    }
}

/// `--since`: a duration before now, or a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    Ago(Duration),
    At(Timestamp),
}

impl FromStr for Since {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Ok(ago) = humantime::parse_duration(text) {
            return Ok(Since::Ago(ago));
        }
        // A day alone is its start, in UTC.
        let day = (text.len() == 10).then(|| format!("{text}T00:00:00Z"));
        day.as_deref()
            .and_then(Timestamp::parse)
            .or_else(|| Timestamp::parse(text))
            .map(Since::At)
            .ok_or_else(|| {
                "neither a duration (7d, 12h) nor an RFC 3339 date or time \
                 (2026-12-01, 2026-12-01T09:00:00Z)"
                    .into()
            })
    }
}

impl Since {
    /// The moment it names, `now` being now.
    pub fn moment(self, now: Timestamp) -> Timestamp {
        match self {
            Since::At(at) => at,
            Since::Ago(ago) => Timestamp::from_system_time(
                now.system_time()
                    .checked_sub(ago)
                    .unwrap_or(std::time::UNIX_EPOCH),
            ),
        }
    }
}

/// The runs `filter` keeps, newest first (by start, then id), at most `--limit` of them.
pub fn select<'a>(runs: &'a [RunSummary], filter: &Filter, now: Timestamp) -> Vec<&'a RunSummary> {
    let since = filter.since.map(|s| s.moment(now));
    let mut kept: Vec<&RunSummary> = runs.iter().filter(|r| filter.keeps(r, since)).collect();
    kept.sort_by(|a, b| {
        (&b.meta.started_at, &b.meta.run_id).cmp(&(&a.meta.started_at, &a.meta.run_id))
    });
    if let Some(limit) = filter.limit {
        kept.truncate(limit);
    }
    kept
}

/// A run directory whose `run.json` does not read: listed, not left out, so a damaged run
/// is noticed.
#[derive(Debug, Serialize)]
struct Unreadable {
    run_id: String,
    /// Always `unreadable`.
    status: &'static str,
    error: String,
}

/// The run directories that `list_runs` could not read, newest id first.
fn unreadable_runs(state_dir: &Path, listed: &[RunSummary]) -> Vec<Unreadable> {
    let Ok(entries) = std::fs::read_dir(journal::runs_dir(state_dir)) else {
        return Vec::new();
    };
    let mut found: Vec<Unreadable> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|id| !listed.iter().any(|r| &r.meta.run_id == id))
        .map(|run_id| {
            let dir = journal::runs_dir(state_dir).join(&run_id);
            let error = match journal::read_meta(&dir) {
                Err(e) => e.to_string(),
                Ok(_) => "run.json names another run".into(),
            };
            Unreadable {
                run_id,
                status: "unreadable",
                error,
            }
        })
        .collect();
    found.sort_by(|a, b| b.run_id.cmp(&a.run_id));
    found
}

/// `rollbook runs`: the runs of the store that `filter` keeps, newest first.
pub fn run(state: &crate::state::State, filter: &Filter, json: bool) -> Result<(), Failure> {
    let all = state.store.list().map_err(Failure::from)?;
    let runs = select(&all, filter, Timestamp::now());
    // A run whose `run.json` does not read has no plan, status, start or user to filter on:
    // listed only when no such filter is given (and only a state directory can hold one).
    let unreadable = match &state.files {
        Some(dir) if !filter.needs_facts() => unreadable_runs(dir, &all),
        _ => Vec::new(),
    };
    let mut out = String::new();
    if json {
        let mut all = serde_json::to_value(&runs).unwrap_or_default();
        if let Some(list) = all.as_array_mut() {
            list.extend(
                unreadable
                    .iter()
                    .filter_map(|u| serde_json::to_value(u).ok()),
            );
        }
        let doc = serde_json::json!({ "version": 1, "runs": all });
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        );
        crate::print(&out);
        return Ok(());
    }
    if runs.is_empty() && unreadable.is_empty() {
        if all.is_empty() {
            crate::say!("no runs in {}", state.store.describe());
        } else {
            crate::say!(
                "none of the {} runs in {} match the filters",
                all.len(),
                state.store.describe()
            );
        }
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{:<22}  {:<28}  {:<10}  {:<20}  {:>8}  {:<12}  {:<16}  REASON",
        "ID", "PLAN", "STATUS", "STARTED", "DURATION", "USER", "HOST"
    );
    for r in &runs {
        let duration = r
            .finished_at
            .zip(Timestamp::parse(&r.meta.started_at))
            .and_then(|(end, start)| end.since(start))
            .map_or("-".into(), short);
        let status = match r.status {
            RunStatus::Running => "unfinished",
            s => s.as_str(),
        };
        let _ = writeln!(
            out,
            "{:<22}  {:<28}  {:<10}  {:<20}  {:>8}  {:<12}  {:<16}  {}",
            esc(&r.meta.run_id),
            esc(&r.meta.plan),
            status,
            esc(r.meta.started_at.get(..19).unwrap_or(&r.meta.started_at)),
            duration,
            esc(&r.meta.user),
            esc(&r.meta.host),
            esc(&r.meta.reason)
        );
        // Under the run's plan, which failures it went on after.
        if let Some(t) = crate::runs::tolerated_summary(&r.tolerated) {
            let _ = writeln!(out, "{:<22}  {}", "", esc(&t));
        }
    }
    for u in &unreadable {
        let _ = writeln!(
            out,
            "{:<22}  {:<28}  {:<10}  {}",
            esc(&u.run_id),
            "-",
            "unreadable",
            esc(&u.error)
        );
    }
    crate::print(&out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollbook_exec::journal::RunMeta;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn run(id: &str, plan: &str, user: &str, status: RunStatus, started_at: &str) -> RunSummary {
        RunSummary {
            meta: RunMeta {
                run_id: id.into(),
                plan: plan.into(),
                plan_path: format!("plans/{plan}.yaml"),
                plan_hash: "h".into(),
                params: Default::default(),
                reason: "r".into(),
                user: user.into(),
                host: "ops-1".into(),
                pid: 1,
                started_at: started_at.into(),
                lock: plan.into(),
                parallelism: 64,
                inventory: false,
                inventory_path: None,
                limit: Vec::new(),
                rollbook_version: "test".into(),
                calls: Default::default(),
            },
            status,
            finished_at: None,
            tolerated: Vec::new(),
        }
    }

    fn runs() -> Vec<RunSummary> {
        vec![
            run(
                "a",
                "web",
                "dana",
                RunStatus::Succeeded,
                "2026-11-20T10:00:00.000Z",
            ),
            run(
                "d",
                "db",
                "sam",
                RunStatus::Running,
                "2026-12-04T10:00:00.000Z",
            ),
            run(
                "b",
                "web",
                "sam",
                RunStatus::Failed,
                "2026-12-01T10:00:00.000Z",
            ),
            run(
                "c",
                "db",
                "dana",
                RunStatus::Cancelled,
                "2026-12-03T10:00:00.000Z",
            ),
        ]
    }

    fn ids(filter: &Filter) -> Vec<String> {
        let runs = runs();
        select(&runs, filter, at("2026-12-05T10:00:00.000Z"))
            .iter()
            .map(|r| r.meta.run_id.clone())
            .collect()
    }

    #[test]
    fn no_filter_keeps_every_run_newest_first() {
        assert_eq!(ids(&Filter::default()), ["d", "c", "b", "a"]);
        assert!(!Filter::default().needs_facts());
    }

    #[test]
    fn each_filter_keeps_its_runs() {
        let plan = Filter {
            plan: Some("web".into()),
            ..Filter::default()
        };
        assert_eq!(ids(&plan), ["b", "a"]);
        let user = Filter {
            user: Some("dana".into()),
            ..Filter::default()
        };
        assert_eq!(ids(&user), ["c", "a"]);
        for (status, id) in [
            (StatusFilter::Succeeded, "a"),
            (StatusFilter::Failed, "b"),
            (StatusFilter::Cancelled, "c"),
            (StatusFilter::Unfinished, "d"),
        ] {
            let filter = Filter {
                status: Some(status),
                ..Filter::default()
            };
            assert_eq!(ids(&filter), [id], "{status:?}");
        }
        let since = |text: &str| Filter {
            since: Some(text.parse().unwrap()),
            ..Filter::default()
        };
        assert_eq!(ids(&since("3d")), ["d", "c"]);
        assert_eq!(ids(&since("2026-12-01")), ["d", "c", "b"]);
        assert_eq!(ids(&since("2026-12-01T10:00:00.001Z")), ["d", "c"]);
        let limit = Filter {
            limit: Some(2),
            ..Filter::default()
        };
        assert_eq!(ids(&limit), ["d", "c"]);
        assert!(!limit.needs_facts(), "--limit alone keeps unreadable runs");
        let all = Filter {
            plan: Some("db".into()),
            user: Some("dana".into()),
            limit: Some(5),
            ..Filter::default()
        };
        assert_eq!(ids(&all), ["c"]);
        assert!(all.needs_facts());
    }

    #[test]
    fn since_reads_durations_days_and_times() {
        let now = at("2026-12-05T10:00:00.000Z");
        let moment = |text: &str| text.parse::<Since>().map(|s| s.moment(now));
        assert_eq!(moment("12h"), Ok(at("2026-12-04T22:00:00.000Z")));
        assert_eq!(moment("7d"), Ok(at("2026-11-28T10:00:00.000Z")));
        assert_eq!(moment("2026-12-01"), Ok(at("2026-12-01T00:00:00.000Z")));
        assert_eq!(
            moment("2026-12-01T09:30:00Z"),
            Ok(at("2026-12-01T09:30:00.000Z"))
        );
        for bad in ["yesterday", "2026-13-01", "7 parsecs", ""] {
            assert!(moment(bad).is_err(), "{bad}");
        }
    }
}
