//! Steps run in the order they are written, with the real binary and a real shell: the
//! journal's timestamps show each step starting after the one above it ended, and the steps
//! of a `parallel: true` group running at the same time.

use std::path::Path;

use rollbook_exec::event::{Event, Timestamp};

use crate::Ran;

/// Runs the plan `body` as `plans/NAME.yaml` in a fresh directory and returns the run's
/// journal: `(position, event)` of each attempt's start and end, by node.
fn run_plan(name: &str, body: &str) -> (Ran, Attempts) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plans")).unwrap();
    let text = format!("version: 1\nname: {name}\n{body}");
    std::fs::write(dir.path().join(format!("plans/{name}.yaml")), text).unwrap();
    let ran: Ran = crate::rollbook_in(dir.path())
        .args(["run", name, "--reason", "order", "--yes"])
        .output()
        .unwrap()
        .into();
    let attempts = Attempts::read(dir.path());
    (ran, attempts)
}

/// When each node's (single) attempt started and ended, with its place in the journal.
struct Attempts(Vec<(usize, Event)>);

impl Attempts {
    fn read(dir: &Path) -> Attempts {
        let ids = crate::run_ids_in(&dir.join(".rollbook"));
        assert_eq!(ids.len(), 1, "{ids:?}");
        let run_dir = dir.join(".rollbook/runs").join(&ids[0]);
        let events = rollbook_exec::journal::read_events(&run_dir).unwrap();
        Attempts(events.into_iter().enumerate().collect())
    }

    /// The journal position and time of `node`'s attempt start.
    fn started(&self, node: &str) -> (usize, Timestamp) {
        self.find(node, |e| matches!(e, Event::AttemptStarted { .. }))
    }

    /// The journal position and time of `node`'s attempt end.
    fn ended(&self, node: &str) -> (usize, Timestamp) {
        self.find(node, |e| {
            matches!(e, Event::AttemptFinished { ok: true, .. })
        })
    }

    #[track_caller]
    fn find(&self, node: &str, kind: impl Fn(&Event) -> bool) -> (usize, Timestamp) {
        self.0
            .iter()
            .find_map(|(i, e)| match e {
                Event::AttemptStarted { at, node: n, .. }
                | Event::AttemptFinished { at, node: n, .. }
                    if n == node && kind(e) =>
                {
                    Some((*i, *at))
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no such attempt of `{node}` in the journal"))
    }
}

/// Each step checks that the one above it has left its mark, and leaves its own.
const IN_ORDER: &str = r#"
defaults:
  timeout: 60s
steps:
  - id: stop
    shell: { run: "sleep 0.3; touch stop" }
  - id: restore
    shell: { run: "test -e stop && sleep 0.3 && touch restore" }
  - id: start
    shell: { run: "test -e restore && touch start" }
"#;

#[test]
fn three_steps_without_needs_run_one_after_the_other() {
    let (ran, journal) = run_plan("in-order", IN_ORDER);
    ran.assert_code(0);
    for (before, after) in [("stop", "restore"), ("restore", "start")] {
        let (ended_at, ended) = journal.ended(before);
        let (started_at, started) = journal.started(after);
        assert!(
            started_at > ended_at,
            "`{after}` started (journal line {started_at}) before `{before}` ended (line {ended_at})"
        );
        assert!(
            started >= ended,
            "`{after}` started at {started:?}, before `{before}` ended at {ended:?}"
        );
    }
}

/// The same three steps in a `parallel: true` group. Each waits for the marks of the other
/// two before it ends, so the run succeeds only if all three run at the same time (a step
/// would time out waiting for a step that starts after it).
const TOGETHER: &str = r#"
defaults:
  timeout: 30s
steps:
  - id: together
    parallel: true
    steps:
      - id: stop
        shell: { run: "touch stop; until [ -e restore ] && [ -e start ]; do sleep 0.05; done" }
      - id: restore
        shell: { run: "touch restore; until [ -e stop ] && [ -e start ]; do sleep 0.05; done" }
      - id: start
        shell: { run: "touch start; until [ -e stop ] && [ -e restore ]; do sleep 0.05; done" }
  - id: after
    shell: { run: "test -e stop && test -e restore && test -e start" }
"#;

#[test]
fn the_steps_of_a_parallel_group_run_together_and_the_next_step_waits_for_all() {
    let (ran, journal) = run_plan("together", TOGETHER);
    ran.assert_code(0);
    let nodes = ["together.stop", "together.restore", "together.start"];
    // Every step started before any of them ended: they overlap.
    let last_start = nodes.iter().map(|n| journal.started(n)).max().unwrap();
    let first_end = nodes.iter().map(|n| journal.ended(n)).min().unwrap();
    assert!(
        last_start.0 < first_end.0 && last_start.1 <= first_end.1,
        "the group's steps did not overlap: last start {last_start:?}, first end {first_end:?}"
    );
    // The step below the group starts after the last of them ended.
    let last_end = nodes.iter().map(|n| journal.ended(n)).max().unwrap();
    let after = journal.started("after");
    assert!(after.0 > last_end.0 && after.1 >= last_end.1);
}
