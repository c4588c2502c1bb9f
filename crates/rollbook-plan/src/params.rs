//! Typed plan parameters: checking values against a param's type and reading them from the
//! command line (`--param name=value`).

use serde_json::Value;

use crate::decode::parse_duration;
use crate::model::ParamType;

/// Checks that `value` is of type `ty`; returns the value normalised (a duration stays text,
/// an int is an integer).
pub fn check_value(ty: ParamType, value: &Value) -> Result<Value, String> {
    let ok = match (ty, value) {
        (ParamType::String, Value::String(_)) => true,
        (ParamType::String, Value::Number(_) | Value::Bool(_)) => {
            return Ok(Value::String(value.to_string()));
        }
        (ParamType::Int, Value::Number(n)) => n.is_i64(),
        (ParamType::Bool, Value::Bool(_)) => true,
        (ParamType::List, Value::Array(_)) => true,
        (ParamType::Duration, Value::String(s)) => {
            return parse_duration(s)
                .map(|_| value.clone())
                .map_err(|why| format!("`{s}` is not a duration: {why}"));
        }
        _ => false,
    };
    if ok {
        Ok(value.clone())
    } else {
        Err(format!(
            "expected {}, found {}",
            describe(ty),
            describe_value(value)
        ))
    }
}

/// Reads a value given as text on the command line.
pub fn parse_cli(ty: ParamType, text: &str) -> Result<Value, String> {
    match ty {
        ParamType::String => Ok(Value::String(text.to_string())),
        ParamType::Int => text
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("`{text}` is not a whole number")),
        ParamType::Bool => match text.trim() {
            "true" | "yes" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!("`{text}` is not true or false")),
        },
        ParamType::List => {
            let t = text.trim();
            if t.starts_with('[') {
                serde_json::from_str::<Value>(t)
                    .ok()
                    .filter(Value::is_array)
                    .ok_or_else(|| format!("`{text}` is not a JSON list"))
            } else if t.is_empty() {
                Ok(Value::Array(Vec::new()))
            } else {
                Ok(Value::Array(
                    t.split(',')
                        .map(|s| Value::String(s.trim().to_string()))
                        .collect(),
                ))
            }
        }
        ParamType::Duration => check_value(ty, &Value::String(text.trim().to_string())),
    }
}

fn describe(ty: ParamType) -> &'static str {
    match ty {
        ParamType::String => "text",
        ParamType::Int => "a whole number",
        ParamType::Bool => "true or false",
        ParamType::List => "a list",
        ParamType::Duration => "a duration",
    }
}

pub(crate) fn describe_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the text `{s}`"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// Shows a value the way a person wrote it (`us-east`, `3`, `[a, b]`).
pub fn display_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(display_value)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}
