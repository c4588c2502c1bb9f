//! The JSON Schema and the decoder must agree on every key, or editors would suggest keys
//! that `validate` refuses (or miss ones it takes).

use rollbook_plan::decode::keys;
use serde_json::Value;

fn properties(schema: &Value, def: Option<&str>) -> Vec<String> {
    let node = match def {
        Some(d) => &schema["$defs"][d],
        None => schema,
    };
    let mut keys: Vec<String> = node["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no properties for {def:?}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

fn sorted(lists: &[&[&str]]) -> Vec<String> {
    let mut keys: Vec<String> = lists
        .iter()
        .flat_map(|l| l.iter().map(|k| k.to_string()))
        .collect();
    keys.sort();
    keys
}

#[test]
fn schema_keys_match_the_decoder_keys() {
    let schema: Value = serde_json::from_str(&rollbook_plan::schema::plan_schema_json()).unwrap();
    let cases: &[(Option<&str>, &[&[&str]])] = &[
        (None, &[keys::PLAN]),
        (Some("Param"), &[keys::PARAM]),
        (Some("HostDetails"), &[keys::HOST]),
        (Some("GroupDetails"), &[keys::GROUP]),
        (Some("Defaults"), &[keys::DEFAULTS]),
        (Some("Retry"), &[keys::RETRY]),
        (Some("SshSettings"), &[keys::SSH_SETTINGS]),
        (
            Some("SshAction"),
            &[keys::SSH_ACTION_OWN, keys::SSH_SETTINGS],
        ),
        (Some("Upload"), &[keys::UPLOAD]),
        (Some("HttpSettings"), &[keys::HTTP_SETTINGS]),
        (Some("SqlSettings"), &[keys::SQL_SETTINGS]),
        (
            Some("Step"),
            &[keys::STEP_COMMON, keys::ACTIONS, keys::CALL],
        ),
        (Some("Undo"), &[keys::UNDO]),
        (Some("SshUndo"), &[keys::SSH_ACTION_OWN, keys::SSH_SETTINGS]),
        (Some("HttpAction"), &[keys::HTTP_ACTION]),
        (Some("HttpExpect"), &[keys::HTTP_EXPECT]),
        (Some("Tls"), &[keys::TLS]),
        (Some("SqlAction"), &[keys::SQL_ACTION]),
        (Some("SqlExpect"), &[keys::SQL_EXPECT]),
        (Some("ShellAction"), &[keys::SHELL_ACTION]),
        (Some("SqlConnection"), &[keys::SQL_CONNECTION]),
        (Some("HttpConnection"), &[keys::HTTP_CONNECTION]),
    ];
    for (def, lists) in cases {
        assert_eq!(properties(&schema, *def), sorted(lists), "keys of {def:?}");
    }
}

/// With `ROLLBOOK_UPDATE_SCHEMA=1`, writes the current schema instead of failing.
#[test]
fn the_committed_schema_is_current() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/plan.schema.json");
    let current = rollbook_plan::schema::plan_schema_json();
    if std::env::var_os("ROLLBOOK_UPDATE_SCHEMA").is_some_and(|v| v == "1") {
        std::fs::write(&path, &current).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == current,
        "schemas/plan.schema.json is stale: run `cargo run -- schema > schemas/plan.schema.json` \
         (or `ROLLBOOK_UPDATE_SCHEMA=1 cargo test -p rollbook-plan --test plan schema`)"
    );
}

/// Editors show a definition's `description` on hover: every one a plan author meets has one.
#[test]
fn every_schema_definition_has_a_description() {
    let schema: Value = serde_json::from_str(&rollbook_plan::schema::plan_schema_json()).unwrap();
    let described = |v: &Value| {
        v["description"]
            .as_str()
            .is_some_and(|d| !d.trim().is_empty())
    };
    assert!(described(&schema), "the root has no description");
    let defs = schema["$defs"].as_object().expect("the schema has $defs");
    assert!(!defs.is_empty());
    let missing: Vec<&String> = defs
        .iter()
        .filter(|(_, def)| !described(def))
        .map(|(name, _)| name)
        .collect();
    assert!(
        missing.is_empty(),
        "definitions without a description: {missing:?}"
    );
}
