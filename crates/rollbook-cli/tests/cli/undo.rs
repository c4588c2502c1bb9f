//! Undo and the point of no return with the real binary: the confirmation before an
//! irreversible step (`--yes`, no terminal), what the journal, `show` and the report say of
//! undos, `--no-undo`, and the dry run's and graph's markers.

use rollbook_exec::event::Event;
use serde_json::Value;

use crate::run::Sandbox;

/// What these tests ask of `run.rs`'s sandbox beside what it has.
trait Undos {
    /// The one run of the sandbox.
    fn only_run(&self) -> String;
    fn exists(&self, file: &str) -> bool;
}

impl Undos for Sandbox {
    fn only_run(&self) -> String {
        let ids = crate::run_ids_in(&self.path().join(".rollbook"));
        assert_eq!(ids.len(), 1, "{ids:?}");
        ids[0].clone()
    }

    fn exists(&self, file: &str) -> bool {
        self.path().join(file).exists()
    }
}

fn node<'v>(show: &'v Value, name: &str) -> &'v Value {
    show["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {show:#}"))
}

const DROP: &str = r#"
steps:
  - id: backup
    shell: { run: "touch backed-up" }
  - id: drop-column
    shell: { run: "touch dropped" }
    irreversible: true
"#;

#[test]
fn irreversible_step_is_confirmed_by_yes_and_the_journal_says_who() {
    let sb = Sandbox::new();
    sb.plan("drop", &format!("confirm: DROP IT{DROP}"));
    let out = sb.run(&["run", "drop", "--reason", "test", "--yes"]);
    out.assert_code(0);
    assert!(sb.exists("backed-up") && sb.exists("dropped"));
    assert!(
        out.stderr
            .contains("drop-column is irreversible: confirmed by"),
        "{}",
        out.stderr
    );
    let id = sb.only_run();
    let confirmed: Vec<String> = sb
        .events(&id)
        .into_iter()
        .filter_map(|e| match e {
            Event::IrreversibleConfirmed {
                node, answered_by, ..
            } => Some(format!("{node} by {answered_by}")),
            _ => None,
        })
        .collect();
    assert_eq!(confirmed.len(), 1, "{confirmed:?}");
    assert!(
        confirmed[0].starts_with("drop-column by ") && confirmed[0].ends_with("(--yes)"),
        "{confirmed:?}"
    );
    let show = sb.show(&id);
    let node = node(&show, "drop-column");
    assert!(
        node["confirmed_by"].as_str().unwrap().ends_with("(--yes)"),
        "{node:#}"
    );
    let report = sb.run(&["report", &id]).assert_code(0).stdout.clone();
    assert!(
        report.contains("`drop-column` **irreversible**, confirmed by"),
        "{report}"
    );
}

#[test]
fn irreversible_step_without_a_terminal_cancels_the_run_before_it_exit_3() {
    let sb = Sandbox::new();
    // No plan phrase: the run starts without a question, and stops at the point of no return.
    sb.plan("drop", DROP);
    let out = sb.run(&["run", "drop", "--reason", "test"]);
    out.assert_code(3);
    assert!(sb.exists("backed-up"));
    assert!(!sb.exists("dropped"), "nothing irreversible ran");
    assert!(
        out.stderr.contains("step drop-column is irreversible"),
        "{}",
        out.stderr
    );
    let id = sb.only_run();
    let show = sb.show(&id);
    assert_eq!(show["status"], "cancelled");
    let node = node(&show, "drop-column");
    assert_eq!(node["status"], "cancelled");
    assert_eq!(node["attempts"], 0);
    assert!(
        node["message"]
            .as_str()
            .unwrap()
            .contains("no terminal to ask on: pass --yes"),
        "{node:#}"
    );
    let report = sb.run(&["report", &id]).assert_code(0).stdout.clone();
    assert!(
        report.contains("The run was stopped: step drop-column is irreversible"),
        "{report}"
    );
    assert!(
        report.contains("`drop-column` **irreversible**"),
        "{report}"
    );
}

const UNDONE: &str = r#"
steps:
  - id: drain
    shell: { run: "touch drained" }
    undo:
      shell: { run: "rm drained && touch undrained" }
  - id: flag
    shell: { run: "touch flagged" }
    undo:
      shell: { run: "rm flagged" }
  - id: migrate
    shell: { run: "exit 1" }
on_failure:
  - id: page
    shell: { run: "test -f undrained && touch paged" }
"#;

#[test]
fn undo_runs_before_on_failure_and_show_and_the_report_name_each_undo() {
    let sb = Sandbox::new();
    sb.plan("undone", UNDONE);
    let out = sb.run(&["run", "undone", "--reason", "test"]);
    out.assert_code(1);
    assert!(!sb.exists("drained") && !sb.exists("flagged"));
    assert!(sb.exists("undrained"));
    assert!(sb.exists("paged"), "on_failure ran after the undos");
    assert!(
        out.stderr
            .contains("undoing run: flag, drain (in this order)"),
        "{}",
        out.stderr
    );
    let id = sb.only_run();
    let show = sb.show(&id);
    assert_eq!(show["undos"][0]["scope"], "run");
    assert_eq!(show["undos"][0]["nodes"][0], "flag");
    assert_eq!(show["undos"][0]["skipped"], false);
    let undo = node(&show, "drain.undo");
    assert_eq!(undo["undoes"], "drain");
    assert_eq!(undo["status"], "succeeded");
    let text = sb.run(&["show", &id]).assert_code(0).stdout.clone();
    assert!(text.contains("undid run: flag, drain"), "{text}");
    assert!(text.contains("undoes drain"), "{text}");
    let report = sb.run(&["report", &id]).assert_code(0).stdout.clone();
    assert!(report.contains("`drain.undo` (undoes `drain`)"), "{report}");
    assert!(report.contains("**undoing** `run`"), "{report}");
    let json = sb
        .run(&["report", &id, "--format", "json"])
        .assert_code(0)
        .json();
    let nodes = json["nodes"].as_array().unwrap();
    let undo = nodes.iter().find(|n| n["node"] == "flag.undo").unwrap();
    assert_eq!(undo["undoes"], "flag");
    assert_eq!(undo["kind"], "shell");
}

#[test]
fn undo_is_skipped_with_no_undo_and_the_run_says_so() {
    let sb = Sandbox::new();
    sb.plan("undone", UNDONE);
    let out = sb.run(&["run", "undone", "--reason", "test", "--no-undo"]);
    out.assert_code(1);
    assert!(sb.exists("drained") && sb.exists("flagged"));
    assert!(
        out.stderr
            .contains("not undoing run (--no-undo): flag, drain"),
        "{}",
        out.stderr
    );
    let id = sb.only_run();
    let show = sb.show(&id);
    assert_eq!(show["undos"][0]["skipped"], true);
    let text = sb.run(&["show", &id]).assert_code(0).stdout.clone();
    assert!(
        text.contains("did not undo run (--no-undo): flag, drain"),
        "{text}"
    );
}

#[test]
fn undo_that_fails_is_reported_and_the_other_undos_still_run() {
    let sb = Sandbox::new();
    sb.plan(
        "undone",
        &UNDONE.replace("rm flagged", "echo cannot unflag >&2; exit 3"),
    );
    let out = sb.run(&["run", "undone", "--reason", "test"]);
    out.assert_code(1);
    assert!(
        sb.exists("undrained"),
        "drain was undone after flag's undo failed"
    );
    assert!(
        out.stderr
            .contains("flag.undo FAILED: undo of flag failed: "),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("(the other undos go on; the run ends failed)"),
        "{}",
        out.stderr
    );
    let id = sb.only_run();
    let show = sb.show(&id);
    assert_eq!(node(&show, "flag.undo")["status"], "failed");
    assert_eq!(node(&show, "drain.undo")["status"], "succeeded");
}

const MARKED: &str = r#"version: 1
name: marked
confirm: GO
steps:
  - id: stop
    ssh:
      host: web-1
      user: deploy
      run: systemctl stop app
      sudo: true
    undo:
      ssh:
        run: systemctl start app
  - id: drop
    sql:
      url: postgres://db/app
      statements:
        - ALTER TABLE t DROP COLUMN c
    irreversible: true
"#;

#[test]
fn irreversible_and_undo_markers_in_the_dry_run_and_graph() {
    let sb = Sandbox::new();
    std::fs::write(sb.path().join("plans/marked.yaml"), MARKED).unwrap();
    let text = sb.run(&["plan", "marked"]).assert_code(0).stdout.clone();
    insta::assert_snapshot!("undo_dry_run_text", text);
    let json = sb
        .run(&["plan", "marked", "--format", "json"])
        .assert_code(0)
        .json();
    let nodes: Vec<&Value> = json["phases"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l.as_array().unwrap())
        .collect();
    let stop = nodes.iter().find(|n| n["name"] == "stop").unwrap();
    assert_eq!(stop["undo"]["kind"], "ssh");
    assert_eq!(stop["undo"]["body"][0], "$ systemctl start app");
    assert!(stop.get("irreversible").is_none());
    let drop = nodes.iter().find(|n| n["name"] == "drop").unwrap();
    assert_eq!(drop["irreversible"], true);
    assert!(drop.get("undo").is_none());
    let graph = sb.run(&["graph", "marked"]).assert_code(0).stdout.clone();
    insta::assert_snapshot!("undo_graph_mermaid", graph);
    assert!(graph.contains("drop (sql) ⚠ irreversible"), "{graph}");
    assert!(graph.contains("stop (ssh) ↺ undo"), "{graph}");
}

/// The journal-level rule, with the real binary: what was undone is not done any more, so
/// `resume` runs it again (and undoes nothing that succeeded only before).
#[test]
fn undo_then_resume_runs_the_undone_steps_again() {
    let sb = Sandbox::new();
    sb.plan(
        "undone",
        &UNDONE.replace("run: \"exit 1\"", "run: \"test -f fixed\""),
    );
    sb.run(&["run", "undone", "--reason", "test"])
        .assert_code(1);
    assert!(!sb.exists("drained") && !sb.exists("flagged"));
    let id = sb.only_run();
    std::fs::write(sb.path().join("fixed"), "").unwrap();
    let out = sb.run(&["resume", &id]);
    out.assert_code(0);
    assert!(
        sb.exists("drained") && sb.exists("flagged"),
        "{}",
        out.stderr
    );
    let show = sb.show(&id);
    assert_eq!(show["status"], "succeeded");
    assert_eq!(node(&show, "drain")["status"], "succeeded");
    assert_eq!(node(&show, "drain")["attempts"], 2);
    // The undos ran once, in the first run.
    assert_eq!(node(&show, "drain.undo")["attempts"], 1);
}
