//! The shipper: sends a run's events and logs from this machine's copy to the database.
//!
//! The executor journals a turn into the local copy (one sync) and hands the shipper a
//! [`Mark`]: how many events the copy has now, and which logs grew. The shipper sends whole
//! turns, in order, each batch in one transaction, fenced by the run's controllers: a batch
//! is refused once a later controller took the run over. When the database cannot be
//! reached the marks pile up (a few bytes each) and the run goes on; the next batch that
//! goes through carries everything, from the local copy, exactly once: the rows' keys are
//! the events' positions, and what the database already has is skipped.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rollbook_exec::journal;
use rollbook_exec::state::SharedCopy;
use sqlx::Row;
use tokio::sync::{mpsc, watch};

use crate::{Error, Inner, bounded};

/// Most events sent in one transaction when catching up (whole turns only).
pub(crate) const BATCH_EVENTS: u64 = 5000;
/// Most bytes of one node's log sent in one transaction.
const LOG_CHUNK: u64 = 1 << 20;
/// How long the first turn after a quiet moment waits for the next ones to share its
/// transaction.
const COALESCE: Duration = Duration::from_millis(10);
/// The longest wait between two tries while the database does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The local copy after a turn.
#[derive(Debug)]
pub(crate) struct Mark {
    /// Its number: the shipper says which marks it has sent whole.
    pub n: u64,
    /// Events in the local copy, this turn's included.
    pub events: u64,
    /// The logs (phase, node) that grew since the last mark.
    pub logs: Vec<(String, String)>,
}

pub(crate) struct Shipper {
    inner: Arc<Inner>,
    run_id: String,
    token: i64,
    dir: PathBuf,
    /// Events the shared copy has.
    shipped: u64,
    /// Bytes of the local journal those events take.
    shipped_bytes: u64,
    /// Bytes of each node's log the shared copy has.
    logs: HashMap<(String, String), u64>,
}

/// One event line as the table keeps it.
#[derive(serde::Deserialize)]
struct Kind {
    event: String,
}

impl Shipper {
    /// A shipper for the run in `dir`, whose shared copy has `shipped` events.
    pub async fn new(
        inner: Arc<Inner>,
        run_id: String,
        token: i64,
        dir: PathBuf,
        shipped: u64,
    ) -> Result<Self, Error> {
        let shipped_bytes = offset_of(&dir, shipped)?;
        let rows = bounded(
            &inner.target,
            "reading the run's logs",
            sqlx::query(
                "SELECT phase, node, max(\"offset\" + octet_length(chunk)) AS len
                   FROM rollbook_logs WHERE run_id = $1 GROUP BY phase, node",
            )
            .bind(&run_id)
            .fetch_all(&inner.pool),
        )
        .await?;
        let logs = rows
            .iter()
            .map(|r| {
                (
                    (r.get::<String, _>("phase"), r.get::<String, _>("node")),
                    r.get::<i64, _>("len") as u64,
                )
            })
            .collect();
        Ok(Shipper {
            inner,
            run_id,
            token,
            dir,
            shipped,
            shipped_bytes,
            logs,
        })
    }

    /// Ships until the journal is dropped and everything is sent (or the store's runtime
    /// ends). Says how far behind the shared copy is on `status`.
    pub async fn run(
        mut self,
        mut marks: mpsc::UnboundedReceiver<Mark>,
        status: watch::Sender<SharedCopy>,
        done: watch::Sender<u64>,
    ) {
        let received = std::sync::atomic::AtomicU64::new(0);
        let absorb =
            |mark: Mark, turns: &mut VecDeque<u64>, logs: &mut BTreeSet<(String, String)>| {
                received.fetch_max(mark.n, std::sync::atomic::Ordering::Relaxed);
                if turns.back().is_none_or(|t| *t < mark.events) {
                    turns.push_back(mark.events);
                }
                logs.extend(mark.logs);
            };
        let mut turns: VecDeque<u64> = VecDeque::new();
        let mut logs: BTreeSet<(String, String)> = BTreeSet::new();
        let mut open = true;
        let mut backoff = Duration::from_millis(200);
        loop {
            if turns.is_empty() && logs.is_empty() {
                if !open {
                    return;
                }
                match marks.recv().await {
                    Some(mark) => absorb(mark, &mut turns, &mut logs),
                    None => return,
                }
                // The turns that follow within a moment share the transaction: a busy run
                // makes a few commits a second instead of one per turn, and leaves the
                // machine's cores to the steps.
                tokio::time::sleep(COALESCE).await;
            }
            while let Ok(mark) = marks.try_recv() {
                absorb(mark, &mut turns, &mut logs);
            }
            let upto = self.batch_end(&turns);
            match self.ship(upto, &mut logs).await {
                Ok(()) => {
                    while turns.front().is_some_and(|t| *t <= self.shipped) {
                        turns.pop_front();
                    }
                    backoff = Duration::from_millis(200);
                    if turns.is_empty() && logs.is_empty() {
                        done.send_replace(received.load(std::sync::atomic::Ordering::Relaxed));
                    }
                    let behind = turns.back().map_or(0, |t| t - self.shipped);
                    status.send_replace(SharedCopy {
                        behind,
                        error: None,
                        taken_over: false,
                    });
                }
                Err(e @ Error::Superseded { .. }) => {
                    // Nothing more goes to the shared copy: the local copy keeps it all.
                    let message = format!("{e}: this machine's copy keeps the rest");
                    loop {
                        let behind = turns.back().map_or(0, |t| t - self.shipped);
                        status.send_replace(SharedCopy {
                            behind,
                            error: Some(message.clone()),
                            taken_over: true,
                        });
                        match marks.recv().await {
                            Some(mark) => absorb(mark, &mut turns, &mut logs),
                            None => return,
                        }
                    }
                }
                Err(e) => {
                    let behind = turns.back().map_or(0, |t| t - self.shipped);
                    status.send_replace(SharedCopy {
                        behind,
                        error: Some(e.to_string()),
                        taken_over: false,
                    });
                    let wait = tokio::time::sleep(backoff);
                    tokio::pin!(wait);
                    loop {
                        tokio::select! {
                            _ = &mut wait => break,
                            mark = marks.recv(), if open => match mark {
                                Some(mark) => absorb(mark, &mut turns, &mut logs),
                                None => open = false,
                            },
                        }
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// The last turn that fits in one batch (at least one whole turn).
    fn batch_end(&self, turns: &VecDeque<u64>) -> u64 {
        let limit = self.shipped + BATCH_EVENTS;
        let mut end = self.shipped;
        for &t in turns {
            if t <= self.shipped {
                continue;
            }
            if end > self.shipped && t > limit {
                break;
            }
            end = t;
        }
        end
    }

    /// Sends the events up to `upto` and the new bytes of `logs` in one transaction.
    pub(crate) async fn ship(
        &mut self,
        upto: u64,
        logs: &mut BTreeSet<(String, String)>,
    ) -> Result<(), Error> {
        let (lines, bytes) = read_lines(&self.dir, self.shipped_bytes, upto - self.shipped)?;
        let mut chunks: Vec<((String, String), u64, Vec<u8>)> = Vec::new();
        for key in logs.iter() {
            let from = self.logs.get(key).copied().unwrap_or(0);
            let path = self.dir.join(journal::log_path(&key.0, &key.1));
            if let Some(chunk) = read_chunk(&path, from)? {
                chunks.push((key.clone(), from, chunk));
            }
        }
        let t = &self.inner.target;
        let mut tx = bounded(t, "sending the journal", self.inner.pool.begin()).await?;
        let have = crate::runs::fence(&self.inner, &mut tx, &self.run_id, self.token).await?;
        // What an earlier batch committed (its answer lost on the way back) is not sent twice.
        let mut seqs = Vec::new();
        let mut kinds = Vec::new();
        let mut texts = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let seq = self.shipped as i64 + i as i64 + 1;
            if seq <= have {
                continue;
            }
            let kind =
                serde_json::from_str::<Kind>(line).map_or_else(|_| "unknown".into(), |k| k.event);
            seqs.push(seq);
            kinds.push(kind);
            texts.push(line.clone());
        }
        if !seqs.is_empty() {
            bounded(
                t,
                "sending the journal",
                sqlx::query(
                    "INSERT INTO rollbook_events (run_id, seq, token, kind, line)
                     SELECT $1, s, $2, k, l FROM UNNEST($3::bigint[], $4::text[], $5::text[]) AS e(s, k, l)",
                )
                .bind(&self.run_id)
                .bind(self.token)
                .bind(&seqs)
                .bind(&kinds)
                .bind(&texts)
                .execute(&mut *tx),
            )
            .await?;
        }
        if !chunks.is_empty() {
            let phases: Vec<&str> = chunks.iter().map(|c| c.0.0.as_str()).collect();
            let nodes: Vec<&str> = chunks.iter().map(|c| c.0.1.as_str()).collect();
            let offsets: Vec<i64> = chunks.iter().map(|c| c.1 as i64).collect();
            let data: Vec<&[u8]> = chunks.iter().map(|c| c.2.as_slice()).collect();
            bounded(
                t,
                "sending the logs",
                sqlx::query(
                    "INSERT INTO rollbook_logs (run_id, phase, node, \"offset\", chunk)
                     SELECT $1, p, n, o, c FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::bytea[]) AS l(p, n, o, c)
                     ON CONFLICT DO NOTHING",
                )
                .bind(&self.run_id)
                .bind(&phases)
                .bind(&nodes)
                .bind(&offsets)
                .bind(&data)
                .execute(&mut *tx),
            )
            .await?;
        }
        bounded(t, "sending the journal", tx.commit()).await?;
        self.shipped += lines.len() as u64;
        self.shipped_bytes += bytes;
        // A log with more than one chunk to send stays pending; the others are done.
        let mut more = BTreeSet::new();
        for (key, from, chunk) in chunks {
            if chunk.len() as u64 == LOG_CHUNK {
                more.insert(key.clone());
            }
            self.logs.insert(key, from + chunk.len() as u64);
        }
        *logs = more;
        Ok(())
    }
}

/// Where the `events`-th event line of a run's local journal ends. Read line by line: a
/// long journal is never held whole.
pub(crate) fn offset_of(dir: &std::path::Path, events: u64) -> Result<u64, Error> {
    if events == 0 {
        return Ok(0);
    }
    let path = dir.join("journal.jsonl");
    let file = std::fs::File::open(&path).map_err(|e| crate::local_io(&path, e))?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let (mut seen, mut offset) = (0, 0u64);
    while seen < events {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| crate::local_io(&path, e))?;
        if n == 0 {
            break;
        }
        offset += n as u64;
        if !line.iter().all(u8::is_ascii_whitespace) {
            seen += 1;
        }
    }
    Ok(offset)
}

/// Up to `count` complete event lines of the local journal from byte `from`, and the bytes
/// they take (blank lines included). Reads only those lines, however far behind the shared
/// copy is.
fn read_lines(dir: &std::path::Path, from: u64, count: u64) -> Result<(Vec<String>, u64), Error> {
    if count == 0 {
        return Ok((Vec::new(), 0));
    }
    let path = dir.join("journal.jsonl");
    let mut file = std::fs::File::open(&path).map_err(|e| crate::local_io(&path, e))?;
    file.seek(SeekFrom::Start(from))
        .map_err(|e| crate::local_io(&path, e))?;
    let mut reader = BufReader::new(file);
    let mut lines = Vec::new();
    let mut used = 0u64;
    let mut chunk = Vec::new();
    while (lines.len() as u64) < count {
        chunk.clear();
        let n = reader
            .read_until(b'\n', &mut chunk)
            .map_err(|e| crate::local_io(&path, e))?;
        if n == 0 || !chunk.ends_with(b"\n") {
            break;
        }
        used += n as u64;
        let text = String::from_utf8_lossy(&chunk);
        let text = text.trim_end_matches(['\n', '\r']);
        if !text.trim().is_empty() {
            lines.push(text.to_string());
        }
    }
    Ok((lines, used))
}

/// The whole lines of a log from byte `from`, at most [`LOG_CHUNK`] bytes (cut within a line
/// only when one line is longer than that).
fn read_chunk(path: &std::path::Path, from: u64) -> Result<Option<Vec<u8>>, Error> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(crate::local_io(path, e)),
    };
    file.seek(SeekFrom::Start(from))
        .map_err(|e| crate::local_io(path, e))?;
    let mut bytes = Vec::new();
    file.take(LOG_CHUNK)
        .read_to_end(&mut bytes)
        .map_err(|e| crate::local_io(path, e))?;
    if bytes.len() as u64 == LOG_CHUNK {
        return Ok(Some(bytes));
    }
    match bytes.iter().rposition(|b| *b == b'\n') {
        Some(end) => {
            bytes.truncate(end + 1);
            Ok(Some(bytes))
        }
        None => Ok(None),
    }
}
