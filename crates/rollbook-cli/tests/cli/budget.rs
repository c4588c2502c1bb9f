//! `budget:`, `plan --summary` and the report's budget line: the worst case from timeouts,
//! retries, gates, sleeps and fan-out waves, against the plan's budget.

use crate::{Ran, rollbook_command};

fn rollbook(dir: &std::path::Path, args: &[&str]) -> Ran {
    rollbook_command(dir).args(args).output().unwrap().into()
}

/// Three hosts one at a time, each: stop (30s, 2 attempts 5s apart), sleep 10s, a gate of
/// 1m polling a 5s check; then a notice of 10s. Worst: 3 × (65s + 10s + 65s) + 10s = 7m10s.
const ROLLING: &str = "version: 1
name: rolling
budget: BUDGET
inventory:
  web:
    - { name: web-1, address: 127.0.0.2 }
    - { name: web-2, address: 127.0.0.3 }
    - { name: web-3, address: 127.0.0.4 }
steps:
  - id: roll
    for_each: \"{{ inventory.web }}\"
    concurrency: 1
    steps:
      - id: stop
        ssh: { host: \"{{ item }}\", run: systemctl stop web }
        timeout: 30s
        retry: { attempts: 2, delay: 5s }
      - id: settle
        sleep: 10s
      - id: healthy
        ssh: { host: \"{{ item }}\", run: curl -fsS localhost/health }
        timeout: 5s
        until: 'true'
        deadline: 1m
  - id: notice
    shell: { run: echo done }
    timeout: 10s
";

#[test]
fn the_summary_compares_the_worst_case_with_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plans")).unwrap();
    std::fs::write(
        dir.path().join("plans/rolling.yaml"),
        ROLLING.replace("BUDGET", "10m"),
    )
    .unwrap();
    let ran = rollbook(dir.path(), &["plan", "rolling", "--summary"]);
    ran.assert_code(0);
    insta::assert_snapshot!("summary_fits", ran.stdout);
    let json = rollbook(
        dir.path(),
        &["plan", "rolling", "--summary", "--format", "json"],
    );
    json.assert_code(0);
    let doc = json.json();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["time"]["worst_s"], 430.0);
    assert_eq!(doc["time"]["budget_verdict"], "fits");
    assert_eq!(doc["fan_outs"][0]["instances"], 3);

    let validate = rollbook(dir.path(), &["validate"]);
    validate.assert_code(0);
    assert!(
        !validate.stderr.contains("over-budget"),
        "{}",
        validate.stderr
    );
}

#[test]
fn a_plan_over_its_budget_is_a_warning_pointing_at_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plans")).unwrap();
    std::fs::write(
        dir.path().join("plans/rolling.yaml"),
        ROLLING.replace("BUDGET", "5m"),
    )
    .unwrap();
    let validate = rollbook(dir.path(), &["validate"]);
    validate.assert_code(0);
    insta::assert_snapshot!("over_budget", validate.stderr);
    let strict = rollbook(dir.path(), &["validate", "--deny-warnings"]);
    strict.assert_code(2);
    let summary = rollbook(dir.path(), &["plan", "rolling", "--summary"]);
    assert!(
        summary
            .stdout
            .contains("budget: 5m — OVER: the worst case does not fit"),
        "{}",
        summary.stdout
    );

    // A step without a timeout: the budget cannot be checked.
    std::fs::write(
        dir.path().join("plans/rolling.yaml"),
        ROLLING
            .replace("BUDGET", "5m")
            .replace("    timeout: 10s\n", ""),
    )
    .unwrap();
    let open = rollbook(dir.path(), &["validate"]);
    assert!(
        open.stderr
            .contains("the budget of 5m cannot be checked: notice has no timeout"),
        "{}",
        open.stderr
    );
}

#[test]
fn the_report_says_whether_the_run_kept_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plans")).unwrap();
    std::fs::write(
        dir.path().join("plans/quick.yaml"),
        "version: 1\nname: quick\nbudget: 1m\nsteps:\n  - id: a\n    shell: { run: 'true' }\n    timeout: 10s\n",
    )
    .unwrap();
    rollbook(dir.path(), &["run", "quick", "--reason", "budget", "--yes"]).assert_code(0);
    let id = crate::run_ids_in(&dir.path().join(".rollbook"))
        .pop()
        .unwrap();
    let report = rollbook(dir.path(), &["report", &id]);
    report.assert_code(0);
    assert!(
        report.stdout.contains("- **Budget**: 60s: kept"),
        "{}",
        report.stdout
    );
    let json = rollbook(dir.path(), &["report", &id, "--format", "json"]);
    assert_eq!(json.json()["run"]["budget_kept"], true);
}
