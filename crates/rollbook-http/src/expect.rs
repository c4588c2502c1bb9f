//! `expect.status` and `expect.body_contains`, and the messages a failed expectation gives.
//!
//! `expect.jq` is not here on purpose: it may read `$params`, `$item` and `$steps`, which only
//! the executor has, so the executor checks it after the runner returns.

use rollbook_plan::model::StatusExpect;

/// How much of the body a failure message quotes.
const SNIPPET_CHARS: usize = 200;

/// What the response must look like.
pub(crate) struct Expect<'a> {
    pub status: Option<&'a StatusExpect>,
    pub body_contains: Option<&'a str>,
}

/// The parts of a response the expectations read.
pub(crate) struct Seen<'a> {
    pub status: u16,
    pub body: &'a str,
    pub truncated: bool,
}

impl Expect<'_> {
    /// `Err(message)` saying what was expected and what came back.
    pub(crate) fn check(&self, seen: &Seen<'_>) -> Result<(), String> {
        if !status_ok(self.status, seen.status) {
            let wanted = describe_status(self.status);
            return Err(match snippet(seen.body) {
                Some(s) => format!("expected status {wanted}, got {}: {s}", seen.status),
                None => format!("expected status {wanted}, got {} (empty body)", seen.status),
            });
        }
        if let Some(needle) = self.body_contains
            && !seen.body.contains(needle)
        {
            let got = snippet(seen.body).unwrap_or_else(|| "an empty body".into());
            let cut = if seen.truncated {
                " (only the first 10 MiB of the body were read)"
            } else {
                ""
            };
            return Err(format!(
                "expected the body to contain {needle:?}, got: {got}{cut}"
            ));
        }
        Ok(())
    }
}

/// Without `expect.status`, any 2xx passes.
fn status_ok(expect: Option<&StatusExpect>, status: u16) -> bool {
    match expect {
        None => (200..300).contains(&status),
        Some(StatusExpect::Code(c)) => *c == status,
        Some(StatusExpect::Codes(cs)) => cs.contains(&status),
        Some(StatusExpect::Class(class)) => class_of(class).is_some_and(|c| status / 100 == c),
    }
}

/// `"2xx"` → 2. Validation only lets `1xx` to `5xx` through.
fn class_of(class: &str) -> Option<u16> {
    let digit = class.strip_suffix("xx")?;
    digit.parse().ok()
}

fn describe_status(expect: Option<&StatusExpect>) -> String {
    match expect {
        None => "2xx".into(),
        Some(StatusExpect::Code(c)) => c.to_string(),
        Some(StatusExpect::Codes(cs)) => match cs.as_slice() {
            [] => "(none)".into(),
            [one] => one.to_string(),
            [init @ .., last] => {
                let init: Vec<String> = init.iter().map(u16::to_string).collect();
                format!("{} or {last}", init.join(", "))
            }
        },
        Some(StatusExpect::Class(class)) => class.clone(),
    }
}

/// The start of a body on one line, for a message: line breaks become spaces, and a cut
/// is marked with `...`. `None` for an empty (or blank) body.
pub(crate) fn snippet(body: &str) -> Option<String> {
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return None;
    }
    let mut out: String = trimmed
        .chars()
        .take(SNIPPET_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if trimmed.chars().nth(SNIPPET_CHARS).is_some() {
        out.push_str("...");
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(status: u16, body: &str) -> Seen<'_> {
        Seen {
            status,
            body,
            truncated: false,
        }
    }

    #[test]
    fn status_defaults_to_any_2xx() {
        let e = Expect {
            status: None,
            body_contains: None,
        };
        assert!(e.check(&seen(204, "")).is_ok());
        assert_eq!(
            e.check(&seen(301, "moved")).unwrap_err(),
            "expected status 2xx, got 301: moved"
        );
    }

    #[test]
    fn a_list_of_codes_is_named_in_the_message() {
        let codes = StatusExpect::Codes(vec![200, 201, 204]);
        let e = Expect {
            status: Some(&codes),
            body_contains: None,
        };
        assert!(e.check(&seen(201, "")).is_ok());
        assert_eq!(
            e.check(&seen(503, "")).unwrap_err(),
            "expected status 200, 201 or 204, got 503 (empty body)"
        );
    }

    #[test]
    fn a_class_matches_its_hundred() {
        let class = StatusExpect::Class("4xx".into());
        let e = Expect {
            status: Some(&class),
            body_contains: None,
        };
        assert!(e.check(&seen(404, "")).is_ok());
        assert!(e.check(&seen(500, "")).is_err());
    }

    #[test]
    fn long_bodies_are_cut_and_put_on_one_line() {
        let body = format!("line one\nline two {}", "x".repeat(500));
        let s = snippet(&body).unwrap();
        assert!(s.starts_with("line one line two xxx"), "{s}");
        assert_eq!(s.chars().count(), SNIPPET_CHARS + 3);
        assert!(s.ends_with("..."));
    }
}
