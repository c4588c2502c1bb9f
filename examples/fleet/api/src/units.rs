//! Unit state on disk, read on every request, and the health rules.
//!
//! `DIR/hosts/<host>/units/<unit>` exists while the unit is active (the fleet's fake
//! `systemctl` writes and removes it); its content, trimmed, is the version it was started
//! with. A unit is healthy when it is active and not on `broken_version`.

use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::config::{Config, Role};

pub const OPERATOR: &str = "zeitwork-operator";
pub const LOAD_BALANCER: &str = "zeitwork-load-balancer";
pub const EDGE_PROXY: &str = "zeitwork-edge-proxy";
pub const NODE_AGENT: &str = "zeitwork-node-agent";

/// One unit of one host, as the disk says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    Inactive,
    /// Active, started with this version.
    Active(String),
    /// The file is there but cannot be read: counted as unhealthy.
    Unreadable(String),
}

pub fn units_dir(dir: &Path, host: &str) -> PathBuf {
    dir.join("hosts").join(host).join("units")
}

pub fn read(dir: &Path, host: &str, unit: &str) -> Unit {
    let path = units_dir(dir, host).join(unit);
    match std::fs::read_to_string(&path) {
        Ok(text) => Unit::Active(text.trim().to_string()),
        Err(e) if e.kind() == ErrorKind::NotFound => Unit::Inactive,
        Err(e) => Unit::Unreadable(format!("cannot read {}: {e}", path.display())),
    }
}

/// Why a unit is not healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    NotRunning { unit: String },
    Broken { unit: String, version: String },
    Unreadable(String),
}

impl Problem {
    /// The word an operator host's `/health` starts with: a stopped service is `unavailable`,
    /// a running but failing one `unhealthy`.
    pub fn verdict(&self) -> &'static str {
        match self {
            Problem::NotRunning { .. } => "unavailable",
            _ => "unhealthy",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotRunning { unit } => write!(f, "{unit} is not running"),
            Problem::Broken { unit, version } => write!(f, "{unit} {version} crash-loops"),
            Problem::Unreadable(message) => f.write_str(message),
        }
    }
}

/// `Ok` when `unit` of `host` is active and not on the broken version.
pub fn health(config: &Config, dir: &Path, host: &str, unit: &str) -> Result<(), Problem> {
    match read(dir, host, unit) {
        Unit::Inactive => Err(Problem::NotRunning { unit: unit.into() }),
        Unit::Active(v) if v == config.broken_version => Err(Problem::Broken {
            unit: unit.into(),
            version: v,
        }),
        Unit::Active(_) => Ok(()),
        Unit::Unreadable(message) => Err(Problem::Unreadable(message)),
    }
}

/// `unit` on every host of `role`: `Ok`, or one `host: problem` per failing host, in
/// fleet.json's order. A fleet without such hosts is healthy.
pub fn aggregate(config: &Config, dir: &Path, role: Role, unit: &str) -> Result<(), Vec<String>> {
    let failing: Vec<String> = config
        .with_role(role)
        .filter_map(|h| {
            health(config, dir, &h.name, unit)
                .err()
                .map(|p| format!("{}: {p}", h.name))
        })
        .collect();
    if failing.is_empty() {
        Ok(())
    } else {
        Err(failing)
    }
}
