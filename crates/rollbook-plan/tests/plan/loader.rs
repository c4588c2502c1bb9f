//! The loader never panics, never hangs and never grows without bound, whatever it is fed.

use proptest::prelude::*;
use rollbook_plan::SourceFile;
use rollbook_plan::yaml::{self, Limits};

fn check(text: &str) {
    let _ = rollbook_plan::check(SourceFile::new("fuzz.yaml", text), Some("fuzz"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_yaml_like_text_never_panics(text in "([a-z_{}\\[\\]:,&*!|>'\"#$. -]|\n  |\n- ){0,200}") {
        check(&text);
    }

    #[test]
    fn plan_shaped_text_with_random_values_never_panics(
        key in "[a-z_]{1,12}",
        value in "[ -~]{0,40}",
        expr in "[ -~]{0,40}",
    ) {
        let text = format!(
            "version: 1\nname: fuzz\nsteps:\n  - id: a\n    {key}: {value:?}\n    until: {expr:?}\n    shell: {{ run: {value:?} }}\n"
        );
        check(&text);
    }
}

#[test]
fn an_alias_bomb_is_refused_within_the_node_budget() {
    let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (prev, next) in ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
        .windows(2)
        .map(|w| (w[0], w[1]))
    {
        text.push_str(&format!(
            "{next}: &{next} [{}]\n",
            vec![format!("*{prev}"); 10].join(", ")
        ));
    }
    let err = yaml::parse(&text, &Limits::default()).unwrap_err();
    assert!(
        err.message.contains("expands to more than"),
        "{}",
        err.message
    );
}

#[test]
fn deep_nesting_is_refused() {
    let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let err = yaml::parse(&text, &Limits::default()).unwrap_err();
    assert!(
        err.message.contains("nests deeper") || err.message.contains("recursion limit"),
        "{}",
        err.message
    );
    let text = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let err = yaml::parse(&text, &Limits::default()).unwrap_err();
    assert!(
        err.message.contains("nests deeper than 64"),
        "{}",
        err.message
    );
}

#[test]
fn a_huge_scalar_is_refused() {
    let text = format!("name: \"{}\"\n", "x".repeat(2 << 20));
    let err = yaml::parse(&text, &Limits::default()).unwrap_err();
    assert!(err.message.contains("bytes allowed"), "{}", err.message);
}

#[test]
fn a_huge_file_is_refused_before_parsing() {
    let text = "# padding\n".repeat(500_000);
    let err = yaml::parse(&text, &Limits::default()).unwrap_err();
    assert!(err.message.contains("more than the"), "{}", err.message);
}

#[test]
fn spans_are_byte_offsets_even_after_non_ascii_text() {
    let text = "# ünïcödé → comment\nversion: 1\nname: x\nsteps:\n  - id: a\n    slep: 1s\n";
    let checked = rollbook_plan::check(SourceFile::new("x.yaml", text), Some("x"));
    let d = checked
        .diagnostics
        .iter()
        .find(|d| d.code == "unknown-key")
        .unwrap();
    assert_eq!(&text[d.span.offset..d.span.offset + d.span.len], "slep");
    assert_eq!(checked.file.line_col(d.span.offset), (6, 5));
}

#[test]
fn quoted_scalars_stay_text_and_plain_ones_are_typed() {
    let root = yaml::parse(
        "a: 1\nb: \"1\"\nc: true\nd: ~\ne: 1.5\n",
        &Limits::default(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        root.to_json(),
        serde_json::json!({"a": 1, "b": "1", "c": true, "d": null, "e": 1.5})
    );
}

#[test]
fn every_problem_of_a_plan_is_reported_at_once() {
    let codes = crate::codes(
        "version: 1\nname: x\nsteps:\n  - id: a\n    slep: 1s\n  - id: b\n    needs: [c]\n    sleep: 1m\n  - id: a\n    sleep: never\n",
    );
    // Sorted by place: step `a` has no action (its `slep` is not a key), and so on down.
    assert_eq!(
        codes,
        [
            "no-action",
            "unknown-key",
            "unknown-need",
            "duplicate-id",
            "bad-duration"
        ]
    );
}

/// A plan shares blocks the usual YAML ways: anchors under top-level `x-…` keys, merged with
/// `<<`. A key written beside the merge wins; the first of two merged mappings wins.
#[test]
fn merge_keys_and_x_keys_share_blocks() {
    let plan = crate::plan(
        "version: 1\nname: shared\n\
         x-ssh: &ssh { user: deploy, port: 2222, sudo: true }\n\
         x-more: &more { port: 3333, connect_timeout: 5s }\n\
         steps:\n\
         \x20 - id: a\n    ssh: { <<: *ssh, host: web-1, run: 'true' }\n\
         \x20 - id: b\n    ssh: { <<: [*ssh, *more], host: web-2, sudo: false, run: 'true' }\n",
    );
    let ssh = |i: usize| &plan.steps[i].ssh.as_ref().unwrap().settings;
    assert_eq!(ssh(0).user.as_ref().unwrap().value, "deploy");
    assert_eq!(ssh(0).port.as_ref().unwrap().value, 2222);
    assert_eq!(
        ssh(1).port.as_ref().unwrap().value,
        2222,
        "the first merge wins"
    );
    assert!(
        ssh(1).connect_timeout.is_some(),
        "the second brings what the first lacks"
    );
    assert!(
        !ssh(1).sudo.as_ref().unwrap().value,
        "a written key wins over a merged one"
    );
}

/// A mistake in a merged block is reported where the block is written, not at the `<<`.
#[test]
fn a_mistake_in_a_merged_block_points_at_the_anchor() {
    let text = "version: 1\nname: shared\n\
                x-ssh: &ssh { user: deploy, prot: 2222 }\n\
                steps:\n\
                \x20 - id: a\n    ssh: { <<: *ssh, host: web-1, run: 'true' }\n";
    let checked = rollbook_plan::check(SourceFile::new("t.yaml", text), None);
    let d = checked
        .diagnostics
        .iter()
        .find(|d| d.code == "unknown-key")
        .unwrap_or_else(|| panic!("{:#?}", checked.diagnostics));
    assert_eq!(checked.file.line_col(d.span.offset), (3, 29));
    // A merge of something that is not a mapping is refused, at the value.
    let bad = "version: 1\nname: b\nsteps:\n  - id: a\n    ssh: { <<: [1, 2], host: h, run: x }\n";
    assert_eq!(crate::codes(bad), ["yaml"]);
    // `x-` keys are the plan's only free keys, and only at its top.
    assert_eq!(
        crate::codes("version: 1\nname: b\nsteps:\n  - id: a\n    x-note: hi\n    sleep: 1s\n"),
        ["unknown-key"]
    );
}
