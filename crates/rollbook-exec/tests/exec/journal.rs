//! The file journal, replay after a crash, and resuming with what the journal knows.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use rollbook_exec::event::{Event, NodeStatus, RunStatus};
use rollbook_exec::journal::{FileJournal, RunMeta, hash_text, read_events, read_meta};
use rollbook_exec::resume::replay;
use rollbook_plan::compile::PhaseKind;
use serde_json::{Map, json};

use crate::*;

const PLAN: &str = r#"
version: 1
name: journaled
steps:
  - id: a
    shell: { run: "lookup" }
    capture: { id: '.json.id' }
  - id: b
    needs: [a]
    shell: { run: "b" }
    retry: { attempts: 2, delay: 1s }
  - id: fan
    needs: [b]
    for_each: [x, y]
    shell: { run: "fan {{ item }}" }
  - id: c
    needs: [fan]
    shell: { run: "c" }
  - id: d
    needs: [c]
    shell: { run: "echo {{ steps.a.outputs.id }}" }
finally:
  - id: bye
    shell: { run: "bye {{ run.status }}" }
"#;

fn meta(run_id: &str) -> RunMeta {
    RunMeta {
        run_id: run_id.into(),
        plan: "journaled".into(),
        plan_path: "test.yaml".into(),
        plan_hash: hash_text(PLAN),
        params: Map::new(),
        reason: "testing".into(),
        user: "tester".into(),
        host: "localhost".into(),
        pid: std::process::id(),
        started_at: "2026-01-01T00:00:00Z".into(),
        lock: "journaled".into(),
        parallelism: 64,
        inventory: false,
        inventory_path: None,
        limit: Vec::new(),
        rollbook_version: "test".into(),
        calls: Default::default(),
    }
}

fn scripted() -> ScriptedRunner {
    ScriptedRunner::new()
        .on(
            "lookup",
            Behaviour::result(json!({ "json": { "id": 7 } })).lasting(secs(1)),
        )
        .on("b", Behaviour::fails_then_ok(1).lasting(secs(1)))
        .on("fan", Behaviour::ok().lasting(secs(2)))
        .on("c", Behaviour::ok().lasting(secs(1)))
}

/// Runs PLAN to its end with a file journal under `state`; returns the run's directory.
async fn first_run(state: &Path) -> (CompiledPlan, PathBuf) {
    let plan = compile(PLAN);
    let m = meta("run-1");
    let mut journal = FileJournal::create(state, &m, PLAN, None).unwrap();
    let s = scripted();
    let status = execute(&plan, &runners(&s), Setup::default(), &mut journal).await;
    assert_eq!(status, RunStatus::Succeeded);
    let dir = journal.dir().to_path_buf();
    drop(journal);
    assert_eq!(read_meta(&dir).unwrap(), m);
    assert_eq!(
        std::fs::read_to_string(dir.join("plan.yaml")).unwrap(),
        PLAN
    );
    (plan, dir)
}

fn write_events(dir: &Path, events: &[Event], tail: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let mut f = std::fs::File::create(dir.join("journal.jsonl")).unwrap();
    for e in events {
        serde_json::to_writer(&mut f, e).unwrap();
        f.write_all(b"\n").unwrap();
    }
    f.write_all(tail.as_bytes()).unwrap();
}

fn key(phase: &str, node: &str) -> NodeKey {
    let phase = PhaseKind::ALL
        .into_iter()
        .find(|p| p.as_str() == phase)
        .expect("a phase");
    NodeKey::new(phase, node)
}

/// Where the journal first says `node`'s attempt 1 started.
fn attempt_started_at(events: &[Event], node: &str) -> usize {
    events
        .iter()
        .position(|e| matches!(e, Event::AttemptStarted { node: n, .. } if n == node))
        .unwrap_or_else(|| panic!("no AttemptStarted for {node}"))
}

#[tokio::test(start_paused = true)]
async fn the_file_journal_holds_one_end_per_node_and_attempts_in_order() {
    let state = tempfile::tempdir().unwrap();
    let (plan, dir) = first_run(state.path()).await;
    let events = read_events(&dir).unwrap();

    assert!(matches!(events.first(), Some(Event::RunStarted { .. })));
    assert!(matches!(
        events.last(),
        Some(Event::RunFinished {
            status: RunStatus::Succeeded,
            ..
        })
    ));
    // Every node of the phases that ran ends exactly once.
    let counts = finish_counts(&events);
    let mut expected = HashMap::new();
    for phase in ["steps", "finally"] {
        for node in node_names(&plan, phase) {
            expected.insert(key(phase, &node), 1);
        }
    }
    assert_eq!(counts, expected);
    // Every attempt is journaled as started before it is journaled as finished, and a node
    // ends after its last attempt.
    let mut open: HashMap<(PhaseKind, String, u32), usize> = HashMap::new();
    let mut closed = 0;
    for (i, e) in events.iter().enumerate() {
        match e {
            Event::AttemptStarted {
                phase,
                node,
                attempt,
                ..
            } => {
                let prev = open.insert((*phase, node.clone(), *attempt), i);
                assert!(prev.is_none(), "attempt {attempt} of {node} started twice");
            }
            Event::AttemptFinished {
                phase,
                node,
                attempt,
                ..
            } => {
                let started = open.remove(&(*phase, node.clone(), *attempt));
                assert!(
                    started.is_some(),
                    "attempt {attempt} of {node} finished unstarted"
                );
                closed += 1;
            }
            Event::NodeFinished { phase, node, .. } => {
                assert!(
                    !open.keys().any(|(p, n, _)| p == phase && n == node),
                    "{node} finished with an attempt in flight"
                );
            }
            _ => {}
        }
    }
    assert!(open.is_empty(), "attempts never finished: {open:?}");
    // lookup, b twice, fan x, fan y, c, d, bye.
    assert_eq!(closed, 8);

    let r = replay(&events);
    assert!(r.unknown.is_empty(), "{:?}", r.unknown);
    assert_eq!(r.finished, Some(RunStatus::Succeeded));
    assert_eq!(
        r.prior.done.get(&key("steps", "a")),
        Some(&(NodeStatus::Succeeded, Some(json!({ "id": 7 }))))
    );
    // Only the main graph's nodes count as done: a resume runs `on_failure` and `finally`
    // again, since they report on the run as it ends.
    let main_graph = expected
        .keys()
        .filter(|k| k.phase == PhaseKind::Main)
        .count();
    assert_eq!(r.prior.done.len(), main_graph);
    assert!(r.prior.done.keys().all(|k| k.phase == PhaseKind::Main));
}

#[tokio::test(start_paused = true)]
async fn a_journal_cut_after_an_attempt_started_replays_that_node_as_unknown() {
    let state = tempfile::tempdir().unwrap();
    let (_, dir) = first_run(state.path()).await;
    let events = read_events(&dir).unwrap();
    let cut = attempt_started_at(&events, "c");
    // A crash right after the attempt was journaled: a half-written line may follow.
    let crashed = state.path().join("crashed");
    write_events(&crashed, &events[..=cut], r#"{"event":"attempt_fini"#);
    let read = read_events(&crashed).unwrap();
    assert_eq!(read, events[..=cut], "a torn last line is ignored");

    let r = replay(&read);
    assert_eq!(r.unknown, [key("steps", "c")]);
    assert_eq!(r.finished, None);
    let mut done: Vec<_> = r.prior.done.keys().map(|k| k.node.clone()).collect();
    done.sort();
    assert_eq!(done, ["a", "b", "fan[x]", "fan[y]"]);
    assert!(
        r.prior
            .done
            .values()
            .all(|(s, _)| *s == NodeStatus::Succeeded)
    );
}

#[tokio::test(start_paused = true)]
async fn resuming_runs_only_the_nodes_not_done() {
    let state = tempfile::tempdir().unwrap();
    let (plan, dir) = first_run(state.path()).await;
    let events = read_events(&dir).unwrap();
    let cut = attempt_started_at(&events, "c");
    let crashed = state.path().join("crashed");
    write_events(&crashed, &events[..=cut], "");
    let r = replay(&read_events(&crashed).unwrap());
    let unknown: Vec<String> = r.unknown.iter().map(|k| k.node.clone()).collect();

    let s = scripted();
    let mut journal = FileJournal::open(&crashed).unwrap();
    let setup = Setup {
        prior: r.prior.clone(),
        resumed: Some(unknown.clone()),
        ..Setup::default()
    };
    let status = execute(&plan, &runners(&s), setup, &mut journal).await;
    drop(journal);
    assert_eq!(status, RunStatus::Succeeded);
    // `d` reads `a`'s capture from the journal: `a` itself does not run again.
    assert_eq!(s.commands(), ["c", "echo 7", "bye succeeded"]);

    let all = read_events(&crashed).unwrap();
    assert_eq!(all[..=cut], events[..=cut]);
    assert!(matches!(&all[cut + 1], Event::RunResumed { unknown: u, .. } if *u == unknown));
    let r = replay(&all);
    assert!(r.unknown.is_empty());
    assert_eq!(r.finished, Some(RunStatus::Succeeded));
    // After the resume, each node has ended exactly once in the whole journal.
    assert!(
        finish_counts(&all).values().all(|&n| n == 1),
        "{:?}",
        finish_counts(&all)
    );
}

/// The lines of a small journal as a run writes them.
fn journal_lines() -> Vec<String> {
    let at = "2026-01-01T00:00:00.000Z";
    [
        json!({"event":"run_started","at":at,"run_id":"r","plan":"p"}),
        json!({"event":"phase_started","at":at,"phase":"steps","nodes":2}),
        json!({"event":"attempt_started","at":at,"phase":"steps","node":"a","attempt":1,"target":"local"}),
        json!({"event":"attempt_finished","at":at,"phase":"steps","node":"a","attempt":1,"ok":true,"duration_ms":5,"exit_code":0}),
        json!({"event":"node_finished","at":at,"phase":"steps","node":"a","status":"succeeded"}),
        json!({"event":"attempt_started","at":at,"phase":"steps","node":"é-b","attempt":1}),
    ]
    .iter()
    .map(|v| format!("{v}\n"))
    .collect()
}

fn not_healed(events: Vec<Event>) -> Vec<Event> {
    events
        .into_iter()
        .filter(|e| !matches!(e, Event::JournalHealed { .. }))
        .collect()
}

/// The bytes of a run directory's side files (`journal.jsonl.torn-<n>`), in order.
fn side_bytes(dir: &Path) -> Vec<u8> {
    (1..)
        .map(|n| dir.join(format!("journal.jsonl.torn-{n}")))
        .take_while(|p| p.exists())
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// A journal cut at any byte (and maybe followed by garbage or NUL bytes), then opened
    /// for append, appended to and read back, keeps every event whose line was whole before
    /// the cut, reads without error, and loses no byte: what was cut is in a side file.
    #[test]
    fn a_journal_cut_anywhere_heals_when_opened_and_reads_back_whole(
        cut_ratio in 0.0f64..=1.0,
        garbage in proptest::collection::vec(proptest::sample::select(vec![0u8, 0xff, b'x', b'\n']), 0..6),
    ) {
        let lines = journal_lines();
        let text: String = lines.concat();
        let cut = (text.len() as f64 * cut_ratio) as usize;
        let mut bytes = text.as_bytes()[..cut].to_vec();
        bytes.extend(&garbage);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("journal.jsonl"), &bytes).unwrap();
        let mut whole = Vec::new();
        let mut end = 0;
        for line in &lines {
            end += line.len();
            // A line whose JSON is whole counts even when its newline was cut, unless garbage
            // follows on the same line.
            let newline_follows = garbage.first().is_none_or(|b| *b == b'\n');
            if end <= cut || (end - 1 == cut && newline_follows) {
                whole.push(serde_json::from_str::<Event>(line).unwrap());
            }
        }

        let mut journal = FileJournal::open(dir.path()).unwrap();
        let more: Event = serde_json::from_value(json!({"event":"run_resumed","at":"2026-01-01T00:00:01.000Z","unknown":[]})).unwrap();
        journal.append(std::slice::from_ref(&more)).unwrap();
        drop(journal);

        let read = read_events(dir.path()).unwrap();
        whole.push(more);
        proptest::prop_assert_eq!(not_healed(read), whole);
        let kept = std::fs::read(dir.path().join("journal.jsonl")).unwrap();
        let kept_before = &kept[..kept.len().min(bytes.len())];
        let mut rebuilt = kept_before.to_vec();
        rebuilt.truncate(bytes.len() - side_bytes(dir.path()).len());
        rebuilt.extend(side_bytes(dir.path()));
        proptest::prop_assert_eq!(rebuilt, bytes, "the cut bytes are kept");
    }
}

#[test]
fn a_bad_line_in_the_middle_stops_reading_there_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let lines = journal_lines();
    let mut bytes = lines[..2].concat().into_bytes();
    bytes.extend(b"{\"event\":\"run_st\xffrted\"}\n");
    bytes.extend(lines[2..].concat().as_bytes());
    std::fs::write(dir.path().join("journal.jsonl"), &bytes).unwrap();
    let read = rollbook_exec::journal::read_journal(dir.path()).unwrap();
    assert_eq!(read.events.len(), 2);
    let bad = read.stopped_at.expect("the bad line is named").to_string();
    assert!(bad.contains("journal.jsonl:3:"), "{bad}");

    // Appending cuts from the bad line on: what is appended reads back after the good part.
    let mut journal = FileJournal::open(dir.path()).unwrap();
    journal.append(&read.events[..1]).unwrap();
    drop(journal);
    let after = rollbook_exec::journal::read_journal(dir.path()).unwrap();
    assert!(after.stopped_at.is_none());
    assert!(matches!(
        after.events[2],
        Event::JournalHealed { line: 3, .. }
    ));
    assert_eq!(side_bytes(dir.path()), bytes[lines[..2].concat().len()..]);
}
