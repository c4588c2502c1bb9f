//! Retries of a failing health check, and attempts that take too long: the executor's
//! timeout cancels the attempt and the runner lets go at once; a notice that times out on a
//! step that may fail (`on_failure: continue`) does not fail the run.
//!
//! The slow endpoint never answers, so only the timeout or the cancel under test can end an
//! attempt; a runner that kept waiting would hold the test until `LET_GO` (a generous bound
//! that fails the test with a message). No test asserts how long something took.

use std::time::Duration;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use rollbook_exec::NodeStatus;
use rollbook_exec::event::Event;
use rollbook_exec::event::RunStatus;
use tokio_util::sync::CancellationToken;

use crate::{Hits, attempt_with, get as get_req, run_plan, serve};

/// `/health` answers 503 to the first `failures` requests, then 200 `healthy`.
fn flaky(failures: usize, hits: &Hits) -> Router {
    let hits = hits.clone();
    Router::new().route(
        "/health",
        get(move || {
            let hits = hits.clone();
            async move {
                if hits.hit() < failures {
                    (StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"warming up"}"#)
                } else {
                    (StatusCode::OK, "healthy")
                }
            }
        }),
    )
}

const RETRY_PLAN: &str = r#"
version: 1
name: health
params:
  base: { type: string, required: true }
steps:
  - id: health
    http:
      url: "{{ params.base }}/health"
      expect: { status: 200, body_contains: healthy }
    retry: { attempts: 5, delay: 100ms, backoff: exponential }
"#;

#[tokio::test]
async fn a_health_check_that_fails_three_times_succeeds_on_the_fourth_attempt() {
    let hits = Hits::default();
    let server = serve(flaky(3, &hits)).await;
    let arg = format!("base=http://{}", server.addr);
    let ran = run_plan(RETRY_PLAN, &[&arg], &[]).await;
    assert_eq!(
        ran.status,
        RunStatus::Succeeded,
        "{:#?}",
        ran.journal.events
    );
    assert_eq!(hits.get(), 4, "three failures and one success");
    let expected = Some(r#"expected status 200, got 503: {"error":"warming up"}"#.to_string());
    assert_eq!(
        ran.journal.attempt_messages("health"),
        [expected.clone(), expected.clone(), expected, None]
    );
    // Exponential backoff: 100 + 200 + 400 ms of waiting at least.
    assert!(
        ran.elapsed >= Duration::from_millis(700),
        "{:?}",
        ran.elapsed
    );
}

#[tokio::test]
async fn a_health_check_that_never_recovers_fails_after_every_attempt() {
    let hits = Hits::default();
    let server = serve(flaky(usize::MAX, &hits)).await;
    let arg = format!("base=http://{}", server.addr);
    let ran = run_plan(RETRY_PLAN, &[&arg], &[]).await;
    assert_eq!(ran.status, RunStatus::Failed);
    assert_eq!(hits.get(), 5);
    let (status, _, message) = ran.journal.finished("health");
    assert_eq!(status, NodeStatus::Failed);
    assert_eq!(
        message.as_deref(),
        Some(r#"expected status 200, got 503: {"error":"warming up"}"#)
    );
}

/// `/slow` never answers.
fn slow(hits: &Hits) -> Router {
    let hits = hits.clone();
    Router::new().route(
        "/slow",
        get(move || {
            let hits = hits.clone();
            async move {
                hits.hit();
                std::future::pending::<&'static str>().await
            }
        }),
    )
}

/// How long a cancelled or timed-out attempt may take to end before the test calls it stuck:
/// far more than letting go takes, on any machine.
const LET_GO: Duration = Duration::from_secs(60);

async fn ends<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(LET_GO, f)
        .await
        .unwrap_or_else(|_| panic!("{what} was still waiting for the response after {LET_GO:?}"))
}

#[tokio::test]
async fn a_slow_response_times_out_and_the_attempt_ends_promptly() {
    let hits = Hits::default();
    let server = serve(slow(&hits)).await;
    let arg = format!("base=http://{}", server.addr);
    let plan = r#"
version: 1
name: slow
params:
  base: { type: string, required: true }
steps:
  - id: slow
    http: { url: "{{ params.base }}/slow" }
    timeout: 300ms
"#;
    // The executor waits for the cancelled runner to return: a runner that kept waiting for
    // the response would hold the run for ever.
    let ran = ends("the timed-out run", run_plan(plan, &[&arg], &[])).await;
    assert_eq!(ran.status, RunStatus::Failed);
    assert_eq!(hits.get(), 1);
    let (_, _, message) = ran.journal.finished("slow");
    let message = message.unwrap();
    assert!(message.contains("timed out"), "{message}");
}

#[tokio::test]
async fn a_cancelled_attempt_returns_at_once_and_says_so() {
    let hits = Hits::default();
    let server = serve(slow(&hits)).await;
    let cancel = CancellationToken::new();
    // Cancelled once the request is at the server.
    let trigger = cancel.clone();
    let seen = hits.clone();
    tokio::spawn(async move {
        while seen.get() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        trigger.cancel();
    });
    let runner = rollbook_http::HttpRunner::new();
    let tried = ends(
        "the cancelled attempt",
        attempt_with(&runner, get_req(&server.url("/slow")), cancel),
    )
    .await;
    assert_eq!(tried.message(), "cancelled");
    assert_eq!(hits.get(), 1);
    assert!(
        tried.text().ends_with("/slow -> cancelled"),
        "{}",
        tried.text()
    );
}

/// `/slow` never answers (the notice); `/restore` answers 200; `/report` keeps the bodies
/// `finally` posts.
fn notice_and_report(hits: &Hits, reports: &Arc<Mutex<Vec<String>>>) -> Router {
    let reports = reports.clone();
    slow(hits)
        .route("/restore", post(|| async { "restored" }))
        .route(
            "/report",
            post(move |body: String| {
                let reports = reports.clone();
                async move {
                    reports.lock().unwrap().push(body);
                    "ok"
                }
            }),
        )
}

const NOTICE_PLAN: &str = r#"
version: 1
name: notice
params:
  base: { type: string, required: true }
steps:
  - id: notice
    http: { url: "{{ params.base }}/slow" }
    timeout: 300ms
    on_failure: continue
  - id: restore
    needs: [notice]
    http: { method: POST, url: "{{ params.base }}/restore", expect: { status: 200 } }
on_failure:
  - id: page
    http: { method: POST, url: "{{ params.base }}/report", json: { text: "page" } }
finally:
  - id: report
    http:
      method: POST
      url: "{{ params.base }}/report"
      json:
        status: "{{ run.status }}"
        tolerated: "{{#each run.tolerated}}{{ this.node }}: {{ this.message }}{{/each}}"
"#;

#[tokio::test]
async fn a_notice_that_times_out_on_a_continue_step_does_not_fail_the_run() {
    let hits = Hits::default();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let server = serve(notice_and_report(&hits, &reports)).await;
    let arg = format!("base=http://{}", server.addr);
    let ran = ends("the run", run_plan(NOTICE_PLAN, &[&arg], &[])).await;

    let (status, _, message) = ran.journal.finished("notice");
    assert_eq!(status, NodeStatus::Failed);
    let message = message.unwrap();
    assert!(message.contains("timed out"), "{message}");
    assert_eq!(hits.get(), 1);
    assert_eq!(ran.journal.finished("restore").0, NodeStatus::Succeeded);
    assert_eq!(
        ran.status,
        RunStatus::Succeeded,
        "{:#?}",
        ran.journal.events
    );
    match ran.journal.events.last() {
        Some(Event::RunFinished { tolerated, .. }) => {
            let nodes: Vec<&str> = tolerated.iter().map(|t| t.node.as_str()).collect();
            assert_eq!(nodes, ["notice"]);
        }
        other => panic!("the run did not end: {other:?}"),
    }
    // `on_failure` did not run; `finally` saw the run succeed and the notice in
    // `run.tolerated`.
    let reports = reports.lock().unwrap().clone();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report: serde_json::Value = serde_json::from_str(&reports[0]).unwrap();
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["tolerated"], format!("notice: {message}"));
}
