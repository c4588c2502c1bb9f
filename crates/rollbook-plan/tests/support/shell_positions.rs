//! The positions a template value can stand in a shell command, shared by the tests that prove
//! a value reaches the shell as data in each of them, locally (rollbook-exec) and over SSH
//! (rollbook-ssh). Each command writes what it received to the file named by `$OUT`; a value
//! that ran as code would create the file named by `$CANARY`.

use proptest::prelude::*;
use rollbook_plan::shell::ShellText;
use rollbook_plan::template::{Escape, Renderer};
use serde_json::json;

/// One position: a `run` (or `script`) template reading `params.x`, and what it writes to
/// `$OUT` for a value.
pub struct ShellPosition {
    pub name: &'static str,
    pub script: bool,
    pub template: &'static str,
    pub expect: fn(&str) -> String,
}

fn same(v: &str) -> String {
    v.to_string()
}

fn line(v: &str) -> String {
    format!("{v}\n")
}

pub const POSITIONS: &[ShellPosition] = &[
    ShellPosition {
        name: "bare word",
        script: false,
        template: r#"printf %s {{ params.x }} > "$OUT""#,
        expect: same,
    },
    ShellPosition {
        name: "double quotes",
        script: false,
        template: r#"printf %s "{{ params.x }}" > "$OUT""#,
        expect: same,
    },
    ShellPosition {
        name: "inside double-quoted text",
        script: false,
        template: r#"printf %s "<{{ params.x }}>" > "$OUT""#,
        expect: |v| format!("<{v}>"),
    },
    ShellPosition {
        name: "single quotes",
        script: false,
        template: r#"printf %s '{{ params.x }}' > "$OUT""#,
        expect: same,
    },
    ShellPosition {
        name: "inside single-quoted text",
        script: false,
        template: r#"printf %s 'a {{ params.x }} b' > "$OUT""#,
        expect: |v| format!("a {v} b"),
    },
    ShellPosition {
        name: "part of a word",
        script: false,
        template: r#"printf %s pre{{ params.x }}post > "$OUT""#,
        expect: |v| format!("pre{v}post"),
    },
    ShellPosition {
        name: "heredoc",
        script: false,
        template: "cat > \"$OUT\" <<EOF\n{{ params.x }}\nEOF",
        expect: line,
    },
    ShellPosition {
        name: "quoted heredoc",
        script: false,
        template: "cat > \"$OUT\" <<'EOF'\n{{ params.x }}\nEOF",
        expect: line,
    },
    ShellPosition {
        name: "heredoc read by sh",
        script: false,
        template: "sh <<'EOF'\nprintf %s {{ params.x }} > \"$OUT\"\nEOF",
        expect: same,
    },
    ShellPosition {
        name: "sh -c '…'",
        script: false,
        template: r#"sh -c 'printf %s {{ params.x }} > "$OUT"'"#,
        expect: same,
    },
    ShellPosition {
        name: "double quotes in sh -c '…'",
        script: false,
        template: r#"sh -c 'printf %s "v={{ params.x }}" > "$OUT"'"#,
        expect: |v| format!("v={v}"),
    },
    ShellPosition {
        name: "sh -c \"…\"",
        script: false,
        template: r#"sh -c "printf %s {{ params.x }} > \"\$OUT\"""#,
        expect: same,
    },
    ShellPosition {
        name: "sh -c in sh -c",
        script: false,
        template: r#"sh -c 'sh -c "printf %s {{ params.x }} > \"\$OUT\""'"#,
        expect: same,
    },
    ShellPosition {
        name: "eval",
        script: false,
        template: r#"eval "printf %s {{ params.x }} > \"\$OUT\"""#,
        expect: same,
    },
    ShellPosition {
        name: "command substitution",
        script: false,
        template: r#"printf %s "$(printf %s {{ params.x }})" > "$OUT""#,
        expect: |v| v.trim_end_matches('\n').to_string(),
    },
    ShellPosition {
        name: "script, bare word",
        script: true,
        template: "set -e\nprintf %s {{ params.x }} > \"$OUT\"\n",
        expect: same,
    },
    ShellPosition {
        name: "script, heredoc",
        script: true,
        template: "cat > \"$OUT\" <<EOF\n{{ params.x }}\nEOF\n",
        expect: line,
    },
    ShellPosition {
        name: "script, quoted heredoc with tabs",
        script: true,
        template: "if true; then\n\tcat > \"$OUT\" <<-'EOF'\n\t{{ params.x }}\n\tEOF\nfi\n",
        expect: line,
    },
];

/// Pieces of hostile values. Each one that ran as code would create `$CANARY`, end a quote
/// or a heredoc early, or be read as an option.
pub const HOSTILE: &[&str] = &[
    "$(touch \"$CANARY\")",
    "`touch \"$CANARY\"`",
    "'; touch \"$CANARY\"; '",
    "\"; touch \"$CANARY\"; \"",
    "\\\"; touch \"$CANARY\"; \\\"",
    "\nEOF\ntouch \"$CANARY\"\n",
    "\n\tEOF\ntouch \"$CANARY\"\n",
    "EOF",
    "'\\''",
    "${CANARY}",
    "$CANARY",
    "*",
    "-n",
    "--",
    " ",
    "\t",
    "\n",
    "\\",
    "'",
    "\"",
    "#",
    ";",
    "|",
    "&",
    "~",
    "!",
    "%s",
    "\r",
];

/// Arbitrary text without NUL, made mostly of hostile pieces.
pub fn value() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => proptest::sample::select(HOSTILE).prop_map(str::to_string),
        1 => "[^\u{0}]{0,6}",
    ];
    proptest::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
}

/// Runs every position with `value` through `received` (what the command wrote to `$OUT`)
/// and checks that it got exactly the value and that `canary` (`$CANARY`) was not created.
pub fn check_every_position(
    value: &str,
    canary: &std::path::Path,
    mut received: impl FnMut(&ShellPosition, &str) -> Vec<u8>,
) -> Result<(), TestCaseError> {
    for p in POSITIONS {
        let got = received(p, value);
        prop_assert_eq!(
            String::from_utf8_lossy(&got),
            (p.expect)(value),
            "{}: the command received other bytes than the value {:?}",
            p.name,
            value
        );
        prop_assert!(
            !canary.exists(),
            "{}: the value {:?} ran as code",
            p.name,
            value
        );
    }
    Ok(())
}

/// `template` rendered with `params.x` = `value`, as the runners receive it.
pub fn render(template: &str, value: &str) -> ShellText {
    let text = Renderer::new()
        .render(
            template,
            &json!({ "params": { "x": value } }),
            Escape::Shell,
        )
        .expect("the template renders");
    rollbook_plan::shell::build(&text).expect("no NUL in the value")
}
