//! The HTTP side of the simulated Zeitwork platform in `examples/fleet`: the platform API the
//! rollback plans call (nodes, drains, deployments), the health endpoints they check, and
//! stand-ins for Slack and Statuspage that record what they are sent.
//!
//! - [`config`] — `DIR/fleet.json`.
//! - [`units`] — unit state on disk (`DIR/hosts/<host>/units/<unit>`) and the health rules.
//! - [`state`] — nodes, drains and recorded calls, in memory.
//! - [`routes`] — the routers of every listener.
//! - [`tls`] — the CA in `DIR/tls`, the server certificate, the TLS accept loop.
//! - [`listeners`] — bind everything, then serve ([`start`]).
//!
//! See README.md for the endpoints.

pub mod config;
pub mod listeners;
pub mod routes;
pub mod state;
pub mod tls;
pub mod units;

pub use listeners::{Addrs, Error, Fleet, start};

/// One line on stderr. A closed stderr loses the line; it never stops the server.
pub(crate) fn log(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
