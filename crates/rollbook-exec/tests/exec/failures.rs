//! Failures: `max_failures`, `on_failure: continue` (tolerated failures, `run.tolerated`), the
//! `on_failure` and `finally` phases.

use rollbook_exec::event::{NodeStatus, RunStatus};

use crate::*;

/// A rollout of `items` (one `work ITEM` step per instance) with `concurrency` and
/// `max_failures`, a dependant, an `on_failure` page and a `finally` notification.
fn rollout(items: &[&str], concurrency: u64, max_failures: u64) -> CompiledPlan {
    compile(&format!(
        r#"
version: 1
name: rollout
steps:
  - id: roll
    for_each: [{}]
    concurrency: {concurrency}
    max_failures: {max_failures}
    shell: {{ run: "work {{{{ item }}}}" }}
  - id: after
    needs: [roll]
    shell: {{ run: "after" }}
on_failure:
  - id: page
    shell: {{ run: "page" }}
finally:
  - id: notify
    shell: {{ run: "notify {{{{ run.status }}}}" }}
"#,
        items.join(", ")
    ))
}

#[tokio::test(start_paused = true)]
async fn max_failures_zero_stops_the_rollout_at_the_first_failed_instance() {
    let plan = compile(
        r#"
version: 1
name: rollout
steps:
  - id: roll
    for_each: [h1, h2, h3, h4, h5, h6]
    concurrency: 2
    max_failures: 0
    steps:
      - id: stop
        shell: { run: "stop {{ item }}" }
      - id: start
        needs: [stop]
        shell: { run: "start {{ item }}" }
  - id: after
    needs: [roll]
    shell: { run: "after" }
on_failure:
  - id: page
    shell: { run: "page" }
finally:
  - id: notify
    shell: { run: "notify {{ run.status }}" }
"#,
    );
    let s = ScriptedRunner::new()
        .on("stop", Behaviour::ok().lasting(secs(1)))
        .on("start", Behaviour::ok().lasting(secs(5)))
        .on("stop h2", Behaviour::fail("no backup").lasting(secs(2)));
    let (status, journal) = run_scripted(&plan, &s, 64).await;
    let ev = &journal.events;
    assert_eq!(status, RunStatus::Failed);

    // h2 fails at t=2 while h1's `start` (t=1..6) is in flight: no new instance starts
    // (h3 would have taken h2's slot), h1 finishes, h2's `start` never runs.
    assert_eq!(
        s.commands(),
        ["stop h1", "stop h2", "start h1", "page", "notify failed"]
    );
    assert_eq!(
        s.ended("start h1"),
        (secs(6), false),
        "in-flight instance finishes"
    );
    assert_eq!(
        status_of(ev, "steps", "roll[h1].start"),
        NodeStatus::Succeeded
    );
    assert_eq!(status_of(ev, "steps", "roll[h2].stop"), NodeStatus::Failed);
    assert_ne!(
        finished_of(ev, "steps", "roll[h2].start")
            .first()
            .map(|f| f.0),
        Some(NodeStatus::Succeeded)
    );
    // The group's dependant does not run; on_failure runs after the main graph is over.
    assert!(!s.ran("after"));
    assert!(s.start_seq("page") > s.end_seq("start h1"));
    assert_eq!(status_of(ev, "on_failure", "page"), NodeStatus::Succeeded);
    assert_eq!(phases_started(ev), ["steps", "on_failure", "finally"]);
}

#[tokio::test(start_paused = true)]
async fn max_failures_one_tolerates_a_failed_instance() {
    let plan = rollout(&["h1", "h2", "h3", "h4"], 1, 1);
    let s = ScriptedRunner::new()
        .on("work", Behaviour::ok().lasting(secs(1)))
        .on("work h2", Behaviour::fail("boom").lasting(secs(1)));
    let (status, journal) = run_scripted(&plan, &s, 64).await;
    // The other instances and the group's dependant run ...
    for cmd in ["work h1", "work h2", "work h3", "work h4", "after"] {
        assert!(s.ran(cmd), "{cmd} did not run: {:?}", s.commands());
    }
    assert!(s.start_seq("after") > s.end_seq("work h4"));
    assert_eq!(
        status_of(&journal.events, "steps", "roll[h2]"),
        NodeStatus::Failed
    );
    assert_eq!(
        status_of(&journal.events, "steps", "after"),
        NodeStatus::Succeeded
    );
    // ... and a failure within `max_failures` is tolerated: the run succeeds, `finally`
    // sees it succeeded, and the end of the journal names the failure.
    assert_eq!(status, RunStatus::Succeeded);
    assert!(s.ran("notify succeeded"), "{:?}", s.commands());
    assert_eq!(tolerated_at_end(&journal.events), ["steps/roll[h2]: boom"]);
}

#[tokio::test(start_paused = true)]
async fn a_tolerated_rollout_failure_does_not_trigger_on_failure() {
    let plan = rollout(&["h1", "h2", "h3"], 1, 1);
    let s = ScriptedRunner::new().on("work h2", Behaviour::fail("boom"));
    let (status, journal) = run_scripted(&plan, &s, 64).await;
    assert_eq!(status, RunStatus::Succeeded);
    assert!(s.ran("after"));
    let mut problems = Vec::new();
    if s.ran("page") {
        problems.push(format!("on_failure ran: {:?}", s.commands()));
    }
    let phases = phases_started(&journal.events);
    if phases != ["steps", "finally"] {
        problems.push(format!("phases: {phases:?}"));
    }
    let (st, _, tolerated) = finish_of(&journal.events, "steps", "roll[h2]");
    assert_eq!(st, NodeStatus::Failed);
    if !tolerated {
        problems.push("roll[h2] is journaled with tolerated: false".into());
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test(start_paused = true)]
async fn max_failures_one_stops_new_instances_at_the_second_failure() {
    let plan = rollout(&["h1", "h2", "h3", "h4", "h5", "h6"], 1, 1);
    let s = ScriptedRunner::new()
        .on("work", Behaviour::ok().lasting(secs(1)))
        .on("work h2", Behaviour::fail("boom").lasting(secs(1)))
        .on("work h4", Behaviour::fail("boom").lasting(secs(1)));
    let (status, journal) = run_scripted(&plan, &s, 64).await;
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(
        s.commands(),
        [
            "work h1",
            "work h2",
            "work h3",
            "work h4",
            "page",
            "notify failed"
        ]
    );
    assert!(!s.ran("after"));
    assert_eq!(
        status_of(&journal.events, "steps", "roll[h4]"),
        NodeStatus::Failed
    );
    // The first failure was tolerated when it happened, and is still reported as such; the
    // second stopped the run.
    assert_eq!(tolerated_at_end(&journal.events), ["steps/roll[h2]: boom"]);
    assert!(!finish_of(&journal.events, "steps", "roll[h4]").2);
}

#[tokio::test(start_paused = true)]
async fn on_failure_continue_lets_dependants_run_and_the_run_succeeds() {
    let plan = compile(
        r#"
version: 1
name: cont
steps:
  - id: check
    on_failure: continue
    shell: { run: "check" }
  - id: after
    needs: [check]
    shell: { run: "after" }
on_failure:
  - id: page
    shell: { run: "page" }
finally:
  - id: notify
    shell: { run: "echo {{ run.status }}" }
"#,
    );
    let s = ScriptedRunner::new().on("check", Behaviour::fail("not healthy").lasting(secs(1)));
    let (status, journal) = run_scripted(&plan, &s, 64).await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(s.commands(), ["check", "after", "echo succeeded"]);
    assert!(s.start_seq("after") > s.end_seq("check"));
    let (st, message, tolerated) = finish_of(&journal.events, "steps", "check");
    assert_eq!(st, NodeStatus::Failed);
    assert!(tolerated);
    assert_eq!(message.as_deref(), Some("not healthy"));
    assert!(!s.ran("page"), "on_failure must not run");
    assert_eq!(phases_started(&journal.events), ["steps", "finally"]);
    assert_eq!(
        tolerated_at_end(&journal.events),
        ["steps/check: not healthy"]
    );
}

/// `finally` steps that run only when `run.tolerated` (jq `$run.tolerated`) says what it
/// should: each one's command is its name, so the commands that ran are the checks that held.
const TOLERATED_CHECKS: &str = r#"
finally:
  - id: listed
    when: '$run.tolerated == [{"phase": "steps", "node": "notice", "message": "timed out"}, {"phase": "steps", "node": "roll[h2]", "message": "boom"}]'
    shell: { run: "listed" }
  - id: succeeded
    when: '$run.status == "succeeded"'
    shell: { run: "succeeded" }
  - id: empty
    when: '$run.tolerated == []'
    shell: { run: "empty" }
"#;

#[tokio::test(start_paused = true)]
async fn finally_reads_the_tolerated_failures_in_run_tolerated() {
    let plan = compile(&format!(
        r#"
version: 1
name: tolerated
steps:
  - id: notice
    on_failure: continue
    shell: {{ run: "notice" }}
  - id: roll
    needs: [notice]
    for_each: [h1, h2, h3]
    concurrency: 1
    max_failures: 1
    shell: {{ run: "work {{{{ item }}}}" }}
  - id: read
    needs: [roll]
    when: '$run.tolerated == []'
    shell: {{ run: "read" }}
on_failure:
  - id: page
    shell: {{ run: "page" }}
{TOLERATED_CHECKS}"#
    ));
    let s = ScriptedRunner::new()
        .on("notice", Behaviour::fail("timed out"))
        .on("work h2", Behaviour::fail("boom"));
    let (status, journal) = run_scripted(&plan, &s, 64).await;
    assert_eq!(status, RunStatus::Succeeded, "{:#?}", journal.events);
    assert_eq!(
        s.commands(),
        [
            "notice",
            "work h1",
            "work h2",
            "work h3",
            // The main graph's own steps see an empty list.
            "read",
            "listed",
            "succeeded"
        ]
    );
    assert_eq!(phases_started(&journal.events), ["steps", "finally"]);
}

#[tokio::test(start_paused = true)]
async fn a_run_without_failures_has_an_empty_run_tolerated() {
    let plan = compile(&format!(
        r#"
version: 1
name: clean
steps:
  - id: notice
    on_failure: continue
    shell: {{ run: "notice" }}
{TOLERATED_CHECKS}"#
    ));
    let s = ScriptedRunner::new();
    let (status, journal) = run_scripted(&plan, &s, 64).await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(s.commands(), ["notice", "succeeded", "empty"]);
    assert!(
        !serde_json::to_string(journal.events.last().unwrap())
            .unwrap()
            .contains("tolerated"),
        "run_finished without tolerated failures is written as before"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_that_stops_the_run_still_fails_it_and_lists_what_was_tolerated_before() {
    let plan = compile(
        r#"
version: 1
name: mixed
steps:
  - id: notice
    on_failure: continue
    shell: { run: "notice" }
  - id: restore
    needs: [notice]
    shell: { run: "restore" }
on_failure:
  - id: page
    when: '$run.tolerated | map(.node) == ["notice"]'
    shell: { run: "page" }
finally:
  - id: notify
    shell: { run: "notify {{ run.status }}" }
"#,
    );
    let s = ScriptedRunner::new()
        .on("notice", Behaviour::fail("timed out"))
        .on("restore", Behaviour::fail("broken"));
    let (status, journal) = run_scripted(&plan, &s, 64).await;
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(s.commands(), ["notice", "restore", "page", "notify failed"]);
    assert_eq!(
        tolerated_at_end(&journal.events),
        ["steps/notice: timed out"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_tolerated_failure_in_finally_does_not_fail_the_run() {
    let plan = compile(
        r#"
version: 1
name: fin-cont
steps:
  - id: restore
    shell: { run: "restore" }
finally:
  - id: notice
    on_failure: continue
    shell: { run: "notice" }
  - id: cleanup
    shell: { run: "cleanup" }
"#,
    );
    let s = ScriptedRunner::new().on("notice", Behaviour::fail("timed out"));
    let (status, journal) = run_scripted(&plan, &s, 64).await;
    assert_eq!(status, RunStatus::Succeeded);
    assert!(s.ran("cleanup"));
    assert_eq!(
        tolerated_at_end(&journal.events),
        ["finally/notice: timed out"]
    );
}

#[tokio::test(start_paused = true)]
async fn on_failure_continue_on_a_for_each_step_keeps_the_rollout_going() {
    let plan = compile(
        r#"
version: 1
name: cont-each
steps:
  - id: roll
    for_each: [h1, h2, h3]
    concurrency: 1
    on_failure: continue
    shell: { run: "work {{ item }}" }
  - id: after
    needs: [roll]
    shell: { run: "after" }
on_failure:
  - id: page
    shell: { run: "page" }
"#,
    );
    let s = ScriptedRunner::new().on("work h1", Behaviour::fail("boom"));
    let (status, _) = run_scripted(&plan, &s, 64).await;
    assert_eq!(s.commands(), ["work h1", "work h2", "work h3", "after"]);
    assert_eq!(status, RunStatus::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn on_failure_continue_on_a_for_each_group_keeps_the_rollout_going() {
    let plan = compile(
        r#"
version: 1
name: cont-group
steps:
  - id: roll
    for_each: [h1, h2, h3]
    concurrency: 1
    on_failure: continue
    steps:
      - id: work
        shell: { run: "work {{ item }}" }
      - id: verify
        needs: [work]
        shell: { run: "verify {{ item }}" }
  - id: after
    needs: [roll]
    shell: { run: "after" }
on_failure:
  - id: page
    shell: { run: "page" }
"#,
    );
    let s = ScriptedRunner::new().on("work h1", Behaviour::fail("boom"));
    let (status, journal) = run_scripted(&plan, &s, 64).await;
    // docs/plan-format.md: "With `on_failure: continue` on the same step, failed instances
    // are recorded, do not count toward `max_failures`, and the other instances go on."
    // (Whether the rest of the failed instance runs is not pinned down here: the group's
    // `on_failure` is passed to its steps, so today it does.)
    for cmd in [
        "work h1",
        "work h2",
        "verify h2",
        "work h3",
        "verify h3",
        "after",
    ] {
        assert!(s.ran(cmd), "{cmd} did not run: {:?}", s.commands());
    }
    assert!(s.start_seq("work h2") > s.end_seq("work h1"));
    assert!(s.start_seq("after") > s.end_seq("verify h3"));
    let (st, _, tolerated) = finish_of(&journal.events, "steps", "roll[h1].work");
    assert_eq!(st, NodeStatus::Failed);
    assert!(tolerated);
    assert_eq!(status, RunStatus::Succeeded);
    assert!(!s.ran("page"), "on_failure must not run");
}

#[tokio::test(start_paused = true)]
async fn finally_runs_after_a_failed_main_step() {
    let plan = compile(
        r#"
version: 1
name: fin
steps:
  - id: a
    shell: { run: "a" }
  - id: b
    needs: [a]
    shell: { run: "b" }
on_failure:
  - id: page
    shell: { run: "page {{ run.status }}" }
finally:
  - id: cleanup
    shell: { run: "cleanup" }
  - id: notify
    needs: [cleanup]
    shell: { run: "notify {{ run.status }}" }
"#,
    );
    let s = ScriptedRunner::new().on("a", Behaviour::fail("broken").lasting(secs(3)));
    let (status, journal) = run_scripted(&plan, &s, 64).await;
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(
        s.commands(),
        ["a", "page failed", "cleanup", "notify failed"]
    );
    let (st, message, _) = finish_of(&journal.events, "steps", "a");
    assert_eq!(st, NodeStatus::Failed);
    assert_eq!(message.as_deref(), Some("broken"));
    assert_eq!(
        status_of(&journal.events, "finally", "notify"),
        NodeStatus::Succeeded
    );
}
