//! Process groups of local commands: what the journal records of one, and how a retry or a
//! `resume` tells whether one is still running and stops it.
//!
//! A group's number is the pid of its leader. Linux does not give that number to another
//! process while the group has a member, so a group is known by its number, and a leader's
//! start time tells a live leader from a later process that got the same number after the
//! group was gone.

use std::time::{Duration, Instant};

use crate::event::ProcessGroup;

/// The group `pgid` of this machine, as the journal records it.
pub fn local_group(pgid: u32) -> ProcessGroup {
    ProcessGroup {
        host: None,
        machine: machine_name(),
        pgid,
        leader_start: start_time(pgid),
    }
}

/// This machine's host name, as the kernel has it (read once).
pub fn machine_name() -> Option<String> {
    static NAME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
        let name = name.trim();
        (!name.is_empty()).then(|| name.to_string())
    })
    .clone()
}

/// The fields of `/proc/PID/stat` after the command name, from field 3 (the state) on. The
/// name (field 2) is in parentheses and may hold spaces: the fields are counted after it.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(str::to_string).collect())
}

/// A process's start time in clock ticks since boot (field 22 of `/proc/PID/stat`).
pub fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Whether a group of this machine still has a live process in it. Zombies do not count: an
/// orphan is a zombie until its new parent reaps it, and some machines' init never does.
pub fn alive(group: &ProcessGroup) -> bool {
    if group.host.is_some() || group.pgid <= 1 {
        return false;
    }
    // A local group of another machine (a run resumed elsewhere, on a shared state) is not
    // looked for here: its number means nothing on this machine, and a group that has it
    // here is someone else's. (A shell step resumed on machine B stopped B's own group with
    // the number machine A had recorded.)
    if group.machine.is_some() && group.machine != machine_name() {
        return false;
    }
    if let (Some(then), Some(now)) = (group.leader_start, start_time(group.pgid))
        && then != now
    {
        // Another process has the number now, so the group it led is gone.
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .any(|pid| live_member(pid, group.pgid))
}

/// Whether process `pid` is in group `pgid` and not a zombie (fields 3 and 5 of its stat).
fn live_member(pid: u32, pgid: u32) -> bool {
    let Some(fields) = stat_fields(pid) else {
        return false;
    };
    let group = fields.get(2).and_then(|g| g.parse::<u32>().ok());
    group == Some(pgid) && !matches!(fields.first().map(String::as_str), Some("Z" | "X"))
}

/// Stops a group of this machine: SIGTERM, then SIGKILL after `grace`, and waits (at most as
/// long again) until it is gone. Answers whether it is gone.
pub fn stop(group: &ProcessGroup, grace: Duration) -> bool {
    stop_all(std::slice::from_ref(group), grace)
}

/// Stops groups of this machine together: SIGTERM to each that is alive, up to `grace` for
/// them to end, SIGKILL to those still there, and up to `grace` again. Answers whether all are
/// gone.
pub fn stop_all(groups: &[ProcessGroup], grace: Duration) -> bool {
    let alive: Vec<&ProcessGroup> = groups.iter().filter(|g| alive(g)).collect();
    if alive.is_empty() {
        return true;
    }
    alive.iter().for_each(|g| signal(g.pgid, libc::SIGTERM));
    if all_gone_within(&alive, grace) {
        return true;
    }
    alive.iter().for_each(|g| signal(g.pgid, libc::SIGKILL));
    all_gone_within(&alive, grace)
}

/// Waits until the group is gone, polling; `false` when it is still there after `limit`.
pub fn gone_within(group: &ProcessGroup, limit: Duration) -> bool {
    all_gone_within(&[group], limit)
}

/// Waits until every group is gone, polling; `false` when one is still there after `limit`.
fn all_gone_within(groups: &[&ProcessGroup], limit: Duration) -> bool {
    let until = Instant::now() + limit;
    loop {
        if !groups.iter().any(|g| alive(g)) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `sig` to the process group `pgid`; nothing for 0 and 1 (`kill(0)` is this
/// process's own group, `kill(-1)` every process it may signal).
pub fn signal(pgid: u32, sig: i32) {
    if let Ok(pgid) = i32::try_from(pgid)
        && pgid > 1
    {
        // SAFETY: kill(2) with a negative pid signals a process group; it has no memory
        // effects on this process.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    /// A `sleep` in a group of its own, reaped by a thread of its own (as init reaps the
    /// orphans of a dead controller): its pid and the thread.
    fn sleeper() -> (u32, std::thread::JoinHandle<()>) {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        (pid, std::thread::spawn(move || drop(child.wait())))
    }

    #[test]
    fn a_running_group_is_alive_until_stopped() {
        let (pid, reaped) = sleeper();
        let group = local_group(pid);
        assert!(group.leader_start.is_some());
        assert!(alive(&group));
        assert!(stop(&group, Duration::from_secs(2)));
        reaped.join().unwrap();
        assert!(!alive(&group));
    }

    #[test]
    fn a_later_process_with_the_same_number_is_not_the_group() {
        let (pid, reaped) = sleeper();
        let mut group = local_group(pid);
        group.leader_start = group.leader_start.map(|s| s + 1);
        assert!(!alive(&group), "another start time means another process");
        group.leader_start = start_time(pid);
        assert!(stop(&group, Duration::from_secs(2)));
        reaped.join().unwrap();
    }

    #[test]
    fn a_group_of_another_machine_is_not_looked_for_here() {
        let (pid, reaped) = sleeper();
        let mut group = local_group(pid);
        group.machine = Some("another-machine-than-this".into());
        assert!(!alive(&group));
        assert!(stop(&group, Duration::from_secs(2)), "nothing to stop here");
        group.machine = machine_name();
        assert!(alive(&group));
        assert!(stop(&group, Duration::from_secs(2)));
        reaped.join().unwrap();
    }

    #[test]
    fn a_remote_group_is_not_looked_for_here() {
        let (pid, reaped) = sleeper();
        let mut group = local_group(pid);
        group.host = Some("deploy@web-1:22".into());
        assert!(!alive(&group));
        group.host = None;
        assert!(stop(&group, Duration::from_secs(2)));
        reaped.join().unwrap();
    }
}
