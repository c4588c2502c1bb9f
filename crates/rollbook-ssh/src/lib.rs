//! rollbook's SSH runner, on russh.
//!
//! One connection per host per run, opened on first use and shared by every step on that
//! host; each attempt is a channel on it, at most `channels_per_host` at once (OpenSSH's
//! default `MaxSessions` is 10). At most `max_connections` are open at once: at the cap the
//! connection unused for longest is closed ([`pool`]); new connections are paced so that a
//! fan-out does not trip a server's `MaxStartups` ([`pace`]). Host keys are checked strictly against known_hosts. A
//! command runs in a process group of its own on the host, so a timeout or Ctrl-C ends it
//! there too, not only here; that group is reported for the journal, ends when its session is
//! gone (a watcher on the host, see `remote`), and a retry or a `resume` makes sure the
//! previous attempt's group is gone before the command runs again.

pub mod config;
mod connect;
mod pace;
mod pool;
mod remote;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rollbook_exec::ProcessGroup;
use rollbook_exec::result::CommandResult;
use rollbook_exec::runner::{Attempt, BoxFuture, LineSplitter, Outcome, Runner, Stream, Tail};
use rollbook_plan::action::{Action, SshCommand};
use russh::ChannelMsg;
use russh::client::Handle;
use tokio::sync::Semaphore;

pub use connect::Target;
use connect::{HostKeyCheck, connect};

/// Why a host could not be reached. A step's own failure (a non-zero exit) is not one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TCP connection or the SSH handshake failed.
    #[error("{0}")]
    Connect(String),
    /// The host's key is unknown or does not match known_hosts.
    #[error("{0}")]
    HostKey(String),
    /// No offered key or agent identity was accepted.
    #[error("{0}")]
    Auth(String),
    /// The connection is up but a channel (a session for a command) could not be opened.
    #[error("{0}")]
    Channel(String),
}

/// Settings that come from the command line and the operator's environment rather than the
/// plan. The caller reads the environment (`HOME`, the login name, `SSH_AUTH_SOCK`); this
/// crate never does.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// `--identity`: tried first after the agent.
    pub identity: Option<PathBuf>,
    /// `--known-hosts`: checked first, before `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
    /// Commands in flight on one connection at most (sshd's `MaxSessions` is 10 by default).
    pub channels_per_host: usize,
    /// How often an idle connection is probed, so a dead host is noticed.
    pub keepalive: Duration,
    /// Bytes of stdout and stderr kept in the result document.
    pub tail_bytes: usize,
    /// The local user's home (for `~/.ssh`).
    pub home: PathBuf,
    /// The user to log in as when nothing else says.
    pub default_user: String,
    /// The ssh-agent socket whose keys are tried first; `None`: no agent.
    pub agent_socket: Option<PathBuf>,
    /// Connections open at once at most, idle ones included (each is a file descriptor: the
    /// caller keeps this below the open-files limit). At the cap, the connection unused for
    /// longest is closed; when all are in use, a step on another host waits for one.
    pub max_connections: usize,
    /// SSH handshakes (connect to authenticated) in progress at once, in all.
    pub handshakes_at_once: usize,
    /// SSH handshakes in progress at once with one server (address and port): below sshd's
    /// default `MaxStartups` of 10, past which it drops new connections.
    pub handshakes_per_server: usize,
}

impl SshOptions {
    /// The usual settings for a local user whose home is `home` and who logs in as
    /// `default_user` when nothing else says; no agent, no extra key or known_hosts file.
    pub fn new(home: PathBuf, default_user: String) -> Self {
        SshOptions {
            identity: None,
            known_hosts: None,
            channels_per_host: 8,
            keepalive: Duration::from_secs(15),
            tail_bytes: 64 * 1024,
            home,
            default_user,
            agent_socket: None,
            max_connections: 512,
            handshakes_at_once: 64,
            handshakes_per_server: 8,
        }
    }
}

/// An open, authenticated connection and the channels it may carry at once.
struct Connection {
    handle: Handle<HostKeyCheck>,
    channels: Arc<Semaphore>,
}

/// One use of a host's connection (see [`pool::Lease`]).
type Lease<'a> = pool::Lease<'a, Target, Connection>;

/// The runner for `ssh:` steps.
pub struct SshRunner {
    options: SshOptions,
    opened: std::sync::atomic::AtomicUsize,
    /// At most one connection per host, at most `max_connections` in all.
    connections: pool::Pool<Target, Connection>,
    pacer: pace::Pacer,
}

impl SshRunner {
    /// A runner with no connections yet: each host is connected on its first step.
    pub fn new(options: SshOptions) -> Self {
        SshRunner {
            connections: pool::Pool::new(options.max_connections),
            pacer: pace::Pacer::new(options.handshakes_at_once, options.handshakes_per_server),
            options,
            opened: Default::default(),
        }
    }

    /// Connections opened so far (one per host, unless one broke).
    pub fn connections_opened(&self) -> usize {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Where and as whom a step connects: the plan's settings win, then `~/.ssh/config`, then
    /// the defaults (port 22, the local user, the usual key files).
    pub fn target(&self, cmd: &SshCommand) -> Target {
        let o = &self.options;
        let from_config = config::for_host(&cmd.host, &o.home);
        let address = if cmd.address != cmd.host {
            cmd.address.clone()
        } else {
            from_config
                .host_name
                .clone()
                .unwrap_or_else(|| cmd.address.clone())
        };
        let mut identity_files = Vec::new();
        identity_files.extend(cmd.identity_file.as_ref().map(PathBuf::from));
        identity_files.extend(o.identity.clone());
        identity_files.extend(from_config.identity_files.clone());
        for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
            identity_files.push(o.home.join(".ssh").join(name));
        }
        let mut known_hosts = Vec::new();
        known_hosts.extend(cmd.known_hosts.as_ref().map(PathBuf::from));
        known_hosts.extend(o.known_hosts.clone());
        known_hosts.push(o.home.join(".ssh/known_hosts"));
        Target {
            name: cmd.host.clone(),
            address,
            port: cmd.port.or(from_config.port).unwrap_or(22),
            user: cmd
                .user
                .clone()
                .or(from_config.user)
                .unwrap_or_else(|| o.default_user.clone()),
            identity_files,
            known_hosts,
            policy: cmd.host_key_policy,
            connect_timeout: cmd.connect_timeout.unwrap_or(Duration::from_secs(10)),
        }
    }

    /// The host's connection, opened if there is none or the last one broke (after the
    /// handshake's turn: [`pace`]), once the pool has room for it.
    async fn connection(&self, target: &Target) -> Result<Lease<'_>, Error> {
        let alive = |c: &Connection| !c.handle.is_closed();
        let open = || async {
            let _turn = self.pacer.permit(&target.address, target.port).await;
            let handle = connect(
                target,
                self.options.keepalive,
                self.options.agent_socket.as_deref(),
            )
            .await?;
            self.opened
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(Connection {
                handle,
                channels: Arc::new(Semaphore::new(self.options.channels_per_host.max(1))),
            })
        };
        self.connections.checkout(target, alive, open).await
    }

    async fn run_command(&self, cmd: &SshCommand, attempt: Attempt) -> Outcome {
        let target = self.target(cmd);
        let conn = match self.connection(&target).await {
            Ok(c) => c,
            Err(e) => return Outcome::failed(e.to_string()),
        };
        let Ok(_permit) = conn.channels.clone().acquire_owned().await else {
            return Outcome::failed("the connection closed");
        };
        if let Err(outcome) = end_previous(&conn, &target, cmd, &attempt).await {
            return outcome;
        }
        if let Some(upload) = &cmd.upload {
            return self.upload(&conn, &target, cmd, upload, attempt).await;
        }
        let (remote, stdin) = remote::command(cmd);
        let started = Instant::now();
        let mut run = match Exec::start(&conn, &remote, stdin.as_deref(), Input::KeptOpen).await {
            Ok(r) => r.on(target.label()),
            Err(e) => return Outcome::failed(format!("{}: {e}", target.label())),
        };
        let finished = tokio::select! {
            done = run.collect(&attempt, self.options.tail_bytes) => done,
            _ = attempt.cancel.cancelled() => {
                run.await_group(&attempt, Duration::from_secs(3)).await;
                if let Some(group) = &run.group {
                    remote::kill_group(&conn.handle, group.pgid, cmd.sudo).await;
                }
                let _ = run.channel.close().await;
                return Outcome::failed(format!(
                    "cancelled: the command was stopped on {}",
                    target.label()
                ));
            }
        };
        let (code, stdout, stderr, dropped) = finished;
        CommandResult::new(code, stdout, stderr)
            .with("host", target.name.clone())
            .with("elapsed_ms", started.elapsed().as_millis() as u64)
            .with("stdout_truncated_bytes", dropped.0)
            .with("stderr_truncated_bytes", dropped.1)
            .into_outcome("no exit status", &format!(" on {}", target.label()))
    }

    /// Copies a local file to the host through a channel, checked by size and SHA-256 there
    /// before it is moved into place.
    async fn upload(
        &self,
        conn: &Connection,
        target: &Target,
        cmd: &SshCommand,
        upload: &rollbook_plan::action::Upload,
        attempt: Attempt,
    ) -> Outcome {
        let bytes = match tokio::fs::read(&upload.from).await {
            Ok(b) => b,
            Err(e) => return Outcome::failed(format!("cannot read {}: {e}", upload.from)),
        };
        let digest = {
            use sha2::{Digest, Sha256};
            Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let remote =
            remote::upload_command(&upload.to, upload.mode, &digest, bytes.len(), cmd.sudo);
        let mut run = match Exec::start(conn, &remote, Some(&bytes), Input::Closed).await {
            Ok(r) => r,
            Err(e) => return Outcome::failed(format!("{}: {e}", target.label())),
        };
        let (code, stdout, stderr, _) = tokio::select! {
            done = run.collect(&attempt, self.options.tail_bytes) => done,
            _ = attempt.cancel.cancelled() => return Outcome::failed("cancelled during the upload"),
        };
        let result = CommandResult::new(code, stdout, stderr)
            .without_json()
            .with("host", target.name.clone())
            .with("bytes", bytes.len())
            .with("sha256", digest.clone());
        if result.exit_code == Some(0) {
            attempt.output.line(
                Stream::Stdout,
                &format!(
                    "uploaded {} -> {}:{} ({} bytes, sha256 {digest})",
                    upload.from,
                    target.name,
                    upload.to,
                    bytes.len()
                ),
            );
            Outcome::Succeeded {
                result: result.to_value(),
            }
        } else {
            let last = result.last_stderr_line();
            Outcome::Failed {
                message: format!("upload to {}:{} failed: {last}", target.label(), upload.to),
                result: Some(result.to_value()),
            }
        }
    }
}

/// The node's previous attempt (a retry, or the one in flight when an earlier controller died)
/// must not run beside this one: if it named a process group on this host, the host is asked
/// to stop that group if it still runs ([`remote::end_group_command`]), and the output says
/// so. When the host cannot be asked or the group not stopped, the attempt fails instead.
///
/// A group on another host (the plan changed the step's host since) cannot be looked at from
/// this connection and is left alone; `resume` has named it.
async fn end_previous(
    conn: &Connection,
    target: &Target,
    cmd: &SshCommand,
    attempt: &Attempt,
) -> Result<(), Outcome> {
    let label = target.label();
    let Some(previous) = attempt
        .previous
        .as_ref()
        .filter(|g| g.host.as_deref() == Some(label.as_str()))
    else {
        return Ok(());
    };
    let check = remote::end_group_command(previous.pgid, previous.leader_start, cmd.sudo);
    let asked = async {
        let mut run = Exec::start(conn, &check, None, Input::Closed).await?;
        let quiet = Attempt::new(
            attempt.node.clone(),
            attempt.number,
            Default::default(),
            rollbook_exec::runner::OutputSink::discard(),
        );
        let (_, stdout, stderr, _) = run.collect(&quiet, 4096).await;
        Ok::<_, String>((remote::ended(&stdout), stderr))
    };
    // The host takes 4.5 s at most (half a second, TERM, 2 s, KILL, 2 s).
    let answer = tokio::select! {
        answer = tokio::time::timeout(Duration::from_secs(30), asked) => answer,
        _ = attempt.cancel.cancelled() => return Err(Outcome::failed(format!(
            "cancelled while making sure the previous attempt's {previous} had ended"
        ))),
    };
    let why = match answer {
        Ok(Ok((Some(remote::Ended::Gone), _))) => return Ok(()),
        Ok(Ok((Some(remote::Ended::Stopped), _))) => {
            attempt.output.line(
                Stream::Stderr,
                &format!("rollbook: stopped the previous attempt's {previous}, still running"),
            );
            return Ok(());
        }
        Ok(Ok((None, stderr))) => stderr
            .trim()
            .lines()
            .last()
            .unwrap_or("it is still running after KILL")
            .to_string(),
        Ok(Err(e)) => format!("cannot check it: {e}"),
        Err(_) => "the host did not answer within 30 s".to_string(),
    };
    Err(Outcome::failed(format!(
        "the previous attempt's {previous} may still be running and could not be stopped: {why}; not starting the command beside it"
    )))
}

/// What a command's input gets after what is sent on it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Input {
    /// Its end: the command reads all of it, then end of file.
    Closed,
    /// Nothing: it stays open until the channel closes, for the command's watcher
    /// ([`remote::command`]).
    KeptOpen,
}

/// A command running in a channel.
struct Exec {
    channel: russh::Channel<russh::client::Msg>,
    /// The host as the journal names it, for the group.
    host: String,
    /// The remote process group, once the wrapper has told it.
    group: Option<ProcessGroup>,
}

type Collected = (Option<i64>, String, String, (usize, usize));

impl Exec {
    async fn start(
        conn: &Connection,
        remote: &str,
        stdin: Option<&[u8]>,
        input: Input,
    ) -> Result<Exec, String> {
        let channel = conn
            .handle
            .channel_open_session()
            .await
            .map_err(|e| format!("opening a channel: {e}"))?;
        channel
            .exec(true, remote)
            .await
            .map_err(|e| format!("starting the command: {e}"))?;
        if let Some(data) = stdin {
            channel
                .data(data)
                .await
                .map_err(|e| format!("sending the script: {e}"))?;
        }
        if input == Input::Closed {
            channel
                .eof()
                .await
                .map_err(|e| format!("closing stdin: {e}"))?;
        }
        Ok(Exec {
            channel,
            host: String::new(),
            group: None,
        })
    }

    /// The command runs on `host` (its label): the group it announces is on that host.
    fn on(mut self, host: String) -> Self {
        self.host = host;
        self
    }

    /// Whether `line` is the wrapper's announcement of the command's process group; the first
    /// one is kept and reported for the journal.
    fn announced(&mut self, line: &str, attempt: &Attempt) -> bool {
        if self.group.is_some() {
            return false;
        }
        let Some((pgid, leader_start)) = remote::announced_group(line) else {
            return false;
        };
        let group = ProcessGroup {
            host: Some(self.host.clone()),
            machine: None,
            pgid,
            leader_start,
        };
        attempt.processes.started(group.clone());
        self.group = Some(group);
        true
    }

    /// After a cancel that came before the wrapper named its process group: reads on until it
    /// does (or `within` passes), so the group can still be stopped.
    async fn await_group(&mut self, attempt: &Attempt, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.group.is_none() {
            let msg = tokio::time::timeout_at(deadline, self.channel.wait()).await;
            match msg {
                Ok(Some(ChannelMsg::ExtendedData { data, ext: 1 })) => {
                    let text = String::from_utf8_lossy(&data);
                    for line in text.lines() {
                        if self.announced(line, attempt) {
                            break;
                        }
                    }
                }
                Ok(Some(ChannelMsg::Close)) | Ok(None) | Err(_) => return,
                Ok(Some(_)) => {}
            }
        }
    }

    /// Reads output until the command ends: (exit code, stdout tail, stderr tail, dropped bytes).
    async fn collect(&mut self, attempt: &Attempt, limit: usize) -> Collected {
        let mut out = Lines::new(Stream::Stdout, limit);
        let mut err = Lines::new(Stream::Stderr, limit);
        let mut code = None;
        while let Some(msg) = self.channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    for line in out.split(&data) {
                        out.note(&line, attempt);
                    }
                }
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    for line in err.split(&data) {
                        // The wrapper's first words: the process group, not output.
                        if !self.announced(&line, attempt) {
                            err.note(&line, attempt);
                        }
                    }
                }
                ChannelMsg::ExitStatus { exit_status } => code = Some(i64::from(exit_status)),
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    err.note(&format!("killed by signal {signal_name:?}"), attempt);
                    code = code.or(Some(255));
                }
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        let (stdout, out_dropped) = out.finish(attempt);
        let (stderr, err_dropped) = err.finish(attempt);
        (code, stdout, stderr, (out_dropped, err_dropped))
    }
}

/// Splits a stream's bytes into lines for the log ([`LineSplitter`]), keeping a bounded tail
/// for the result.
struct Lines {
    stream: Stream,
    splitter: LineSplitter,
    tail: Tail,
}

impl Lines {
    fn new(stream: Stream, limit: usize) -> Self {
        Lines {
            stream,
            splitter: LineSplitter::default(),
            tail: Tail::new(limit),
        }
    }

    /// The lines `data` completes.
    fn split(&mut self, data: &[u8]) -> Vec<String> {
        self.splitter.feed(data)
    }

    fn note(&mut self, line: &str, attempt: &Attempt) {
        attempt.output.line(self.stream, line);
        self.tail.push_line(line);
    }

    fn finish(mut self, attempt: &Attempt) -> (String, usize) {
        if let Some(line) = self.splitter.finish() {
            self.note(&line, attempt);
        }
        self.tail.finish()
    }
}

impl Runner for SshRunner {
    fn kind(&self) -> &'static str {
        "ssh"
    }

    fn check<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let Action::Ssh(cmd) = action else {
                return Err("not an ssh step".into());
            };
            let target = self.target(cmd);
            let conn = self.connection(&target).await.map_err(|e| e.to_string())?;
            let mut what = format!("host key ok, authenticated as {}", target.user);
            if cmd.sudo {
                let mut run = Exec::start(&conn, "sudo -n true", None, Input::Closed).await?;
                let probe = Attempt::new(
                    Arc::from("check"),
                    1,
                    Default::default(),
                    rollbook_exec::runner::OutputSink::discard(),
                );
                let (code, _, stderr, _) = run.collect(&probe, 4096).await;
                if code != Some(0) {
                    return Err(format!(
                        "{what}, but `sudo -n true` failed: {}",
                        stderr.trim().lines().last().unwrap_or("no answer")
                    ));
                }
                what.push_str(", sudo ok");
            }
            Ok(what)
        })
    }

    fn run<'a>(&'a self, action: &'a Action, attempt: Attempt) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match action {
                Action::Ssh(cmd) => self.run_command(cmd, attempt).await,
                _ => Outcome::failed("the ssh runner got another kind of step"),
            }
        })
    }
}
