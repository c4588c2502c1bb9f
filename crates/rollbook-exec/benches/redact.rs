//! Redaction throughput: 10 secrets (tokens, passwords, a multi-line key) in all their forms
//! over 1 MiB of log output, redacted at once and as a stream of lines (what an output sink
//! does). `cargo bench -p rollbook-exec --bench redact`; numbers go to docs/benchmarks.md.

// Helpers of a test binary, not an API: the crate's `missing_docs` is for its library.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rollbook_exec::redact::{Redactor, StreamRedactor};

const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACD1s9Jb7V2qX0mQfTl5cWm3rJ8pZsYd4AzKxN0uLq1eIgAAAJjR0xw1ZQxA
-----END OPENSSH PRIVATE KEY-----";

fn secrets() -> Vec<String> {
    let mut secrets: Vec<String> = (0..8)
        .map(|i| format!("tok-{i:02}-5f1c9e2a-b7d4-4c1e-9a3f-{:012x}", i * 7919))
        .collect();
    secrets.push("hunter2-Correct Horse/Battery+Staple".into());
    secrets.push(KEY.into());
    secrets
}

/// 1 MiB of lines like a deployment's output, with a secret in one line of 500.
fn output(secrets: &[String]) -> String {
    let mut text = String::with_capacity(1 << 20);
    let mut i = 0;
    while text.len() < 1 << 20 {
        if i % 500 == 499 {
            text.push_str(&format!("token in use: {}\n", secrets[i % secrets.len()]));
        } else {
            text.push_str(&format!(
                "2026-11-25T13:32:{:02}Z op-{i} restarted worker pid={} status=ok\n",
                i % 60,
                i * 31
            ));
        }
        i += 1;
    }
    text
}

fn bench(c: &mut Criterion) {
    let secrets = secrets();
    let redactor = Redactor::builder();
    let redactor = secrets
        .iter()
        .fold(redactor, |b, s| b.secret(s))
        .login("deploy", &secrets[8])
        .build();
    let text = output(&secrets);
    let mut group = c.benchmark_group("redact");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("10 secrets, 1 MiB at once", |b| {
        b.iter(|| redactor.redact(&text))
    });
    group.bench_function("10 secrets, 1 MiB as a stream of lines", |b| {
        b.iter(|| {
            let mut stream = StreamRedactor::new(redactor.clone());
            let mut out = 0;
            for line in text.split_inclusive('\n') {
                out += stream.push(line).len();
            }
            out + stream.finish().len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
