//! Completions, man pages and the version line: generated from the same definitions as
//! `--help`, here in every test run (and so in CI).

use crate::rollbook_in;

#[test]
fn completions_are_generated_for_every_shell() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef rollbook"),
        ("fish", "complete -c rollbook"),
        ("powershell", "Register-ArgumentCompleter"),
        ("elvish", "edit:completion"),
    ] {
        let out = rollbook_in(dir.path())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains(marker),
            "{shell}: no {marker:?} in\n{script}"
        );
        for command in ["validate", "diff", "readiness", "resume"] {
            assert!(script.contains(command), "{shell}: {command} missing");
        }
    }
    let bad = rollbook_in(dir.path())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn man_pages_are_written_for_rollbook_and_each_command() {
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man1");
    let out = rollbook_in(dir.path())
        .args(["man", man.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for page in [
        "rollbook",
        "rollbook-run",
        "rollbook-resume",
        "rollbook-diff",
        "rollbook-state",
    ] {
        let text = std::fs::read_to_string(man.join(format!("{page}.1"))).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: {text}"
        );
    }
    assert!(!man.join("rollbook-__reap.1").exists());
    assert!(!man.join("rollbook-help.1").exists());
}

#[test]
fn the_version_names_the_commit_and_the_build_date() {
    let dir = tempfile::tempdir().unwrap();
    let out = rollbook_in(dir.path()).arg("--version").output().unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    let shape = is_version_line(&line);
    assert!(shape, "{line}");
}

/// `rollbook 0.1.0 (commit abcdef123456, built 2026-12-05)`, or `commit unknown` outside git.
fn is_version_line(line: &str) -> bool {
    let Some(rest) =
        line.trim()
            .strip_prefix(concat!("rollbook ", env!("CARGO_PKG_VERSION"), " (commit "))
    else {
        return false;
    };
    let Some((commit, rest)) = rest.split_once(", built ") else {
        return false;
    };
    let date = rest.trim_end_matches(')');
    (commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()))
        && date.len() == 10
        && date.as_bytes()[4] == b'-'
        && date.as_bytes()[7] == b'-'
}

/// An option the environment sets is not shown in a usage line as if it were required, and
/// the environment still sets it.
#[test]
fn options_from_the_environment_stay_out_of_usage_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = rollbook_in(dir.path())
        .env("ROLLBOOK_STATE_DIR", "elsewhere")
        .env("ROLLBOOK_INVENTORY", "inv.yaml")
        .arg("run")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    let usage = err.lines().find(|l| l.starts_with("Usage:")).unwrap();
    assert_eq!(
        usage, "Usage: rollbook run --reason <REASON> <PLAN>",
        "{err}"
    );

    let out = rollbook_in(dir.path())
        .env(
            "ROLLBOOK_STATE_DIR",
            dir.path().join("no-such").join("state"),
        )
        .args(["runs"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("no-such/state"),
        "the state directory comes from ROLLBOOK_STATE_DIR"
    );
}
