//! One fault, one exit code, whichever command meets it: the real binary's `resume`, `show`,
//! `report` and `runs` (and `run` where it applies) against broken state directories.

use std::path::{Path, PathBuf};

use crate::crate_dir;

/// The run id every fault is about.
const ID: &str = "20260101-000000-abcd";
/// A journaled run whose `run.json` reads (a fixture).
const FIXTURE: &str = "20261125-091500-a1b2";

const INVALID: i32 = 2;
const INTERNAL: i32 = 5;

/// A broken state, built in a fresh directory; returns the `--state-dir` to give.
struct Fault {
    name: &'static str,
    build: fn(&Path) -> PathBuf,
    code: i32,
}

fn run_dir(state: &Path, id: &str) -> PathBuf {
    let dir = state.join("runs").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const FAULTS: &[Fault] = &[
    Fault {
        name: "no such run",
        build: |dir| {
            let state = dir.join("state");
            run_dir(&state, "20250101-000000-ffff");
            state
        },
        code: INVALID,
    },
    Fault {
        name: "no state dir at all",
        build: |dir| dir.join("nowhere"),
        code: INVALID,
    },
    Fault {
        name: "run.json is garbage",
        build: |dir| {
            let state = dir.join("state");
            std::fs::write(run_dir(&state, ID).join("run.json"), "{ not json").unwrap();
            state
        },
        code: INTERNAL,
    },
    Fault {
        name: "run.json is a directory",
        build: |dir| {
            let state = dir.join("state");
            std::fs::create_dir(run_dir(&state, ID).join("run.json")).unwrap();
            state
        },
        code: INTERNAL,
    },
    Fault {
        name: "the journal cannot be read",
        build: |dir| {
            let state = dir.join("state");
            let run = run_dir(&state, ID);
            let fixture = crate_dir().join("tests/fixtures/runs").join(FIXTURE);
            let meta = std::fs::read_to_string(fixture.join("run.json")).unwrap();
            std::fs::write(run.join("run.json"), meta.replace(FIXTURE, ID)).unwrap();
            // An I/O error (a bad line is no fault: the journal is read up to it).
            std::fs::create_dir(run.join("journal.jsonl")).unwrap();
            state
        },
        code: INTERNAL,
    },
    Fault {
        name: "the state dir is a file",
        build: |dir| {
            let state = dir.join("state");
            std::fs::write(&state, "not a directory").unwrap();
            state
        },
        code: INTERNAL,
    },
];

/// The commands, and the faults each can meet (`runs`, `list` and `readiness` name no run:
/// only the state dir's own faults reach them; they read the runs they can and leave the
/// others out).
fn commands(fault: &Fault) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut all = vec![
        ("resume", vec!["resume", ID, "--yes"]),
        ("show", vec!["show", ID]),
        ("report", vec!["report", ID]),
    ];
    if fault.name == "the state dir is a file" {
        all.push(("runs", vec!["runs"]));
        all.push(("list", vec!["--plans-dir", ".", "list"]));
        all.push(("readiness", vec!["readiness", "plan.yaml"]));
        all.push((
            "run",
            vec!["run", "plan.yaml", "--reason", "exit codes", "--yes"],
        ));
    }
    all
}

const PLAN: &str =
    "version: 1\nname: plan\ndescription: d\nsteps:\n  - id: a\n    shell: { run: 'true' }\n";

#[test]
fn each_fault_has_one_exit_code_in_every_command() {
    let mut wrong = Vec::new();
    for fault in FAULTS {
        for (command, args) in commands(fault) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("plan.yaml"), PLAN).unwrap();
            let state = (fault.build)(dir.path());
            let out = crate::rollbook_in(dir.path())
                .arg("--state-dir")
                .arg(&state)
                .args(&args)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            if out.status.code() != Some(fault.code) {
                wrong.push(format!(
                    "{}: `rollbook {command}` exited {:?}, not {}: {err}",
                    fault.name,
                    out.status.code(),
                    fault.code
                ));
            } else if !err.contains("error") {
                wrong.push(format!(
                    "{}: `rollbook {command}` said nothing on stderr",
                    fault.name
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn exit_code_5_is_in_the_help() {
    let out = crate::rollbook_in(&crate_dir())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("5 rollbook could not do its job"), "{help}");
}
