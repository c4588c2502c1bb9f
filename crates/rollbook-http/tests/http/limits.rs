//! The limits that keep one endpoint from stalling or exhausting a run: a body bounded at
//! 10 MiB, redirects bounded at 5, and a redirect loop named as one.

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use rollbook_http::MAX_BODY_BYTES;

use crate::{Hits, attempt, get as get_req, serve};

#[tokio::test]
async fn a_huge_body_is_cut_at_10_mib_and_marked_truncated() {
    let router = Router::new().route(
        "/huge",
        get(|| async {
            // 11 MiB of JSON-looking text: cut, it is not JSON any more.
            let mut body = vec![b'7'; 11 * 1024 * 1024];
            body[0] = b'[';
            (
                [(header::CONTENT_TYPE, "application/json")],
                Body::from(body),
            )
        }),
    );
    let server = serve(router).await;
    let tried = attempt(get_req(&server.url("/huge"))).await;
    let result = tried.assert_ok();
    assert_eq!(result["truncated"], true);
    assert_eq!(
        result["body"].as_str().unwrap().len(),
        MAX_BODY_BYTES,
        "exactly the limit is kept"
    );
    assert_eq!(result["json"], serde_json::Value::Null);
    let line = tried.text();
    assert!(
        line.ends_with(&format!(
            "-> 200 in {} ms ({MAX_BODY_BYTES} bytes, truncated at 10 MiB)",
            result["elapsed_ms"]
        )),
        "{line}"
    );
}

#[tokio::test]
async fn a_body_under_the_limit_is_whole() {
    let router = Router::new().route("/ok", get(|| async { "x".repeat(1024 * 1024) }));
    let server = serve(router).await;
    let tried = attempt(get_req(&server.url("/ok"))).await;
    let result = tried.assert_ok();
    assert_eq!(result["truncated"], false);
    assert_eq!(result["body"].as_str().unwrap().len(), 1024 * 1024);
}

#[tokio::test]
async fn a_redirect_loop_fails_with_the_loop_in_the_message() {
    let hits = Hits::default();
    let (a, b) = (hits.clone(), hits.clone());
    let router = Router::new()
        .route(
            "/a",
            get(move || async move {
                a.hit();
                Redirect::temporary("/b")
            }),
        )
        .route(
            "/b",
            get(move || async move {
                b.hit();
                Redirect::temporary("/a")
            }),
        );
    let server = serve(router).await;
    let tried = attempt(get_req(&server.url("/a"))).await;
    let (ua, ub) = (server.url("/a"), server.url("/b"));
    assert_eq!(
        tried.message(),
        format!("GET {ua}: redirect loop: {ua} -> {ub} -> {ua}")
    );
    assert_eq!(hits.get(), 2, "the loop is seen before /a is asked twice");
}

#[tokio::test]
async fn redirects_are_followed_up_to_five() {
    let hits = Hits::default();
    let counter = hits.clone();
    let router = Router::new().route(
        "/r/{n}",
        get(move |Path(n): Path<u32>| {
            let counter = counter.clone();
            async move {
                counter.hit();
                if n == 0 {
                    (StatusCode::OK, "arrived").into_response()
                } else {
                    Redirect::temporary(&format!("/r/{}", n - 1)).into_response()
                }
            }
        }),
    );
    let server = serve(router).await;

    let five = attempt(get_req(&server.url("/r/5"))).await;
    assert_eq!(five.assert_ok()["body"], "arrived");
    assert_eq!(hits.get(), 6);

    let six = attempt(get_req(&server.url("/r/6"))).await;
    let message = six.message();
    assert!(
        message.contains(&format!(
            "more than 5 redirects (the last to {})",
            server.url("/r/0")
        )),
        "{message}"
    );
}
