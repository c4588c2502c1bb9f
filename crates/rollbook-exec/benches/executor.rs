//! Executor overhead per node: a no-op runner on a 10,000-node DAG, without the journal, and
//! 1,000 nodes with the file journal (synced at every state change). `cargo bench -p
//! rollbook-exec`; numbers go to docs/benchmarks.md.

// Helpers of a test binary, not an API: the crate's `missing_docs` is for its library.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rollbook_exec::executor::{Control, Execution, Options, Prior};
use rollbook_exec::journal::{FileJournal, Journal, NoJournal, RunMeta};
use rollbook_exec::redact::Redactor;
use rollbook_exec::runner::Runners;
use rollbook_plan::compile::CompiledPlan;

mod support;
use support::{Noop, plan};

fn execute(
    rt: &tokio::runtime::Runtime,
    plan: &CompiledPlan,
    runners: &Runners,
    journal: &mut dyn Journal,
) {
    let outcome = rt
        .block_on(
            Execution {
                plan,
                runners,
                secrets: Default::default(),
                redactor: Redactor::default(),
                journal,
                observer: None,
                control: Control::default(),
                options: Options {
                    parallelism: 64,
                    ..Options::default()
                },
                prior: Prior::default(),
                resumed: None,
            }
            .run(),
        )
        .unwrap();
    assert_eq!(outcome.status, rollbook_exec::RunStatus::Succeeded);
}

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
            let meta = RunMeta {
                run_id: format!("bench-{n}"),
                plan: "bench".into(),
                plan_path: "bench.yaml".into(),
                plan_hash: String::new(),
                params: Default::default(),
                reason: "bench".into(),
                user: "bench".into(),
                host: "bench".into(),
                pid: 0,
                started_at: String::new(),
                lock: "bench".into(),
                parallelism: 64,
                inventory: false,
                inventory_path: None,
                limit: Vec::new(),
                rollbook_version: String::new(),
                calls: Default::default(),
            };
            let mut journal = FileJournal::create(state.path(), &meta, "", None).unwrap();
            execute(&rt, &small, &runners, &mut journal)
        })
    });
    group.finish();
}

criterion_group!(executor, benches);
criterion_main!(executor);
