//! The command lines sent to the host. Everything substituted is shell-quoted; template values
//! arrive as exported variables that the step's code refers to.
//!
//! A command's first words on stderr name its process group and the group leader's start time
//! (read from `/proc`, without a fork): sshd makes every channel's shell a session and group
//! leader of its own, so a timeout or Ctrl-C can stop the whole group on the host, and a retry
//! or a `resume` can tell whether that group is still there. Under `sudo` the group is read
//! inside sudo's shell.
//!
//! OpenSSH does not end a command when its session goes away without a terminal (the sshd
//! process killed, the connection lost, rollbook killed): a `sleep 4; echo done >> f` goes on
//! and writes `done` beside the retry's copy. So every command has a **watcher** on the host,
//! a subshell that waits for the end of the channel's input and stops the group if the command
//! is still running then:
//!
//! - rollbook keeps the channel's input open for as long as the command runs and sends nothing
//!   on it, and the command itself reads `/dev/null` (what it read before: an input that had
//!   already ended). The input ends when sshd closes it: after the command exited, or when the
//!   session is gone (its sshd process died, the connection or the channel was closed). Only
//!   in the second case is the command still running, and only then is its group stopped:
//!   TERM, then KILL 2 s later if a process of it is still alive.
//! - It costs one fork per command and no polling: the watcher sleeps in `read` until the end.
//!   The command's shell stops and reaps it when it exits (an `EXIT` trap), so background
//!   processes a command leaves on purpose after a normal exit are not touched, and no orphan
//!   is left for an init that may not reap.
//! - A `script:` is sent on the same input, so the script's length goes on the command line:
//!   `head -c LENGTH` hands exactly the script to `sh -se`, and only then does the watcher
//!   (started beside it, not by the command's shell) wait on what remains of the input; it
//!   ends by itself when the input ends after the script's shell exited.

use std::time::Duration;

use rollbook_plan::action::SshCommand;
use rollbook_plan::template::shell_quote;
use russh::client::Handle;

use crate::connect::HostKeyCheck;

/// The wrapper's first line on stderr: `rollbook-pgid:<group>:<leader start>`.
pub const PGID_MARKER: &str = "rollbook-pgid:";

fn with_sudo(command: &str, sudo: bool) -> String {
    if sudo {
        // -n: a password prompt is a clear failure, never a hang.
        format!("sudo -n -- {command}")
    } else {
        command.to_string()
    }
}

/// Prints `rollbook-pgid:<group>:<leader start>` on stderr, from `/proc/$$/stat` (field 5)
/// and the leader's `/proc/PGID/stat` (field 22, counted after the command name, which may hold
/// spaces), with no fork. The positional parameters it borrows are emptied again.
const ANNOUNCE_GROUP: &str = "read -r _ _ _ _ rollbook_pgid _ < /proc/$$/stat; \
     read -r rollbook_l < /proc/$rollbook_pgid/stat; set -- ${rollbook_l##*) }; shift 19; \
     echo rollbook-pgid:$rollbook_pgid:$1 >&2; set --; ";

/// `rollbook_live GROUP EXCEPT`: whether a process of the group other than pid `EXCEPT` is
/// alive. Zombies do not count: an orphan stays one on a host whose init does not reap.
const LIVE_FN: &str = r#"rollbook_live() { rb_g=$1 rb_x=$2; for rb_f in /proc/[0-9]*/stat; do read -r rb_s 2>/dev/null < "$rb_f" || continue; set -- ${rb_s##*) }; if [ "$3" = "$rb_g" ] && [ "$1" != Z ] && [ "$1" != X ]; then rb_p=${rb_f#/proc/}; [ "${rb_p%/stat}" != "$rb_x" ] && return 0; fi; done; return 1; }; "#;

/// The watcher's body (see the module's documentation), run in the background with the
/// channel's input on fd 3 (a background job's `<&0` is `/dev/null` in dash, which applies
/// that before the job's own redirections): waits for the input's end; if the command's shell (`$$`) is still running then,
/// the session is gone, so the group is sent TERM, and KILL 2 s later if anything of it (but
/// the watcher) is still alive. That is done by a process of its own that ignores TERM, while
/// the watcher exits at once: bash runs the `EXIT` trap on TERM, and its `wait` for the
/// watcher must not hold the shell (a live member of the group) for those 2 s.
fn watcher() -> String {
    format!(
        "{{ {LIVE_FN}while read -r _; do :; done; \
         read -r rb_l 2>/dev/null < /proc/$$/stat || exit 0; \
         case ${{rb_l##*) }} in Z*|X*) exit 0;; esac; \
         ( trap '' TERM; kill -TERM -$rollbook_pgid; read -r rb_me _ < /proc/self/stat; i=0; \
         while [ $i -lt 20 ]; do sleep 0.1; rollbook_live $rollbook_pgid $rb_me || exit 0; i=$((i + 1)); done; \
         kill -KILL -$rollbook_pgid ) & }} <&3 >/dev/null 2>&1 & "
    )
}

/// The remote command line for a step, and what to send on its stdin (a script). The
/// channel's input must be left open after that: its end tells the watcher that the session
/// is gone.
pub fn command(cmd: &SshCommand) -> (String, Option<Vec<u8>>) {
    let mut inner = String::from(ANNOUNCE_GROUP);
    let code = cmd.command.as_ref().or(cmd.script.as_ref());
    let values = code.map_or(&[][..], |c| &c.values[..]);
    // The step's variables, then the template values its code refers to: single-quoted
    // assignments, exported so that a shell the command starts sees them too (sshd's
    // `AcceptEnv` cannot be relied on to pass them).
    for (k, v) in cmd.env.iter().chain(values) {
        inner.push_str(&format!("export {k}={}; ", shell_quote(v)));
    }
    let stdin = match (&cmd.command, &cmd.script) {
        (Some(c), _) => {
            inner.push_str(&watched());
            inner.push_str(&c.code);
            None
        }
        (None, Some(script)) => {
            let bytes = script.code.clone().into_bytes();
            // The script, and nothing more, goes to `sh -se`; the watcher reads the rest.
            inner.push_str(&format!(
                "exec 3<&0 </dev/null; {{ head -c {} <&3; {}}} | sh -se 3<&-",
                bytes.len(),
                watcher()
            ));
            Some(bytes)
        }
        (None, None) => {
            inner.push_str("true");
            None
        }
    };
    let line = if cmd.sudo {
        with_sudo(&format!("sh -c {}", shell_quote(&inner)), true)
    } else {
        // The login shell runs it itself: no process is started that the command does not need.
        inner
    };
    (line, stdin)
}

/// Starts the watcher as a child of the command's shell, gives the command `/dev/null` as its
/// input, and stops and reaps the watcher when the shell exits.
fn watched() -> String {
    format!(
        "exec 3<&0 </dev/null; {}rollbook_watch=$!; exec 3<&-; \
         trap 'kill $rollbook_watch 2>/dev/null; wait $rollbook_watch 2>/dev/null' EXIT; ",
        watcher()
    )
}

/// What the host answered when asked to end a previous attempt's group ([`end_group_command`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Nothing of it was running (or it ended by itself within half a second).
    Gone,
    /// It was running and has been stopped.
    Stopped,
}

/// Ends process group `pgid` if a live process of it is still there and the leader is the one
/// that started at `leader_start` (another process with the same number means the group is
/// long gone): TERM, up to 2 s, KILL, up to 2 s. Prints `gone`, `stopped`, or `running` when
/// it could not be stopped (then the reason is on stderr). Half a second is given first to a
/// group that is ending anyway (its watcher stopping it after a lost session), so that it is
/// not reported as stopped here.
pub fn end_group_command(pgid: u32, leader_start: Option<u64>, sudo: bool) -> String {
    let script = format!(
        r#"g=$1 s=$2; {LIVE_FN}rollbook_gone() {{ if [ -n "$s" ] && read -r rb_l 2>/dev/null < /proc/$g/stat; then set -- ${{rb_l##*) }}; shift 19; [ "$1" != "$s" ] && return 0; fi; ! rollbook_live "$g" 0; }}; within() {{ i=0; while [ $i -lt $1 ]; do rollbook_gone && return 0; sleep 0.1; i=$((i + 1)); done; rollbook_gone; }}; rollbook_gone && {{ echo gone; exit 0; }}; within 5 && {{ echo gone; exit 0; }}; if ! kill -TERM -$g; then rollbook_gone && {{ echo gone; exit 0; }}; echo running; exit 1; fi; within 20 && {{ echo stopped; exit 0; }}; kill -KILL -$g; within 20 && {{ echo stopped; exit 0; }}; echo running; exit 1"#
    );
    let start = leader_start.map_or(String::new(), |s| s.to_string());
    let command = format!(
        "sh -c {} rollbook-end-group {pgid} {}",
        shell_quote(&script),
        shell_quote(&start)
    );
    with_sudo(&command, sudo)
}

/// Reads the host's answer to [`end_group_command`].
pub fn ended(stdout: &str) -> Option<Ended> {
    match stdout.trim() {
        "gone" => Some(Ended::Gone),
        "stopped" => Some(Ended::Stopped),
        _ => None,
    }
}

/// The group and the leader's start time the wrapper announced in `line`, if it is the
/// announcement.
pub fn announced_group(line: &str) -> Option<(u32, Option<u64>)> {
    let rest = line.strip_prefix(PGID_MARKER)?.trim();
    let (pgid, start) = match rest.split_once(':') {
        Some((pgid, start)) => (pgid, start.parse().ok()),
        None => (rest, None),
    };
    Some((pgid.parse().ok()?, start))
}

/// Receives a file on stdin, checks its size and SHA-256, and only then moves it into place.
pub fn upload_command(
    to: &str,
    mode: Option<u32>,
    sha256: &str,
    size: usize,
    sudo: bool,
) -> String {
    let script = r#"set -e; t="$1.rollbook-upload.$$"; cat > "$t"; s=$(wc -c < "$t" | tr -d ' '); d=$(sha256sum "$t" | cut -d' ' -f1); if [ "$s" != "$3" ] || [ "$d" != "$2" ]; then rm -f "$t"; echo "received $s bytes with sha256 $d, sent $3 bytes with sha256 $2" >&2; exit 1; fi; if [ -n "$4" ]; then chmod "$4" "$t"; fi; mv -f "$t" "$1""#;
    let mode = mode.map_or(String::new(), |m| format!("{m:o}"));
    let command = format!(
        "sh -c {} rollbook-upload {} {} {} {}",
        shell_quote(script),
        shell_quote(to),
        shell_quote(sha256),
        size,
        shell_quote(&mode)
    );
    with_sudo(&command, sudo)
}

/// Stops a cancelled command's process group on the host: TERM, then KILL.
pub async fn kill_group(handle: &Handle<HostKeyCheck>, pgid: u32, sudo: bool) {
    // TERM, up to 2 s for the group's live processes to end (zombies, which an init that does
    // not reap leaves, do not count), then KILL. (dash's kill takes no `--`.)
    let kill = format!(
        "{LIVE_FN}kill -TERM -{pgid} 2>/dev/null || exit 0; i=0; \
         while [ $i -lt 20 ] && rollbook_live {pgid} 0; do sleep 0.1; i=$((i + 1)); done; \
         kill -KILL -{pgid} 2>/dev/null; true"
    );
    let command = with_sudo(&format!("sh -c {}", shell_quote(&kill)), sudo);
    let Ok(mut channel) = handle.channel_open_session().await else {
        return;
    };
    if channel.exec(true, command).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while channel.wait().await.is_some() {}
    })
    .await;
}
