//! Stand-ins for the outside services the plans notify: a Slack incoming webhook and the
//! Statuspage incidents API. Every call is recorded for `/_fleet/state`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::json_error;
use crate::state::Shared;

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/hooks/slack/{*rest}", post(slack))
        .route("/statuspage/v1/pages/{page_id}/incidents", post(statuspage))
}

/// As Slack: 200 `ok` for a JSON body, 400 `invalid_payload` for anything else.
async fn slack(State(shared): State<Arc<Shared>>, uri: Uri, body: Bytes) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(body) => {
            shared.record_slack(uri.path().to_string(), body);
            (StatusCode::OK, "ok").into_response()
        }
        Err(_) => (StatusCode::BAD_REQUEST, "invalid_payload").into_response(),
    }
}

/// `Authorization: OAuth <statuspage_key>` required; a JSON body opens incident `inc-<n>`.
async fn statuspage(
    State(shared): State<Arc<Shared>>,
    Path(page_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let wanted = format!("OAuth {}", shared.config().statuspage_key);
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if given != Some(wanted.as_str()) {
        let message = match given {
            None => "missing Authorization header (want `Authorization: OAuth <api key>`)",
            Some(_) => "wrong API key in the Authorization header",
        };
        return json_error(StatusCode::UNAUTHORIZED, message);
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")),
    };
    let status = body["incident"]["status"].clone();
    let name = body["incident"]["name"].clone();
    let id = shared.record_incident(page_id, body);
    let answer = json!({ "id": id, "status": status, "name": name });
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}
