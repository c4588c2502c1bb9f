//! Secrets never leave the process: every line of output, log, event and journal goes
//! through a [`Redactor`] that replaces each secret with `***`, in every form it is known to
//! take: the whole value (across line breaks), each of its lines, and its base64, URL-encoded
//! and JSON-escaped forms ([`forms`]). Output is redacted as a stream ([`StreamRedactor`]), so
//! a secret split across writes or lines is caught too.

mod forms;
mod stream;

use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use serde_json::Value;

pub use forms::MIN_LEN;
pub use stream::StreamRedactor;

use crate::event::Event;

/// What a secret's value is replaced with.
pub const MASK: &str = "***";

/// The shortest start of a secret's form masked at the end of a text that was cut off: a
/// few bytes more than [`MIN_LEN`], so that ordinary words that begin a form (`https`) stay.
pub const CUT_MIN: usize = 8;

/// Replaces known secret values, in all their forms. Cheap to clone.
#[derive(Clone, Default)]
pub struct Redactor {
    /// `None` when there is nothing to hide.
    patterns: Option<Arc<Patterns>>,
}

/// Every form of every secret, searched for at once.
struct Patterns {
    matcher: AhoCorasick,
    /// The forms in byte order, to tell whether text could be the start of one.
    sorted: Vec<Box<[u8]>>,
    /// The first two bytes of every form (a 64 Ki-bit set), to rule most positions out fast.
    starts: Vec<u64>,
    longest: usize,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the patterns themselves: they are the secrets.
        let forms = self.patterns.as_ref().map_or(0, |p| p.sorted.len());
        write!(f, "Redactor({forms} forms)")
    }
}

/// Collects the secrets, and the user names they are combined with, of a [`Redactor`]. Not
/// `Debug`: it holds the secrets.
#[derive(Default)]
pub struct RedactorBuilder {
    forms: Vec<String>,
}

impl RedactorBuilder {
    /// A secret: masked with its lines and its encoded forms. Values shorter than
    /// [`MIN_LEN`] bytes are not masked.
    pub fn secret(mut self, value: &str) -> Self {
        if value.trim().len() >= MIN_LEN {
            self.forms.extend(forms::of_secret(value));
        }
        self
    }

    /// A secret sent as `user:value` in base64 (HTTP basic auth, a URL's user info): that
    /// whole encoding is masked too, not only the part of it that is the secret's own.
    pub fn login(mut self, user: &str, value: &str) -> Self {
        if value.trim().len() >= MIN_LEN {
            self.forms.extend(forms::of_login(user, value));
        }
        self
    }

    /// The redactor.
    pub fn build(mut self) -> Redactor {
        self.forms.sort();
        self.forms.dedup();
        if self.forms.is_empty() {
            return Redactor::default();
        }
        let matcher = matcher(&self.forms);
        let mut starts = vec![0u64; 1024];
        for form in &self.forms {
            let pair = pair_index(form.as_bytes());
            starts[pair / 64] |= 1 << (pair % 64);
        }
        let longest = self.forms.iter().map(String::len).max().unwrap_or(0);
        let sorted = self
            .forms
            .into_iter()
            .map(|f| f.into_bytes().into_boxed_slice())
            .collect();
        Redactor {
            patterns: Some(Arc::new(Patterns {
                matcher,
                sorted,
                starts,
                longest,
            })),
        }
    }
}

/// Forms up to this many bytes in all are searched with a DFA (built in milliseconds, a few
/// MiB); more (several keys of kilobytes) with an NFA, which builds at once.
const DFA_BUDGET: usize = 32 * 1024;

/// A DFA searches output about three times as fast as the NFAs.
fn matcher(forms: &[String]) -> AhoCorasick {
    let mut builder = AhoCorasick::builder();
    builder.match_kind(MatchKind::Standard);
    let total: usize = forms.iter().map(String::len).sum();
    let dfa = (total <= DFA_BUDGET)
        .then(|| {
            builder
                .clone()
                .kind(Some(AhoCorasickKind::DFA))
                .build(forms)
                .ok()
        })
        .flatten();
    dfa.unwrap_or_else(|| {
        builder
            .build(forms)
            .expect("literal patterns always build as an NFA")
    })
}

/// `text` with each of `spans` (in order, apart) replaced by [`MASK`].
fn masked(text: &str, spans: &[(usize, usize)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for &(start, end) in spans {
        out.push_str(&text[at..start]);
        out.push_str(MASK);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// The index of a text's first two bytes in the set of starts (forms are 4 bytes or more).
fn pair_index(text: &[u8]) -> usize {
    (usize::from(text[0]) << 8) | usize::from(text[1])
}

impl Redactor {
    /// Masks each of `values` in all its forms.
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        values
            .into_iter()
            .fold(Redactor::builder(), |b, v| b.secret(&v))
            .build()
    }

    /// Secrets added one at a time, with the user names they are sent with.
    pub fn builder() -> RedactorBuilder {
        RedactorBuilder::default()
    }

    /// `true` when there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_none()
    }

    /// `text` with every form of every secret replaced by [`MASK`]. Forms that overlap or
    /// nest are masked together, once: no byte of any of them is left. A text may have been
    /// cut (a message quoting the start of a response body, with or without `...`): when it
    /// ends with the first [`CUT_MIN`] bytes or more of a form, they are masked too.
    pub fn redact(&self, text: &str) -> String {
        let mut spans = self.spans(text, 0);
        if let Some(cut) = self.cut_off(text) {
            match spans.last_mut() {
                Some(last) if cut.0 < last.1 => last.1 = last.1.max(cut.1),
                _ => spans.push(cut),
            }
        }
        masked(text, &spans)
    }

    /// Masks whole forms only: what a [`StreamRedactor`] gives for the same text.
    #[cfg(test)]
    fn redact_whole(&self, text: &str) -> String {
        masked(text, &self.spans(text, 0))
    }

    /// The start of a form that `text` ends with, before a `...` or `…` that says it was cut.
    fn cut_off(&self, text: &str) -> Option<(usize, usize)> {
        let body = ["...", "\u{2026}"]
            .iter()
            .find_map(|mark| text.strip_suffix(mark))
            .unwrap_or(text);
        let start = self.undecided_from(body);
        (body.len() - start >= CUT_MIN).then_some((start, body.len()))
    }

    /// The byte ranges of `text` to mask, in order, overlapping occurrences merged; the first
    /// `covered` bytes are masked already (a mask that began before `text`).
    fn spans(&self, text: &str, covered: usize) -> Vec<(usize, usize)> {
        let mut found: Vec<(usize, usize)> = Vec::new();
        if covered > 0 {
            found.push((0, covered));
        }
        if let Some(p) = &self.patterns {
            found.extend(
                p.matcher
                    .find_overlapping_iter(text)
                    .map(|m| (m.start(), m.end())),
            );
        }
        found.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(found.len());
        for (start, end) in found {
            match merged.last_mut() {
                Some(last) if start < last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }

    /// Where the end of `text` could be the beginning of a form: the start of the longest
    /// suffix that is a proper prefix of one (`text.len()` when there is none). Output up to
    /// there can be written; what follows must wait for more text.
    fn undecided_from(&self, text: &str) -> usize {
        let Some(p) = &self.patterns else {
            return text.len();
        };
        let bytes = text.as_bytes();
        let from = bytes.len().saturating_sub(p.longest.saturating_sub(1));
        (from..bytes.len())
            .find(|&i| p.could_start(&bytes[i..]))
            .unwrap_or(bytes.len())
    }

    /// Redacts every string inside a JSON value, object keys included; a number that shows a
    /// secret becomes the masked text.
    pub fn redact_value(&self, value: &Value) -> Value {
        if self.is_empty() {
            return value.clone();
        }
        match value {
            Value::String(s) => Value::String(self.redact(s)),
            Value::Number(n) => {
                let shown = n.to_string();
                let masked = self.redact(&shown);
                if masked == shown {
                    value.clone()
                } else {
                    Value::String(masked)
                }
            }
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.redact_value(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.redact(k), self.redact_value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// The event with every text in it redacted: messages, targets, outputs and their keys.
    /// Its own words (the kind of event, times, phases, statuses) are kept, so it stays an
    /// event of the same shape, and so are the names of the run, the plan and the nodes:
    /// `resume` and the history match them with the plan's, and they are made of the plan's
    /// ids and `for_each` items, not of secrets.
    pub fn redact_event(&self, event: Event) -> Event {
        if self.is_empty() {
            return event;
        }
        let Ok(Value::Object(fields)) = serde_json::to_value(&event) else {
            return event;
        };
        let fields = fields
            .into_iter()
            .map(|(k, v)| {
                // Counts, codes and flags stay what they are: only text is redacted.
                let text = matches!(v, Value::String(_) | Value::Array(_) | Value::Object(_));
                let v = if text && !KEPT_IN_EVENTS.contains(&k.as_str()) {
                    self.redact_value(&v)
                } else {
                    v
                };
                (k, v)
            })
            .collect();
        // Only free text changed, which reads back as the same text fields.
        serde_json::from_value(Value::Object(fields)).unwrap_or(event)
    }
}

/// The fields of an event that [`Redactor::redact_event`] leaves as they are.
const KEPT_IN_EVENTS: &[&str] = &[
    "event",
    "at",
    "phase",
    "status",
    "run_id",
    "plan",
    "node",
    "unknown",
    "instances",
];

impl Patterns {
    /// `true` when `tail` is a proper prefix of some form.
    fn could_start(&self, tail: &[u8]) -> bool {
        if let [a, b, ..] = tail {
            let pair = pair_index(&[*a, *b]);
            if self.starts[pair / 64] & (1 << (pair % 64)) == 0 {
                return false;
            }
        }
        let at = self.sorted.partition_point(|f| &f[..] < tail);
        self.sorted[at..]
            .iter()
            .take(2)
            .any(|f| f.len() > tail.len() && f.starts_with(tail))
    }
}

#[cfg(test)]
mod tests;
