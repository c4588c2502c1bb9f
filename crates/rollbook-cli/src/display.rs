//! What a person (or a tool) sees while a plan runs. Three consumers of the executor's events:
//! a live display on a terminal (one line per node updated in place, the last line of each
//! running step's output, a ticking clock, a summary at the end), timestamped lines on a
//! pipe, and `--events json`. The live display keeps what it knows in a [`Board`] and draws
//! frames with [`render`], a pure function of the board, the time, the terminal's size and
//! whether to color, so tests draw it into a virtual terminal at chosen moments.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use rollbook_exec::executor::Observed;
use rollbook_exec::executor::observe::Observations;
use rollbook_exec::{Event, NodeStatus, RunStatus, Timestamp, Tolerated};
use rollbook_plan::compile::PhaseKind;

/// What the display is told of the run before its events.
pub struct Run {
    pub id: String,
    pub plan: String,
    /// The nodes of the plan.
    pub total: usize,
    /// The nodes a resumed run finished before (they have no events of their own).
    pub earlier: usize,
}

/// How the run is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The live display on a terminal (stderr).
    Live,
    /// One timestamped line per event (stderr).
    Lines,
    /// One JSON event per line on stdout, nothing else.
    Json,
}

fn human(ms: u64) -> String {
    let d = Duration::from_secs(ms / 1000);
    if d.is_zero() {
        return format!("{ms}ms");
    }
    humantime::format_duration(d).to_string().replace(' ', "")
}

fn clock() -> String {
    let t = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    t[11..19].to_string()
}

/// Consumes observed events until the channel closes.
pub async fn show(mode: Mode, run: Run, color: bool, mut rx: Observations) {
    match mode {
        Mode::Json => {
            while let Some(o) = rx.recv().await {
                if let Observed::Event(e) = o {
                    let mut out = std::io::stdout().lock();
                    let _ = serde_json::to_writer(&mut out, &e);
                    let _ = writeln!(out);
                }
            }
        }
        Mode::Lines => {
            while let Some(o) = rx.recv().await {
                if let Some(line) = line_for(&o) {
                    crate::say!("{} {line}", clock());
                }
            }
        }
        Mode::Live => live(run, color, rx).await,
    }
}

/// The line for an event, or `None` for events not worth a line; what came from outside
/// (output, messages, node names with items) shown escaped.
fn line_for(o: &Observed) -> Option<String> {
    raw_line_for(o).map(|line| crate::terminal::escape(&line).into_owned())
}

fn raw_line_for(o: &Observed) -> Option<String> {
    Some(match o {
        Observed::Output { line, .. } => format!("  {} | {}", line.node, line.line),
        Observed::Skipped { lines } => format!(
            "  ({lines} output lines not shown: the display fell behind; every line is in the steps' logs)"
        ),
        Observed::Event(e) => match e {
            Event::RunStarted { run_id, plan, .. } => format!("run {run_id} of {plan} started"),
            // Only a shared store's lock has a token worth a line: it tells this controller
            // from the others of the run.
            Event::ControllerStarted { controller, .. } => format!(
                "lock `{}` held with fencing token {} ({})",
                controller.lock, controller.token?, controller.state
            ),
            Event::RunResumed { unknown, .. } if unknown.is_empty() => "run resumed".into(),
            Event::RunResumed { unknown, .. } => {
                format!("run resumed; outcome unknown for: {}", unknown.join(", "))
            }
            Event::PhaseStarted { phase, nodes, .. } => {
                format!("{phase}: {nodes} {}", if *nodes == 1 { "node" } else { "nodes" })
            }
            Event::NodeExpanded { node, instances, .. } => {
                format!("{node} expands to {} instances", instances.len())
            }
            Event::AttemptStarted { node, attempt, .. } if *attempt == 1 => format!("{node} started"),
            Event::AttemptStarted { node, attempt, .. } => format!("{node} attempt {attempt}"),
            Event::AttemptFinished { node, ok: false, message, attempt, .. } => format!(
                "{node} attempt {attempt} failed: {}",
                message.as_deref().unwrap_or("")
            ),
            Event::AttemptFinished { .. } | Event::AttemptProcess { .. } => return None,
            Event::RetryScheduled { node, next_attempt, delay_ms, .. } => {
                format!("{node} retries in {} (attempt {next_attempt})", human(*delay_ms))
            }
            Event::GateWaiting { node, attempt, elapsed_ms, deadline_ms, .. } => format!(
                "{node}: attempt {attempt}, {} of {}, not there yet",
                human(*elapsed_ms),
                human(*deadline_ms)
            ),
            Event::NodeFinished { node, status, message, tolerated, .. } => {
                let word = match status {
                    NodeStatus::Succeeded => "succeeded",
                    NodeStatus::Failed if *tolerated => "FAILED (the run goes on)",
                    NodeStatus::Failed => "FAILED",
                    NodeStatus::Skipped => "skipped",
                    NodeStatus::Cancelled => "cancelled",
                };
                match message {
                    // Not `cancelled: cancelled`: a message that only says the status again.
                    Some(m) if m.trim() == word => format!("{node} {word}"),
                    Some(m) if *status != NodeStatus::Succeeded => format!("{node} {word}: {m}"),
                    _ => format!("{node} {word}"),
                }
            }
            Event::Undoing { scope, nodes, skipped: false, .. } => {
                format!("undoing {scope}: {} (in this order)", nodes.join(", "))
            }
            Event::Undoing { scope, nodes, skipped: true, .. } => {
                format!("not undoing {scope} (--no-undo): {}", nodes.join(", "))
            }
            Event::IrreversibleConfirmed { node, answered_by, .. } => {
                format!("{node} is irreversible: confirmed by {answered_by}")
            }
            Event::Cancelling { hard: false, reason: Some(reason), .. } => {
                format!("stopping: {reason}")
            }
            Event::Cancelling { hard: false, .. } => {
                "stopping: nothing new starts, running steps finish, then `finally` (Ctrl-C again to cancel them)".into()
            }
            Event::Cancelling { hard: true, .. } => "cancelling the running steps".into(),
            Event::PhaseFinished { phase, status, .. } => format!("{phase}: {}", status.as_str()),
            Event::JournalHealed { .. } => crate::runs::journal_note(e)?,
            Event::RunAbandoned { message, .. } => message.clone(),
            Event::RunFinished { status, tolerated, .. } => {
                match crate::runs::tolerated_summary(tolerated) {
                    Some(t) => format!("run {}; {t}", status.as_str()),
                    None => format!("run {}", status.as_str()),
                }
            }
        },
    })
}

/// The terminal the live display draws on, shared with what else writes there while it runs
/// (a `confirm` step's question, a warning).
struct Terminal {
    /// The live display is on.
    live: bool,
    /// A question is on the screen: no frame is drawn until it is answered.
    paused: bool,
    /// The lines of the last frame, the cursor at the end of its last line (0: the next frame
    /// starts where the cursor is).
    drawn: usize,
}

static TERMINAL: std::sync::Mutex<Terminal> = std::sync::Mutex::new(Terminal {
    live: false,
    paused: false,
    drawn: 0,
});

/// Keeps the live display from drawing while it lives (a question on the terminal); the
/// next frame is drawn below the question.
pub(crate) struct Paused(());

impl Paused {
    pub(crate) fn new() -> Self {
        if let Ok(mut t) = TERMINAL.lock() {
            t.paused = true;
        }
        Paused(())
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if let Ok(mut t) = TERMINAL.lock() {
            t.paused = false;
            t.drawn = 0;
        }
    }
}

/// A line for standard error while a run may be shown live: the frame is wiped, the line
/// written, and the next frame drawn below it, so the line scrolls up with what is above.
pub(crate) fn say_above(line: &str) {
    let Ok(mut t) = TERMINAL.lock() else {
        crate::say!("{line}");
        return;
    };
    if t.live && !t.paused && t.drawn > 0 {
        crate::say_part!("{}", over(&[], t.drawn, false));
        t.drawn = 0;
    }
    crate::say!("{line}");
}

/// How often the live display is drawn again while the run goes on.
const REDRAW: Duration = Duration::from_millis(200);

async fn live(run: Run, color: bool, mut rx: Observations) {
    if let Ok(mut t) = TERMINAL.lock() {
        t.live = true;
        t.drawn = 0;
    }
    let mut board = Board::new(run.total);
    board.earlier = run.earlier;
    board.run = Some(format!("run {} of {}", run.id, run.plan));
    let mut tick = tokio::time::interval(REDRAW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            o = rx.recv() => {
                let Some(o) = o else { break };
                board.observe(&o);
            }
            _ = tick.tick() => draw(&board, color, false),
        }
    }
    draw(&board, color, true);

    fn draw(board: &Board, color: bool, last: bool) {
        let Ok(mut t) = TERMINAL.lock() else { return };
        if t.paused && !last {
            return;
        }
        let (width, height) = terminal_size();
        let frame = render(board, Timestamp::now(), width, height, color);
        let out = over(&frame, t.drawn, last);
        t.drawn = if last { 0 } else { frame.len() };
        t.live = !last;
        crate::say_part!("{out}");
    }
}

/// The bytes that draw `frame` over the last one of `drawn` lines: back to the first column
/// of its first line, clear to the end of the screen, the new lines.
fn over(frame: &[String], drawn: usize, last: bool) -> String {
    let mut out = String::new();
    if drawn > 0 {
        out.push('\r');
        if drawn > 1 {
            out.push_str(&format!("\x1b[{}A", drawn - 1));
        }
    }
    out.push_str("\x1b[J");
    out.push_str(&frame.join("\r\n"));
    if last {
        out.push_str("\r\n");
    }
    out
}

/// The terminal's columns and rows (standard error's), 80×24 when it does not say.
fn terminal_size() -> (u16, u16) {
    // SAFETY: TIOCGWINSZ writes a `winsize` into the one we hand it, nothing else.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 && size.ws_row > 0 {
        (size.ws_col, size.ws_row)
    } else {
        (80, 24)
    }
}

/// How a node ended, on the board.
#[derive(Debug, Clone)]
struct Done {
    status: NodeStatus,
    tolerated: bool,
    at: Timestamp,
    message: Option<String>,
}

/// One node's line.
#[derive(Debug, Clone)]
struct Row {
    phase: PhaseKind,
    node: String,
    /// When its first attempt started (`None`: it never ran: skipped, cancelled before).
    started: Option<Timestamp>,
    /// Its attempt, its next retry or its gate.
    note: String,
    /// The last line it wrote.
    output: Option<String>,
    done: Option<Done>,
}

/// What the live display knows of the run: the state its frames are drawn from.
#[derive(Debug, Default)]
pub struct Board {
    run: Option<String>,
    started: Option<Timestamp>,
    phase: Option<PhaseKind>,
    total: usize,
    /// Nodes a resumed run had finished before.
    earlier: usize,
    rows: Vec<Row>,
    index: HashMap<(PhaseKind, String), usize>,
    /// The last few lines worth reading that belong to no node (Ctrl-C, a healed journal,
    /// dropped output).
    notes: Vec<String>,
    finished: Option<(RunStatus, Timestamp)>,
}

/// How many characters of a step's last output line the board keeps.
const OUTPUT_KEPT: usize = 1024;

/// How many notes the board keeps.
const NOTES: usize = 3;

impl Board {
    /// A board for a run of `total` nodes (fan-outs over step outputs add theirs as they
    /// expand).
    pub fn new(total: usize) -> Self {
        Board {
            total,
            ..Board::default()
        }
    }

    fn row(&mut self, phase: PhaseKind, node: &str) -> &mut Row {
        let i = *self
            .index
            .entry((phase, node.to_string()))
            .or_insert_with(|| {
                self.rows.push(Row {
                    phase,
                    node: node.to_string(),
                    started: None,
                    note: String::new(),
                    output: None,
                    done: None,
                });
                self.rows.len() - 1
            });
        &mut self.rows[i]
    }

    fn note(&mut self, o: &Observed) {
        if let Some(line) = line_for(o) {
            self.notes.push(line);
            if self.notes.len() > NOTES {
                self.notes.remove(0);
            }
        }
    }

    /// Takes in one observed event or output line.
    pub fn observe(&mut self, o: &Observed) {
        let e = match o {
            Observed::Output { phase, line } => {
                if let Some(&i) = self.index.get(&(*phase, line.node.to_string())) {
                    // No terminal is wider: the rest would be cut anyway.
                    let kept: String = line.line.chars().take(OUTPUT_KEPT).collect();
                    self.rows[i].output = Some(kept);
                }
                return;
            }
            Observed::Skipped { .. } => return self.note(o),
            Observed::Event(e) => e,
        };
        self.started.get_or_insert(e.at());
        match e {
            Event::RunStarted { run_id, plan, at } => {
                self.run = Some(format!("run {run_id} of {plan}"));
                self.started = Some(*at);
            }
            Event::PhaseStarted { phase, .. } => self.phase = Some(*phase),
            Event::NodeExpanded { instances, .. } => self.total += instances.len(),
            Event::AttemptStarted {
                phase,
                node,
                attempt,
                at,
                ..
            } => {
                let row = self.row(*phase, node);
                row.started.get_or_insert(*at);
                row.done = None;
                row.note = if *attempt > 1 {
                    format!("attempt {attempt}")
                } else {
                    String::new()
                };
            }
            Event::GateWaiting {
                phase,
                node,
                attempt,
                elapsed_ms,
                deadline_ms,
                ..
            } => {
                self.row(*phase, node).note = format!(
                    "attempt {attempt}, {} of {}",
                    human(*elapsed_ms),
                    human(*deadline_ms)
                );
            }
            Event::RetryScheduled {
                phase,
                node,
                next_attempt,
                delay_ms,
                ..
            } => {
                self.row(*phase, node).note =
                    format!("retry {next_attempt} in {}", human(*delay_ms));
            }
            Event::NodeFinished {
                phase,
                node,
                status,
                message,
                tolerated,
                at,
                ..
            } => {
                let row = self.row(*phase, node);
                row.done = Some(Done {
                    status: *status,
                    tolerated: *tolerated,
                    at: *at,
                    message: message.clone(),
                });
            }
            Event::RunFinished { status, at, .. } => self.finished = Some((*status, *at)),
            // The undos are nodes too: the count grows by them, and the line says what is
            // undone.
            Event::Undoing { nodes, skipped, .. } => {
                if !skipped {
                    self.total += nodes.len();
                }
                self.note(o);
            }
            Event::IrreversibleConfirmed { .. }
            | Event::RunResumed { .. }
            | Event::ControllerStarted { .. }
            | Event::Cancelling { .. }
            | Event::JournalHealed { .. }
            | Event::RunAbandoned { .. } => self.note(o),
            Event::AttemptProcess { .. }
            | Event::AttemptFinished { .. }
            | Event::PhaseFinished { .. } => {}
        }
    }

    /// The nodes done, those of before a resume included.
    fn done(&self) -> usize {
        let done = self.rows.iter().filter(|r| r.done.is_some()).count() + self.earlier;
        done.min(self.total)
    }
}

/// How a piece of a line is painted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paint {
    Plain,
    Bold,
    Dim,
    Green,
    Red,
    Yellow,
}

impl Paint {
    fn sgr(self) -> &'static str {
        match self {
            Paint::Plain => "",
            Paint::Bold => "\x1b[1m",
            Paint::Dim => "\x1b[2m",
            Paint::Green => "\x1b[32m",
            Paint::Red => "\x1b[31m",
            Paint::Yellow => "\x1b[33m",
        }
    }
}

/// A line of the frame: painted pieces, clipped to the terminal's width when written.
#[derive(Default)]
struct Line(Vec<(String, Paint)>);

impl Line {
    fn push(&mut self, text: impl Into<String>, paint: Paint) -> &mut Self {
        self.0.push((text.into(), paint));
        self
    }

    /// The line in at most `width` columns, with color or without.
    fn finish(&self, width: usize, color: bool) -> String {
        use unicode_width::UnicodeWidthChar;
        let mut out = String::new();
        let mut used = 0;
        'pieces: for (text, paint) in &self.0 {
            let painted = color && *paint != Paint::Plain;
            if painted {
                out.push_str(paint.sgr());
            }
            for c in text.chars() {
                // A tab would move the cursor by up to eight columns: one space.
                let c = if c == '\t' { ' ' } else { c };
                let w = c.width().unwrap_or(0);
                if used + w > width {
                    if painted {
                        out.push_str("\x1b[0m");
                    }
                    break 'pieces;
                }
                used += w;
                out.push(c);
            }
            if painted {
                out.push_str("\x1b[0m");
            }
        }
        out
    }
}

/// `name` in at most `width` columns, with `…` when it is cut.
fn fit(name: &str, width: usize) -> String {
    use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};
    if name.width() <= width {
        return format!("{name}{}", " ".repeat(width - name.width()));
    }
    let mut out = String::new();
    let mut used = 0;
    for c in name.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    used += 1;
    out.push_str(&" ".repeat(width.saturating_sub(used)));
    out
}

/// A duration on the display: tenths of a second under a minute, then `1m05s`, `1h02m`.
fn span(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{}.{}s", s, d.subsec_millis() / 100)
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// What a row counts as in the summary and the fold line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Succeeded,
    Running,
    Failed,
    Tolerated,
    Skipped,
    Cancelled,
}

impl Kind {
    fn of(row: &Row) -> Kind {
        match &row.done {
            None => Kind::Running,
            Some(d) => match d.status {
                NodeStatus::Failed if d.tolerated => Kind::Tolerated,
                NodeStatus::Failed => Kind::Failed,
                NodeStatus::Succeeded => Kind::Succeeded,
                NodeStatus::Skipped => Kind::Skipped,
                NodeStatus::Cancelled => Kind::Cancelled,
            },
        }
    }

    fn word(self) -> &'static str {
        match self {
            Kind::Running => "running",
            Kind::Failed => "failed",
            Kind::Tolerated => "tolerated",
            Kind::Succeeded => "succeeded",
            Kind::Skipped => "skipped",
            Kind::Cancelled => "cancelled",
        }
    }

    fn paint(self) -> Paint {
        match self {
            Kind::Running => Paint::Bold,
            Kind::Failed => Paint::Red,
            Kind::Tolerated => Paint::Yellow,
            Kind::Succeeded => Paint::Green,
            Kind::Skipped | Kind::Cancelled => Paint::Dim,
        }
    }

    /// Shown even when the screen is too small for every node.
    fn kept(self) -> bool {
        matches!(self, Kind::Running | Kind::Failed | Kind::Tolerated)
    }
}

/// "3 succeeded, 1 skipped": the count of each kind, in a fixed order, painted.
fn counts(line: &mut Line, rows: &[&Row]) {
    let mut by_kind: Vec<(Kind, usize)> = Vec::new();
    for row in rows {
        let kind = Kind::of(row);
        match by_kind.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => by_kind.push((kind, 1)),
        }
    }
    by_kind.sort();
    for (i, (kind, n)) in by_kind.iter().enumerate() {
        if i > 0 {
            line.push(", ", Paint::Plain);
        }
        line.push(format!("{n} {}", kind.word()), kind.paint());
    }
}

/// One frame of the live display, a pure function of what the board knows, the time, the
/// terminal's size and whether to paint: a header with the run, its phase, the nodes done
/// and a ticking clock; the last notes; one line per node (folded when the screen is too
/// small, see docs/operations.md); at the end, the summary. At most `height - 1` lines of at
/// most `width` columns.
pub fn render(board: &Board, now: Timestamp, width: u16, height: u16, color: bool) -> Vec<String> {
    let width = usize::from(width.max(10));
    let height = usize::from(height.max(3));
    let end = board.finished.map(|(_, at)| at).unwrap_or(now);
    let elapsed = board.started.and_then(|s| end.since(s)).unwrap_or_default();
    let spin = SPINNER[(now.system_time().duration_since(std::time::UNIX_EPOCH))
        .unwrap_or_default()
        .as_millis() as usize
        / 100
        % SPINNER.len()];

    let mut lines: Vec<Line> = Vec::new();
    let mut header = Line::default();
    header.push(board.run.as_deref().unwrap_or("run"), Paint::Bold);
    if let Some(phase) = board.phase
        && board.finished.is_none()
    {
        header.push(format!("  {}", phase.as_str()), Paint::Plain);
    }
    header.push(
        format!(
            "  {}/{} nodes  {}",
            board.done(),
            board.total,
            span(elapsed)
        ),
        Paint::Plain,
    );
    lines.push(header);
    let room_for_notes = height.saturating_sub(5).min(board.notes.len());
    for note in &board.notes[board.notes.len() - room_for_notes..] {
        let mut line = Line::default();
        line.push(note.clone(), Paint::Dim);
        lines.push(line);
    }

    // The rows that fit: every row when they do; else the running and failed ones, then as
    // many of the last finished as fit, the rest folded into one count line above them.
    let summary_lines = usize::from(board.finished.is_some());
    let room = height
        .saturating_sub(1 + lines.len() + summary_lines)
        .max(1);
    let shown: Vec<usize> = if board.rows.len() <= room {
        (0..board.rows.len()).collect()
    } else {
        let slots = room - 1;
        let mut kept: Vec<usize> = (0..board.rows.len())
            .filter(|&i| Kind::of(&board.rows[i]).kept())
            .collect();
        if kept.len() > slots {
            // Failures first, then the nodes running longest.
            kept.sort_by_key(|&i| (Kind::of(&board.rows[i]) == Kind::Running, i));
            kept.truncate(slots);
        } else {
            let mut finished: Vec<usize> = (0..board.rows.len())
                .filter(|&i| !Kind::of(&board.rows[i]).kept())
                .collect();
            finished.sort_by_key(|&i| (board.rows[i].done.as_ref().map(|d| d.at), i));
            let more = slots - kept.len();
            kept.extend(finished.iter().rev().take(more));
        }
        kept.sort();
        kept
    };
    if shown.len() < board.rows.len() {
        let hidden: Vec<&Row> = (0..board.rows.len())
            .filter(|i| !shown.contains(i))
            .map(|i| &board.rows[i])
            .collect();
        let mut line = Line::default();
        line.push(format!("  … {} more: ", hidden.len()), Paint::Dim);
        counts(&mut line, &hidden);
        lines.push(line);
    }
    let name = |row: &Row| match row.phase {
        PhaseKind::Main => crate::terminal::escape(&row.node).into_owned(),
        phase => format!("{}/{}", phase.as_str(), crate::terminal::escape(&row.node)),
    };
    let names: Vec<String> = shown.iter().map(|&i| name(&board.rows[i])).collect();
    let name_width = names
        .iter()
        .map(|n| unicode_width::UnicodeWidthStr::width(n.as_str()))
        .max()
        .unwrap_or(0)
        .min((width / 2).max(12));
    for (&i, name) in shown.iter().zip(&names) {
        let row = &board.rows[i];
        let kind = Kind::of(row);
        let mut line = Line::default();
        let symbol = match kind {
            Kind::Running => spin,
            Kind::Succeeded => '✓',
            Kind::Failed => '✗',
            Kind::Tolerated => '!',
            Kind::Skipped | Kind::Cancelled => '-',
        };
        line.push("  ", Paint::Plain);
        line.push(format!("{symbol} {}", fit(name, name_width)), kind.paint());
        let took = match (&row.done, row.started) {
            (_, None) => None,
            (None, Some(s)) => now.since(s),
            (Some(d), Some(s)) => d.at.since(s),
        };
        let took = took.map(span).unwrap_or_default();
        line.push(format!("  {took:>6}"), Paint::Plain);
        let escaped = |text: &str| crate::terminal::escape(text).into_owned();
        match &row.done {
            None => {
                if !row.note.is_empty() {
                    line.push(format!("  {}", escaped(&row.note)), Paint::Plain);
                }
                if let Some(output) = &row.output {
                    line.push("  │ ", Paint::Dim);
                    line.push(escaped(output), Paint::Plain);
                }
            }
            Some(done) => {
                let word = match kind {
                    Kind::Tolerated => Some("tolerated"),
                    Kind::Skipped => Some("skipped"),
                    Kind::Cancelled => Some("cancelled"),
                    _ => None,
                };
                let message = done
                    .message
                    .as_deref()
                    .filter(|m| kind != Kind::Succeeded && Some(m.trim()) != word);
                let text = match (word, message) {
                    (Some(w), Some(m)) => format!("{w}: {}", escaped(m)),
                    (Some(w), None) => w.to_string(),
                    (None, Some(m)) => escaped(m),
                    (None, None) => String::new(),
                };
                if !text.is_empty() {
                    let paint = if kind == Kind::Failed {
                        Paint::Red
                    } else {
                        kind.paint()
                    };
                    line.push(format!("  {text}"), paint);
                }
            }
        }
        lines.push(line);
    }
    if let Some((status, _)) = board.finished {
        let mut line = Line::default();
        let paint = match status {
            RunStatus::Succeeded if board.rows.iter().any(|r| Kind::of(r) == Kind::Tolerated) => {
                Paint::Yellow
            }
            RunStatus::Succeeded => Paint::Green,
            RunStatus::Failed => Paint::Red,
            RunStatus::Cancelled | RunStatus::Running => Paint::Yellow,
        };
        line.push(format!("run {}", status.as_str()), paint);
        line.push(format!(" in {}: ", span(elapsed)), Paint::Plain);
        counts(&mut line, &board.rows.iter().collect::<Vec<_>>());
        if board.earlier > 0 {
            let sep = if board.rows.is_empty() { "" } else { ", " };
            line.push(
                format!("{sep}{} done before the resume", board.earlier),
                Paint::Dim,
            );
        }
        lines.push(line);
    }
    lines.truncate(height - 1);
    lines.iter().map(|l| l.finish(width, color)).collect()
}

/// The one-line verdict printed when a run ends, with the failures it went on after.
pub fn verdict(status: RunStatus, run_id: &str, tolerated: &[Tolerated]) -> String {
    let line = match status {
        RunStatus::Succeeded => format!("run {run_id} succeeded"),
        RunStatus::Failed => format!(
            "run {run_id} failed: `rollbook show {run_id}` for what happened, `rollbook resume {run_id}` to go on"
        ),
        RunStatus::Cancelled => {
            format!("run {run_id} was cancelled: `rollbook resume {run_id}` to go on")
        }
        RunStatus::Running => format!("run {run_id} stopped"),
    };
    match crate::runs::tolerated_summary(tolerated) {
        Some(t) => format!("{line}; {t}"),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use rollbook_exec::runner::OutputLine;
    use rollbook_exec::{Event, NodeStatus, RunStatus, Stream, Timestamp, Tolerated};
    use rollbook_plan::compile::PhaseKind::{self, Finally, Main};

    use super::{Board, Observed, line_for, over, render};

    /// 2026-12-05 10:15:00 UTC, and `ms` after it.
    fn at(ms: u64) -> Timestamp {
        Timestamp::from_system_time(UNIX_EPOCH + Duration::from_millis(1_796_465_700_000 + ms))
    }

    fn started(ms: u64, phase: PhaseKind, node: &str, attempt: u32) -> Observed {
        Observed::Event(Event::AttemptStarted {
            at: at(ms),
            phase,
            node: node.into(),
            attempt,
            target: None,
        })
    }

    fn output(phase: PhaseKind, node: &str, line: &str) -> Observed {
        Observed::Output {
            phase,
            line: OutputLine {
                node: Arc::from(node),
                stream: Stream::Stdout,
                line: line.into(),
            },
        }
    }

    fn finished(
        ms: u64,
        phase: PhaseKind,
        node: &str,
        status: NodeStatus,
        message: Option<&str>,
        tolerated: bool,
    ) -> Observed {
        Observed::Event(Event::NodeFinished {
            at: at(ms),
            phase,
            node: node.into(),
            status,
            outputs: None,
            message: message.map(str::to_string),
            tolerated,
        })
    }

    /// A rolling restart of three web hosts: one retried, one failing with the run going on,
    /// a gate cancelled by Ctrl-C, a step skipped, `finally`. Each event with its time (ms).
    fn run() -> Vec<(u64, Observed)> {
        use NodeStatus::*;
        let e = Observed::Event;
        vec![
            (
                0,
                e(Event::RunStarted {
                    at: at(0),
                    run_id: "20261205-101500-ab12".into(),
                    plan: "rolling-restart".into(),
                }),
            ),
            (
                0,
                e(Event::PhaseStarted {
                    at: at(0),
                    phase: Main,
                    nodes: 6,
                }),
            ),
            (10, started(10, Main, "drain", 1)),
            (400, output(Main, "drain", "draining web-1 web-2 web-3")),
            (900, output(Main, "drain", "3 hosts out of the pool")),
            (
                1_200,
                finished(1_200, Main, "drain", Succeeded, None, false),
            ),
            (1_210, started(1_210, Main, "restart[web-1]", 1)),
            (1_210, started(1_210, Main, "restart[web-2]", 1)),
            (1_220, started(1_220, Main, "restart[web-3]", 1)),
            (
                1_500,
                output(Main, "restart[web-1]", "stopping \x1b[31mweb-1\x1b[0m"),
            ),
            (1_700, output(Main, "restart[web-2]", "connection refused")),
            (
                1_800,
                e(Event::AttemptFinished {
                    at: at(1_800),
                    phase: Main,
                    node: "restart[web-2]".into(),
                    attempt: 1,
                    ok: false,
                    duration_ms: 590,
                    exit_code: Some(1),
                    message: Some("exit code 1: connection refused".into()),
                }),
            ),
            (
                1_800,
                e(Event::RetryScheduled {
                    at: at(1_800),
                    phase: Main,
                    node: "restart[web-2]".into(),
                    next_attempt: 2,
                    delay_ms: 2_000,
                }),
            ),
            (
                2_600,
                output(Main, "restart[web-3]", "web-3 did not come back"),
            ),
            (
                2_650,
                finished(
                    2_650,
                    Main,
                    "restart[web-3]",
                    Failed,
                    Some("exit code 1: web-3 did not come back"),
                    true,
                ),
            ),
            (3_000, output(Main, "restart[web-1]", "web-1 is up")),
            (
                3_100,
                finished(3_100, Main, "restart[web-1]", Succeeded, None, false),
            ),
            (3_800, started(3_800, Main, "restart[web-2]", 2)),
            (
                4_900,
                finished(4_900, Main, "restart[web-2]", Succeeded, None, false),
            ),
            (4_910, started(4_910, Main, "wait-drained", 1)),
            (
                5_000,
                output(Main, "wait-drained", "{\"active_instances\": 2}"),
            ),
            (
                5_010,
                e(Event::GateWaiting {
                    at: at(5_010),
                    phase: Main,
                    node: "wait-drained".into(),
                    attempt: 1,
                    elapsed_ms: 100,
                    deadline_ms: 20_000,
                    next_in_ms: 1_000,
                }),
            ),
            (
                7_000,
                e(Event::Cancelling {
                    at: at(7_000),
                    hard: false,
                    reason: None,
                }),
            ),
            (
                7_010,
                finished(
                    7_010,
                    Main,
                    "wait-drained",
                    Cancelled,
                    Some("cancelled"),
                    false,
                ),
            ),
            (
                7_020,
                finished(
                    7_020,
                    Main,
                    "notify",
                    Skipped,
                    Some("`$params.notify` is false"),
                    false,
                ),
            ),
            (
                7_030,
                e(Event::PhaseFinished {
                    at: at(7_030),
                    phase: Main,
                    status: RunStatus::Cancelled,
                }),
            ),
            (
                7_040,
                e(Event::PhaseStarted {
                    at: at(7_040),
                    phase: Finally,
                    nodes: 1,
                }),
            ),
            (7_050, started(7_050, Finally, "undrain", 1)),
            (
                7_300,
                output(Finally, "undrain", "web-1 web-2 web-3 back in the pool"),
            ),
            (
                7_600,
                finished(7_600, Finally, "undrain", Succeeded, None, false),
            ),
            (
                7_610,
                e(Event::PhaseFinished {
                    at: at(7_610),
                    phase: Finally,
                    status: RunStatus::Succeeded,
                }),
            ),
            (
                7_620,
                e(Event::RunFinished {
                    at: at(7_620),
                    status: RunStatus::Cancelled,
                    tolerated: vec![Tolerated {
                        phase: Main,
                        node: "restart[web-3]".into(),
                        message: "exit code 1: web-3 did not come back".into(),
                    }],
                }),
            ),
        ]
    }

    /// The board after every event up to `ms`.
    fn board_at(events: &[(u64, Observed)], total: usize, ms: u64) -> Board {
        let mut board = Board::new(total);
        for (_, o) in events.iter().filter(|(t, _)| *t <= ms) {
            board.observe(o);
        }
        board
    }

    fn parser(width: u16, height: u16) -> vt100::Parser {
        let n = |v: u16| std::num::NonZero::new(v).expect("a size");
        vt100::Parser::new(n(height), n(width), 0)
    }

    /// The frame drawn into a virtual terminal of `width`×`height`.
    fn screen(frame: &[String], width: u16, height: u16) -> vt100::Parser {
        let mut terminal = parser(width, height);
        terminal.process(frame.join("\r\n").as_bytes());
        terminal
    }

    /// Each row's painted stretches: `col:color`, from the column where the paint changes.
    fn paints(terminal: &vt100::Parser, width: u16, height: u16) -> String {
        let screen = terminal.screen();
        let mut out = String::new();
        for row in 0..height {
            let mut last = String::new();
            let mut stretches = Vec::new();
            for col in 0..width {
                let cell = screen.cell(row, col).expect("a cell");
                let paint = match (cell.fgcolor(), cell.bold(), cell.dim()) {
                    (vt100::Color::Idx(1), ..) => "red",
                    (vt100::Color::Idx(2), ..) => "green",
                    (vt100::Color::Idx(3), ..) => "yellow",
                    (_, true, _) => "bold",
                    (_, _, true) => "dim",
                    _ => "plain",
                };
                if paint != last {
                    stretches.push(format!("{col}:{paint}"));
                    last = paint.to_string();
                }
            }
            if stretches != ["0:plain"] {
                out.push_str(&format!("{row:2} {}\n", stretches.join(" ")));
            }
        }
        out
    }

    const WIDTH: u16 = 80;
    const HEIGHT: u16 = 14;

    fn moment(ms: u64, color: bool) -> String {
        let events = run();
        let board = board_at(&events, 7, ms);
        let frame = render(&board, at(ms), WIDTH, HEIGHT, color);
        assert!(frame.len() < usize::from(HEIGHT));
        if !color {
            assert!(
                frame.iter().all(|l| !l.contains('\x1b')),
                "no escape without color: {frame:?}"
            );
        }
        let terminal = screen(&frame, WIDTH, HEIGHT);
        let mut shown = terminal.screen().contents();
        if color {
            shown.push_str("\n--- paint ---\n");
            shown.push_str(&paints(&terminal, WIDTH, HEIGHT));
        }
        shown
    }

    #[test]
    fn live_display_at_moments_of_a_run() {
        for (name, ms) in [
            ("starting", 300),
            ("fan_out", 2_000),
            ("gate", 6_000),
            ("finally", 7_400),
            ("end", 8_000),
        ] {
            insta::assert_snapshot!(format!("live_{name}_plain"), moment(ms, false));
            insta::assert_snapshot!(format!("live_{name}_color"), moment(ms, true));
        }
    }

    #[test]
    fn live_display_clock_ticks_while_a_step_runs() {
        let events = run();
        let board = board_at(&events, 7, 500);
        let a = render(&board, at(500), WIDTH, HEIGHT, false);
        let b = render(&board, at(750), WIDTH, HEIGHT, false);
        assert_ne!(a[0], b[0], "the header's clock moved");
        assert_ne!(a[1], b[1], "the running step's time moved");
    }

    #[test]
    fn live_display_redraws_in_place() {
        // Every frame drawn over the last leaves exactly the last frame on the screen.
        let events = run();
        let mut terminal = parser(WIDTH, HEIGHT);
        terminal.process(b"$ rollbook run rolling-restart\r\n");
        let mut drawn = 0;
        let mut last = Vec::new();
        for ms in (0..=8_000).step_by(250) {
            let board = board_at(&events, 7, ms);
            last = render(&board, at(ms), WIDTH, HEIGHT, true);
            terminal.process(over(&last, drawn, ms == 8_000).as_bytes());
            drawn = last.len();
        }
        let expected = screen(&last, WIDTH, HEIGHT).screen().contents();
        let contents = terminal.screen().contents();
        assert_eq!(
            contents,
            format!("$ rollbook run rolling-restart\n{expected}")
        );
    }

    #[test]
    fn live_display_of_a_large_fan_out_stays_on_the_screen() {
        use NodeStatus::*;
        let mut events = vec![(
            0,
            Observed::Event(Event::RunStarted {
                at: at(0),
                run_id: "20261205-101500-cd34".into(),
                plan: "fleet-rollback".into(),
            }),
        )];
        for i in 0..40u64 {
            let node = format!("roll[host-{i:02}].restore");
            events.push((i * 100, started(i * 100, Main, &node, 1)));
            events.push((
                i * 100 + 50,
                output(Main, &node, &format!("restoring host-{i:02}")),
            ));
            // Every host but the last five is done by 5s; host-07 failed.
            if i < 35 {
                let (status, message) = if i == 7 {
                    (Failed, Some("exit code 2: disk full"))
                } else {
                    (Succeeded, None)
                };
                events.push((
                    i * 100 + 1_000,
                    finished(i * 100 + 1_000, Main, &node, status, message, false),
                ));
            }
        }
        events.sort_by_key(|(t, _)| *t);
        let board = board_at(&events, 40, 5_000);
        let frame = render(&board, at(5_000), 72, 12, false);
        assert_eq!(frame.len(), 11, "one line left for the cursor");
        insta::assert_snapshot!(
            "live_large_fan_out",
            screen(&frame, 72, 12).screen().contents()
        );
        let frame = render(&board, at(5_000), 72, 12, true);
        insta::assert_snapshot!(
            "live_large_fan_out_color",
            paints(&screen(&frame, 72, 12), 72, 12)
        );
    }

    #[test]
    fn live_display_cuts_every_line_at_the_width() {
        let events = [
            started(0, Main, "wide", 1),
            output(
                Main,
                "wide",
                &format!("a\tb 日本語 {} \x1b]0;title\x07", "x".repeat(2_000)),
            ),
        ];
        let mut board = Board::new(1);
        for o in &events {
            board.observe(o);
        }
        for width in [20u16, 33, 40] {
            let frame = render(&board, at(1_000), width, 6, true);
            let terminal = screen(&frame, width, 6);
            let (row, _) = terminal.screen().cursor_position();
            assert_eq!(
                usize::from(row) + 1,
                frame.len(),
                "no line wrapped at {width}: {frame:?}"
            );
            assert!(!frame[1].contains('\t') && !frame[1].contains('\x07'));
        }
    }

    #[test]
    fn live_display_of_a_resume_counts_what_was_done_before() {
        let mut board = Board::new(7);
        board.earlier = 5;
        for (_, o) in run().iter().filter(|(t, _)| *t >= 4_910) {
            board.observe(o);
        }
        let frame = render(&board, at(8_000), 100, HEIGHT, false);
        assert!(frame[0].contains("7/7 nodes"), "{frame:?}");
        assert!(
            frame
                .last()
                .unwrap()
                .ends_with("1 succeeded, 1 skipped, 1 cancelled, 5 done before the resume"),
            "{frame:?}"
        );
    }

    #[test]
    fn lines_of_the_same_run_without_a_terminal() {
        let lines: Vec<String> = run().iter().filter_map(|(_, o)| line_for(o)).collect();
        insta::assert_snapshot!("lines_of_a_run", lines.join("\n"));
    }
}
