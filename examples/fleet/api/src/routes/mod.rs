//! The routers of every listener, and what they share: the request log and the shapes of
//! errors and health answers.

mod api;
mod control;
mod health;
mod hooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use health::{aggregate_router, operator_router};

use crate::state::Shared;

/// The platform API (`api.port`): nodes, deployments, `/health`, the Slack and Statuspage
/// stand-ins and the `/_fleet` control endpoints.
pub fn api_router(shared: Arc<Shared>) -> Router {
    api::router()
        .merge(hooks::router())
        .merge(control::router())
        .with_state(shared)
}

/// One line per request on stderr: `listener method path -> status`.
pub fn logged(router: Router, name: &'static str) -> Router {
    router
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(name, log_request))
}

async fn log_request(State(name): State<&'static str>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = next.run(req).await;
    crate::log(format_args!(
        "{name} {method} {path} -> {}",
        response.status().as_u16()
    ));
    response
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

/// `{"error": message}` with `status`.
fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// 200 `healthy`, or 503 `unhealthy: host: problem; host: problem`.
fn health_answer(result: Result<(), Vec<String>>) -> Response {
    match result {
        Ok(()) => (StatusCode::OK, "healthy").into_response(),
        Err(failing) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {}", failing.join("; ")),
        )
            .into_response(),
    }
}
