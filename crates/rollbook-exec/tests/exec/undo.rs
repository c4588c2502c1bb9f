//! Undo in the scope that failed (a `for_each` instance, the run), `--no-undo`, a failing
//! undo, a crash during undo and the resume after it; the confirmation before an
//! irreversible step.

use std::sync::atomic::{AtomicUsize, Ordering};

use rollbook_exec::event::{NodeStatus, RunStatus};
use rollbook_exec::executor::Asker;
use rollbook_exec::resume::replay;
use rollbook_exec::runners::{Answer, Prompter};

use crate::*;

/// A rolling restart whose steps can be undone (`note` cannot), and a step after it.
const ROLLING: &str = r#"
version: 1
name: rolling
steps:
  - id: roll
    for_each: [h1, h2, h3]
    concurrency: 1
    max_failures: 1
    steps:
      - id: stop
        shell: { run: "stop {{ item }}" }
        undo: { shell: { run: "unstop {{ item }}" } }
      - id: swap
        shell: { run: "swap {{ item }}" }
        capture: { old: '.json.old' }
        undo: { shell: { run: "unswap {{ item }} {{ steps.swap.outputs.old }}" } }
      - id: note
        shell: { run: "note {{ item }}" }
      - id: start
        shell: { run: "start {{ item }}" }
        undo: { shell: { run: "unstart {{ item }}" } }
  - id: after
    shell: { run: "after" }
"#;

fn rolling_runner() -> ScriptedRunner {
    ScriptedRunner::new()
        .on(
            "swap",
            Behaviour::result(json!({ "exit_code": 0, "json": { "old": "v1" } })),
        )
        .on("start h2", Behaviour::fail("h2 did not come back"))
}

/// The commands of undos (`un...`), in the order they started.
fn undos(s: &ScriptedRunner) -> Vec<String> {
    s.commands()
        .into_iter()
        .filter(|c| c.starts_with("un"))
        .collect()
}

/// The `undoing` entries of a journal: (scope, nodes, skipped).
fn undoing(events: &[Event]) -> Vec<(String, Vec<String>, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Undoing {
                scope,
                nodes,
                skipped,
                ..
            } => Some((scope.clone(), nodes.clone(), *skipped)),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_failed_instance_undoes_only_its_own_succeeded_steps_in_reverse_order() {
    let plan = compile(ROLLING);
    let s = rolling_runner();
    let (status, journal) = run_scripted(&plan, &s, 8).await;
    // One failed instance within `max_failures`: tolerated, the run goes on.
    assert_eq!(status, RunStatus::Succeeded);
    // h2's swap, then its stop (reverse completion; `note` has no undo, `start` failed),
    // with the swap's own output; h1 and h3 completed and are not undone.
    assert_eq!(undos(&s), ["unswap h2 v1", "unstop h2"]);
    assert!(s.start_seq("unswap h2 v1") > s.end_seq("start h2"));
    assert!(s.start_seq("unstop h2") > s.end_seq("unswap h2 v1"));
    assert!(s.ran("start h3") && s.ran("after"));
    let events = &journal.events;
    assert_eq!(
        undoing(events),
        [(
            "roll[h2]".to_string(),
            vec!["roll[h2].swap".to_string(), "roll[h2].stop".to_string()],
            false
        )]
    );
    assert_eq!(
        status_of(events, "steps", "roll[h2].swap.undo"),
        NodeStatus::Succeeded
    );
    assert_eq!(
        status_of(events, "steps", "roll[h2].stop.undo"),
        NodeStatus::Succeeded
    );
    // The history says which node each undo undid.
    let history = rollbook_exec::RunHistory::fold(events);
    let undo = history
        .node(&NodeKey::new(
            rollbook_plan::compile::PhaseKind::Main,
            "roll[h2].stop.undo",
        ))
        .expect("the undo is a node");
    assert_eq!(undo.undoes.as_deref(), Some("roll[h2].stop"));
    assert_eq!(history.undos.len(), 1);
}

/// Top-level steps with undos, a rollout, and a step that fails after them.
const HALTING: &str = r#"
version: 1
name: halting
steps:
  - id: drain
    shell: { run: "drain" }
    undo: { shell: { run: "undrain" } }
  - id: flag
    shell: { run: "flag" }
    undo: { shell: { run: "unflag" } }
  - id: roll
    for_each: [h1, h2]
    steps:
      - id: stop
        shell: { run: "stop {{ item }}" }
        undo: { shell: { run: "unstop {{ item }}" } }
      - id: start
        shell: { run: "start {{ item }}" }
  - id: migrate
    shell: { run: "migrate" }
on_failure:
  - id: page
    shell: { run: "page" }
finally:
  - id: notify
    shell: { run: "notify {{ run.status }}" }
"#;

#[tokio::test(start_paused = true)]
async fn a_halted_run_undoes_its_top_level_steps_in_reverse_before_on_failure() {
    let plan = compile(HALTING);
    let s = ScriptedRunner::new().on("migrate", Behaviour::fail("migration broke"));
    let (status, journal) = run_scripted(&plan, &s, 8).await;
    assert_eq!(status, RunStatus::Failed);
    // The rollout completed: its instances are not undone. The top-level steps are, last
    // first, before `on_failure`.
    assert_eq!(undos(&s), ["unflag", "undrain"]);
    assert!(s.start_seq("page") > s.end_seq("undrain"));
    assert_eq!(
        undoing(&journal.events),
        [(
            "run".to_string(),
            vec!["flag".to_string(), "drain".to_string()],
            false
        )]
    );
    assert_eq!(s.commands().last().unwrap(), "notify failed");
}

#[tokio::test(start_paused = true)]
async fn a_halt_inside_a_rollout_undoes_the_instance_then_the_run() {
    let plan = compile(HALTING);
    let s = ScriptedRunner::new().on("start h1", Behaviour::fail("h1 did not come back"));
    let (status, journal) = run_scripted(&plan, &s, 8).await;
    assert_eq!(status, RunStatus::Failed);
    // h1 failed (max_failures 0): its stop is undone, then the run's steps; h2's instance
    // ran alongside and completed, so it stays.
    let order = undos(&s);
    assert_eq!(order, ["unstop h1", "unflag", "undrain"]);
    assert!(!s.ran("unstop h2"));
    let scopes: Vec<String> = undoing(&journal.events)
        .into_iter()
        .map(|(scope, ..)| scope)
        .collect();
    assert_eq!(scopes, ["roll[h1]", "run"]);
}

#[tokio::test(start_paused = true)]
async fn no_undo_runs_no_undo_and_journals_what_it_skipped() {
    let plan = compile(HALTING);
    let s = ScriptedRunner::new().on("migrate", Behaviour::fail("migration broke"));
    let mut journal = MemJournal::default();
    let setup = Setup {
        no_undo: true,
        ..Setup::default()
    };
    let status = execute(&plan, &runners(&s), setup, &mut journal).await;
    assert_eq!(status, RunStatus::Failed);
    assert!(undos(&s).is_empty(), "{:?}", s.commands());
    assert!(s.ran("page"));
    assert_eq!(
        undoing(&journal.events),
        [(
            "run".to_string(),
            vec!["flag".to_string(), "drain".to_string()],
            true
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_undo_lets_the_other_undos_run_and_fails_the_run() {
    let plan = compile(ROLLING);
    let s = rolling_runner().on("unswap", Behaviour::fail("no old binary"));
    let (status, journal) = run_scripted(&plan, &s, 8).await;
    // The instance's failure was tolerated; its failed undo is not.
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(undos(&s), ["unswap h2 v1", "unstop h2"]);
    let (st, message, tolerated) = finish_of(&journal.events, "steps", "roll[h2].swap.undo");
    assert_eq!(st, NodeStatus::Failed);
    assert_eq!(
        message.as_deref(),
        Some(
            "undo of roll[h2].swap failed: no old binary (the other undos go on; the run ends failed)"
        )
    );
    assert!(!tolerated);
    assert_eq!(
        status_of(&journal.events, "steps", "roll[h2].stop.undo"),
        NodeStatus::Succeeded
    );
}

#[tokio::test(start_paused = true)]
async fn an_undo_is_retried_as_its_step_even_in_a_halted_run() {
    let plan = compile(
        r#"
version: 1
name: retried
steps:
  - id: drain
    shell: { run: "drain" }
    retry: { attempts: 3, delay: 1s }
    undo: { shell: { run: "undrain" } }
  - id: migrate
    shell: { run: "migrate" }
"#,
    );
    let s = ScriptedRunner::new()
        .on("migrate", Behaviour::fail("migration broke"))
        .on("undrain", Behaviour::fails_then_ok(2));
    let (status, journal) = run_scripted(&plan, &s, 8).await;
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(s.attempts("undrain"), 3);
    assert_eq!(
        status_of(&journal.events, "steps", "drain.undo"),
        NodeStatus::Succeeded
    );
}

/// Three top-level steps with undos, then one that fails.
const THREE: &str = r#"
version: 1
name: three
steps:
  - id: a
    shell: { run: "a" }
    undo: { shell: { run: "undo-a" } }
  - id: b
    shell: { run: "b" }
    undo: { shell: { run: "undo-b" } }
  - id: c
    shell: { run: "c" }
    undo: { shell: { run: "undo-c" } }
  - id: d
    shell: { run: "d" }
"#;

/// The index of the `attempt_started` of `node`.
fn started_at(events: &[Event], node: &str) -> usize {
    events
        .iter()
        .position(|e| matches!(e, Event::AttemptStarted { node: n, .. } if n == node))
        .unwrap_or_else(|| panic!("{node} never started"))
}

#[tokio::test(start_paused = true)]
async fn a_crash_during_undo_resumes_without_undoing_twice_or_undoing_what_was_not_done() {
    let plan = compile(THREE);
    let s = ScriptedRunner::new().on("d", Behaviour::fail("d broke"));
    let (status, journal) = run_scripted(&plan, &s, 8).await;
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(undos(&s), ["undo-c", "undo-b", "undo-a"]);

    // A crash right after `b.undo` was journaled as started: `c` was undone, `b`'s undo has
    // an unknown outcome, `a`'s never started.
    let cut = started_at(&journal.events, "b.undo");
    let crashed = &journal.events[..=cut];
    let r = replay(crashed);
    let unknown: Vec<String> = r.unknown.iter().map(|k| k.node.clone()).collect();
    assert_eq!(unknown, ["b.undo"]);
    let mut done: Vec<&str> = r.prior.done.keys().map(|k| k.node.as_str()).collect();
    done.sort_unstable();
    // `c` was put back: not done any more. `a` and `b` still are. No undo counts as done.
    assert_eq!(done, ["a", "b"]);

    // Resumed, and `d` fails again: `c` runs again (it had been undone), then the undos run
    // for what is done now, last done first: `c` (its new success), then `b` (whose undo's
    // outcome was unknown) and `a`. Nothing is undone that did not succeed.
    let s2 = ScriptedRunner::new().on("d", Behaviour::fail("d broke again"));
    let mut again = MemJournal::default();
    let setup = Setup {
        prior: r.prior.clone(),
        resumed: Some(unknown.clone()),
        ..Setup::default()
    };
    let status = execute(&plan, &runners(&s2), setup, &mut again).await;
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(s2.commands(), ["c", "d", "undo-c", "undo-b", "undo-a"]);

    // Resumed once more from the whole journal, with `d` fixed: everything was undone, so
    // every step runs again, and nothing is undone.
    let mut all = crashed.to_vec();
    all.extend(again.events.iter().cloned());
    let r = replay(&all);
    assert!(r.prior.done.is_empty(), "{:?}", r.prior.done.keys());
    let s3 = ScriptedRunner::new();
    let mut third = MemJournal::default();
    let setup = Setup {
        prior: r.prior.clone(),
        resumed: Some(Vec::new()),
        ..Setup::default()
    };
    let status = execute(&plan, &runners(&s3), setup, &mut third).await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(s3.commands(), ["a", "b", "c", "d"]);
}

#[tokio::test(start_paused = true)]
async fn a_resume_after_the_undos_succeeded_runs_the_undone_steps_again() {
    let plan = compile(THREE);
    let s = ScriptedRunner::new().on("d", Behaviour::fail("d broke"));
    let (_, journal) = run_scripted(&plan, &s, 8).await;
    let r = replay(&journal.events);
    assert!(r.prior.done.is_empty(), "{:?}", r.prior.done.keys());
    assert!(r.unknown.is_empty());
}

// ---------------------------------------------------------------------------------------------
// The point of no return

/// Answers with `yes` (or not), counting the questions.
struct Scripted {
    yes: bool,
    asked: AtomicUsize,
    phrase: std::sync::Mutex<Vec<Option<String>>>,
}

impl Prompter for Scripted {
    fn ask<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, Result<Answer, String>> {
        Box::pin(async { Err("not a confirm step".into()) })
    }

    fn confirm_irreversible<'a>(
        &'a self,
        _node: &'a str,
        phrase: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Answer, String>> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.phrase.lock().unwrap().push(phrase.map(str::to_string));
        let yes = self.yes;
        Box::pin(async move {
            Ok(Answer {
                yes,
                by: "tester".into(),
            })
        })
    }
}

const POINT_OF_NO_RETURN: &str = r#"
version: 1
name: drop
confirm: DROP IT
steps:
  - id: backup
    shell: { run: "backup" }
  - id: drop
    shell: { run: "drop" }
    irreversible: true
  - id: drop-more
    shell: { run: "drop more" }
    irreversible: true
"#;

#[tokio::test(start_paused = true)]
async fn an_irreversible_step_asks_once_with_the_plans_phrase_and_journals_who_answered() {
    let plan = compile(POINT_OF_NO_RETURN);
    let s = ScriptedRunner::new();
    let asker = Arc::new(Scripted {
        yes: true,
        asked: AtomicUsize::new(0),
        phrase: Default::default(),
    });
    let mut journal = MemJournal::default();
    let setup = Setup {
        asker: Some(Asker(asker.clone())),
        ..Setup::default()
    };
    let status = execute(&plan, &runners(&s), setup, &mut journal).await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(s.commands(), ["backup", "drop", "drop more"]);
    assert_eq!(asker.asked.load(Ordering::SeqCst), 1);
    assert_eq!(*asker.phrase.lock().unwrap(), [Some("DROP IT".to_string())]);
    let confirmed: Vec<(String, String)> = journal
        .events
        .iter()
        .filter_map(|e| match e {
            Event::IrreversibleConfirmed {
                node, answered_by, ..
            } => Some((node.clone(), answered_by.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(confirmed, [("drop".to_string(), "tester".to_string())]);
    // Journaled before the step's attempt.
    let at = journal
        .events
        .iter()
        .position(|e| matches!(e, Event::IrreversibleConfirmed { .. }))
        .unwrap();
    assert!(at < started_at(&journal.events, "drop"));
}

#[tokio::test(start_paused = true)]
async fn an_irreversible_step_not_confirmed_cancels_the_run_before_it() {
    let plan = compile(POINT_OF_NO_RETURN);
    for asker in [
        None,
        Some(Asker(Arc::new(Scripted {
            yes: false,
            asked: AtomicUsize::new(0),
            phrase: Default::default(),
        }))),
    ] {
        let s = ScriptedRunner::new();
        let mut journal = MemJournal::default();
        let setup = Setup {
            asker,
            ..Setup::default()
        };
        let status = execute(&plan, &runners(&s), setup, &mut journal).await;
        assert_eq!(status, RunStatus::Cancelled);
        assert_eq!(s.commands(), ["backup"]);
        let (st, message, _) = finish_of(&journal.events, "steps", "drop");
        assert_eq!(st, NodeStatus::Cancelled);
        assert!(
            message.unwrap().contains("step drop is irreversible"),
            "says why"
        );
    }
}
