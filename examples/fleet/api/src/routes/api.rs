//! The platform API the plans call: `/health`, nodes (drain, enable), deployments.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::{health_answer, json_error};
use crate::config::Role;
use crate::state::Shared;
use crate::units::{self, NODE_AGENT, OPERATOR};

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/health", get(health))
        .route("/api/v1/nodes", get(nodes))
        .route("/api/v1/nodes/{id}", get(node))
        .route("/api/v1/nodes/{id}/drain", post(drain))
        .route("/api/v1/nodes/{id}/enable", post(enable))
        .route("/api/v1/deployments/active", get(deployments))
        .route("/api/v1/deployments/{id}/health", get(deployment_health))
}

/// Healthy when the operator service is healthy on every operator host.
async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let config = shared.config();
    health_answer(units::aggregate(
        &config,
        shared.dir(),
        Role::Operator,
        OPERATOR,
    ))
}

async fn nodes(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.nodes()).into_response()
}

fn node_or_404(id: &str, node: Option<crate::state::NodeView>) -> Response {
    match node {
        Some(node) => Json(node).into_response(),
        None => json_error(StatusCode::NOT_FOUND, format!("no node with id {id}")),
    }
}

async fn node(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    node_or_404(&id, shared.node(&id))
}

async fn drain(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    node_or_404(&id, shared.drain(&id))
}

async fn enable(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    node_or_404(&id, shared.enable(&id))
}

async fn deployments(State(shared): State<Arc<Shared>>) -> Response {
    let config = shared.config();
    let list: Vec<_> = config
        .deployments
        .iter()
        .map(|d| json!({ "id": d.id, "name": d.name, "node": d.worker }))
        .collect();
    Json(list).into_response()
}

/// Healthy when the node agent of the deployment's worker is healthy.
async fn deployment_health(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let config = shared.config();
    let Some(d) = config.deployments.iter().find(|d| d.id == id) else {
        return json_error(StatusCode::NOT_FOUND, format!("no deployment with id {id}"));
    };
    let problem = match config.host(&d.worker) {
        None => Some(format!("worker {} is not in fleet.json", d.worker)),
        Some(_) => units::health(&config, shared.dir(), &d.worker, NODE_AGENT)
            .err()
            .map(|p| format!("{}: {p}", d.worker)),
    };
    Json(match problem {
        None => json!({ "id": d.id, "status": "healthy" }),
        Some(reason) => json!({ "id": d.id, "status": "unhealthy", "reason": reason }),
    })
    .into_response()
}
