//! A template value reaches the remote shell as data, in every position a plan can put it:
//! for arbitrary text, the command on the test sshd receives exactly the value and runs
//! nothing else. (The same positions as the local shell's test.)

use proptest::prelude::*;
use rollbook_exec::runner::Outcome;
use rollbook_plan::action::SshCommand;

use crate::*;

#[path = "../../../rollbook-plan/tests/support/shell_positions.rs"]
mod shell_positions;
use shell_positions::{ShellPosition, check_every_position, render, value};

/// Runs `position` with `value` on fleet host 127.0.0.2 (as `user`, through sudo when asked);
/// what it wrote to `$OUT`.
fn received(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    p: &ShellPosition,
    value: &str,
    sudo: bool,
) -> Vec<u8> {
    let f = fleet();
    let out = dir.join("out");
    let _ = std::fs::remove_file(&out);
    let text = render(p.template, value);
    let base = if sudo {
        f.command_as(&f.plain_user, 2, "")
    } else {
        f.command(2, "")
    };
    let cmd = SshCommand {
        command: (!p.script).then(|| text.clone()),
        script: p.script.then_some(text),
        sudo,
        env: vec![
            ("OUT".into(), out.display().to_string()),
            ("CANARY".into(), dir.join("canary").display().to_string()),
        ],
        ..base
    };
    let (outcome, lines) = rt.block_on(attempt(runner(), cmd));
    assert!(
        matches!(outcome, Outcome::Succeeded { .. }),
        "{}: {value:?} failed: {outcome:?} {lines:?}",
        p.name
    );
    std::fs::read(&out).unwrap_or_default()
}

/// One runner and one runtime for all cases, so that the connection is reused.
fn runner() -> &'static rollbook_ssh::SshRunner {
    static RUNNER: std::sync::OnceLock<rollbook_ssh::SshRunner> = std::sync::OnceLock::new();
    RUNNER.get_or_init(|| fleet().runner())
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// A directory every fleet user can write to.
fn shared_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

fn check(rt: &tokio::runtime::Runtime, value: &str, sudo: bool) -> Result<(), TestCaseError> {
    let dir = shared_dir();
    check_every_position(value, &dir.path().join("canary"), |p, v| {
        received(rt, dir.path(), p, v, sudo)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn every_position_receives_exactly_the_value_over_ssh(value in value()) {
        check(runtime(), &value, false)?;
    }
}

#[test]
fn the_hostile_pieces_arrive_as_data_over_ssh_also_through_sudo() {
    let rt = runtime();
    let all = shell_positions::HOSTILE.concat();
    for sudo in [false, true] {
        check(rt, &all, sudo).unwrap();
        check(rt, "", sudo).unwrap();
    }
}
