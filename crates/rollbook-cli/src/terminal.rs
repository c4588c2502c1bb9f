//! Text from outside (a `--reason`, params, a command's output, a journal's contents) on a
//! terminal: control characters would move the cursor, recolor or retitle the screen, or
//! forge lines, so they are shown as visible escapes. The journal keeps the real bytes.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every control character but tab written as an escape: `\n`, `\r`, `\x1b`,
/// `\u{9b}`. Other text is left as it is.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `text` with each line escaped, its line breaks kept: for a document whose fields are
/// already on one line each, a last guard that nothing from outside reaches the terminal raw.
pub fn escape_lines(text: &str) -> String {
    text.split('\n').map(escape).collect::<Vec<_>>().join("\n")
}

fn needs_escape(c: char) -> bool {
    c.is_control() && c != '\t'
}

/// A duration as people write it in plans: seconds up to two minutes (`90s`, `1.5s`, `250ms`),
/// then minutes and seconds (`7m10s`), then hours and minutes (`1h5m`).
pub fn duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s == 0 && d.subsec_millis() > 0 {
        return format!("{}ms", d.as_millis());
    }
    if d.subsec_millis() > 0 && s < 120 {
        return format!("{}s", d.as_secs_f64());
    }
    match s {
        0..120 => format!("{s}s"),
        120..3600 if s.is_multiple_of(60) => format!("{}m", s / 60),
        120..3600 => format!("{}m{}s", s / 60, s % 60),
        _ if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn control_characters_become_visible() {
        assert_eq!(
            escape("a\x1b[31mb\nc\rd\u{9b}e\tf"),
            "a\\x1b[31mb\\nc\\rd\\u{9b}e\tf"
        );
        assert_eq!(escape("plain – text"), "plain – text");
    }
}
