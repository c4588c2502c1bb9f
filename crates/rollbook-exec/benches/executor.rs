//! Executor overhead per node: a no-op runner on a 10,000-node DAG, without the journal, and
//! 1,000 nodes with the file journal (synced at every state change). `cargo bench -p
//! rollbook-exec`; numbers go to docs/benchmarks.md.

// Helpers of a test binary, not an API: the crate's `missing_docs` is for its library.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rollbook_exec::journal::{FileJournal, NoJournal};
use rollbook_exec::runner::Runners;

mod support;
use support::{Noop, execute, meta, plan};

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let runners = Runners::new().with(Noop);
    let mut group = c.benchmark_group("executor");
    group.sample_size(10);

    let big = plan(10_000);
    group.throughput(Throughput::Elements(10_000));
    group.bench_function(BenchmarkId::new("no_journal", 10_000), |b| {
        b.iter(|| execute(&rt, &big, &runners, &mut NoJournal))
    });

    let small = plan(1_000);
    let state = tempfile::tempdir().unwrap();
    group.throughput(Throughput::Elements(1_000));
    group.bench_function(BenchmarkId::new("file_journal", 1_000), |b| {
        let mut n = 0;
        b.iter(|| {
            n += 1;
            let meta = meta(&format!("bench-{n}"));
            let mut journal = FileJournal::create(state.path(), &meta, "", None).unwrap();
            execute(&rt, &small, &runners, &mut journal)
        })
    });
    group.finish();
}

criterion_group!(executor, benches);
criterion_main!(executor);
