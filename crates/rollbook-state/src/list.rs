//! The team's history: every run in the database with how it ended, without reading whole
//! journals (the last `run_started`, `run_resumed` or `run_finished` of each run says it).

use rollbook_exec::event::{Event, RunStatus};
use rollbook_exec::journal::{RunMeta, RunSummary};
use sqlx::Row;

use crate::{Error, Inner, bounded};

pub(crate) async fn runs(inner: &Inner) -> Result<Vec<RunSummary>, Error> {
    let rows = bounded(
        &inner.target,
        "listing the runs",
        sqlx::query(
            "SELECT r.meta, e.line
               FROM rollbook_runs r
               LEFT JOIN LATERAL (
                   SELECT line FROM rollbook_events
                    WHERE run_id = r.run_id
                      AND kind IN ('run_started', 'run_resumed', 'run_finished')
                    ORDER BY seq DESC LIMIT 1
               ) e ON true
              ORDER BY r.started_at DESC, r.run_id DESC",
        )
        .fetch_all(&inner.pool),
    )
    .await?;
    let mut runs = Vec::with_capacity(rows.len());
    for row in rows {
        let Ok(meta) = serde_json::from_str::<RunMeta>(row.get::<&str, _>("meta")) else {
            continue;
        };
        let last = row
            .get::<Option<&str>, _>("line")
            .and_then(|l| serde_json::from_str::<Event>(l).ok());
        let (status, finished_at, tolerated) = match last {
            Some(Event::RunFinished {
                at,
                status,
                tolerated,
            }) => (status, Some(at), tolerated),
            _ => (RunStatus::Running, None, Vec::new()),
        };
        runs.push(RunSummary {
            meta,
            status,
            finished_at,
            tolerated,
        });
    }
    Ok(runs)
}
