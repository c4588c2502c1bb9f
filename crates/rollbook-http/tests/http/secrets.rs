//! A secret in a header reaches the server and nothing else: not the runner's output, not an
//! event, not a log line, not a failure message (even when the server echoes it back).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use rollbook_exec::NodeStatus;
use rollbook_exec::event::RunStatus;

use crate::{attempt, get as get_req, run_plan, serve};

const TOKEN: &str = "tok-9f3a61c2-never-print-me";

/// `/ok` records the Authorization header and answers 200; `/echo` answers 401 with the
/// header it got in the body, as careless servers do.
fn router(seen: &Arc<Mutex<Vec<String>>>) -> Router {
    let (a, b) = (seen.clone(), seen.clone());
    let auth = |h: &HeaderMap| {
        h.get("authorization")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    Router::new()
        .route(
            "/ok",
            get(move |h: HeaderMap| async move {
                a.lock().unwrap().push(auth(&h));
                "fine"
            }),
        )
        .route(
            "/echo",
            get(move |h: HeaderMap| async move {
                let got = auth(&h);
                b.lock().unwrap().push(got.clone());
                (StatusCode::UNAUTHORIZED, format!("bad credentials: {got}"))
            }),
        )
}

#[tokio::test]
async fn a_header_secret_reaches_the_server_and_appears_nowhere_else() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = serve(router(&seen)).await;
    let plan = r#"
version: 1
name: secret
params:
  base: { type: string, required: true }
secrets:
  token: { env: ROLLBOOK_TEST_TOKEN }
defaults:
  http:
    headers: { Authorization: "Bearer {{ secrets.token }}" }
steps:
  - id: call
    http: { url: "{{ params.base }}/ok?key={{ secrets.token }}" }
  - id: echo
    needs: [call]
    http: { url: "{{ params.base }}/echo" }
    retry: { attempts: 2, delay: 10ms }
"#;
    let base = format!("base=http://{}", server.addr);
    let ran = run_plan(plan, &[&base], &[("token", TOKEN)]).await;
    assert_eq!(ran.status, RunStatus::Failed);

    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(*seen.lock().unwrap(), [bearer.as_str(); 3]);

    let events = ran.journal.events_json();
    assert!(!events.contains(TOKEN), "a secret in the journal: {events}");
    for (_, node, _, line) in &ran.journal.logs {
        assert!(
            !line.contains(TOKEN),
            "a secret in the log of {node}: {line}"
        );
    }
    // The failure message is there, with the echoed secret masked.
    let (status, _, message) = ran.journal.finished("echo");
    assert_eq!(status, NodeStatus::Failed);
    assert_eq!(
        message.as_deref(),
        Some("expected status 2xx, got 401: bad credentials: Bearer ***")
    );
    // The query string secret was masked in the output line too.
    let call = ran.journal.log_of("call");
    assert_eq!(call.len(), 1);
    assert!(call[0].contains("/ok?key=*** -> 200"), "{call:?}");
}

#[tokio::test]
async fn the_runner_never_writes_header_values() {
    // The runner alone, without the executor's redactor: its own lines must not carry a
    // header value in the first place.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = serve(router(&seen)).await;
    let mut req = get_req(&server.url("/ok"));
    req.headers = vec![("Authorization".into(), format!("Bearer {TOKEN}"))];
    let tried = attempt(req.clone()).await;
    tried.assert_ok();
    assert!(!tried.text().contains(TOKEN), "{}", tried.text());

    // A header value a request cannot carry is reported by name only.
    req.headers = vec![("X-Token".into(), format!("{TOKEN}\nInjected: yes"))];
    let tried = attempt(req).await;
    let message = tried.message();
    assert!(message.starts_with("header `x-token`"), "{message}");
    assert!(!message.contains(TOKEN) && !tried.text().contains(TOKEN));
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the bad request was not sent"
    );
}
