//! A plan calling a plan (`plan: NAME`) with the real binary: one journal and one lock, the
//! called nodes named under the call, the called plans' texts kept with the run for `resume`
//! and `report`, the dry run and the graph.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::Ran;

const NOTICE: &str = r#"version: 1
name: notice
params:
  what: { required: true }
secrets:
  hook: { env: HOOK_FOR_STANDALONE_RUNS }
steps:
  - id: write
    shell: { run: "echo {{ params.what }} >> calls.txt" }
  - id: check
    shell:
      env: { HOOK: "{{ secrets.hook }}" }
      run: echo "hook $HOOK"; test "$HOOK" = right-token
"#;

const CALLER: &str = r#"version: 1
name: caller
lock: team
params:
  who: { default: ann }
secrets:
  token: { env: TOKEN }
steps:
  - id: first
    shell: { run: "echo first >> calls.txt" }
  - id: notify
    plan: notice
    params: { what: "hello {{ params.who }}" }
    secrets: { hook: token }
finally:
  - id: bye
    plan: notice
    params: { what: bye }
    secrets: { hook: token }
"#;

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("plans")).unwrap();
        let sb = Sandbox { dir };
        sb.write("plans/notice.yaml", NOTICE);
        sb.write("plans/caller.yaml", CALLER);
        sb
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.path().join(file), text).unwrap();
    }

    fn run(&self, args: &[&str], token: &str) -> Ran {
        crate::rollbook_in(self.path())
            .env("TOKEN", token)
            .args(args)
            .output()
            .unwrap()
            .into()
    }

    fn run_ids(&self) -> Vec<String> {
        crate::run_ids_in(&self.path().join(".rollbook"))
    }

    fn run_dir(&self, id: &str) -> PathBuf {
        self.path().join(".rollbook/runs").join(id)
    }

    fn calls_txt(&self) -> String {
        std::fs::read_to_string(self.path().join("calls.txt")).unwrap_or_default()
    }

    fn node_statuses(&self, id: &str) -> Vec<(String, String)> {
        let doc = self
            .run(&["show", id, "--format", "json"], "")
            .assert_code(0)
            .json();
        doc["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    format!(
                        "{}/{}",
                        n["phase"].as_str().unwrap(),
                        n["node"].as_str().unwrap()
                    ),
                    n["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn a_calling_plan_runs_the_called_steps_in_one_journal_under_one_lock() {
    let sb = Sandbox::new();
    sb.run(&["run", "caller", "--reason", "test"], "right-token")
        .assert_code(0);
    let ids = sb.run_ids();
    assert_eq!(ids.len(), 1, "one run, one journal: {ids:?}");
    let id = &ids[0];
    assert_eq!(sb.calls_txt(), "first\nhello ann\nbye\n");
    assert_eq!(
        sb.node_statuses(id),
        pairs(&[
            ("steps/first", "succeeded"),
            ("steps/notify.write", "succeeded"),
            ("steps/notify.check", "succeeded"),
            ("finally/bye.write", "succeeded"),
            ("finally/bye.check", "succeeded"),
        ])
    );
    // The caller's lock only; the called plan's text kept with the run.
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(sb.run_dir(id).join("run.json")).unwrap())
            .unwrap();
    assert_eq!(meta["lock"], "team");
    assert_eq!(meta["calls"]["notice"]["text"], NOTICE);
    assert!(
        meta["calls"]["notice"]["path"]
            .as_str()
            .unwrap()
            .ends_with("plans/notice.yaml")
    );
    // The caller's secret, under the called plan's name, masked like any secret of the run.
    let log = std::fs::read_to_string(sb.run_dir(id).join("logs/steps/notify.check.log")).unwrap();
    assert_eq!(log, "out | hook ***\n");
    let journal = std::fs::read_to_string(sb.run_dir(id).join("journal.jsonl")).unwrap();
    assert!(!journal.contains("right-token"), "the secret is masked");
    // The report groups the called nodes under the call and knows their kind.
    let report = sb
        .run(&["report", id, "--format", "json"], "")
        .assert_code(0)
        .json();
    let steps: Vec<(String, u64)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["nodes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("first".to_string(), 1),
            ("notify".to_string(), 2),
            ("bye".to_string(), 2)
        ]
    );
    let kinds: Vec<&str> = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(kinds, ["shell"; 5]);
}

#[test]
fn a_changed_called_plan_is_a_changed_plan_for_resume() {
    let sb = Sandbox::new();
    sb.run(&["run", "caller", "--reason", "test"], "wrong-token")
        .assert_code(1);
    let id = sb.run_ids().remove(0);
    let statuses = sb.node_statuses(&id);
    assert!(
        statuses.contains(&("steps/notify.check".to_string(), "failed".to_string())),
        "{statuses:?}"
    );
    // The called plan changes: the resume refuses, as for the plan itself.
    sb.write(
        "plans/notice.yaml",
        &NOTICE.replace(">> calls.txt", ">> other.txt"),
    );
    let out = sb.run(&["resume", &id], "right-token");
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("plans/notice.yaml (plan `notice`, called by the run's plan) changed"),
        "{}",
        out.stderr
    );
    // Put back, the resume runs what failed (`first` and `notify.write` not again); `finally`
    // runs at the end of the resumed run, as in any plan.
    sb.write("plans/notice.yaml", NOTICE);
    sb.run(&["resume", &id], "right-token").assert_code(0);
    assert_eq!(sb.calls_txt(), "first\nhello ann\nbye\nbye\n");
    let statuses = sb.node_statuses(&id);
    assert!(
        statuses.contains(&("steps/notify.check".to_string(), "succeeded".to_string())),
        "{statuses:?}"
    );
}

#[test]
fn the_dry_run_and_the_graph_show_the_called_steps_under_the_call() {
    let sb = Sandbox::new();
    let out = sb.run(&["plan", "caller", "--format", "json"], "");
    out.assert_code(0);
    let doc = out.json();
    let nodes: Vec<(String, Value)> = doc["phases"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l.as_array().unwrap().clone())
        .map(|n| (n["name"].as_str().unwrap().to_string(), n["needs"].clone()))
        .collect();
    let names: Vec<&str> = nodes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["first", "notify.write", "notify.check"]);
    assert_eq!(nodes[1].1, serde_json::json!(["first"]));
    assert_eq!(nodes[2].1, serde_json::json!(["notify.write"]));
    let called: Vec<&Value> = doc["phases"][0]["layers"][1]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &n["plan"])
        .collect();
    assert_eq!(called, [&serde_json::json!("notice")]);
    let text = sb.run(&["plan", "caller"], "");
    text.assert_code(0);
    assert!(text.stdout.contains("notify.check"), "{}", text.stdout);
    assert!(text.stdout.contains("echo 'hello ann'"), "{}", text.stdout);
    let graph = sb.run(&["graph", "caller"], "");
    graph.assert_code(0);
    assert!(
        graph.stdout.contains("notify · plan notice"),
        "{}",
        graph.stdout
    );
    // `validate` of the directory checks the call against the called plan.
    sb.write(
        "plans/caller.yaml",
        &CALLER.replace("hook: token", "hok: token"),
    );
    let out = sb.run(&["validate"], "");
    out.assert_code(2);
    assert!(
        out.stderr.contains("plan `notice` needs secret `hook`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did you mean `hook`?"),
        "{}",
        out.stderr
    );
}
