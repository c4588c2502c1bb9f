//! `DIR/fleet.json`: the simulated platform as the fleet script wrote it.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The whole fleet: versions, keys, where to listen, hosts and deployments.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// The version a rollback restores (shown in `/_fleet/state`; health does not need it).
    pub good_version: String,
    /// A unit running this version is active but unhealthy ("crash-loops").
    pub broken_version: String,
    /// Statuspage calls must carry `Authorization: OAuth <statuspage_key>`.
    pub statuspage_key: String,
    /// A draining node loses one instance per `drain_step_ms` milliseconds.
    #[serde(default = "default_drain_step_ms")]
    pub drain_step_ms: u64,
    pub api: ApiConfig,
    #[serde(default)]
    pub hosts: Vec<Host>,
    #[serde(default)]
    pub deployments: Vec<Deployment>,
}

/// Where the platform's listeners bind. Port 0 picks a free port (tests).
#[derive(Debug, Clone, Deserialize)]
pub struct ApiConfig {
    pub address: IpAddr,
    pub port: u16,
    /// `[load-balancer health, edge-proxy health]`.
    pub health_ports: [u16; 2],
    pub tls_port: u16,
    /// The port of each operator host's own `/health` listener (on the host's address).
    #[serde(default = "default_operator_port")]
    pub operator_port: u16,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Host {
    pub name: String,
    pub address: IpAddr,
    pub role: Role,
    #[serde(default)]
    pub units: Vec<String>,
    /// Workers only: the platform API's id for this node; `null` when the API does not know it.
    #[serde(default)]
    pub node_id: Option<String>,
    /// Workers only: instances (VMs) running on the node at the start.
    #[serde(default)]
    pub instances: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Operator,
    Worker,
    /// Any other role: served by no health rule.
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Deployment {
    pub id: String,
    pub name: String,
    /// The name of the worker host it runs on.
    pub worker: String,
}

fn default_drain_step_ms() -> u64 {
    1000
}

fn default_operator_port() -> u16 {
    8080
}

impl Config {
    /// Reads and checks `DIR/fleet.json`. The message names the file.
    pub fn load(dir: &Path) -> Result<Config, String> {
        let path = dir.join("fleet.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let config: Config =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        config
            .check()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(config)
    }

    /// Host names become directory names (`DIR/hosts/<name>`), node and deployment ids keys.
    fn check(&self) -> Result<(), String> {
        let mut names = BTreeSet::new();
        let mut node_ids = BTreeSet::new();
        for host in &self.hosts {
            let n = host.name.as_str();
            if n.is_empty() || n == "." || n == ".." || n.contains('/') {
                return Err(format!("host name {n:?} cannot be a directory name"));
            }
            if !names.insert(n) {
                return Err(format!("host {n} is listed twice"));
            }
            if let Some(id) = &host.node_id
                && !node_ids.insert(id.as_str())
            {
                return Err(format!("node id {id} is given to two hosts"));
            }
        }
        let mut deployments = BTreeSet::new();
        for d in &self.deployments {
            if !deployments.insert(d.id.as_str()) {
                return Err(format!("deployment {} is listed twice", d.id));
            }
        }
        Ok(())
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    pub fn with_role(&self, role: Role) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(move |h| h.role == role)
    }
}

/// `us-east-worker-1` → `us-east`: the name before `-worker`.
pub fn region_of(hostname: &str) -> &str {
    match hostname.find("-worker") {
        Some(i) => &hostname[..i],
        None => hostname,
    }
}
