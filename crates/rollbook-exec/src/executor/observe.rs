//! The way from a run to whoever watches it (the live display, `--events json`). Events
//! always get through. A step's output lines are dropped, and counted, while more than
//! [`OUTPUT_BACKLOG`] bytes of them wait for a watcher that is behind (a slow terminal, a
//! pipe nobody reads): the lines are in the step's log anyway, and a run's memory must not
//! grow with what a command prints.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rollbook_plan::compile::PhaseKind;
use tokio::sync::mpsc;

use super::Observed;
use crate::runner::OutputLine;

/// The most bytes of output lines waiting for the watcher at once.
pub const OUTPUT_BACKLOG: usize = 8 * 1024 * 1024;

/// What a line costs in the backlog: its text and the message around it.
fn cost(line: &OutputLine) -> usize {
    line.line.len() + line.node.len() + 64
}

/// The run's end of the way: the executor sends here.
pub struct Observer {
    tx: mpsc::UnboundedSender<Observed>,
    backlog: Arc<AtomicUsize>,
    /// Lines dropped since the last one that got through.
    skipped: usize,
}

/// The watcher's end.
pub struct Observations {
    rx: mpsc::UnboundedReceiver<Observed>,
    backlog: Arc<AtomicUsize>,
}

/// A new way from a run to its watcher.
pub fn channel() -> (Observer, Observations) {
    let (tx, rx) = mpsc::unbounded_channel();
    let backlog = Arc::new(AtomicUsize::new(0));
    (
        Observer {
            tx,
            backlog: backlog.clone(),
            skipped: 0,
        },
        Observations { rx, backlog },
    )
}

impl Observer {
    /// An event: always sent.
    pub(super) fn event(&self, event: crate::Event) {
        let _ = self.tx.send(Observed::Event(event));
    }

    /// An output line: sent while the backlog allows, else dropped and counted; the next line
    /// that gets through is preceded by how many were dropped.
    pub(super) fn output(&mut self, phase: PhaseKind, line: OutputLine) {
        let cost = cost(&line);
        if self.backlog.load(Ordering::Relaxed) + cost > OUTPUT_BACKLOG {
            self.skipped += 1;
            return;
        }
        if self.skipped > 0 {
            let lines = std::mem::take(&mut self.skipped);
            let _ = self.tx.send(Observed::Skipped { lines });
        }
        self.backlog.fetch_add(cost, Ordering::Relaxed);
        let _ = self.tx.send(Observed::Output { phase, line });
    }

    /// The end of the run: says how many lines were dropped last.
    pub(super) fn finish(&mut self) {
        if self.skipped > 0 {
            let lines = std::mem::take(&mut self.skipped);
            let _ = self.tx.send(Observed::Skipped { lines });
        }
    }
}

impl Observations {
    /// The next thing observed; `None` once the run is over.
    pub async fn recv(&mut self) -> Option<Observed> {
        let observed = self.rx.recv().await?;
        if let Observed::Output { line, .. } = &observed {
            self.backlog.fetch_sub(cost(line), Ordering::Relaxed);
        }
        Some(observed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> OutputLine {
        OutputLine {
            node: Arc::from("n"),
            stream: crate::Stream::Stdout,
            line: text.to_string(),
        }
    }

    #[tokio::test]
    async fn lines_past_the_backlog_are_dropped_and_counted_events_never() {
        let (mut observer, mut watcher) = channel();
        let big = "x".repeat(1024 * 1024);
        for _ in 0..20 {
            observer.output(PhaseKind::Main, line(&big));
        }
        observer.event(crate::Event::Cancelling {
            at: crate::Timestamp::now(),
            hard: false,
            reason: None,
        });
        let mut outputs = 0;
        while let Ok(o) = watcher.rx.try_recv() {
            if let Observed::Output { line, .. } = &o {
                watcher.backlog.fetch_sub(cost(line), Ordering::Relaxed);
                outputs += 1;
            }
        }
        assert_eq!(
            outputs, 7,
            "8 MiB hold seven lines of 1 MiB and their envelopes"
        );
        // The watcher caught up: the next line gets through, after the count of the dropped.
        observer.output(PhaseKind::Main, line("after"));
        observer.finish();
        assert!(matches!(
            watcher.recv().await,
            Some(Observed::Skipped { lines: 13 })
        ));
        assert!(matches!(
            watcher.recv().await,
            Some(Observed::Output { .. })
        ));
        drop(observer);
        assert!(watcher.recv().await.is_none());
    }
}
