use std::process::Stdio;
use std::time::Duration;

use rollbook_plan::action::{Action, ShellCommand};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::runner::{Attempt, BoxFuture, Outcome, OutputSink, Runner, Stream, Tail};

/// Local commands: `run` through `sh -c`, `script` on stdin to `sh -se`. Each attempt runs in
/// a process group of its own, so a timeout or Ctrl-C ends the command and everything it
/// started.
pub struct ShellRunner {
    /// Bytes of stdout and stderr kept in the result document (the log has everything).
    pub tail_bytes: usize,
    /// How long a cancelled command gets between SIGTERM and SIGKILL.
    pub grace: Duration,
}

impl Default for ShellRunner {
    fn default() -> Self {
        ShellRunner {
            tail_bytes: 64 * 1024,
            grace: Duration::from_secs(2),
        }
    }
}

async fn read_lines(
    stream: impl AsyncRead + Unpin,
    which: Stream,
    sink: &OutputSink,
    limit: usize,
) -> (String, usize) {
    let mut reader = BufReader::new(stream);
    let mut tail = Tail::new(limit);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                sink.line(which, line);
                tail.push_line(line);
            }
        }
    }
    tail.finish()
}

/// Sends `signal` to the process group `pgid`.
fn kill_group(pgid: u32, signal: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals a process group; it has no memory
        // effects on this process.
        unsafe {
            libc::kill(-(pgid as i32), signal);
        }
    }
}

impl ShellRunner {
    async fn run_command(&self, cmd: &ShellCommand, attempt: Attempt) -> Outcome {
        let mut command = Command::new("sh");
        match (&cmd.command, &cmd.script) {
            (Some(c), _) => {
                command.arg("-c").arg(c);
            }
            (None, Some(_)) => {
                command.arg("-se");
            }
            (None, None) => return Outcome::failed("a shell step needs `run` or `script`"),
        }
        for (k, v) in &cmd.env {
            command.env(k, v);
        }
        if let Some(dir) = &cmd.cwd {
            command.current_dir(dir);
        }
        command
            .stdin(if cmd.script.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                let at = cmd
                    .cwd
                    .as_ref()
                    .map_or(String::new(), |d| format!(" in {d}"));
                return Outcome::failed(format!("cannot start `sh`{at}: {e}"));
            }
        };
        let pgid = child.id().unwrap_or(0);
        if let (Some(script), Some(mut stdin)) = (&cmd.script, child.stdin.take()) {
            let script = script.clone();
            tokio::spawn(async move {
                let _ = stdin.write_all(script.as_bytes()).await;
                let _ = stdin.shutdown().await;
            });
        }
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let work = async {
            let (out, err, status) = tokio::join!(
                read_lines(stdout, Stream::Stdout, &attempt.output, self.tail_bytes),
                read_lines(stderr, Stream::Stderr, &attempt.output, self.tail_bytes),
                child.wait()
            );
            (out, err, status)
        };
        tokio::pin!(work);
        let ((stdout, out_dropped), (stderr, err_dropped), status) = tokio::select! {
            done = &mut work => done,
            _ = attempt.cancel.cancelled() => {
                kill_group(pgid, libc::SIGTERM);
                if tokio::time::timeout(self.grace, &mut work).await.is_err() {
                    kill_group(pgid, libc::SIGKILL);
                    let _ = tokio::time::timeout(self.grace, &mut work).await;
                }
                return Outcome::failed("cancelled: the command and its process group were killed");
            }
        };
        let code = match status {
            Ok(s) => s.code().map(i64::from).or_else(|| {
                use std::os::unix::process::ExitStatusExt;
                s.signal().map(|sig| 128 + i64::from(sig))
            }),
            Err(e) => return Outcome::failed(format!("waiting for `sh`: {e}")),
        };
        let json = serde_json::from_str::<Value>(stdout.trim()).unwrap_or(Value::Null);
        let result = json!({
            "exit_code": code,
            "stdout": stdout,
            "stderr": stderr,
            "json": json,
            "stdout_truncated_bytes": out_dropped,
            "stderr_truncated_bytes": err_dropped,
        });
        match code {
            Some(0) => Outcome::Succeeded { result },
            code => {
                let last = stderr
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                let code = code.map_or("no exit code".to_string(), |c| format!("exit code {c}"));
                let message = if last.is_empty() {
                    code
                } else {
                    format!("{code}: {last}")
                };
                Outcome::Failed {
                    message,
                    result: Some(result),
                }
            }
        }
    }
}

impl Runner for ShellRunner {
    fn kind(&self) -> &'static str {
        "shell"
    }

    fn check<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let Action::Shell(cmd) = action else {
                return Err("not a shell step".into());
            };
            match &cmd.cwd {
                Some(dir) if !std::path::Path::new(dir).is_dir() => {
                    Err(format!("working directory {dir} does not exist"))
                }
                _ => Ok("local shell available".into()),
            }
        })
    }

    fn run<'a>(&'a self, action: &'a Action, attempt: Attempt) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match action {
                Action::Shell(cmd) => self.run_command(cmd, attempt).await,
                _ => Outcome::failed("the shell runner got another kind of step"),
            }
        })
    }
}
