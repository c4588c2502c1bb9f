//! What the executor benchmarks share (`rollbook-exec`'s and `rollbook-state`'s, which
//! includes this file): a runner that does nothing, the plan they run, a run's metadata, and
//! one run of the plan into a journal.

use std::collections::BTreeMap;

use rollbook_exec::executor::{Control, Execution, Options, Prior};
use rollbook_exec::journal::{Journal, RunMeta};
use rollbook_exec::redact::Redactor;
use rollbook_exec::runner::{Attempt, BoxFuture, Outcome, Runner, Runners};
use rollbook_plan::SourceFile;
use rollbook_plan::action::Action;
use rollbook_plan::compile::{self, CompiledPlan, ParamInput, RunInfo};
use serde_json::json;

/// Succeeds at once: what is measured is the executor, not the work.
pub struct Noop;

impl Runner for Noop {
    fn kind(&self) -> &'static str {
        "shell"
    }
    fn run<'a>(&'a self, _: &'a Action, _: Attempt) -> BoxFuture<'a, Outcome> {
        Box::pin(async {
            Outcome::Succeeded {
                result: json!({ "exit_code": 0 }),
            }
        })
    }
}

/// `n` shell steps in lanes of 100: step i needs step i-100 (the first 100 need nothing), so
/// 100 lanes run side by side.
pub fn plan(n: usize) -> CompiledPlan {
    let mut text = String::from("version: 1\nname: bench\nsteps:\n");
    for i in 0..n {
        text.push_str(&format!(
            "  - id: s{i}\n    shell: {{ run: \"true {i}\" }}\n"
        ));
        if i >= 100 {
            text.push_str(&format!("    needs: [s{}]\n", i - 100));
        } else {
            text.push_str("    needs: []\n");
        }
    }
    let checked = rollbook_plan::check(SourceFile::new("bench.yaml", text), None);
    let plan = checked.plan.unwrap();
    let params = compile::bind_params(&plan, &ParamInput::default()).unwrap();
    let run = RunInfo {
        id: "bench".into(),
        reason: "bench".into(),
        user: "bench".into(),
        started_at: "2026-11-25T00:00:00Z".into(),
    };
    compile::compile(&plan, params, &BTreeMap::new(), &run).unwrap()
}

/// The metadata of bench run `id`.
pub fn meta(id: &str) -> RunMeta {
    RunMeta {
        run_id: id.into(),
        plan: "bench".into(),
        plan_path: "bench.yaml".into(),
        plan_hash: String::new(),
        params: Default::default(),
        reason: "bench".into(),
        user: "bench".into(),
        host: "bench".into(),
        pid: 0,
        started_at: "2026-11-25T00:00:00.000Z".into(),
        lock: "bench".into(),
        parallelism: 64,
        inventory: false,
        inventory_path: None,
        limit: Vec::new(),
        rollbook_version: String::new(),
        calls: Default::default(),
    }
}

/// Runs `plan` to its end at parallelism 64, journaled into `journal`; it must succeed.
pub fn execute(
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
