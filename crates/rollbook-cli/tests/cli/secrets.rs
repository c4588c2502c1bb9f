//! Secrets in every form they take: a multi-line key from a `{ file: }` secret, a password
//! sent as HTTP basic auth and a token sent URL-encoded are printed by steps, put in their
//! failure messages and captured, and no form of any of them reaches the run's output,
//! `--events json`, a file of the state directory, `show`, `report` or `plan --check`.

use std::net::SocketAddr;
use std::path::Path;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::Ran;

/// A key as `{ file: }` reads it (its trailing newline is not part of the secret).
const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACD1s9Jb7V2qX0mQfTl5cWm3rJ8pZsYd4AzKxN0uLq1eIgAAAJjR0xw1ZQxA
-----END OPENSSH PRIVATE KEY-----";
const USER: &str = "deploy";
const PASSWORD: &str = "hunter2-Correct-Horse-77";
const TOKEN: &str = "tok/en+with space&=\u{fc}-9f3a";

/// The plan: each step shows its secret in several forms on stdout and stderr, then fails
/// with one of them as its message; `api_ok` captures them.
fn plan(api: SocketAddr) -> String {
    format!(
        r#"version: 1
name: leaky
secrets:
  key: {{ file: key.pem }}
  password: {{ env: ROLLBOOK_TEST_PASSWORD }}
  token: {{ env: ROLLBOOK_TEST_TOKEN }}
steps:
  - id: key
    on_failure: continue
    shell:
      script: |
        printf 'key: %s\n' {{{{ secrets.key }}}}
        printf '%s' {{{{ secrets.key }}}} | base64 | tr -d '\n'; echo
        printf '{{"key":"%s"}}\n' "$(awk '{{ printf "%s\\n", $0 }}' key.pem)"
        cat key.pem >&2
        sed -n 2p key.pem >&2
        exit 1
  - id: basic
    on_failure: continue
    shell:
      script: |
        auth=$(printf '{USER}:%s' {{{{ secrets.password }}}} | base64 | tr -d '\n')
        echo "Authorization: Basic $auth"
        echo "Authorization: Basic $auth" >&2
        exit 1
  - id: token
    on_failure: continue
    shell:
      script: |
        printf '%s' {{{{ secrets.token }}}} | LC_ALL=C awk '
          BEGIN {{ for (i = 1; i < 256; i++) ord[sprintf("%c", i)] = i }}
          {{ for (i = 1; i <= length($0); i++) {{
              c = substr($0, i, 1)
              if (c ~ /[A-Za-z0-9_.~-]/) printf "%s", c; else printf "%%%02X", ord[c]
          }} }}
          END {{ print "" }}' | tee /dev/stderr
        exit 1
  - id: api_denied
    on_failure: continue
    http:
      method: POST
      url: "http://{USER}:{{{{ secrets.password }}}}@{api}/deny"
      query: {{ token: "{{{{ secrets.token }}}}" }}
  - id: api_ok
    on_failure: continue
    http:
      method: POST
      url: "http://{USER}:{{{{ secrets.password }}}}@{api}/echo"
      query: {{ token: "{{{{ secrets.token }}}}" }}
      json: {{ key: "{{{{ secrets.key }}}}" }}
    capture: {{ echoed: .json, body: .body }}
"#
    )
}

/// `/deny` answers 401 with what it got (the URI and the Authorization header), as a server
/// that explains a refusal does; `/echo` answers 200 with the same, the JSON body it was
/// sent, and the token as a key.
fn start_api() -> SocketAddr {
    async fn deny(uri: Uri, headers: HeaderMap) -> (StatusCode, String) {
        let auth = headers
            .get("authorization")
            .map(|v| v.to_str().unwrap_or_default().to_string());
        let body = format!(
            "{{\"uri\":{},\"authorization\":{}}}",
            json!(uri.to_string()),
            json!(auth)
        );
        (StatusCode::UNAUTHORIZED, body)
    }
    async fn echo(uri: Uri, headers: HeaderMap, body: String) -> String {
        let sent: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let mut doc = serde_json::Map::new();
        doc.insert("uri".into(), json!(uri.to_string()));
        doc.insert("authorization".into(), json!(auth));
        doc.insert("sent".into(), sent);
        doc.insert(TOKEN.into(), json!("the token as a key"));
        Value::Object(doc).to_string()
    }
    crate::serve(
        Router::new()
            .route("/deny", post(deny))
            .route("/echo", post(echo)),
    )
}

/// Every form of the three secrets that must not be seen, with what it is.
fn forms() -> Vec<(String, String)> {
    let login = format!("{USER}:{PASSWORD}");
    let json_key = serde_json::to_string(KEY).unwrap();
    let mut forms = vec![
        ("the key".into(), KEY.to_string()),
        ("the key, base64".into(), STANDARD_NO_PAD.encode(KEY)),
        ("the key, base64url".into(), URL_SAFE_NO_PAD.encode(KEY)),
        (
            "the key, JSON-escaped".into(),
            json_key[1..json_key.len() - 1].to_string(),
        ),
        ("the password".into(), PASSWORD.to_string()),
        (
            "the basic-auth header".into(),
            STANDARD_NO_PAD.encode(&login),
        ),
        ("the token".into(), TOKEN.to_string()),
        (
            "the token, percent-encoded".into(),
            "tok%2Fen%2Bwith%20space%26%3D%C3%BC-9f3a".into(),
        ),
        (
            "the token, form-encoded".into(),
            "tok%2Fen%2Bwith+space%26%3D%C3%BC-9f3a".into(),
        ),
    ];
    for (i, line) in KEY.lines().enumerate() {
        forms.push((format!("line {} of the key", i + 1), line.to_string()));
    }
    forms
}

#[track_caller]
fn assert_no_secret(what: &str, text: &str) {
    for (form, needle) in forms() {
        assert!(
            !text.contains(&needle),
            "{what} shows {form} ({needle:?}):\n{text}"
        );
    }
}

/// Every file under `dir`, as text.
fn all_files(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.push_str(&all_files(&p));
        } else {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
        }
    }
    out
}

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new(api: SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let plans = dir.path().join("plans");
        std::fs::create_dir(&plans).unwrap();
        std::fs::write(plans.join("leaky.yaml"), plan(api)).unwrap();
        std::fs::write(dir.path().join("key.pem"), format!("{KEY}\n")).unwrap();
        Sandbox { dir }
    }

    fn rollbook(&self, args: &[&str]) -> Ran {
        crate::rollbook_in(self.dir.path())
            .env("ROLLBOOK_TEST_PASSWORD", PASSWORD)
            .env("ROLLBOOK_TEST_TOKEN", TOKEN)
            .args(args)
            .output()
            .unwrap()
            .into()
    }

    fn state_dir(&self) -> std::path::PathBuf {
        self.dir.path().join(".rollbook")
    }
}

/// A run that has to go through all five steps: tolerated failures end it `failed` or
/// `succeeded`, depending on how tolerated failures count, never anything else.
#[track_caller]
fn assert_ran_through(ran: &Ran) {
    assert!(
        matches!(ran.code, Some(0 | 1)),
        "stdout:\n{}\nstderr:\n{}",
        ran.stdout,
        ran.stderr
    );
}

#[test]
fn no_form_of_a_secret_reaches_output_events_state_show_report_or_check() {
    let sb = Sandbox::new(start_api());

    let run = sb.rollbook(&["run", "leaky", "--reason", "redaction"]);
    assert_ran_through(&run);
    let shown = format!("{}{}", run.stdout, run.stderr);
    assert_no_secret("the run's output", &shown);
    // The forms were there, and were masked where they stood.
    for masked in [
        "key | key: ***",
        "basic | Authorization: Basic ***",
        "token | ***",
        "\"uri\":\"/deny?token=***\",\"authorization\":\"Basic ***\"",
    ] {
        assert!(shown.contains(masked), "{masked:?} not in:\n{shown}");
    }

    let events = sb.rollbook(&["run", "leaky", "--reason", "events", "--events", "json"]);
    assert_ran_through(&events);
    assert_no_secret("--events json", &events.stdout);
    assert_no_secret("stderr of --events json", &events.stderr);
    assert!(
        events.stdout.contains("exit code 1: ***"),
        "{}",
        events.stdout
    );

    let state = all_files(&sb.state_dir());
    assert_no_secret("the state directory", &state);
    assert!(state.contains("{\"key\":\"***\\n\"}"), "{state}");

    let ids = crate::run_ids_in(&sb.state_dir());
    assert_eq!(ids.len(), 2, "{ids:?}");
    for id in &ids {
        for args in [
            vec!["show", id],
            vec!["show", id, "--format", "json"],
            vec!["report", id, "--format", "markdown"],
            vec!["report", id, "--format", "json"],
        ] {
            let out = sb.rollbook(&args);
            out.assert_code(0);
            assert_no_secret(&args.join(" "), &format!("{}{}", out.stdout, out.stderr));
        }
    }
    let show = sb.rollbook(&["show", &ids[0], "--format", "json"]).json();
    let captured = show.to_string();
    assert!(
        captured.contains("\"***\":\"the token as a key\""),
        "{captured}"
    );

    let check = sb.rollbook(&["plan", "leaky", "--check"]);
    assert_no_secret("plan --check", &format!("{}{}", check.stdout, check.stderr));
    assert!(check.stdout.contains("preflight"), "{}", check.stdout);
}
