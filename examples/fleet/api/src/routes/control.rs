//! `/_fleet/*`: what tests and the tour use to look at and steer the simulation.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::json_error;
use crate::config::Config;
use crate::state::Shared;
use crate::units::{self, Unit};

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_fleet/state", get(state))
        .route("/_fleet/reset", post(reset))
        .route("/_fleet/stuck/{hostname}", post(stuck).delete(unstuck))
}

/// Each host's units as the disk says now: the units fleet.json lists, plus any other unit
/// file found there; the version, or `null` when inactive.
fn hosts(config: &Config, dir: &std::path::Path) -> Vec<Value> {
    config
        .hosts
        .iter()
        .map(|h| {
            let mut names: Vec<String> = h.units.clone();
            if let Ok(entries) = std::fs::read_dir(units::units_dir(dir, &h.name)) {
                for entry in entries.flatten() {
                    if let Some(name) = entry.file_name().to_str()
                        && !names.iter().any(|n| n == name)
                    {
                        names.push(name.to_string());
                    }
                }
            }
            let units: BTreeMap<String, Value> = names
                .into_iter()
                .map(|unit| {
                    let value = match units::read(dir, &h.name, &unit) {
                        Unit::Active(version) => Value::String(version),
                        Unit::Inactive => Value::Null,
                        Unit::Unreadable(message) => json!({ "error": message }),
                    };
                    (unit, value)
                })
                .collect();
            json!({
                "name": h.name,
                "role": h.role,
                "address": h.address,
                "units": units,
            })
        })
        .collect()
}

fn document(shared: &Shared) -> Value {
    let snap = shared.snapshot();
    json!({
        "good_version": snap.config.good_version,
        "broken_version": snap.config.broken_version,
        "nodes": snap.nodes,
        "node_history": snap.node_history,
        "slack": snap.slack,
        "statuspage": snap.statuspage,
        "hosts": hosts(&snap.config, shared.dir()),
        "stuck": snap.stuck,
    })
}

async fn state(State(shared): State<Arc<Shared>>) -> Response {
    Json(document(&shared)).into_response()
}

/// fleet.json read again, every node active with its starting instances, recorded calls and
/// stuck hosts cleared. A fleet.json that no longer loads changes nothing (500).
async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    match Config::load(shared.dir()) {
        Ok(config) => {
            shared.reset(config);
            Json(document(&shared)).into_response()
        }
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

fn set_stuck(shared: &Shared, hostname: &str, stuck: bool) -> Response {
    match shared.set_stuck(hostname, stuck) {
        Some(list) => Json(json!({ "stuck": list })).into_response(),
        None => json_error(StatusCode::NOT_FOUND, format!("no host named {hostname}")),
    }
}

async fn stuck(State(shared): State<Arc<Shared>>, Path(hostname): Path<String>) -> Response {
    set_stuck(&shared, &hostname, true)
}

async fn unstuck(State(shared): State<Arc<Shared>>, Path(hostname): Path<String>) -> Response {
    set_stuck(&shared, &hostname, false)
}
