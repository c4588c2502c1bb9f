//! The reaper: a small process started with each run that stops the process groups of the
//! run's local commands if rollbook dies without ending them (`kill -9`, a crash, the OOM
//! killer, a third Ctrl-C). rollbook tells it of each group on a pipe as it starts and ends;
//! the pipe closes when rollbook dies, however it dies, and the reaper then stops the groups
//! still running: SIGTERM, then SIGKILL 2 seconds later. So a local step never outlives its
//! controller, and `resume` never runs a step beside a leftover copy of it.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rollbook_exec::ProcessGroup;
use rollbook_exec::runners::GroupWatch;

/// The hidden subcommand that runs the reaper's loop.
pub const SUBCOMMAND: &str = "__reap";

/// The running reaper of this run.
pub struct Reaper {
    stdin: Mutex<Option<ChildStdin>>,
    child: Mutex<Child>,
}

impl Reaper {
    /// Starts the reaper: this binary again, in a process group of its own (so that a Ctrl-C
    /// on the terminal does not reach it). `None` when it cannot be started: the run goes on,
    /// as it did before there was a reaper.
    pub fn start() -> Option<Arc<Reaper>> {
        use std::os::unix::process::CommandExt;
        let exe = std::env::current_exe().ok()?;
        let mut child = Command::new(exe)
            .arg(SUBCOMMAND)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .ok()?;
        let stdin = child.stdin.take();
        Some(Arc::new(Reaper {
            stdin: Mutex::new(stdin),
            child: Mutex::new(child),
        }))
    }

    /// What the shell runner calls as a command's group starts and ends.
    pub fn watch(self: &Arc<Self>) -> GroupWatch {
        let reaper = self.clone();
        Arc::new(move |pgid, started| {
            let line = format!("{}{pgid}\n", if started { '+' } else { '-' });
            if let Some(stdin) = reaper
                .stdin
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
            {
                let _ = stdin.write_all(line.as_bytes());
            }
        })
    }

    /// The run is over: the reaper is told so (its pipe closes with no group left) and waited
    /// for.
    pub fn finish(&self) {
        self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take();
        let _ = self.child.lock().unwrap_or_else(|e| e.into_inner()).wait();
    }
}

/// `rollbook __reap`: reads `+PGID` and `-PGID` lines until its input closes, then stops the
/// groups still listed.
pub fn reap() {
    let mut groups: HashSet<u32> = HashSet::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (sign, id) = line.split_at(line.len().min(1));
        match (sign, id.parse::<u32>()) {
            ("+", Ok(g)) if g > 1 => {
                groups.insert(g);
            }
            ("-", Ok(g)) => {
                groups.remove(&g);
            }
            _ => {}
        }
    }
    // The leaders' start times are not known here: a group is known by its number, which
    // Linux gives to no other process while the group has a member.
    let groups: Vec<ProcessGroup> = groups
        .into_iter()
        .map(|pgid| ProcessGroup {
            host: None,
            machine: None,
            pgid,
            leader_start: None,
        })
        .collect();
    rollbook_exec::process::stop_all(&groups, Duration::from_secs(2));
}
