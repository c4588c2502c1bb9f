//! The redactor on a stream cut anywhere. The input is the secrets, the output text and the
//! places it is cut at, separated by DEL (0x7f): `secret1 DEL secret2 DEL text DEL cuts`,
//! where each byte of `cuts` is the length of the next piece.
//!
//! The oracle: the stream's pieces redacted one by one make the same text as the whole text
//! redacted at once, and no secret (of at least `MIN_LEN` bytes, and without the mask's own
//! `*`) is left in it, nor any of its lines.

#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use rollbook_exec::redact::{MIN_LEN, Redactor, StreamRedactor};

/// The redactor of `secrets`, built once for the last few sets of secrets: most inputs differ
/// from an earlier one only in the text or the cuts, and building the matcher is most of the
/// cost of an input.
fn redactor(secrets: &[&str]) -> Redactor {
    const KEPT: usize = 64;
    thread_local! {
        static BUILT: RefCell<Vec<(Vec<String>, Redactor)>> = const { RefCell::new(Vec::new()) };
    }
    BUILT.with_borrow_mut(|built| {
        if let Some((_, r)) = built.iter().find(|(s, _)| s == secrets) {
            return r.clone();
        }
        let r = Redactor::new(secrets.iter().map(|s| s.to_string()));
        if built.len() == KEPT {
            built.remove(0);
        }
        built.push((secrets.iter().map(|s| s.to_string()).collect(), r.clone()));
        r
    })
}

fn streamed(redactor: &Redactor, pieces: &[&str]) -> String {
    let mut stream = StreamRedactor::new(redactor.clone());
    let mut out: String = pieces.iter().map(|p| stream.push(p)).collect();
    out.push_str(&stream.finish());
    out
}

/// `text` cut into pieces of the lengths in `cuts` (moved back to a character boundary; the
/// rest is the last piece).
fn pieces<'t>(text: &'t str, cuts: &[u8]) -> Vec<&'t str> {
    let mut out = Vec::new();
    let mut rest = text;
    for &len in cuts {
        let mut at = usize::from(len).min(rest.len());
        while !rest.is_char_boundary(at) {
            at -= 1;
        }
        let (piece, tail) = rest.split_at(at);
        out.push(piece);
        rest = tail;
    }
    out.push(rest);
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = input.splitn(4, '\u{7f}');
    let secrets: Vec<&str> = [parts.next(), parts.next()].into_iter().flatten().collect();
    let text = parts.next().unwrap_or_default();
    let cuts = parts.next().unwrap_or_default().as_bytes();
    let redactor = redactor(&secrets);

    let whole = streamed(&redactor, &[text]);
    let cut = streamed(&redactor, &pieces(text, cuts));
    assert_eq!(cut, whole, "the stream cut at {cuts:?} redacts differently");
    let _ = redactor.redact(text);

    for secret in secrets.iter().filter(|s| s.trim().len() >= MIN_LEN) {
        let lines = secret.lines().map(str::trim);
        for form in std::iter::once(secret.trim()).chain(lines) {
            if form.len() >= MIN_LEN && !form.contains('*') {
                assert!(!whole.contains(form), "a secret is left in the output");
            }
        }
    }
});
