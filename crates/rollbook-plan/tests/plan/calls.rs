//! Calling a plan from a plan (`plan: NAME`): checks against the called plans, and the
//! compiled sub-graph (names, edges, params, secrets, context).

use std::collections::BTreeMap;

use rollbook_plan::calls::Library;
use rollbook_plan::compile::{self, CompiledPlan, ParamInput, RunInfo};
use rollbook_plan::preview::preview;
use rollbook_plan::render::{RunState, node_context, render_action};
use rollbook_plan::template::Renderer;
use rollbook_plan::{Checked, SourceFile};
use serde_json::{Map, Value, json};

use crate::compile::{edges, names};

const NOTICE: &str = r#"
version: 1
name: notice
params:
  what: { required: true }
  region: { enum: [us-east, eu-west], default: us-east }
  count: { type: int, default: 1 }
secrets:
  hook: { env: HOOK }
defaults:
  timeout: 7s
steps:
  - id: post
    http:
      method: POST
      url: "{{ secrets.hook }}"
      json: { text: "{{ params.what }} {{ run.status }} in {{ params.region }} ({{ plan.name }})" }
    on_failure: continue
  - id: log
    shell: { run: "echo {{ params.what }}" }
"#;

const CALLER: &str = r#"
version: 1
name: caller
params:
  region: { default: eu-west }
secrets:
  slack: { env: SLACK }
defaults:
  timeout: 60s
steps:
  - id: first
    shell: { run: "echo first" }
  - id: notify
    plan: notice
    params: { what: "Rollback by {{ run.user }}", region: "{{ params.region }}" }
    secrets: { hook: slack }
  - id: last
    shell: { run: "echo last" }
"#;

fn library(plans: &[(&str, &str)]) -> Library {
    let mut library = Library::new();
    for (name, text) in plans {
        library.insert(*name, SourceFile::new(format!("plans/{name}.yaml"), *text));
    }
    library
}

fn check(text: &str, plans: &[(&str, &str)]) -> Checked {
    rollbook_plan::check_with(SourceFile::new("caller.yaml", text), None, &library(plans))
}

fn errors(checked: &Checked) -> Vec<(&'static str, String)> {
    checked
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| (d.code, d.message.clone()))
        .collect()
}

fn run_info() -> RunInfo {
    RunInfo {
        id: "r1".into(),
        reason: "it broke".into(),
        user: "alice".into(),
        started_at: "2026-11-25T00:00:00Z".into(),
    }
}

fn compile(text: &str, plans: &[(&str, &str)]) -> Result<CompiledPlan, rollbook_plan::Error> {
    let checked = check(text, plans);
    assert!(checked.is_ok(), "{:#?}", checked.diagnostics);
    let plan = checked.plan.unwrap();
    let params = compile::bind_params(&plan, &ParamInput::default()).unwrap();
    compile::compile_with(
        &plan,
        params,
        &BTreeMap::new(),
        &run_info(),
        &[],
        &library(plans),
    )
}

#[test]
fn a_call_runs_the_called_steps_under_its_name_in_order() {
    let compiled = compile(CALLER, &[("notice", NOTICE)]).unwrap();
    let main = &compiled.phases[0];
    assert_eq!(names(main), ["first", "notify.post", "notify.log", "last"]);
    assert_eq!(
        edges(main),
        [
            "first -> notify.post",
            "notify.log -> last",
            "notify.post -> notify.log"
        ]
    );
    // One run: the caller's lock, name and secrets.
    assert_eq!(compiled.lock, "caller");
    assert_eq!(compiled.secrets.names().collect::<Vec<_>>(), ["slack"]);
}

#[test]
fn called_nodes_render_with_the_called_plans_params_defaults_and_secrets() {
    let compiled = compile(CALLER, &[("notice", NOTICE)]).unwrap();
    let main = &compiled.phases[0];
    let post = main
        .graph
        .node_weights()
        .find(|n| n.name == "notify.post")
        .unwrap();
    let call = post.call.as_ref().unwrap();
    assert_eq!(call.plan, "notice");
    assert_eq!(call.at, "notify");
    assert_eq!(call.secrets, [("hook".to_string(), "slack".to_string())]);
    // Params rendered in the caller's context, then bound with the called plan's defaults.
    assert_eq!(
        call.context["params"],
        json!({ "what": "Rollback by alice", "region": "eu-west", "count": 1 })
    );
    // The called plan's `defaults`, not the caller's.
    assert_eq!(
        post.settings.timeout,
        Some(std::time::Duration::from_secs(7))
    );
    let mut secrets = Map::new();
    secrets.insert("slack".into(), json!("https://hooks.example/T0"));
    let run = RunState {
        status: "failed",
        tolerated: &json!([]),
    };
    let ctx = node_context(&compiled, &main.graph, post, &secrets, run, &|_| None);
    assert_eq!(
        ctx["secrets"],
        json!({ "hook": "https://hooks.example/T0" })
    );
    assert_eq!(ctx["run"]["status"], "failed");
    let action = render_action(&compiled, post, &ctx, &Renderer::new()).unwrap();
    let shown = format!("{action:?}");
    assert!(shown.contains("https://hooks.example/T0"), "{shown}");
    assert!(
        shown.contains("Rollback by alice failed in eu-west (notice)"),
        "{shown}"
    );
    // The dry run masks it under the called plan's name.
    let p = preview(&compiled, main, post, &Renderer::new());
    assert!(p.target.contains("***"), "{p:?}");
}

#[test]
fn a_call_in_finally_and_a_call_inside_a_called_plan() {
    let middle = r#"
version: 1
name: middle
secrets:
  token: { env: T }
steps:
  - id: inner
    plan: notice
    params: { what: nested }
    secrets: { hook: token }
"#;
    let caller = r#"
version: 1
name: caller
secrets:
  slack: { env: SLACK }
steps:
  - id: work
    shell: { run: "true" }
finally:
  - id: tell
    plan: middle
    secrets: { token: slack }
"#;
    let compiled = compile(caller, &[("notice", NOTICE), ("middle", middle)]).unwrap();
    let finally = &compiled.phases[2];
    assert_eq!(names(finally), ["tell.inner.post", "tell.inner.log"]);
    let post = finally.graph.node_weights().next().unwrap();
    // The secret reaches two calls down under the run's name.
    assert_eq!(
        post.call.as_ref().unwrap().secrets,
        [("hook".to_string(), "slack".to_string())]
    );
}

#[test]
fn literal_params_are_checked_against_the_called_plans_params() {
    let caller = r#"
version: 1
name: caller
secrets:
  slack: { env: SLACK }
steps:
  - id: notify
    plan: notice
    params: { reigon: eu-west, region: ap-south, count: many }
    secrets: { hook: slack }
"#;
    let checked = check(caller, &[("notice", NOTICE)]);
    let errors = errors(&checked);
    let codes: Vec<&str> = errors.iter().map(|e| e.0).collect();
    assert_eq!(
        codes,
        ["missing-param", "unknown-param", "bad-param", "bad-param"],
        "{errors:#?}"
    );
    assert!(errors[0].1.contains("requires param `what`"), "{errors:#?}");
    assert!(errors[1].1.contains("no param `reigon`"), "{errors:#?}");
    let help = &checked.diagnostics[1].help;
    assert!(
        help.iter().any(|h| h.contains("did you mean `region`")),
        "{help:?}"
    );
    assert!(
        errors[2].1.contains("not one of: us-east, eu-west"),
        "{errors:#?}"
    );
    assert!(errors[3].1.contains("expected"), "{errors:#?}");
}

#[test]
fn templated_params_are_checked_when_the_plan_is_compiled() {
    let caller = r#"
version: 1
name: caller
params:
  region: { default: ap-south }
secrets:
  slack: { env: SLACK }
steps:
  - id: notify
    plan: notice
    params: { what: x, region: "{{ params.region }}" }
    secrets: { hook: slack }
"#;
    let err = compile(caller, &[("notice", NOTICE)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("step `notify` calls plan `notice`"), "{err}");
    assert!(err.contains("not one of: us-east, eu-west"), "{err}");
}

#[test]
fn params_may_not_read_what_exists_only_at_run_time() {
    let caller = r#"
version: 1
name: caller
secrets:
  slack: { env: SLACK }
steps:
  - id: notify
    plan: notice
    params: { what: "{{ run.status }} {{ secrets.slack }}" }
    secrets: { hook: slack }
"#;
    let errors = errors(&check(caller, &[("notice", NOTICE)]));
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors.iter().all(|e| e.0 == "call-param"), "{errors:#?}");
    assert!(errors[0].1.contains("run.status"), "{errors:#?}");
}

#[test]
fn secrets_pass_only_as_declared() {
    let caller = r#"
version: 1
name: caller
secrets:
  slack: { env: SLACK }
steps:
  - id: notify
    plan: notice
    params: { what: x }
    secrets: { hok: slakc }
"#;
    let checked = check(caller, &[("notice", NOTICE)]);
    let errors = errors(&checked);
    let codes: Vec<&str> = errors.iter().map(|e| e.0).collect();
    assert_eq!(
        codes,
        ["missing-secret", "unknown-secret", "unknown-secret"],
        "{errors:#?}"
    );
    assert!(errors[0].1.contains("needs secret `hook`"), "{errors:#?}");
    assert!(errors[1].1.contains("no secret `hok`"), "{errors:#?}");
    assert!(
        errors[2].1.contains("no secret `slakc` to give"),
        "{errors:#?}"
    );
}

#[test]
fn an_unknown_plan_gets_a_suggestion() {
    let caller = CALLER.replace("plan: notice", "plan: notcie");
    let checked = check(&caller, &[("notice", NOTICE)]);
    let errors = errors(&checked);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].0, "unknown-plan");
    let d = checked.diagnostics.iter().find(|d| d.is_error()).unwrap();
    assert!(
        d.help.iter().any(|h| h.contains("did you mean `notice`")),
        "{d:?}"
    );
    // Compiled without the plan anyway: refused, not skipped.
    let plan = checked.plan.unwrap();
    let err = compile::compile_with(
        &plan,
        compile::bind_params(&plan, &ParamInput::default()).unwrap(),
        &BTreeMap::new(),
        &run_info(),
        &[],
        &Library::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("not there to call"), "{err}");
}

#[test]
fn cycles_of_calls_name_every_plan_on_them() {
    let a = r#"
version: 1
name: a
steps:
  - id: to-b
    plan: b
"#;
    let b = r#"
version: 1
name: b
steps:
  - id: work
    shell: { run: "true" }
  - id: to-a
    plan: a
"#;
    let plans = [("a", a), ("b", b)];
    let checked = rollbook_plan::check_with(
        SourceFile::new("plans/a.yaml", a),
        Some("a"),
        &library(&plans),
    );
    let errors = errors(&checked);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].0, "call-cycle");
    assert!(errors[0].1.contains("`a` → `b` → `a`"), "{errors:#?}");
    let d = &checked.diagnostics[0];
    assert_eq!(checked.file.line_col(d.span.offset), (6, 11));
    assert!(
        d.help
            .iter()
            .any(|h| h.contains("`b` calls `a` at plans/b.yaml:8:11")),
        "{d:?}"
    );

    let selfish = r#"
version: 1
name: selfish
steps:
  - id: again
    plan: selfish
"#;
    let checked = rollbook_plan::check_with(
        SourceFile::new("plans/selfish.yaml", selfish),
        Some("selfish"),
        &library(&[("selfish", selfish)]),
    );
    let found = self::errors(&checked);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].1, "plan `selfish` calls itself");
}

#[test]
fn a_called_plan_may_not_have_its_own_run_settings_or_phases() {
    let guarded = r#"
version: 1
name: guarded
confirm: YES
lock: other
steps:
  - id: work
    shell: { run: "true" }
finally:
  - id: after
    shell: { run: "true" }
"#;
    let caller = r#"
version: 1
name: caller
steps:
  - id: go
    plan: guarded
    timeout: 5s
"#;
    let errors = errors(&check(caller, &[("guarded", guarded)]));
    let messages: Vec<&str> = errors.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`timeout` does not apply")),
        "{messages:#?}"
    );
    for key in ["confirm", "lock", "finally"] {
        assert!(
            messages.iter().any(|m| m.contains(&format!("has `{key}`"))),
            "{messages:#?}"
        );
    }
}

#[test]
fn a_call_inside_a_group_is_refused() {
    let caller = r#"
version: 1
name: caller
steps:
  - id: group
    steps:
      - id: go
        plan: notice
"#;
    let errors = errors(&check(caller, &[("notice", NOTICE)]));
    assert!(errors.iter().any(|e| e.0 == "call-in-group"), "{errors:#?}");
}

#[test]
fn the_dry_run_context_of_a_plan_without_calls_is_unchanged() {
    // No library needed when nothing is called.
    let compiled = compile(
        "version: 1\nname: plain\nsteps:\n  - id: a\n    shell: { run: \"true\" }\n",
        &[],
    )
    .unwrap();
    let node = compiled.phases[0].graph.node_weights().next().unwrap();
    assert!(node.call.is_none());
    let _: &Value = &compiled.context;
}
