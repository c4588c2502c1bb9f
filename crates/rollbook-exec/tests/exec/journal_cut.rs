//! A journal of generated events, written through the journal API, cut at any byte as a crash
//! or a full disk would leave it, then resumed: opened for append, appended to, read back.

use std::path::Path;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use rollbook_exec::event::{Event, NodeStatus, RunStatus, Timestamp, Tolerated};
use rollbook_exec::journal::{FileJournal, Journal, read_journal};
use rollbook_plan::compile::PhaseKind;
use serde_json::json;

fn at() -> impl Strategy<Value = Timestamp> {
    (0u64..4_000_000_000_000).prop_map(|ms| {
        Timestamp::from_system_time(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
    })
}

fn phase() -> impl Strategy<Value = PhaseKind> {
    prop_oneof![
        Just(PhaseKind::Main),
        Just(PhaseKind::OnFailure),
        Just(PhaseKind::Finally)
    ]
}

/// Names and messages: ASCII, line breaks, quotes, backslashes, multi-byte characters.
fn text() -> impl Strategy<Value = String> {
    "[a-z0-9 \\[\\]._\\-\"\\\\\n\r\té€😀]{0,24}"
}

fn node_status() -> impl Strategy<Value = NodeStatus> {
    prop_oneof![
        Just(NodeStatus::Succeeded),
        Just(NodeStatus::Failed),
        Just(NodeStatus::Skipped),
        Just(NodeStatus::Cancelled)
    ]
}

fn run_status() -> impl Strategy<Value = RunStatus> {
    prop_oneof![
        Just(RunStatus::Succeeded),
        Just(RunStatus::Failed),
        Just(RunStatus::Cancelled)
    ]
}

/// Events of every kind a run journals.
fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (at(), text(), text()).prop_map(|(at, run_id, plan)| Event::RunStarted {
            at,
            run_id,
            plan
        }),
        (at(), proptest::collection::vec(text(), 0..3))
            .prop_map(|(at, unknown)| Event::RunResumed { at, unknown }),
        (at(), phase(), 0usize..500).prop_map(|(at, phase, nodes)| Event::PhaseStarted {
            at,
            phase,
            nodes
        }),
        (
            at(),
            phase(),
            text(),
            proptest::collection::vec(text(), 0..3)
        )
            .prop_map(|(at, phase, node, instances)| Event::NodeExpanded {
                at,
                phase,
                node,
                instances
            }),
        (at(), phase(), text(), 1u32..5, proptest::option::of(text())).prop_map(
            |(at, phase, node, attempt, target)| Event::AttemptStarted {
                at,
                phase,
                node,
                attempt,
                target
            }
        ),
        (
            at(),
            phase(),
            text(),
            any::<bool>(),
            any::<u64>(),
            proptest::option::of(any::<i64>()),
            proptest::option::of(text())
        )
            .prop_map(|(at, phase, node, ok, duration_ms, exit_code, message)| {
                Event::AttemptFinished {
                    at,
                    phase,
                    node,
                    attempt: 1,
                    ok,
                    duration_ms,
                    exit_code,
                    message,
                }
            }),
        (at(), phase(), text(), 2u32..9, any::<u64>()).prop_map(
            |(at, phase, node, next_attempt, delay_ms)| Event::RetryScheduled {
                at,
                phase,
                node,
                next_attempt,
                delay_ms
            }
        ),
        (
            at(),
            phase(),
            text(),
            node_status(),
            proptest::option::of((text(), any::<i64>())),
            any::<bool>()
        )
            .prop_map(|(at, phase, node, status, outputs, tolerated)| {
                Event::NodeFinished {
                    at,
                    phase,
                    node,
                    status,
                    outputs: outputs
                        .map(|(s, n)| json!({ "id": s, "count": n, "list": [s, null, true] })),
                    message: None,
                    tolerated,
                }
            }),
        (at(), any::<bool>()).prop_map(|(at, hard)| Event::Cancelling {
            at,
            hard,
            reason: None
        }),
        (at(), phase(), run_status()).prop_map(|(at, phase, status)| Event::PhaseFinished {
            at,
            phase,
            status
        }),
        (
            at(),
            run_status(),
            proptest::collection::vec((phase(), text(), text()), 0..3)
        )
            .prop_map(|(at, status, tolerated)| Event::RunFinished {
                at,
                status,
                tolerated: tolerated
                    .into_iter()
                    .map(|(phase, node, message)| Tolerated {
                        phase,
                        node,
                        message
                    })
                    .collect(),
            }),
    ]
}

/// Batches of events, as the executor appends them (one sync per batch).
fn batches() -> impl Strategy<Value = Vec<Vec<Event>>> {
    proptest::collection::vec(proptest::collection::vec(event(), 1..4), 1..6)
}

/// Writes `batches` through a fresh file journal in `dir`; answers the journal's bytes and,
/// for each event, the byte its line ends at (after its newline).
fn write_journal(dir: &Path, batches: &[Vec<Event>]) -> (Vec<u8>, Vec<usize>) {
    let mut journal = FileJournal::open(dir).unwrap();
    let mut ends = Vec::new();
    let path = dir.join("journal.jsonl");
    for batch in batches {
        let before = std::fs::metadata(&path).unwrap().len() as usize;
        journal.append(batch).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let lines = bytes[before..].split_inclusive(|b| *b == b'\n');
        let mut end = before;
        for line in lines {
            end += line.len();
            ends.push(end);
        }
    }
    drop(journal);
    (std::fs::read(&path).unwrap(), ends)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every event whose line was whole before the cut (its newline included, or only its
    /// newline cut) reads back unchanged and in order, then a `journal_healed` event when
    /// bytes were cut, then the events appended after the resume: nothing else. The cut
    /// bytes are in the side file the healed event names, and the journal kept the bytes
    /// before them.
    #[test]
    fn a_journal_cut_at_any_byte_then_appended_to_loses_nothing_before_the_cut(
        batches in batches(),
        appended in proptest::collection::vec(event(), 1..4),
        cut_ratio in 0.0f64..=1.0,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, ends) = write_journal(dir.path(), &batches);
        let events: Vec<Event> = batches.concat();
        let cut = (bytes.len() as f64 * cut_ratio) as usize;
        let path = dir.path().join("journal.jsonl");
        std::fs::write(&path, &bytes[..cut]).unwrap();

        let mut journal = FileJournal::open(dir.path()).unwrap();
        let healed = std::fs::read(&path).unwrap();
        journal.append(&appended).unwrap();
        drop(journal);

        let read = read_journal(dir.path()).unwrap();
        prop_assert!(read.stopped_at.is_none(), "{:?}", read.stopped_at);
        // Lines whose newline alone was cut still read whole.
        let kept = ends.iter().take_while(|end| **end - 1 <= cut).count();
        let keep = if kept == 0 { 0 } else { ends[kept - 1].min(cut) };
        prop_assert_eq!(&read.events[..kept], &events[..kept]);
        let rest = &read.events[kept..];
        if keep == cut {
            prop_assert_eq!(rest, &appended[..]);
            prop_assert!(!dir.path().join("journal.jsonl.torn-1").exists());
        } else {
            let Event::JournalHealed { line, bytes: cut_bytes, kept_in, .. } = &rest[0] else {
                panic!("no journal_healed event after a cut line: {:?}", rest[0]);
            };
            prop_assert_eq!(&rest[1..], &appended[..]);
            prop_assert_eq!(*cut_bytes as usize, cut - keep);
            prop_assert_eq!(*line, kept + 1);
            prop_assert_eq!(kept_in.as_str(), "journal.jsonl.torn-1");
            let side = std::fs::read(dir.path().join(kept_in)).unwrap();
            prop_assert_eq!(&side[..], &bytes[keep..cut], "the cut bytes are in the side file");
            prop_assert_eq!(&healed[..keep], &bytes[..keep]);
        }
    }
}
