use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

use super::*;

const PEM: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\n\
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n\
QyNTUxOQAAACDkzP0L+vMZ1rDk8v4s3Ul0bYc1aGxQ9KxQm0e5R8sY2wAAAJg3k2Xx/zz=\n\
-----END OPENSSH PRIVATE KEY-----\n";

fn assert_hidden(redactor: &Redactor, text: &str, secret_parts: &[&str]) {
    let out = redactor.redact(text);
    for part in secret_parts {
        assert!(!out.contains(part), "{part:?} left in {out:?}");
    }
    assert!(out.contains(MASK), "{out:?}");
}

#[test]
fn a_multi_line_secret_is_masked_whole_and_line_by_line() {
    let r = Redactor::new([PEM.to_string()]);
    let lines: Vec<&str> = PEM.lines().collect();
    assert_eq!(r.redact(&format!("key: {PEM}done")), "key: ***\ndone");
    // One line alone, e.g. `sed -n 2p`.
    assert_eq!(r.redact(&format!("> {}\n", lines[1])), "> ***\n");
    // CRLF line ends, as the runners see them once the `\r` is dropped.
    let crlf = PEM.replace('\n', "\r\n");
    let r = Redactor::new([crlf]);
    assert_eq!(r.redact(PEM), "***\n");
}

#[test]
fn the_base64_forms_are_masked_in_both_alphabets_with_and_without_padding() {
    let secret = "p>ss?w0rd~~with/odd+chars";
    let r = Redactor::new([secret.to_string()]);
    for engine in [STANDARD, URL_SAFE_NO_PAD] {
        let encoded = engine.encode(secret);
        assert_eq!(r.redact(&format!("[{encoded}]")), "[***]");
    }
}

#[test]
fn basic_auth_is_masked_for_a_known_user_whole_and_for_any_user_but_its_edges() {
    let secret = "hunter2-but-longer";
    let header = |user: &str| STANDARD.encode(format!("{user}:{secret}"));
    let r = Redactor::builder()
        .secret(secret)
        .login("deploy", secret)
        .build();
    assert_eq!(
        r.redact(&format!("Authorization: Basic {}", header("deploy"))),
        "Authorization: Basic ***"
    );
    // Any other user: the part of the encoding that depends on the secret alone is masked;
    // what is left is the user's part and at most two characters at the end.
    for user in ["a", "ab", "admin", "someone-else"] {
        let encoded = header(user);
        let out = r.redact(&encoded);
        let kept = out.replace(MASK, "");
        assert!(
            kept.len() <= STANDARD.encode(format!("{user}:")).len() + 2,
            "{user}: {out} from {encoded}"
        );
    }
}

#[test]
fn url_encoded_and_json_escaped_forms_are_masked() {
    let secret = "tök/en with spaces&\"quotes\"";
    let r = Redactor::new([secret.to_string()]);
    for form in [
        "t%C3%B6k%2Fen%20with%20spaces%26%22quotes%22",
        "t%c3%b6k%2fen+with+spaces%26%22quotes%22",
        "t%C3%B6k/en%20with%20spaces%26%22quotes%22",
        "tök/en with spaces&\\\"quotes\\\"",
        "t\\u00f6k/en with spaces&\\\"quotes\\\"",
    ] {
        assert_hidden(&r, &format!("?token={form}&x=1"), &[form]);
        assert_eq!(r.redact(&format!("?token={form}&x=1")), "?token=***&x=1");
    }
    let as_json = serde_json::to_string(&json!({ "token": secret })).unwrap();
    assert_eq!(r.redact(&as_json), r#"{"token":"***"}"#);
}

#[test]
fn a_text_cut_in_the_middle_of_a_secret_has_the_start_masked() {
    let token = "tok-5f1c9e2a-very-secret";
    let r = Redactor::builder()
        .secret(token)
        .login("deploy", token)
        .build();
    let header = STANDARD.encode(format!("deploy:{token}"));
    assert_eq!(
        r.redact(&format!("got: {}...", &token[..12])),
        "got: ***..."
    );
    assert_eq!(r.redact(&format!("Basic {}", &header[..20])), "Basic ***");
    assert_eq!(
        r.redact(&format!("got {}\u{2026}", &token[..8])),
        "got ***\u{2026}"
    );
    // Shorter starts, and starts that are not at the end, are ordinary text.
    assert_eq!(r.redact("tok-5f1 and more"), "tok-5f1 and more");
    assert_eq!(r.redact("see tok-5f1"), "see tok-5f1");
}

#[test]
fn overlapping_secrets_leave_no_byte_of_either() {
    let r = Redactor::new(["xxabcd".to_string(), "abcdefgh".to_string()]);
    assert_eq!(r.redact("1 xxabcdefgh 2"), "1 *** 2");
    assert_eq!(r.redact("abcdefghxxabcd"), "******");
}

#[test]
fn short_values_are_not_masked() {
    let r = Redactor::new(["abc".to_string(), " ab \n".to_string()]);
    assert!(r.is_empty());
    assert_eq!(r.redact("abc ab"), "abc ab");
}

#[test]
fn json_keys_and_numbers_are_redacted() {
    let r = Redactor::new(["s3cr3t-key".to_string(), "90210777".to_string()]);
    let value = json!({
        "s3cr3t-key": { "nested": ["a s3cr3t-key b", 90210777, 1] },
        "plain": true,
    });
    assert_eq!(
        r.redact_value(&value),
        json!({ "***": { "nested": ["a *** b", "***", 1] }, "plain": true })
    );
}

#[test]
fn events_keep_their_shape_when_their_text_is_redacted() {
    let r = Redactor::new([
        "2026".to_string(),
        "failed-token".to_string(),
        "node-a".to_string(),
    ]);
    let attempt: Event = serde_json::from_value(json!({
        "event": "attempt_finished",
        "at": "2026-11-25T13:32:12.124Z",
        "phase": "steps",
        "node": "node-a",
        "attempt": 1,
        "ok": false,
        "duration_ms": 2026,
        "exit_code": 2026,
        "message": "2026",
    }))
    .unwrap();
    let redacted = serde_json::to_value(r.redact_event(attempt)).unwrap();
    assert_eq!(redacted["duration_ms"], 2026);
    assert_eq!(redacted["message"], "***");
    let event: Event = serde_json::from_value(json!({
        "event": "node_finished",
        "at": "2026-11-25T13:32:12.124Z",
        "phase": "steps",
        "node": "node-a",
        "status": "failed",
        "outputs": { "seen": "failed-token 2026" },
        "message": "exit code 1: failed-token",
    }))
    .unwrap();
    let Event::NodeFinished {
        at,
        node,
        outputs,
        message,
        ..
    } = r.redact_event(event)
    else {
        panic!("the event changed its kind");
    };
    assert_eq!(at.to_string(), "2026-11-25T13:32:12.124Z");
    assert_eq!(node, "node-a");
    assert_eq!(outputs, Some(json!({ "seen": "*** ***" })));
    assert_eq!(message.as_deref(), Some("exit code 1: ***"));
}

/// Every way of cutting `text` in two, and in pieces of every size.
fn chunkings(text: &str) -> Vec<Vec<&str>> {
    let cuts: Vec<usize> = (0..=text.len())
        .filter(|&i| text.is_char_boundary(i))
        .collect();
    let mut all: Vec<Vec<&str>> = cuts.iter().map(|&i| vec![&text[..i], &text[i..]]).collect();
    for size in 1..8 {
        let mut pieces = Vec::new();
        let mut at = 0;
        while at < text.len() {
            let mut end = (at + size).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            pieces.push(&text[at..end]);
            at = end;
        }
        all.push(pieces);
    }
    all
}

fn streamed(r: &Redactor, pieces: &[&str]) -> String {
    let mut stream = StreamRedactor::new(r.clone());
    let mut out: String = pieces.iter().map(|p| stream.push(p)).collect();
    out.push_str(&stream.finish());
    out
}

#[test]
fn a_secret_split_at_any_byte_is_masked_in_a_stream() {
    let token = "tok-5f1c9e2a-very-secret";
    let r = Redactor::builder()
        .secret(PEM)
        .secret(token)
        .login("deploy", token)
        .build();
    let basic = STANDARD.encode(format!("deploy:{token}"));
    let text = format!("begin\n{PEM}middle {token}\nAuthorization: Basic {basic}\nend ö\n");
    let whole = r.redact_whole(&text);
    assert_eq!(
        whole,
        "begin\n***\nmiddle ***\nAuthorization: Basic ***\nend ö\n"
    );
    for pieces in chunkings(&text) {
        assert_eq!(streamed(&r, &pieces), whole, "{pieces:?}");
    }
}

#[test]
fn a_stream_gives_back_at_once_what_cannot_start_a_secret() {
    let r = Redactor::new([PEM.to_string()]);
    let mut stream = StreamRedactor::new(r);
    assert_eq!(stream.push("waiting for drain\n"), "waiting for drain\n");
    // The first line of the key: it may go on as the key, so it waits.
    let first = PEM.lines().next().unwrap();
    assert_eq!(stream.push(&format!("{first}\n")), "");
    assert_eq!(stream.push("not the key\n"), format!("***\nnot the key\n"));
    assert_eq!(stream.finish(), "");
}

mod streaming {
    use proptest::prelude::*;

    use super::*;

    fn redactor() -> Redactor {
        Redactor::builder()
            .secret("ab\ncd-ef")
            .secret("cdcdcd")
            .secret("\u{e9}t\u{e9}-key")
            .login("u", "cdcdcd")
            .build()
    }

    proptest! {
        /// Streamed in any pieces, the output is the one-shot redaction of the whole text.
        #[test]
        fn streaming_equals_redacting_the_whole(
            text in "([abcdef\\-\n\u{e9}t ]|ab\ncd-ef|cdcdcd|Y2RjZGNk|dTpjZGNkY2Q=){0,24}",
            cuts in proptest::collection::vec(0usize..200, 0..8),
        ) {
            let r = redactor();
            let mut bounds: Vec<usize> = cuts
                .into_iter()
                .map(|c| c % (text.len() + 1))
                .filter(|&c| text.is_char_boundary(c))
                .collect();
            bounds.push(0);
            bounds.push(text.len());
            bounds.sort_unstable();
            bounds.dedup();
            let pieces: Vec<&str> = bounds.windows(2).map(|w| &text[w[0]..w[1]]).collect();
            prop_assert_eq!(streamed(&r, &pieces), r.redact_whole(&text));
        }
    }
}
