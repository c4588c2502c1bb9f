//! The run journal: everything a run did, on disk, as it happened.
//!
//! `<state-dir>/runs/<run-id>/` holds `run.json` (who, why, which plan and params),
//! `plan.yaml` (the plan text as it was), `journal.jsonl` (one [`Event`] per line, synced to
//! disk at every state change) and `logs/<phase>/<node>.log` (each node's output). A crash
//! loses at most the output lines not yet flushed, never a state change: an attempt is
//! journaled as started before its runner is called.
//!
//! [`Journal`] is the seam for other backends (a shared PostgreSQL journal for teams that run
//! from several machines).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Error;
use crate::event::{Event, RunStatus, Timestamp, Tolerated};
use crate::history::RunHistory;
use crate::runner::Stream;

/// Where a run's events go.
pub trait Journal: Send {
    /// Makes `events` durable before returning (one sync for the whole batch).
    fn append(&mut self, events: &[Event]) -> Result<(), Error>;
    /// Adds a line to a node's log (flushed at state changes, not synced line by line).
    fn log(&mut self, phase: &str, node: &str, stream: Stream, line: &str) -> Result<(), Error>;
}

/// A journal that keeps nothing (benchmarks without the journal).
pub struct NoJournal;

impl Journal for NoJournal {
    fn append(&mut self, _: &[Event]) -> Result<(), Error> {
        Ok(())
    }
    fn log(&mut self, _: &str, _: &str, _: Stream, _: &str) -> Result<(), Error> {
        Ok(())
    }
}

/// The facts of a run that do not change: what ran, with which inputs, by whom, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// The run's id, also its directory's name.
    pub run_id: String,
    /// The plan's name.
    pub plan: String,
    /// Where the plan was read from.
    pub plan_path: String,
    /// SHA-256 of the plan text, hex.
    pub plan_hash: String,
    /// The params it was given, bound.
    pub params: Map<String, Value>,
    /// Why it was run (`--reason`).
    pub reason: String,
    /// Who ran it.
    pub user: String,
    /// On which machine.
    pub host: String,
    /// The process that started it.
    pub pid: u32,
    /// When it started (RFC 3339, UTC, milliseconds).
    pub started_at: String,
    /// The lock it took.
    pub lock: String,
    /// Most attempts in flight at once.
    pub parallelism: usize,
    /// `--inventory` was given: its text is kept as `inventory.yaml` beside the plan.
    #[serde(default)]
    pub inventory: bool,
    /// The `--inventory` path as given (`inventories/staging.yaml`); its file stem names the
    /// run's environment. Not written when there was none, nor by runs made before it was
    /// recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory_path: Option<String>,
    /// The hosts the run was narrowed to (`--limit`), as given; empty when it was not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limit: Vec<String>,
    /// The rollbook that ran it.
    pub rollbook_version: String,
    /// The plans the run's plan calls (`plan: NAME`), by name, with their text as they ran:
    /// `resume` and `report` compile exactly these. Not written when it calls none.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub calls: std::collections::BTreeMap<String, CalledPlan>,
}

/// A plan called by the run's plan, as the run read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalledPlan {
    /// Where it was read from.
    pub path: String,
    /// SHA-256 of its text, hex (a resume compares the file's against it).
    pub hash: String,
    /// Its text.
    pub text: String,
}

/// SHA-256 of a text, hex.
pub fn hash_text(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new run id: sortable by time, unique enough across machines.
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let stamp: String = stamp.chars().filter(|c| c.is_ascii_digit()).collect();
    let noise = (now.subsec_nanos() ^ std::process::id().rotate_left(16)) & 0xffff;
    format!("{}-{}-{noise:04x}", &stamp[..8], &stamp[8..14])
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The file-backed journal (the embedded default).
pub struct FileJournal {
    dir: PathBuf,
    events: File,
    logs: HashMap<String, BufWriter<File>>,
}

impl FileJournal {
    /// Creates `<state_dir>/runs/<run_id>/` with the run's metadata and plan text.
    pub fn create(
        state_dir: &Path,
        meta: &RunMeta,
        plan_text: &str,
        inventory_text: Option<&str>,
    ) -> Result<Self, Error> {
        let dir = state_dir.join("runs").join(&meta.run_id);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        write_synced(&dir.join("plan.yaml"), plan_text.as_bytes())?;
        if let Some(inv) = inventory_text {
            write_synced(&dir.join("inventory.yaml"), inv.as_bytes())?;
        }
        let json = serde_json::to_vec_pretty(meta).expect("run metadata serializes");
        write_synced(&dir.join("run.json"), &json)?;
        Self::open(&dir)
    }

    /// Opens an existing run's journal to append to it (`resume`). A journal that does not
    /// read to its end is healed first (see [`heal`]), so what is appended can be read back.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let healed = heal(dir)?;
        let path = dir.join("journal.jsonl");
        let events = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        sync_dir(dir);
        let mut journal = FileJournal {
            dir: dir.to_path_buf(),
            events,
            logs: HashMap::new(),
        };
        if let Some(healed) = healed {
            journal.append(&[healed])?;
        }
        Ok(journal)
    }

    /// The run's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes out what the node logs hold in memory.
    pub fn flush_logs(&mut self) {
        for log in self.logs.values_mut() {
            let _ = log.flush();
        }
    }

    /// Flushes and closes the open log files: a node's log is opened again by its next line.
    /// Kept open for the whole run, a fan-out over thousands of hosts would hold a descriptor
    /// and a write buffer for every step that printed.
    fn close_logs(&mut self) {
        self.flush_logs();
        self.logs.clear();
    }
}

/// Cuts a journal back to its last complete, readable line, so that appending goes on from
/// there: a line cut short by a crash, garbage or NUL bytes at the end, and everything from
/// the first line that does not read on. The cut bytes are kept, synced, in
/// `journal.jsonl.torn-<n>` beside it. Returns the `journal_healed` event to journal, or
/// `None` when nothing was cut (a readable last line whose newline was cut gets it back).
pub fn heal(dir: &Path) -> Result<Option<Event>, Error> {
    let path = dir.join("journal.jsonl");
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    let read = parse_journal(&path, &bytes);
    let file = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(io(&path))?;
    if read.sound_len == bytes.len() {
        if read.needs_newline {
            (&file).write_all(b"\n").map_err(io(&path))?;
            file.sync_data().map_err(io(&path))?;
        }
        return Ok(None);
    }
    cut_tail(dir, &file, &bytes, read.sound_len).map(Some)
}

/// Keeps `bytes[keep..]` in a new side file, then cuts the journal to `keep` bytes: the side
/// file is durable before anything is cut, so a crash in between loses nothing.
fn cut_tail(dir: &Path, journal: &File, bytes: &[u8], keep: usize) -> Result<Event, Error> {
    let path = dir.join("journal.jsonl");
    let side = free_side_file(dir);
    write_synced(&side, &bytes[keep..])?;
    sync_dir(dir);
    journal.set_len(keep as u64).map_err(io(&path))?;
    journal.sync_all().map_err(io(&path))?;
    let line = bytes[..keep].iter().filter(|b| **b == b'\n').count() + 1;
    Ok(Event::JournalHealed {
        at: Timestamp::now(),
        line,
        bytes: (bytes.len() - keep) as u64,
        kept_in: side
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    })
}

/// The first `journal.jsonl.torn-<n>` not taken yet: an earlier heal's bytes are never
/// overwritten.
fn free_side_file(dir: &Path) -> PathBuf {
    (1..)
        .map(|n| dir.join(format!("journal.jsonl.torn-{n}")))
        .find(|p| !p.exists())
        .expect("some number is free")
}

/// Makes a new or cut file's directory entry durable too (best effort: not every file
/// system can sync a directory).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut f = File::create(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Where a node's log is, relative to its run's directory: `logs/<phase>/<node>.log`.
pub fn log_path(phase: &str, node: &str) -> PathBuf {
    Path::new("logs").join(phase).join(log_file_name(node))
}

/// A node name as a file name: brackets and dots are fine, slashes are not.
fn log_file_name(node: &str) -> String {
    let safe: String = node
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    format!("{safe}.log")
}

impl Journal for FileJournal {
    fn append(&mut self, events: &[Event]) -> Result<(), Error> {
        if events.is_empty() {
            return Ok(());
        }
        self.close_logs();
        let mut buf = Vec::with_capacity(events.len() * 160);
        for e in events {
            serde_json::to_writer(&mut buf, e).expect("events serialize");
            buf.push(b'\n');
        }
        let path = self.dir.join("journal.jsonl");
        self.events.write_all(&buf).map_err(io(&path))?;
        self.events.sync_data().map_err(io(&path))
    }

    fn log(&mut self, phase: &str, node: &str, stream: Stream, line: &str) -> Result<(), Error> {
        let key = format!("{phase}/{node}");
        if !self.logs.contains_key(&key) {
            let path = self.dir.join(log_path(phase, node));
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).map_err(io(dir))?;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            self.logs.insert(key.clone(), BufWriter::new(f));
        }
        let w = self.logs.get_mut(&key).expect("just inserted");
        let tag = match stream {
            Stream::Stdout => "out",
            Stream::Stderr => "err",
        };
        let _ = writeln!(w, "{tag} | {line}");
        Ok(())
    }
}

impl Drop for FileJournal {
    fn drop(&mut self) {
        self.flush_logs();
    }
}

/// Appends one event to a run's journal from outside the run's own writer: the third signal
/// marks the run this way just before rollbook exits. The journal's writer appends whole
/// lines with one write each, and so does this, so the two never mix within a line.
pub fn append_one(run_dir: &Path, event: &Event) -> Result<(), Error> {
    let path = run_dir.join("journal.jsonl");
    let mut line = serde_json::to_vec(event).expect("events serialize");
    line.push(b'\n');
    let mut file = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(io(&path))?;
    file.write_all(&line).map_err(io(&path))?;
    file.sync_data().map_err(io(&path))
}

/// Records a changed plan for a run resumed with it (`--allow-changed-plan`): the plan copy
/// and the hash in `run.json`.
pub fn replace_plan(run_dir: &Path, meta: &RunMeta, plan_text: &str) -> Result<(), Error> {
    write_synced(&run_dir.join("plan.yaml"), plan_text.as_bytes())?;
    let json = serde_json::to_vec_pretty(meta).expect("run metadata serializes");
    write_synced(&run_dir.join("run.json"), &json)
}

/// The run directories under a state dir.
pub fn runs_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("runs")
}

/// Reads a run's metadata.
pub fn read_meta(run_dir: &Path) -> Result<RunMeta, Error> {
    let path = run_dir.join("run.json");
    let text = fs::read_to_string(&path).map_err(io(&path))?;
    serde_json::from_str(&text).map_err(|e| Error::Corrupt {
        path: path.display().to_string(),
        line: e.line(),
        message: e.to_string(),
    })
}

/// Reads a run's events, up to the first line that does not read (see [`read_journal`]).
pub fn read_events(run_dir: &Path) -> Result<Vec<Event>, Error> {
    read_journal(run_dir).map(|read| read.events)
}

/// A journal as read: its events up to the first line that does not read, and that line.
#[derive(Debug, Default)]
pub struct JournalRead {
    /// The events before the first line that does not read.
    pub events: Vec<Event>,
    /// The line reading stopped at, if any: `None` when every line read, or when only a last
    /// line cut short by a crash did not.
    pub stopped_at: Option<Error>,
    /// Bytes of complete, readable lines from the start (blank lines count).
    sound_len: usize,
    /// The last line reads but has no newline: the newline was cut, not the line.
    needs_newline: bool,
}

/// Reads a run's journal. Reading stops at the first line that is not a readable event
/// (unreadable JSON, bad UTF-8, NUL bytes): what comes after it cannot be trusted to follow
/// on, and a resume must never build on a guess. A last line cut short by a crash is
/// ignored; any other unreadable line is named in [`JournalRead::stopped_at`]. A missing
/// journal has no events.
pub fn read_journal(run_dir: &Path) -> Result<JournalRead, Error> {
    let path = run_dir.join("journal.jsonl");
    match fs::read(&path) {
        Ok(bytes) => Ok(parse_journal(&path, &bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(JournalRead::default()),
        Err(e) => Err(io(&path)(e)),
    }
}

fn parse_journal(path: &Path, bytes: &[u8]) -> JournalRead {
    let mut read = JournalRead::default();
    let mut offset = 0;
    for (i, chunk) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
        let terminated = chunk.ends_with(b"\n");
        match parse_line(chunk) {
            Ok(event) => {
                read.events.extend(event);
                offset += chunk.len();
                read.sound_len = offset;
                read.needs_newline = !terminated;
            }
            Err(message) => {
                let torn = bytes[offset + chunk.len()..]
                    .iter()
                    .all(u8::is_ascii_whitespace);
                if !torn {
                    read.stopped_at = Some(Error::Corrupt {
                        path: path.display().to_string(),
                        line: i + 1,
                        message,
                    });
                }
                break;
            }
        }
    }
    read
}

/// One journal line: an event, nothing for a blank line, or why it does not read.
fn parse_line(chunk: &[u8]) -> Result<Option<Event>, String> {
    let text = std::str::from_utf8(chunk).map_err(|e| format!("not UTF-8: {e}"))?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// A run as `rollbook runs` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Its metadata.
    pub meta: RunMeta,
    /// The last known status: `running` for a run that is going on or that crashed.
    pub status: RunStatus,
    /// When it finished, if it did.
    pub finished_at: Option<Timestamp>,
    /// The failures it went on after (not written when there are none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tolerated: Vec<Tolerated>,
}

/// Every run under the state dir, newest first.
pub fn list_runs(state_dir: &Path) -> Result<Vec<RunSummary>, Error> {
    let dir = runs_dir(state_dir);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&dir)(e)),
    };
    let mut runs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = read_meta(&path) else { continue };
        let history = RunHistory::fold(&read_events(&path).unwrap_or_default());
        runs.push(RunSummary {
            meta,
            status: history.finished.unwrap_or(RunStatus::Running),
            finished_at: history.finished.and(history.finished_at),
            tolerated: history.tolerated(),
        });
    }
    // Newest first by start time (milliseconds, UTC, so it sorts as text); ids only break
    // ties: two runs started in the same second have ids in no particular order.
    runs.sort_by(|a, b| {
        (&b.meta.started_at, &b.meta.run_id).cmp(&(&a.meta.started_at, &a.meta.run_id))
    });
    Ok(runs)
}
