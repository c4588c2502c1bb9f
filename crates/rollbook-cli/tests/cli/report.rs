//! `rollbook report`: snapshots of the markdown and JSON reports of hand-written run
//! directories (`tests/fixtures/runs/`, fixed times), and reports of real runs of the binary:
//! the run's facts are in them, a secret is not.

use std::path::Path;

use assert_cmd::Command;
use serde_json::{Value, json};

use crate::{crate_dir, workspace};

fn rollbook(cwd: &Path) -> Command {
    crate::rollbook_in(cwd)
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// `rollbook report ID [--format F]` against a state dir; it must exit 0.
fn report(state_dir: &Path, id: &str, format: &str) -> String {
    let out = rollbook(state_dir)
        .args(["--state-dir"])
        .arg(state_dir)
        .args(["report", id, "--format", format])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// Snapshots both reports of a fixture run, and checks that the JSON is one document.
fn snapshot_fixture(name: &str, id: &str) {
    let state = crate_dir().join("tests/fixtures");
    let markdown = report(&state, id, "markdown");
    insta::assert_snapshot!(format!("report__{name}__markdown"), markdown);
    let json = report(&state, id, "json");
    let doc: Value = serde_json::from_str(&json).expect("one JSON document");
    assert_eq!(doc["run"]["run_id"], id);
    insta::assert_snapshot!(format!("report__{name}__json"), json);
}

#[test]
fn report_of_a_succeeded_rollout_over_hosts() {
    snapshot_fixture("succeeded_rollout", "20261125-091500-a1b2");
}

#[test]
fn report_of_a_failed_run_with_a_tolerated_failure_and_finally() {
    snapshot_fixture("failed_run", "20261125-141203-c3d4");
}

#[test]
fn report_of_a_crashed_then_resumed_run() {
    snapshot_fixture("resumed_run", "20261126-021740-e5f6");
}

#[test]
fn report_of_a_crashed_run_that_was_not_resumed() {
    snapshot_fixture("crashed_run", "20261127-235952-0b0b");
}

#[test]
fn report_of_a_cancelled_run() {
    snapshot_fixture("cancelled_run", "20261128-160500-7a7a");
}

#[test]
fn report_of_an_unknown_run_exits_2_and_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let out = rollbook(dir.path())
        .args(["--state-dir", "elsewhere", "report", "20260101-000000-0000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("no run 20260101-000000-0000 in elsewhere"),
        "{err}"
    );
    assert!(err.contains("`rollbook runs` lists them"), "{err}");
    assert!(out.stdout.is_empty());
}

/// The single run in a state dir.
fn only_run(state: &Path) -> String {
    let mut ids: Vec<String> = std::fs::read_dir(state.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids.pop().unwrap()
}

#[test]
fn report_of_a_real_rolling_restart_holds_the_runs_facts() {
    let dir = tempfile::tempdir().unwrap();
    let workdir = dir.path().join("work");
    let reason = "web-2 came back on the old config (INC-7)";
    let out = rollbook(dir.path())
        .arg("run")
        .arg(workspace().join("examples/rolling-restart.yaml"))
        .args(["--reason", reason, "--param", "broken=web-2", "--param"])
        .arg(format!("workdir={}", workdir.display()))
        .output()
        .unwrap();
    // web-2 failing is within the rollout's `max_failures: 1`: tolerated, so the run succeeds.
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let state = dir.path().join(".rollbook");
    let id = only_run(&state);
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("runs").join(&id).join("run.json")).unwrap(),
    )
    .unwrap();
    let user = meta["user"].as_str().unwrap();

    let show = rollbook(dir.path())
        .args(["show", &id, "--format", "json"])
        .output()
        .unwrap();
    let show: Value = serde_json::from_slice(&show.stdout).unwrap();
    let nodes: Vec<&str> = show["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes.len(), 15, "{nodes:?}");

    let md = report(&state, &id, "markdown");
    assert!(
        md.starts_with("# Rollback Incident Report: rolling-restart\n"),
        "{md}"
    );
    assert!(md.contains(&format!("- **Reason**: {reason}")), "{md}");
    assert!(md.contains(&format!("- **Run by**: {user}@")), "{md}");
    assert!(
        md.contains("- **Rollback status**: **succeeded** (1 failure tolerated)"),
        "{md}"
    );
    assert!(
        md.contains("- **Tolerated failures**: `restart[web-2].start`; the run went on after it"),
        "{md}"
    );
    assert!(
        md.contains("### `restart[web-2].start` (failed, tolerated: the run went on)"),
        "{md}"
    );
    assert!(
        md.contains("- **Message**: exit code 1: web-2 did not come back"),
        "{md}"
    );
    assert!(
        md.contains("err | web-2 did not come back"),
        "the log's last lines: {md}"
    );
    let timeline = section(&md, "### Run timeline");
    for node in &nodes {
        assert!(
            timeline.contains(&format!("| `{node}` |")),
            "{node} not in the timeline: {timeline}"
        );
    }
    let gantt = section(&md, "## Gantt");
    assert!(gantt.contains("```mermaid\ngantt\n"), "{gantt}");
    assert!(
        gantt.contains("    restart[web-2].start (tolerated) :done, crit, "),
        "{gantt}"
    );
    for heading in [
        "## Root Cause",
        "## Impact",
        "## Lessons Learned",
        "## Follow-up Actions",
    ] {
        assert!(md.contains(heading), "{heading}");
    }
    assert!(md.contains("**Reviewed By**: _(to fill in)_"));

    let json: Value = serde_json::from_str(&report(&state, &id, "json")).unwrap();
    assert_eq!(json["run"]["reason"], reason);
    assert_eq!(json["run"]["user"], user);
    assert_eq!(json["run"]["status"], "succeeded");
    assert_eq!(
        json["run"]["tolerated"],
        serde_json::json!([{
            "phase": "steps",
            "node": "restart[web-2].start",
            "message": "exit code 1: web-2 did not come back"
        }])
    );
    assert_eq!(json["run"]["severity"], "low");
    let failures = json["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["node"], "restart[web-2].start");
    assert_eq!(failures[0]["tolerated"], true);
    assert_eq!(failures[0]["exit_code"], 1);
    assert_eq!(
        failures[0]["message"],
        "exit code 1: web-2 did not come back"
    );
    let reported: Vec<&str> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    let mut sorted = reported.clone();
    sorted.sort_unstable();
    let mut expected = nodes.clone();
    expected.sort_unstable();
    assert_eq!(sorted, expected);
    // Shell steps act locally; the journal now says so.
    assert!(
        json["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["target"] == "local")
    );
}

/// The text from a heading to the next heading of the same or a higher level.
fn section<'a>(md: &'a str, heading: &str) -> &'a str {
    let start = md
        .find(&format!("{heading}\n"))
        .unwrap_or_else(|| panic!("no {heading}"));
    let level = heading.split(' ').next().unwrap();
    let rest = &md[start + heading.len()..];
    let end = rest
        .match_indices("\n#")
        .find(|(i, _)| {
            let hashes = rest[i + 1..].chars().take_while(|c| *c == '#').count();
            hashes <= level.len() && rest[i + 1 + hashes..].starts_with(' ')
        })
        .map_or(rest.len(), |(i, _)| i);
    &rest[..end]
}

/// A secret in a command line, in its output and in the step's target (its `cwd`).
const TOKEN_PLAN: &str = r#"version: 1
name: token-check
secrets:
  token: { env: TEST_TOKEN }
steps:
  - id: make-dir
    shell: { run: "mkdir -p work/{{ secrets.token }}" }
  - id: use-token
    needs: [make-dir]
    shell:
      run: "echo calling with {{ secrets.token }}; exit 3"
      cwd: "work/{{ secrets.token }}"
"#;

#[test]
fn a_secret_in_a_command_and_a_target_never_reaches_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "tok-9b2e71c4-report-secret";
    std::fs::write(dir.path().join("token-check.yaml"), TOKEN_PLAN).unwrap();
    let out = rollbook(dir.path())
        .env("TEST_TOKEN", secret)
        .args(["run", "./token-check.yaml", "--reason", "rotate the token"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        dir.path().join("work").join(secret).is_dir(),
        "the step ran with the real value"
    );
    let state = dir.path().join(".rollbook");
    let id = only_run(&state);
    let journal =
        std::fs::read_to_string(state.join("runs").join(&id).join("journal.jsonl")).unwrap();
    assert!(!journal.contains(secret), "{journal}");
    assert!(
        journal.contains(r#""node":"use-token","attempt":1,"target":"local, in work/***"}"#),
        "the target is journaled, redacted: {journal}"
    );

    for format in ["markdown", "json"] {
        let report = report(&state, &id, format);
        assert!(!report.contains(secret), "{format}: {report}");
        assert!(report.contains("work/***"), "{format}: {report}");
        assert!(report.contains("exit code 3"), "{format}: {report}");
    }
    let md = report(&state, &id, "markdown");
    assert!(md.contains("out | calling with ***"), "{md}");
}

#[test]
fn a_password_written_into_an_http_url_is_hidden_in_the_target() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 (discard) is closed: the request fails at once, no server needed.
    std::fs::write(
        dir.path().join("url-password.yaml"),
        "version: 1\nname: url-password\nsteps:\n  - id: drain\n    http: { method: POST, url: 'http://ops:hunter22@127.0.0.1:9/drain' }\n",
    )
    .unwrap();
    let out = rollbook(dir.path())
        .args(["run", "./url-password.yaml", "--reason", "drain"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let state = dir.path().join(".rollbook");
    let id = only_run(&state);
    let json: Value = serde_json::from_str(&report(&state, &id, "json")).unwrap();
    assert_eq!(
        json["nodes"][0]["target"],
        "POST http://ops:***@127.0.0.1:9/drain"
    );
    assert_eq!(json["targets"][0]["target"], "127.0.0.1");
    let md = report(&state, &id, "markdown");
    assert!(!md.contains("hunter22"), "{md}");
}

const BIG_PLAN: &str = r#"version: 1
name: big
params:
  hosts: { type: list }
steps:
  - id: roll
    for_each: "{{ params.hosts }}"
    steps:
      - id: stop
        ssh: { host: "{{ item }}", run: "true" }
      - id: start
        needs: [stop]
        ssh: { host: "{{ item }}", run: "true" }
"#;

/// A run directory with `hosts` × 2 nodes, every one succeeded but `roll[h-7].start`, and
/// the `tolerated` nodes, which failed and were tolerated.
fn write_big_run(state: &Path, id: &str, hosts: usize, tolerated: &[&str]) {
    let dir = state.join("runs").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("plan.yaml"), BIG_PLAN).unwrap();
    let meta = json!({
        "run_id": id, "plan": "big", "plan_path": "big.yaml", "plan_hash": "0",
        "params": {}, "reason": "many hosts", "user": "ops", "host": "bastion", "pid": 1,
        "started_at": "2026-11-29T10:00:00.000Z", "lock": "big", "parallelism": 64,
        "rollbook_version": "0.1.0",
    });
    std::fs::write(dir.join("run.json"), meta.to_string()).unwrap();
    let (begin, end) = ("2026-11-29T10:00:00.000Z", "2026-11-29T10:01:00.000Z");
    let mut events = vec![
        json!({"event": "run_started", "at": begin, "run_id": id, "plan": "big"}),
        json!({"event": "phase_started", "at": begin, "phase": "steps", "nodes": hosts * 2}),
    ];
    for i in 0..hosts {
        for (step, ms) in [("stop", 100), ("start", 300)] {
            let node = format!("roll[h-{i}].{step}");
            let second = i % 60;
            let started = format!("2026-11-29T10:00:{second:02}.{ms:03}Z");
            let finished = format!("2026-11-29T10:00:{second:02}.{:03}Z", ms + 150);
            let went_on = tolerated.contains(&node.as_str());
            let stopped_the_run = i == 7 && step == "start";
            let ok = !stopped_the_run && !went_on;
            let status = if ok { "succeeded" } else { "failed" };
            events.extend([
                json!({
                    "event": "attempt_started", "at": started, "phase": "steps", "node": node,
                    "attempt": 1, "target": format!("h-{i}"),
                }),
                json!({
                    "event": "attempt_finished", "at": finished, "phase": "steps", "node": node,
                    "attempt": 1, "ok": ok, "duration_ms": 150,
                }),
                json!({
                    "event": "node_finished", "at": finished, "phase": "steps", "node": node,
                    "status": status, "tolerated": went_on,
                }),
            ]);
        }
    }
    events
        .push(json!({"event": "phase_finished", "at": end, "phase": "steps", "status": "failed"}));
    events.push(json!({"event": "run_finished", "at": end, "status": "failed"}));
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    std::fs::write(dir.join("journal.jsonl"), lines.join("\n") + "\n").unwrap();
}

#[test]
fn a_big_fan_out_is_drawn_one_bar_per_step() {
    let dir = tempfile::tempdir().unwrap();
    write_big_run(dir.path(), "20261129-100000-b1b1", 150, &[]);
    let md = report(dir.path(), "20261129-100000-b1b1", "markdown");
    let gantt = section(&md, "## Gantt");
    assert!(
        gantt.contains("title big run 20261129-100000-b1b1 (UTC), one bar per step for 300 nodes"),
        "{gantt}"
    );
    let bars: Vec<&str> = gantt.lines().filter(|l| l.contains(" :")).collect();
    assert_eq!(
        bars,
        [
            "    roll[*].stop x150 :done, 2026-11-29 10:00:00.100, 2026-11-29 10:00:59.250",
            "    roll[*].start x150, 1 failed :crit, 2026-11-29 10:00:00.300, 2026-11-29 10:00:59.450",
        ]
    );
    // Up to the limit, one bar per node.
    write_big_run(dir.path(), "20261129-100000-b2b2", 100, &[]);
    let md = report(dir.path(), "20261129-100000-b2b2", "markdown");
    let gantt = section(&md, "## Gantt");
    assert_eq!(gantt.lines().filter(|l| l.contains(" :")).count(), 200);
    assert!(gantt.contains("    roll[h-7].start :crit, "), "{gantt}");
}

#[test]
fn a_tolerated_failure_is_drawn_apart_from_the_failure_that_stopped_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let tolerated = ["roll[h-3].stop", "roll[h-9].start"];
    write_big_run(dir.path(), "20261129-100000-b3b3", 150, &tolerated);
    let md = report(dir.path(), "20261129-100000-b3b3", "markdown");
    let bars: Vec<&str> = section(&md, "## Gantt")
        .lines()
        .filter(|l| l.contains(" :"))
        .collect();
    assert_eq!(
        bars,
        [
            "    roll[*].stop x150, 1 failed (tolerated) :done, crit, 2026-11-29 10:00:00.100, 2026-11-29 10:00:59.250",
            "    roll[*].start x150, 2 failed (1 tolerated) :crit, 2026-11-29 10:00:00.300, 2026-11-29 10:00:59.450",
        ]
    );
    write_big_run(dir.path(), "20261129-100000-b4b4", 20, &tolerated);
    let md = report(dir.path(), "20261129-100000-b4b4", "markdown");
    let gantt = section(&md, "## Gantt");
    assert!(gantt.contains("    roll[h-7].start :crit, "), "{gantt}");
    assert!(
        gantt.contains("    roll[h-3].stop (tolerated) :done, crit, "),
        "{gantt}"
    );
    assert!(
        gantt.contains("    roll[h-9].start (tolerated) :done, crit, "),
        "{gantt}"
    );
    assert!(
        md.contains("- **Tolerated failures**: `roll[h-3].stop` and `roll[h-9].start`;"),
        "{md}"
    );
}

/// A team's own template: its words around the built-in sections it keeps, the facts
/// anywhere, values from the journal escaped; a name the facts do not have is an error with
/// the template's line; the default template gives today's report.
#[test]
fn a_report_template_shapes_the_markdown() {
    let state = crate_dir().join("tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("ours.md.hbs");
    std::fs::write(
        &template,
        "# Post-incident: {{run.plan}} ({{run.status}})\n\nOwner: _on call_ · reason: {{run.reason}}\n\n{{{sections.timeline}}}\n## What we checked\n\n{{#each checks}}- {{this.node}}: {{this.status}}\n{{/each}}",
    )
    .unwrap();
    let out = rollbook(&state)
        .args(["--state-dir"])
        .arg(&state)
        .args(["report", "20261125-091500-a1b2", "--template"])
        .arg(&template)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!("report__template", text(&out.stdout));

    std::fs::write(&template, "{{run.plan}}\n{{run.no_such_fact}}\n").unwrap();
    let out = rollbook(&state)
        .args(["--state-dir"])
        .arg(&state)
        .args(["report", "20261125-091500-a1b2", "--template"])
        .arg(&template)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("ours.md.hbs") && err.contains("line 2"),
        "{err}"
    );

    let plain = report(&state, "20261125-091500-a1b2", "markdown");
    let default = dir.path().join("default.md.hbs");
    std::fs::write(
        &default,
        include_str!("../../src/report/markdown/default.md.hbs"),
    )
    .unwrap();
    let out = rollbook(&state)
        .args(["--state-dir"])
        .arg(&state)
        .args(["report", "20261125-091500-a1b2", "--template"])
        .arg(&default)
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), plain);
}

/// `check: true` makes a step a check whatever its id; `check: false` keeps a step whose id
/// looks like one out of the checks.
#[test]
fn steps_marked_check_are_the_reports_checks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plans")).unwrap();
    std::fs::write(
        dir.path().join("plans/marked.yaml"),
        "version: 1\nname: marked\nsteps:\n  - id: smoke\n    shell: { run: 'true' }\n    check: true\n  - id: health-log\n    shell: { run: 'true' }\n    check: false\n  - id: verify-db\n    shell: { run: 'true' }\n",
    )
    .unwrap();
    let out = rollbook(dir.path())
        .args(["run", "marked", "--reason", "checks", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let state = dir.path().join(".rollbook");
    let id = only_run(&state);
    let json: Value = serde_json::from_str(&report(&state, &id, "json")).unwrap();
    let checks: Vec<(&str, &str)> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["node"].as_str().unwrap(), c["why"].as_str().unwrap()))
        .collect();
    assert_eq!(
        checks,
        [("smoke", "marked"), ("verify-db", "name")],
        "{json}"
    );
    let md = report(&state, &id, "markdown");
    assert!(md.contains("`check: true`"), "{md}");
}
