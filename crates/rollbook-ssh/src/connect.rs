//! Opening an authenticated connection to one host: the host key checked against
//! known_hosts (strictly unless the plan says `accept-new`), then the agent's keys, then
//! identity files. Every failure says which host and what to do.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rollbook_plan::action::HostKeyPolicyName;
use russh::client::{self, AuthResult, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey, known_hosts};

use crate::Error;

/// Where and as whom to connect, everything resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The name the plan used (for messages).
    pub name: String,
    /// The address connected to (from the inventory, `~/.ssh/config` or the name itself).
    pub address: String,
    /// The TCP port (22 unless the plan, the inventory or `~/.ssh/config` says otherwise).
    pub port: u16,
    /// The login user.
    pub user: String,
    /// Tried in order after the agent's keys.
    pub identity_files: Vec<PathBuf>,
    /// The plan's or `--known-hosts` file first, then `~/.ssh/known_hosts`.
    pub known_hosts: Vec<PathBuf>,
    /// What to do with a host key the known_hosts files do not have.
    pub policy: HostKeyPolicyName,
    /// How long the TCP connect and the handshake may take.
    pub connect_timeout: Duration,
}

impl Target {
    /// The host as messages name it: `web-1 (10.0.0.5:22)`, or `address:port` when the
    /// plan named the address itself.
    pub fn label(&self) -> String {
        if self.name == self.address {
            format!("{}:{}", self.address, self.port)
        } else {
            format!("{} ({}:{})", self.name, self.address, self.port)
        }
    }
}

/// Checks the server's key while the connection is set up, and says why it refused one.
pub struct HostKeyCheck {
    target: Target,
    verdict: Arc<Mutex<Option<String>>>,
}

fn fingerprint(key: &PublicKey) -> String {
    format!(
        "{} {}",
        key.algorithm().as_str(),
        key.fingerprint(HashAlg::Sha256)
    )
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = server_key else {
            *self.verdict.lock().expect("verdict lock") = Some(format!(
                "{} presented a host certificate; rollbook checks host keys against known_hosts only",
                self.target.label()
            ));
            return Ok(false);
        };
        let t = &self.target;
        for path in &t.known_hosts {
            match known_hosts::check_known_hosts_path(&t.address, t.port, key, path) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(russh::keys::Error::KeyChanged { line }) => {
                    *self.verdict.lock().expect("verdict lock") = Some(format!(
                        "HOST KEY CHANGED for {}: it now presents {}, but {}:{line} holds another key. \
                         This may be an attack, or the host was reinstalled. Nothing was run. If the \
                         change is expected, remove the old entry (`ssh-keygen -R '[{}]:{}' -f {}`) and add the new one.",
                        t.label(),
                        fingerprint(key),
                        path.display(),
                        t.address,
                        t.port,
                        path.display()
                    ));
                    return Ok(false);
                }
                Err(_) => {}
            }
        }
        if t.policy == HostKeyPolicyName::AcceptNew
            && let Some(path) = t.known_hosts.first()
        {
            return match known_hosts::learn_known_hosts_path(&t.address, t.port, key, path) {
                Ok(()) => Ok(true),
                Err(e) => {
                    *self.verdict.lock().expect("verdict lock") = Some(format!(
                        "{}: cannot record its new host key in {}: {e}",
                        t.label(),
                        path.display()
                    ));
                    Ok(false)
                }
            };
        }
        let file = t
            .known_hosts
            .first()
            .map_or("~/.ssh/known_hosts".to_string(), |p| {
                p.display().to_string()
            });
        *self.verdict.lock().expect("verdict lock") = Some(format!(
            "unknown host key for {}: {}. Check the fingerprint with the host's owner, then add it: \
             `ssh-keyscan -p {} {} >> {file}` (or set `host_key_policy: accept-new` to learn new hosts)",
            t.label(),
            fingerprint(key),
            t.port,
            t.address
        ));
        Ok(false)
    }
}

fn config(keepalive: Duration) -> Arc<client::Config> {
    Arc::new(client::Config {
        keepalive_interval: Some(keepalive),
        keepalive_max: 3,
        nodelay: true,
        ..client::Config::default()
    })
}

/// Connects, verifies the host key and authenticates.
pub async fn connect(
    target: &Target,
    keepalive: Duration,
    agent_socket: Option<&Path>,
) -> Result<Handle<HostKeyCheck>, Error> {
    let mut handle = handshake(target, keepalive).await?;
    authenticate(&mut handle, target, agent_socket).await?;
    Ok(handle)
}

/// Tries of a connection dropped before the SSH banner, the first one included.
const DROPPED_TRIES: u32 = 5;

/// The TCP connection and the SSH handshake up to the verified host key. A connection the
/// server drops before its banner (sshd past `MaxStartups`, a full listen queue) is tried
/// again after a short wait (50 ms, doubling, with jitter), all within `connect_timeout`.
async fn handshake(target: &Target, keepalive: Duration) -> Result<Handle<HostKeyCheck>, Error> {
    let label = target.label();
    let deadline = tokio::time::Instant::now() + target.connect_timeout;
    let mut tries = 0;
    loop {
        tries += 1;
        let verdict = Arc::new(Mutex::new(None));
        let handler = HostKeyCheck {
            target: target.clone(),
            verdict: verdict.clone(),
        };
        let attempt = client::connect(
            config(keepalive),
            (target.address.as_str(), target.port),
            handler,
        );
        let e = match tokio::time::timeout_at(deadline, attempt).await {
            Err(_) => {
                return Err(Error::Connect(format!(
                    "connecting to {label} timed out after {}s",
                    target.connect_timeout.as_secs()
                )));
            }
            Ok(Ok(h)) => return Ok(h),
            Ok(Err(e)) => e,
        };
        if let Some(v) = verdict.lock().expect("verdict lock").take() {
            return Err(Error::HostKey(v));
        }
        let wait = retry_wait(tries);
        if dropped_before_banner(&e)
            && tries < DROPPED_TRIES
            && tokio::time::Instant::now() + wait < deadline
        {
            tokio::time::sleep(wait).await;
            continue;
        }
        return Err(Error::Connect(match &e {
            russh::Error::IO(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                format!(
                    "{label} refused the connection (is sshd running on port {}?)",
                    target.port
                )
            }
            other => format!("connecting to {label}: {other}"),
        }));
    }
}

/// A connection refused, reset or closed before the handshake got anywhere: what an sshd
/// past `MaxStartups` or a full listen queue looks like, worth another try.
fn dropped_before_banner(e: &russh::Error) -> bool {
    use std::io::ErrorKind::{
        ConnectionAborted, ConnectionRefused, ConnectionReset, UnexpectedEof,
    };
    match e {
        russh::Error::Disconnect => true,
        russh::Error::IO(io) => matches!(
            io.kind(),
            ConnectionRefused | ConnectionReset | ConnectionAborted | UnexpectedEof
        ),
        _ => false,
    }
}

/// The wait before try `tries + 1`: 50 ms doubling, plus up to half of it again, so that
/// connections dropped together do not come back together.
fn retry_wait(tries: u32) -> Duration {
    let base = Duration::from_millis(50) * 2u32.pow(tries.saturating_sub(1).min(6));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base + base / 2 * (nanos % 1000) / 1000
}

async fn authenticate(
    handle: &mut Handle<HostKeyCheck>,
    target: &Target,
    agent_socket: Option<&Path>,
) -> Result<(), Error> {
    let mut tried = Vec::new();
    if let Some(socket) = agent_socket {
        match russh::keys::agent::client::AgentClient::connect_uds(socket).await {
            Ok(mut agent) => {
                let keys = agent.request_identities().await.unwrap_or_default();
                let count = keys.len();
                for identity in keys {
                    let key = identity.public_key().into_owned();
                    let hash = handle
                        .best_supported_rsa_hash()
                        .await
                        .ok()
                        .flatten()
                        .flatten();
                    if let Ok(AuthResult::Success) = handle
                        .authenticate_publickey_with(target.user.clone(), key, hash, &mut agent)
                        .await
                    {
                        return Ok(());
                    }
                }
                tried.push(format!("ssh-agent ({count} keys refused)"));
            }
            Err(e) => tried.push(format!("ssh-agent (cannot reach it: {e})")),
        }
    }
    for path in &target.identity_files {
        if !path.exists() {
            continue;
        }
        let key = match russh::keys::load_secret_key(path, None) {
            Ok(k) => k,
            Err(russh::keys::Error::KeyIsEncrypted) => {
                tried.push(format!(
                    "{} (needs a passphrase: add it to ssh-agent with `ssh-add {}`)",
                    path.display(),
                    path.display()
                ));
                continue;
            }
            Err(e) => {
                tried.push(format!("{} (unreadable: {e})", path.display()));
                continue;
            }
        };
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten();
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
        match handle
            .authenticate_publickey(target.user.clone(), key)
            .await
        {
            Ok(AuthResult::Success) => return Ok(()),
            Ok(AuthResult::Failure { .. }) => tried.push(format!("{} (refused)", path.display())),
            Err(e) => tried.push(format!("{} ({e})", path.display())),
        }
    }
    let tried = if tried.is_empty() {
        "no key: no ssh-agent, and none of the identity files exist".to_string()
    } else {
        tried.join(", ")
    };
    Err(Error::Auth(format!(
        "{} did not accept {} as {}: tried {tried}",
        target.label(),
        "any key",
        target.user
    )))
}
