//! Binding every listener, then serving them all until told to stop.
//!
//! Every address is bound before anything is served: a port that is taken fails the start
//! with its address named, and nothing answers half a fleet.

use std::fmt;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, Role};
use crate::routes;
use crate::state::Shared;
use crate::tls::{self, TlsListener};
use crate::units::{EDGE_PROXY, LOAD_BALANCER, NODE_AGENT};

/// Why the fleet did not start.
#[derive(Debug)]
pub enum Error {
    Config(String),
    Tls(String),
    Bind {
        /// Which listener (`the platform API`, `us-east-op-1's /health`, ...).
        what: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => f.write_str(m),
            Error::Tls(m) => write!(f, "TLS: {m}"),
            Error::Bind { what, addr, source } => match source.kind() {
                ErrorKind::AddrInUse => write!(
                    f,
                    "{addr} is in use: is another fleet running? ({what} cannot listen there; \
                     `ss -ltnp 'sport = :{}'` shows who does)",
                    addr.port()
                ),
                ErrorKind::AddrNotAvailable => write!(
                    f,
                    "{addr} is not an address of this machine ({what}): only loopback \
                     addresses 127.0.0.0/8 are expected in fleet.json ({source})"
                ),
                ErrorKind::PermissionDenied => write!(
                    f,
                    "{addr}: permission denied ({what}; ports below 1024 need privileges)"
                ),
                _ => write!(f, "{addr}: cannot listen ({what}): {source}"),
            },
        }
    }
}

impl std::error::Error for Error {}

/// Where each listener ended up (ports given as 0 in fleet.json are resolved here).
#[derive(Debug, Clone)]
pub struct Addrs {
    /// The platform API (`api.port`).
    pub api: SocketAddr,
    /// Load-balancer health (`api.health_ports[0]`).
    pub load_balancer: SocketAddr,
    /// Edge-proxy health (`api.health_ports[1]`).
    pub edge_proxy: SocketAddr,
    /// Node-agent health over TLS (`api.tls_port`).
    pub tls: SocketAddr,
    /// Each operator host's own `/health`, by host name, in fleet.json's order.
    pub operators: Vec<(String, SocketAddr)>,
    /// The CA that signed the TLS listener's certificate.
    pub ca_file: PathBuf,
}

/// A running fleet. Dropping it stops every listener at once; [`Fleet::shutdown`] lets
/// requests in flight finish first.
pub struct Fleet {
    addrs: Addrs,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

enum Serves {
    Api,
    Aggregate(Role, &'static str),
    Tls,
    Operator(String),
}

struct Planned {
    name: &'static str,
    what: String,
    addr: SocketAddr,
    serves: Serves,
}

fn plan(config: &Config) -> Vec<Planned> {
    let ip = config.api.address;
    let at = |port| SocketAddr::new(ip, port);
    let mut planned = vec![
        Planned {
            name: "api",
            what: "the platform API".into(),
            addr: at(config.api.port),
            serves: Serves::Api,
        },
        Planned {
            name: "lb-health",
            what: "the load-balancer health endpoint".into(),
            addr: at(config.api.health_ports[0]),
            serves: Serves::Aggregate(Role::Operator, LOAD_BALANCER),
        },
        Planned {
            name: "edge-health",
            what: "the edge-proxy health endpoint".into(),
            addr: at(config.api.health_ports[1]),
            serves: Serves::Aggregate(Role::Operator, EDGE_PROXY),
        },
        Planned {
            name: "agents-tls",
            what: "the node-agent health endpoint (TLS)".into(),
            addr: at(config.api.tls_port),
            serves: Serves::Tls,
        },
    ];
    for host in config.with_role(Role::Operator) {
        planned.push(Planned {
            // Leaked once per operator host at start: a listener's name lives as long as it.
            name: Box::leak(host.name.clone().into_boxed_str()),
            what: format!("{}'s /health", host.name),
            addr: SocketAddr::new(host.address, config.api.operator_port),
            serves: Serves::Operator(host.name.clone()),
        });
    }
    planned
}

/// Reads `DIR/fleet.json`, loads or makes the CA in `DIR/tls`, binds every listener, and
/// serves them (on the current tokio runtime) until the [`Fleet`] is shut down or dropped.
pub async fn start(dir: &Path) -> Result<Fleet, Error> {
    let config = Config::load(dir).map_err(Error::Config)?;
    let pki = tls::prepare(dir, config.api.address).map_err(Error::Tls)?;

    let planned = plan(&config);
    let mut bound = Vec::with_capacity(planned.len());
    for p in planned {
        match TcpListener::bind(p.addr).await {
            Ok(listener) => bound.push((p, listener)),
            Err(source) => {
                return Err(Error::Bind {
                    what: p.what,
                    addr: p.addr,
                    source,
                });
            }
        }
    }

    let mut locals = Vec::with_capacity(bound.len());
    for (p, listener) in &bound {
        locals.push(listener.local_addr().map_err(|source| Error::Bind {
            what: p.what.clone(),
            addr: p.addr,
            source,
        })?);
    }
    let addrs = Addrs {
        api: locals[0],
        load_balancer: locals[1],
        edge_proxy: locals[2],
        tls: locals[3],
        operators: bound[4..]
            .iter()
            .zip(&locals[4..])
            .map(|((p, _), local)| (p.name.to_string(), *local))
            .collect(),
        ca_file: pki.ca_file.clone(),
    };

    let shared = Arc::new(Shared::new(dir, config));
    let (stop, _) = watch::channel(false);
    let mut tasks = Vec::with_capacity(bound.len());
    for (p, listener) in bound {
        let is_tls = matches!(p.serves, Serves::Tls);
        let router = match p.serves {
            Serves::Api => routes::api_router(shared.clone()),
            Serves::Aggregate(role, unit) => routes::aggregate_router(shared.clone(), role, unit),
            Serves::Tls => routes::aggregate_router(shared.clone(), Role::Worker, NODE_AGENT),
            Serves::Operator(host) => routes::operator_router(shared.clone(), host),
        };
        let router = routes::logged(router, p.name);
        tasks.push(if is_tls {
            let listener = TlsListener::new(listener, pki.server_config.clone(), p.name);
            spawn_serve(listener, router, &stop, p.name)
        } else {
            spawn_serve(listener, router, &stop, p.name)
        });
    }
    Ok(Fleet { addrs, stop, tasks })
}

/// Serves `router` on `listener` until `stop` says so (then lets requests in flight finish).
fn spawn_serve<L>(
    listener: L,
    router: Router,
    stop: &watch::Sender<bool>,
    name: &'static str,
) -> JoinHandle<()>
where
    L: axum::serve::Listener,
    L::Addr: fmt::Debug,
{
    let mut stopped = stop.subscribe();
    let signal = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(signal)
            .await;
        if let Err(e) = served {
            crate::log(format_args!("{name}: {e}"));
        }
    })
}

impl Fleet {
    pub fn addrs(&self) -> &Addrs {
        &self.addrs
    }

    /// Stops accepting, lets requests in flight finish for up to `grace`, then stops.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut self.tasks);
        let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
        let all = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(grace, all).await.is_err() {
            for a in aborts {
                a.abort();
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
