//! What the tests of this binary share: the `rollbook` command with a clean environment, a
//! guard for a `rollbook` started in the background, and reading what a run left on disk.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Output};
use std::time::{Duration, Instant};

/// The workspace root, where `plans/` and `examples/` are.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// This crate's directory (fixtures are under `tests/fixtures`).
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Takes every `ROLLBOOK_*` variable of the environment the tests run in away from `cmd`
/// (a developer's shell may have `ROLLBOOK_PLANS` or `ROLLBOOK_STATE_DIR` exported), and
/// colors: a test sets what it needs itself.
pub fn clean_env(cmd: &mut StdCommand) -> &mut StdCommand {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ROLLBOOK_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("NO_COLOR", "1")
}

/// The `rollbook` binary under test, in `dir`, with a clean environment.
pub fn rollbook_command(dir: &Path) -> StdCommand {
    let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin("rollbook"));
    clean_env(&mut cmd).current_dir(dir);
    cmd
}

/// `rollbook` run in `dir`, with none of the environment's rollbook settings and no colors.
pub fn rollbook_in(dir: &Path) -> assert_cmd::Command {
    assert_cmd::Command::from_std(rollbook_command(dir))
}

/// A process a test started in the background, in a process group of its own. When the
/// test ends before waiting for it (a failed assertion), the whole group is killed, so no
/// `rollbook` (or shell around it) outlives the test. Should the test's thread die without
/// unwinding (nextest ending a test that hangs), the kernel kills the process.
pub struct Running {
    child: Option<Child>,
}

impl Running {
    /// Starts `cmd` as the leader of a new process group.
    pub fn spawn(cmd: &mut StdCommand) -> Running {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        // SAFETY: only prctl(2), async-signal-safe, between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("the command starts");
        Running { child: Some(child) }
    }

    /// Sends `signal` to the process (not its group: as a terminal's Ctrl-C would reach
    /// `rollbook` alone when it runs in a pipeline of its own).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the child this guard started and has not reaped.
        unsafe { libc::kill(self.id() as i32, signal) };
    }

    /// Waits for the end, and takes the captured output.
    pub fn wait_with_output(mut self) -> Output {
        self.child.take().unwrap().wait_with_output().unwrap()
    }
}

impl Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.child.as_ref().unwrap()
    }
}

impl DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        self.child.as_mut().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        // Once reaped, its pid may belong to someone else: only a child still running (or
        // exited but not yet waited for) is killed, with its group.
        if let Ok(None) = child.try_wait() {
            // SAFETY: kill(2) on the process group this guard started; its leader, our
            // child, has not been reaped, so the id is still ours.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
        }
    }
}

/// The run ids under a state dir, oldest first by name.
pub fn run_ids_in(state_dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(state_dir.join("runs"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Waits up to `limit` (generous: a bound for a test that would otherwise hang, not a
/// measure) for `ready`.
pub fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A finished command's exit code and output, as text.
#[derive(Debug)]
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Ran {
    fn from(out: Output) -> Ran {
        Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Ran {
    /// Asserts the exit code, showing stderr when it is not the one expected.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// stdout as one JSON document.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\nstderr:\n{}", self.stdout, self.stderr))
    }
}

/// Serves `router` on 127.0.0.1 (a free port) from a thread of its own, for the binary to
/// reach; lives as long as the test process.
pub fn serve(router: axum::Router) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, router).await.unwrap();
        });
    });
    addr
}
