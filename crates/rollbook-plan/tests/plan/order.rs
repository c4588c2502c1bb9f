//! Steps run in the order they are written: each after the step above it, unless it says
//! `needs` or its group says `parallel: true`. Compiled edges and the diagnostics of the rule.

use rollbook_plan::SourceFile;

use crate::compile::{compile_with, edges, names};

fn plan(steps: &str) -> String {
    format!("version: 1\nname: p\nsteps:\n{steps}")
}

/// The diagnostics of a plan as `code: message` lines.
fn diagnostics(text: &str) -> Vec<String> {
    rollbook_plan::check(SourceFile::new("test.yaml", text), None)
        .diagnostics
        .iter()
        .map(|d| format!("{}: {}", d.code, d.message))
        .collect()
}

#[test]
fn steps_without_needs_run_one_after_the_other_in_every_list() {
    let text = plan(
        "  - id: stop\n    sleep: 1s\n  - id: restore\n    sleep: 1s\n  - id: start\n    sleep: 1s\n\
         on_failure:\n  - id: page\n    sleep: 1s\n  - id: log\n    sleep: 1s\n\
         finally:\n  - id: tidy\n    sleep: 1s\n  - id: notify\n    sleep: 1s\n",
    );
    let c = compile_with(&text, &[]);
    assert_eq!(edges(&c.phases[0]), ["restore -> start", "stop -> restore"]);
    assert_eq!(edges(&c.phases[1]), ["page -> log"]);
    assert_eq!(edges(&c.phases[2]), ["tidy -> notify"]);
}

#[test]
fn needs_replaces_the_step_above_and_an_empty_needs_starts_at_once() {
    let text = plan(
        "  - id: a\n    sleep: 1s\n  - id: b\n    sleep: 1s\n  - id: c\n    needs: [a]\n    sleep: 1s\n\
         \x20 - id: d\n    needs: []\n    sleep: 1s\n  - id: e\n    sleep: 1s\n",
    );
    let c = compile_with(&text, &[]);
    // c waits for a only (not b); d waits for nothing; e waits for d, the step above it.
    assert_eq!(edges(&c.phases[0]), ["a -> b", "a -> c", "d -> e"]);
}

#[test]
fn a_parallel_group_starts_its_steps_together_after_the_step_above_it() {
    let text = plan(
        "  - id: before\n    sleep: 1s\n  - id: checks\n    parallel: true\n    steps:\n\
         \x20     - id: x\n        sleep: 1s\n      - id: y\n        sleep: 1s\n\
         \x20     - id: z\n        needs: [y]\n        sleep: 1s\n  - id: after\n    sleep: 1s\n",
    );
    let c = compile_with(&text, &[]);
    assert_eq!(
        edges(&c.phases[0]),
        [
            "before -> checks.x",
            "before -> checks.y",
            "checks.x -> after",
            "checks.y -> checks.z",
            "checks.z -> after",
        ]
    );
}

#[test]
fn a_step_after_a_group_or_a_for_each_waits_for_all_of_it() {
    let text = plan(
        "  - id: roll\n    for_each: [a, b]\n    concurrency: 1\n    steps:\n\
         \x20     - id: stop\n        sleep: 1s\n      - id: start\n        sleep: 1s\n\
         \x20     - id: side\n        needs: []\n        sleep: 1s\n\
         \x20 - id: check\n    for_each: [a, b]\n    sleep: 1s\n  - id: done\n    sleep: 1s\n",
    );
    let c = compile_with(&text, &[]);
    let e = edges(&c.phases[0]);
    // Inside an instance: start after stop; side starts with the instance.
    assert!(
        e.contains(&"roll[a].stop -> roll[a].start".to_string()),
        "{e:#?}"
    );
    // Every instance's ends (start and side) before every instance of the next step.
    for inst in ["a", "b"] {
        for end in ["start", "side"] {
            for next in ["a", "b"] {
                let edge = format!("roll[{inst}].{end} -> check[{next}]");
                assert!(e.contains(&edge), "{edge} missing: {e:#?}");
            }
        }
        assert!(e.contains(&format!("check[{inst}] -> done")), "{e:#?}");
    }
    assert!(!e.iter().any(|x| x.contains("stop -> check")), "{e:#?}");
    assert_eq!(names(&c.phases[0]).len(), 9);
}

#[test]
fn a_step_can_read_the_outputs_of_any_step_above_it_in_order() {
    let text = plan(
        "  - id: find\n    shell: { run: echo 1 }\n    capture: { id: '.stdout' }\n\
         \x20 - id: wait\n    sleep: 1s\n\
         \x20 - id: use\n    shell: { run: 'echo {{ steps.find.outputs.id }}' }\n",
    );
    assert!(diagnostics(&text).is_empty(), "{:#?}", diagnostics(&text));
    // In a parallel group, or with `needs: []`, the step above has not run.
    let parallel = plan(
        "  - id: g\n    parallel: true\n    steps:\n\
         \x20     - id: find\n        shell: { run: echo 1 }\n        capture: { id: '.stdout' }\n\
         \x20     - id: use\n        shell: { run: 'echo {{ steps.find.outputs.id }}' }\n",
    );
    assert_eq!(crate::codes(&parallel), ["not-upstream"]);
    let at_once = text.replace("  - id: use\n", "  - id: use\n    needs: []\n");
    assert_eq!(crate::codes(&at_once), ["not-upstream"]);
}

#[test]
fn parallel_on_a_step_that_is_not_a_group_is_an_error() {
    let text = plan("  - id: a\n    parallel: true\n    sleep: 1s\n");
    assert_eq!(
        diagnostics(&text),
        [
            "bad-parallel: `parallel` is for a group's steps, and step `a` is not a group (its action is `sleep`)"
        ]
    );
    let wrong_type =
        plan("  - id: g\n    parallel: yes\n    steps:\n      - id: a\n        sleep: 1s\n");
    assert_eq!(crate::codes(&wrong_type), ["wrong-type"]);
}

#[test]
fn a_cycle_through_the_step_above_is_reported_with_the_implicit_edge() {
    // b needs c, and c (without needs) runs after b: neither could start.
    let text = plan(
        "  - id: a\n    sleep: 1s\n  - id: b\n    needs: [c]\n    sleep: 1s\n  - id: c\n    sleep: 1s\n",
    );
    let checked = rollbook_plan::check(SourceFile::new("test.yaml", text.as_str()), None);
    let [d] = checked.diagnostics.as_slice() else {
        panic!("{:#?}", checked.diagnostics)
    };
    assert_eq!(d.code, "cycle");
    assert_eq!(d.message, "steps `b`, `c` need each other in a cycle");
    let labels: Vec<&str> = d.related.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        labels,
        [
            "`b` needs `c`",
            "`c` has no `needs`: it runs after `b`, the step above it"
        ]
    );
    assert!(d.help.as_deref().unwrap().contains("`needs: []`"), "{d:#?}");
}

#[test]
fn a_list_written_for_steps_that_started_at_once_is_pointed_out() {
    // `restore` says it needs the step above (as plans did when steps without `needs` all
    // started at once), and `notify` says nothing: it now waits for `restore`.
    let old = plan(
        "  - id: stop\n    sleep: 1s\n  - id: restore\n    needs: [stop]\n    sleep: 1s\n\
         \x20 - id: notify\n    sleep: 1s\n",
    );
    assert_eq!(
        diagnostics(&old),
        [
            "implicit-order: step `notify` has no `needs`, so it runs after `restore`, the step above it"
        ]
    );
    // Written for the order rule (no needs naming the step above), or in a parallel group:
    // nothing to say.
    let new = old.replace("    needs: [stop]\n", "");
    assert!(diagnostics(&new).is_empty(), "{:#?}", diagnostics(&new));
    let explicit = old.replace("  - id: notify\n", "  - id: notify\n    needs: []\n");
    assert!(diagnostics(&explicit).is_empty());
}

#[test]
fn the_outline_places_nodes_in_their_steps_and_lifts_edges_to_them() {
    use petgraph::graph::NodeIndex;
    use rollbook_plan::compile::Part;

    let text = plan(
        "  - id: prepare\n    sleep: 1s\n  - id: roll\n    for_each: [a, b]\n    steps:\n\
         \x20     - id: stop\n        sleep: 1s\n      - id: start\n        sleep: 1s\n\
         \x20 - id: checks\n    parallel: true\n    steps:\n      - id: x\n        sleep: 1s\n\
         \x20     - id: y\n        sleep: 1s\n",
    );
    let c = compile_with(&text, &[]);
    let phase = &c.phases[0];
    let outline = phase.outline();
    let n = |name: &str| {
        let i = names(phase).iter().position(|x| x == name).unwrap();
        Part::Node(NodeIndex::new(i))
    };
    let roll = Part::FanOut(0);
    let checks = Part::Group("checks".into());
    assert_eq!(
        outline.children(None),
        [n("prepare"), roll.clone(), checks.clone()]
    );
    assert_eq!(
        outline.children(Some(&roll)),
        [
            Part::Instance("roll[a]".into()),
            Part::Instance("roll[b]".into())
        ]
    );
    assert_eq!(
        outline.path(NodeIndex::new(2)),
        [
            roll.clone(),
            Part::Instance("roll[a]".into()),
            n("roll[a].start")
        ]
    );
    // 2 + 2x2 + 2 node edges, seen as: prepare → roll, roll → checks, and inside each
    // instance stop → start.
    assert_eq!(phase.graph.edge_count(), 8);
    let edges = outline.edges(phase);
    assert_eq!(edges.len(), 4, "{edges:?}");
    assert!(edges.contains(&(n("prepare"), roll.clone())));
    assert!(edges.contains(&(roll, checks)));
    assert!(edges.contains(&(n("roll[a].stop"), n("roll[a].start"))));
}
