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
use std::io::{BufRead, BufReader, BufWriter, Write};
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
    /// The rollbook that ran it.
    pub rollbook_version: String,
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

    /// Opens an existing run's journal to append to it (`resume`).
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let path = dir.join("journal.jsonl");
        let events = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(FileJournal {
            dir: dir.to_path_buf(),
            events,
            logs: HashMap::new(),
        })
    }

    /// The run's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn flush_logs(&mut self) {
        for log in self.logs.values_mut() {
            let _ = log.flush();
        }
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
        self.flush_logs();
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

/// Reads a run's events. A last line cut short by a crash is ignored; any other unreadable
/// line is an error.
pub fn read_events(run_dir: &Path) -> Result<Vec<Event>, Error> {
    let path = run_dir.join("journal.jsonl");
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&path)(e)),
    };
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(io(&path))?;
    let mut events = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(e) => events.push(e),
            Err(_) if i + 1 == lines.len() => break,
            Err(e) => {
                return Err(Error::Corrupt {
                    path: path.display().to_string(),
                    line: i + 1,
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(events)
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
