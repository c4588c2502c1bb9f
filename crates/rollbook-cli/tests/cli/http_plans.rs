//! `examples/node-drain-api.yaml` run by the real binary against a node API served by the
//! test (axum on 127.0.0.1), checked by the API's state afterwards: every node drained, waited
//! for, and enabled again, in inventory order, one node at a time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use assert_cmd::Command;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

/// A scratch directory for the run's state (journal, locks).
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn rollbook(&self) -> Command {
        crate::rollbook_in(self.path())
    }
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// One node of the pretend platform.
#[derive(Debug, Default, Clone)]
struct Node {
    hostname: String,
    /// Instances left; set by a drain, one fewer at each GET of the node.
    active: u64,
    drained: bool,
    enabled: bool,
}

/// The node API's state, and what happened to it in order (`drain n-1`, `poll n-1 -> 1`,
/// `enable n-1`). Clones share both.
#[derive(Clone, Default)]
struct Api {
    nodes: Arc<Mutex<BTreeMap<String, Node>>>,
    log: Arc<Mutex<Vec<String>>>,
    /// Most nodes drained but not yet enabled at once.
    max_out: Arc<Mutex<usize>>,
}

/// Instances on a node when its drain starts.
const INSTANCES: u64 = 2;

impl Api {
    fn new(nodes: &[(&str, &str)]) -> Self {
        let api = Api::default();
        for (id, host) in nodes {
            api.nodes.lock().unwrap().insert(
                id.to_string(),
                Node {
                    hostname: host.to_string(),
                    enabled: true,
                    ..Node::default()
                },
            );
        }
        api
    }

    fn record(&self, what: String) {
        self.log.lock().unwrap().push(what);
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/api/v1/nodes", get(list))
            .route("/api/v1/nodes/{id}", get(node))
            .route("/api/v1/nodes/{id}/drain", post(drain))
            .route("/api/v1/nodes/{id}/enable", post(enable))
            .with_state(self.clone())
    }

    /// Serves the API on a loopback port, on a thread of its own (the test's thread waits
    /// for the binary).
    fn start(&self) -> SocketAddr {
        crate::serve(self.router())
    }
}

async fn list(State(api): State<Api>) -> Json<Value> {
    let nodes = api.nodes.lock().unwrap();
    Json(Value::Array(
        nodes
            .iter()
            .map(|(id, n)| json!({ "id": id, "hostname": n.hostname }))
            .collect(),
    ))
}

async fn node(State(api): State<Api>, UrlPath(id): UrlPath<String>) -> (StatusCode, Json<Value>) {
    let mut nodes = api.nodes.lock().unwrap();
    let Some(n) = nodes.get_mut(&id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such node" })),
        );
    };
    n.active = n.active.saturating_sub(1);
    let body = json!({ "id": id, "hostname": n.hostname, "active_instances": n.active });
    api.record(format!("poll {id} -> {}", n.active));
    (StatusCode::OK, Json(body))
}

async fn drain(State(api): State<Api>, UrlPath(id): UrlPath<String>) -> StatusCode {
    let mut nodes = api.nodes.lock().unwrap();
    let Some(n) = nodes.get_mut(&id) else {
        return StatusCode::NOT_FOUND;
    };
    n.drained = true;
    n.enabled = false;
    n.active = INSTANCES;
    let out = nodes.values().filter(|n| !n.enabled).count();
    let mut max = api.max_out.lock().unwrap();
    *max = (*max).max(out);
    api.record(format!("drain {id}"));
    StatusCode::ACCEPTED
}

async fn enable(State(api): State<Api>, UrlPath(id): UrlPath<String>) -> StatusCode {
    let mut nodes = api.nodes.lock().unwrap();
    let Some(n) = nodes.get_mut(&id) else {
        return StatusCode::NOT_FOUND;
    };
    n.enabled = true;
    api.record(format!("enable {id}"));
    StatusCode::NO_CONTENT
}

#[test]
fn the_node_drain_example_drains_and_enables_every_worker_one_at_a_time() {
    // The example's inventory is worker-1..3; node ids are the API's own, in another order,
    // and the API knows a node that is not in the inventory.
    let api = Api::new(&[
        ("n-7", "worker-2"),
        ("n-3", "worker-1"),
        ("n-9", "worker-3"),
        ("n-1", "db-1"),
    ]);
    let addr = api.start();
    let sb = Sandbox::new();
    let plan = crate::workspace().join("examples/node-drain-api.yaml");
    let out = sb
        .rollbook()
        .arg("run")
        .arg(&plan)
        .args(["--param", &format!("api_url=http://{addr}")])
        .args(["--yes", "--reason", "test"])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stderr}\n{}",
        text(&out.stdout)
    );

    let mut expected = Vec::new();
    for id in ["n-3", "n-7", "n-9"] {
        expected.push(format!("drain {id}"));
        for left in (0..INSTANCES).rev() {
            expected.push(format!("poll {id} -> {left}"));
        }
        expected.push(format!("enable {id}"));
    }
    assert_eq!(*api.log.lock().unwrap(), expected);
    assert_eq!(*api.max_out.lock().unwrap(), 1, "one node out at a time");
    let nodes = api.nodes.lock().unwrap();
    for id in ["n-3", "n-7", "n-9"] {
        let n = &nodes[id];
        assert!(n.drained && n.enabled && n.active == 0, "{id}: {n:?}");
    }
    assert!(
        !nodes["n-1"].drained,
        "a node outside the inventory is untouched"
    );

    // The runner's one line per attempt, as the operator sees it.
    let drain_line =
        format!("roll[worker-1].drain | POST http://{addr}/api/v1/nodes/n-3/drain -> 202 in ");
    assert!(stderr.contains(&drain_line), "{stderr}");
}
