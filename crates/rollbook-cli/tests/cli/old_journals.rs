//! A run directory written by an earlier rollbook (`tests/fixtures/journals/state`: a run of
//! `examples/hello-rollback.yaml` killed with SIGKILL during its `pause` step), and what that
//! rollbook's `show` and `report` said about it (`tests/fixtures/journals/expected/`). Today's
//! binary must read it the same way, and resume it.

use std::path::{Path, PathBuf};

use rollbook_exec::{Event, NodeStatus, RunStatus};

use crate::{crate_dir, rollbook_in, run_ids_in};

fn fixture() -> PathBuf {
    crate_dir().join("tests/fixtures/journals")
}

/// A copy of the fixture's state dir in a fresh directory, as `state/`, and the run's id.
fn copy_of_the_run() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture().join("state"), &dir.path().join("state"));
    let ids = run_ids_in(&dir.path().join("state"));
    assert_eq!(ids.len(), 1, "{ids:?}");
    let id = ids[0].clone();
    (dir, id)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `rollbook --state-dir state ARGS` in `dir`; it must exit 0.
fn stdout(dir: &Path, args: &[&str]) -> String {
    let out = rollbook_in(dir)
        .args(["--state-dir", "state"])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(fixture().join("expected").join(name)).unwrap()
}

#[test]
fn show_of_an_old_journal_is_what_it_was() {
    let (dir, id) = copy_of_the_run();
    assert_eq!(stdout(dir.path(), &["show", &id]), expected("show.txt"));
    assert_eq!(
        stdout(dir.path(), &["show", &id, "--format", "json"]),
        expected("show.json")
    );
}

#[test]
fn report_of_an_old_journal_is_what_it_was() {
    let (dir, id) = copy_of_the_run();
    assert_eq!(stdout(dir.path(), &["report", &id]), expected("report.md"));
    assert_eq!(
        stdout(dir.path(), &["report", &id, "--format", "json"]),
        expected("report.json")
    );
}

#[test]
fn runs_lists_an_old_journal_as_unfinished() {
    let (dir, id) = copy_of_the_run();
    let list = stdout(dir.path(), &["runs"]);
    let line = list.lines().find(|l| l.starts_with(&id)).expect(&list);
    assert!(line.contains("unfinished"), "{line}");
}

#[test]
fn an_old_journal_resumes_without_running_what_succeeded_again() {
    let (dir, id) = copy_of_the_run();
    let run_dir = dir.path().join("state/runs").join(&id);
    let before = rollbook_exec::journal::read_events(&run_dir).unwrap();
    let replay = rollbook_exec::resume::replay(&before);
    assert_eq!(replay.finished, None, "the run was cut off");
    let done: Vec<&str> = replay.prior.done.keys().map(|k| k.node.as_str()).collect();
    assert_eq!(done, ["hello"]);
    let unknown: Vec<&str> = replay.unknown.iter().map(|k| k.node.as_str()).collect();
    assert_eq!(unknown, ["pause"]);

    stdout(dir.path(), &["resume", &id, "--yes"]);

    let after = rollbook_exec::journal::read_events(&run_dir).unwrap();
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "the old entries stay as they were"
    );
    let resumed = &after[before.len()..];
    assert!(
        matches!(&resumed[0], Event::RunResumed { unknown, .. } if unknown == &["pause"]),
        "{:?}",
        resumed[0]
    );
    let started = |name: &str| {
        resumed
            .iter()
            .filter(|e| matches!(e, Event::AttemptStarted { node, .. } if node == name))
            .count()
    };
    assert_eq!(started("hello"), 0, "hello had succeeded and ran again");
    assert!(
        started("pause") >= 1,
        "pause was in flight and must run again"
    );
    let succeeded: Vec<&str> = resumed
        .iter()
        .filter_map(|e| match e {
            Event::NodeFinished {
                node,
                status: NodeStatus::Succeeded,
                ..
            } => Some(node.as_str()),
            _ => None,
        })
        .collect();
    assert!(succeeded.contains(&"flaky"), "{succeeded:?}");
    assert!(succeeded.contains(&"goodbye"), "{succeeded:?}");
    assert!(matches!(
        after.last(),
        Some(Event::RunFinished {
            status: RunStatus::Succeeded,
            ..
        })
    ));
    let show = stdout(dir.path(), &["show", &id]);
    assert!(show.contains("— succeeded"), "{show}");
}
