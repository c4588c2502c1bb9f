//! Templates and jq: parsing, the names they read, rendering and quoting.

use rollbook_plan::jq;
use rollbook_plan::template::{self, Escape, Renderer};
use serde_json::json;

#[test]
fn bracket_indexing_is_sugar_for_lookup() {
    assert_eq!(
        template::desugar("{{ inventory[params.region] }}"),
        "{{ lookup inventory params.region }}"
    );
    assert_eq!(
        template::desugar("{{#each inventory[params.region]}}{{this}},{{/each}}"),
        "{{#each (lookup inventory params.region)}}{{this}},{{/each}}"
    );
    assert_eq!(template::desugar("x {{ a.[0] }} y"), "x {{ a.[0] }} y");
    let ctx = json!({"inventory": {"eu": ["e1", "e2"]}, "params": {"region": "eu"}});
    let r = Renderer::new();
    let listed = r.render(
        "{{#each inventory[params.region]}}{{this}},{{/each}}",
        &ctx,
        Escape::None,
    );
    assert_eq!(listed.unwrap(), "e1,e2,");
    assert_eq!(
        template::eval_single("{{ inventory[params.region] }}", &ctx).unwrap(),
        Some(json!(["e1", "e2"]))
    );
}

#[test]
fn references_list_every_name_read() {
    let t = template::parse("{{ params.a }} {{#if secrets.b}}{{ steps.c.outputs.d }}{{/if}} {{{ item }}} {{#each params.list}}{{ this }}{{ other }}{{/each}}").unwrap();
    let paths: Vec<String> = template::references(&t)
        .iter()
        .map(|r| r.path.join("."))
        .collect();
    assert_eq!(
        paths,
        [
            "params.a",
            "secrets.b",
            "steps.c.outputs.d",
            "item",
            "params.list"
        ]
    );
}

#[test]
fn values_in_shell_commands_become_variables_and_the_dry_run_shows_them_quoted() {
    let r = Renderer::new();
    let ctx =
        json!({"params": {"v": "x; rm -rf / 'quoted' $(touch /tmp/owned)", "plain": "us-east-1"}});
    let render = |src: &str| {
        rollbook_plan::shell::build(&r.render(src, &ctx, Escape::Shell).unwrap()).unwrap()
    };
    let out = render("echo {{ params.v }} {{ params.plain }}");
    assert_eq!(out.code, r#"echo "${ROLLBOOK_V1}" "${ROLLBOOK_V2}""#);
    assert_eq!(
        out.values,
        [
            (
                "ROLLBOOK_V1".to_string(),
                "x; rm -rf / 'quoted' $(touch /tmp/owned)".to_string()
            ),
            ("ROLLBOOK_V2".to_string(), "us-east-1".to_string()),
        ]
    );
    assert_eq!(
        out.shown,
        r#"echo 'x; rm -rf / '\''quoted'\'' $(touch /tmp/owned)' us-east-1"#
    );
    // `{{{ }}}` splices text: the one way a value becomes code, and the dry run shows it.
    let raw = render("echo {{{ params.plain }}}");
    assert_eq!(
        (raw.code.as_str(), raw.shown.as_str()),
        ("echo us-east-1", "echo us-east-1")
    );
    assert!(raw.values.is_empty());
    assert_eq!(template::shell_quote(""), "''");
}

#[test]
fn rendering_is_strict_about_missing_names() {
    let r = Renderer::new();
    let err = r
        .render("{{ params.nope }}", &json!({"params": {}}), Escape::None)
        .unwrap_err();
    assert!(err.contains("params.nope"), "{err}");
}

#[test]
fn urls_are_redacted() {
    assert_eq!(
        template::redact_url("postgres://app:hunter2@db:5432/x?sslmode=require"),
        "postgres://app:***@db:5432/x?sslmode=require"
    );
    assert_eq!(
        template::redact_url("mysql://root@127.0.0.1/x"),
        "mysql://root@127.0.0.1/x"
    );
    assert_eq!(
        template::redact_url("sqlite://rollbook.db"),
        "sqlite://rollbook.db"
    );
}

#[test]
fn jq_conditions_see_the_result_and_the_context() {
    let p = jq::compile(".json.active_instances == 0 and $item == \"w1\"").unwrap();
    let null = json!(null);
    let item = json!("w1");
    let result = json!({"json": {"active_instances": 0}});
    assert!(
        p.holds(&result, [&null, &item, &null, &null, &null])
            .unwrap()
    );
    assert!(
        !p.holds(
            &json!({"json": {"active_instances": 3}}),
            [&null, &item, &null, &null, &null]
        )
        .unwrap()
    );
    let capture = jq::compile("[.json[] | select(.hostname == $item) | .id] | first").unwrap();
    let nodes = json!({"json": [{"hostname": "w0", "id": 7}, {"hostname": "w1", "id": 9}]});
    assert_eq!(
        capture
            .run(&nodes, [&null, &item, &null, &null, &null])
            .unwrap(),
        [json!(9)]
    );
    let steps = json!({"find": {"outputs": {"node_id": 9}}});
    let upstream = jq::compile("$steps.find.outputs.node_id != null").unwrap();
    assert!(
        upstream
            .holds(&null, [&null, &null, &null, &steps, &null])
            .unwrap()
    );
}

#[test]
fn jq_errors_say_where() {
    let e = jq::compile(".a | selcet(.b)").unwrap_err();
    assert_eq!(e.message, "undefined filter `selcet`");
    assert_eq!(e.offset, Some(5));
    assert!(jq::compile(".a ==").is_err());
    assert!(
        jq::compile("$nope")
            .unwrap_err()
            .message
            .contains("undefined variable")
    );
}

#[test]
fn jq_step_references_are_found() {
    let refs = jq::step_references(r#"$steps.find.outputs.id == $steps["wait-1"].outputs.n"#);
    let got: Vec<(String, Option<String>)> = refs.into_iter().map(|(a, b, _)| (a, b)).collect();
    assert_eq!(
        got,
        [
            ("find".into(), Some("id".into())),
            ("wait-1".into(), Some("n".into()))
        ]
    );
}

#[test]
fn many_expressions_are_checked_together_and_each_error_lands_on_its_own() {
    let errors = jq::check_all(&[".a", ".b | selcet(.)", "$item == 1", ".c ==", "nope_fn(1)"]);
    assert!(errors[0].is_none());
    assert_eq!(
        errors[1].as_ref().unwrap().message,
        "undefined filter `selcet`"
    );
    assert_eq!(errors[1].as_ref().unwrap().offset, Some(5));
    assert!(errors[2].is_none());
    assert!(errors[3].as_ref().unwrap().message.starts_with("expected"));
    assert_eq!(
        errors[4].as_ref().unwrap().message,
        "undefined filter `nope_fn`"
    );
    assert_eq!(errors[4].as_ref().unwrap().offset, Some(0));
}

#[test]
fn step_ids_are_found_without_a_full_parse() {
    assert_eq!(
        template::step_ids(
            "echo {{ steps.find.outputs.id }} {{#if steps.wait-1.outputs.ok}}x{{/if}} steps.not.this"
        ),
        ["find", "wait-1"]
    );
    assert!(template::step_ids("{{ item.steps.x }} {{ params.steps }}").is_empty());
    assert_eq!(
        template::step_ids("{{ json (lookup steps.a.outputs params.k) }}"),
        ["a"]
    );
}

/// Every spelling of an unescaped expression splices code: `validate` says so, and never calls
/// the quotes around it needless (they are the splice's own quoting).
#[test]
fn every_spelling_of_a_raw_splice_is_warned_about_and_its_quotes_kept() {
    for spliced in [
        "{{{ params.x }}}",
        "{{& params.x }}",
        "{{ &params.x }}",
        "{{ {params.x} }}",
    ] {
        let plan = format!(
            "version: 1\nname: t\nparams:\n  x: {{ type: string, default: a }}\nsteps:\n  - id: s\n    shell: {{ run: 'echo \"{spliced}\"' }}\n"
        );
        let codes = crate::codes(&plan);
        assert!(codes.contains(&"raw-splice"), "{spliced}: {codes:?}");
        assert!(!codes.contains(&"needless-quotes"), "{spliced}: {codes:?}");
    }
}

/// A name indexed with `[...]` right after a character of more than one byte (found by
/// fuzzing: the desugaring cut that character in two and panicked). The path is the run of
/// path characters before the `[`.
#[test]
fn indexing_after_a_multi_byte_character_is_desugared_without_panic() {
    assert_eq!(
        template::desugar("{{ json é[params.k] }}"),
        "{{ json é[params.k] }}"
    );
    assert_eq!(
        template::desugar("{{ json üinventory[params.region] }}"),
        "{{ json ü(lookup inventory params.region) }}"
    );
    let plan = "version: 1\nname: t\nsteps:\n  - id: s\n    shell: { run: 'echo {{ params.naïve[params.k] }}' }\n";
    assert_eq!(crate::codes(plan), ["bad-template"]);
}
