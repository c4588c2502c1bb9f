//! `docs/tour.md`, run as written: every `console` block's commands, in one shell, against the
//! fleet. Each command must exit 0, and the output lines the page shows must appear in what it
//! printed, in order (times, run ids, durations, pids and the machine's name aside; `...`
//! stands for lines left out). So the tour never rots.

use std::process::{Command, Stdio};

use super::Fleet;

/// One command of the page and the output lines it shows.
#[derive(Debug)]
struct Shown {
    command: String,
    output: Vec<String>,
}

fn console_blocks(page: &str) -> Vec<Shown> {
    let mut shown: Vec<Shown> = Vec::new();
    let mut in_console = false;
    let mut continued = false;
    for line in page.lines() {
        if line.starts_with("```") {
            in_console = !in_console && line.trim() == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        if continued {
            let last = shown.last_mut().unwrap();
            last.command.push('\n');
            last.command.push_str(line);
            continued = line.ends_with('\\');
        } else if let Some(command) = line.strip_prefix("$ ") {
            shown.push(Shown {
                command: command.to_string(),
                output: Vec::new(),
            });
            continued = command.ends_with('\\');
        } else {
            shown.last_mut().unwrap().output.push(line.to_string());
        }
    }
    shown
}

/// The name of the machine the tour runs on, as rollbook records it (`runs` shows it as
/// HOST); the page writes `vm`.
fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// What may differ between the page and a run: times, dates, run ids, durations, pids, the
/// machine's name and spacing. Versions, addresses, ports and counts must match.
fn normal(line: &str) -> String {
    normal_on(line, &this_host())
}

fn normal_on(line: &str, host: &str) -> String {
    let words: Vec<&str> = line
        .split_whitespace()
        .map(|w| {
            if !host.is_empty() && w == host {
                "vm"
            } else {
                w
            }
        })
        .collect();
    let mut out: Vec<String> = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let next = words.get(i + 1).copied().unwrap_or_default();
        let prev = if i > 0 { words[i - 1] } else { "" };
        let number = w.trim_end_matches(|c: char| !c.is_ascii_digit());
        let volatile_number = !number.is_empty()
            && number.chars().all(|c| c.is_ascii_digit())
            && (next == "ms" || prev.ends_with("pid"));
        out.push(if volatile_number {
            format!("#{}", &w[number.len()..])
        } else {
            normal_word(w)
        });
    }
    out.join(" ")
}

/// Within a word: a time (`19:41:28`), a date or run id (`2026-12-01`,
/// `20261201-194128-5f52`) or a duration (`130ms`, `5s`, `1m`) becomes `#`.
fn normal_word(w: &str) -> String {
    let chars: Vec<char> = w.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() || (i > 0 && chars[i - 1].is_ascii_alphanumeric()) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let mut end = i;
        while end < chars.len()
            && (chars[end].is_ascii_hexdigit() || matches!(chars[end], ':' | '-' | 'T' | '.'))
        {
            end += 1;
        }
        let token: String = chars[i..end].iter().collect();
        let rest: String = chars[end..].iter().collect();
        let digits = token
            .trim_end_matches('.')
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.');
        let unit = ["ms", "s", "m"].into_iter().find(|u| {
            digits && rest.starts_with(u) && !rest[u.len()..].starts_with(char::is_alphanumeric)
        });
        if token.contains(':') || (token.contains('-') && token.len() >= 10) {
            out.push('#');
            i = end;
        } else if let Some(u) = unit {
            out.push('#');
            i = end + u.len();
        } else {
            out.push_str(&token);
            i = end;
        }
    }
    out
}

/// Whether `wanted` (with `...` for any lines) appears in `got`, in order.
fn shows(got: &[String], wanted: &[String]) -> Result<(), String> {
    let got: Vec<String> = got.iter().map(|l| normal(l)).collect();
    let mut at = 0;
    let mut anywhere = wanted.first().is_some_and(|w| w == "...");
    for w in wanted {
        if w == "..." {
            anywhere = true;
            continue;
        }
        let w = normal(w);
        let found = if anywhere {
            got[at..].iter().position(|g| *g == w).map(|i| at + i)
        } else {
            (got.get(at) == Some(&w)).then_some(at)
        };
        match found {
            Some(i) => at = i + 1,
            None => return Err(format!("the page shows `{w}`, which is not there")),
        }
        anywhere = false;
    }
    Ok(())
}

#[test]
fn the_tour_runs_as_written() {
    let fleet = Fleet::take();
    let page = std::fs::read_to_string(crate::workspace().join("docs/tour.md")).unwrap();
    let shown = console_blocks(&page);
    assert!(shown.len() >= 15, "{shown:#?}");

    // `rollbook` is the binary under test, wherever the page's PATH points; the page's
    // /tmp/rollbook-fleet is the fleet of this run.
    let bin_dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        assert_cmd::cargo::cargo_bin("rollbook"),
        bin_dir.path().join("rollbook"),
    )
    .unwrap();
    let dir = fleet.dir.display().to_string();
    // Whatever the page left running in the background ends with the script.
    let mut script = String::from("exec 2>&1\ntrap 'kill -9 $(jobs -p) 2>/dev/null' EXIT\n");
    for (i, s) in shown.iter().enumerate() {
        let command = s.command.replace("/tmp/rollbook-fleet", &dir);
        script.push_str(&format!(
            "printf '\\n@@command {i}\\n'\n{command}\nprintf '\\n@@exit {i} %s\\n' $?\n"
        ));
    }
    let path = format!(
        "{}:{dir}/bin:{}",
        bin_dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    crate::clean_env(&mut cmd)
        .arg("-c")
        .arg(&script)
        .current_dir(crate::workspace())
        .env("PATH", path)
        .env("ROLLBOOK_FLEET_DIR", &dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Killed with everything it started if this test fails before the page's end.
    let out = crate::Running::spawn(&mut cmd).wait_with_output();
    let transcript = String::from_utf8_lossy(&out.stdout).into_owned();

    for (i, s) in shown.iter().enumerate() {
        let start = format!("@@command {i}\n");
        let from = transcript
            .find(&start)
            .unwrap_or_else(|| panic!("`{}` never ran:\n{transcript}", s.command));
        let rest = &transcript[from + start.len()..];
        let end = rest
            .find(&format!("\n@@exit {i} "))
            .unwrap_or_else(|| panic!("`{}` did not finish:\n{transcript}", s.command));
        let output: Vec<String> = rest[..end].lines().map(str::to_string).collect();
        let code = rest[end..].lines().nth(1).unwrap_or_default();
        assert_eq!(
            code,
            format!("@@exit {i} 0"),
            "`{}` failed:\n{}",
            s.command,
            output.join("\n")
        );
        if let Err(why) = shows(&output, &s.output) {
            panic!(
                "`{}`: {why}\n--- it printed:\n{}",
                s.command,
                output.join("\n")
            );
        }
    }
}

#[test]
fn the_tour_comparison_ignores_times_ids_and_durations_but_not_words() {
    assert_eq!(
        normal("19:41:28 run 20261201-194128-5f52 of operator-rollback started"),
        normal("07:00:01 run 20270101-000001-ab12 of operator-rollback started")
    );
    assert_eq!(
        normal("succeeded   130ms  1 attempt"),
        normal("succeeded 9ms 1 attempt")
    );
    assert_ne!(
        normal("zeitwork-operator=4.1.0"),
        normal("zeitwork-operator=4.2.0")
    );
    assert_ne!(
        normal("21 nodes in 21 layers"),
        normal("20 nodes in 21 layers")
    );
    assert_eq!(
        normal("-> 200 in 0 ms (7 bytes)"),
        normal("-> 200 in 12 ms (7 bytes)")
    );
    assert_eq!(normal("api up (pid 24909)"), normal("api up (pid 1)"));
    assert_eq!(normal("timeout 1m"), normal("timeout 5s"));
    assert_eq!(
        normal_on("root  ci-runner-7  eu-west operators too", "ci-runner-7"),
        normal_on("root  vm  eu-west operators too", "ci-runner-7")
    );
    assert_ne!(
        normal_on("root  other  eu-west", "ci-runner-7"),
        normal_on("root  vm  eu-west", "ci-runner-7")
    );
    let got: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let want = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(shows(&got, &want(&["a", "...", "c"])).is_ok());
    assert!(
        shows(&got, &want(&["a", "c"])).is_err(),
        "lines in a row must follow each other"
    );
    assert!(shows(&got, &want(&["...", "b"])).is_ok());
    assert!(
        shows(&got, &want(&["c", "...", "a"])).is_err(),
        "order matters"
    );
}
