//! Running commands: exit codes, scripts, sudo, env, big output, timeouts, uploads.

use std::time::{Duration, Instant};

use rollbook_exec::runner::Outcome;
use tokio_util::sync::CancellationToken;

use crate::{attempt, attempt_with, fleet, marker};

#[tokio::test]
async fn a_command_runs_and_its_exit_code_and_output_come_back() {
    let f = fleet();
    let runner = f.runner();
    let (out, lines) = attempt(&runner, f.command(2, "echo out; echo err >&2; exit 3")).await;
    let Outcome::Failed { message, result } = out else {
        panic!("{out:?}")
    };
    assert_eq!(message, format!("exit code 3 on 127.0.0.2:{}: err", f.port));
    let result = result.unwrap();
    assert_eq!(result["exit_code"], 3);
    assert_eq!(result["stdout"], "out\n");
    assert_eq!(result["stderr"], "err\n");
    assert_eq!(lines, ["out", "err"]);
    let (out, _) = attempt(&runner, f.command(2, r#"echo '{"active": 2}'"#)).await;
    let Outcome::Succeeded { result } = out else {
        panic!("{out:?}")
    };
    assert_eq!(result["json"]["active"], 2);
}

#[tokio::test]
async fn a_script_goes_to_sh_se_and_stops_at_the_first_failure() {
    let f = fleet();
    let runner = f.runner();
    let mut cmd = f.command(3, "");
    cmd.command = None;
    cmd.script = Some("echo one\nfalse\necho never\n".into());
    let (out, lines) = attempt(&runner, cmd).await;
    assert!(matches!(out, Outcome::Failed { .. }), "{out:?}");
    assert_eq!(lines, ["one"]);
}

/// As an unprivileged user (as root, sudo would prove nothing): not root without sudo, root
/// with it.
#[tokio::test]
async fn sudo_runs_through_sudo_n() {
    let f = fleet();
    let runner = f.runner();
    let uid = |sudo: bool| {
        let mut cmd = f.command_as(&f.plain_user, 4, "id -u");
        cmd.sudo = sudo;
        let runner = &runner;
        async move {
            let (out, _) = attempt(runner, cmd).await;
            let Outcome::Succeeded { result } = out else {
                panic!("{out:?}")
            };
            result["stdout"].as_str().unwrap().trim().to_string()
        }
    };
    let without = uid(false).await;
    assert_ne!(without, "0", "{} is root without sudo", f.plain_user);
    assert!(without.parse::<u32>().is_ok(), "{without}");
    assert_eq!(uid(true).await, "0");
}

/// A user whom sudoers does not know: the command is not run, and the failure says why.
#[tokio::test]
async fn sudo_without_the_right_fails_the_attempt() {
    let f = fleet();
    let mut cmd = f.command_as(&f.nosudo_user, 4, "id -u");
    cmd.sudo = true;
    let (out, lines) = attempt(&f.runner(), cmd).await;
    let Outcome::Failed { message, .. } = out else {
        panic!("ran under sudo as {}: {out:?}", f.nosudo_user)
    };
    assert!(!lines.iter().any(|l| l == "0"), "{lines:?}");
    assert!(message.contains("sudo"), "{message} {lines:?}");
}

#[tokio::test]
async fn hostile_env_values_arrive_as_data() {
    let f = fleet();
    let runner = f.runner();
    let owned = std::env::temp_dir().join(format!("rollbook-owned-{}", marker()));
    let mut cmd = f.command(5, r#"printf '%s|%s' "$A" "$B""#);
    let a = format!("$(touch {})", owned.display());
    let b = "'; rm -rf /tmp/rollbook-should-not-exist; echo '".to_string();
    cmd.env = vec![("A".into(), a.clone()), ("B".into(), b.clone())];
    let (out, _) = attempt(&runner, cmd).await;
    let Outcome::Succeeded { result } = out else {
        panic!("{out:?}")
    };
    assert_eq!(result["stdout"], format!("{a}|{b}\n"));
    assert!(!owned.exists(), "a value was run as a command");
}

#[tokio::test]
async fn ten_megabytes_of_output_are_streamed_and_the_result_keeps_a_tail() {
    let f = fleet();
    let runner = f.runner();
    let cmd = f.command(6, "head -c 10000000 /dev/zero | tr '\\0' x | fold -w 99");
    let (out, lines) = attempt(&runner, cmd).await;
    let Outcome::Succeeded { result } = out else {
        panic!("{out:?}")
    };
    assert_eq!(lines.len(), 101_011);
    assert!(result["stdout"].as_str().unwrap().len() <= 64 * 1024);
    assert!(result["stdout_truncated_bytes"].as_u64().unwrap() > 9_900_000);
}

/// A line without an end costs at most `MAX_LINE` bytes over SSH too: the rest is dropped,
/// the line says how much, and the lines after it arrive as usual.
#[tokio::test]
async fn a_huge_line_over_ssh_is_cut_and_marked() {
    let f = fleet();
    let runner = f.runner();
    let cmd = f.command(
        6,
        "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo after",
    );
    let (out, lines) = attempt(&runner, cmd).await;
    assert!(matches!(out, Outcome::Succeeded { .. }), "{out:?}");
    let cut = 3_000_000 - rollbook_exec::runner::MAX_LINE;
    assert_eq!(
        lines.len(),
        2,
        "{:?}",
        lines.iter().map(String::len).collect::<Vec<_>>()
    );
    assert!(
        lines[0].ends_with(&format!("x [line cut: {cut} more bytes]")),
        "{}",
        &lines[0][lines[0].len() - 80..]
    );
    assert_eq!(lines[1], "after");
}

#[tokio::test]
async fn a_cancelled_command_is_gone_from_the_host() {
    cancelled_command_is_gone(false).await;
}

#[tokio::test]
async fn a_cancelled_command_under_sudo_is_gone_from_the_host() {
    cancelled_command_is_gone(true).await;
}

async fn cancelled_command_is_gone(sudo: bool) {
    let f = fleet();
    let runner = f.runner();
    let m = marker();
    let pattern = format!("sleep 300.{m}");
    // Under sudo as an unprivileged user, so the command really runs as another user (root)
    // than the session: stopping it takes more than closing the channel.
    let mut cmd = if sudo {
        f.command_as(
            &f.plain_user,
            7,
            &format!("{pattern} & {pattern}; echo done"),
        )
    } else {
        f.command(7, &format!("{pattern} & {pattern}; echo done"))
    };
    cmd.sudo = sudo;
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let seen = pattern.clone();
    let watcher = tokio::spawn(async move {
        // Cancel once the command runs on the host, as a timeout would.
        wait_for(
            || !pgrep(&seen).is_empty(),
            "the command to run on the host",
        )
        .await;
        stop.cancel();
    });
    // The command would sleep for 300 s: only the cancel can end the attempt sooner.
    let (out, _) = tokio::time::timeout(LIMIT, attempt_with(&runner, cmd, cancel))
        .await
        .expect("the cancel did not stop the attempt");
    watcher.await.unwrap();
    let Outcome::Failed { message, .. } = out else {
        panic!("{out:?}")
    };
    assert!(message.starts_with("cancelled"), "{message}");
    // The processes on the host get the signal; the kernel ends them soon after.
    wait_for(|| pgrep(&pattern).is_empty(), "the command to be gone").await;
}

/// A generous bound on waiting for something that takes milliseconds: a test that would hang
/// fails instead, naming what it waited for. Not a measure: no test asserts a duration.
const LIMIT: Duration = Duration::from_secs(60);

async fn wait_for(mut ready: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < LIMIT, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The processes whose command line matches `pattern`, as `pgrep -af` lists them.
fn pgrep(pattern: &str) -> String {
    let ps = std::process::Command::new("pgrep")
        .args(["-af", pattern])
        .output()
        .unwrap();
    String::from_utf8_lossy(&ps.stdout).into_owned()
}

#[tokio::test]
async fn an_upload_is_checked_and_gets_its_mode() {
    let f = fleet();
    let runner = f.runner();
    let dir = tempfile::tempdir().unwrap();
    let from = dir.path().join("operator.env");
    std::fs::write(&from, "TOKEN=abc\nREGION=eu\n").unwrap();
    let to = dir.path().join("deployed.env");
    let mut cmd = f.command(8, "");
    cmd.command = None;
    cmd.upload = Some(rollbook_plan::action::Upload {
        from: from.display().to_string(),
        to: to.display().to_string(),
        mode: Some(0o640),
    });
    let (out, lines) = attempt(&runner, cmd).await;
    assert!(matches!(out, Outcome::Succeeded { .. }), "{out:?}");
    assert!(lines[0].starts_with("uploaded "), "{lines:?}");
    assert_eq!(
        std::fs::read_to_string(&to).unwrap(),
        "TOKEN=abc\nREGION=eu\n"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&to).unwrap().permissions().mode() & 0o777,
        0o640
    );
}

#[tokio::test]
async fn steps_on_one_host_share_one_connection() {
    let f = fleet();
    let runner = f.runner();
    let mut tasks = Vec::new();
    let runner = std::sync::Arc::new(runner);
    for i in 0..20 {
        let r = runner.clone();
        let cmd = f.command(9, &format!("echo {i}"));
        tasks.push(tokio::spawn(async move { attempt(&r, cmd).await.0 }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Outcome::Succeeded { .. }));
    }
    assert_eq!(runner.connections_opened(), 1);
}
