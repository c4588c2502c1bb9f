//! New connections are paced: 100 hosts served by one sshd with OpenSSH's default
//! `MaxStartups 10:30:100` (it drops new connections while more than 10 are unauthenticated)
//! all connect when their steps start at once, and so does a runner capped at fewer
//! connections than hosts.

use std::sync::Arc;

use rollbook_exec::runner::Outcome;
use rollbook_plan::action::SshCommand;
use rollbook_ssh::{SshOptions, SshRunner};

use crate::{Fleet, attempt, fleet};

/// The address of the fleet's sshd with `MaxStartups 10:30:100`.
fn paced_address() -> String {
    std::env::var("ROLLBOOK_TEST_SSH_PACED_ADDRESS").unwrap_or_else(|_| {
        panic!(
            "ROLLBOOK_TEST_SSH_PACED_ADDRESS is not set: this fleet was started by an older \
             scripts/ssh-fleet; start it again (`scripts/ssh-fleet up DIR`) and source DIR/env"
        )
    })
}

/// `count` hosts (`paced-0`, ...) that are all the paced sshd, with a known_hosts file that
/// holds its key (the fleet's) for that address.
fn paced_hosts(f: &Fleet, count: usize, dir: &std::path::Path) -> Vec<SshCommand> {
    let address = paced_address();
    let key = std::fs::read_to_string(f.dir.join("host_ed25519.pub")).unwrap();
    let key: Vec<&str> = key.split_whitespace().take(2).collect();
    let known = dir.join("known_hosts");
    std::fs::write(
        &known,
        format!("[{address}]:{} {}\n", f.port, key.join(" ")),
    )
    .unwrap();
    (0..count)
        .map(|i| SshCommand {
            host: format!("paced-{i}"),
            address: address.clone(),
            known_hosts: Some(known.display().to_string()),
            ..f.command(2, "echo up")
        })
        .collect()
}

/// Runs every command at once on `runner`; the failures' messages.
async fn all_at_once(runner: SshRunner, commands: Vec<SshCommand>) -> (Vec<String>, usize) {
    let runner = Arc::new(runner);
    let mut set = tokio::task::JoinSet::new();
    for cmd in commands {
        let runner = runner.clone();
        set.spawn(async move { attempt(&runner, cmd).await });
    }
    let mut failures = Vec::new();
    while let Some(done) = set.join_next().await {
        match done.unwrap() {
            (Outcome::Succeeded { .. }, lines) => assert_eq!(lines, ["up"]),
            (other, _) => failures.push(format!("{other:?}")),
        }
    }
    (failures, runner.connections_opened())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_hosts_behind_one_sshd_with_max_startups_10_all_connect() {
    let f = fleet();
    let dir = tempfile::tempdir().unwrap();
    let commands = paced_hosts(&f, 100, dir.path());
    let (failures, opened) = all_at_once(f.runner(), commands).await;
    assert!(
        failures.is_empty(),
        "{} of 100 failed, the first: {}",
        failures.len(),
        failures[0]
    );
    assert_eq!(opened, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_fewer_connections_allowed_than_hosts_every_host_still_runs() {
    let f = fleet();
    let dir = tempfile::tempdir().unwrap();
    let commands = paced_hosts(&f, 40, dir.path());
    let runner = SshRunner::new(SshOptions {
        max_connections: 7,
        ..f.options()
    });
    let (failures, opened) = all_at_once(runner, commands).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(opened, 40);
}
