//! Requests written in plans, through the executor: bodies built from templates, and results
//! that `capture` reads.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use rollbook_exec::NodeStatus;
use rollbook_exec::event::RunStatus;
use serde_json::{Value, json};

use crate::{run_plan, serve};

/// What the server received: (content-type, body bytes).
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

fn recorder(received: &Received) -> Router {
    let received = received.clone();
    Router::new().route(
        "/notify",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let received = received.clone();
            async move {
                let ct = headers
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                received.lock().unwrap().push((ct, body.to_vec()));
                "ok"
            }
        }),
    )
}

#[tokio::test]
async fn a_json_body_from_templates_arrives_as_valid_json_with_the_exact_text() {
    let received = Received::default();
    let server = serve(recorder(&received)).await;
    let plan = r#"
version: 1
name: notify
params:
  base: { type: string, required: true }
  msg: { type: string, required: true }
  count: { type: int, default: 3 }
steps:
  - id: notify
    http:
      method: POST
      url: "{{ params.base }}/notify"
      json:
        text: "{{ params.msg }}"
        count: "{{ params.count }}"
        nested: { who: "run {{ run.id }}" }
"#;
    let msg = "rollback \"done\"\nsecond line\twith a tab, a backslash \\ and {braces}";
    let base = format!("base=http://{}", server.addr);
    let msg_arg = format!("msg={msg}");
    let ran = run_plan(plan, &[&base, &msg_arg], &[]).await;
    assert_eq!(
        ran.status,
        RunStatus::Succeeded,
        "{:#?}",
        ran.journal.events
    );
    let received = received.lock().unwrap();
    assert_eq!(received.len(), 1);
    let (ct, body) = &received[0];
    assert_eq!(ct, "application/json");
    let doc: Value = serde_json::from_slice(body).expect("valid JSON");
    assert_eq!(doc["text"], msg);
    assert_eq!(doc["count"], 3, "a lone expression keeps its type");
    assert_eq!(doc["nested"]["who"], "run 20260101-000000-test");
}

#[tokio::test]
async fn a_capture_of_json_from_a_text_body_is_null_not_a_panic() {
    let server = serve(Router::new().route("/text", get(|| async { "this is not JSON" }))).await;
    let plan = r#"
version: 1
name: capture
params:
  base: { type: string, required: true }
steps:
  - id: read
    http: { url: "{{ params.base }}/text" }
    capture:
      x: '.json.x'
      body: '.body'
  - id: after
    needs: [read]
    http: { url: "{{ params.base }}/text" }
    when: '$steps.read.outputs.x == null'
"#;
    let base = format!("base=http://{}", server.addr);
    let ran = run_plan(plan, &[&base], &[]).await;
    assert_eq!(
        ran.status,
        RunStatus::Succeeded,
        "{:#?}",
        ran.journal.events
    );
    let (status, outputs, _) = ran.journal.finished("read");
    assert_eq!(status, NodeStatus::Succeeded);
    assert_eq!(
        outputs,
        Some(json!({ "x": null, "body": "this is not JSON" }))
    );
    assert_eq!(ran.journal.finished("after").0, NodeStatus::Succeeded);
}

#[tokio::test]
async fn expect_jq_is_left_to_the_executor_which_has_the_run_context() {
    let server = serve(Router::new().route(
        "/nodes",
        get(|| async { axum::Json(json!([{ "hostname": "worker-1", "ready": false }])) }),
    ))
    .await;
    // `$item` exists only in the executor: a runner that evaluated `expect.jq` itself would
    // fail to compile or run it.
    let plan = r#"
version: 1
name: jq
params:
  base: { type: string, required: true }
steps:
  - id: ready
    for_each: [worker-1]
    http:
      url: "{{ params.base }}/nodes"
      expect:
        jq: '[.json[] | select(.hostname == $item) | .ready] | first'
"#;
    let base = format!("base=http://{}", server.addr);
    let ran = run_plan(plan, &[&base], &[]).await;
    assert_eq!(ran.status, RunStatus::Failed);
    let (_, _, message) = ran.journal.finished("ready[worker-1]");
    let message = message.unwrap();
    assert!(message.starts_with("expected `[.json[]"), "{message}");
    assert!(message.contains("status 200"), "{message}");
}

#[tokio::test]
async fn a_url_naming_an_inventory_host_connects_to_its_address_and_keeps_the_name() {
    let hosts = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = hosts.clone();
    let router = Router::new().route(
        "/health",
        get(move |headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                let host = headers.get("host").unwrap().to_str().unwrap().to_string();
                seen.lock().unwrap().push(host);
                "healthy"
            }
        }),
    );
    let server = serve(router).await;
    // `web-1` and `web-2` resolve nowhere but in the inventory, which puts them where the
    // test's server listens.
    let plan = r#"
version: 1
name: by-name
params:
  port: { type: int, required: true }
inventory:
  web:
    - { name: web-1, address: 127.0.0.1 }
    - { name: web-2, address: 127.0.0.1 }
steps:
  - id: healthy
    for_each: "{{ inventory.web }}"
    http:
      url: "http://{{ item }}:{{ params.port }}/health"
      expect: { status: 200, body_contains: healthy }
"#;
    let port = format!("port={}", server.addr.port());
    let ran = run_plan(plan, &[&port], &[]).await;
    assert_eq!(
        ran.status,
        RunStatus::Succeeded,
        "{:#?}",
        ran.journal.events
    );
    let mut seen = hosts.lock().unwrap().clone();
    seen.sort();
    let p = server.addr.port();
    assert_eq!(seen, [format!("web-1:{p}"), format!("web-2:{p}")]);
}
