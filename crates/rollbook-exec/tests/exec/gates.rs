//! `until` gates: polled every `interval` until the condition holds or `deadline` passes.

use rollbook_exec::event::{Event, NodeStatus, RunStatus};
use serde_json::json;

use crate::*;

fn gate(deadline: &str) -> CompiledPlan {
    compile(&format!(
        r#"
version: 1
name: gate
steps:
  - id: drained
    shell: {{ run: "count" }}
    until: '.json.active_instances == 0'
    interval: 10s
    deadline: {deadline}
  - id: after
    needs: [drained]
    shell: {{ run: "after" }}
"#
    ))
}

/// `{"json": {"active_instances": N}}` for N = 3, 2, 1, 0 on successive attempts.
fn draining() -> ScriptedRunner {
    let replies = [3, 2, 1, 0]
        .into_iter()
        .map(|n| Reply::Ok(json!({ "json": { "active_instances": n } })))
        .collect();
    ScriptedRunner::new().on("count", Behaviour::replies(replies))
}

#[tokio::test(start_paused = true)]
async fn a_gate_polls_every_interval_until_its_condition_holds() {
    let s = draining();
    let (status, journal) = run_scripted(&gate("5m"), &s, 64).await;
    assert_eq!(status, RunStatus::Succeeded);
    let starts = s.starts("count");
    assert_eq!(starts.len(), 4);
    for (i, at) in starts.iter().enumerate() {
        assert_about(*at, secs(10 * i as u64), &format!("poll {}", i + 1));
    }
    let waits = journal
        .events
        .iter()
        .filter(|e| matches!(e, Event::GateWaiting { .. }))
        .count();
    assert_eq!(waits, 3);
    assert_eq!(
        status_of(&journal.events, "steps", "drained"),
        NodeStatus::Succeeded
    );
    assert!(s.start_seq("after") > s.end_seq("count"));
}

#[tokio::test(start_paused = true)]
async fn a_gate_fails_when_its_deadline_passes() {
    let s = draining();
    let (status, journal) = run_scripted(&gate("15s"), &s, 64).await;
    assert_eq!(status, RunStatus::Failed);
    let starts = s.starts("count");
    // At 0s and 10s, and a last look at the deadline itself (15s): 3, 2, 1 instances.
    assert_eq!(starts.len(), 3, "{starts:?}");
    assert_about(starts[2], secs(15), "the last poll, at the deadline");
    let (st, message, _) = finish_of(&journal.events, "steps", "drained");
    assert_eq!(st, NodeStatus::Failed);
    let message = message.unwrap_or_default();
    assert!(message.contains("gate not met within 15s"), "{message}");
    assert!(!s.ran("after"));
}

#[tokio::test(start_paused = true)]
async fn the_last_poll_of_a_gate_is_at_its_deadline_when_the_interval_steps_past_it() {
    let s = draining();
    // Polls at 0s, 10s, 20s, then at 25s (not 30s): the fourth sees 0 instances, in time.
    let (status, _) = run_scripted(&gate("25s"), &s, 64).await;
    assert_eq!(status, RunStatus::Succeeded);
    let starts = s.starts("count");
    assert_eq!(starts.len(), 4, "{starts:?}");
    assert_about(starts[3], secs(25), "the last poll, at the deadline");
}
