//! What a person (or a tool) sees while a plan runs. Three consumers of the executor's events:
//! a live display on a terminal (progress, each running node with its time, attempts and
//! gates, failures as they happen), timestamped lines on a pipe, and `--events json`.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rollbook_exec::executor::Observed;
use rollbook_exec::executor::observe::Observations;
use rollbook_exec::{Event, NodeStatus, RunStatus, Tolerated};

/// How the run is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Live bars on a terminal (stderr).
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
pub async fn show(mode: Mode, total: usize, mut rx: Observations) {
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
        Mode::Live => live(total, rx).await,
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

async fn live(total: usize, mut rx: Observations) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    let overall = multi.add(ProgressBar::new(total as u64));
    overall.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} nodes  {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let node_style = ProgressStyle::with_template("  {spinner} {msg}").expect("a valid template");
    let mut running: HashMap<String, (ProgressBar, Instant, String)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            o = rx.recv() => {
                let Some(o) = o else { break };
                match &o {
                    Observed::Output { .. } | Observed::Skipped { .. } => {}
                    Observed::Event(e) => match e {
                        Event::AttemptStarted { node, attempt, .. } => {
                            let entry = running.entry(node.clone()).or_insert_with(|| {
                                let bar = multi.add(ProgressBar::new_spinner());
                                bar.set_style(node_style.clone());
                                (bar, Instant::now(), String::new())
                            });
                            entry.2 = if *attempt > 1 { format!("attempt {attempt}") } else { String::new() };
                        }
                        Event::GateWaiting { node, attempt, elapsed_ms, deadline_ms, .. } => {
                            if let Some(entry) = running.get_mut(node) {
                                entry.2 = format!("attempt {attempt}, {} of {}", human(*elapsed_ms), human(*deadline_ms));
                            }
                        }
                        Event::RetryScheduled { node, next_attempt, delay_ms, .. } => {
                            if let Some(entry) = running.get_mut(node) {
                                entry.2 = format!("retry {next_attempt} in {}", human(*delay_ms));
                            }
                        }
                        Event::NodeExpanded { instances, .. } => {
                            overall.inc_length(instances.len() as u64);
                        }
                        Event::Undoing { nodes, skipped, .. } => {
                            if !skipped {
                                overall.inc_length(nodes.len() as u64);
                            }
                            if let Some(line) = line_for(&o) {
                                let _ = multi.println(format!("{} {line}", clock()));
                            }
                        }
                        Event::NodeFinished { node, status, .. } => {
                            if let Some((bar, ..)) = running.remove(node) {
                                bar.finish_and_clear();
                                multi.remove(&bar);
                            }
                            overall.inc(1);
                            if matches!(status, NodeStatus::Failed | NodeStatus::Cancelled)
                                && let Some(line) = line_for(&o)
                            {
                                let _ = multi.println(format!("{} {line}", clock()));
                            }
                        }
                        Event::RunFinished { status, .. } => {
                            overall.set_message(status.as_str().to_string());
                        }
                        _ => {
                            if let Some(line) = line_for(&o) {
                                let _ = multi.println(format!("{} {line}", clock()));
                            }
                        }
                    },
                }
            }
            _ = tick.tick() => {
                for (node, (bar, since, note)) in &running {
                    let elapsed = humantime::format_duration(Duration::from_secs(since.elapsed().as_secs()));
                    let note = if note.is_empty() { String::new() } else { format!("  {note}") };
                    let node = crate::terminal::escape(node);
                    bar.set_message(format!("{node}  {elapsed}{note}"));
                    bar.tick();
                }
            }
        }
    }
    for (_, (bar, ..)) in running.drain() {
        bar.finish_and_clear();
    }
    overall.finish();
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
