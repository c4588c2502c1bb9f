//! fleet-api's tests: one binary. Each test starts the whole server in-process on
//! 127.0.0.1 with ephemeral ports (operator hosts on 127.0.9.1-3, port 0) over a temporary
//! DIR, and talks to it with reqwest, as the plans do; `startup` also runs the real binary.
//! Drains run on real time with short steps; the assertions use lower bounds on time (a
//! count cannot fall before its step is due) and generous deadlines, so a loaded machine
//! slows them down without failing them.

mod control;
mod deployments;
mod health;
mod hooks;
mod nodes;
mod startup;
mod tls;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rollbook_fleet_api::{Addrs, Fleet};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use serde_json::{Value, json};
use tempfile::TempDir;

pub const GOOD: &str = "4.1.0";
pub const BROKEN: &str = "4.2.0";
pub const KEY: &str = "fleet-statuspage-key";

pub const OPERATORS: [&str; 3] = ["us-east-op-1", "us-east-op-2", "us-east-op-3"];
pub const OPERATOR_UNITS: [&str; 3] = [
    "zeitwork-operator",
    "zeitwork-load-balancer",
    "zeitwork-edge-proxy",
];
pub const AGENT: &str = "zeitwork-node-agent";

/// A small fleet: three operators, four workers (one unknown to the API), three deployments
/// (one on a worker fleet.json does not have). Every port is 0.
pub fn fleet_json(drain_step_ms: u64) -> Value {
    let operators = OPERATORS.iter().enumerate().map(|(i, name)| {
        json!({ "name": name, "address": format!("127.0.9.{}", i + 1), "role": "operator",
                "units": OPERATOR_UNITS })
    });
    let workers = [
        ("us-east-worker-1", Some("node-101"), 3),
        ("us-east-worker-2", Some("node-102"), 2),
        ("eu-west-worker-1", Some("node-201"), 1),
        ("ap-south-worker-6", None, 0),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (name, id, instances))| {
        json!({ "name": name, "address": format!("127.0.10.{}", i + 1), "role": "worker",
                "units": [AGENT], "node_id": id, "instances": instances })
    });
    json!({
        "good_version": GOOD,
        "broken_version": BROKEN,
        "statuspage_key": KEY,
        "drain_step_ms": drain_step_ms,
        "api": { "address": "127.0.0.1", "port": 0, "health_ports": [0, 0], "tls_port": 0,
                 "operator_port": 0 },
        "hosts": operators.chain(workers).collect::<Vec<_>>(),
        "deployments": [
            { "id": "dep-1", "name": "storefront", "worker": "us-east-worker-1" },
            { "id": "dep-2", "name": "checkout", "worker": "eu-west-worker-1" },
            { "id": "dep-3", "name": "ghost", "worker": "us-west-worker-9" },
        ],
    })
}

/// Writes `DIR/fleet.json`, and every listed unit as active on the good version.
pub fn write_fleet(dir: &Path, config: &Value) {
    std::fs::write(
        dir.join("fleet.json"),
        serde_json::to_string_pretty(config).unwrap(),
    )
    .unwrap();
    for host in config["hosts"].as_array().unwrap() {
        for unit in host["units"].as_array().unwrap() {
            set_unit(
                dir,
                host["name"].as_str().unwrap(),
                unit.as_str().unwrap(),
                Some(GOOD),
            );
        }
    }
}

/// What the fleet's fake `systemctl` does: `Some(version)` starts the unit, `None` stops it.
pub fn set_unit(dir: &Path, host: &str, unit: &str, version: Option<&str>) {
    let units = dir.join("hosts").join(host).join("units");
    std::fs::create_dir_all(&units).unwrap();
    match version {
        Some(v) => std::fs::write(units.join(unit), format!("{v}\n")).unwrap(),
        None => {
            let _ = std::fs::remove_file(units.join(unit));
        }
    }
}

/// A rustls client configuration (ring) trusting only the CA certificates in `ca_pem`.
pub fn client_config(ca_pem: &[u8]) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// An HTTP client trusting `ca_pem` for https, without proxies, `localhost` → 127.0.0.1.
pub fn client(ca_pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .tls_backend_preconfigured(client_config(ca_pem))
        .resolve("localhost", "127.0.0.1:0".parse().unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A fleet running in this test, with its directory.
pub struct TestFleet {
    pub dir: TempDir,
    pub fleet: Fleet,
    pub client: reqwest::Client,
}

pub async fn start() -> TestFleet {
    start_with(fleet_json(100)).await
}

pub async fn start_with(config: Value) -> TestFleet {
    let dir = tempfile::tempdir().unwrap();
    write_fleet(dir.path(), &config);
    let fleet = rollbook_fleet_api::start(dir.path())
        .await
        .unwrap_or_else(|e| panic!("the fleet did not start: {e}"));
    let ca = std::fs::read(dir.path().join("tls/ca.pem")).unwrap();
    TestFleet {
        dir,
        fleet,
        client: client(&ca),
    }
}

/// A response's status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

pub async fn answer(req: reqwest::RequestBuilder) -> Answer {
    let res = req.send().await.unwrap();
    Answer {
        status: res.status().as_u16(),
        body: res.text().await.unwrap(),
    }
}

impl TestFleet {
    pub fn addrs(&self) -> &Addrs {
        self.fleet.addrs()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `http://<api>/<path>`.
    pub fn api(&self, path: &str) -> String {
        format!("http://{}{path}", self.addrs().api)
    }

    pub async fn get(&self, url: &str) -> Answer {
        answer(self.client.get(url)).await
    }

    pub async fn get_api(&self, path: &str) -> Answer {
        self.get(&self.api(path)).await
    }

    pub async fn post_api(&self, path: &str) -> Answer {
        answer(self.client.post(self.api(path))).await
    }

    pub fn set_unit(&self, host: &str, unit: &str, version: Option<&str>) {
        set_unit(self.dir(), host, unit, version);
    }

    /// The operator host's own health URL.
    pub fn operator_health(&self, host: &str) -> String {
        let (_, addr) = self
            .addrs()
            .operators
            .iter()
            .find(|(h, _)| h == host)
            .unwrap_or_else(|| panic!("no operator listener for {host}"));
        format!("http://{addr}/health")
    }

    /// Polls node `id` until `done` holds or `deadline` passes; returns every view seen.
    pub async fn poll_node(
        &self,
        id: &str,
        deadline: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let start = Instant::now();
        let mut seen = Vec::new();
        loop {
            let a = self.get_api(&format!("/api/v1/nodes/{id}")).await;
            assert_eq!(a.status, 200, "{a:?}");
            let node = a.json();
            let finished = done(&node);
            seen.push(node);
            if finished {
                return seen;
            }
            assert!(
                start.elapsed() < deadline,
                "node {id} did not get there within {deadline:?}: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
