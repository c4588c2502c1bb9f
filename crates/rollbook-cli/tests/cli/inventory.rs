//! Inventories that describe a fleet: `rollbook inventory`, `--inventory DIR`, groups of
//! groups and host vars through the real binary, and the diagnostics of broken inventories
//! (`tests/fixtures/inventories/invalid/`, snapshots).

use std::path::{Path, PathBuf};

use crate::Ran;

fn rollbook(args: &[&str]) -> Ran {
    crate::rollbook_in(&crate::workspace())
        .args(args)
        .output()
        .unwrap()
        .into()
}

fn fixtures() -> PathBuf {
    crate::crate_dir().join("tests/fixtures/inventories")
}

/// A fixture's path as the workspace sees it, so diagnostics name it the same on any machine.
fn fixture(rel: &str) -> String {
    format!("crates/rollbook-cli/tests/fixtures/inventories/{rel}")
}

#[test]
fn inventory_invalid_fixtures_are_refused_with_located_diagnostics() {
    let mut cases: Vec<String> = std::fs::read_dir(fixtures().join("invalid"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    cases.sort();
    assert!(cases.len() >= 6, "{cases:?}");
    for case in cases {
        let path = fixture(&format!("invalid/{case}"));
        let out = rollbook(&["inventory", "--inventory", &path]);
        out.assert_code(2);
        assert!(
            out.stderr.contains(&format!("[{path}")),
            "{case}: no location in\n{}",
            out.stderr
        );
        let stem = case.trim_end_matches(".yaml");
        insta::assert_snapshot!(format!("inventory_invalid__{stem}"), out.stderr);
    }
}

#[test]
fn inventory_split_files_name_both_places() {
    let out = rollbook(&["inventory", "--inventory", &fixture("invalid/split")]);
    out.assert_code(2);
    // `operators` of 20-more.yaml, first defined in 10-groups.yaml line 4 (miette wraps the
    // help, paths included: compared without white space).
    let flat: String = out.stderr.split_whitespace().collect();
    let dir = "crates/rollbook-cli/tests/fixtures/inventories/invalid/split";
    assert!(
        flat.contains(&format!("firstdefinition:{dir}/10-groups.yaml:4:1")),
        "{}",
        out.stderr
    );
    assert!(
        flat.contains(&format!("firstdefinition:{dir}/10-groups.yaml:5:13")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("20-more.yaml:2:1]"), "{}", out.stderr);
    assert!(out.stderr.contains("duplicate-host"), "{}", out.stderr);
    assert!(
        out.stderr
            .ends_with("error: 2 errors in the inventory (1 of 2 files)\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn inventory_of_a_directory_text_json_and_graph() {
    let dir = fixture("valid/prod");
    let text = rollbook(&["inventory", "--inventory", &dir]);
    text.assert_code(0);
    insta::assert_snapshot!("inventory_prod_text", text.stdout);
    // Only the directory's own *.yaml and *.yml files are read.
    assert!(!text.stdout.contains("nobody"));

    let json = rollbook(&["inventory", "--inventory", &dir, "--format", "json"]);
    let doc = json.assert_code(0).json();
    assert_eq!(
        doc["groups"]["all"]["hosts"],
        serde_json::json!([
            "bastion-1",
            "us-east-op-1",
            "us-east-op-2",
            "eu-west-op-1",
            "us-east-worker-1",
            "eu-west-worker-1"
        ])
    );
    assert_eq!(
        doc["groups"]["all"]["children"],
        serde_json::json!(["operators", "workers"])
    );
    assert_eq!(
        doc["hosts"]["us-east-op-1"],
        serde_json::json!({
            "address": "10.1.0.1", "port": 2222, "user": "ops",
            "vars": { "datacenter": "iad-1", "rack": 4 },
            "groups": ["all", "operators", "us-east"]
        })
    );
    assert_eq!(doc["hosts"]["bastion-1"]["port"], serde_json::Value::Null);

    let graph = rollbook(&["inventory", "--inventory", &dir, "--graph"]);
    graph.assert_code(0);
    insta::assert_snapshot!("inventory_prod_graph", graph.stdout);
}

#[test]
fn inventory_of_a_plan_shows_its_expanded_groups() {
    let out = rollbook(&["inventory", "emergency-platform-rollback"]);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("group all: 27 hosts · children operators, workers"),
        "{}",
        out.stdout
    );
    // With an inventory over it: its groups replace the plan's, `all` follows.
    let out = rollbook(&[
        "inventory",
        "emergency-platform-rollback",
        "--inventory",
        &fixture("valid/prod"),
        "--format",
        "json",
    ]);
    let doc = out.assert_code(0).json();
    assert_eq!(
        doc["groups"]["all"]["hosts"].as_array().unwrap().len(),
        6,
        "{doc}"
    );
    assert_eq!(
        doc["sources"],
        serde_json::json!([
            "plan emergency-platform-rollback",
            format!("--inventory {} (2 files)", fixture("valid/prod"))
        ])
    );
}

#[test]
fn inventory_needs_a_plan_or_an_inventory() {
    let out = rollbook(&["inventory"]);
    out.assert_code(2);
    assert!(out.stderr.contains("give a plan"), "{}", out.stderr);
    let out = rollbook(&[
        "inventory",
        "--inventory",
        &fixture("valid/prod/nested/none"),
    ]);
    out.assert_code(2);
}

const FLEET_PLAN: &str = r#"version: 1
name: fleet
inventory:
  operators: []
  workers: []
  all: { children: [operators, workers] }
steps:
  - id: each
    for_each: "{{ inventory.all }}"
    steps:
      - id: say
        shell: { run: "echo {{ item }} in {{ host.vars.datacenter }} via {{ host.address }}" }
  - id: bastion
    shell: { run: "echo {{ inventory.hosts.bastion-1.address }}" }
  - id: gate
    shell: { run: "test -f ok-to-finish" }
"#;

/// A sandbox with the plan above and the `prod` inventory directory.
fn sandbox() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plans")).unwrap();
    std::fs::write(dir.path().join("plans/fleet.yaml"), FLEET_PLAN).unwrap();
    let inv = dir.path().join("inventories/prod");
    std::fs::create_dir_all(&inv).unwrap();
    for f in ["10-operators.yaml", "20-workers.yml"] {
        std::fs::copy(fixtures().join("valid/prod").join(f), inv.join(f)).unwrap();
    }
    // Workers with a datacenter, so every instance has one.
    std::fs::write(
        inv.join("30-workers-details.yaml"),
        "places:\n  - { name: us-east-worker-1, vars: { datacenter: iad-9 } }\n  - { name: eu-west-worker-1, vars: { datacenter: fra-9 } }\n  - { name: bastion-1, address: 10.9.9.9, vars: { datacenter: none } }\n",
    )
    .unwrap();
    dir
}

fn in_sandbox(dir: &Path, args: &[&str]) -> Ran {
    crate::rollbook_in(dir).args(args).output().unwrap().into()
}

#[test]
fn inventory_directory_dry_run_limit_and_host_vars() {
    let sb = sandbox();
    let out = in_sandbox(
        sb.path(),
        &[
            "plan",
            "fleet",
            "--inventory",
            "inventories/prod",
            "--format",
            "json",
        ],
    );
    let doc = out.assert_code(0).json();
    let nodes: Vec<(String, String)> = doc["phases"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l.as_array().unwrap().clone())
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_string(),
                n["body"].to_string(),
            )
        })
        .collect();
    let find = |name: &str| {
        nodes
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} in {nodes:?}"))
            .1
            .clone()
    };
    assert!(find("each[us-east-op-1].say").contains("us-east-op-1 in iad-1 via 10.1.0.1"));
    assert!(
        find("each[eu-west-worker-1].say")
            .contains("eu-west-worker-1 in fra-9 via eu-west-worker-1")
    );
    assert!(find("bastion").contains("echo 10.9.9.9"));
    assert_eq!(nodes.len(), 8, "{nodes:?}");

    // --limit with a group takes its children's hosts.
    let out = in_sandbox(
        sb.path(),
        &[
            "plan",
            "fleet",
            "--inventory",
            "inventories/prod",
            "--limit",
            "operators",
        ],
    );
    out.assert_code(0);
    assert!(
        out.stdout.contains("each[us-east-op-2].say"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("each[eu-west-op-1].say"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("each[us-east-worker-1]"),
        "{}",
        out.stdout
    );
}

#[test]
fn inventory_directory_run_keeps_its_files_for_report_and_resume() {
    let sb = sandbox();
    let out = in_sandbox(
        sb.path(),
        &[
            "run",
            "fleet",
            "--reason",
            "test",
            "--yes",
            "--inventory",
            "inventories/prod",
        ],
    );
    // The last step fails until `ok-to-finish` exists.
    out.assert_code(1);
    let ids = crate::run_ids_in(&sb.path().join(".rollbook"));
    let run_dir = sb.path().join(".rollbook/runs").join(&ids[0]);
    let kept = std::fs::read_to_string(run_dir.join("inventory.yaml")).unwrap();
    let files = rollbook_plan::inventory::unbundle(&kept).expect("the directory's files");
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "inventories/prod/10-operators.yaml",
            "inventories/prod/20-workers.yml",
            "inventories/prod/30-workers-details.yaml"
        ]
    );
    for f in &files {
        assert_eq!(
            &*f.text,
            std::fs::read_to_string(sb.path().join(&f.name)).unwrap()
        );
    }
    let log = std::fs::read_to_string(run_dir.join("logs/steps/each[us-east-op-1].say.log"))
        .unwrap_or_default();
    assert!(log.contains("us-east-op-1 in iad-1 via 10.1.0.1"), "{log}");
    // The report compiles the plan as it ran, with the inventory's copy.
    let report = in_sandbox(sb.path(), &["report", &ids[0], "--format", "json"]);
    report.assert_code(0);
    assert!(
        !report.stderr.contains("does not read"),
        "{}",
        report.stderr
    );
    // So does resume: the failed step runs again, with the inventory the run had (the
    // directory is gone by then).
    std::fs::remove_dir_all(sb.path().join("inventories")).unwrap();
    std::fs::write(sb.path().join("ok-to-finish"), "").unwrap();
    let resume = in_sandbox(sb.path(), &["resume", &ids[0], "--yes"]);
    resume.assert_code(0);
}
