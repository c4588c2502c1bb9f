//! `rollbook run`, `resume`, `runs`, `show` with the real binary: exit codes, what the journal
//! keeps, secrets, quoting, locks, and a crash in the middle of a run.

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::Duration;

use assert_cmd::Command;
use rollbook_exec::event::Event;
use serde_json::Value;

use crate::{Ran, Running, wait_until};

/// A scratch directory with a `plans/` dir; runs keep their state in its `.rollbook`.
/// (`undo.rs` runs in it too.)
pub(crate) struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("plans")).unwrap();
        Sandbox { dir }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `plans/NAME.yaml`: `version`, `name`, then `body`.
    pub(crate) fn plan(&self, name: &str, body: &str) -> &Self {
        let text = format!("version: 1\nname: {name}\n{body}");
        std::fs::write(self.path().join("plans").join(format!("{name}.yaml")), text).unwrap();
        self
    }

    /// `rollbook` in the sandbox, with a clean environment.
    fn rollbook(&self) -> Command {
        crate::rollbook_in(self.path())
    }

    /// Runs `rollbook ARGS` to its end.
    pub(crate) fn run(&self, args: &[&str]) -> Ran {
        self.rollbook().args(args).output().unwrap().into()
    }

    /// Starts `rollbook ARGS` in the background, its output captured; killed if the test
    /// ends before it does.
    fn spawn(&self, args: &[&str]) -> Running {
        Running::spawn(
            crate::rollbook_command(self.path())
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
    }

    /// `rollbook show ID --format json`.
    pub(crate) fn show(&self, id: &str) -> Value {
        self.run(&["show", id, "--format", "json"])
            .assert_code(0)
            .json()
    }

    /// The run's journal, as text.
    fn journal(&self, id: &str) -> String {
        std::fs::read_to_string(self.run_dir(id).join("journal.jsonl")).unwrap()
    }

    /// The run's journal, as events.
    pub(crate) fn events(&self, id: &str) -> Vec<Event> {
        rollbook_exec::journal::read_events(&self.run_dir(id)).unwrap()
    }

    /// Waits (up to a minute) until the run's journal contains `needle`.
    fn wait_for_journal(&self, id: &str, needle: &str) {
        let journal = self.run_dir(id).join("journal.jsonl");
        wait_until(Duration::from_secs(60), needle, || {
            std::fs::read_to_string(&journal).is_ok_and(|j| j.contains(needle))
        });
    }

    /// The one run that is not in `before`.
    fn new_run(&self, before: &[String]) -> String {
        let new: Vec<String> = self
            .run_ids()
            .into_iter()
            .filter(|i| !before.contains(i))
            .collect();
        assert_eq!(new.len(), 1, "{new:?}");
        new[0].clone()
    }

    fn run_ids(&self) -> Vec<String> {
        crate::run_ids_in(&self.path().join(".rollbook"))
    }

    fn run_dir(&self, id: &str) -> PathBuf {
        self.path().join(".rollbook/runs").join(id)
    }

    /// Every byte the run left on disk: journal, metadata, logs.
    fn all_run_files(&self, id: &str) -> String {
        fn walk(dir: &Path, out: &mut String) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
                }
            }
        }
        let mut out = String::new();
        walk(&self.run_dir(id), &mut out);
        out
    }
}

/// Waits (up to a minute) for a step to show it started (by creating `path`).
fn wait_for(path: &Path) {
    wait_until(Duration::from_secs(60), "the step to start", || {
        path.exists()
    });
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn a_successful_run_exits_0_and_is_journaled() {
    let sb = Sandbox::new();
    sb.plan("ok", "steps:\n  - id: a\n    shell: { run: echo hello }\n  - id: b\n    needs: [a]\n    sleep: 10ms\n");
    let out = sb.run(&["run", "ok", "--reason", "test"]);
    out.assert_code(0);
    let ids = sb.run_ids();
    assert_eq!(ids.len(), 1);
    let journal = sb.journal(&ids[0]);
    assert!(
        journal.contains(r#""event":"run_finished""#)
            && journal.contains(r#""status":"succeeded""#)
    );
    let log = std::fs::read_to_string(sb.run_dir(&ids[0]).join("logs/steps/a.log")).unwrap();
    assert_eq!(log, "out | hello\n");
    let runs = sb.run(&["runs"]);
    assert!(runs.stdout.contains("succeeded"), "{}", runs.stdout);
    let doc = sb.show(&ids[0]);
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["nodes"][0]["node"], "a");
    assert_eq!(doc["nodes"][0]["exit_code"], 0);
    assert_eq!(doc["run"]["reason"], "test");
}

#[test]
fn a_failed_run_exits_1_and_names_the_failure() {
    let sb = Sandbox::new();
    sb.plan("bad", "steps:\n  - id: a\n    shell: { run: 'echo broken >&2; exit 3' }\n  - id: b\n    needs: [a]\n    shell: { run: echo never }\nfinally:\n  - id: f\n    shell: { run: 'echo status={{ run.status }}' }\n");
    let out = sb.run(&["run", "bad", "--reason", "test"]);
    out.assert_code(1);
    let err = out.stderr;
    assert!(err.contains("a FAILED: exit code 3: broken"), "{err}");
    assert!(!err.contains("never"), "{err}");
    assert!(err.contains("f | status=failed"), "{err}");
}

/// A notice that fails on a step that may fail, then the real work; `finally` reports.
const TOLERATED: &str = r#"steps:
  - id: notice
    on_failure: continue
    shell: { run: 'echo slack is down >&2; exit 7' }
  - id: restore
    needs: [notice]
    shell: { run: echo restored }
on_failure:
  - id: page
    shell: { run: touch paged }
finally:
  - id: report
    shell:
      run: |
        echo status={{ run.status }}
        echo tolerated={{#each run.tolerated}}{{ this.phase }}/{{ this.node }}/{{ this.message }},{{/each}}
"#;

#[test]
fn a_run_whose_only_failure_was_tolerated_exits_0_and_every_view_names_it() {
    let sb = Sandbox::new();
    sb.plan("tolerated", TOLERATED);
    let out = sb.run(&["run", "tolerated", "--reason", "test"]);
    out.assert_code(0);
    let id = sb.run_ids().pop().unwrap();
    let err = &out.stderr;
    assert!(
        err.contains("notice FAILED (the run goes on): exit code 7: slack is down"),
        "{err}"
    );
    assert!(err.contains("restore succeeded"), "{err}");
    // `finally` sees the run succeeded, and the failure in `run.tolerated`.
    assert!(err.contains("report | status=succeeded\n"), "{err}");
    assert!(
        err.contains("report | tolerated=steps/notice/exit code 7: slack is down,\n"),
        "{err}"
    );
    // The end line names what was tolerated; `on_failure` did not start.
    assert_eq!(
        err.lines().last(),
        Some(format!("run {id} succeeded; 1 failure tolerated: notice").as_str()),
        "{err}"
    );
    assert!(!sb.path().join("paged").exists(), "on_failure ran: {err}");
    assert!(!sb.journal(&id).contains(r#""phase":"on_failure""#));

    let runs = sb.run(&["runs"]).assert_code(0).stdout.clone();
    let mut lines = runs.lines().skip_while(|l| !l.starts_with(&id));
    let row = lines.next().unwrap_or_else(|| panic!("{runs}"));
    assert!(row.contains(" succeeded "), "{runs}");
    assert_eq!(
        lines.next().map(str::trim),
        Some("1 failure tolerated: notice"),
        "{runs}"
    );
    let runs = sb.run(&["runs", "--format", "json"]).assert_code(0).json();
    assert_eq!(runs["version"], 1);
    assert_eq!(runs["runs"][0]["tolerated"][0]["node"], "notice");

    let show = sb.run(&["show", &id]).assert_code(0).stdout.clone();
    assert!(show.contains("— succeeded\n"), "{show}");
    assert!(show.contains("\n  1 failure tolerated: notice\n"), "{show}");
    let show = sb.show(&id);
    assert_eq!(show["status"], "succeeded");
    assert_eq!(
        show["tolerated"],
        serde_json::json!([{
            "phase": "steps",
            "node": "notice",
            "message": "exit code 7: slack is down"
        }])
    );

    let report = sb.run(&["report", &id]).assert_code(0).stdout.clone();
    assert!(
        report.contains("- **Rollback status**: **succeeded** (1 failure tolerated)"),
        "{report}"
    );
    assert!(
        report.contains("- **Tolerated failures**: `notice`; the run went on after it"),
        "{report}"
    );
    assert!(
        report.contains("    notice (tolerated) :done, crit, "),
        "{report}"
    );
    let report = sb
        .run(&["report", &id, "--format", "json"])
        .assert_code(0)
        .json();
    assert_eq!(report["run"]["status"], "succeeded");
    assert_eq!(report["run"]["tolerated"], show["tolerated"]);
}

#[test]
fn events_json_ends_with_the_tolerated_failures() {
    let sb = Sandbox::new();
    sb.plan("tolerated", TOLERATED);
    let out = sb.run(&["run", "tolerated", "--reason", "test", "--events", "json"]);
    out.assert_code(0);
    let last: Value = serde_json::from_str(out.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        last,
        serde_json::json!({
            "event": "run_finished",
            "at": last["at"],
            "status": "succeeded",
            "tolerated": [{
                "phase": "steps",
                "node": "notice",
                "message": "exit code 7: slack is down"
            }]
        })
    );
}

#[test]
fn an_invalid_plan_or_missing_secret_exits_2_before_anything_runs() {
    let sb = Sandbox::new();
    sb.plan("typo", "steps:\n  - id: a\n    shell: { rn: echo }\n");
    let out = sb.run(&["run", "typo", "--reason", "test"]);
    out.assert_code(2);
    assert!(out.stderr.contains("did you mean `run`?"));
    sb.plan("needs-secret", "secrets:\n  token: { env: ROLLBOOK_TEST_TOKEN_UNSET }\nsteps:\n  - id: a\n    shell: { run: 'touch ran' }\n");
    // ROLLBOOK_TEST_TOKEN_UNSET is not set: `rollbook` gets no ROLLBOOK_* of ours.
    let out = sb.run(&["run", "needs-secret", "--reason", "test"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("secret `token` is not set: export ROLLBOOK_TEST_TOKEN_UNSET")
    );
    assert!(!sb.path().join("ran").exists());
    assert!(sb.run_ids().is_empty());
}

#[test]
fn a_plan_that_asks_for_confirmation_refuses_without_a_terminal_or_yes() {
    let sb = Sandbox::new();
    sb.plan(
        "careful",
        "confirm: ROLLBACK\nsteps:\n  - id: a\n    shell: { run: 'touch ran' }\n",
    );
    let out = sb.run(&["run", "careful", "--reason", "test"]);
    out.assert_code(3);
    assert!(out.stderr.contains("pass --yes"), "{}", out.stderr);
    assert!(!sb.path().join("ran").exists());
    let out = sb.run(&["run", "careful", "--reason", "test", "--yes"]);
    out.assert_code(0);
    assert!(sb.path().join("ran").exists());
}

#[test]
fn a_confirm_step_without_terminal_or_yes_fails_the_run() {
    let sb = Sandbox::new();
    sb.plan("ask", "steps:\n  - id: q\n    confirm: Drop the columns?\n  - id: after\n    needs: [q]\n    shell: { run: 'touch ran' }\n");
    let out = sb.run(&["run", "ask", "--reason", "test"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("no terminal to ask on"),
        "{}",
        out.stderr
    );
    assert!(!sb.path().join("ran").exists());
    let before = sb.run_ids();
    let out = sb.run(&["run", "ask", "--reason", "test", "--yes"]);
    out.assert_code(0);
    let id = sb.new_run(&before);
    assert_eq!(sb.show(&id)["nodes"][0]["status"], "succeeded");
}

#[test]
fn a_held_lock_exits_4_naming_the_holder() {
    let sb = Sandbox::new();
    sb.plan(
        "locked",
        "lock: platform\nsteps:\n  - id: a\n    shell: { run: 'touch ran' }\n",
    );
    let holder = rollbook_exec::lock::LockHolder {
        key: "platform".into(),
        run_id: "20261125-000000-beef".into(),
        user: "bob".into(),
        host: "ops-1".into(),
        pid: std::process::id(),
        since: "2026-11-25T00:00:00Z".into(),
    };
    let guard = rollbook_exec::lock::acquire(
        &sb.path().join(".rollbook"),
        &holder,
        rollbook_exec::lock::Stale::Refuse,
    )
    .unwrap();
    let out = sb.run(&["run", "locked", "--reason", "test"]);
    out.assert_code(4);
    let err = out.stderr;
    assert!(
        err.contains("held by run 20261125-000000-beef by bob on ops-1"),
        "{err}"
    );
    assert!(!sb.path().join("ran").exists());
    drop(guard);
    let out = sb.run(&["run", "locked", "--reason", "test"]);
    out.assert_code(0);
}

#[test]
fn a_secret_printed_by_a_command_never_reaches_output_logs_or_journal() {
    let sb = Sandbox::new();
    let secret = "tok-5f1c9e2a-very-secret";
    sb.plan(
        "leaky",
        "secrets:\n  token: { env: ROLLBOOK_TEST_TOKEN }\nsteps:\n  - id: a\n    shell:\n      run: 'echo using {{ secrets.token }}; echo {{ secrets.token }} >&2'\n    capture: { seen: '.stdout' }\n  - id: b\n    needs: [a]\n    shell: { run: 'echo got {{ steps.a.outputs.seen }}; exit 1' }\n",
    );
    let out: Ran = sb
        .rollbook()
        .env("ROLLBOOK_TEST_TOKEN", secret)
        .args(["run", "leaky", "--reason", "test"])
        .output()
        .unwrap()
        .into();
    out.assert_code(1);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(!all.contains(secret), "{all}");
    assert!(all.contains("a | using ***"), "{all}");
    let id = sb.run_ids().pop().unwrap();
    let files = sb.all_run_files(&id);
    assert!(!files.contains(secret), "{files}");
    assert!(files.contains("***"));
    let events: Ran = sb
        .rollbook()
        .env("ROLLBOOK_TEST_TOKEN", secret)
        .args(["run", "leaky", "--reason", "t", "--events", "json"])
        .output()
        .unwrap()
        .into();
    assert!(!events.stdout.contains(secret));
}

#[test]
fn a_hostile_param_reaches_the_shell_as_one_word() {
    let sb = Sandbox::new();
    let marker = sb.path().join("owned");
    sb.plan("quote", "params:\n  v: { type: string }\nsteps:\n  - id: a\n    shell: { run: 'printf %s {{ params.v }}' }\n");
    let hostile = format!("x; touch {}", marker.display());
    let out = sb.run(&[
        "run",
        "quote",
        "--reason",
        "test",
        "--param",
        &format!("v={hostile}"),
    ]);
    out.assert_code(0);
    assert!(!marker.exists(), "the param was run as a command");
    let id = sb.run_ids().pop().unwrap();
    let log = std::fs::read_to_string(sb.run_dir(&id).join("logs/steps/a.log")).unwrap();
    assert_eq!(log, format!("out | {hostile}\n"));
}

/// The positions of a run that only the whole binary has: a param, `run.reason`, an `env`
/// value and a `for_each` item, each in double quotes, in `sh -c '…'` and in a heredoc.
#[test]
fn params_reason_env_and_items_reach_the_shell_as_data() {
    let sb = Sandbox::new();
    let out = sb.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let canary = sb.path().join("canary");
    let body = r#"params:
  v: { type: string }
  out: { type: string }
steps:
  - id: param
    shell:
      env: { CANARY: "{{ params.out }}/../canary" }
      run: 'printf %s "{{ params.v }}" > {{ params.out }}/param; sh -c ''printf %s {{ params.v }} > "$0"'' {{ params.out }}/param-sh'
  - id: reason
    needs: [param]
    shell:
      env: { CANARY: "{{ params.out }}/../canary" }
      script: |
        cat > {{ params.out }}/reason <<EOF
        {{ run.reason }}
        EOF
  - id: env
    needs: [reason]
    shell:
      env: { V: "{{ params.v }}", CANARY: "{{ params.out }}/../canary" }
      run: printf %s "$V" > {{ params.out }}/env
  - id: items
    needs: [env]
    for_each: ["$(touch \"$CANARY\")", "a'b\"c", "x\nEOF\ntouch \"$CANARY\"\n", "-n"]
    shell:
      env: { CANARY: "{{ params.out }}/../canary" }
      run: printf %s {{ item }} > {{ params.out }}/item-{{ index }}
"#;
    sb.plan("positions", body);
    let hostile = "a \"b\" 'c' $(touch \"$CANARY\") `touch \"$CANARY\"`\nEOF\n; touch \"$CANARY\"";
    let reason = "rollback\nEOF\ntouch \"$CANARY\"\n$(touch \"$CANARY\")";
    let ran = sb.run(&[
        "run",
        "positions",
        "--reason",
        reason,
        "--param",
        &format!("v={hostile}"),
        "--param",
        &format!("out={}", out.display()),
    ]);
    ran.assert_code(0);
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    assert_eq!(read("param"), hostile);
    assert_eq!(read("param-sh"), hostile);
    assert_eq!(read("reason"), format!("{reason}\n"));
    assert_eq!(read("env"), hostile);
    let items = [
        "$(touch \"$CANARY\")",
        "a'b\"c",
        "x\nEOF\ntouch \"$CANARY\"\n",
        "-n",
    ];
    for (i, item) in items.iter().enumerate() {
        assert_eq!(read(&format!("item-{i}")), *item);
    }
    assert!(!canary.exists(), "a value ran as code");
}

#[test]
fn events_json_writes_one_event_per_line() {
    let sb = Sandbox::new();
    sb.plan("ev", "steps:\n  - id: a\n    sleep: 1ms\n");
    let out = sb.run(&["run", "ev", "--reason", "t", "--events", "json"]);
    out.assert_code(0);
    let events: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.first().unwrap()["event"], "run_started");
    assert_eq!(events.last().unwrap()["event"], "run_finished");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "node_finished" && e["node"] == "a")
    );
}

/// The processes whose command line holds `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

/// kill -9 of rollbook while a step runs: the step's command (and what it started) does not
/// go on running without a controller; the run's reaper stops its process group.
#[test]
fn a_step_does_not_outlive_a_killed_controller() {
    let sb = Sandbox::new();
    let started = sb.path().join("started");
    let mark = format!("300.{}", std::process::id() % 100_000);
    sb.plan(
        "orphan",
        &format!(
            "steps:\n  - id: long\n    shell: {{ run: 'touch {s}; sleep {mark}; echo never' }}\n",
            s = started.display()
        ),
    );
    let mut child = sb.spawn(&["run", "orphan", "--reason", "kill -9 test"]);
    wait_for(&started);
    let sleeping = format!("sleep {mark}");
    wait_until(Duration::from_secs(60), "the step's sleep to start", || {
        !processes_with(&sleeping).is_empty()
    });
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    wait_until(
        Duration::from_secs(60),
        "the step's processes to be stopped",
        || processes_with(&sleeping).is_empty(),
    );
}

/// kill -9 of rollbook while a step runs a `sleep 300` that ignores SIGTERM, then `resume`
/// at once: the journal names the step's process group, the resume stops what is left of it
/// before the step runs again (the reaper's SIGKILL comes only 2 s later), so two copies of
/// the step never overlap, and no `sleep 300` is left.
#[test]
fn an_immediate_resume_never_runs_a_step_beside_its_leftover_copy() {
    let sb = Sandbox::new();
    let dir = sb.path().display().to_string();
    let mark = format!("300.{}", std::process::id() % 100_000 + 7);
    // Each copy notes its shell's pid, then looks for a live earlier copy (a zombie is not
    // live: this machine's init may never reap orphans). The first copy
    // ignores SIGTERM (and so does its sleep) and sleeps; the second returns at once.
    let body = format!(
        r#"steps:
  - id: long
    shell:
      script: |
        echo $$ >> {dir}/pids
        for p in $(cat {dir}/pids); do
          state=$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null)
          if [ "$p" != $$ ] && [ -n "$state" ] && [ "$state" != Z ]; then echo "$p" >> {dir}/overlap; fi
        done
        if [ ! -e {dir}/first ]; then touch {dir}/first; trap '' TERM; sleep {mark}; fi
"#
    );
    sb.plan("leftover", &body);
    let mut child = sb.spawn(&["run", "leftover", "--reason", "kill -9 and resume"]);
    wait_for(&sb.path().join("first"));
    let id = sb.run_ids().pop().unwrap();
    sb.wait_for_journal(&id, "\"attempt_process\"");
    let sleeping = format!("sleep {mark}");
    wait_until(Duration::from_secs(60), "the step's sleep to start", || {
        !processes_with(&sleeping).is_empty()
    });
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    // Without a terminal to ask on and without --yes, the leftover is not touched and nothing
    // runs (the reaper gives it 2 s after SIGTERM before SIGKILL: it is still there).
    let refused = sb.run(&["resume", &id]);
    refused.assert_code(3);
    assert!(
        refused
            .stderr
            .contains("still running from the run's earlier controller")
            && refused.stderr.contains("pass --yes to stop it"),
        "{}",
        refused.stderr
    );
    let resumed = sb.run(&["resume", &id, "--yes"]);
    resumed.assert_code(0);
    assert!(
        !sb.path().join("overlap").exists(),
        "two copies overlapped: {}\n{}",
        std::fs::read_to_string(sb.path().join("overlap")).unwrap_or_default(),
        resumed.stderr
    );
    let pids = std::fs::read_to_string(sb.path().join("pids")).unwrap();
    assert_eq!(pids.lines().count(), 2, "{pids}");
    assert!(
        processes_with(&sleeping).is_empty(),
        "a sleep {mark} is left"
    );
    // The journal has the group of each attempt.
    let groups = sb
        .events(&id)
        .iter()
        .filter(|e| matches!(e, Event::AttemptProcess { .. }))
        .count();
    assert_eq!(groups, 2);
}

/// kill -9 in the middle of a 50-step run, then `resume`: the run completes, and every step
/// the journal had as succeeded ran exactly once.
#[test]
fn a_run_killed_mid_way_resumes_and_reruns_nothing_that_succeeded() {
    let sb = Sandbox::new();
    let out_file = sb.path().join("ran.txt");
    let mut body = String::from("params:\n  out: { type: string }\nsteps:\n");
    for i in 0..50 {
        body.push_str(&format!("  - id: s{i}\n"));
        if i > 0 {
            body.push_str(&format!("    needs: [s{}]\n", i - 1));
        }
        body.push_str(&format!(
            "    shell: {{ run: 'echo s{i} >> {{{{ params.out }}}}; sleep 0.05' }}\n"
        ));
    }
    sb.plan("fifty", &body);
    let out_param = format!("out={}", out_file.display());
    let mut child = sb.spawn(&[
        "run",
        "fifty",
        "--reason",
        "crash test",
        "--param",
        &out_param,
    ]);
    wait_until(Duration::from_secs(60), "15 steps to run", || {
        std::fs::read_to_string(&out_file).map_or(0, |t| t.lines().count()) >= 15
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // A step in flight may still append its line: it was not journaled as succeeded, so it
    // runs again below, and only steps journaled as succeeded must have run once.
    let id = sb.run_ids().pop().unwrap();
    let replay = rollbook_exec::resume::replay(&sb.events(&id));
    assert_eq!(replay.finished, None);
    let succeeded: Vec<String> = replay.prior.done.keys().map(|k| k.node.clone()).collect();
    assert!(succeeded.len() >= 10, "only {} journaled", succeeded.len());
    // A second `run` meets the dead run's lock and says so.
    let again = sb.run(&[
        "run",
        "fifty",
        "--reason",
        "again",
        "--param",
        "out=/dev/null",
    ]);
    again.assert_code(4);
    assert!(
        again.stderr.contains("no longer running"),
        "{}",
        again.stderr
    );
    let resumed = sb.run(&["resume", &id]);
    resumed.assert_code(0);
    let ran = std::fs::read_to_string(&out_file).unwrap();
    for i in 0..50 {
        let id = format!("s{i}");
        let count = ran.lines().filter(|l| *l == id).count();
        if succeeded.contains(&id) {
            assert_eq!(
                count, 1,
                "{id} was journaled as succeeded and ran {count} times"
            );
        } else {
            assert!(count >= 1, "{id} never ran");
        }
    }
    let events = rollbook_exec::journal::read_events(&sb.run_dir(&id)).unwrap();
    assert_eq!(
        rollbook_exec::resume::replay(&events).finished,
        Some(rollbook_exec::RunStatus::Succeeded)
    );
}

/// Ctrl-C once: nothing new starts, the running step finishes, `finally` runs, exit 3.
/// The running step goes on until the journal shows the stop, so nothing depends on how
/// fast the signal is handled.
/// Once (Ctrl-C, or the SIGTERM of systemd and CI runners, or the SIGHUP of a closed SSH
/// session): the running step finishes, nothing new starts, `finally` runs, the run ends
/// `cancelled` (exit 3) and its lock is released.
fn one_signal_stops_new_work_and_still_runs_finally(signal: i32) {
    let sb = Sandbox::new();
    let marker = sb.path().join("started");
    let go = sb.path().join("go");
    sb.plan(
        "slow",
        &format!(
            "lock: slow-lock\nsteps:\n  - id: long\n    shell: {{ run: 'touch {m}; until [ -f {g} ]; do sleep 0.05; done; echo long done' }}\n  - id: next\n    shell: {{ run: 'echo next ran' }}\nfinally:\n  - id: cleanup\n    shell: {{ run: 'echo cleanup ran, run {{{{ run.status }}}}' }}\n",
            m = marker.display(),
            g = go.display()
        ),
    );
    let child = sb.spawn(&["run", "slow", "--reason", "signal test"]);
    wait_for(&marker);
    let id = sb.run_ids().pop().unwrap();
    child.signal(signal);
    sb.wait_for_journal(&id, r#""event":"cancelling","#);
    std::fs::write(&go, "").unwrap();
    let out: Ran = child.wait_with_output().into();
    out.assert_code(3);
    let err = out.stderr;
    assert!(
        err.contains("long | long done"),
        "signal {signal}: the running step was not let finish: {err}"
    );
    assert!(
        !err.contains("next ran"),
        "signal {signal}: a new step started: {err}"
    );
    assert!(
        err.contains("cleanup ran, run cancelled"),
        "signal {signal}: finally did not run: {err}"
    );
    let holder = sb.path().join(".rollbook/locks/slow-lock.json");
    assert!(!holder.exists(), "signal {signal}: the lock was left stale");
}

#[test]
fn ctrl_c_stops_new_work_and_still_runs_finally() {
    one_signal_stops_new_work_and_still_runs_finally(libc::SIGINT);
}

#[test]
fn sigterm_stops_new_work_and_still_runs_finally() {
    one_signal_stops_new_work_and_still_runs_finally(libc::SIGTERM);
}

#[test]
fn sighup_stops_new_work_and_still_runs_finally() {
    one_signal_stops_new_work_and_still_runs_finally(libc::SIGHUP);
}

/// Twice (any two of Ctrl-C, SIGTERM, SIGHUP): the running step, which would never end by
/// itself, is cancelled (its process group killed), and `finally` runs. The second signal
/// comes once the first shows in the journal.
fn two_signals_cancel_the_running_step(first: i32, second: i32) {
    let sb = Sandbox::new();
    let marker = sb.path().join("started");
    sb.plan(
        "slower",
        &format!(
            "steps:\n  - id: long\n    shell: {{ run: 'touch {m}; sleep 600; echo long done' }}\nfinally:\n  - id: cleanup\n    shell: {{ run: 'echo cleanup ran' }}\n",
            m = marker.display()
        ),
    );
    let mut child = sb.spawn(&["run", "slower", "--reason", "two signals"]);
    wait_for(&marker);
    let id = sb.run_ids().pop().unwrap();
    child.signal(first);
    sb.wait_for_journal(&id, r#""event":"cancelling","#);
    child.signal(second);
    wait_until(Duration::from_secs(60), "the run to end", || {
        child.try_wait().unwrap().is_some()
    });
    let out: Ran = child.wait_with_output().into();
    out.assert_code(3);
    let err = out.stderr;
    assert!(err.contains("cancelling the running steps"), "{err}");
    assert!(!err.contains("long done"), "{err}");
    assert!(err.contains("cleanup ran"), "finally did not run: {err}");
}

#[test]
fn ctrl_c_twice_cancels_the_running_step() {
    two_signals_cancel_the_running_step(libc::SIGINT, libc::SIGINT);
}

#[test]
fn sigterm_then_sighup_cancels_the_running_step() {
    two_signals_cancel_the_running_step(libc::SIGTERM, libc::SIGHUP);
}

/// The third signal exits at once, while a step that ignores SIGTERM is still in its grace:
/// but first the journal says why the run has no end, and the lock is released, so the next
/// run of the plan is not told of a stale lock.
#[test]
fn a_third_signal_exits_at_once_marking_the_run_and_releasing_the_lock() {
    let sb = Sandbox::new();
    let marker = sb.path().join("started");
    sb.plan(
        "stubborn",
        &format!(
            "lock: stubborn\nsteps:\n  - id: long\n    shell: {{ run: 'trap \"\" TERM; touch {m}; sleep 600' }}\n",
            m = marker.display()
        ),
    );
    let mut child = sb.spawn(&["run", "stubborn", "--reason", "three signals"]);
    wait_for(&marker);
    let id = sb.run_ids().pop().unwrap();
    child.signal(libc::SIGTERM);
    sb.wait_for_journal(&id, r#""event":"cancelling","#);
    child.signal(libc::SIGHUP);
    sb.wait_for_journal(&id, r#""hard":true"#);
    child.signal(libc::SIGINT);
    wait_until(Duration::from_secs(60), "rollbook to exit", || {
        child.try_wait().unwrap().is_some()
    });
    let out: Ran = child.wait_with_output().into();
    out.assert_code(3);
    let events = sb.events(&id);
    match events.last() {
        Some(Event::RunAbandoned { message, .. }) => {
            assert!(message.contains("third signal (SIGINT)"), "{message}")
        }
        other => panic!("the journal ends with {other:?}"),
    }
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::RunFinished { .. })),
        "the run must stay unfinished, for resume"
    );
    let locks = sb.path().join(".rollbook/locks");
    let held: Vec<_> = std::fs::read_dir(&locks)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        held.iter().all(|n| !n.to_string_lossy().ends_with(".json")),
        "a lock holder file is left: {held:?}"
    );
    // The run is resumable as after a crash; the leftover step is stopped first.
    let shown = sb.run(&["show", &id]);
    shown.assert_code(0);
    assert!(shown.stderr.contains("third signal"), "{}", shown.stderr);
}

/// `--limit`: only the `for_each` instances over the named hosts run (names, groups, globs);
/// the dry run, `run.json` and the report say so, and a resume keeps the limit.
#[test]
fn a_limited_run_touches_only_the_named_hosts() {
    let sb = Sandbox::new();
    let out = sb.path().join("touched");
    let body = format!(
        "inventory:\n  web: [web-1, web-2, web-3]\n  db: [db-1, db-2]\nsteps:\n  - id: web\n    for_each: \"{{{{ inventory.web }}}}\"\n    shell: {{ run: 'echo {{{{ item }}}} >> {o}' }}\n  - id: db\n    for_each: \"{{{{ inventory.db }}}}\"\n    shell: {{ run: 'echo {{{{ item }}}} >> {o}' }}\n  - id: spaces\n    for_each: [kube-system, default]\n    shell: {{ run: 'echo {{{{ item }}}} >> {o}' }}\n",
        o = out.display()
    );
    sb.plan("limited", &body);
    let dry = sb.run(&["plan", "limited", "--limit", "web-2", "--limit", "db"]);
    dry.assert_code(0);
    assert!(
        dry.stdout
            .contains("limited to web-2, db (3 hosts: db-1, db-2, web-2)"),
        "{}",
        dry.stdout
    );
    assert!(!dry.stdout.contains("web[web-1]"), "{}", dry.stdout);
    assert!(dry.stdout.contains("web[web-2]"), "{}", dry.stdout);
    // A pattern that names nothing is refused before anything runs.
    let typo = sb.run(&["run", "limited", "--reason", "t", "--limit", "web-9"]);
    typo.assert_code(2);
    assert!(typo.stderr.contains("--limit web-9"), "{}", typo.stderr);

    sb.run(&[
        "run", "limited", "--reason", "t", "--limit", "web-2", "--limit", "db-*",
    ])
    .assert_code(0);
    let mut touched: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    touched.sort();
    assert_eq!(touched, ["db-1", "db-2", "default", "kube-system", "web-2"]);
    let id = sb.run_ids().pop().unwrap();
    let meta = std::fs::read_to_string(sb.run_dir(&id).join("run.json")).unwrap();
    assert!(meta.contains("\"limit\""), "{meta}");
    let report = sb.run(&["report", &id]);
    assert!(
        report.stdout.contains("- **Limited to**: `web-2`, `db-*`"),
        "{}",
        report.stdout
    );
}

/// rollbook raises its own open-files limit for SSH fan-outs, but a local step's command gets
/// the limit rollbook started with: some programs misbehave past 1024 descriptors.
#[test]
fn a_local_step_gets_the_open_files_limit_rollbook_started_with() {
    use std::os::unix::process::CommandExt;
    let sb = Sandbox::new();
    sb.plan(
        "limits",
        "steps:\n  - id: show\n    shell: { run: 'ulimit -n' }\n",
    );
    let mut cmd = crate::rollbook_command(sb.path());
    cmd.args(["run", "limits", "--reason", "t"]);
    // SAFETY: setrlimit between fork and exec, on a struct on the child's stack.
    unsafe {
        cmd.pre_exec(|| {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
            limit.rlim_cur = limit.rlim_max.min(512);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            Ok(())
        });
    }
    let out: Ran = cmd.output().unwrap().into();
    out.assert_code(0);
    assert!(out.stderr.contains("show | 512"), "{}", out.stderr);
}

/// `resume --mark-done NODE --reason …`: a person finished a failed step by hand; it is not
/// run again, what follows it runs, and the journal, `show` and the report say who and why.
#[test]
fn resume_mark_done_records_a_step_finished_by_hand() {
    let sb = Sandbox::new();
    let body = "steps:\n  - id: a\n    shell: { run: 'echo a' }\n  - id: b\n    shell: { run: 'exit 1' }\n  - id: c\n    shell: { run: 'echo c ran' }\n";
    sb.plan("byhand", body);
    sb.run(&["run", "byhand", "--reason", "t"]).assert_code(1);
    let id = sb.run_ids().pop().unwrap();
    // Refused: no reason, a step that succeeded, a step that does not exist.
    sb.run(&["resume", &id, "--mark-done", "b"]).assert_code(2);
    let done = sb.run(&["resume", &id, "--mark-done", "a", "--reason", "x"]);
    done.assert_code(2);
    assert!(
        done.stderr.contains("it already ended as succeeded"),
        "{}",
        done.stderr
    );
    let typo = sb.run(&["resume", &id, "--mark-done", "bb", "--reason", "x"]);
    typo.assert_code(2);
    assert!(typo.stderr.contains("did you mean `b`?"), "{}", typo.stderr);

    let why = "restarted it on the host by hand";
    let out = sb.run(&["resume", &id, "--mark-done", "b", "--reason", why]);
    out.assert_code(0);
    assert!(out.stderr.contains("c | c ran"), "{}", out.stderr);
    let doc = sb.show(&id);
    let b = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "b")
        .unwrap();
    assert_eq!(b["status"], "skipped", "{b}");
    let message = b["message"].as_str().unwrap();
    assert!(
        message.contains("done by hand, said") && message.contains(why),
        "{message}"
    );
    let report = sb.run(&["report", &id]);
    report.assert_code(0);
    assert!(report.stdout.contains(why), "{}", report.stdout);
}

#[test]
fn resume_refuses_a_changed_plan_unless_allowed_and_records_who_confirmed() {
    let sb = Sandbox::new();
    let flag = sb.path().join("fixed");
    let body = format!(
        "steps:\n  - id: ask\n    confirm: Go on?\n  - id: needs-fix\n    needs: [ask]\n    shell: {{ run: 'test -f {f}' }}\n  - id: after\n    needs: [needs-fix]\n    shell: {{ run: 'echo after' }}\n",
        f = flag.display()
    );
    sb.plan("fixable", &body);
    let out = sb.run(&["run", "fixable", "--reason", "t", "--yes"]);
    out.assert_code(1);
    let id = sb.run_ids().pop().unwrap();
    // The plan file changes under the run: refused.
    sb.plan(
        "fixable",
        &format!("{body}  - id: extra\n    shell: {{ run: 'echo extra' }}\n"),
    );
    let out = sb.run(&["resume", &id]);
    out.assert_code(2);
    assert!(out.stderr.contains("changed since run"), "{}", out.stderr);
    // Fixed on the host; resumed with the old plan restored: only what failed runs again.
    sb.plan("fixable", &body);
    std::fs::write(&flag, "").unwrap();
    let out = sb.run(&["resume", &id]);
    out.assert_code(0);
    let err = out.stderr;
    assert!(
        !err.contains("ask started"),
        "a succeeded step ran again: {err}"
    );
    assert!(err.contains("after | after"), "{err}");
    let doc = sb.show(&id);
    assert_eq!(doc["status"], "succeeded");
    let ask = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "ask")
        .unwrap();
    assert!(
        ask["message"]
            .as_str()
            .unwrap()
            .starts_with("answered yes by "),
        "{ask}"
    );
    // Another failed run, resumed with a changed plan on purpose: the new plan is taken.
    std::fs::remove_file(&flag).unwrap();
    let before = sb.run_ids();
    let out = sb.run(&["run", "fixable", "--reason", "t2", "--yes"]);
    out.assert_code(1);
    let id2 = sb
        .run_ids()
        .into_iter()
        .find(|i| !before.contains(i))
        .unwrap();
    sb.plan(
        "fixable",
        &format!("{body}  - id: extra\n    needs: [after]\n    shell: {{ run: 'echo extra' }}\n"),
    );
    std::fs::write(&flag, "").unwrap();
    let out = sb.run(&["resume", &id2, "--allow-changed-plan"]);
    out.assert_code(0);
    assert!(out.stderr.contains("extra | extra"), "{}", out.stderr);
}

#[test]
fn a_step_in_flight_at_a_crash_with_resume_ask_is_not_rerun_without_an_answer() {
    let sb = Sandbox::new();
    let marker = sb.path().join("started");
    let count = sb.path().join("count");
    sb.plan(
        "migrate",
        &format!(
            "steps:\n  - id: migrate\n    resume: ask\n    shell: {{ run: 'echo x >> {c}; touch {m}; sleep 30' }}\n",
            c = count.display(),
            m = marker.display()
        ),
    );
    let mut child = sb.spawn(&["run", "migrate", "--reason", "crash"]);
    wait_for(&marker);
    child.kill().unwrap();
    child.wait().unwrap();
    // The killed run's step lives on in its own process group: it is ours to end.
    let pids = StdCommand::new("pgrep")
        .args(["-f", &format!("touch {}", marker.display())])
        .output()
        .unwrap();
    for pid in text(&pids.stdout)
        .lines()
        .filter_map(|p| p.trim().parse::<i32>().ok())
    {
        // SAFETY: kill(2) on the process group our own run started for this step.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    std::fs::remove_file(&marker).unwrap();
    let id = sb.run_ids().pop().unwrap();
    let out = sb.run(&["resume", &id]);
    out.assert_code(3);
    assert!(
        out.stderr
            .contains("migrate was running when the run stopped"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&count).unwrap().lines().count(),
        1,
        "it ran again without an answer"
    );
}

#[test]
fn a_run_whose_output_pipe_closes_goes_on_to_the_end() {
    let sb = Sandbox::new();
    let done = sb.path().join("done");
    sb.plan(
        "chatty",
        &format!(
            "steps:\n  - id: talk\n    shell: {{ run: 'for i in $(seq 1 2000); do echo line $i; done' }}\n  - id: last\n    needs: [talk]\n    shell: {{ run: 'touch {}' }}\n",
            done.display()
        ),
    );
    let mut child = sb.spawn(&["run", "chatty", "--reason", "a reader that goes away"]);
    // `rollbook run ... 2>&1 | head -1`: the reader takes one line and leaves.
    let mut stderr = child.stderr.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut stderr, &mut first).unwrap();
    drop(stderr);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "the run did not end well");
    assert!(done.exists(), "the last step never ran");
    let id = sb.run_ids().pop().unwrap();
    let journal = sb.journal(&id);
    assert!(journal.contains(r#""event":"run_finished""#), "{journal}");
}

/// A chain of `n` local steps that each append their id to `ran.txt` and take a moment.
fn chain_plan(sb: &Sandbox, name: &str, n: usize) -> PathBuf {
    let out_file = sb.path().join("ran.txt");
    let mut body = String::from("steps:\n");
    for i in 0..n {
        body.push_str(&format!("  - id: s{i}\n"));
        if i > 0 {
            body.push_str(&format!("    needs: [s{}]\n", i - 1));
        }
        body.push_str(&format!(
            "    shell: {{ run: 'echo s{i} >> {}; sleep 0.05' }}\n",
            out_file.display()
        ));
    }
    sb.plan(name, &body);
    out_file
}

/// `kill -9`, then the journal's last 20 bytes lost (a torn write): `resume` heals the
/// journal before appending, keeps what it cut, and everything reads afterwards.
#[test]
fn a_killed_run_with_a_torn_journal_resumes_and_stays_readable() {
    let sb = Sandbox::new();
    let out_file = chain_plan(&sb, "torn", 30);
    let mut child = sb.spawn(&["run", "torn", "--reason", "torn journal"]);
    wait_until(Duration::from_secs(60), "5 steps to run", || {
        std::fs::read_to_string(&out_file).map_or(0, |t| t.lines().count()) >= 5
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let id = sb.run_ids().pop().unwrap();
    let journal = sb.run_dir(&id).join("journal.jsonl");
    let before = std::fs::read(&journal).unwrap();
    let cut = before.len() - 20;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap()
        .set_len(cut as u64)
        .unwrap();

    sb.run(&["resume", &id, "--yes"]).assert_code(0);
    let show = sb.run(&["show", &id]);
    show.assert_code(0);
    assert!(
        show.stderr.contains("journal.jsonl.torn-1"),
        "{}",
        show.stderr
    );
    sb.run(&["report", &id]).assert_code(0);
    let again = sb.run(&["resume", &id, "--yes"]);
    again.assert_code(0);
    assert!(
        again.stderr.contains("already succeeded"),
        "{}",
        again.stderr
    );
    // Nothing is lost: the cut fragment is in the side file, right after what was kept.
    let kept = std::fs::read(&journal).unwrap();
    let side = std::fs::read(sb.run_dir(&id).join("journal.jsonl.torn-1")).unwrap();
    let mut rebuilt = kept[..cut - side.len()].to_vec();
    rebuilt.extend(&side);
    assert_eq!(rebuilt, before[..cut]);
}

/// Garbage in the middle of a journal: `show` and `report` tell the readable part and name
/// the line they stopped at.
#[test]
fn a_journal_with_garbage_in_the_middle_is_shown_up_to_the_named_line() {
    let sb = Sandbox::new();
    chain_plan(&sb, "garbled", 3);
    sb.run(&["run", "garbled", "--reason", "garbage"])
        .assert_code(0);
    let id = sb.run_ids().pop().unwrap();
    let journal = sb.run_dir(&id).join("journal.jsonl");
    let text = std::fs::read(&journal).unwrap();
    let mut lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
    // After run_started, controller_started, phase_started and s0's attempt_started.
    lines.insert(4, b"\xff\x00garbage\n");
    std::fs::write(&journal, lines.concat()).unwrap();

    let show = sb.run(&["show", &id]);
    show.assert_code(0);
    assert!(show.stderr.contains("journal.jsonl:5:"), "{}", show.stderr);
    assert!(show.stdout.contains("s0"), "{}", show.stdout);
    let report = sb.run(&["report", &id]);
    report.assert_code(0);
    assert!(
        report.stderr.contains("journal.jsonl:5:"),
        "{}",
        report.stderr
    );
}

/// An empty journal says nothing of what ran: `resume` asks before rerunning everything, and
/// without a terminal to ask on it refuses unless given `--yes`.
#[test]
fn resuming_a_run_with_an_empty_journal_asks_first() {
    let sb = Sandbox::new();
    let out_file = chain_plan(&sb, "emptied", 2);
    sb.run(&["run", "emptied", "--reason", "empty journal"])
        .assert_code(0);
    let id = sb.run_ids().pop().unwrap();
    std::fs::write(sb.run_dir(&id).join("journal.jsonl"), b"").unwrap();

    let refused = sb.run(&["resume", &id]);
    refused.assert_code(3);
    assert!(
        refused.stderr.contains("empty or missing"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "s0\ns1\n");

    sb.run(&["resume", &id, "--yes"]).assert_code(0);
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap(),
        "s0\ns1\ns0\ns1\n"
    );
}

/// `rollbook ARGS` with a terminal for its standard error (a pseudo-terminal from `script`,
/// 80×24 by default): every byte it drew. `None` where `script` is missing.
fn on_a_terminal(sb: &Sandbox, args: &str, env: &[(&str, &str)]) -> Option<String> {
    let binary = assert_cmd::cargo::cargo_bin("rollbook");
    let mut cmd = StdCommand::new("script");
    crate::clean_env(&mut cmd);
    cmd.env_remove("NO_COLOR");
    for (name, value) in env {
        cmd.env(name, value);
    }
    let out = cmd
        .args(["-qec", &format!("{} {args}", binary.display()), "/dev/null"])
        .current_dir(sb.path())
        .stdin(Stdio::null())
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn live_display_on_a_terminal_colors_with_color_always() {
    let sb = Sandbox::new();
    sb.plan("tolerated", TOLERATED);
    let Some(drawn) = on_a_terminal(&sb, "run tolerated --reason test --color always", &[]) else {
        return;
    };
    // One line per node, in its color, and the summary.
    assert!(drawn.contains("\x1b[33m! notice"), "{drawn:?}");
    assert!(
        drawn.contains("tolerated: exit code 7: slack is down"),
        "{drawn:?}"
    );
    assert!(drawn.contains("\x1b[32m✓ restore"), "{drawn:?}");
    assert!(drawn.contains("\x1b[32m✓ finally/report"), "{drawn:?}");
    assert!(drawn.contains("\x1b[33mrun succeeded"), "{drawn:?}");
}

#[test]
fn live_display_on_a_terminal_without_color_under_no_color() {
    let sb = Sandbox::new();
    sb.plan("tolerated", TOLERATED);
    let Some(drawn) = on_a_terminal(&sb, "run tolerated --reason test", &[("NO_COLOR", "1")])
    else {
        return;
    };
    assert!(drawn.contains("! notice"), "{drawn:?}");
    assert!(drawn.contains("✓ restore"), "{drawn:?}");
    assert!(
        drawn.contains("run succeeded in ") && drawn.contains("2 succeeded, 1 tolerated"),
        "{drawn:?}"
    );
    assert!(!drawn.contains("\x1b[3"), "no color: {drawn:?}");
}

#[test]
fn display_lines_on_a_pipe_stay_plain_with_color_always() {
    let sb = Sandbox::new();
    sb.plan("tolerated", TOLERATED);
    let out = sb.run(&["run", "tolerated", "--reason", "test", "--color", "always"]);
    out.assert_code(0);
    let err = &out.stderr;
    assert!(
        err.contains("notice FAILED (the run goes on): exit code 7: slack is down"),
        "{err}"
    );
    assert!(!err.contains('\x1b'), "{err:?}");
}
