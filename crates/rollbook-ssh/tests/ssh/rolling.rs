//! A rolling rollout over 50 real hosts: `concurrency: 5` is never exceeded, and every host
//! gets its three steps in order.

use std::collections::BTreeMap;

use rollbook_exec::executor::{Control, Execution, Options, Prior};
use rollbook_exec::journal::NoJournal;
use rollbook_exec::redact::Redactor;
use rollbook_exec::{RunStatus, Runners};
use rollbook_plan::SourceFile;
use rollbook_plan::compile::{self, ParamInput, RunInfo};

use crate::fleet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifty_host_rollout_with_concurrency_5_never_has_more_than_5_in_flight() {
    let f = fleet();
    assert!(
        f.hosts >= 50,
        "the fleet has {} hosts, the test needs 50",
        f.hosts
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("timeline");
    let hosts: Vec<String> = (2..52)
        .map(|i| {
            format!(
                "    - {{ name: h{i}, address: 127.0.0.{i}, port: {} }}",
                f.port
            )
        })
        .collect();
    let text = format!(
        r#"version: 1
name: rolling
inventory:
  fleet:
{hosts}
defaults:
  ssh: {{ user: {user}, known_hosts: {known}, identity_file: {key} }}
steps:
  - id: roll
    for_each: "{{{{ inventory.fleet }}}}"
    concurrency: 5
    steps:
      - id: stop
        ssh: {{ host: "{{{{ item }}}}", run: "echo start {{{{ item }}}} $(date +%s%N) >> {log}" }}
      - id: restore
        needs: [stop]
        ssh: {{ host: "{{{{ item }}}}", run: "sleep 0.1" }}
      - id: start
        needs: [restore]
        ssh: {{ host: "{{{{ item }}}}", run: "echo end {{{{ item }}}} $(date +%s%N) >> {log}" }}
"#,
        hosts = hosts.join("\n"),
        user = f.user,
        known = f.known_hosts.display(),
        key = f.key.display(),
        log = log.display(),
    );
    let checked = rollbook_plan::check(SourceFile::new("rolling.yaml", text), None);
    assert!(checked.diagnostics.is_empty(), "{:#?}", checked.diagnostics);
    let plan = checked.plan.unwrap();
    let params = compile::bind_params(&plan, &ParamInput::default()).unwrap();
    let run = RunInfo {
        id: "t".into(),
        reason: "t".into(),
        user: "t".into(),
        started_at: "t".into(),
    };
    let compiled = compile::compile(&plan, params, &BTreeMap::new(), &run).unwrap();
    let runners = Runners::new().with(f.runner());
    let outcome = Execution {
        plan: &compiled,
        runners: &runners,
        secrets: Default::default(),
        redactor: Redactor::default(),
        journal: &mut NoJournal,
        observer: None,
        control: Control::default(),
        options: Options {
            parallelism: 64,
            ..Options::default()
        },
        prior: Prior::default(),
        resumed: None,
    }
    .run()
    .await
    .unwrap();
    assert_eq!(outcome.status, RunStatus::Succeeded);
    // Intervals from each host's first step to its last, as the hosts recorded them.
    let mut spans: BTreeMap<String, (u128, u128)> = BTreeMap::new();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let t: u128 = parts[2].parse().unwrap();
        let span = spans.entry(parts[1].to_string()).or_default();
        if parts[0] == "start" {
            span.0 = t
        } else {
            span.1 = t
        }
    }
    assert_eq!(spans.len(), 50);
    let mut points: Vec<(u128, i32)> = spans
        .values()
        .flat_map(|(a, b)| [(*a, 1), (*b, -1)])
        .collect();
    points.sort();
    let (mut now, mut most) = (0, 0);
    for (_, d) in points {
        now += d;
        most = most.max(now);
    }
    assert!(most <= 5, "{most} hosts were in flight at once");
    assert!(
        most >= 4,
        "the rollout did not use its concurrency ({most} at most)"
    );
}
