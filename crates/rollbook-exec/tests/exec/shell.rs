//! The real `ShellRunner`, with real `sh` and real time.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rollbook_exec::event::{Event, NodeStatus, RunStatus};
use rollbook_exec::redact::Redactor;
use rollbook_exec::runner::{Attempt, Outcome, OutputSink, Runner, Runners, Stream};
use rollbook_exec::runners::ShellRunner;
use rollbook_plan::action::{Action, ShellCommand};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::*;

fn command(run: &str) -> ShellCommand {
    ShellCommand {
        command: Some(run.into()),
        script: None,
        env: Vec::new(),
        cwd: None,
    }
}

async fn run_shell(cmd: ShellCommand) -> Outcome {
    ShellRunner::default()
        .run(
            &Action::Shell(cmd),
            Attempt::new(
                Arc::from("test"),
                1,
                CancellationToken::new(),
                OutputSink::discard(),
            ),
        )
        .await
}

fn script(text: &str) -> ShellCommand {
    ShellCommand {
        command: None,
        script: Some(text.into()),
        ..command("")
    }
}

/// Runs `plan` with the real shell runner and an in-memory journal.
async fn execute_shell(plan: &CompiledPlan, setup: Setup) -> (RunStatus, MemJournal) {
    let runners = Runners::new().with(ShellRunner::default());
    let mut journal = MemJournal::default();
    let status = execute(plan, &runners, setup, &mut journal).await;
    (status, journal)
}

fn result(outcome: &Outcome) -> &Value {
    outcome.result().expect("a result document")
}

#[tokio::test]
async fn exit_code_and_stdout_are_in_the_result() {
    let o = run_shell(command("echo hello; echo world")).await;
    assert!(matches!(o, Outcome::Succeeded { .. }), "{o:?}");
    assert_eq!(result(&o)["exit_code"], json!(0));
    assert_eq!(result(&o)["stdout"], json!("hello\nworld\n"));
    assert_eq!(result(&o)["json"], Value::Null);

    let o = run_shell(command(r#"printf '{"active_instances": 3}\n'"#)).await;
    assert_eq!(result(&o)["json"], json!({ "active_instances": 3 }));
}

#[tokio::test]
async fn a_non_zero_exit_fails_with_the_code_and_the_last_stderr_line() {
    let o = run_shell(command(
        "echo first >&2; echo 'last words' >&2; echo >&2; exit 3",
    ))
    .await;
    match &o {
        Outcome::Failed { message, result } => {
            assert_eq!(message, "exit code 3: last words");
            assert_eq!(result.as_ref().unwrap()["exit_code"], json!(3));
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    let o = run_shell(command("exit 4")).await;
    assert!(
        matches!(&o, Outcome::Failed { message, .. } if message == "exit code 4"),
        "{o:?}"
    );
}

#[tokio::test]
async fn a_script_runs_with_sh_se_and_stops_at_the_first_failing_line() {
    let o = run_shell(script("echo one\nfalse\necho two\n")).await;
    assert!(matches!(o, Outcome::Failed { .. }), "{o:?}");
    assert_eq!(result(&o)["exit_code"], json!(1));
    assert_eq!(result(&o)["stdout"], json!("one\n"));

    let o = run_shell(script("echo one\necho two\n")).await;
    assert!(matches!(o, Outcome::Succeeded { .. }), "{o:?}");
    assert_eq!(result(&o)["stdout"], json!("one\ntwo\n"));
}

#[tokio::test]
async fn env_values_are_passed_as_they_are() {
    let value = r#"it's "quoted" $HOME `x` ; done"#;
    let mut cmd = command(r#"printf '%s\n' "$GREETING""#);
    cmd.env = vec![("GREETING".into(), value.into())];
    let o = run_shell(cmd).await;
    assert!(matches!(o, Outcome::Succeeded { .. }), "{o:?}");
    assert_eq!(result(&o)["stdout"], json!(format!("{value}\n")));
}

/// PIDs of processes whose command line matches `pattern`.
fn pgrep(pattern: &str) -> Vec<u32> {
    let out = Command::new("pgrep")
        .arg("-f")
        .arg(pattern)
        .output()
        .expect("pgrep runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The step starts two processes in the background, writes their pids down, and waits: only
/// the timeout can end it. Afterwards, no process the step started may be left.
#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pids_file = dir.path().join("pids");
    // A unique sleep length marks the processes this test starts.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let marker = format!("300.{}{:09}", std::process::id(), nanos);
    let pattern = format!("sleep {}", marker.replace('.', "[.]"));
    let plan = compile(&format!(
        r#"
version: 1
name: hang
steps:
  - id: hang
    timeout: 5s
    shell: {{ run: "sleep {marker} & echo $! >> {pids}; sleep {marker} & echo $! >> {pids}; wait; echo never" }}
"#,
        pids = pids_file.display()
    ));
    let (status, journal) = execute_shell(&plan, Setup::default()).await;
    let started: Vec<u32> = std::fs::read_to_string(&pids_file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    // The killed processes may take a moment to be gone; a minute is plenty.
    let mut left = pgrep(&pattern);
    for _ in 0..600 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        left = pgrep(&pattern);
    }
    // Clean up whatever is left (only the processes with this test's marker), then judge.
    for pid in &left {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status();
    }
    assert_eq!(
        started.len(),
        2,
        "the step had not started both processes when it timed out: {started:?}"
    );
    assert!(
        left.is_empty(),
        "processes left after the timeout: {left:?} (the step started {started:?})"
    );
    assert_eq!(status, RunStatus::Failed);
    let (st, message, _) = finish_of(&journal.events, "steps", "hang");
    assert_eq!(st, NodeStatus::Failed);
    let message = message.unwrap_or_default();
    assert!(message.contains("timed out after 5s"), "{message}");
}

#[tokio::test]
async fn a_secret_printed_by_a_command_is_redacted_in_logs_and_events() {
    let secret = "s3cr3t-value";
    let plan = compile(
        r#"
version: 1
name: leak
secrets:
  token: { env: ROLLBOOK_TEST_TOKEN }
steps:
  - id: leak
    shell:
      run: "echo token is {{ secrets.token }}; echo bad {{ secrets.token }} >&2; exit 1"
"#,
    );
    let mut secrets = Map::new();
    secrets.insert("token".into(), json!(secret));
    let setup = Setup {
        secrets,
        redactor: Redactor::new([secret.to_string()]),
        ..Setup::default()
    };
    let (status, journal) = execute_shell(&plan, setup).await;
    assert_eq!(status, RunStatus::Failed);

    let lines: Vec<_> = journal
        .logs
        .iter()
        .map(|(phase, node, stream, line)| (phase.as_str(), node.as_str(), *stream, line.as_str()))
        .collect();
    assert!(
        lines.contains(&("steps", "leak", Stream::Stdout, "token is ***")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&("steps", "leak", Stream::Stderr, "bad ***")),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.3.contains(secret)), "{lines:?}");

    let events = serde_json::to_string(&journal.events).unwrap();
    assert!(!events.contains(secret), "{events}");
    let message = journal.events.iter().find_map(|e| match e {
        Event::AttemptFinished { message, .. } => message.clone(),
        _ => None,
    });
    assert_eq!(message.as_deref(), Some("exit code 1: bad ***"));
}

#[tokio::test]
async fn a_multi_line_secret_is_masked_across_lines_and_held_back_text_is_logged_at_the_end() {
    let secret = "first-line\nsecond-line";
    let plan = compile(
        r#"
version: 1
name: leak
steps:
  - id: leak
    shell:
      run: "printf 'a first-line\\n'; sleep 0.1; printf 'second-line b\\nfirst-line\\nsecond'"
"#,
    );
    let setup = Setup {
        redactor: Redactor::new([secret.to_string()]),
        ..Setup::default()
    };
    let (status, journal) = execute_shell(&plan, setup).await;
    assert_eq!(status, RunStatus::Succeeded);
    let lines: Vec<&str> = journal.logs.iter().map(|l| l.3.as_str()).collect();
    // The whole value over two lines, a line of it alone, and the start of the second line
    // that the end of the output left undecided.
    assert_eq!(lines, ["a *** b", "***", "second"]);
}

/// A step ends when its command exits, not when the background processes it left behind close
/// their copies of its output pipes. (The background process here waits until the step has
/// ended: reading until the pipes close would wait forever.)
#[tokio::test]
async fn a_step_ends_when_its_command_exits_not_when_its_pipes_close() {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let left = dir.path().join("left");
    let o = run_shell(command(&format!(
        "(until [ -f {go} ]; do sleep 0.05; done; touch {left}) & echo done; exit 0",
        go = go.display(),
        left = left.display()
    )))
    .await;
    assert!(matches!(o, Outcome::Succeeded { .. }), "{o:?}");
    assert_eq!(result(&o)["stdout"], json!("done\n"));
    // The leftover process was not killed: it ends on its own once told to.
    std::fs::write(&go, "").unwrap();
    for _ in 0..200 {
        if left.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the background process did not go on after the step");
}

/// A line without an end costs at most `MAX_LINE` bytes: the rest is dropped and the line
/// says how much; the lines after it are read as usual.
#[tokio::test]
async fn a_huge_line_is_cut_and_marked() {
    let o = run_shell(command(
        "head -c 1000000 /dev/zero | tr '\\0' x; echo; echo after",
    ))
    .await;
    assert!(matches!(o, Outcome::Succeeded { .. }), "{o:?}");
    let stdout = result(&o)["stdout"].as_str().unwrap().to_string();
    let cut = 1_000_000 - rollbook_exec::runner::MAX_LINE;
    assert!(
        stdout.ends_with(&format!("x [line cut: {cut} more bytes]\nafter\n")),
        "{}",
        &stdout[stdout.len().saturating_sub(200)..]
    );
}
