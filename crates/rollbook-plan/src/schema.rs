//! The JSON Schema of plan files, generated from [`crate::model`], for editors
//! (`# yaml-language-server: $schema=...`) and other tools.

use serde_json::Value;

use crate::model::Plan;

/// The schema as pretty JSON, ending in a newline (as `schemas/plan.schema.json` holds it).
pub fn plan_schema_json() -> String {
    let mut schema = schemars::schema_for!(Plan).to_value();
    drop_null(&mut schema);
    // Top-level `x-…` keys hold YAML anchors to share; the plan ignores them.
    schema["patternProperties"] = serde_json::json!({ "^x-": {} });
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}

/// schemars lets every `Option` field be `null`; in a plan an absent key is how a setting is
/// left out, and `null` is refused, so the schema says so too.
fn drop_null(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types[0].clone();
                    map.insert("type".into(), only);
                }
            }
            for key in ["anyOf", "oneOf"] {
                if let Some(Value::Array(options)) = map.get_mut(key) {
                    options.retain(|o| o.get("type").is_none_or(|t| t != "null"));
                }
            }
            map.values_mut().for_each(drop_null);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null),
        _ => {}
    }
}
