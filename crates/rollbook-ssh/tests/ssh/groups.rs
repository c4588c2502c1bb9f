//! The remote process group of an attempt: reported for the journal, ended with its session
//! (the watcher), and stopped before a retry or a resume runs the command again.
//!
//! The fleet's hosts are this machine, so what runs "on the host" is looked at in this
//! machine's `/proc`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rollbook_exec::ProcessGroup;
use rollbook_exec::runner::{Attempt, Outcome, OutputLine, OutputSink, ProcessReport, Runner};
use rollbook_plan::action::{Action, SshCommand};
use rollbook_ssh::SshRunner;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{Fleet, fleet, marker};

/// What one attempt came to: its outcome, its output lines, and the groups it reported.
struct Ran {
    outcome: Outcome,
    lines: Vec<String>,
    groups: Vec<ProcessGroup>,
}

/// Runs one attempt after `previous`; every group it reports is also sent to `reported` as it
/// comes (the attempt may still be running then).
async fn run(
    runner: &SshRunner,
    cmd: SshCommand,
    previous: Option<ProcessGroup>,
    cancel: CancellationToken,
    reported: mpsc::UnboundedSender<ProcessGroup>,
) -> Ran {
    let (tx, mut rx) = mpsc::unbounded_channel::<OutputLine>();
    let groups = Arc::new(Mutex::new(Vec::new()));
    let kept = groups.clone();
    let attempt = Attempt {
        node: Arc::from("test"),
        number: 1 + u32::from(previous.is_some()),
        cancel,
        output: OutputSink::new(Arc::from("test"), tx),
        processes: ProcessReport::new(move |group: ProcessGroup| {
            kept.lock().unwrap().push(group.clone());
            let _ = reported.send(group);
        }),
        previous,
    };
    let outcome = runner.run(&Action::Ssh(cmd), attempt).await;
    let mut lines = Vec::new();
    while let Ok(l) = rx.try_recv() {
        lines.push(l.line);
    }
    let groups = groups.lock().unwrap().clone();
    Ran {
        outcome,
        lines,
        groups,
    }
}

/// Starts an attempt in the background and waits until it has named its remote group.
async fn started(
    runner: Arc<SshRunner>,
    cmd: SshCommand,
    cancel: CancellationToken,
) -> (ProcessGroup, tokio::task::JoinHandle<Ran>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move { run(&runner, cmd, None, cancel, tx).await });
    let group = tokio::time::timeout(LIMIT, rx.recv())
        .await
        .expect("no process group was reported")
        .expect("the attempt ended without reporting its process group");
    (group, task)
}

/// A generous bound on waiting for what takes milliseconds; not a measure.
const LIMIT: Duration = Duration::from_secs(60);

/// The same group, looked for on this machine (the fleet's hosts are this machine).
fn here(group: &ProcessGroup) -> ProcessGroup {
    ProcessGroup {
        host: None,
        ..group.clone()
    }
}

fn alive(group: &ProcessGroup) -> bool {
    rollbook_exec::process::alive(&here(group))
}

/// Field `n` (1-based, as proc(5) counts) of `/proc/PID/stat`.
fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(n - 3).map(str::to_string)
}

/// The sshd process that serves the session of a group's leader: the leader's parent.
fn serving_sshd(group: &ProcessGroup) -> u32 {
    let parent: u32 = stat_field(group.pgid, 4)
        .expect("the group leader is gone")
        .parse()
        .unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{parent}/comm")).unwrap_or_default();
    assert!(
        comm.starts_with("sshd"),
        "the leader's parent {parent} is {comm:?}, not sshd"
    );
    parent
}

/// Kills a process this test's fleet started (an sshd serving one connection).
fn kill_9(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -9 {pid}");
}

fn label(f: &Fleet, n: u8) -> String {
    format!("127.0.0.{n}:{}", f.port)
}

fn stopped_line(group: &ProcessGroup) -> String {
    format!("rollbook: stopped the previous attempt's {group}, still running")
}

#[derive(Clone, Copy)]
enum Code {
    Run,
    Script,
}

fn with_code(mut cmd: SshCommand, code: Code, text: &str) -> SshCommand {
    if let Code::Script = code {
        cmd.command = None;
        cmd.script = Some(format!("{text}\n").into());
    }
    cmd
}

#[tokio::test]
async fn an_attempt_reports_its_remote_group_once() {
    let f = fleet();
    let runner = f.runner();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let checked = seen.clone();
    // Looked at as soon as it is reported, while the command sleeps: the group existed, led
    // by a process that started when the report says.
    let (check_tx, mut check_rx) = mpsc::unbounded_channel::<ProcessGroup>();
    let checker = std::thread::spawn(move || {
        while let Some(group) = check_rx.blocking_recv() {
            let now = rollbook_exec::process::start_time(group.pgid);
            checked.lock().unwrap().push((group, now));
        }
    });
    let ran = run(
        &runner,
        f.command(50, "sleep 1; echo hi"),
        None,
        CancellationToken::new(),
        check_tx,
    )
    .await;
    checker.join().unwrap();
    assert!(
        matches!(ran.outcome, Outcome::Succeeded { .. }),
        "{:?}",
        ran.outcome
    );
    assert_eq!(ran.lines, ["hi"], "the announcement is not output");
    let [group] = &ran.groups[..] else {
        panic!("reported {:?}", ran.groups)
    };
    assert_eq!(group.host.as_deref(), Some(label(&f, 50).as_str()));
    assert_eq!(group.machine, None);
    let seen = seen.lock().unwrap();
    let [(_, start_then)] = &seen[..] else {
        panic!("{seen:?}")
    };
    assert!(group.leader_start.is_some(), "{group:?}");
    assert_eq!(
        group.leader_start, *start_then,
        "pgid {} was not a running process with that start time when it was reported",
        group.pgid
    );
}

#[tokio::test]
async fn a_lost_session_ends_the_command_and_the_retry_runs_alone() {
    lost_session(Code::Run, false).await;
}

#[tokio::test]
async fn a_lost_session_ends_a_script_and_the_retry_runs_alone() {
    lost_session(Code::Script, false).await;
}

#[tokio::test]
async fn a_lost_session_ends_a_command_under_sudo_and_the_retry_runs_alone() {
    lost_session(Code::Run, true).await;
}

/// The reproduction: the sshd process serving a `sleep; echo done >> FILE` is killed while it
/// runs; the command's group must end with its session, and the retry then runs alone, so
/// `done` is written once.
async fn lost_session(code: Code, sudo: bool) {
    let f = fleet();
    let runner = Arc::new(f.runner());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::write(&out, "").unwrap();
    let m = marker();
    let text = format!("sleep 6.{m}; echo done >> {}", out.display());
    let mut cmd = if sudo {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        f.command_as(&f.plain_user, 51, &text)
    } else {
        f.command(51, &text)
    };
    cmd.sudo = sudo;
    let cmd = with_code(cmd, code, &text);
    let (group, first) = started(runner.clone(), cmd.clone(), CancellationToken::new()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(alive(&group), "the command is not running: {group:?}");
    kill_9(serving_sshd(&group));
    let killed = Instant::now();
    let first = tokio::time::timeout(LIMIT, first).await.unwrap().unwrap();
    assert!(
        matches!(first.outcome, Outcome::Failed { .. }),
        "{:?}",
        first.outcome
    );
    // The command would sleep on for 5 more seconds: its group must be gone well before.
    while alive(&group) {
        assert!(
            killed.elapsed() < Duration::from_secs(3),
            "the command's group {} still runs on the host after its session was lost",
            group.pgid
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (tx, _rx) = mpsc::unbounded_channel();
    let second = run(
        &runner,
        cmd,
        Some(group.clone()),
        CancellationToken::new(),
        tx,
    )
    .await;
    assert!(
        matches!(second.outcome, Outcome::Succeeded { .. }),
        "{:?} {:?}",
        second.outcome,
        second.lines
    );
    assert!(
        !second.lines.contains(&stopped_line(&group)),
        "the previous group was gone already: {:?}",
        second.lines
    );
    // Past the time the first copy would have written `done`, had it gone on.
    let until = killed + Duration::from_secs(7);
    tokio::time::sleep_until(until.into()).await;
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "done\n");
}

#[tokio::test]
async fn a_retry_stops_the_previous_group_that_still_runs() {
    retry_after_leftover(false).await;
}

#[tokio::test]
async fn a_retry_under_sudo_stops_the_previous_group_of_root() {
    retry_after_leftover(true).await;
}

/// The previous attempt's command still runs (here: a `sleep` started by an attempt that has
/// not ended): the retry stops it first, and says so.
async fn retry_after_leftover(sudo: bool) {
    let f = fleet();
    let runner = Arc::new(f.runner());
    let m = marker();
    let user = if sudo { &f.plain_user } else { &f.user };
    let mut leftover = f.command_as(user, 52, &format!("sleep 300.{m}"));
    leftover.sudo = sudo;
    let (group, first) = started(runner.clone(), leftover, CancellationToken::new()).await;
    assert!(alive(&group));
    let mut retry = f.command_as(user, 52, "echo second");
    retry.sudo = sudo;
    let (tx, _rx) = mpsc::unbounded_channel();
    let second = run(
        &runner,
        retry,
        Some(group.clone()),
        CancellationToken::new(),
        tx,
    )
    .await;
    assert!(
        matches!(second.outcome, Outcome::Succeeded { .. }),
        "{:?}",
        second.outcome
    );
    assert_eq!(second.lines, [stopped_line(&group), "second".to_string()]);
    assert!(!alive(&group), "the previous group still runs");
    let first = tokio::time::timeout(LIMIT, first).await.unwrap().unwrap();
    assert!(matches!(first.outcome, Outcome::Failed { .. }));
}

/// A leftover of root that the retry, logged in as an unprivileged user without `sudo`, may
/// not signal: the retry fails instead of running beside it.
#[tokio::test]
async fn a_retry_that_cannot_stop_the_previous_group_does_not_run() {
    let f = fleet();
    let runner = Arc::new(f.runner());
    let m = marker();
    let cancel = CancellationToken::new();
    let (group, first) = started(
        runner.clone(),
        f.command(53, &format!("sleep 300.{m}")),
        cancel.clone(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let ran = dir.path().join("ran");
    let retry = f.command_as(&f.plain_user, 53, &format!("touch {}", ran.display()));
    let (tx, _rx) = mpsc::unbounded_channel();
    let second = run(
        &runner,
        retry,
        Some(group.clone()),
        CancellationToken::new(),
        tx,
    )
    .await;
    let Outcome::Failed { message, .. } = &second.outcome else {
        panic!("{:?}", second.outcome)
    };
    assert!(
        message.contains(&format!("{group}")) && message.contains("could not be stopped"),
        "{message}"
    );
    assert!(!ran.exists(), "the command ran beside the previous one");
    assert!(alive(&group));
    cancel.cancel();
    tokio::time::timeout(LIMIT, first).await.unwrap().unwrap();
    assert!(!alive(&group));
}

/// A group whose leader number now belongs to another process (the leader's start time
/// differs) is long gone: nothing is stopped, and the command runs.
#[tokio::test]
async fn a_reused_group_number_is_not_taken_for_the_previous_attempt() {
    let f = fleet();
    let runner = Arc::new(f.runner());
    let m = marker();
    let cancel = CancellationToken::new();
    let (group, first) = started(
        runner.clone(),
        f.command(54, &format!("sleep 300.{m}")),
        cancel.clone(),
    )
    .await;
    let other = ProcessGroup {
        leader_start: group.leader_start.map(|s| s + 1),
        ..group.clone()
    };
    let (tx, _rx) = mpsc::unbounded_channel();
    let second = run(
        &runner,
        f.command(54, "echo second"),
        Some(other),
        CancellationToken::new(),
        tx,
    )
    .await;
    assert!(matches!(second.outcome, Outcome::Succeeded { .. }));
    assert_eq!(second.lines, ["second"]);
    assert!(alive(&group), "a group of the same number was stopped");
    cancel.cancel();
    tokio::time::timeout(LIMIT, first).await.unwrap().unwrap();
}

/// What a command leaves running on purpose after it exited is not the watcher's: it goes on
/// when the session ends afterwards.
#[tokio::test]
async fn a_background_process_left_after_a_normal_exit_outlives_the_session() {
    let f = fleet();
    let runner = f.runner();
    let m = marker();
    let pattern = format!("sleep 300.{m}");
    let (tx, _rx) = mpsc::unbounded_channel();
    let ran = run(
        &runner,
        f.command(
            55,
            &format!("{pattern} </dev/null >/dev/null 2>&1 & echo $PPID"),
        ),
        None,
        CancellationToken::new(),
        tx,
    )
    .await;
    let Outcome::Succeeded { result } = &ran.outcome else {
        panic!("{:?}", ran.outcome)
    };
    let sshd: u32 = result["stdout"].as_str().unwrap().trim().parse().unwrap();
    let left = pids(&pattern);
    assert_eq!(left.len(), 1, "{left:?}");
    kill_9(sshd);
    drop(runner);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let still = pids(&pattern);
    for pid in &left {
        kill_9(*pid);
    }
    assert_eq!(
        still, left,
        "the background process was stopped with the session"
    );
}

/// Live (not zombie) processes whose command line contains `pattern`.
fn pids(pattern: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(pattern)
            && stat_field(pid, 3).is_some_and(|s| s != "Z")
            && pid != std::process::id()
        {
            found.push(pid);
        }
    }
    found
}
