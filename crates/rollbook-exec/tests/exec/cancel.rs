//! Stopping a run from outside: `stop` (the first Ctrl-C) and `abort` (the second).

use rollbook_exec::event::{Event, NodeStatus, RunStatus};
use rollbook_exec::executor::Control;

use crate::*;

const PLAN: &str = r#"
version: 1
name: cancel
steps:
  - id: a
    shell: { run: "a" }
  - id: b
    needs: []
    shell: { run: "b" }
  - id: c
    needs: [a]
    shell: { run: "c" }
on_failure:
  - id: page
    shell: { run: "page" }
finally:
  - id: cleanup
    shell: { run: "cleanup {{ run.status }}" }
"#;

fn scripted() -> ScriptedRunner {
    ScriptedRunner::new()
        .on("a", Behaviour::ok().lasting(secs(10)))
        .on("b", Behaviour::ok().lasting(secs(10)))
        .on("cleanup", Behaviour::ok().lasting(secs(1)))
}

/// Runs PLAN, calling `act` on the run's control after `after` (simulated).
async fn run_and(
    s: &ScriptedRunner,
    act: impl FnOnce(&Control) + Send + 'static,
    after: std::time::Duration,
) -> (RunStatus, MemJournal) {
    let plan = compile(PLAN);
    let control = Control::default();
    let handle = control.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        act(&handle);
    });
    let mut journal = MemJournal::default();
    let setup = Setup {
        control,
        ..Setup::default()
    };
    let status = execute(&plan, &runners(s), setup, &mut journal).await;
    (status, journal)
}

fn cancelling(events: &[Event]) -> Vec<bool> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Cancelling { hard, .. } => Some(*hard),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn stop_starts_nothing_new_lets_attempts_finish_and_runs_finally() {
    let s = scripted();
    let (status, journal) = run_and(&s, |c| c.stop.cancel(), secs(2)).await;
    assert_eq!(status, RunStatus::Cancelled);
    assert_eq!(s.ended("a"), (secs(10), false), "in-flight a finishes");
    assert_eq!(s.ended("b"), (secs(10), false), "in-flight b finishes");
    assert_eq!(
        status_of(&journal.events, "steps", "a"),
        NodeStatus::Succeeded
    );
    assert!(!s.ran("c"), "c must not start after stop");
    assert!(!s.ran("page"));
    assert!(s.ran("cleanup cancelled"), "{:?}", s.commands());
    assert!(s.start_seq("cleanup cancelled") > s.end_seq("a"));
    assert_eq!(cancelling(&journal.events), [false]);
}

#[tokio::test(start_paused = true)]
async fn abort_cancels_attempts_in_flight_and_still_runs_finally() {
    let s = scripted();
    let (status, journal) = run_and(&s, |c| c.abort.cancel(), secs(2)).await;
    assert_eq!(status, RunStatus::Cancelled);
    assert_eq!(s.ended("a"), (secs(2), true), "a is cancelled at once");
    assert_eq!(s.ended("b"), (secs(2), true), "b is cancelled at once");
    assert_eq!(
        status_of(&journal.events, "steps", "a"),
        NodeStatus::Cancelled
    );
    assert_eq!(
        status_of(&journal.events, "steps", "b"),
        NodeStatus::Cancelled
    );
    assert!(!s.ran("c"));
    assert!(!s.ran("page"));
    assert_eq!(s.ended("cleanup cancelled"), (secs(3), false));
    assert_eq!(
        status_of(&journal.events, "finally", "cleanup"),
        NodeStatus::Succeeded
    );
    assert_eq!(cancelling(&journal.events), [true]);
}

#[tokio::test(start_paused = true)]
async fn abort_after_stop_cancels_the_attempts_stop_let_run() {
    let s = scripted();
    let (status, journal) = run_and(
        &s,
        |c| {
            let c = c.clone();
            c.stop.cancel();
            tokio::spawn(async move {
                tokio::time::sleep(secs(3)).await;
                c.abort.cancel();
            });
        },
        secs(2),
    )
    .await;
    assert_eq!(status, RunStatus::Cancelled);
    assert_eq!(s.ended("a"), (secs(5), true));
    assert!(!s.ran("c"));
    assert!(s.ran("cleanup cancelled"));
    assert_eq!(cancelling(&journal.events), [false, true]);
}

#[tokio::test(start_paused = true)]
async fn stop_cancels_a_node_waiting_for_its_retry() {
    let plan = compile(
        r#"
version: 1
name: cancel-retry
steps:
  - id: flaky
    shell: { run: "flaky" }
    retry: { attempts: 5, delay: 10s }
  - id: long
    needs: []
    shell: { run: "long" }
finally:
  - id: cleanup
    shell: { run: "cleanup {{ run.status }}" }
"#,
    );
    let s = ScriptedRunner::new()
        .on("flaky", Behaviour::fail("nope").lasting(secs(1)))
        .on("long", Behaviour::ok().lasting(secs(8)));
    let control = Control::default();
    let handle = control.clone();
    tokio::spawn(async move {
        tokio::time::sleep(secs(3)).await;
        handle.stop.cancel();
    });
    let mut journal = MemJournal::default();
    let setup = Setup {
        control,
        ..Setup::default()
    };
    let status = execute(&plan, &runners(&s), setup, &mut journal).await;
    assert_eq!(status, RunStatus::Cancelled);
    // flaky failed at 1s and waits until 11s for attempt 2: the stop at 3s cancels it.
    assert_eq!(s.attempts("flaky"), 1);
    assert_eq!(
        status_of(&journal.events, "steps", "flaky"),
        NodeStatus::Cancelled
    );
    assert_eq!(s.ended("long"), (secs(8), false));
    assert!(s.ran("cleanup cancelled"));
}
