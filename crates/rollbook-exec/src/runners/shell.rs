//! The `shell` runner: local commands through `sh`.

use std::process::Stdio;
use std::time::Duration;

use rollbook_plan::action::{Action, ShellCommand};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::result::CommandResult;
use crate::runner::{Attempt, BoxFuture, LineSplitter, Outcome, OutputSink, Runner, Stream, Tail};

/// Local commands: `run` through `sh -c`, `script` on stdin to `sh -se`. Each attempt runs in
/// a process group of its own, so a timeout or Ctrl-C ends the command and everything it
/// started.
pub struct ShellRunner {
    /// Bytes of stdout and stderr kept in the result document (the log has everything).
    pub tail_bytes: usize,
    /// How long a cancelled command gets between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Told of each command's process group as it starts and ends, so that something outside
    /// this process can stop the groups still running if this process dies.
    pub groups: Option<GroupWatch>,
    /// The soft open-files limit a command starts with: the one rollbook itself started
    /// with, before it raised its own for SSH fan-outs (`None`: as rollbook has it now).
    pub open_files: Option<u64>,
    /// Variables of rollbook's own environment that a command does not get: the shared
    /// store's URL and password are rollbook's, not the steps'.
    pub hidden_env: Vec<String>,
}

/// A process group that started (`true`) or ended (`false`).
pub type GroupWatch = std::sync::Arc<dyn Fn(u32, bool) + Send + Sync>;

impl Default for ShellRunner {
    fn default() -> Self {
        ShellRunner {
            tail_bytes: 64 * 1024,
            grace: Duration::from_secs(2),
            groups: None,
            open_files: None,
            hidden_env: Vec::new(),
        }
    }
}

/// How long output is still read after the command exited: what background processes it
/// left behind print after that is not read (they keep running; see `docs/runners.md`).
pub const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// Reads `stream` line by line into the sink and the kept tail, until it ends or `stop`.
async fn read_lines(
    mut stream: impl AsyncRead + Unpin,
    which: Stream,
    sink: &OutputSink,
    limit: usize,
    stop: &CancellationToken,
) -> (String, usize) {
    let mut tail = Tail::new(limit);
    let mut lines = LineSplitter::default();
    let mut buf = vec![0u8; 16 * 1024];
    let mut emit = |line: String| {
        sink.line(which, &line);
        tail.push_line(&line);
    };
    loop {
        let read = tokio::select! {
            r = stream.read(&mut buf) => r,
            // What a leftover process prints after the grace is not read, nor its last
            // unfinished line.
            _ = stop.cancelled() => break,
        };
        match read {
            Ok(0) | Err(_) => {
                lines.finish().into_iter().for_each(&mut emit);
                break;
            }
            Ok(n) => {
                lines.feed(&buf[..n]).into_iter().for_each(&mut emit);
                sink.room().await;
            }
        }
    }
    tail.finish()
}

/// What a command left once it ended: its exit code and the kept ends of its streams.
struct Finished {
    code: Option<i64>,
    stdout: (String, usize),
    stderr: (String, usize),
}

/// `sh -c RUN`, or `sh -se` reading `script` on stdin, in a process group of its own. The
/// template values the code refers to are in its environment (not on its command line, where
/// any user could read them in `ps`).
fn command(
    cmd: &ShellCommand,
    open_files: Option<u64>,
    hidden_env: &[String],
) -> Result<Command, Outcome> {
    let mut command = Command::new("sh");
    for name in hidden_env {
        command.env_remove(name);
    }
    let code = match (&cmd.command, &cmd.script) {
        (Some(c), _) => {
            command.arg("-c").arg(&c.code);
            c
        }
        (None, Some(s)) => {
            command.arg("-se");
            s
        }
        (None, None) => return Err(Outcome::failed("a shell step needs `run` or `script`")),
    };
    for (k, v) in cmd.env.iter().chain(&code.values) {
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
    if let Some(soft) = open_files {
        lower_open_files(&mut command, soft);
    }
    Ok(command)
}

/// The command starts with the soft open-files limit `soft` (the hard one stays): rollbook's
/// own raised limit is for its connections, not for the programs a step runs.
fn lower_open_files(command: &mut Command, soft: u64) {
    // SAFETY: the closure runs in the child between fork and exec; it only calls getrlimit
    // and setrlimit, which are async-signal-safe, on a struct on its own stack.
    unsafe {
        command.pre_exec(move || {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && soft < limit.rlim_cur {
                limit.rlim_cur = soft;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
            Ok(())
        });
    }
}

/// The exit code of a status; a signal counts as `128 + signal`, as shells say it.
fn exit_code(status: std::process::ExitStatus) -> Option<i64> {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .map(i64::from)
        .or_else(|| status.signal().map(|sig| 128 + i64::from(sig)))
}

impl ShellRunner {
    async fn run_command(&self, cmd: &ShellCommand, attempt: Attempt) -> Outcome {
        let mut command = match command(cmd, self.open_files, &self.hidden_env) {
            Ok(c) => c,
            Err(outcome) => return outcome,
        };
        if let Err(outcome) = self.end_previous(&attempt).await {
            return outcome;
        }
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
        if let (Some(script), Some(mut stdin)) = (&cmd.script, child.stdin.take()) {
            let script = script.code.clone();
            tokio::spawn(async move {
                let _ = stdin.write_all(script.as_bytes()).await;
                let _ = stdin.shutdown().await;
            });
        }
        let pgid = child.id().unwrap_or(0);
        if pgid > 0 {
            attempt.processes.started(crate::process::local_group(pgid));
        }
        let watch = |started: bool| {
            if let Some(watch) = self.groups.as_ref().filter(|_| pgid > 0) {
                watch(pgid, started);
            }
        };
        watch(true);
        let done = self.wait(&mut child, &attempt).await;
        watch(false);
        match done {
            Ok(done) => CommandResult::new(done.code, done.stdout.0, done.stderr.0)
                .with("stdout_truncated_bytes", done.stdout.1)
                .with("stderr_truncated_bytes", done.stderr.1)
                .into_outcome("no exit code", ""),
            Err(outcome) => outcome,
        }
    }

    /// The node's previous attempt (a retry, or the one in flight when an earlier controller
    /// died) must not run beside this one: its process group, if still there, is stopped
    /// first, and the output says so.
    async fn end_previous(&self, attempt: &Attempt) -> Result<(), Outcome> {
        let Some(previous) = attempt.previous.clone().filter(crate::process::alive) else {
            return Ok(());
        };
        let grace = self.grace;
        let group = previous.clone();
        let stopped = tokio::task::spawn_blocking(move || crate::process::stop(&group, grace))
            .await
            .unwrap_or(false);
        if !stopped {
            return Err(Outcome::failed(format!(
                "the previous attempt's {previous} is still running and could not be stopped: not starting the command beside it"
            )));
        }
        attempt.output.line(
            Stream::Stderr,
            &format!("rollbook: stopped the previous attempt's {previous}, still running"),
        );
        Ok(())
    }

    /// Streams the child's output until it exits; on cancellation stops its process group
    /// (SIGTERM, then SIGKILL after the grace period).
    async fn wait(&self, child: &mut Child, attempt: &Attempt) -> Result<Finished, Outcome> {
        let pgid = child.id().unwrap_or(0);
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        // The step ends when its command exits: output is read on for [`OUTPUT_GRACE`] at
        // most after that, not until every background process it left closes the pipes.
        let stop_reading = CancellationToken::new();
        let read_all = CancellationToken::new();
        let reading = async {
            let read = tokio::join!(
                read_lines(
                    stdout,
                    Stream::Stdout,
                    &attempt.output,
                    self.tail_bytes,
                    &stop_reading
                ),
                read_lines(
                    stderr,
                    Stream::Stderr,
                    &attempt.output,
                    self.tail_bytes,
                    &stop_reading
                ),
            );
            read_all.cancel();
            read
        };
        let exiting = async {
            let status = child.wait().await;
            tokio::select! {
                _ = tokio::time::sleep(OUTPUT_GRACE) => stop_reading.cancel(),
                _ = read_all.cancelled() => {}
            }
            status
        };
        let work = async {
            let ((stdout, stderr), status) = tokio::join!(reading, exiting);
            (stdout, stderr, status)
        };
        tokio::pin!(work);
        let (stdout, stderr, status) = tokio::select! {
            done = &mut work => done,
            _ = attempt.cancel.cancelled() => {
                crate::process::signal(pgid, libc::SIGTERM);
                if tokio::time::timeout(self.grace, &mut work).await.is_err() {
                    crate::process::signal(pgid, libc::SIGKILL);
                    let _ = tokio::time::timeout(self.grace, &mut work).await;
                }
                return Err(Outcome::failed("cancelled: the command and its process group were killed"));
            }
        };
        let status = status.map_err(|e| Outcome::failed(format!("waiting for `sh`: {e}")))?;
        Ok(Finished {
            code: exit_code(status),
            stdout,
            stderr,
        })
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
