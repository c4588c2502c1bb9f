//! The real binary: exit codes, what goes to stdout and stderr, and how plans are found.

use assert_cmd::Command;

fn rollbook() -> Command {
    crate::rollbook_in(&crate::workspace())
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn validate_with_no_arguments_checks_the_plans_directory() {
    let out = rollbook().arg("validate").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("ok: 9 plans valid") || stderr(&out).contains("plans valid"));
}

/// The plans and examples that ship pass what CI runs: no warning either.
#[test]
fn the_shipped_plans_have_no_warnings() {
    for dir in ["plans", "examples"] {
        let out = rollbook()
            .args(["validate", "--deny-warnings", dir])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{dir}: {}", stderr(&out));
        assert!(!stderr(&out).contains("warning"), "{dir}: {}", stderr(&out));
    }
}

#[test]
fn validate_exits_2_on_an_invalid_plan_and_names_file_line_and_column() {
    let out = rollbook()
        .args([
            "validate",
            "crates/rollbook-cli/tests/fixtures/invalid/unknown-need.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("unknown-need.yaml:7:13"), "{err}");
    assert!(err.contains("did you mean `stop`?"), "{err}");
}

#[test]
fn validate_github_format_prints_annotations_on_stdout() {
    let out = rollbook()
        .args([
            "validate",
            "--format",
            "github",
            "crates/rollbook-cli/tests/fixtures/invalid/unknown-step-key.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert!(
        text.starts_with("::error file=crates/rollbook-cli/tests/fixtures/invalid/unknown-step-key.yaml,line=6,col=5,"),
        "{text}"
    );
}

/// SARIF for code scanning: a rule per code, a result per diagnostic with its region and
/// related places; `human` and `text` are one format.
#[test]
fn validate_sarif_format_is_code_scanning_input() {
    let fixture = "crates/rollbook-cli/tests/fixtures/invalid/unknown-step-key.yaml";
    let out = rollbook()
        .args(["validate", "--format", "sarif", fixture])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["version"], "2.1.0");
    let run = &doc["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "rollbook");
    let result = &run["results"][0];
    let rule = result["ruleId"].as_str().unwrap();
    assert!(
        run["tool"]["driver"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == rule),
        "{doc}"
    );
    assert_eq!(result["level"], "error");
    let place = &result["locations"][0]["physicalLocation"];
    assert_eq!(place["artifactLocation"]["uri"], fixture);
    assert_eq!(place["region"]["startLine"], 6);
    assert_eq!(place["region"]["startColumn"], 5);
    for format in ["human", "text"] {
        let out = rollbook()
            .args(["validate", "--format", format, fixture])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains("unknown-step-key.yaml:6:5"),
            "{format}"
        );
    }
}

const WARNINGS: &str = "crates/rollbook-cli/tests/fixtures/warnings/shell-values.yaml";

#[test]
fn validate_warnings_pass_and_deny_warnings_makes_them_exit_2() {
    let out = rollbook().args(["validate", WARNINGS]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ok: 1 plan valid, 4 warnings"),
        "{}",
        stderr(&out)
    );

    let out = rollbook()
        .args([
            "validate",
            "--deny-warnings",
            "--format",
            "github",
            WARNINGS,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    let codes: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("::warning "))
        .filter_map(|l| l.split("title=rollbook ").nth(1)?.split("::").next())
        .collect();
    assert_eq!(
        codes,
        [
            "needless-quotes",
            "raw-splice",
            "value-in-code",
            "raw-splice"
        ],
        "{text}"
    );
    assert!(
        text.ends_with("1 plan checked, 0 errors, 4 warnings\n"),
        "{text}"
    );
    assert!(
        stderr(&out).contains("4 warnings, and --deny-warnings makes warnings errors"),
        "{}",
        stderr(&out)
    );
}

/// A FIFO, a device, a directory, a loop of symbolic links and a huge sparse file, given as a
/// plan, a params file or an inventory: each refused with what it is, before anything is read
/// (a FIFO or `/dev/zero` would be read forever).
#[test]
fn files_that_are_not_regular_or_too_big_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.yaml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let looped = dir.path().join("loop.yaml");
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    let big = dir.path().join("big.yaml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    let path = |p: &std::path::Path| p.display().to_string();
    let hello = "examples/hello-rollback.yaml".to_string();
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["validate".into(), path(&fifo)],
            "is a FIFO (named pipe)".into(),
        ),
        (
            vec!["validate".into(), path(&looped)],
            "is a loop of symbolic links".into(),
        ),
        (
            vec!["validate".into(), path(&big)],
            "is 3221225472 bytes".into(),
        ),
        (
            vec!["plan".into(), path(&fifo)],
            "is a FIFO (named pipe)".into(),
        ),
        (
            vec![
                "plan".into(),
                hello.clone(),
                "--params-file".into(),
                "/dev/zero".into(),
            ],
            "/dev/zero is a device".into(),
        ),
        (
            vec![
                "plan".into(),
                hello.clone(),
                "--inventory".into(),
                "/dev/zero".into(),
            ],
            "/dev/zero is a device".into(),
        ),
        (
            vec![
                "plan".into(),
                hello,
                "--params-file".into(),
                path(dir.path()),
            ],
            "is a directory".into(),
        ),
    ];
    for (args, expected) in cases {
        let out = rollbook()
            .args(&args)
            .timeout(std::time::Duration::from_secs(30))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

/// Nested `for_each` over lists known only once params are bound: counted before anything
/// is expanded, and refused past 100,000 nodes (the same plan with a short list compiles).
#[test]
fn a_plan_too_big_once_params_are_bound_is_refused_before_it_is_expanded() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("square.yaml");
    std::fs::write(
        &plan,
        "version: 1\nname: square\nparams:\n  hosts: { type: list }\nsteps:\n  - id: outer\n    for_each: \"{{ params.hosts }}\"\n    steps:\n      - id: inner\n        for_each: \"{{ params.hosts }}\"\n        shell: { run: \"echo {{ item }}\" }\n",
    )
    .unwrap();
    let hosts: Vec<String> = (0..400).map(|i| format!("h{i}")).collect();
    let many = format!("hosts={}", hosts.join(","));
    let out = rollbook()
        .args(["plan", plan.to_str().unwrap(), "--param", &many])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the plan would compile to 160000 nodes"),
        "{}",
        stderr(&out)
    );
    let out = rollbook()
        .args(["plan", plan.to_str().unwrap(), "--param", "hosts=a,b"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn validate_of_a_missing_path_is_a_usage_error() {
    let out = rollbook()
        .args(["validate", "no/such/dir"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no such file or directory: no/such/dir"));
}

/// `validate`, `list`, `plan` and `run` find the same plans: `*.yaml` and `*.yml`, in
/// subdirectories too; a broken `.yml` plan in a subdirectory fails the check that CI runs.
#[test]
fn validate_finds_every_plan_that_run_finds_and_two_plans_may_not_share_a_name() {
    let dir = tempfile::tempdir().unwrap();
    let plans = dir.path().join("plans");
    std::fs::create_dir_all(plans.join("team/db")).unwrap();
    let good = "version: 1\nname: NAME\nsteps:\n  - id: a\n    sleep: 1ms\n";
    std::fs::write(plans.join("top.yaml"), good.replace("NAME", "top")).unwrap();
    std::fs::write(
        plans.join("team/nested.yml"),
        good.replace("NAME", "nested"),
    )
    .unwrap();
    std::fs::write(
        plans.join("team/db/broken.yml"),
        "version: 1\nname: broken\nstepz: []\n",
    )
    .unwrap();
    std::fs::create_dir_all(plans.join(".hidden")).unwrap();
    std::fs::write(plans.join(".hidden/ignored.yaml"), "not: a plan\n").unwrap();
    let run = |args: &[&str]| crate::rollbook_in(dir.path()).args(args).output().unwrap();

    let out = run(&["validate", "plans"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("plans/team/db/broken.yml:3:1"), "{err}");
    assert!(!err.contains("ignored.yaml"), "{err}");
    // A nested `.yml` plan is found by name, by `plan` as by `validate`.
    let out = run(&["plan", "nested"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Two plans named `top`: `validate`, `list` and `plan top` each name both files.
    std::fs::remove_file(plans.join("team/db/broken.yml")).unwrap();
    std::fs::write(plans.join("team/top.yml"), good.replace("NAME", "top")).unwrap();
    for args in [&["validate"][..], &["list"], &["plan", "top"]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("2 plans are named `top`: plans/team/top.yml and plans/top.yaml"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn list_shows_every_plan_with_severity_and_step_count() {
    // No runs, whatever the workspace's `.rollbook` holds: one line per plan.
    let state = tempfile::tempdir().unwrap();
    let out = rollbook()
        .arg("--state-dir")
        .arg(state.path().join("none"))
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("NAME"), "{text}");
    let operator = text
        .lines()
        .find(|l| l.starts_with("operator-rollback "))
        .unwrap();
    assert!(operator.contains("critical"), "{operator}");
    assert_eq!(text.lines().count(), 11, "{text}");
}

#[test]
fn plan_by_name_prints_the_dry_run() {
    let out = rollbook()
        .args(["plan", "operator-rollback", "--param", "region=eu-west"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("roll[eu-west-op-1].stop  ssh deploy@eu-west-op-1"),
        "{text}"
    );
    assert!(!text.contains("us-east-op-1"), "{text}");
}

#[test]
fn plan_with_an_unknown_name_suggests_the_closest() {
    let out = rollbook()
        .args(["plan", "operator-rolback"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("did you mean `operator-rollback`?"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn plan_with_bad_params_exits_2_naming_each() {
    let out = rollbook()
        .args([
            "plan",
            "service-isolation-rollback",
            "--param",
            "service=web",
            "--param",
            "regoin=x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("has no param `regoin`"), "{err}");
    assert!(
        err.contains(
            "param `service` is `web`, not one of: operator, node-agent, load-balancer, edge-proxy"
        ),
        "{err}"
    );
    assert!(err.contains("param `nodes` is required"), "{err}");
}

#[test]
fn a_hostile_param_reaches_the_dry_run_as_one_quoted_word() {
    let out = rollbook()
        .args([
            "plan",
            "database-pitr",
            "--param",
            "recovery_time=x; touch /tmp/owned",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("--restore-to 'x; touch /tmp/owned'"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn secrets_are_masked_in_the_dry_run_even_when_set() {
    let out = rollbook()
        .env(
            "SLACK_WEBHOOK_URL",
            "https://hooks.example.invalid/T000/very-secret-token",
        )
        .args(["plan", "operator-rollback", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(!text.contains("very-secret-token"));
    assert!(text.contains("POST ***"), "{text}");
}

#[test]
fn graph_prints_mermaid_and_dot() {
    let out = rollbook()
        .args(["graph", "database-migration-rollback"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mermaid = stdout(&out);
    assert!(mermaid.starts_with("flowchart TD\n"), "{mermaid}");
    assert!(mermaid.contains("-->"));
    let out = rollbook()
        .args(["graph", "database-migration-rollback", "--format", "dot"])
        .output()
        .unwrap();
    let dot = stdout(&out);
    assert!(
        dot.starts_with("digraph \"database-migration-rollback\""),
        "{dot}"
    );
}

#[test]
fn plans_dir_comes_from_the_environment() {
    let out = rollbook()
        .env("ROLLBOOK_PLANS", "examples")
        .args(["plan", "hello-rollback"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let out = rollbook().arg("rollback-everything").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn schema_is_json_and_matches_the_committed_file() {
    let out = rollbook().arg("schema").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let printed = stdout(&out);
    let committed = std::fs::read_to_string(crate::workspace().join("schemas/plan.schema.json"))
        .unwrap_or_default();
    assert!(
        printed == committed,
        "schemas/plan.schema.json is stale: run `cargo run -- schema > schemas/plan.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert!(schema["properties"]["steps"].is_object());
}

#[test]
fn plan_check_reaches_every_target_and_fails_on_an_unreachable_one() {
    let out = rollbook()
        .args(["plan", "examples/hello-rollback.yaml", "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("ok    shell  local"), "{text}");
    assert!(text.contains("preflight ok"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("nowhere.yaml");
    std::fs::write(
        &plan,
        "version: 1\nname: nowhere\nsteps:\n  - id: a\n    shell: { run: 'true', cwd: /no/such/dir }\n",
    )
    .unwrap();
    let out = rollbook()
        .args(["plan", plan.to_str().unwrap(), "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(
            "FAIL  shell  local, in /no/such/dir  working directory /no/such/dir does not exist"
        ),
        "{text}"
    );
}

#[test]
fn the_dry_run_hides_a_password_written_into_an_http_url() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("hook.yaml");
    std::fs::write(
        &plan,
        "version: 1\nname: hook\nsteps:\n  - id: call\n    http: { method: POST, url: \"https://ops:hunter22@hooks.example/x\" }\n",
    )
    .unwrap();
    let out = rollbook()
        .args(["plan", plan.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(
        shown.contains("POST https://ops:***@hooks.example/x"),
        "{shown}"
    );
    assert!(!shown.contains("hunter22"), "{shown}");
}
