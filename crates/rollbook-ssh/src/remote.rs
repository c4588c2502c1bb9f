//! The command lines sent to the host. Everything substituted is shell-quoted; template values
//! arrive as exported variables that the step's code refers to.
//!
//! A command's first words on stderr name its process group (read from `/proc`, without a
//! fork): sshd makes every channel's shell a session and group leader of its own, so a
//! timeout or Ctrl-C can stop the whole group on the host (OpenSSH does not end a command when
//! its channel closes without a terminal). Under `sudo` the group is read inside sudo's shell.

use std::time::Duration;

use rollbook_plan::action::SshCommand;
use rollbook_plan::template::shell_quote;
use russh::client::Handle;

use crate::connect::HostKeyCheck;

/// The wrapper's first line on stderr: `rollbook-pgid:<id>`.
pub const PGID_MARKER: &str = "rollbook-pgid:";

fn with_sudo(command: &str, sudo: bool) -> String {
    if sudo {
        // -n: a password prompt is a clear failure, never a hang.
        format!("sudo -n -- {command}")
    } else {
        command.to_string()
    }
}

/// Prints `rollbook-pgid:<group>` on stderr, from `/proc/$$/stat` (field 5), with no fork.
const ANNOUNCE_GROUP: &str =
    "read -r _ _ _ _ rollbook_pgid _ < /proc/$$/stat; echo rollbook-pgid:$rollbook_pgid >&2; ";

/// The remote command line for a step, and what to send on its stdin (a script).
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
            inner.push_str(&c.code);
            None
        }
        (None, Some(script)) => {
            inner.push_str("exec sh -se");
            Some(script.code.clone().into_bytes())
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
    // TERM, up to 2 s for the group to end, then KILL. (dash's kill takes no `--`.)
    let kill = format!(
        "kill -TERM -{pgid} 2>/dev/null || exit 0; i=0; \
         while [ $i -lt 20 ] && kill -0 -{pgid} 2>/dev/null; do sleep 0.1; i=$((i + 1)); done; \
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
