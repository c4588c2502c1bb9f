//! The journal reader and the resume fold on any journal, and healing on a journal cut at any
//! byte. The input is a 4-byte cut position (little endian, taken modulo the length) followed
//! by the journal's bytes. The oracle:
//!
//! - reading, folding and replaying never panic, and every event read writes back as itself;
//! - the events of the cut journal are those of its complete lines, in order (plus, at most,
//!   the event of a last line whose newline was cut); when every line of the whole journal
//!   reads, they are the whole journal's first events;
//! - opening the cut journal to append and appending an event, then reading it back, gives
//!   the events read before the open, a `journal_healed` event when bytes were cut, the
//!   appended event, and nothing else; the cut bytes are in the side file it names, and the
//!   journal kept the bytes before them;
//! - a healed journal needs no healing.

#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rollbook_exec::journal::{FileJournal, Journal, heal, read_journal};
use rollbook_exec::resume::replay;
use rollbook_exec::{Event, RunHistory, Timestamp};

/// A run directory of this process, on a memory file system when there is one (the journal
/// syncs every append).
fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = Path::new("/dev/shm");
        let base = if base.is_dir() {
            base.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        base.join(format!("rollbook-fuzz-journal-{}", std::process::id()))
    })
}

fn fresh_run_dir() -> &'static Path {
    let dir = run_dir();
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).expect("the fuzz run directory can be made");
    dir
}

/// Every line of `bytes` that ends with a newline, read as the journal reads lines: the
/// events of the blank ones skipped; `None` when one does not read.
fn complete_lines(bytes: &[u8]) -> Option<Vec<Event>> {
    let mut events = Vec::new();
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        if !line.ends_with(b"\n") {
            break;
        }
        let text = std::str::from_utf8(line).ok()?;
        if text.trim().is_empty() {
            continue;
        }
        events.push(serde_json::from_str(text).ok()?);
    }
    Some(events)
}

fn assert_round_trips(events: &[Event]) {
    for event in events {
        let line = serde_json::to_string(event).expect("events serialize");
        let back: Event = serde_json::from_str(&line).expect("a written event reads");
        assert_eq!(&back, event, "{line}");
    }
}

fn marker() -> Event {
    Event::Cancelling {
        at: Timestamp::parse("2026-12-05T06:00:00.123Z").expect("a time"),
        hard: true,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((cut, journal)) = data.split_first_chunk::<4>() else {
        return;
    };
    let cut = u32::from_le_bytes(*cut) as usize % (journal.len() + 1);
    let dir = fresh_run_dir();
    let path = dir.join("journal.jsonl");

    fs::write(&path, journal).expect("write the journal");
    let whole = read_journal(dir).expect("the journal reads");
    assert_round_trips(&whole.events);
    let _ = RunHistory::fold(&whole.events);
    let _ = replay(&whole.events);

    let prefix = &journal[..cut];
    fs::write(&path, prefix).expect("write the cut journal");
    let before = read_journal(dir).expect("the cut journal reads");
    if let Some(complete) = complete_lines(prefix) {
        assert!(
            before.events.starts_with(&complete) && before.events.len() <= complete.len() + 1,
            "the cut journal reads {} events, its complete lines {}",
            before.events.len(),
            complete.len()
        );
    }
    if complete_lines(journal).is_some_and(|all| all.len() == whole.events.len()) {
        assert!(whole.events.starts_with(&before.events));
    }

    let mut appender = FileJournal::open(dir).expect("the cut journal opens");
    let healed_file = fs::read(&path).expect("read the healed journal");
    appender.append(&[marker()]).expect("append");
    drop(appender);

    let after = read_journal(dir).expect("the resumed journal reads");
    assert!(after.stopped_at.is_none(), "{:?}", after.stopped_at);
    assert!(after.events.starts_with(&before.events));
    assert_eq!(after.events.last(), Some(&marker()));
    match &after.events[before.events.len()..after.events.len() - 1] {
        [] => {
            assert!(!dir.join("journal.jsonl.torn-1").exists());
            assert!(healed_file.starts_with(prefix));
            assert!(healed_file.len() <= prefix.len() + 1);
        }
        [
            Event::JournalHealed {
                line,
                bytes,
                kept_in,
                ..
            },
        ] => {
            let keep = prefix.len() - *bytes as usize;
            let torn = fs::read(dir.join(kept_in)).expect("the side file reads");
            assert_eq!(torn, &prefix[keep..], "the side file holds the cut bytes");
            assert!(healed_file.starts_with(&prefix[..keep]));
            assert_eq!(
                *line,
                prefix[..keep].iter().filter(|b| **b == b'\n').count() + 1
            );
        }
        other => panic!("unexpected events after the cut: {other:?}"),
    }
    assert!(
        heal(dir).expect("heal").is_none(),
        "a healed journal heals again"
    );
    let _ = replay(&after.events);
});
