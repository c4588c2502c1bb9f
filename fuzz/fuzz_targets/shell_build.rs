//! Shell rendering: a `run` template rendered with two values and turned into shell code. The
//! input is the template, `params.x` and `params.y`, separated by DEL (0x7f) characters.
//!
//! Every value given to the template ends with a sentinel character the template does not
//! hold. The oracle, without running a shell:
//!
//! - rendering and building never panic, and building fails only for a value holding NUL;
//! - the markers that carry values through the template engine never reach the code or the
//!   dry run's text (unless a value holds their characters itself);
//! - every variable the code needs is referred to in it, under rollbook's prefix;
//! - a value used in the template is in the dry run's text (quoted, but there);
//! - when every value stands in the step's own shell (not in text handed to another shell,
//!   not in a quoted heredoc), the code holds no value: only references to variables.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rollbook_plan::shell::{Position, VARIABLE_PREFIX, build, mark_value, placements};
use rollbook_plan::template::{Escape, Renderer};
use serde_json::json;

/// Ends every value: a private-use character, never special to a shell.
const SENTINEL: char = '\u{F8FF}';
/// What marks a value in rendered text (see `rollbook_plan::shell::mark_value`).
const MARKERS: [char; 2] = ['\u{E000}', '\u{E001}'];

/// Whether a template writes values unescaped or repeats or hides parts of itself (blocks,
/// comments, partials, escaped braces): its own placements then say nothing about where the
/// values end up. Handlebars allows whitespace and a `~` before the sigil.
fn not_plain(template: &str) -> bool {
    template.contains("\\{{")
        || template.match_indices("{{").any(|(at, _)| {
            let inner = template[at + 2..]
                .trim_start_matches(|c: char| c == '~' || c.is_ascii_whitespace());
            inner.starts_with(['{', '&', '#', '^', '/', '>', '!', '*']) || inner.starts_with("else")
        })
}

fn renderer() -> &'static Renderer {
    static RENDERER: std::sync::OnceLock<Renderer> = std::sync::OnceLock::new();
    RENDERER.get_or_init(Renderer::new)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\u{7f}');
    let template = parts.next().unwrap_or_default();
    let x = format!("{}{SENTINEL}", parts.next().unwrap_or_default());
    let y = format!("{}{SENTINEL}", parts.next().unwrap_or_default());
    if template.contains(SENTINEL) {
        return;
    }
    let _ = placements(template);
    let ctx = json!({ "params": { "x": x, "y": y } });
    let Ok(rendered) = renderer().render(template, &ctx, Escape::Shell) else {
        return;
    };
    if template.contains(MARKERS) {
        // Not plan text (the loader's templates never hold the markers): only no panic.
        let _ = build(&rendered);
        return;
    }
    let shell = match build(&rendered) {
        Ok(shell) => shell,
        Err(e) => {
            assert!(x.contains('\0') || y.contains('\0'), "{e}");
            return;
        }
    };
    // A value may hold the markers' characters itself (they are only private-use code
    // points): written as it is, it brings them along.
    if !x.contains(MARKERS) && !y.contains(MARKERS) {
        assert!(!shell.code.contains(MARKERS), "a marker in the code");
        assert!(!shell.shown.contains(MARKERS), "a marker in the dry run");
    }
    for (name, _) in &shell.values {
        assert!(name.starts_with(VARIABLE_PREFIX), "{name}");
        assert!(shell.code.contains(name.as_str()), "{name} is not used");
    }
    let used = rendered.contains(&mark_value(&x)) || rendered.contains(&mark_value(&y));
    if used {
        assert!(
            shell.shown.contains(SENTINEL),
            "a value is missing from the dry run"
        );
    }
    let plain = !not_plain(template);
    let own_shell_only = placements(template)
        .iter()
        .all(|(_, p)| p.depth == 0 && p.position != Position::Heredoc { quoted: true });
    if plain && own_shell_only {
        assert!(
            !shell.code.contains(SENTINEL),
            "a value written into the code itself: {:?}",
            shell.code
        );
    }
});
