//! Retries (backoff, cap, jitter) and timeouts, on the paused clock.

use std::time::Duration;

use rollbook_exec::event::{Event, NodeStatus, RunStatus};

use crate::*;

fn one_step(retry: &str) -> CompiledPlan {
    compile(&format!(
        r#"
version: 1
name: retry
steps:
  - id: flaky
    shell: {{ run: "flaky" }}
    retry: {retry}
"#
    ))
}

/// Time between consecutive attempt starts.
fn gaps(starts: &[Duration]) -> Vec<Duration> {
    starts.windows(2).map(|w| w[1] - w[0]).collect()
}

fn scheduled_delays(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::RetryScheduled { delay_ms, .. } => Some(*delay_ms),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_doubles_the_delay_up_to_max_delay() {
    let plan = one_step("{ attempts: 4, delay: 2s, backoff: exponential, max_delay: 5s }");
    let s = ScriptedRunner::new().on("flaky", Behaviour::fails_then_ok(3));
    let (status, journal) = run_scripted(&plan, &s, 64).await;
    assert_eq!(status, RunStatus::Succeeded);
    let starts = s.starts("flaky");
    assert_eq!(starts.len(), 4);
    let expected = [secs(0), secs(2), secs(6), secs(11)];
    for (i, (got, want)) in starts.iter().zip(expected).enumerate() {
        assert_about(*got, want, &format!("attempt {} starts", i + 1));
    }
    assert_eq!(scheduled_delays(&journal.events), [2000, 4000, 5000]);
    assert_eq!(
        status_of(&journal.events, "steps", "flaky"),
        NodeStatus::Succeeded
    );
}

#[tokio::test(start_paused = true)]
async fn fixed_backoff_waits_the_same_delay_and_stops_after_the_last_attempt() {
    let plan = one_step("{ attempts: 4, delay: 3s, backoff: fixed }");
    let s = ScriptedRunner::new().on("flaky", Behaviour::fail("still broken").lasting(secs(1)));
    let (status, journal) = run_scripted(&plan, &s, 64).await;
    assert_eq!(status, RunStatus::Failed);
    let starts = s.starts("flaky");
    assert_eq!(starts.len(), 4, "attempts counts the first try");
    // Each attempt lasts 1s and is followed by a 3s wait.
    for (i, gap) in gaps(&starts).into_iter().enumerate() {
        assert_about(gap, secs(4), &format!("gap after attempt {}", i + 1));
    }
    assert_eq!(scheduled_delays(&journal.events), [3000, 3000, 3000]);
    let (st, message, _) = finish_of(&journal.events, "steps", "flaky");
    assert_eq!(st, NodeStatus::Failed);
    assert_eq!(message.as_deref(), Some("still broken"));
}

#[tokio::test(start_paused = true)]
async fn jitter_keeps_each_delay_between_half_and_all_of_the_nominal_one() {
    let plan =
        one_step("{ attempts: 6, delay: 2s, backoff: exponential, max_delay: 5s, jitter: true }");
    let s = ScriptedRunner::new().on("flaky", Behaviour::fail("nope"));
    let (status, journal) = run_scripted(&plan, &s, 64).await;
    assert_eq!(status, RunStatus::Failed);
    let starts = s.starts("flaky");
    assert_eq!(starts.len(), 6);
    let nominal = [secs(2), secs(4), secs(5), secs(5), secs(5)];
    let slack = Duration::from_millis(2);
    let mut shortened = 0;
    for (i, (gap, n)) in gaps(&starts).into_iter().zip(nominal).enumerate() {
        assert!(
            gap + slack >= n / 2 && gap <= n + slack,
            "delay before attempt {}: {gap:?} is not within [50%, 100%] of {n:?}",
            i + 2
        );
        if gap < n.mul_f64(0.99) {
            shortened += 1;
        }
    }
    assert!(shortened > 0, "jitter changed no delay");
    for (ms, n) in scheduled_delays(&journal.events).into_iter().zip(nominal) {
        let n = n.as_millis() as u64;
        assert!(
            ms >= n / 2 && ms <= n,
            "scheduled {ms}ms for a nominal {n}ms"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_fails_and_is_cancelled() {
    let plan = compile(
        r#"
version: 1
name: timeout
steps:
  - id: slow
    timeout: 5s
    shell: { run: "slow" }
  - id: after
    needs: [slow]
    shell: { run: "after" }
"#,
    );
    let s = ScriptedRunner::new().on("slow", Behaviour::ok().lasting(secs(60)));
    let (status, journal) = run_scripted(&plan, &s, 64).await;
    assert_eq!(status, RunStatus::Failed);
    let (at, cancelled) = s.ended("slow");
    assert!(cancelled, "the runner did not see its attempt cancelled");
    assert_about(at, secs(5), "the attempt is cancelled at its timeout");
    let (st, message, _) = finish_of(&journal.events, "steps", "slow");
    assert_eq!(st, NodeStatus::Failed);
    let message = message.unwrap_or_default();
    assert!(message.contains("timed out after 5s"), "{message}");
    assert!(!s.ran("after"));
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_is_retried() {
    let plan = compile(
        r#"
version: 1
name: timeout-retry
steps:
  - id: slow
    timeout: 5s
    retry: { attempts: 2, delay: 1s }
    shell: { run: "slow" }
"#,
    );
    let s = ScriptedRunner::new().on("slow", Behaviour::ok().lasting(secs(60)));
    let (status, _) = run_scripted(&plan, &s, 64).await;
    assert_eq!(status, RunStatus::Failed);
    let starts = s.starts("slow");
    assert_eq!(starts.len(), 2);
    assert_about(starts[1], secs(6), "second attempt after timeout + delay");
}
