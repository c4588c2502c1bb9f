//! What the journal knows about runs, for `runs`, `show` and `report` (the commands are in
//! `commands/`): reading a run's directory, its nodes as `show` lists them, compiling its
//! plan as it ran.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use rollbook_exec::history::{NodeRecord, NodeState, RunHistory};
use rollbook_exec::{Event, Timestamp, Tolerated, journal};
use rollbook_plan::compile::PhaseKind;
use serde::Serialize;
use serde_json::Value;

use crate::Failure;

/// A duration as `show` and `report` print it: `340ms`, `2s`, `1m12s`.
pub(crate) fn short(d: std::time::Duration) -> String {
    if d.as_secs() == 0 {
        return format!("{}ms", d.as_millis());
    }
    humantime::format_duration(std::time::Duration::from_secs(d.as_secs()))
        .to_string()
        .replace(' ', "")
}

/// Most tolerated failures a line names; the others are counted.
pub(crate) const MOST_NAMED_TOLERATED: usize = 10;

/// A tolerated failure's node as lines name it: `notify`, or `finally/notify` outside the
/// main graph (ids are unique per phase only).
pub(crate) fn tolerated_name(t: &Tolerated) -> String {
    if t.phase == PhaseKind::Main {
        t.node.clone()
    } else {
        format!("{}/{}", t.phase, t.node)
    }
}

/// `1 failure tolerated: notify`, `12 failures tolerated: a, b, ... and 2 more`; `None` when
/// the run tolerated none. What the end line, `runs` and `show` say.
pub(crate) fn tolerated_summary(tolerated: &[Tolerated]) -> Option<String> {
    if tolerated.is_empty() {
        return None;
    }
    let names: Vec<String> = tolerated
        .iter()
        .take(MOST_NAMED_TOLERATED)
        .map(tolerated_name)
        .collect();
    let mut list = names.join(", ");
    if tolerated.len() > names.len() {
        let _ = write!(list, " and {} more", tolerated.len() - names.len());
    }
    let noun = if tolerated.len() == 1 {
        "failure"
    } else {
        "failures"
    };
    Some(format!("{} {noun} tolerated: {list}", tolerated.len()))
}

/// One node as `show` tells it (the `--format json` shape).
#[derive(Debug, Clone, Serialize)]
pub struct NodeHistory {
    pub phase: PhaseKind,
    pub node: String,
    /// `succeeded`, `failed`, `skipped`, `cancelled`, or `unknown` (in flight at a crash).
    pub status: NodeState,
    pub attempts: u32,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub duration_ms: Option<u64>,
    pub exit_code: Option<i64>,
    pub message: Option<String>,
    pub outputs: Option<Value>,
    pub tolerated: bool,
    /// An undo node: the node it undid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undoes: Option<String>,
    /// An irreversible step: who confirmed the run again before it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed_by: Option<String>,
}

/// A scope the run undid, or with `--no-undo` did not (the `--format json` shape).
#[derive(Debug, Clone, Serialize)]
pub struct UndoHistory {
    pub phase: PhaseKind,
    /// The failed instance, or `run`.
    pub scope: String,
    /// The nodes undone, in the order their undos ran.
    pub nodes: Vec<String>,
    /// `--no-undo`: none ran.
    pub skipped: bool,
}

/// The scopes a run undid, in journal order.
pub fn undos(history: &RunHistory) -> Vec<UndoHistory> {
    history
        .undos
        .iter()
        .map(|u| UndoHistory {
            phase: u.phase,
            scope: u.scope.clone(),
            nodes: u.nodes.clone(),
            skipped: u.skipped,
        })
        .collect()
}

/// `undid restart[web-2]: restart[web-2].stop`, or `did not undo run (--no-undo): a, b`.
pub(crate) fn undo_line(u: &UndoHistory) -> String {
    if u.skipped {
        format!(
            "did not undo {} (--no-undo): {}",
            u.scope,
            u.nodes.join(", ")
        )
    } else {
        format!("undid {}: {}", u.scope, u.nodes.join(", "))
    }
}

impl From<&NodeRecord> for NodeHistory {
    fn from(n: &NodeRecord) -> Self {
        NodeHistory {
            phase: n.key.phase,
            node: n.key.node.clone(),
            status: n.state,
            attempts: n.attempts,
            started_at: n.started_at,
            finished_at: n.finished_at,
            duration_ms: n.duration.map(|d| d.as_millis() as u64),
            exit_code: n.exit_code,
            message: n.message.clone(),
            outputs: n.outputs.clone(),
            tolerated: n.tolerated,
            undoes: n.undoes.clone(),
            confirmed_by: n.confirmed_by.clone(),
        }
    }
}

/// A run's nodes, phases in run order, nodes in the order the journal first mentions them.
pub fn history(history: &RunHistory) -> Vec<NodeHistory> {
    history.nodes.iter().map(NodeHistory::from).collect()
}

/// A journaled run as `show` and `report` read it.
pub struct JournaledRun {
    pub dir: PathBuf,
    pub meta: journal::RunMeta,
    pub events: Vec<Event>,
    /// The events folded.
    pub history: RunHistory,
}

/// The plan of a journaled run compiled as it ran: with the params it bound, its copy of
/// `--inventory`, and its id, reason, user and start (`resume` and `report`).
pub(crate) fn compile_as_run(
    plan: &rollbook_plan::Plan,
    meta: &journal::RunMeta,
    dir: &Path,
) -> Result<rollbook_plan::compile::CompiledPlan, String> {
    use rollbook_plan::compile::{self, ParamInput, RunInfo};
    let input = ParamInput {
        file: meta
            .params
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        cli: Vec::new(),
    };
    let params = compile::bind_params(plan, &input).map_err(|e| e.to_string())?;
    let inventory = if meta.inventory {
        let text = std::fs::read_to_string(dir.join("inventory.yaml"))
            .map_err(|e| format!("cannot read the run's inventory copy: {e}"))?;
        // A directory's files were kept as one document of them; a file as it was.
        let files = rollbook_plan::inventory::unbundle(&text)
            .unwrap_or_else(|| vec![rollbook_plan::SourceFile::new("inventory.yaml", text)]);
        rollbook_plan::load_inventory_files(&files)
            .map_err(|_| "the run's inventory copy does not read".to_string())?
    } else {
        Default::default()
    };
    let info = RunInfo {
        id: meta.run_id.clone(),
        reason: meta.reason.clone(),
        user: meta.user.clone(),
        started_at: meta.started_at.clone(),
    };
    compile::compile_with(
        plan,
        params,
        &inventory,
        &info,
        &meta.limit,
        &called_library(meta),
    )
    .map_err(|e| e.to_string())
}

/// The plans a run's plan called, with their text as the run kept it.
pub(crate) fn called_library(meta: &journal::RunMeta) -> rollbook_plan::calls::Library {
    let mut library = rollbook_plan::calls::Library::new();
    for (name, called) in &meta.calls {
        let file = rollbook_plan::SourceFile::new(called.path.clone(), called.text.clone());
        library.insert(name.clone(), file);
    }
    library
}

/// Reads a run's directory; an unknown run id is exit code 2, an unreadable run (or state
/// dir) exit code 5.
pub fn open_run(state: &crate::state::State, run_id: &str) -> Result<JournaledRun, Failure> {
    crate::commands::check_run_id(run_id)?;
    let at = state.store.describe();
    let dir = match state.store.fetch(run_id) {
        Ok(Some(dir)) => dir,
        Ok(None) => {
            return Err(Failure::invalid(format!(
                "no run {run_id} in {at}: `rollbook runs` lists them"
            )));
        }
        Err(e) => return Err(Failure::from(e)),
    };
    crate::commands::run_exists(&at, run_id, &dir)?;
    let meta = journal::read_meta(&dir).map_err(|e| Failure::internal(e.to_string()))?;
    let read = journal::read_journal(&dir).map_err(|e| Failure::internal(e.to_string()))?;
    warn_about_journal(&read);
    let events = read.events;
    let history = RunHistory::fold(&events);
    Ok(JournaledRun {
        dir,
        meta,
        events,
        history,
    })
}

/// Says where reading the journal stopped, and each time it was healed: what follows is
/// told from the readable part only.
fn warn_about_journal(read: &journal::JournalRead) {
    if let Some(bad) = &read.stopped_at {
        say!("warning: {bad}; read up to the line before it, the rest is not shown");
    }
    for note in read.events.iter().filter_map(journal_note) {
        say!("note: {note}");
    }
}

/// The words for a `journal_healed` or `run_abandoned` event (what a reader of the run must
/// know beside its steps), `None` for any other.
pub(crate) fn journal_note(e: &Event) -> Option<String> {
    match e {
        Event::JournalHealed {
            at,
            line,
            bytes,
            kept_in,
        } => Some(format!(
            "at {at} the journal was cut back from line {line} on ({bytes} bytes that did not read, kept in {kept_in})"
        )),
        Event::RunAbandoned { at, message } => Some(format!("at {at} {message}")),
        _ => None,
    }
}

/// How the run ended: `succeeded`, `failed`, `cancelled`, or `unfinished` (going on, or
/// stopped without an end: a crash).
pub(crate) fn run_status(history: &RunHistory) -> &'static str {
    history.finished.map_or("unfinished", |s| s.as_str())
}
