//! What the command line hands rollbook is checked before it is used: run ids stay inside
//! the state directory, `--parallelism` is at least 1, and text from outside (a reason,
//! params, a command's output) reaches the terminal escaped while the journal keeps it as is.

use std::path::Path;

use crate::{Ran, run_ids_in};

/// A plan that appends a line to `ran` each time its step runs, then fails (so it can be
/// resumed).
const FAILING: &str = "version: 1\nname: p\ndescription: d\nparams:\n  note: { default: x }\nsteps:\n  - id: a\n    shell: { run: \"echo once >> ran; printf 'out \\\\033[31mred\\\\n'; exit 1\" }\n";

fn rollbook(dir: &Path, args: &[&str]) -> Ran {
    crate::rollbook_in(dir).args(args).output().unwrap().into()
}

fn sandbox() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.yaml"), FAILING).unwrap();
    dir
}

/// Runs `p.yaml` once (it fails) and returns its run id.
fn failed_run(dir: &Path, reason: &str) -> (Ran, String) {
    let ran = rollbook(
        dir,
        &[
            "--state-dir",
            "state",
            "run",
            "p.yaml",
            "--reason",
            reason,
            "--yes",
            "--param",
            "note=a\u{1b}]0;title\u{7}b",
        ],
    );
    ran.assert_code(1);
    let id = run_ids_in(&dir.join("state")).pop().unwrap();
    (ran, id)
}

fn lines_ran(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("ran"))
        .unwrap()
        .lines()
        .count()
}

/// `rollbook run p.yaml --yes` in `dir`, with its state in `dir/state`.
fn run_p(dir: &Path) -> Ran {
    rollbook(
        dir,
        &[
            "--state-dir",
            "state",
            "run",
            "p.yaml",
            "--reason",
            "r",
            "--yes",
        ],
    )
}

#[test]
fn a_run_id_that_is_a_path_out_of_the_state_dir_is_refused() {
    let dir = sandbox();
    let (_, id) = failed_run(dir.path(), "r");
    std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
    let moved = dir.path().join("elsewhere/run");
    std::fs::rename(dir.path().join("state/runs").join(&id), &moved).unwrap();
    for args in [
        vec!["resume", "../../elsewhere/run", "--yes"],
        vec!["show", "../../elsewhere/run"],
        vec!["report", "../../elsewhere/run"],
    ] {
        let ran = rollbook(dir.path(), &[&["--state-dir", "state"], &args[..]].concat());
        ran.assert_code(2);
        assert!(ran.stderr.contains("is not a run id"), "{}", ran.stderr);
    }
    // A run id shaped right, but a symlink out of the state dir.
    std::os::unix::fs::symlink(&moved, dir.path().join("state/runs").join(&id)).unwrap();
    rollbook(
        dir.path(),
        &["--state-dir", "state", "resume", &id, "--yes"],
    )
    .assert_code(2);
    assert_eq!(
        lines_ran(dir.path()),
        1,
        "the run outside the state dir ran again"
    );
}

#[test]
fn parallelism_zero_is_refused_by_run_resume_and_plan() {
    let dir = sandbox();
    let (_, id) = failed_run(dir.path(), "r");
    for args in [
        vec![
            "run",
            "p.yaml",
            "--reason",
            "r",
            "--yes",
            "--parallelism",
            "0",
        ],
        vec!["resume", &id, "--yes", "--parallelism", "0"],
        vec!["plan", "p.yaml", "--parallelism", "0"],
    ] {
        let ran = rollbook(dir.path(), &[&["--state-dir", "state"], &args[..]].concat());
        ran.assert_code(2);
        assert!(ran.stderr.contains("at least 1"), "{}", ran.stderr);
    }
    assert_eq!(lines_ran(dir.path()), 1);
}

/// No escape character, bell or line break from outside reaches the terminal raw.
fn assert_escaped(what: &str, text: &str) {
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{what} printed raw control characters:\n{text}"
    );
    assert!(text.contains("\\x1b"), "{what} shows no escape:\n{text}");
}

#[test]
fn control_characters_from_outside_are_shown_escaped_and_journaled_as_they_are() {
    let dir = sandbox();
    let reason = "fix\u{1b}[2J\nforged line";
    let (ran, id) = failed_run(dir.path(), reason);
    assert_escaped("the live display", &ran.stderr);
    assert!(ran.stderr.contains("out \\x1b[31mred"), "{}", ran.stderr);
    for args in [vec!["runs"], vec!["show", &id], vec!["report", &id]] {
        let ran = rollbook(dir.path(), &[&["--state-dir", "state"], &args[..]].concat());
        ran.assert_code(0);
        assert_escaped(&format!("`rollbook {}`", args[0]), &ran.stdout);
        assert!(!ran.stdout.contains("\nforged line"), "{}", ran.stdout);
    }
    let show = rollbook(dir.path(), &["--state-dir", "state", "show", &id]);
    assert!(
        show.stdout.contains("fix\\x1b[2J\\nforged line"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains("note=a\\x1b]0;title\\x07b"),
        "{}",
        show.stdout
    );
    let json = rollbook(
        dir.path(),
        &["--state-dir", "state", "show", &id, "--format", "json"],
    )
    .json();
    assert_eq!(
        json["run"]["reason"], reason,
        "the journal keeps the real text"
    );
}

#[test]
fn a_run_whose_run_json_is_corrupt_is_listed_as_unreadable() {
    let dir = sandbox();
    let (_, id) = failed_run(dir.path(), "r");
    let broken = "20260101-000000-abcd";
    let broken_dir = dir.path().join("state/runs").join(broken);
    std::fs::create_dir(&broken_dir).unwrap();
    std::fs::write(broken_dir.join("run.json"), "{ not json").unwrap();
    let ran = rollbook(dir.path(), &["--state-dir", "state", "runs"]);
    ran.assert_code(0);
    assert!(ran.stdout.contains(&id), "{}", ran.stdout);
    let line = ran.stdout.lines().find(|l| l.starts_with(broken));
    assert!(
        line.is_some_and(|l| l.contains("unreadable")),
        "{}",
        ran.stdout
    );
    let json = rollbook(
        dir.path(),
        &["--state-dir", "state", "runs", "--format", "json"],
    )
    .json();
    let listed = json["runs"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{json}");
    assert_eq!(listed[1]["run_id"], broken);
    assert_eq!(listed[1]["status"], "unreadable");
}

/// `a/b` and `a_b` once shared `locks/a_b.lock`, and a 300-character name failed to open as
/// if the lock were the problem: both are refused as invalid plans, before any lock.
#[test]
fn lock_names_that_would_share_a_file_or_not_fit_one_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(300);
    for lock in ["a/b", "\"\"", long.as_str()] {
        let plan = format!(
            "version: 1\nname: p\ndescription: d\nlock: {lock}\nsteps:\n  - id: a\n    shell: {{ run: 'true' }}\n"
        );
        std::fs::write(dir.path().join("p.yaml"), plan).unwrap();
        let ran = run_p(dir.path());
        ran.assert_code(2);
        assert!(
            ran.stderr.contains("bad lock name"),
            "{lock}: {}",
            ran.stderr
        );
    }
    assert!(!dir.path().join("state/locks").exists());
}

/// An I/O error while taking the lock is rollbook's (5), never "the lock is held" (4).
#[test]
fn a_lock_that_cannot_be_written_is_an_internal_error_not_a_held_lock() {
    let dir = sandbox();
    std::fs::create_dir(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state/locks"), "not a directory").unwrap();
    let ran = run_p(dir.path());
    ran.assert_code(5);
    assert!(ran.stderr.contains("locks"), "{}", ran.stderr);
    assert!(
        !dir.path().join("ran").exists(),
        "a step ran without the lock"
    );
}
