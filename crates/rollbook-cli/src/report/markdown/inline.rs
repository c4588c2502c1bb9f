//! Markdown text that cannot break the document, and times as the report shows them.

use std::time::Duration;

use rollbook_exec::Timestamp;

use crate::report::utc;
use crate::runs::short;

/// A time the report shows: a journal [`Timestamp`], or a time as `run.json` writes it.
pub(super) trait Moment {
    /// `2026-11-25T13:32:14.149Z`, or `None` when it is not a time.
    fn canonical(&self) -> Option<String>;
    /// As written, for a time that does not read.
    fn raw(&self) -> String;
}

impl Moment for Timestamp {
    fn canonical(&self) -> Option<String> {
        Some(self.to_string())
    }
    fn raw(&self) -> String {
        self.to_string()
    }
}

impl Moment for str {
    fn canonical(&self) -> Option<String> {
        utc(self)
    }
    fn raw(&self) -> String {
        self.to_string()
    }
}

impl Moment for String {
    fn canonical(&self) -> Option<String> {
        utc(self)
    }
    fn raw(&self) -> String {
        self.clone()
    }
}

/// A duration in milliseconds as `show` prints one: `340ms`, `4s`, `1m12s`.
pub(super) fn took(ms: u64) -> String {
    short(Duration::from_millis(ms))
}

/// `2026-11-25`, the day of a time.
pub(super) fn day_of(at: &(impl Moment + ?Sized)) -> String {
    at.canonical().map_or_else(
        || at.raw().chars().take(10).collect(),
        |t| t[..10].to_string(),
    )
}

/// `13:32:14`, with the day in front when it is not `day`.
pub(super) fn clock(at: &(impl Moment + ?Sized), day: &str) -> String {
    match at.canonical() {
        Some(t) if &t[..10] == day => t[11..19].to_string(),
        Some(t) => format!("{} {}", &t[..10], &t[11..19]),
        None => at.raw(),
    }
}

/// `2026-11-25 13:32:14 UTC`.
pub(super) fn when(at: &(impl Moment + ?Sized)) -> String {
    at.canonical()
        .map_or(at.raw(), |t| format!("{} {} UTC", &t[..10], &t[11..19]))
}

/// Free text (reasons, messages): on one line, with what would turn into HTML or break a
/// table escaped (in a table or not: an escaped `|` reads as `|` everywhere). Other Markdown
/// is left alone, so backticks in messages stay code.
pub(super) fn text(s: &str) -> String {
    crate::terminal::escape(&s.replace('\n', " "))
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
}

/// An inline code span that holds any text: a longer backtick fence when the text has
/// backticks, pipes escaped for tables.
pub(super) fn code(s: &str) -> String {
    let s = crate::terminal::escape(&s.replace('\n', " ")).replace('|', "\\|");
    let longest = longest_run(&s, '`');
    let fence = "`".repeat(longest + 1);
    if longest == 0 {
        format!("{fence}{s}{fence}")
    } else {
        format!("{fence} {s} {fence}")
    }
}

/// `a`, `a and b`, `a, b and c`.
pub(super) fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

pub(super) fn code_list(items: &[String]) -> String {
    items.iter().map(|i| code(i)).collect::<Vec<_>>().join(", ")
}

/// A code block fence longer than any run of backticks in `body`.
pub(super) fn fence_for(body: &str) -> String {
    "`".repeat(longest_run(body, '`').max(2) + 1)
}

fn longest_run(s: &str, c: char) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for ch in s.chars() {
        run = if ch == c { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_hold_backticks_and_pipes() {
        assert_eq!(code("a.b"), "`a.b`");
        assert_eq!(code("say `hi`"), "`` say `hi` ``");
        assert_eq!(code("a|b"), "`a\\|b`");
        assert_eq!(fence_for("no ticks"), "```");
        assert_eq!(fence_for("```inner```"), "````");
    }
}
