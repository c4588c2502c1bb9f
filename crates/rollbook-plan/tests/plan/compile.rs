//! Compilation: node names, edges, fan-out expansion, params binding.

use std::collections::BTreeMap;

use petgraph::Direction;
use rollbook_plan::compile::{self, CompiledPlan, ParamInput, Phase, RunInfo};

fn run_info() -> RunInfo {
    RunInfo {
        id: "r1".into(),
        reason: "test".into(),
        user: "alice".into(),
        started_at: "2026-11-25T00:00:00Z".into(),
    }
}

pub fn compile_with(text: &str, args: &[&str]) -> CompiledPlan {
    let plan = crate::plan(text);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let params = compile::bind_params(&plan, &ParamInput::from_args(&args).unwrap()).unwrap();
    compile::compile(&plan, params, &BTreeMap::new(), &run_info()).unwrap()
}

pub fn names(phase: &Phase) -> Vec<String> {
    phase
        .graph
        .node_indices()
        .map(|n| phase.graph[n].name.clone())
        .collect()
}

/// `a -> b` pairs, sorted.
pub fn edges(phase: &Phase) -> Vec<String> {
    let mut out: Vec<String> = phase
        .graph
        .edge_indices()
        .map(|e| {
            let (a, b) = phase.graph.edge_endpoints(e).unwrap();
            format!("{} -> {}", phase.graph[a].name, phase.graph[b].name)
        })
        .collect();
    out.sort();
    out
}

const ROLLING: &str = r#"
version: 1
name: rolling
params:
  region: { enum: [us-east, eu-west], default: us-east }
inventory:
  us-east: [op-1, op-2]
  eu-west: [eu-1]
steps:
  - id: prepare
    shell: { run: "echo prepare" }
  - id: roll
    for_each: "{{ inventory[params.region] }}"
    concurrency: 1
    max_failures: 1
    steps:
      - id: stop
        ssh: { host: "{{ item }}", run: systemctl stop app }
      - id: start
        ssh: { host: "{{ item }}", run: systemctl start app }
  - id: done
    shell: { run: "echo done" }
finally:
  - id: notify
    shell: { run: "echo {{ run.status }}" }
"#;

#[test]
fn groups_expand_per_item_with_instance_names() {
    let c = compile_with(ROLLING, &[]);
    assert_eq!(
        names(&c.phases[0]),
        [
            "prepare",
            "roll[op-1].stop",
            "roll[op-1].start",
            "roll[op-2].stop",
            "roll[op-2].start",
            "done"
        ]
    );
    assert_eq!(names(&c.phases[2]), ["notify"]);
}

#[test]
fn each_step_waits_for_the_sinks_of_the_step_above() {
    let c = compile_with(ROLLING, &[]);
    assert_eq!(
        edges(&c.phases[0]),
        [
            "prepare -> roll[op-1].stop",
            "prepare -> roll[op-2].stop",
            "roll[op-1].start -> done",
            "roll[op-1].stop -> roll[op-1].start",
            "roll[op-2].start -> done",
            "roll[op-2].stop -> roll[op-2].start",
        ]
    );
}

#[test]
fn a_param_picks_the_inventory_group() {
    let c = compile_with(ROLLING, &["region=eu-west"]);
    assert_eq!(names(&c.phases[0])[1], "roll[eu-1].stop");
    assert_eq!(c.phases[0].fan_outs[0].instances, ["eu-1"]);
}

#[test]
fn fan_outs_carry_concurrency_and_max_failures() {
    let c = compile_with(ROLLING, &[]);
    let f = &c.phases[0].fan_outs[0];
    assert_eq!(
        (f.path.as_str(), f.concurrency, f.max_failures),
        ("roll", Some(1), 1)
    );
    let node = &c.phases[0].graph[petgraph::graph::NodeIndex::new(3)];
    assert_eq!(node.name, "roll[op-2].stop");
    assert_eq!(node.instances[0].instance, 1);
    assert_eq!(node.item.as_ref().unwrap().0, "op-2");
}

#[test]
fn layers_respect_a_fan_outs_concurrency() {
    let c = compile_with(ROLLING, &[]);
    let layers: Vec<Vec<String>> = c.phases[0]
        .layers()
        .into_iter()
        .map(|l| {
            l.into_iter()
                .map(|n| c.phases[0].graph[n].name.clone())
                .collect()
        })
        .collect();
    // One at a time: op-2 waits for op-1.
    assert_eq!(layers.len(), 6);
    assert_eq!(layers[1], ["roll[op-1].stop"]);
    assert_eq!(layers[3], ["roll[op-2].stop"]);
}

#[test]
fn a_for_each_over_a_step_output_is_deferred() {
    let c = compile_with(
        r#"
version: 1
name: deferred
steps:
  - id: list
    shell: { run: "echo '[1,2]'" }
    capture: { ids: ".json" }
  - id: check
    needs: [list]
    for_each: "{{ steps.list.outputs.ids }}"
    shell: { run: "echo {{ item }}" }
"#,
        &[],
    );
    let g = &c.phases[0].graph;
    let check = g.node_indices().find(|&n| g[n].name == "check").unwrap();
    let d = g[check].deferred.as_ref().unwrap();
    assert_eq!(d.for_each, "{{ steps.list.outputs.ids }}");
    assert_eq!(g[check].inputs.keys().collect::<Vec<_>>(), ["list"]);
    assert_eq!(g.neighbors_directed(check, Direction::Incoming).count(), 1);
}

#[test]
fn literal_lists_and_object_items_name_instances() {
    let c = compile_with(
        r#"
version: 1
name: items
steps:
  - id: a
    for_each: [x, y]
    sleep: 1s
  - id: b
    for_each: [{ name: web, port: 1 }, { name: db, port: 2 }]
    sleep: 1s
  - id: c
    for_each: [[1], [2]]
    sleep: 1s
"#,
        &[],
    );
    assert_eq!(
        names(&c.phases[0]),
        ["a[x]", "a[y]", "b[web]", "b[db]", "c[0]", "c[1]"]
    );
}

#[test]
fn defaults_fill_settings_but_not_for_sleep_and_confirm() {
    let c = compile_with(
        r#"
version: 1
name: defaults
defaults:
  timeout: 30s
  retry: { attempts: 3, delay: 2s, backoff: exponential, max_delay: 5s }
steps:
  - id: a
    shell: { run: "true" }
  - id: b
    sleep: 1m
  - id: c
    shell: { run: "true" }
    timeout: 5s
    retry: { attempts: 1 }
"#,
        &[],
    );
    let g = &c.phases[0].graph;
    let s: Vec<_> = g.node_indices().map(|n| &g[n].settings).collect();
    assert_eq!(s[0].timeout, Some(std::time::Duration::from_secs(30)));
    assert_eq!(s[0].retry.attempts, 3);
    assert_eq!(
        s[0].retry.delay_before(2),
        std::time::Duration::from_secs(2)
    );
    assert_eq!(
        s[0].retry.delay_before(3),
        std::time::Duration::from_secs(4)
    );
    assert_eq!(
        s[0].retry.delay_before(4),
        std::time::Duration::from_secs(5)
    );
    assert_eq!(s[1].timeout, None);
    assert_eq!(s[2].timeout, Some(std::time::Duration::from_secs(5)));
    assert_eq!(s[2].retry.attempts, 1);
}

#[test]
fn params_bind_from_defaults_file_and_command_line_in_that_order() {
    let plan = crate::plan(
        "version: 1\nname: p\nparams:\n  a: { default: x }\n  b: { type: int, default: 1 }\n  c: { type: list }\n  d: { type: bool, default: false }\nsteps:\n  - id: s\n    sleep: 1s\n",
    );
    let mut input = ParamInput::from_args(&["b=3".into(), "c=u,v".into()]).unwrap();
    input.file.insert("a".into(), "from-file".into());
    input.file.insert("b".into(), 2.into());
    let bound = compile::bind_params(&plan, &input).unwrap();
    assert_eq!(
        serde_json::Value::Object(bound),
        serde_json::json!({"a": "from-file", "b": 3, "c": ["u", "v"], "d": false})
    );
}

#[test]
fn param_problems_are_reported_together() {
    let plan = crate::plan(
        "version: 1\nname: p\nparams:\n  n: { type: int, required: true }\n  r: { enum: [a, b] }\n  t: { type: duration }\nsteps:\n  - id: s\n    sleep: 1s\n",
    );
    let input = ParamInput::from_args(&["r=c".into(), "t=soon".into(), "x=1".into()]).unwrap();
    let err = compile::bind_params(&plan, &input).unwrap_err().to_string();
    assert!(err.contains("plan `p` has no param `x`"), "{err}");
    assert!(err.contains("param `n` is required"), "{err}");
    assert!(err.contains("param `r` is `c`, not one of: a, b"), "{err}");
    assert!(err.contains("param `t`: `soon` is not a duration"), "{err}");
}

#[test]
fn a_for_each_that_is_not_a_list_is_a_compile_error() {
    let plan = crate::plan(
        "version: 1\nname: p\nparams:\n  host: { default: web-1 }\nsteps:\n  - id: s\n    for_each: '{{ params.host }}'\n    sleep: 1s\n",
    );
    let params = compile::bind_params(&plan, &ParamInput::default()).unwrap();
    let err = compile::compile(&plan, params, &BTreeMap::new(), &run_info()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`for_each` yields the text `web-1`, not a list"
    );
}

#[test]
fn an_inventory_file_replaces_a_group() {
    let plan = crate::plan(ROLLING);
    let inventory = rollbook_plan::load_inventory(&rollbook_plan::SourceFile::new(
        "inv.yaml",
        "us-east:\n  - { name: op-9, address: 127.0.0.9, port: 2222 }\n",
    ))
    .unwrap();
    let params = compile::bind_params(&plan, &ParamInput::default()).unwrap();
    let c = compile::compile(&plan, params, &inventory, &run_info()).unwrap();
    assert_eq!(c.inventory["us-east"], ["op-9"]);
    assert_eq!(c.hosts["op-9"].address.as_ref().unwrap().value, "127.0.0.9");
    assert_eq!(names(&c.phases[0])[1], "roll[op-9].stop");
}

const TOLERATED: &str = r#"
version: 1
name: tolerated
steps:
  - id: notice
    name: "{{ run.status }}: {{ json run.tolerated }}"
    on_failure: continue
    shell: { run: "echo notice" }
finally:
  - id: report
    name: "{{ run.status }}:{{#each run.tolerated}} {{ this.node }} ({{ this.message }}){{/each}}"
    when: '$run.tolerated | length > 0'
    shell: { run: "echo report" }
"#;

#[test]
fn run_tolerated_is_a_known_name_and_the_dry_run_shows_a_placeholder_after_the_main_graph() {
    let c = compile_with(TOLERATED, &[]);
    let renderer = rollbook_plan::template::Renderer::new();
    let title = |phase: &Phase| {
        let node = &phase.graph[phase.graph.node_indices().next().unwrap()];
        rollbook_plan::preview::preview(&c, phase, node, &renderer).title
    };
    assert_eq!(title(&c.phases[0]).as_deref(), Some("running: []"));
    assert_eq!(
        title(&c.phases[2]).as_deref(),
        Some("<succeeded|failed|cancelled>: <node> (<message>)")
    );
    let misspelt = TOLERATED.replace("json run.tolerated", "json run.toleratd");
    assert_eq!(crate::codes(&misspelt), ["unknown-name"]);
}
