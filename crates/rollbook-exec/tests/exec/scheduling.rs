//! Order, parallelism, `for_each` concurrency, `when`, `capture`, run-time expansion.

use rollbook_exec::event::{Event, NodeStatus, RunStatus};
use serde_json::json;

use crate::*;

/// Second word of a command: the instance key of `stop h07`.
fn second_word(command: &str) -> Option<String> {
    command.split_whitespace().nth(1).map(str::to_string)
}

#[tokio::test(start_paused = true)]
async fn a_node_starts_only_after_its_needs_and_steps_with_empty_needs_start_together() {
    let plan = compile(
        r#"
version: 1
name: order
steps:
  - id: a
    shell: { run: "work a" }
  - id: b
    needs: []
    shell: { run: "work b" }
  - id: c
    needs: [a, b]
    shell: { run: "work c" }
  - id: d
    needs: [c]
    shell: { run: "work d" }
  - id: e
    needs: []
    shell: { run: "work e" }
"#,
    );
    let s = ScriptedRunner::new()
        .on("work a", Behaviour::ok().lasting(secs(5)))
        .on("work b", Behaviour::ok().lasting(secs(3)))
        .on("work c", Behaviour::ok().lasting(secs(2)))
        .on("work d", Behaviour::ok().lasting(secs(1)))
        .on("work e", Behaviour::ok().lasting(secs(7)));
    let (status, _) = run_scripted(&plan, &s, 64).await;
    assert_eq!(status, RunStatus::Succeeded);

    // Steps with `needs: []` start together with the first, at once.
    for cmd in ["work a", "work b", "work e"] {
        assert_eq!(s.started_at(cmd), secs(0), "{cmd}");
    }
    // A node never starts before everything it needs has finished.
    assert!(s.start_seq("work c") > s.end_seq("work a"));
    assert!(s.start_seq("work c") > s.end_seq("work b"));
    assert!(s.start_seq("work d") > s.end_seq("work c"));
    // ... and starts as soon as they have.
    assert_about(s.started_at("work c"), secs(5), "c starts when a ends");
    assert_about(s.started_at("work d"), secs(7), "d starts when c ends");
    assert_eq!(s.commands().len(), 5);
}

#[tokio::test(start_paused = true)]
async fn steps_without_needs_run_in_the_order_written_and_a_parallel_group_together() {
    let plan = compile(
        r#"
version: 1
name: order
steps:
  - id: stop
    shell: { run: "stop" }
  - id: restore
    shell: { run: "restore" }
  - id: start
    shell: { run: "start" }
  - id: checks
    parallel: true
    steps:
      - id: one
        shell: { run: "check one" }
      - id: two
        shell: { run: "check two" }
  - id: done
    shell: { run: "done" }
"#,
    );
    let s = ScriptedRunner::new()
        .on("stop", Behaviour::ok().lasting(secs(3)))
        .on("restore", Behaviour::ok().lasting(secs(2)))
        .on("start", Behaviour::ok().lasting(secs(1)))
        .on("check one", Behaviour::ok().lasting(secs(4)))
        .on("check two", Behaviour::ok().lasting(secs(2)));
    let (status, _) = run_scripted(&plan, &s, 64).await;
    assert_eq!(status, RunStatus::Succeeded);
    // Each step starts when the one above it has ended.
    assert!(s.start_seq("restore") > s.end_seq("stop"));
    assert!(s.start_seq("start") > s.end_seq("restore"));
    assert_about(s.started_at("restore"), secs(3), "restore after stop");
    assert_about(s.started_at("start"), secs(5), "start after restore");
    // The parallel group's steps start together, after `start`; `done` waits for both.
    assert_about(s.started_at("check one"), secs(6), "check one after start");
    assert_about(
        s.started_at("check two"),
        secs(6),
        "check two with check one",
    );
    assert!(s.start_seq("done") > s.end_seq("check one"));
    assert_about(
        s.started_at("done"),
        secs(10),
        "done after the longer check",
    );
}

#[tokio::test(start_paused = true)]
async fn global_parallelism_is_never_exceeded() {
    let items: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    let plan = compile(&format!(
        r#"
version: 1
name: par
steps:
  - id: w
    for_each: [{}]
    shell: {{ run: "work {{{{ item }}}}" }}
"#,
        items.join(", ")
    ));
    let s = ScriptedRunner::new().on("work", Behaviour::ok().lasting(secs(1)));
    let (status, _) = run_scripted(&plan, &s, 4).await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(s.max_in_flight(|_| true), 4);
    let mut ran = s.commands();
    ran.sort();
    let mut expected: Vec<String> = items.iter().map(|i| format!("work {i}")).collect();
    expected.sort();
    assert_eq!(ran, expected, "every instance runs exactly once");
    // 20 one-second steps, 4 at a time: 5 seconds.
    let last_end = s.log().last().unwrap().at - s.t0();
    assert_about(last_end, secs(5), "the run's length");
}

#[tokio::test(start_paused = true)]
async fn global_parallelism_holds_for_retried_attempts() {
    let plan = compile(
        r#"
version: 1
name: par-retry
steps:
  - id: flaky
    shell: { run: "flaky" }
    retry: { attempts: 2, delay: 1s }
  - id: slow
    needs: []
    for_each: [1, 2, 3, 4]
    shell: { run: "slow {{ item }}" }
"#,
    );
    let s = ScriptedRunner::new()
        .on("flaky", Behaviour::fails_then_ok(1).lasting(secs(1)))
        .on("slow", Behaviour::ok().lasting(secs(5)));
    let (status, _) = run_scripted(&plan, &s, 2).await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(s.attempts("flaky"), 2);
    assert!(
        s.max_in_flight(|_| true) <= 2,
        "parallelism 2, yet {} attempts were in flight at once: {:#?}",
        s.max_in_flight(|_| true),
        s.log()
    );
}

#[tokio::test(start_paused = true)]
async fn for_each_concurrency_caps_instances_in_flight() {
    let items: Vec<String> = (1..=50).map(|i| format!("h{i:02}")).collect();
    let plan = compile(&format!(
        r#"
version: 1
name: conc
steps:
  - id: roll
    for_each: [{}]
    concurrency: 5
    steps:
      - id: stop
        shell: {{ run: "stop {{{{ item }}}}" }}
      - id: start
        needs: [stop]
        shell: {{ run: "start {{{{ item }}}}" }}
  - id: after
    needs: [roll]
    shell: {{ run: "after" }}
"#,
        items.join(", ")
    ));
    // Uneven durations, so instances overlap in changing ways.
    let mut s = ScriptedRunner::new();
    for (i, item) in items.iter().enumerate() {
        s = s
            .on(
                format!("stop {item}"),
                Behaviour::ok().lasting(secs(1 + (i as u64 % 3))),
            )
            .on(
                format!("start {item}"),
                Behaviour::ok().lasting(secs(1 + (i as u64 * 7 % 5))),
            );
    }
    let (status, journal) = run_scripted(&plan, &s, 64).await;
    assert_eq!(status, RunStatus::Succeeded);

    let per_item = |c: &str| {
        (c.starts_with("stop ") || c.starts_with("start ")).then(|| second_word(c).unwrap())
    };
    assert_eq!(s.instance_spans(per_item).len(), 50, "every instance ran");
    assert_eq!(s.max_instances(per_item), 5, "instances in flight at once");
    assert!(s.max_in_flight(|c| c != "after") <= 5);
    assert_eq!(s.commands().len(), 101);
    // The group's dependant waits for every instance.
    let last_instance_end = s
        .instance_spans(per_item)
        .iter()
        .map(|(_, _, end)| *end)
        .max()
        .unwrap();
    assert!(s.start_seq("after") > last_instance_end);
    assert_eq!(
        status_of(&journal.events, "steps", "after"),
        NodeStatus::Succeeded
    );
}

#[tokio::test(start_paused = true)]
async fn concurrency_one_rolls_one_instance_at_a_time() {
    let plan = compile(
        r#"
version: 1
name: rolling
steps:
  - id: roll
    for_each: [a, b, c]
    concurrency: 1
    steps:
      - id: stop
        shell: { run: "stop {{ item }}" }
      - id: start
        needs: [stop]
        shell: { run: "start {{ item }}" }
"#,
    );
    let s = ScriptedRunner::new()
        .on("stop", Behaviour::ok().lasting(secs(2)))
        .on("start", Behaviour::ok().lasting(secs(3)));
    let (status, _) = run_scripted(&plan, &s, 64).await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(
        s.commands(),
        [
            "stop a", "start a", "stop b", "start b", "stop c", "start c"
        ]
    );
    for (prev, next) in [("a", "b"), ("b", "c")] {
        assert!(
            s.start_seq(&format!("stop {next}")) > s.end_seq(&format!("start {prev}")),
            "instance {next} started before instance {prev}'s last step ended"
        );
    }
    assert_about(
        s.started_at("stop b"),
        secs(5),
        "instance b starts when a ends",
    );
    assert_about(
        s.started_at("stop c"),
        secs(10),
        "instance c starts when b ends",
    );
    assert_eq!(s.max_instances(second_word), 1);
}

#[tokio::test(start_paused = true)]
async fn when_false_skips_the_step_and_its_dependants_still_run() {
    let text = r#"
version: 1
name: when
params:
  env: { type: string, default: staging }
steps:
  - id: never
    when: 'false'
    shell: { run: "never" }
  - id: prod-only
    when: '$params.env == "prod"'
    shell: { run: "prod-only" }
  - id: after
    needs: [never, prod-only]
    shell: { run: "after" }
"#;
    let s = ScriptedRunner::new();
    let (status, journal) = run_scripted(&compile(text), &s, 64).await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(s.commands(), ["after"]);
    assert_eq!(
        status_of(&journal.events, "steps", "never"),
        NodeStatus::Skipped
    );
    assert_eq!(
        status_of(&journal.events, "steps", "prod-only"),
        NodeStatus::Skipped
    );
    assert_eq!(
        status_of(&journal.events, "steps", "after"),
        NodeStatus::Succeeded
    );

    // The same plan with the param that makes the condition hold.
    let s = ScriptedRunner::new();
    let (status, journal) = run_scripted(&compile_with(text, &["env=prod"]), &s, 64).await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(s.commands(), ["prod-only", "after"]);
    assert_eq!(
        status_of(&journal.events, "steps", "prod-only"),
        NodeStatus::Succeeded
    );
}

#[tokio::test(start_paused = true)]
async fn capture_feeds_a_later_template() {
    let plan = compile(
        r#"
version: 1
name: capture
steps:
  - id: a
    shell: { run: "lookup" }
    capture: { id: '.json.id' }
  - id: b
    needs: [a]
    shell: { run: "echo {{ steps.a.outputs.id }}" }
"#,
    );
    let s = ScriptedRunner::new().on("lookup", Behaviour::result(json!({ "json": { "id": 7 } })));
    let (status, journal) = run_scripted(&plan, &s, 64).await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(s.commands(), ["lookup", "echo 7"]);
    let outputs = journal.events.iter().find_map(|e| match e {
        Event::NodeFinished { node, outputs, .. } if node == "a" => outputs.clone(),
        _ => None,
    });
    assert_eq!(outputs, Some(json!({ "id": 7 })));
}

#[tokio::test(start_paused = true)]
async fn run_time_for_each_expands_over_a_captured_list() {
    let plan = compile(
        r#"
version: 1
name: expand
steps:
  - id: list
    shell: { run: "list" }
    capture: { ids: '.json.ids' }
  - id: check
    needs: [list]
    for_each: "{{ steps.list.outputs.ids }}"
    shell: { run: "check {{ item }}" }
  - id: after
    needs: [check]
    shell: { run: "after" }
"#,
    );
    let s = ScriptedRunner::new()
        .on(
            "list",
            Behaviour::result(json!({ "json": { "ids": [1, 2] } })),
        )
        .on("check 1", Behaviour::ok().lasting(secs(2)))
        .on("check 2", Behaviour::ok().lasting(secs(4)));
    let (status, journal) = run_scripted(&plan, &s, 64).await;
    assert_eq!(status, RunStatus::Succeeded);
    let expanded: Vec<_> = journal
        .events
        .iter()
        .filter_map(|e| match e {
            Event::NodeExpanded {
                node, instances, ..
            } => Some((node.clone(), instances.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        expanded,
        [("check".to_string(), vec!["1".to_string(), "2".to_string()])]
    );
    assert_eq!(
        status_of(&journal.events, "steps", "check[1]"),
        NodeStatus::Succeeded
    );
    assert_eq!(
        status_of(&journal.events, "steps", "check[2]"),
        NodeStatus::Succeeded
    );
    assert_eq!(
        status_of(&journal.events, "steps", "check"),
        NodeStatus::Succeeded
    );
    let nodes: Vec<_> = s
        .log()
        .iter()
        .filter(|e| e.mark == Mark::Start && e.command.starts_with("check"))
        .map(|e| (e.node.clone(), e.command.clone()))
        .collect();
    assert_eq!(
        nodes,
        [
            ("check[1]".to_string(), "check 1".to_string()),
            ("check[2]".to_string(), "check 2".to_string())
        ]
    );
    // Both instances run at once; the dependant waits for both.
    assert_eq!(s.started_at("check 1"), s.started_at("check 2"));
    assert!(s.start_seq("after") > s.end_seq("check 1"));
    assert!(s.start_seq("after") > s.end_seq("check 2"));
    assert_about(
        s.started_at("after"),
        secs(4),
        "after starts when the last instance ends",
    );
}

#[tokio::test(start_paused = true)]
async fn run_time_for_each_inside_a_rolling_group() {
    let plan = compile(
        r#"
version: 1
name: nested-expand
steps:
  - id: roll
    for_each: [x, y]
    concurrency: 1
    steps:
      - id: list
        shell: { run: "list {{ item }}" }
        capture: { ids: '.json.ids' }
      - id: check
        needs: [list]
        for_each: "{{ steps.list.outputs.ids }}"
        shell: { run: "check {{ item }}" }
  - id: after
    needs: [roll]
    shell: { run: "after" }
"#,
    );
    let s = ScriptedRunner::new()
        .on(
            "list x",
            Behaviour::result(json!({ "json": { "ids": [1, 2] } })),
        )
        .on(
            "list y",
            Behaviour::result(json!({ "json": { "ids": [3, 4] } })),
        )
        .on("check", Behaviour::ok().lasting(secs(1)));
    let (status, journal) = run_scripted(&plan, &s, 64).await;
    assert_eq!(
        s.commands(),
        [
            "list x", "check 1", "check 2", "list y", "check 3", "check 4", "after"
        ],
        "events: {:#?}",
        journal.events
    );
    assert_eq!(status, RunStatus::Succeeded);
    // Instance y starts only after instance x's expanded steps ended.
    assert!(s.start_seq("list y") > s.end_seq("check 1"));
    assert!(s.start_seq("list y") > s.end_seq("check 2"));
}
