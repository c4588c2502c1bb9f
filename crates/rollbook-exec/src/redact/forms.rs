//! The forms a secret takes in what a run writes: the value itself and its lines, and the
//! value base64-encoded, URL-encoded and JSON-escaped as common tools write them.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The shortest text masked: shorter values would mask ordinary text everywhere, and no
/// real credential is that short.
pub const MIN_LEN: usize = 4;

/// The shortest base64 fragment masked on its own (36 bits of the secret): shorter ones
/// would match unrelated base64 too often.
const MIN_CORE: usize = 6;

/// Every form of `value` worth masking, each at least [`MIN_LEN`] bytes.
pub fn of_secret(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    for whole in wholes(value) {
        // Masking the trimmed text masks it with its blanks too, and keeps the line ends
        // around it: blanks only count in the encoded forms.
        if whole.trim() == whole {
            out.push(whole.clone());
        }
        out.extend(json_escaped(&whole));
        out.extend(url_encoded(&whole));
        out.extend(base64_exact(whole.as_bytes()));
        out.extend(base64_cores(whole.as_bytes()));
    }
    // Each line of a multi-line secret on its own: a command may print only part of it.
    for line in value.lines().map(str::trim) {
        out.push(line.to_string());
        out.extend(json_escaped(line));
    }
    keep_long(out)
}

/// The base64 forms of `user:value`, as HTTP basic auth sends them.
pub fn of_login(user: &str, value: &str) -> Vec<String> {
    let forms = wholes(value)
        .into_iter()
        .flat_map(|whole| base64_exact(format!("{user}:{whole}").as_bytes()))
        .collect();
    keep_long(forms)
}

fn keep_long(mut forms: Vec<String>) -> Vec<String> {
    forms.retain(|f| f.len() >= MIN_LEN);
    forms.sort();
    forms.dedup();
    forms
}

/// The value as given, trimmed, and with CRLF line ends as LF (runners split lines and drop
/// the `\r`).
fn wholes(value: &str) -> Vec<String> {
    let trimmed = value.trim();
    let mut wholes = vec![
        value.to_string(),
        trimmed.to_string(),
        trimmed.replace("\r\n", "\n"),
    ];
    wholes.sort();
    wholes.dedup();
    wholes
}

/// As serde_json writes it inside a string, and with non-ASCII as `\u` escapes (lower and
/// upper hex), as ASCII-only writers (Python's `json.dumps`, jq's `-a`) do.
fn json_escaped(value: &str) -> Vec<String> {
    let quoted = serde_json::to_string(value).expect("a string serializes");
    let plain = quoted[1..quoted.len() - 1].to_string();
    let mut forms = vec![plain.clone()];
    if !value.is_ascii() {
        let mut ascii = String::new();
        for c in plain.chars() {
            if c.is_ascii() {
                ascii.push(c);
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    ascii.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
        forms.push(uppercase_escapes(&ascii));
        forms.push(ascii);
    }
    forms
}

/// `\u00e9` as `\u00E9`, the rest as it is.
fn uppercase_escapes(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(at) = rest.find("\\u") {
        out.push_str(&rest[..at + 2]);
        let hex_end = (at + 6).min(rest.len());
        out.push_str(&rest[at + 2..hex_end].to_ascii_uppercase());
        rest = &rest[hex_end..];
    }
    out.push_str(rest);
    out
}

/// RFC 3986 unreserved characters kept (Python's `quote(safe='')`, Go's `QueryEscape`).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Also `/` kept (Python's `quote` default).
const PATH: &AsciiSet = &UNRESERVED.remove(b'/');
/// JavaScript's `encodeURIComponent`.
const COMPONENT: &AsciiSet = &UNRESERVED
    .remove(b'!')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');
/// `application/x-www-form-urlencoded` (WHATWG, curl's `--data-urlencode`).
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// Percent-encoded as common encoders do it: each set of kept characters, upper- and
/// lower-case hex, a space as `%20` or `+`.
fn url_encoded(value: &str) -> Vec<String> {
    let mut forms = Vec::new();
    for set in [UNRESERVED, PATH, COMPONENT, FORM] {
        let upper = utf8_percent_encode(value, set).to_string();
        let lower = lowercase_hex(&upper);
        for form in [upper, lower] {
            forms.push(form.replace("%20", "+"));
            forms.push(form);
        }
    }
    forms
}

/// `%2F` as `%2f`.
fn lowercase_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut hex_left = 0;
    for c in encoded.chars() {
        if hex_left > 0 {
            out.push(c.to_ascii_lowercase());
            hex_left -= 1;
        } else {
            if c == '%' {
                hex_left = 2;
            }
            out.push(c);
        }
    }
    out
}

/// The exact encodings of `bytes`: standard and URL-safe alphabets, with and without padding.
fn base64_exact(bytes: &[u8]) -> Vec<String> {
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .map(|engine| engine.encode(bytes))
        .collect()
}

/// The characters of `bytes`'s base64 that are the same whatever comes before and after it,
/// for each of the three alignments it can have inside a longer encoded text (`user:secret`
/// with any user, a secret inside an encoded document). What is left unmasked at either end
/// is one character, mixing a few bits of the secret's first or last byte with its
/// neighbours'.
fn base64_cores(bytes: &[u8]) -> Vec<String> {
    let mut cores = Vec::new();
    for offset in 0..3usize {
        let mut shifted = vec![0u8; offset];
        shifted.extend_from_slice(bytes);
        // Characters whose 6 bits lie wholly inside the secret's bits.
        let first = (offset * 8).div_ceil(6);
        let end = shifted.len() * 8 / 6;
        if end < first + MIN_CORE {
            continue;
        }
        for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
            cores.push(engine.encode(&shifted)[first..end].to_string());
        }
    }
    cores
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base64_core_is_inside_every_encoding_that_holds_the_secret() {
        let secret = b"s3cret-pass";
        let cores = base64_cores(secret);
        for prefix in ["", "a", "ab", "deploy:", "admin:", "x:"] {
            for suffix in ["", "\n", "!", "?x"] {
                let text = [prefix.as_bytes(), secret, suffix.as_bytes()].concat();
                for engine in [STANDARD, URL_SAFE_NO_PAD] {
                    let encoded = engine.encode(&text);
                    assert!(
                        cores.iter().any(|c| encoded.contains(c.as_str())),
                        "{prefix:?} {suffix:?}: {encoded} holds none of {cores:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn json_forms_escape_controls_and_non_ascii_as_writers_do() {
        let forms = json_escaped("pä\"ss\n");
        assert!(forms.contains(&"pä\\\"ss\\n".to_string()), "{forms:?}");
        assert!(
            forms.contains(&"p\\u00e4\\\"ss\\n".to_string()),
            "{forms:?}"
        );
        assert!(
            forms.contains(&"p\\u00E4\\\"ss\\n".to_string()),
            "{forms:?}"
        );
        let astral = json_escaped("k🔑y");
        assert!(
            astral.contains(&"k\\ud83d\\udd11y".to_string()),
            "{astral:?}"
        );
    }

    #[test]
    fn url_forms_cover_both_space_styles_and_hex_cases() {
        let forms = url_encoded("a b/c~d!");
        for want in [
            "a%20b%2Fc~d%21",
            "a+b%2fc~d%21",
            "a%20b/c~d%21",
            "a+b%2Fc%7Ed%21",
        ] {
            assert!(forms.contains(&want.to_string()), "{want}: {forms:?}");
        }
    }
}
