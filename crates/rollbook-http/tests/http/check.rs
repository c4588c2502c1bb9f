//! `check()`, the preflight of `rollbook plan --check`: GET and HEAD are sent, anything else
//! only connects.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use rollbook_exec::runner::Runner;
use rollbook_http::HttpRunner;
use rollbook_plan::action::{Action, HttpBody};
use serde_json::json;

use crate::{get as get_req, serve};

/// Answers anything, recording each request's method and path: 401 without an
/// `Authorization` header on `/private`, else 200.
fn recorder(seen: &Arc<Mutex<Vec<String>>>) -> Router {
    let seen = seen.clone();
    Router::new().fallback(move |req: Request| {
        let seen = seen.clone();
        async move {
            seen.lock()
                .unwrap()
                .push(format!("{} {}", req.method(), req.uri().path()));
            if req.uri().path() == "/private" && !req.headers().contains_key("authorization") {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::OK
            }
        }
    })
}

#[tokio::test]
async fn check_sends_a_get_and_reports_the_status() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = serve(recorder(&seen)).await;
    let runner = HttpRunner::new();
    let got = runner
        .check(&Action::Http(get_req(&server.url("/health"))))
        .await;
    assert_eq!(got.as_deref(), Ok("reachable: 200"));

    let mut head = get_req(&server.url("/health"));
    head.method = "HEAD".into();
    assert_eq!(
        runner.check(&Action::Http(head)).await.as_deref(),
        Ok("reachable: 200")
    );
    assert_eq!(*seen.lock().unwrap(), ["GET /health", "HEAD /health"]);
}

#[tokio::test]
async fn check_of_a_post_connects_but_sends_nothing() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = serve(recorder(&seen)).await;
    let runner = HttpRunner::new();
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let mut req = get_req(&server.url("/api/v1/nodes/n-1/drain"));
        req.method = method.into();
        req.body = Some(HttpBody::Json(json!({ "force": true })));
        let got = runner.check(&Action::Http(req)).await;
        assert_eq!(
            got,
            Ok(format!("reachable (not sent: {method} changes state)"))
        );
    }
    // A check that is allowed to send (a GET) comes after them, and is answered once the
    // server has recorded it: a request wrongly sent before it, on the runner's connection,
    // has been recorded by then too.
    let end = get_req(&server.url("/end"));
    runner.check(&Action::Http(end)).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(
        !seen.is_empty() && seen.iter().all(|r| r.ends_with(" /end")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn check_reports_an_unreachable_host_as_an_error() {
    let (_reserved, port) = crate::closed_port();
    let runner = HttpRunner::new();
    let url = format!("http://127.0.0.1:{port}/x");
    let err = runner
        .check(&Action::Http(get_req(&url)))
        .await
        .unwrap_err();
    assert!(err.contains("cannot connect"), "{err}");

    let mut post = get_req(&url);
    post.method = "POST".into();
    let err = runner.check(&Action::Http(post)).await.unwrap_err();
    assert!(
        err.starts_with(&format!("{url}: cannot connect to 127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn check_fails_when_the_server_refuses_the_credentials() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = serve(recorder(&seen)).await;
    let runner = HttpRunner::new();
    let url = server.url("/private");
    let err = runner
        .check(&Action::Http(get_req(&url)))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        format!("GET {url}: reachable, but 401: the server refused the request's credentials")
    );
    let mut with_token = get_req(&url);
    with_token.headers = vec![("Authorization".into(), "Bearer t0ken-value".into())];
    assert_eq!(
        runner.check(&Action::Http(with_token)).await.as_deref(),
        Ok("reachable: 200"),
        "the step's headers are sent with the check"
    );
}
