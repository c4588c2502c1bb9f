//! The platform's in-memory state: nodes and their drains, and the calls recorded for the
//! tests and the tour. Unit state is not here: it is on disk ([`crate::units`]).
//!
//! A drain needs no background task: a node keeps its instance count as of one instant, and
//! the count now is computed from the time elapsed since (one instance per `drain_step_ms`).
//! Whenever something changes how a node's count moves (drain, enable, stuck, unstuck), the
//! count is first brought up to now.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::{Config, Role, region_of};

/// What the listeners share: the fleet's directory and the state behind one lock (never
/// held across an `.await` or a disk read).
pub struct Shared {
    dir: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    config: Arc<Config>,
    nodes: Vec<NodeRun>,
    history: Vec<NodeEvent>,
    slack: Vec<SlackCall>,
    statuspage: Vec<IncidentCall>,
    stuck: BTreeSet<String>,
}

/// A node as the API tracks it: `instances` as of `since`.
#[derive(Debug, Clone)]
pub struct NodeRun {
    pub id: String,
    pub hostname: String,
    pub draining: bool,
    pub instances: u32,
    pub since: Instant,
}

/// A node as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeView {
    pub id: String,
    pub hostname: String,
    pub region: String,
    /// `active`, `draining`, or `drained` (draining with no instance left).
    pub status: &'static str,
    pub active_instances: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeEvent {
    pub at: String,
    pub id: String,
    pub hostname: String,
    /// `drain` or `enable`.
    pub action: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct SlackCall {
    pub at: String,
    pub path: String,
    pub body: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct IncidentCall {
    pub at: String,
    pub page_id: String,
    /// The id answered to the caller (`inc-1`, `inc-2`, ...).
    pub id: String,
    pub body: Value,
}

/// Everything `/_fleet/state` shows from memory (the hosts' units are read from disk).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub config: Arc<Config>,
    pub nodes: Vec<NodeView>,
    pub node_history: Vec<NodeEvent>,
    pub slack: Vec<SlackCall>,
    pub statuspage: Vec<IncidentCall>,
    pub stuck: Vec<String>,
}

impl NodeRun {
    /// The instances left at `now`: a draining node that is not stuck loses one per `step`
    /// (all at once when the step is 0).
    pub fn instances_at(&self, now: Instant, stuck: bool, step: Duration) -> u32 {
        if !self.draining || stuck {
            return self.instances;
        }
        if step.is_zero() {
            return 0;
        }
        let steps = now.saturating_duration_since(self.since).as_nanos() / step.as_nanos();
        let lost = u32::try_from(steps).unwrap_or(u32::MAX);
        self.instances.saturating_sub(lost)
    }

    pub fn view(&self, now: Instant, stuck: bool, step: Duration) -> NodeView {
        let active_instances = self.instances_at(now, stuck, step);
        let status = match (self.draining, active_instances) {
            (false, _) => "active",
            (true, 0) => "drained",
            (true, _) => "draining",
        };
        NodeView {
            id: self.id.clone(),
            hostname: self.hostname.clone(),
            region: region_of(&self.hostname).to_string(),
            status,
            active_instances,
        }
    }

    /// Brings `instances` up to `now`, so a change of course starts from the current count.
    fn settle(&mut self, now: Instant, stuck: bool, step: Duration) {
        self.instances = self.instances_at(now, stuck, step);
        self.since = now;
    }
}

/// Now, in RFC 3339, UTC, to the millisecond.
pub fn timestamp() -> String {
    let now = OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap_or(now);
    now.format(&Rfc3339).unwrap_or_default()
}

fn nodes_of(config: &Config, now: Instant) -> Vec<NodeRun> {
    config
        .with_role(Role::Worker)
        .filter_map(|h| {
            h.node_id.as_ref().map(|id| NodeRun {
                id: id.clone(),
                hostname: h.name.clone(),
                draining: false,
                instances: h.instances,
                since: now,
            })
        })
        .collect()
}

impl Inner {
    fn new(config: Config) -> Inner {
        Inner {
            nodes: nodes_of(&config, Instant::now()),
            config: Arc::new(config),
            history: Vec::new(),
            slack: Vec::new(),
            statuspage: Vec::new(),
            stuck: BTreeSet::new(),
        }
    }

    fn step(&self) -> Duration {
        Duration::from_millis(self.config.drain_step_ms)
    }

    fn view(&self, node: &NodeRun, now: Instant) -> NodeView {
        node.view(now, self.stuck.contains(&node.hostname), self.step())
    }

    /// Moves node `id` to draining or active, records the call, and shows the node.
    fn set_draining(&mut self, id: &str, draining: bool) -> Option<NodeView> {
        let now = Instant::now();
        let step = self.step();
        let i = self.nodes.iter().position(|n| n.id == id)?;
        let stuck = self.stuck.contains(&self.nodes[i].hostname);
        let node = &mut self.nodes[i];
        // Draining again keeps the drain's clock: it is already under way.
        if !(draining && node.draining) {
            node.settle(now, stuck, step);
            node.draining = draining;
        }
        let node = node.clone();
        self.history.push(NodeEvent {
            at: timestamp(),
            id: node.id.clone(),
            hostname: node.hostname.clone(),
            action: if draining { "drain" } else { "enable" },
        });
        Some(self.view(&node, now))
    }
}

impl Shared {
    pub fn new(dir: &Path, config: Config) -> Shared {
        Shared {
            dir: dir.to_path_buf(),
            inner: Mutex::new(Inner::new(config)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> Arc<Config> {
        self.lock().config.clone()
    }

    pub fn nodes(&self) -> Vec<NodeView> {
        let inner = self.lock();
        let now = Instant::now();
        inner.nodes.iter().map(|n| inner.view(n, now)).collect()
    }

    pub fn node(&self, id: &str) -> Option<NodeView> {
        let inner = self.lock();
        let now = Instant::now();
        inner
            .nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| inner.view(n, now))
    }

    pub fn drain(&self, id: &str) -> Option<NodeView> {
        self.lock().set_draining(id, true)
    }

    pub fn enable(&self, id: &str) -> Option<NodeView> {
        self.lock().set_draining(id, false)
    }

    /// Marks `hostname` stuck (its drain makes no progress) or releases it. `None` when no
    /// host has that name; else the stuck hosts.
    pub fn set_stuck(&self, hostname: &str, stuck: bool) -> Option<Vec<String>> {
        let mut inner = self.lock();
        inner.config.host(hostname)?;
        let now = Instant::now();
        let step = inner.step();
        let was = inner.stuck.contains(hostname);
        for node in inner.nodes.iter_mut().filter(|n| n.hostname == hostname) {
            node.settle(now, was, step);
        }
        if stuck {
            inner.stuck.insert(hostname.to_string());
        } else {
            inner.stuck.remove(hostname);
        }
        Some(inner.stuck.iter().cloned().collect())
    }

    pub fn record_slack(&self, path: String, body: Value) {
        self.lock().slack.push(SlackCall {
            at: timestamp(),
            path,
            body,
        });
    }

    /// Records an incident and returns its id.
    pub fn record_incident(&self, page_id: String, body: Value) -> String {
        let mut inner = self.lock();
        let id = format!("inc-{}", inner.statuspage.len() + 1);
        inner.statuspage.push(IncidentCall {
            at: timestamp(),
            page_id,
            id: id.clone(),
            body,
        });
        id
    }

    /// Back to the start with `config` (fleet.json read again by the caller).
    pub fn reset(&self, config: Config) {
        *self.lock() = Inner::new(config);
    }

    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        let now = Instant::now();
        Snapshot {
            config: inner.config.clone(),
            nodes: inner.nodes.iter().map(|n| inner.view(n, now)).collect(),
            node_history: inner.history.clone(),
            slack: inner.slack.clone(),
            statuspage: inner.statuspage.clone(),
            stuck: inner.stuck.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(instances: u32, draining: bool, since: Instant) -> NodeRun {
        NodeRun {
            id: "node-1".into(),
            hostname: "us-east-worker-1".into(),
            draining,
            instances,
            since,
        }
    }

    const STEP: Duration = Duration::from_millis(100);

    #[test]
    fn a_draining_node_loses_one_instance_per_step_down_to_drained() {
        let t0 = Instant::now();
        let n = node(3, true, t0);
        let at = |ms| n.view(t0 + Duration::from_millis(ms), false, STEP);
        assert_eq!((at(0).status, at(0).active_instances), ("draining", 3));
        assert_eq!(at(99).active_instances, 3);
        assert_eq!(at(100).active_instances, 2);
        assert_eq!(at(250).active_instances, 1);
        assert_eq!((at(300).status, at(300).active_instances), ("drained", 0));
        assert_eq!(at(10_000).active_instances, 0);
    }

    #[test]
    fn an_active_or_stuck_node_keeps_its_instances() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(60);
        assert_eq!(node(3, false, t0).view(later, false, STEP).status, "active");
        assert_eq!(node(3, false, t0).instances_at(later, false, STEP), 3);
        assert_eq!(node(3, true, t0).view(later, true, STEP).status, "draining");
        assert_eq!(node(3, true, t0).instances_at(later, true, STEP), 3);
    }

    #[test]
    fn settling_keeps_the_count_and_restarts_the_clock() {
        let t0 = Instant::now();
        let mut n = node(5, true, t0);
        let t1 = t0 + Duration::from_millis(250);
        n.settle(t1, false, STEP);
        assert_eq!((n.instances, n.since), (3, t1));
        assert_eq!(n.instances_at(t1 + STEP, false, STEP), 2);
        assert_eq!(node(2, true, t0).instances_at(t0, false, Duration::ZERO), 0);
    }

    #[test]
    fn the_region_is_the_name_before_worker() {
        let n = node(0, false, Instant::now());
        assert_eq!(n.view(n.since, false, STEP).region, "us-east");
        assert_eq!(region_of("ap-south-worker-6"), "ap-south");
        assert_eq!(region_of("odd"), "odd");
    }
}
