//! The result document and `expect`: status codes, lists, classes, `body_contains`, and the
//! messages of a failed expectation (what was expected, what came back).

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::AppendHeaders;
use axum::routing::get;
use rollbook_exec::Outcome;
use rollbook_plan::model::StatusExpect;
use serde_json::json;

use crate::{attempt, get as get_req, serve};

/// `/status/{code}` answers that code with a small JSON body; `/text` answers plain text with
/// a header sent twice.
fn router() -> Router {
    Router::new()
        .route(
            "/status/{code}",
            get(
                |axum::extract::Path(code): axum::extract::Path<u16>| async move {
                    let status = StatusCode::from_u16(code).unwrap();
                    let body = if code == 204 {
                        String::new()
                    } else {
                        format!(r#"{{"code":{code},"state":"degraded"}}"#)
                    };
                    (status, [(header::CONTENT_TYPE, "application/json")], body)
                },
            ),
        )
        .route(
            "/text",
            get(|| async {
                (
                    AppendHeaders([("x-served-by", "a"), ("x-served-by", "b")]),
                    "plain text, not JSON\n",
                )
            }),
        )
}

#[tokio::test]
async fn the_result_document_has_status_headers_body_json_and_timing() {
    let server = serve(router()).await;
    let tried = attempt(get_req(&server.url("/status/200"))).await;
    let r = tried.assert_ok();
    assert_eq!(r["status"], 200);
    assert_eq!(r["headers"]["content-type"], "application/json");
    assert_eq!(r["body"], r#"{"code":200,"state":"degraded"}"#);
    assert_eq!(r["json"], json!({ "code": 200, "state": "degraded" }));
    assert_eq!(r["truncated"], false);
    assert!(r["elapsed_ms"].is_u64());
    let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "body",
            "elapsed_ms",
            "headers",
            "json",
            "status",
            "truncated"
        ]
    );
    // One line per attempt, naming the request and what came back.
    assert_eq!(tried.lines.len(), 1, "{:?}", tried.lines);
    let url = server.url("/status/200");
    let line = &tried.lines[0].1;
    assert_eq!(
        line,
        &format!("GET {url} -> 200 in {} ms (31 bytes)", r["elapsed_ms"])
    );
}

#[tokio::test]
async fn a_text_body_has_null_json_and_repeated_headers_are_joined() {
    let server = serve(router()).await;
    let tried = attempt(get_req(&server.url("/text"))).await;
    let r = tried.assert_ok();
    assert_eq!(r["json"], serde_json::Value::Null);
    assert_eq!(r["body"], "plain text, not JSON\n");
    assert_eq!(r["headers"]["x-served-by"], "a, b");
}

#[tokio::test]
async fn without_expect_any_2xx_passes_and_anything_else_fails() {
    let server = serve(router()).await;
    attempt(get_req(&server.url("/status/204")))
        .await
        .assert_ok();
    let tried = attempt(get_req(&server.url("/status/404"))).await;
    assert_eq!(
        tried.message(),
        r#"expected status 2xx, got 404: {"code":404,"state":"degraded"}"#
    );
    // The result document is still there, for `until` and for the journal.
    assert_eq!(tried.result()["status"], 404);
}

#[tokio::test]
async fn a_list_of_codes_passes_any_of_them() {
    let server = serve(router()).await;
    for (code, ok) in [(200, true), (204, true), (201, false), (503, false)] {
        let mut req = get_req(&server.url(&format!("/status/{code}")));
        req.expect_status = Some(StatusExpect::Codes(vec![200, 204]));
        let tried = attempt(req).await;
        match &tried.outcome {
            Outcome::Succeeded { .. } => assert!(ok, "{code} passed"),
            Outcome::Failed { message, result } => {
                assert!(!ok, "{code} failed: {message}");
                assert_eq!(
                    message,
                    &format!(
                        r#"expected status 200 or 204, got {code}: {{"code":{code},"state":"degraded"}}"#
                    )
                );
                assert_eq!(result.as_ref().unwrap()["status"], code);
            }
        }
    }
}

#[tokio::test]
async fn a_class_passes_its_hundred_only() {
    let server = serve(router()).await;
    let mut req = get_req(&server.url("/status/404"));
    req.expect_status = Some(StatusExpect::Class("4xx".into()));
    attempt(req.clone()).await.assert_ok();

    req.url = server.url("/status/502");
    let tried = attempt(req).await;
    assert!(
        tried
            .message()
            .starts_with("expected status 4xx, got 502: "),
        "{}",
        tried.message()
    );

    let mut exact = get_req(&server.url("/status/503"));
    exact.expect_status = Some(StatusExpect::Code(200));
    assert_eq!(
        attempt(exact).await.message(),
        r#"expected status 200, got 503: {"code":503,"state":"degraded"}"#
    );
}

#[tokio::test]
async fn body_contains_says_what_it_looked_for_and_what_it_got() {
    let server = serve(router()).await;
    let mut req = get_req(&server.url("/status/200"));
    req.expect_body_contains = Some("degraded".into());
    attempt(req.clone()).await.assert_ok();

    req.expect_body_contains = Some("healthy".into());
    let tried = attempt(req).await;
    assert_eq!(
        tried.message(),
        r#"expected the body to contain "healthy", got: {"code":200,"state":"degraded"}"#
    );
    assert_eq!(tried.result()["status"], 200);
}

#[tokio::test]
async fn a_refused_connection_fails_with_the_cause() {
    let (_reserved, port) = crate::closed_port();
    let url = format!("http://127.0.0.1:{port}/health");
    let tried = attempt(get_req(&url)).await;
    let message = tried.message();
    assert!(
        message.starts_with(&format!("GET {url}: cannot connect")),
        "{message}"
    );
    assert!(message.contains("refused"), "{message}");
    assert!(tried.outcome.result().is_none());
}
