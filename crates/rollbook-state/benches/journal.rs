//! The executor with 1,000 journaled nodes on each store: the file journal (synced at every
//! state change) and the shared store on PostgreSQL (the same local copy, plus every turn
//! shipped to the database; the iteration ends when the shared copy has every event). The
//! lock is taken and released in each iteration on both.
//!
//! `ROLLBOOK_BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench -p
//! rollbook-state --bench journal`: the database `rollbook_bench` is created there if it is
//! missing. Numbers go to docs/benchmarks.md.

// Helpers of a bench binary, not an API.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rollbook_exec::lock::{LockHolder, Stale};
use rollbook_exec::runner::Runners;
use rollbook_exec::state::{FileStore, Store};
use rollbook_plan::compile::CompiledPlan;

#[path = "../../rollbook-exec/benches/support/mod.rs"]
mod support;
use support::{Noop, execute, meta, plan};

/// One run: lock, journal, execute, wait for the shared copy, release. Answers how long the
/// run took to its `run_finished` and until the shared copy had every event.
fn run_once(
    rt: &tokio::runtime::Runtime,
    store: &dyn Store,
    plan: &CompiledPlan,
    runners: &Runners,
    id: &str,
) -> (Duration, Duration) {
    let holder = LockHolder {
        key: "bench".into(),
        run_id: id.into(),
        user: "bench".into(),
        host: "bench".into(),
        pid: 0,
        since: String::new(),
    };
    let start = std::time::Instant::now();
    let lease = store.lock(&holder, Stale::Break).unwrap();
    let mut journal = store.create(&meta(id), "", None).unwrap();
    execute(rt, plan, runners, journal.as_mut());
    let finished = start.elapsed();
    assert!(
        journal.settle(Duration::from_secs(60)).is_none(),
        "the shared copy caught up"
    );
    let settled = start.elapsed();
    drop(lease);
    (finished, settled)
}

/// The median of each part, for the notes: the executor's time is the operator's wait; the
/// rest is the shared copy catching up.
fn medians(name: &str, times: &mut [(Duration, Duration)]) {
    if times.is_empty() {
        return;
    }
    times.sort_by_key(|t| t.0);
    let finished = times[times.len() / 2].0;
    times.sort_by_key(|t| t.1);
    let settled = times[times.len() / 2].1;
    eprintln!(
        "{name}: median {finished:?} to run_finished, {settled:?} until the shared copy had every event ({} runs)",
        times.len()
    );
}

/// The bench database on the server of `url`, created when missing.
fn bench_database(url: &str) -> String {
    let db = "rollbook_bench";
    let status = std::process::Command::new("psql")
        .args([url, "-qAtc", &format!("CREATE DATABASE {db}")])
        .stderr(std::process::Stdio::null())
        .status();
    let _ = status;
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
    format!("{base}/{db}")
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let runners = Runners::new().with(Noop);
    let small = plan(1_000);
    let mut group = c.benchmark_group("store");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1_000));
    let files = tempfile::tempdir().unwrap();
    let file_store = FileStore::new(files.path());
    let mut n = 0;
    let mut file_times = Vec::new();
    group.bench_function(BenchmarkId::new("file", 1_000), |b| {
        b.iter(|| {
            n += 1;
            file_times.push(run_once(
                &rt,
                &file_store,
                &small,
                &runners,
                &format!("bench-f{n}"),
            ))
        })
    });
    let mut pg_times = Vec::new();
    match std::env::var("ROLLBOOK_BENCH_PG_URL") {
        Ok(url) => {
            let local = tempfile::tempdir().unwrap();
            let pg = rollbook_state::PgStore::open(&rollbook_state::Options {
                url: bench_database(&url),
                password: None,
                local_dir: local.path().to_path_buf(),
                lease: rollbook_state::DEFAULT_LEASE,
                init: true,
            })
            .unwrap();
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis();
            let mut n = 0;
            group.bench_function(BenchmarkId::new("postgres", 1_000), |b| {
                b.iter(|| {
                    n += 1;
                    pg_times.push(run_once(
                        &rt,
                        &pg,
                        &small,
                        &runners,
                        &format!("bench-{stamp}-{n}"),
                    ))
                })
            });
        }
        Err(_) => {
            eprintln!("ROLLBOOK_BENCH_PG_URL is not set: the PostgreSQL store is not measured")
        }
    }
    group.finish();
    medians("file", &mut file_times);
    medians("postgres", &mut pg_times);
}

criterion_group!(store, benches);
criterion_main!(store);
