//! Load + validate + compile of generated plans, from 100 to 10,000 steps, and a 200-host
//! rolling group. `cargo bench -p rollbook-plan`; numbers go to docs/benchmarks.md.

use std::collections::BTreeMap;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use rollbook_plan::SourceFile;
use rollbook_plan::compile::{self, ParamInput, RunInfo};

/// A plan of `n` steps shaped like real ones: chains of ten shell and HTTP steps with
/// templates, a capture and a health gate in every chain.
fn generated_plan(n: usize) -> String {
    let mut text = String::from(
        "version: 1\nname: generated\nparams:\n  region: { enum: [us-east, eu-west], default: us-east }\ndefaults:\n  timeout: 30s\nsteps:\n",
    );
    for i in 0..n {
        text.push_str(&format!("  - id: s{i}\n"));
        if i % 10 == 0 {
            text.push_str("    needs: []\n");
        }
        match i % 10 {
            0 => text.push_str(&format!(
                "    http: {{ url: \"http://127.0.0.1:8080/api/{{{{ params.region }}}}/{i}\" }}\n    capture: {{ id: '.json.id' }}\n"
            )),
            5 => text.push_str(&format!(
                "    http: {{ url: \"http://127.0.0.1:8080/nodes/{i}\" }}\n    until: '.json.active_instances == 0'\n    interval: 1s\n    deadline: 1m\n"
            )),
            k => text.push_str(&format!(
                "    shell: {{ run: \"echo {{{{ params.region }}}} {{{{ steps.s{}.outputs.id }}}} {k}\" }}\n",
                i - k
            )),
        }
    }
    text
}

/// A rolling group over `hosts` hosts with four steps each.
fn fan_out_plan(hosts: usize) -> String {
    let names: Vec<String> = (0..hosts).map(|i| format!("op-{i}")).collect();
    format!(
        r#"version: 1
name: fanout
inventory:
  operators: [{}]
steps:
  - id: roll
    for_each: "{{{{ inventory.operators }}}}"
    concurrency: 10
    steps:
      - id: stop
        ssh: {{ host: "{{{{ item }}}}", run: systemctl stop zeitwork-operator }}
      - id: restore
        needs: [stop]
        ssh: {{ host: "{{{{ item }}}}", run: cp /usr/local/bin/zeitwork-operator.backup /usr/local/bin/zeitwork-operator }}
      - id: start
        needs: [restore]
        ssh: {{ host: "{{{{ item }}}}", run: systemctl start zeitwork-operator }}
      - id: healthy
        needs: [start]
        http: {{ url: "http://{{{{ item }}}}:8080/health", expect: {{ status: 200 }} }}
"#,
        names.join(", ")
    )
}

fn load_validate_compile(text: &str) -> usize {
    let checked = rollbook_plan::check(SourceFile::new("bench.yaml", text), None);
    assert!(checked.is_ok(), "{:?}", checked.diagnostics.first());
    let plan = checked.plan.unwrap();
    let params = compile::bind_params(&plan, &ParamInput::default()).unwrap();
    let run = RunInfo {
        id: "bench".into(),
        reason: "bench".into(),
        user: "bench".into(),
        started_at: "2026-11-25T00:00:00Z".into(),
    };
    let compiled = compile::compile(&plan, params, &BTreeMap::new(), &run).unwrap();
    compiled.phases[0].graph.node_count()
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("load_validate_compile");
    group.sample_size(20);
    for n in [100, 1_000, 10_000] {
        let text = generated_plan(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("steps", n), &text, |b, text| {
            b.iter(|| load_validate_compile(text))
        });
    }
    let text = fan_out_plan(200);
    group.throughput(Throughput::Elements(800));
    group.bench_function("for_each_200_hosts", |b| {
        b.iter(|| load_validate_compile(&text))
    });
    group.finish();
}

/// The benchmark group, as `criterion_group!` would write it (but private and documented).
fn plan() {
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
}

criterion_main!(plan);
