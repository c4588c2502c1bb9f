//! The drain-and-wait loop of the node-agent rollback against a node API whose
//! `active_instances` falls as it is polled: captures, templated paths, an `until` gate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use rollbook_exec::NodeStatus;
use rollbook_exec::event::RunStatus;
use serde_json::{Value, json};

use crate::{run_plan, serve};

/// A pretend platform API: nodes with an id and a hostname. Draining a node puts its
/// `active_instances` at `start`; each GET of the node then sees one fewer.
#[derive(Clone)]
struct NodeApi {
    nodes: Vec<(String, String)>,
    start: u64,
    state: Arc<Mutex<HashMap<String, u64>>>,
    /// What happened, in order: `drain n1`, `poll n1 -> 2`, `enable n1`.
    log: Arc<Mutex<Vec<String>>>,
}

impl NodeApi {
    fn new(start: u64) -> Self {
        NodeApi {
            nodes: vec![
                ("n-101".into(), "worker-1".into()),
                ("n-102".into(), "worker-2".into()),
                ("n-999".into(), "elsewhere".into()),
            ],
            start,
            state: Arc::default(),
            log: Arc::default(),
        }
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/api/v1/nodes", get(list))
            .route("/api/v1/nodes/{id}", get(node))
            .route("/api/v1/nodes/{id}/drain", post(drain))
            .route("/api/v1/nodes/{id}/enable", post(enable))
            .with_state(self.clone())
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn known(&self, id: &str) -> bool {
        self.nodes.iter().any(|(i, _)| i == id)
    }
}

async fn list(State(api): State<NodeApi>) -> Json<Value> {
    let nodes: Vec<Value> = api
        .nodes
        .iter()
        .map(|(id, host)| json!({ "id": id, "hostname": host, "status": "active" }))
        .collect();
    Json(Value::Array(nodes))
}

async fn node(State(api): State<NodeApi>, Path(id): Path<String>) -> (StatusCode, Json<Value>) {
    if !api.known(&id) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such node" })),
        );
    }
    let mut state = api.state.lock().unwrap();
    let active = state.entry(id.clone()).or_insert(0);
    *active = active.saturating_sub(1);
    let now = *active;
    api.log.lock().unwrap().push(format!("poll {id} -> {now}"));
    (
        StatusCode::OK,
        Json(json!({ "id": id, "active_instances": now })),
    )
}

async fn drain(State(api): State<NodeApi>, Path(id): Path<String>) -> StatusCode {
    if !api.known(&id) {
        return StatusCode::NOT_FOUND;
    }
    api.state.lock().unwrap().insert(id.clone(), api.start);
    api.log.lock().unwrap().push(format!("drain {id}"));
    StatusCode::ACCEPTED
}

async fn enable(State(api): State<NodeApi>, Path(id): Path<String>) -> StatusCode {
    if !api.known(&id) {
        return StatusCode::NOT_FOUND;
    }
    api.log.lock().unwrap().push(format!("enable {id}"));
    StatusCode::NO_CONTENT
}

/// The plan under test: per worker, one at a time: find the node id, drain, wait until no
/// instance is left, enable.
fn plan(interval: &str, deadline: &str) -> String {
    format!(
        r#"
version: 1
name: drain
params:
  api_url: {{ type: string, required: true }}
inventory:
  workers: [worker-1, worker-2]
connections:
  api:
    http: {{ base_url: "{{{{ params.api_url }}}}" }}
steps:
  - id: roll
    for_each: "{{{{ inventory.workers }}}}"
    concurrency: 1
    steps:
      - id: find
        http: {{ connection: api, path: /api/v1/nodes }}
        capture:
          node_id: '[.json[] | select(.hostname == $item) | .id] | first'
      - id: drain
        needs: [find]
        http:
          method: POST
          connection: api
          path: "/api/v1/nodes/{{{{ steps.find.outputs.node_id }}}}/drain"
      - id: drained
        needs: [drain]
        http: {{ connection: api, path: "/api/v1/nodes/{{{{ steps.find.outputs.node_id }}}}" }}
        until: '.json.active_instances == 0'
        interval: {interval}
        deadline: {deadline}
      - id: enable
        needs: [drained]
        http:
          method: POST
          connection: api
          path: "/api/v1/nodes/{{{{ steps.find.outputs.node_id }}}}/enable"
"#
    )
}

#[tokio::test]
async fn the_drain_and_wait_loop_polls_until_no_instance_is_left() {
    let api = NodeApi::new(3);
    let server = serve(api.router()).await;
    let arg = format!("api_url=http://{}", server.addr);
    let ran = run_plan(&plan("50ms", "5s"), &[&arg], &[]).await;
    assert_eq!(
        ran.status,
        RunStatus::Succeeded,
        "{:#?}",
        ran.journal.events
    );
    // One node at a time, each drained, polled down to 0, then enabled.
    assert_eq!(
        api.log(),
        [
            "drain n-101",
            "poll n-101 -> 2",
            "poll n-101 -> 1",
            "poll n-101 -> 0",
            "enable n-101",
            "drain n-102",
            "poll n-102 -> 2",
            "poll n-102 -> 1",
            "poll n-102 -> 0",
            "enable n-102",
        ]
    );
    let (status, outputs, _) = ran.journal.finished("roll[worker-2].find");
    assert_eq!(status, NodeStatus::Succeeded);
    assert_eq!(outputs, Some(json!({ "node_id": "n-102" })));
    // Each poll wrote its one line to the node's log.
    let polls = ran.journal.log_of("roll[worker-1].drained");
    assert_eq!(polls.len(), 3, "{polls:?}");
    let url = server.url("/api/v1/nodes/n-101");
    assert!(
        polls
            .iter()
            .all(|l| l.starts_with(&format!("GET {url} -> 200 in "))),
        "{polls:?}"
    );
}

#[tokio::test]
async fn a_drain_that_outlasts_the_deadline_fails_the_gate_and_stops_the_rollout() {
    let api = NodeApi::new(1000);
    let server = serve(api.router()).await;
    let arg = format!("api_url=http://{}", server.addr);
    let ran = run_plan(&plan("50ms", "300ms"), &[&arg], &[]).await;
    assert_eq!(ran.status, RunStatus::Failed);
    let (status, _, message) = ran.journal.finished("roll[worker-1].drained");
    assert_eq!(status, NodeStatus::Failed);
    let message = message.unwrap();
    assert!(message.contains("gate not met within 300ms"), "{message}");
    let log = api.log();
    assert!(log.len() >= 3, "the gate polled several times: {log:?}");
    // Never enabled, and the next worker was not touched (max_failures: 0).
    assert!(!log.iter().any(|l| l.starts_with("enable")), "{log:?}");
    assert!(!log.iter().any(|l| l.contains("n-102")), "{log:?}");
}
