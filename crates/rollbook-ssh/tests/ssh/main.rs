//! The SSH runner against real OpenSSH servers on loopback (`scripts/ssh-fleet`, started by
//! `scripts/test`). Without the fleet these tests fail and say how to start it.

// Helpers of a test binary, not an API: the crate's `missing_docs` is for its library.
#![allow(missing_docs)]

mod groups;
mod hosts;
mod pacing;
mod rolling;
mod run;
mod values;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rollbook_exec::runner::{Attempt, Outcome, OutputLine, OutputSink, Runner};
use rollbook_plan::action::{Action, HostKeyPolicyName, SshCommand};
use rollbook_ssh::{SshOptions, SshRunner};
use tokio_util::sync::CancellationToken;

/// Where the fleet is, from the environment `scripts/ssh-fleet` writes.
pub struct Fleet {
    pub dir: PathBuf,
    pub port: u16,
    /// Who runs the tests (root where CI runs): most tests log in as this user.
    pub user: String,
    /// An unprivileged user whom sudoers lets become root (`sudo -n`), for the tests where
    /// privileges matter.
    pub plain_user: String,
    /// An unprivileged user with no sudo rights.
    pub nosudo_user: String,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    pub hosts: usize,
}

pub fn fleet() -> Fleet {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: the SSH tests need the test fleet. Start it with \
                 `scripts/ssh-fleet up /tmp/rollbook-fleet && source /tmp/rollbook-fleet/env` \
                 (scripts/test does this)"
            )
        })
    };
    Fleet {
        dir: PathBuf::from(var("ROLLBOOK_TEST_SSH_DIR")),
        port: var("ROLLBOOK_TEST_SSH_PORT").parse().unwrap(),
        user: var("ROLLBOOK_TEST_SSH_USER"),
        plain_user: var("ROLLBOOK_TEST_SSH_PLAIN_USER"),
        nosudo_user: var("ROLLBOOK_TEST_SSH_NOSUDO_USER"),
        key: PathBuf::from(var("ROLLBOOK_TEST_SSH_KEY")),
        known_hosts: PathBuf::from(var("ROLLBOOK_TEST_SSH_KNOWN_HOSTS")),
        hosts: var("ROLLBOOK_TEST_SSH_HOSTS").parse().unwrap(),
    }
}

impl Fleet {
    /// A runner that knows the fleet's client key and known_hosts, and no agent.
    pub fn runner(&self) -> SshRunner {
        SshRunner::new(self.options())
    }

    /// The options of [`Fleet::runner`].
    pub fn options(&self) -> SshOptions {
        SshOptions {
            identity: Some(self.key.clone()),
            known_hosts: Some(self.known_hosts.clone()),
            ..SshOptions::new(self.dir.join("no-home"), self.user.clone())
        }
    }

    /// An `ssh` action on fleet address `127.0.0.<n>`.
    pub fn command(&self, n: u8, run: &str) -> SshCommand {
        self.at(&format!("127.0.0.{n}"), run)
    }

    /// An `ssh` action on fleet address `127.0.0.<n>`, logged in as `user`.
    pub fn command_as(&self, user: &str, n: u8, run: &str) -> SshCommand {
        SshCommand {
            user: Some(user.to_string()),
            ..self.command(n, run)
        }
    }

    /// An `ssh` action on the other sshd: `127.0.1.200` (changed key) or `.201` (unknown).
    pub fn other(&self, n: u8, run: &str) -> SshCommand {
        self.at(&format!("127.0.1.{n}"), run)
    }

    fn at(&self, address: &str, run: &str) -> SshCommand {
        SshCommand {
            host: address.to_string(),
            address: address.to_string(),
            port: Some(self.port),
            user: Some(self.user.clone()),
            command: Some(run.into()),
            script: None,
            sudo: false,
            env: Vec::new(),
            upload: None,
            identity_file: None,
            known_hosts: None,
            host_key_policy: HostKeyPolicyName::Strict,
            connect_timeout: None,
        }
    }
}

/// Runs one attempt and collects what it printed.
pub async fn attempt(runner: &SshRunner, cmd: SshCommand) -> (Outcome, Vec<String>) {
    attempt_with(runner, cmd, CancellationToken::new()).await
}

pub async fn attempt_with(
    runner: &SshRunner,
    cmd: SshCommand,
    cancel: CancellationToken,
) -> (Outcome, Vec<String>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<OutputLine>();
    let action = Action::Ssh(cmd);
    let outcome = runner
        .run(
            &action,
            Attempt::new(
                Arc::from("test"),
                1,
                cancel,
                OutputSink::new(Arc::from("test"), tx),
            ),
        )
        .await;
    let mut lines = Vec::new();
    while let Ok(l) = rx.try_recv() {
        lines.push(l.line);
    }
    (outcome, lines)
}

/// A unique marker for process-table checks.
pub fn marker() -> String {
    static N: Mutex<u32> = Mutex::new(0);
    let mut n = N.lock().unwrap();
    *n += 1;
    format!("{}{:03}", std::process::id() % 100_000, *n)
}
