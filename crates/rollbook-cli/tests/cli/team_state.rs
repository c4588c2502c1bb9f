//! The shared state on PostgreSQL (`--state postgres://…`, `ROLLBOOK_STATE`) through the real
//! binary: controllers in different working and state directories on one database, a lock
//! raced for by ten, a controller killed and its run resumed elsewhere, the database's
//! sessions cut mid-run, a role with the least privileges, `state import`, and passwords.
//!
//! The server is the loopback PostgreSQL of `scripts/test-servers`, found through
//! `ROLLBOOK_TEST_PG_URL` (and `ROLLBOOK_TEST_PG_PASSWORD_URL` for the one that asks for a
//! password). Each test makes a database of its own (`rb_<unique>`) with `psql` and drops it
//! at the end, also when it fails; each controller runs in a directory of its own, with its
//! own `plans/` and state directory (`.rollbook`). A test whose server is not there fails and
//! says how to start it.

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Ran, Running, wait_until};

/// How long a condition may take before a test gives up: a bound for a test that would
/// otherwise hang, not a measure.
const PATIENCE: Duration = Duration::from_secs(120);

fn how_to_start(var: &str, what: &str) -> String {
    format!(
        "{var} is not set: it names {what}. `source scripts/test-servers` sets it \
         (scripts/test does it for you)."
    )
}

/// The admin URL of the test server (`postgres`, may create databases and roles).
fn admin_url() -> String {
    std::env::var("ROLLBOOK_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "{}",
            how_to_start(
                "ROLLBOOK_TEST_PG_URL",
                "the loopback PostgreSQL where the shared-state tests create their databases and \
                 roles (e.g. postgres://postgres@127.0.0.1:5432/postgres, trusted)"
            )
        )
    })
}

/// `url` with another database, user and password (`None`: none in the URL).
fn url_with(url: &str, database: &str, user: Option<&str>, password: Option<&str>) -> String {
    let mut u = url::Url::parse(url).unwrap_or_else(|e| panic!("{url} does not read: {e}"));
    u.set_path(&format!("/{database}"));
    if let Some(user) = user {
        u.set_username(user).unwrap();
    }
    u.set_password(password).unwrap();
    u.to_string()
}

/// A name no other test (or earlier run) uses: `PREFIX_<pid>_<nanos>_<n>`.
fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `psql` on `url`: the rows, unaligned, one a line; the error text when it fails.
fn psql_try(url: &str, sql: &str) -> Result<String, String> {
    let out = StdCommand::new("psql")
        .args([
            "-X",
            "-w",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGPASSWORD")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("psql does not start ({e}): the tests need the PostgreSQL client")
        });
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[track_caller]
fn psql(url: &str, sql: &str) -> String {
    psql_try(url, sql).unwrap_or_else(|e| panic!("psql on {url}: {sql}\n{e}"))
}

/// A database of the test's own, dropped (its sessions ended) when the test ends.
struct Db {
    /// The server's admin URL (any database).
    admin: String,
    name: String,
}

impl Db {
    /// A new database on the test server.
    fn new() -> Db {
        Db::on(&admin_url(), None)
    }

    /// A new database on the server of `admin`, owned by `owner` (the admin when `None`).
    fn on(admin: &str, owner: Option<&str>) -> Db {
        let name = unique("rb");
        let owned = owner.map_or(String::new(), |o| format!(" OWNER {o}"));
        if let Err(e) = psql_try(admin, &format!("CREATE DATABASE {name}{owned}")) {
            panic!(
                "cannot create a database on {admin} ({}). Start the test servers with `source \
                 scripts/test-servers` (scripts/test does it for you).",
                e.trim()
            );
        }
        Db {
            admin: admin.to_string(),
            name,
        }
    }

    /// The admin's URL of this database: what rollbook is given in most tests.
    fn url(&self) -> String {
        url_with(&self.admin, &self.name, None, None)
    }

    /// SQL as the admin, on this database.
    #[track_caller]
    fn sql(&self, sql: &str) -> String {
        psql(&self.url(), sql)
    }

    /// The run's shared journal: `line` of its rows in seq order, after checking that the seqs
    /// are 1..n.
    #[track_caller]
    fn journal(&self, run_id: &str) -> Vec<String> {
        let seqs: Vec<u64> = self
            .sql(&format!(
                "SELECT seq FROM rollbook_events WHERE run_id = '{run_id}' ORDER BY seq"
            ))
            .lines()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "the shared journal of {run_id} has gaps"
        );
        self.sql(&format!(
            "SELECT line FROM rollbook_events WHERE run_id = '{run_id}' ORDER BY seq"
        ))
        .lines()
        .map(str::to_string)
        .collect()
    }

    /// How many rows of the run's shared journal `filter` (SQL on `kind` and `line`) matches.
    fn count_events(&self, run_id: &str, filter: &str) -> usize {
        psql_try(
            &self.url(),
            &format!("SELECT count(*) FROM rollbook_events WHERE run_id = '{run_id}' AND {filter}"),
        )
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
    }

    /// Every table of the shared state as text (logs decoded).
    fn dump(&self) -> String {
        let mut all = String::new();
        for table in [
            "rollbook_schema",
            "rollbook_runs",
            "rollbook_controllers",
            "rollbook_events",
            "rollbook_locks",
        ] {
            all.push_str(&self.sql(&format!("SELECT t::text FROM {table} t")));
        }
        all.push_str(&self.sql(
            "SELECT run_id, phase, node, \"offset\", convert_from(chunk, 'UTF8') FROM rollbook_logs",
        ));
        all
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = psql_try(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// A login role of the test's own on the test server, dropped when the test ends (after the
/// database it has privileges in: declare it first).
struct Role {
    admin: String,
    name: String,
    password: String,
}

impl Role {
    fn new() -> Role {
        let admin = admin_url();
        let name = unique("rb_role");
        let password = format!("pw-{}", unique("lp"));
        psql(
            &admin,
            &format!("CREATE ROLE {name} LOGIN PASSWORD '{password}'"),
        );
        Role {
            admin,
            name,
            password,
        }
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = psql_try(&self.admin, &format!("DROP ROLE IF EXISTS {}", self.name));
    }
}

/// A controller's place: a working directory with its own `plans/` and state directory
/// (`.rollbook`), and the environment its `rollbook` gets (the shared store's URL, init).
struct Desk {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Desk {
    /// A desk on the shared store at `url`, creating its tables on first use.
    fn on(url: &str) -> Desk {
        let desk = Desk::local();
        desk.with("ROLLBOOK_STATE", url)
            .with("ROLLBOOK_STATE_INIT", "1")
    }

    /// A desk with no shared store: runs go to its state directory.
    fn local() -> Desk {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("plans")).unwrap();
        Desk {
            dir,
            env: Vec::new(),
        }
    }

    /// The same desk, with one more variable for its `rollbook`.
    fn with(mut self, name: &str, value: &str) -> Desk {
        self.env.push((name.into(), value.into()));
        self
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `plans/NAME.yaml`: `version`, `name`, then `body`.
    fn plan(&self, name: &str, body: &str) -> &Desk {
        let text = format!("version: 1\nname: {name}\n{body}");
        std::fs::write(self.path().join("plans").join(format!("{name}.yaml")), text).unwrap();
        self
    }

    fn command(&self, args: &[&str]) -> StdCommand {
        let mut cmd = crate::rollbook_command(self.path());
        cmd.env_remove("SUDO_USER").args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `rollbook ARGS` to its end.
    fn run(&self, args: &[&str]) -> Ran {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .into()
    }

    /// `rollbook ARGS` in the background, its output captured.
    fn spawn(&self, args: &[&str]) -> Running {
        Running::spawn(
            self.command(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
    }

    /// This desk's copies of the shared runs (`.rollbook/shared/<host-port-db>/runs`): the
    /// one database directory there.
    fn copies(&self) -> PathBuf {
        let shared = self.path().join(".rollbook/shared");
        let dbs: Vec<PathBuf> = std::fs::read_dir(&shared)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        assert_eq!(dbs.len(), 1, "{dbs:?} in {}", shared.display());
        dbs[0].join("runs")
    }

    /// The run ids of this desk's copies (write-ahead copies of the runs it controlled).
    fn copied_runs(&self) -> Vec<String> {
        let shared = self.path().join(".rollbook/shared");
        if !shared.exists() {
            return Vec::new();
        }
        let mut ids: Vec<String> = std::fs::read_dir(self.copies())
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.') && !n.contains(".late-"))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// This desk's copy of a run's journal, line by line.
    fn journal(&self, run_id: &str) -> Vec<String> {
        std::fs::read_to_string(self.copies().join(run_id).join("journal.jsonl"))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Every byte under the desk's state directory.
    fn state_files(&self) -> String {
        fn walk(dir: &Path, out: &mut String) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
                }
            }
        }
        let mut out = String::new();
        walk(&self.path().join(".rollbook"), &mut out);
        out
    }
}

/// This machine's name, as rollbook reads it for the journal and the lock.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

fn wait_for_file(path: &Path) {
    wait_until(PATIENCE, &format!("{} to appear", path.display()), || {
        path.exists()
    });
}

/// Waits for `ready`, asking it every 100 ms (each ask may run `psql`).
fn poll(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < PATIENCE, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// The `controller_started` events of a journal.
fn controllers(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| parse(l))
        .filter(|e| e["event"] == "controller_started")
        .collect()
}

// 1 ----------------------------------------------------------------------------------------

/// Two controllers in different working and state directories on one database: while A runs,
/// B is refused (exit 4) and told who holds the lock; once A is done B runs; a third
/// directory lists, shows and reports both runs.
#[test]
fn a_second_controller_is_refused_while_the_first_runs_and_a_third_sees_both() {
    let db = Db::new();
    let scratch = tempfile::tempdir().unwrap();
    let started = scratch.path().join("started");
    let release = scratch.path().join("release");
    let plan = format!(
        "lock: platform\nsteps:\n  - id: hold\n    shell: {{ run: 'touch {s}; while [ ! -e {r} ]; do sleep 0.05; done; echo held' }}\n",
        s = started.display(),
        r = release.display()
    );
    let a = Desk::on(&db.url()).with("USER", "alice");
    let b = Desk::on(&db.url()).with("USER", "bob");
    let c = Desk::on(&db.url()).with("USER", "carol");
    a.plan("hold", &plan);
    b.plan("hold", &plan);

    let first = a.spawn(&["run", "hold", "--reason", "alice rolls back"]);
    wait_for_file(&started);
    let a_runs = a.copied_runs();
    assert_eq!(a_runs.len(), 1, "{a_runs:?}");
    let a_id = a_runs[0].clone();

    let refused = b.run(&["run", "hold", "--reason", "bob rolls back"]);
    refused.assert_code(4);
    let err = &refused.stderr;
    let holder = format!(
        "held by run {a_id} by alice on {} (pid {})",
        host_name(),
        first.id()
    );
    assert!(err.contains(&holder), "`{holder}` not in:\n{err}");
    assert!(b.copied_runs().is_empty(), "{:?}", b.copied_runs());
    assert_eq!(db.sql("SELECT count(*) FROM rollbook_runs").trim(), "1");

    std::fs::write(&release, "").unwrap();
    let out: Ran = first.wait_with_output().into();
    out.assert_code(0);
    let ran = b.run(&["run", "hold", "--reason", "bob rolls back"]);
    ran.assert_code(0);
    let b_runs = b.copied_runs();
    assert_eq!(b_runs.len(), 1, "{b_runs:?}");
    let b_id = b_runs[0].clone();
    assert_ne!(a_id, b_id);

    // A third directory, which ran nothing, sees both.
    let listed = c.run(&["runs"]);
    listed.assert_code(0);
    for (id, user, reason) in [
        (&a_id, "alice", "alice rolls back"),
        (&b_id, "bob", "bob rolls back"),
    ] {
        let line = listed
            .stdout
            .lines()
            .find(|l| l.starts_with(id.as_str()))
            .unwrap_or_else(|| panic!("no {id} in:\n{}", listed.stdout));
        for needle in [user, &host_name(), reason] {
            assert!(line.contains(needle), "`{needle}` not in: {line}");
        }
    }
    let json = c.run(&["runs", "--format", "json"]).assert_code(0).json();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{json:#}");
    for (id, user, reason) in [
        (&a_id, "alice", "alice rolls back"),
        (&b_id, "bob", "bob rolls back"),
    ] {
        let run = runs
            .iter()
            .find(|r| r["meta"]["run_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no {id} in {json:#}"));
        assert_eq!(run["meta"]["user"], user, "{run:#}");
        assert_eq!(run["meta"]["host"], host_name(), "{run:#}");
        assert_eq!(run["meta"]["reason"], reason, "{run:#}");
        assert_eq!(run["status"], "succeeded", "{run:#}");
    }
    for (id, user) in [(&a_id, "alice"), (&b_id, "bob")] {
        let shown = c.run(&["show", id]);
        shown.assert_code(0);
        assert!(
            shown
                .stdout
                .contains(&format!("by {user} on {}", host_name())),
            "{}",
            shown.stdout
        );
        let node = &c
            .run(&["show", id, "--format", "json"])
            .assert_code(0)
            .json()["nodes"][0];
        assert_eq!(node["status"], "succeeded", "{node:#}");
        let report = c.run(&["report", id]);
        report.assert_code(0);
        assert!(
            report.stdout.contains(&format!("{user}@{}", host_name()))
                && report.stdout.contains(&format!("`{id}`")),
            "{}",
            report.stdout
        );
    }
}

// 2 ----------------------------------------------------------------------------------------

/// Ten controllers started at once on a new database race for one lock (and for creating the
/// tables): one gets it and runs its step, the nine others exit 4 naming it.
#[test]
fn ten_controllers_race_for_one_lock_and_one_wins() {
    let db = Db::new();
    let scratch = tempfile::tempdir().unwrap();
    let ran = scratch.path().join("ran");
    let release = scratch.path().join("release");
    let desks: Vec<Desk> = (0..10)
        .map(|i| {
            let desk = Desk::on(&db.url()).with("USER", &format!("op{i}"));
            desk.plan(
                "race",
                &format!(
                    "lock: platform\nsteps:\n  - id: step\n    shell: {{ run: 'echo op{i} >> {ran}; while [ ! -e {r} ]; do sleep 0.05; done' }}\n",
                    ran = ran.display(),
                    r = release.display()
                ),
            );
            desk
        })
        .collect();
    let mut running: Vec<Option<Running>> = desks
        .iter()
        .map(|d| Some(d.spawn(&["run", "race", "--reason", "race", "--yes"])))
        .collect();
    let pids: Vec<u32> = running.iter().map(|r| r.as_ref().unwrap().id()).collect();
    let mut ended: Vec<Option<Ran>> = (0..10).map(|_| None).collect();
    // Nine end on their own (the winner waits for `release`), unless more than one step runs.
    let lines = || std::fs::read_to_string(&ran).map_or(0, |t| t.lines().count());
    wait_until(PATIENCE, "nine controllers to end", || {
        for (i, r) in running.iter_mut().enumerate() {
            if r.as_mut().is_some_and(|c| c.try_wait().unwrap().is_some()) {
                ended[i] = Some(r.take().unwrap().wait_with_output().into());
            }
        }
        ended.iter().filter(|e| e.is_some()).count() >= 9 || lines() > 1
    });
    assert!(
        lines() <= 1,
        "more than one step ran: {:?}",
        std::fs::read_to_string(&ran)
    );
    let still: Vec<usize> = (0..10).filter(|i| running[*i].is_some()).collect();
    assert_eq!(still.len(), 1, "{ended:#?}");
    let winner = still[0];
    // Exactly one step ran: the winner's, and it is still running.
    wait_for_file(&ran);
    assert_eq!(
        std::fs::read_to_string(&ran).unwrap(),
        format!("op{winner}\n")
    );
    for (i, e) in ended.iter().enumerate() {
        let Some(e) = e else { continue };
        e.assert_code(4);
        assert!(
            e.stderr.contains(&format!(
                "by op{winner} on {} (pid {})",
                host_name(),
                pids[winner]
            )),
            "controller {i}:\n{}",
            e.stderr
        );
    }
    std::fs::write(&release, "").unwrap();
    let won: Ran = running[winner].take().unwrap().wait_with_output().into();
    won.assert_code(0);
    assert_eq!(
        std::fs::read_to_string(&ran).unwrap(),
        format!("op{winner}\n")
    );
    assert_eq!(db.sql("SELECT count(*) FROM rollbook_runs").trim(), "1");
    assert_eq!(db.sql("SELECT count(*) FROM rollbook_schema").trim(), "1");
}

// 3, 5 -------------------------------------------------------------------------------------

/// `crash`: `a` appends a line to `counter`; `b` (after it) notes it started, then sleeps 300 s
/// the first time and returns at once the next.
fn crash_plan(scratch: &Path) -> String {
    let counter = scratch.join("counter");
    let b_started = scratch.join("b-started");
    format!(
        "lock: crash\nsteps:\n  - id: a\n    shell: {{ run: 'echo a >> {c}' }}\n  - id: b\n    needs: [a]\n    shell: {{ run: 'if [ -e {m} ]; then echo again; exit 0; fi; touch {m}; sleep 300' }}\n",
        c = counter.display(),
        m = b_started.display()
    )
}

/// Runs `crash` at `desk` and kills it (SIGKILL) once `b` runs and the shared journal has
/// `b`'s process: the run's id, the dead controller's pid, and when it was killed.
fn run_and_kill(desk: &Desk, db: &Db, scratch: &Path) -> (String, u32, Instant) {
    let mut child = desk.spawn(&["run", "crash", "--reason", "crash test", "--yes"]);
    wait_for_file(&scratch.join("b-started"));
    let ids = desk.copied_runs();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let id = ids[0].clone();
    poll("b's process in the shared journal", || {
        db.count_events(
            &id,
            "kind = 'attempt_process' AND line LIKE '%\"node\":\"b\"%'",
        ) == 1
    });
    let pid = child.id();
    child.kill().unwrap(); // SIGKILL
    let killed = Instant::now();
    let _ = child.wait();
    (id, pid, killed)
}

/// `resume ID --yes` at `desk` until it is not refused for the lock (exit 4); the last one,
/// and how long after `since` it started.
fn resume_until_the_lock_is_free(desk: &Desk, id: &str, since: Instant) -> (Ran, Duration) {
    loop {
        let started = since.elapsed();
        let ran = desk.run(&["resume", id, "--yes"]);
        if ran.code != Some(4) {
            return (ran, started);
        }
        assert!(
            since.elapsed() < PATIENCE,
            "still locked after {PATIENCE:?}:\n{}",
            ran.stderr
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// kill -9 of a controller mid-run, then `resume` from another directory with another state
/// directory: refused while the dead controller's lease is live, taken over once it expires
/// (within 30 s of the kill, with the default lease), and the run completes without running
/// again what succeeded. The shared journal is the resuming machine's copy, line for line,
/// and names both controllers with growing tokens.
#[test]
fn a_killed_controllers_run_is_resumed_from_another_machine_after_its_lease() {
    let db = Db::new();
    let scratch = tempfile::tempdir().unwrap();
    // A has the default lease (15 s): refused right after the kill.
    let a = Desk::on(&db.url()).with("USER", "alice");
    let b = Desk::on(&db.url())
        .with("USER", "bob")
        .with("ROLLBOOK_STATE_LEASE", "2s");
    a.plan("crash", &crash_plan(scratch.path()));
    let (id, a_pid, killed) = run_and_kill(&a, &db, scratch.path());

    let refused = b.run(&["resume", &id, "--yes"]);
    refused.assert_code(4);
    let holder = format!("held by run {id} by alice on {} (pid {a_pid})", host_name());
    assert!(
        refused.stderr.contains(&holder),
        "`{holder}` not in:\n{}",
        refused.stderr
    );

    let (resumed, after) = resume_until_the_lock_is_free(&b, &id, killed);
    resumed.assert_code(0);
    // The one bound on time this suite asserts: the issue's, a dead controller's lock is
    // taken over within 30 s (the default lease is 15 s).
    assert!(
        after < Duration::from_secs(30),
        "the lock was taken over {after:?} after the kill"
    );
    eprintln!("the lock was taken over {after:?} after the kill");
    let counter = std::fs::read_to_string(scratch.path().join("counter")).unwrap();
    assert_eq!(counter, "a\n", "step a ran more than once");

    let shared = db.journal(&id);
    let local = b.journal(&id);
    assert_eq!(
        shared, local,
        "the shared journal is not the resuming machine's copy"
    );
    let last = parse(shared.last().unwrap());
    assert_eq!(last["event"], "run_finished");
    assert_eq!(last["status"], "succeeded");
    let controllers = controllers(&shared);
    assert_eq!(controllers.len(), 2, "{controllers:#?}");
    assert_eq!(controllers[0]["user"], "alice");
    assert_eq!(controllers[0]["pid"], a_pid);
    assert_eq!(controllers[1]["user"], "bob");
    let tokens: Vec<i64> = controllers
        .iter()
        .map(|c| c["token"].as_i64().unwrap())
        .collect();
    assert!(tokens[0] < tokens[1], "tokens {tokens:?}");
    assert_eq!(
        db.sql(&format!(
            "SELECT user_name || ':' || token FROM rollbook_controllers WHERE run_id = '{id}' ORDER BY token"
        )),
        format!("alice:{}\nbob:{}\n", tokens[0], tokens[1])
    );

    // The report, read from the shared store by a third directory, names both controllers.
    let c = Desk::on(&db.url());
    let report = c.run(&["report", &id]);
    report.assert_code(0);
    for (i, user) in ["alice", "bob"].iter().enumerate() {
        let named = format!(
            ": {user}@{} (pid {}), lock `crash`, fencing token {}",
            host_name(),
            controllers[i]["pid"],
            tokens[i]
        );
        assert!(
            report.stdout.contains(&named),
            "`{named}` not in:\n{}",
            report.stdout
        );
    }
    assert!(
        report.stdout.contains("**Resumed**: once"),
        "{}",
        report.stdout
    );
}

// 4 ----------------------------------------------------------------------------------------

/// The database ends every session of the controller several times mid-run
/// (`pg_terminate_backend`): the run goes on and succeeds, and the shared copy ends up with
/// every event of the local one exactly once, in order, and every step's output.
#[test]
fn a_run_survives_its_database_sessions_being_terminated() {
    let db = Db::new();
    let desk = Desk::on(&db.url());
    let steps = 40;
    // Step 3k+3 waits until round k's cuts are done (a file the test writes), so the run
    // cannot outpace the rounds on a slow machine.
    let gate = |round: usize| desk.path().join(format!("round-{round}-done"));
    let mut body = String::from("steps:\n");
    for i in 0..steps {
        body.push_str(&format!("  - id: s{i}\n"));
        if i > 0 {
            body.push_str(&format!("    needs: [s{}]\n", i - 1));
        }
        let wait = if i % 3 == 0 && (1..=5).contains(&(i / 3)) {
            format!(
                "while [ ! -e {} ]; do sleep 0.05; done; ",
                gate(i / 3).display()
            )
        } else {
            String::new()
        };
        body.push_str(&format!(
            "    shell: {{ run: '{wait}echo out of s{i}; echo err of s{i} >&2; sleep 0.3' }}\n"
        ));
    }
    desk.plan("cut", &body);
    let mut child = desk.spawn(&["run", "cut", "--reason", "sessions cut", "--yes"]);
    wait_until(PATIENCE, "the run's copy", || desk.copied_runs().len() == 1);
    let id = desk.copied_runs()[0].clone();
    let finished = |desk: &Desk| {
        std::fs::read_to_string(desk.copies().join(&id).join("journal.jsonl"))
            .map_or(0, |j| j.matches("\"node_finished\"").count())
    };
    let sessions = format!(
        "FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'rollbook' AND pid <> pg_backend_pid()",
        db.name
    );
    let mut cuts = 0;
    for round in 1..=5 {
        // Rounds 3 steps apart: the last one starts with 25 steps (7.5 s at least) still to run.
        wait_until(PATIENCE, "the run to go on", || {
            finished(&desk) >= round * 3
        });
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before round {round}"
        );
        poll("a session of the controller", || {
            db.sql(&format!("SELECT count(*) {sessions}")).trim() != "0"
        });
        let terminate = || -> usize {
            db.sql(&format!(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) {sessions}"
            ))
            .trim()
            .parse()
            .unwrap()
        };
        let ended = terminate();
        assert!(ended >= 1, "round {round} ended no session");
        cuts += ended;
        // Then a burst, so that some cut falls inside a transaction (not only on an idle
        // connection of the pool): ten more, 50 ms apart.
        for _ in 0..10 {
            std::thread::sleep(Duration::from_millis(50));
            cuts += terminate();
        }
        std::fs::write(gate(round), "").unwrap();
    }
    let out: Ran = child.wait_with_output().into();
    out.assert_code(0);
    assert!(cuts >= 5, "{cuts} sessions ended");
    eprintln!("{cuts} sessions ended");

    let local = desk.journal(&id);
    let shared = db.journal(&id);
    assert_eq!(shared, local, "the shared journal is not the local copy");
    assert_eq!(
        local
            .iter()
            .filter(|l| l.contains("\"node_finished\""))
            .count(),
        steps
    );
    for i in 0..steps {
        let log_file = desk.copies().join(&id).join(format!("logs/steps/s{i}.log"));
        let local_log = std::fs::read_to_string(&log_file).unwrap();
        assert!(
            local_log.contains(&format!("out of s{i}"))
                && local_log.contains(&format!("err of s{i}")),
            "{local_log}"
        );
        let shared_log = db.sql(&format!(
            "SELECT convert_from(string_agg(chunk, ''::bytea ORDER BY \"offset\"), 'UTF8') FROM rollbook_logs WHERE run_id = '{id}' AND phase = 'steps' AND node = 's{i}'"
        ));
        // psql ends the value with a newline of its own.
        assert_eq!(
            shared_log.strip_suffix('\n').unwrap_or(&shared_log),
            local_log,
            "s{i}'s shared log"
        );
    }
}

// 5 ----------------------------------------------------------------------------------------

/// The least privileges a controller needs once the tables exist: the list of
/// docs/team-state.md ("The least privileges, checked").
const LEAST_PRIVILEGES: &str = "
GRANT SELECT, INSERT ON rollbook_events, rollbook_logs, rollbook_controllers TO {role};
GRANT SELECT, INSERT, UPDATE ON rollbook_runs TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON rollbook_locks TO {role};
GRANT USAGE ON SEQUENCE rollbook_fencing TO {role};
GRANT SELECT ON rollbook_schema TO {role};
";

/// A role with only the least privileges (the tables made by the superuser with `rollbook
/// state init`) runs a plan, is killed, and resumes it; the journal is append-only for it.
#[test]
fn a_role_with_the_least_privileges_runs_and_resumes_and_cannot_rewrite_the_journal() {
    let role = Role::new();
    let db = Db::new();
    let admin = Desk::local().with("ROLLBOOK_STATE", &db.url());
    let init = admin.run(&["state", "init"]);
    init.assert_code(0);
    assert!(
        init.stderr.contains("schema version 0 → 1"),
        "{}",
        init.stderr
    );
    db.sql(&LEAST_PRIVILEGES.replace("{role}", &role.name));
    let role_url = url_with(&db.admin, &db.name, Some(&role.name), Some(&role.password));
    // The role may not create anything: without the grants it could not even read.
    assert!(psql_try(&role_url, "CREATE TABLE nope (x int)").is_err());

    let scratch = tempfile::tempdir().unwrap();
    let a = Desk::on(&role_url).with("ROLLBOOK_STATE_LEASE", "2s");
    let b = Desk::on(&role_url).with("ROLLBOOK_STATE_LEASE", "2s");
    a.plan("crash", &crash_plan(scratch.path()));
    let (id, _, killed) = run_and_kill(&a, &db, scratch.path());
    let (resumed, _) = resume_until_the_lock_is_free(&b, &id, killed);
    resumed.assert_code(0);
    assert_eq!(
        std::fs::read_to_string(scratch.path().join("counter")).unwrap(),
        "a\n"
    );
    assert_eq!(db.journal(&id), b.journal(&id));
    let listed = b.run(&["runs", "--format", "json"]).assert_code(0).json();
    assert_eq!(listed["runs"][0]["status"], "succeeded", "{listed:#}");
    assert_eq!(
        db.sql(&format!(
            "SELECT token FROM rollbook_controllers WHERE run_id = '{id}'"
        ))
        .lines()
        .count(),
        2
    );

    // The journal is append-only for the role.
    let before = db.journal(&id);
    for sql in [
        format!("UPDATE rollbook_events SET line = '{{}}' WHERE run_id = '{id}'"),
        format!("DELETE FROM rollbook_events WHERE run_id = '{id}'"),
        "TRUNCATE rollbook_events".to_string(),
    ] {
        let refused = psql_try(&role_url, &sql).expect_err(&sql);
        assert!(
            refused.contains("permission denied for table rollbook_events"),
            "{sql}: {refused}"
        );
    }
    assert_eq!(db.journal(&id), before);
}

// 6 ----------------------------------------------------------------------------------------

/// `state import DIR` copies a local state directory's runs (made by real runs without
/// `--state`) into the shared store once; a second import finds them there.
#[test]
fn import_copies_a_state_directorys_runs_once() {
    let db = Db::new();
    let local = Desk::local();
    local.plan(
        "two",
        "steps:\n  - id: a\n    shell: { run: echo first }\n  - id: b\n    needs: [a]\n    shell: { run: echo second }\n",
    );
    local
        .run(&["run", "two", "--reason", "before the team store"])
        .assert_code(0);
    local
        .run(&["run", "two", "--reason", "again before it"])
        .assert_code(0);
    let ids = crate::run_ids_in(&local.path().join(".rollbook"));
    assert_eq!(ids.len(), 2, "{ids:?}");

    let importer = Desk::on(&db.url());
    let dir = local.path().join(".rollbook").display().to_string();
    let first = importer.run(&["state", "import", &dir]);
    first.assert_code(0);
    assert!(
        first
            .stderr
            .contains("2 imported, 0 already in the shared store, 0 failed"),
        "{}",
        first.stderr
    );
    let second = importer.run(&["state", "import", &dir]);
    second.assert_code(0);
    assert!(
        second
            .stderr
            .contains("0 imported, 2 already in the shared store, 0 failed"),
        "{}",
        second.stderr
    );
    assert_eq!(db.sql("SELECT count(*) FROM rollbook_runs").trim(), "2");

    // Another directory, the store named with --state.
    let reader = Desk::local().with("ROLLBOOK_STATE_INIT", "1");
    let url = db.url();
    let listed = reader
        .run(&["--state", &url, "runs", "--format", "json"])
        .assert_code(0)
        .json();
    let mut listed_ids: Vec<&str> = listed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["meta"]["run_id"].as_str().unwrap())
        .collect();
    listed_ids.sort();
    assert_eq!(listed_ids, ids, "{listed:#}");
    for r in listed["runs"].as_array().unwrap() {
        assert_eq!(r["status"], "succeeded", "{r:#}");
    }
    for id in &ids {
        let shown = reader
            .run(&["--state", &url, "show", id, "--format", "json"])
            .assert_code(0)
            .json();
        let nodes = shown["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 2, "{shown:#}");
        assert!(
            nodes.iter().all(|n| n["status"] == "succeeded"),
            "{shown:#}"
        );
        reader.run(&["--state", &url, "show", id]).assert_code(0);
        let file: Vec<String> = std::fs::read_to_string(
            local
                .path()
                .join(".rollbook/runs")
                .join(id)
                .join("journal.jsonl"),
        )
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
        assert_eq!(db.journal(id), file, "run {id}'s shared journal");
    }
}

// 7 ----------------------------------------------------------------------------------------

/// With a server that asks for the password: given in the URL, in ROLLBOOK_STATE_PASSWORD,
/// or in the file ROLLBOOK_STATE_PASSWORD_FILE names, the run works; a wrong one is exit 5.
/// The password is never in the output, the state directory, or the shared tables, also
/// when a step prints the variables that carry it.
#[test]
fn the_password_works_from_each_source_and_is_never_written() {
    let var = "ROLLBOOK_TEST_PG_PASSWORD_URL";
    let with_pw = std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{}",
            how_to_start(
                var,
                "a PostgreSQL role that must give its password, on a server where `postgres` is \
                 trusted on loopback"
            )
        )
    });
    let parsed = url::Url::parse(&with_pw).unwrap();
    let user = parsed.username().to_string();
    let password = parsed
        .password()
        .unwrap_or_else(|| panic!("{var} has no password"))
        .to_string();
    // The server's admin: `postgres`, trusted on loopback (scripts/test-servers).
    let admin = url_with(
        &with_pw,
        parsed.path().trim_start_matches('/'),
        Some("postgres"),
        None,
    );
    let db = Db::on(&admin, Some(&user));
    let in_url = url_with(&with_pw, &db.name, None, Some(&password));
    let bare = url_with(&with_pw, &db.name, None, None);
    assert!(!bare.contains(&password));
    let wrong = "wrong-Pw-7713";
    let secrets = tempfile::tempdir().unwrap();
    let pw_file = secrets.path().join("pw");
    std::fs::write(&pw_file, format!("{password}\n")).unwrap();
    let pw_file = pw_file.display().to_string();

    let plan = "steps:\n  - id: leak\n    shell: { run: 'echo \"state=$ROLLBOOK_STATE pw=$ROLLBOOK_STATE_PASSWORD\"; cat \"$ROLLBOOK_STATE_PASSWORD_FILE\" 2>/dev/null; true' }\n";
    let cases = [
        ("in the URL", Desk::on(&in_url)),
        (
            "in ROLLBOOK_STATE_PASSWORD",
            Desk::on(&bare).with("ROLLBOOK_STATE_PASSWORD", &password),
        ),
        (
            "in ROLLBOOK_STATE_PASSWORD_FILE",
            Desk::on(&bare).with("ROLLBOOK_STATE_PASSWORD_FILE", &pw_file),
        ),
    ];
    let mut ids = Vec::new();
    for (how, desk) in &cases {
        desk.plan("leak", plan);
        let ran = desk.run(&["run", "leak", "--reason", "password test", "--yes"]);
        ran.assert_code(0);
        let runs = desk.copied_runs();
        assert_eq!(runs.len(), 1, "{how}: {runs:?}");
        let id = runs[0].clone();
        let listed = desk.run(&["runs"]);
        listed.assert_code(0);
        let shown = desk.run(&["show", &id]);
        shown.assert_code(0);
        // The step does not get rollbook's state variables at all.
        let log =
            std::fs::read_to_string(desk.copies().join(&id).join("logs/steps/leak.log")).unwrap();
        assert!(log.contains("out | state= pw="), "{how}: {log}");
        for (what, text) in [
            ("run stdout", &ran.stdout),
            ("run stderr", &ran.stderr),
            ("runs stdout", &listed.stdout),
            ("runs stderr", &listed.stderr),
            ("show stdout", &shown.stdout),
            ("show stderr", &shown.stderr),
            ("the state directory", &desk.state_files()),
        ] {
            assert!(
                !text.contains(&password),
                "{how}: the password is in {what}:\n{text}"
            );
        }
        ids.push(id);
    }
    let dump = db.dump();
    for id in &ids {
        assert!(dump.contains(id.as_str()), "{dump}");
    }
    assert!(dump.contains("state= pw="), "{dump}");
    assert!(
        !dump.contains(&password),
        "the password is in the shared tables:\n{dump}"
    );

    let wrongs = [
        (
            "a wrong one in the URL",
            Desk::on(&url_with(&with_pw, &db.name, None, Some(wrong))),
        ),
        (
            "a wrong one in ROLLBOOK_STATE_PASSWORD",
            Desk::on(&bare).with("ROLLBOOK_STATE_PASSWORD", wrong),
        ),
    ];
    for (how, desk) in &wrongs {
        desk.plan("leak", plan);
        let refused = desk.run(&["run", "leak", "--reason", "wrong password", "--yes"]);
        refused.assert_code(5);
        assert!(
            refused.stderr.contains("password authentication failed"),
            "{how}: {}",
            refused.stderr
        );
        for text in [&refused.stdout, &refused.stderr, &desk.state_files()] {
            assert!(
                !text.contains(wrong) && !text.contains(&password),
                "{how}: {text}"
            );
        }
    }
    assert_eq!(db.sql("SELECT count(*) FROM rollbook_runs").trim(), "3");
}
