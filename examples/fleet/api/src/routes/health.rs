//! The health-only listeners: the aggregate ones (load balancer, edge proxy, node agents
//! over TLS) and each operator host's own `/health`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use super::health_answer;
use crate::config::Role;
use crate::state::Shared;
use crate::units;

/// `GET /health`: healthy when `unit` is healthy on every host of `role`.
pub fn aggregate_router(shared: Arc<Shared>, role: Role, unit: &'static str) -> Router {
    Router::new()
        .route(
            "/health",
            get(move |State(shared): State<Arc<Shared>>| async move {
                let config = shared.config();
                health_answer(units::aggregate(&config, shared.dir(), role, unit))
            }),
        )
        .with_state(shared)
}

/// `GET /health` of one operator host: `healthy`, `unhealthy: <unit> <version> crash-loops`,
/// or `unavailable: <unit> is not running`.
pub fn operator_router(shared: Arc<Shared>, host: String) -> Router {
    Router::new()
        .route(
            "/health",
            get(move |State(shared): State<Arc<Shared>>| async move {
                let config = shared.config();
                match units::health(&config, shared.dir(), &host, units::OPERATOR) {
                    Ok(()) => (StatusCode::OK, "healthy").into_response(),
                    Err(p) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("{}: {p}", p.verdict()),
                    )
                        .into_response(),
                }
            }),
        )
        .with_state(shared)
}
