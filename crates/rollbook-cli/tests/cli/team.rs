//! A team's state directory written by hand: plans in `plans/`, and runs in `state/runs/`
//! (`run.json`, `plan.yaml`, `journal.jsonl`, as `run` writes them) that ended some days
//! before now, so that `runs`, `list` and `readiness` read history without a real run.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rollbook_exec::Timestamp;
use rollbook_exec::journal::hash_text;

use crate::Ran;

const DAY: Duration = Duration::from_secs(86_400);

/// The text of plan `name`; `version` tells texts of the same plan apart.
pub fn plan_text(name: &str, version: u32) -> String {
    format!(
        "version: 1\nname: {name}\ndescription: Roll {name} back (v{version}).\nseverity: high\nsteps:\n  - id: restore\n    shell: {{ run: 'true' }}\n"
    )
}

/// A run to write: built with its setters, then [`Team::add`].
pub struct Run {
    id: &'static str,
    plan: &'static str,
    plan_version: u32,
    status: &'static str,
    days_ago: u32,
    user: &'static str,
    host: &'static str,
    reason: &'static str,
    inventory: Option<&'static str>,
    limit: Vec<&'static str>,
}

impl Run {
    /// A run of `plan` (its text version 1) by dana on ops-bastion-1 that succeeded a day
    /// (and an hour) ago.
    pub fn new(id: &'static str, plan: &'static str) -> Run {
        Run {
            id,
            plan,
            plan_version: 1,
            status: "succeeded",
            days_ago: 1,
            user: "dana",
            host: "ops-bastion-1",
            reason: "rollback practice",
            inventory: None,
            limit: Vec::new(),
        }
    }
    pub fn status(mut self, status: &'static str) -> Run {
        self.status = status;
        self
    }
    /// Started `days` days and an hour before now, ended two minutes later.
    pub fn days_ago(mut self, days: u32) -> Run {
        self.days_ago = days;
        self
    }
    pub fn by(mut self, user: &'static str, host: &'static str) -> Run {
        self.user = user;
        self.host = host;
        self
    }
    pub fn reason(mut self, reason: &'static str) -> Run {
        self.reason = reason;
        self
    }
    pub fn inventory(mut self, path: &'static str) -> Run {
        self.inventory = Some(path);
        self
    }
    pub fn limit(mut self, pattern: &'static str) -> Run {
        self.limit.push(pattern);
        self
    }
    /// The run ran version `version` of its plan's text.
    pub fn plan_version(mut self, version: u32) -> Run {
        self.plan_version = version;
        self
    }

    pub fn started(&self, now: SystemTime) -> Timestamp {
        Timestamp::from_system_time(now - DAY * self.days_ago - Duration::from_secs(3_600))
    }

    pub fn ended(&self, now: SystemTime) -> Timestamp {
        Timestamp::from_system_time(self.started(now).system_time() + Duration::from_secs(120))
    }
}

/// A temporary directory with `plans/` and `state/`.
pub struct Team {
    dir: tempfile::TempDir,
    now: SystemTime,
}

impl Team {
    pub fn new() -> Team {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("plans")).unwrap();
        std::fs::create_dir_all(dir.path().join("state/runs")).unwrap();
        Team {
            dir,
            now: SystemTime::now(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `plans/NAME.yaml` at text version `version`.
    pub fn plan(&self, name: &str, version: u32) {
        std::fs::write(
            self.path().join("plans").join(format!("{name}.yaml")),
            plan_text(name, version),
        )
        .unwrap();
    }

    /// When `run` started, as `run.json` says it.
    pub fn started(&self, run: &Run) -> Timestamp {
        run.started(self.now)
    }

    /// When `run` ended, as its journal says it.
    pub fn ended(&self, run: &Run) -> Timestamp {
        run.ended(self.now)
    }

    /// Writes the run's directory: `run.json`, `plan.yaml` and a journal that ends as its
    /// status says (`unfinished`: cut after the attempt started, as a crash leaves it).
    pub fn add(&self, run: Run) {
        let dir = self.path().join("state/runs").join(run.id);
        std::fs::create_dir_all(&dir).unwrap();
        let text = plan_text(run.plan, run.plan_version);
        let started = run.started(self.now);
        let ended = run.ended(self.now);
        let mut meta = serde_json::json!({
            "run_id": run.id,
            "plan": run.plan,
            "plan_path": format!("plans/{}.yaml", run.plan),
            "plan_hash": hash_text(&text),
            "params": {},
            "reason": run.reason,
            "user": run.user,
            "host": run.host,
            "pid": 4242,
            "started_at": started.to_string(),
            "lock": run.plan,
            "parallelism": 64,
            "inventory": run.inventory.is_some(),
            "rollbook_version": "0.1.0",
        });
        if let Some(path) = run.inventory {
            meta["inventory_path"] = path.into();
        }
        if !run.limit.is_empty() {
            meta["limit"] = run.limit.clone().into();
        }
        std::fs::write(
            dir.join("run.json"),
            serde_json::to_string_pretty(&meta).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.join("plan.yaml"), &text).unwrap();
        let (id, plan) = (run.id, run.plan);
        let mut lines = vec![
            format!(
                r#"{{"event":"run_started","at":"{started}","run_id":"{id}","plan":"{plan}"}}"#
            ),
            format!(r#"{{"event":"phase_started","at":"{started}","phase":"steps","nodes":1}}"#),
            format!(
                r#"{{"event":"attempt_started","at":"{started}","phase":"steps","node":"restore","attempt":1,"target":"local"}}"#
            ),
        ];
        let node = match run.status {
            "succeeded" => Some(
                r#""ok":true,"duration_ms":120000,"exit_code":0}|"status":"succeeded","outputs":{}}"#
                    .to_string(),
            ),
            "failed" => Some(
                r#""ok":false,"duration_ms":120000,"exit_code":1,"message":"exit code 1: restore failed"}|"status":"failed","message":"exit code 1: restore failed"}"#
                    .to_string(),
            ),
            "cancelled" => Some(
                r#""ok":false,"duration_ms":120000,"message":"cancelled"}|"status":"cancelled","message":"cancelled"}"#
                    .to_string(),
            ),
            "unfinished" => None,
            other => panic!("no status {other}"),
        };
        if let Some(node) = node {
            let (attempt, finished) = node.split_once('|').unwrap();
            let status = run.status;
            lines.push(format!(
                r#"{{"event":"attempt_finished","at":"{ended}","phase":"steps","node":"restore","attempt":1,{attempt}"#
            ));
            lines.push(format!(
                r#"{{"event":"node_finished","at":"{ended}","phase":"steps","node":"restore",{finished}"#
            ));
            lines.push(format!(
                r#"{{"event":"phase_finished","at":"{ended}","phase":"steps","status":"{status}"}}"#
            ));
            lines.push(format!(
                r#"{{"event":"run_finished","at":"{ended}","status":"{status}"}}"#
            ));
        }
        std::fs::write(dir.join("journal.jsonl"), lines.join("\n") + "\n").unwrap();
    }

    /// A run directory whose `run.json` does not read.
    pub fn add_unreadable(&self, id: &str) {
        let dir = self.path().join("state/runs").join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("run.json"), "{ not json").unwrap();
    }

    /// `rollbook --plans-dir plans --state-dir state ARGS`, in the team's directory.
    pub fn rollbook(&self, args: &[&str]) -> Ran {
        crate::rollbook_in(self.path())
            .args(["--plans-dir", "plans", "--state-dir", "state"])
            .args(args)
            .output()
            .unwrap()
            .into()
    }
}

/// `text` with every date (`2026-12-01`) and time (`2026-12-01T09:15:00`) written as
/// `YYYY-MM-DD` and `YYYY-MM-DDTHH:MM:SS` (same widths, so columns stay put): the fixtures'
/// times follow the clock.
pub fn without_dates(text: &str) -> String {
    const DATE: &[u8] = b"dddd-dd-dd";
    const TIME: &[u8] = b"dddd-dd-ddTdd:dd:dd";
    let fits = |bytes: &[u8], shape: &[u8]| {
        bytes.len() >= shape.len()
            && shape.iter().zip(bytes).all(|(s, b)| match s {
                b'd' => b.is_ascii_digit(),
                s => s == b,
            })
    };
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if fits(&bytes[i..], TIME) {
            out.push_str("YYYY-MM-DDTHH:MM:SS");
            i += TIME.len();
        } else if fits(&bytes[i..], DATE) {
            out.push_str("YYYY-MM-DD");
            i += DATE.len();
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The UTC day of a moment, as `list` and `readiness` write it.
pub fn day(t: Timestamp) -> String {
    t.to_string()[..10].to_string()
}

/// The plans and runs the `runs`, `list` and `readiness` tests read:
///
/// | plan | runs |
/// | --- | --- |
/// | web-rollback | staging 3d ok; production 20d ok; production 1d failed; no inventory 50d ok |
/// | db-rollback | staging 40d ok; staging 2d cancelled |
/// | cache-rollback | staging 5d ok, of an older text |
/// | queue-rollback | staging 2d ok with `--limit web-1`; 6d unfinished |
/// | dns-rollback | none |
pub fn team() -> Team {
    let team = Team::new();
    for plan in [
        "web-rollback",
        "db-rollback",
        "queue-rollback",
        "dns-rollback",
    ] {
        team.plan(plan, 1);
    }
    team.plan("cache-rollback", 2);
    for run in runs() {
        team.add(run);
    }
    team
}

pub const STAGING: &str = "inventories/staging.yaml";
pub const PRODUCTION: &str = "inventories/production.yaml";

/// The runs of [`team`].
pub fn runs() -> Vec<Run> {
    vec![
        Run::new("20261202-074501-0a01", "web-rollback")
            .days_ago(3)
            .inventory(STAGING)
            .reason("practice before the 2026.12 upgrade"),
        Run::new("20261115-074501-0a02", "web-rollback")
            .days_ago(20)
            .inventory(PRODUCTION)
            .by("sam", "ops-bastion-2")
            .reason("INC-4711: 2026.11.4 leaks connections"),
        Run::new("20261204-074501-0a03", "web-rollback")
            .days_ago(1)
            .status("failed")
            .inventory(PRODUCTION)
            .by("sam", "ops-bastion-2")
            .reason("INC-4790: back to 2026.11.3"),
        Run::new("20261016-074501-0a04", "web-rollback")
            .days_ago(50)
            .by("lee", "laptop-lee")
            .reason("first try"),
        Run::new("20261026-074501-0b01", "db-rollback")
            .days_ago(40)
            .inventory(STAGING),
        Run::new("20261203-074501-0b02", "db-rollback")
            .days_ago(2)
            .status("cancelled")
            .inventory(STAGING)
            .by("lee", "laptop-lee")
            .reason("practice, stopped: wrong window"),
        Run::new("20261130-074501-0c01", "cache-rollback")
            .days_ago(5)
            .inventory(STAGING)
            .plan_version(1),
        Run::new("20261203-074501-0d01", "queue-rollback")
            .days_ago(2)
            .inventory(STAGING)
            .limit("web-1")
            .by("sam", "ops-bastion-2"),
        Run::new("20261129-074501-0d02", "queue-rollback")
            .days_ago(6)
            .status("unfinished")
            .inventory(STAGING)
            .by("sam", "ops-bastion-2")
            .reason("practice, the bastion rebooted"),
    ]
}
