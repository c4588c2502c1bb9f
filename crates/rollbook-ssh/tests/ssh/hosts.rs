//! Host keys, keys, and unreachable hosts: each refused with a message that says what to do.

use rollbook_exec::runner::{Outcome, Runner};
use rollbook_plan::action::{Action, HostKeyPolicyName};
use rollbook_ssh::{SshOptions, SshRunner};

use crate::{attempt, fleet};

fn failure(out: Outcome) -> String {
    match out {
        Outcome::Failed { message, .. } => message,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_host_key_is_refused_with_its_fingerprint() {
    let f = fleet();
    let message = failure(
        attempt(
            &f.runner(),
            f.other(201, "touch /tmp/rollbook-should-not-run"),
        )
        .await
        .0,
    );
    assert!(
        message.starts_with("unknown host key for 127.0.1.201:"),
        "{message}"
    );
    assert!(message.contains("ssh-ed25519 SHA256:"), "{message}");
    assert!(
        message.contains(&format!("ssh-keyscan -p {} 127.0.1.201", f.port)),
        "{message}"
    );
}

#[tokio::test]
async fn a_changed_host_key_is_refused_loudly() {
    let f = fleet();
    let message = failure(attempt(&f.runner(), f.other(200, "true")).await.0);
    assert!(
        message.starts_with("HOST KEY CHANGED for 127.0.1.200:"),
        "{message}"
    );
    assert!(message.contains("Nothing was run"), "{message}");
}

#[tokio::test]
async fn hashed_known_hosts_entries_are_understood() {
    let f = fleet();
    // The file must really be hashed (scripts/ssh-fleet stops when `ssh-keygen -H` fails):
    // a plain copy would let this test pass without reading a hashed entry.
    let hashed = std::fs::read_to_string(f.dir.join("known_hosts_hashed")).unwrap();
    assert!(
        !hashed.is_empty()
            && hashed.lines().all(|l| l.starts_with("|1|"))
            && !hashed.contains("127.0.0.10"),
        "known_hosts_hashed is not hashed:\n{hashed}"
    );
    let runner = SshRunner::new(SshOptions {
        identity: Some(f.key.clone()),
        known_hosts: Some(f.dir.join("known_hosts_hashed")),
        ..SshOptions::new(f.dir.join("no-home"), f.user.clone())
    });
    let (out, _) = attempt(&runner, f.command(10, "true")).await;
    assert!(matches!(out, Outcome::Succeeded { .. }), "{out:?}");
}

#[tokio::test]
async fn accept_new_learns_an_unknown_key_and_writes_it_down() {
    let f = fleet();
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_hosts");
    let mut cmd = f.other(201, "true");
    cmd.known_hosts = Some(known.display().to_string());
    cmd.host_key_policy = HostKeyPolicyName::AcceptNew;
    let runner = f.runner();
    let (out, _) = attempt(&runner, cmd.clone()).await;
    assert!(matches!(out, Outcome::Succeeded { .. }), "{out:?}");
    let learned = std::fs::read_to_string(&known).unwrap();
    assert!(
        learned.contains(&format!("[127.0.1.201]:{}", f.port)),
        "{learned}"
    );
    // Learned once; the next connection is checked against it (and passes).
    let (out, _) = attempt(&f.runner(), cmd).await;
    assert!(matches!(out, Outcome::Succeeded { .. }), "{out:?}");
}

#[tokio::test]
async fn a_key_the_host_does_not_accept_is_refused_naming_host_and_user() {
    let f = fleet();
    let runner = SshRunner::new(SshOptions {
        identity: Some(f.dir.join("stranger_ed25519")),
        known_hosts: Some(f.known_hosts.clone()),
        ..SshOptions::new(f.dir.join("no-home"), f.user.clone())
    });
    let message = failure(attempt(&runner, f.command(11, "true")).await.0);
    assert!(
        message.starts_with(&format!(
            "127.0.0.11:{} did not accept any key as {}",
            f.port, f.user
        )),
        "{message}"
    );
    assert!(message.contains("stranger_ed25519 (refused)"), "{message}");
}

#[tokio::test]
async fn a_refused_connection_says_so() {
    let f = fleet();
    let mut cmd = f.command(12, "true");
    cmd.port = Some(1);
    let message = failure(attempt(&f.runner(), cmd).await.0);
    assert!(
        message.contains("127.0.0.12:1 refused the connection"),
        "{message}"
    );
}

/// As unprivileged users (as root, "sudo ok" would prove nothing): one whom sudoers lets
/// become root, and one it does not.
#[tokio::test]
async fn the_preflight_checks_auth_and_sudo() {
    let f = fleet();
    let mut cmd = f.command_as(&f.plain_user, 13, "true");
    cmd.sudo = true;
    let result = f.runner().check(&Action::Ssh(cmd)).await;
    assert_eq!(
        result.unwrap(),
        format!("host key ok, authenticated as {}, sudo ok", f.plain_user)
    );
    let mut cmd = f.command_as(&f.nosudo_user, 13, "true");
    cmd.sudo = true;
    let refused = f.runner().check(&Action::Ssh(cmd)).await.unwrap_err();
    assert!(
        refused.starts_with(&format!(
            "host key ok, authenticated as {}, but `sudo -n true` failed",
            f.nosudo_user
        )),
        "{refused}"
    );
    let unknown = f.runner().check(&Action::Ssh(f.other(201, "true"))).await;
    assert!(unknown.unwrap_err().starts_with("unknown host key"));
}

#[tokio::test]
async fn a_key_with_a_passphrase_says_to_use_the_agent() {
    let f = fleet();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("locked_ed25519");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "correct horse", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let runner = SshRunner::new(SshOptions {
        identity: Some(key.clone()),
        known_hosts: Some(f.known_hosts.clone()),
        ..SshOptions::new(f.dir.join("no-home"), f.user.clone())
    });
    let message = failure(attempt(&runner, f.command(14, "true")).await.0);
    assert!(
        message.contains("locked_ed25519 (needs a passphrase: add it to ssh-agent"),
        "{message}"
    );
}

#[tokio::test]
async fn a_host_that_never_answers_times_out_with_the_limit_in_the_message() {
    let f = fleet();
    // Accepts TCP, never speaks SSH.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut cmd = f.command(1, "true");
    cmd.port = Some(port);
    cmd.connect_timeout = Some(std::time::Duration::from_secs(1));
    let message = failure(attempt(&f.runner(), cmd).await.0);
    assert_eq!(
        message,
        format!("connecting to 127.0.0.1:{port} timed out after 1s")
    );
    drop(silent);
}
