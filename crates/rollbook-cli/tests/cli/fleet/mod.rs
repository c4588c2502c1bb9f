//! End to end: the plans in `plans/`, unchanged, run by the real binary against the simulated
//! platform of `examples/fleet` (`scripts/fleet up`; scripts/test starts it), and the fleet's
//! state checked afterwards: each host's units and files, the platform API's nodes and the
//! notifications it received, the database schema.
//!
//! The fleet is one for the whole machine, so its tests take it one at a time (a file lock,
//! and a nextest test group of one in `.config/nextest.toml`), each from a fresh
//! `scripts/fleet reset`. Every test has its own state dir (journal, locks).

mod emergency;
mod incidents;
mod nodes;
mod operators;
mod services;
mod tour;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;

pub use crate::{Ran, Running, wait_until};

/// The fleet, held by one test.
pub struct Fleet {
    pub dir: PathBuf,
    env: Vec<(String, String)>,
    state: tempfile::TempDir,
    _lock: std::fs::File,
}

/// One line of the fleet's `events.log`: a unit started or stopped, a DNS change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetEvent {
    /// UTC, RFC 3339 with milliseconds: compares as text with the journal's times.
    pub at: String,
    pub host: String,
    pub verb: String,
    pub unit: String,
    pub version: String,
}

impl Fleet {
    /// Waits for the fleet, resets it, and keeps it until dropped.
    pub fn take() -> Fleet {
        let dir = PathBuf::from(
            std::env::var("ROLLBOOK_FLEET_DIR").unwrap_or_else(|_| "/tmp/rollbook-fleet".into()),
        );
        let env_file = dir.join("env");
        let text = std::fs::read_to_string(&env_file).unwrap_or_else(|_| {
            panic!(
                "the simulated fleet is not up in {}: start it with `scripts/fleet up` \
                 (scripts/test does it), or set ROLLBOOK_FLEET_DIR",
                dir.display()
            )
        });
        let lock = std::fs::File::create(dir.join("test.lock")).unwrap();
        lock.lock().unwrap();
        let mut env: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.retain(|(k, _)| k != "ROLLBOOK_PLANS");
        env.push((
            "ROLLBOOK_PLANS".into(),
            crate::workspace().join("plans").display().to_string(),
        ));
        let path = format!(
            "{}:{}",
            dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        env.push(("PATH".into(), path));
        let fleet = Fleet {
            dir,
            env,
            state: tempfile::tempdir().unwrap(),
            _lock: lock,
        };
        fleet.reset();
        fleet
    }

    /// Puts every host, the API and the database back as `scripts/fleet up` left them.
    pub fn reset(&self) {
        let out = StdCommand::new(crate::workspace().join("scripts/fleet"))
            .arg("reset")
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/fleet reset failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn ops(&self) -> PathBuf {
        self.dir.join("ops")
    }

    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    pub fn var(&self, name: &str) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} is not in the fleet's env"))
    }

    /// `rollbook` as an operator runs it from the fleet's ops checkout with its env sourced
    /// (and nothing else of `ROLLBOOK_*` from the environment the tests run in).
    pub fn rollbook(&self) -> Command {
        Command::from_std(self.command())
    }

    fn command(&self) -> StdCommand {
        let mut cmd = crate::rollbook_command(&self.ops());
        cmd.env("ROLLBOOK_STATE_DIR", self.state_dir());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `rollbook ARGS` to its end; its exit code, stdout and stderr.
    pub fn run(&self, args: &[&str]) -> Ran {
        self.rollbook().args(args).output().unwrap().into()
    }

    /// Starts `rollbook ARGS` in the background; killed if the test ends before it does.
    pub fn spawn(&self, args: &[&str]) -> Running {
        Running::spawn(
            self.command()
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
    }

    /// The run ids in the state dir.
    pub fn run_ids(&self) -> Vec<String> {
        crate::run_ids_in(self.state_dir())
    }

    /// The only run of this test.
    pub fn the_run(&self) -> String {
        let ids = self.run_ids();
        assert_eq!(ids.len(), 1, "{ids:?}");
        ids[0].clone()
    }

    /// `rollbook show RUN --format json`.
    pub fn show(&self, run: &str) -> Value {
        let out = self.run(&["show", run, "--format", "json"]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        serde_json::from_str(&out.stdout).unwrap()
    }

    /// The status of every node of a run, by node name.
    pub fn node_statuses(&self, run: &str) -> BTreeMap<String, String> {
        self.show(run)["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["node"].as_str().unwrap().to_string(),
                    n["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Asserts that no node of `run` whose name starts with `prefix` was attempted: the
    /// rollout stopped before it (they are listed as cancelled).
    #[track_caller]
    pub fn assert_never_attempted(&self, run: &str, prefix: &str) {
        let shown = self.show(run);
        let nodes: Vec<&Value> = shown["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["node"].as_str().unwrap().starts_with(prefix))
            .collect();
        assert!(!nodes.is_empty(), "no node {prefix}*");
        for n in nodes {
            assert_eq!(n["status"], "cancelled", "{n}");
            assert_eq!(n["attempts"], 0, "{n}");
        }
    }

    /// The host's units that are active, with the version each was started with.
    pub fn units(&self, host: &str) -> BTreeMap<String, String> {
        let dir = self.dir.join("hosts").join(host).join("units");
        std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| {
                let e = e.unwrap();
                let version = std::fs::read_to_string(e.path()).unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    version.trim().to_string(),
                )
            })
            .collect()
    }

    /// A file as the host sees it (`/usr/local/bin/...` or `/etc/zeitwork/...`).
    pub fn host_file(&self, host: &str, path: &str) -> Option<String> {
        let root = self.dir.join("hosts").join(host).join("root");
        let local = if let Some(rest) = path.strip_prefix("/usr/local/bin/") {
            root.join("bin").join(rest)
        } else if let Some(rest) = path.strip_prefix("/etc/zeitwork/") {
            root.join("etc").join(rest)
        } else {
            panic!("{path} is not a path of the host's own");
        };
        std::fs::read_to_string(local).ok()
    }

    /// Makes a host's file disappear (a missing backup, say).
    pub fn remove_host_file(&self, host: &str, path: &str) {
        let rest = path.strip_prefix("/usr/local/bin/").expect("a binary path");
        std::fs::remove_file(
            self.dir
                .join("hosts")
                .join(host)
                .join("root/bin")
                .join(rest),
        )
        .unwrap();
    }

    /// Sets a unit as running `version` (or stopped), as a test's starting point.
    pub fn set_unit(&self, host: &str, unit: &str, version: Option<&str>) {
        let path = self.dir.join("hosts").join(host).join("units").join(unit);
        match version {
            Some(v) => std::fs::write(path, format!("{v}\n")).unwrap(),
            None => {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// What the fleet's hosts did, in order.
    pub fn events(&self) -> Vec<FleetEvent> {
        std::fs::read_to_string(self.dir.join("events.log"))
            .unwrap()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                FleetEvent {
                    at: f[0].into(),
                    host: f[1].into(),
                    verb: f[2].into(),
                    unit: f[3].into(),
                    version: f[4].into(),
                }
            })
            .collect()
    }

    /// The platform API's state (`GET /_fleet/state`).
    pub fn api(&self) -> Value {
        let body = http("GET", "/_fleet/state");
        serde_json::from_str(&body).unwrap()
    }

    /// A control call to the platform API (`POST /_fleet/stuck/NAME`, ...).
    pub fn api_post(&self, path: &str) {
        http("POST", path);
    }

    /// One value of a query on the fleet's database, by `psql`.
    pub fn sql(&self, query: &str) -> String {
        let out = StdCommand::new("psql")
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg(self.var("DATABASE_URL"))
            .args(["-c", query])
            .output()
            .expect("psql (the PostgreSQL client) is needed by the fleet tests");
        assert!(
            out.status.success(),
            "{query}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `table.column` of every column in the fleet's public schema, sorted.
    pub fn columns(&self) -> Vec<String> {
        self.sql(
            "SELECT string_agg(table_name || '.' || column_name, ',' ORDER BY table_name, column_name) \
             FROM information_schema.columns WHERE table_schema = 'public'",
        )
        .split(',')
        .map(str::to_string)
        .collect()
    }

    /// Everything the fleet holds that a rollback may change, for comparing two runs.
    pub fn snapshot(&self) -> Value {
        let mut hosts = serde_json::Map::new();
        for host in self.api()["hosts"].as_array().unwrap() {
            let name = host["name"].as_str().unwrap();
            let root = self.dir.join("hosts").join(name).join("root");
            let mut files = BTreeMap::new();
            for sub in ["bin", "etc"] {
                for e in std::fs::read_dir(root.join(sub)).unwrap() {
                    let e = e.unwrap();
                    files.insert(
                        format!("{sub}/{}", e.file_name().to_string_lossy()),
                        std::fs::read_to_string(e.path()).unwrap(),
                    );
                }
            }
            hosts.insert(
                name.into(),
                serde_json::json!({ "units": self.units(name), "files": files }),
            );
        }
        let nodes: Vec<Value> = self.api()["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| serde_json::json!({ "id": n["id"], "status": n["status"] }))
            .collect();
        serde_json::json!({
            "hosts": hosts,
            "nodes": nodes,
            "columns": self.columns(),
            "migrations": self.sql("SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations"),
        })
    }
}

/// A plain HTTP/1.1 request to the fleet's API on 127.0.0.1:8080; the response body.
fn http(method: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect("127.0.0.1:8080").expect("the fleet API");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 2"),
        "{method} {path}: {head}\n{body}"
    );
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(body)
    } else {
        body.to_string()
    }
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

pub const GOOD: &str = "4.1.0";
pub const BROKEN: &str = "4.2.0";

pub fn operators() -> Vec<String> {
    ["us-east", "eu-west", "ap-south"]
        .iter()
        .flat_map(|r| (1..=3).map(move |i| format!("{r}-op-{i}")))
        .collect()
}

pub fn workers() -> Vec<String> {
    ["us-east", "eu-west", "ap-south"]
        .iter()
        .flat_map(|r| (1..=6).map(move |i| format!("{r}-worker-{i}")))
        .collect()
}
