//! The result documents of the built-in runners that run commands (`shell`, and `ssh`
//! through [`CommandResult`]) and of `confirm` ([`ConfirmResult`]): built in one place, read
//! back by the executor through the same types. What templates and jq see as a step's result
//! is [`CommandResult::to_value`] / [`ConfirmResult::to_value`].

use serde_json::{Map, Value};

use crate::runner::Outcome;

const EXIT_CODE: &str = "exit_code";
const STDOUT: &str = "stdout";
const STDERR: &str = "stderr";
const JSON: &str = "json";
const ANSWER: &str = "answer";
const ANSWERED_BY: &str = "answered_by";

/// What a command came to: `{exit_code, stdout, stderr, json, ...}`, where `json` is stdout
/// read as JSON (`null` when it is not), followed by the runner's own facts in the order
/// they were added (`host`, `elapsed_ms`, truncation counts).
#[derive(Debug, Clone, PartialEq)]
pub struct CommandResult {
    /// The exit status; `None` when the command ended without one.
    pub exit_code: Option<i64>,
    /// The kept end of its standard output.
    pub stdout: String,
    /// The kept end of its standard error.
    pub stderr: String,
    /// Standard output read as JSON, or `null`.
    pub json: Value,
    extra: Vec<(&'static str, Value)>,
}

impl CommandResult {
    /// A command's result, with `json` read from its standard output.
    pub fn new(exit_code: Option<i64>, stdout: String, stderr: String) -> Self {
        let json = serde_json::from_str::<Value>(stdout.trim()).unwrap_or(Value::Null);
        CommandResult {
            exit_code,
            stdout,
            stderr,
            json,
            extra: Vec::new(),
        }
    }

    /// The same without reading stdout as JSON (`json` is `null`): for commands whose output
    /// is rollbook's own, such as a checked upload.
    pub fn without_json(mut self) -> Self {
        self.json = Value::Null;
        self
    }

    /// Adds a runner's own fact after the common ones.
    pub fn with(mut self, key: &'static str, value: impl Into<Value>) -> Self {
        self.extra.push((key, value.into()));
        self
    }

    /// The result document, as templates (`steps.X.result`) and jq read it.
    pub fn to_value(&self) -> Value {
        let mut doc = Map::new();
        doc.insert(EXIT_CODE.into(), self.exit_code.into());
        doc.insert(STDOUT.into(), self.stdout.clone().into());
        doc.insert(STDERR.into(), self.stderr.clone().into());
        doc.insert(JSON.into(), self.json.clone());
        for (key, value) in &self.extra {
            doc.insert((*key).into(), value.clone());
        }
        Value::Object(doc)
    }

    /// The exit code a result document holds, if it is a command's.
    pub fn exit_code_in(result: &Value) -> Option<i64> {
        result.get(EXIT_CODE).and_then(Value::as_i64)
    }

    /// The last line of stderr with text on it, or `""`.
    pub fn last_stderr_line(&self) -> &str {
        self.stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
    }

    /// Exit code 0 succeeds; anything else fails with `exit code N: <last stderr line>`
    /// (`no_code` instead of `exit code N` when there is none), then `where_` (e.g.
    /// ` on web-1`) before the stderr line.
    pub fn into_outcome(self, no_code: &str, where_: &str) -> Outcome {
        if self.exit_code == Some(0) {
            return Outcome::Succeeded {
                result: self.to_value(),
            };
        }
        let code = self
            .exit_code
            .map_or(no_code.to_string(), |c| format!("exit code {c}"));
        let last = self.last_stderr_line();
        let message = if last.is_empty() {
            format!("{code}{where_}")
        } else {
            format!("{code}{where_}: {last}")
        };
        Outcome::Failed {
            message,
            result: Some(self.to_value()),
        }
    }
}

/// A person's answer to a `confirm` step: `{answer: "yes"|"no", answered_by}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmResult {
    /// They said yes.
    pub yes: bool,
    /// Who answered.
    pub answered_by: String,
}

impl ConfirmResult {
    /// The result document.
    pub fn to_value(&self) -> Value {
        let mut doc = Map::new();
        doc.insert(ANSWER.into(), self.answer().into());
        doc.insert(ANSWERED_BY.into(), self.answered_by.clone().into());
        Value::Object(doc)
    }

    /// `yes` or `no`.
    pub fn answer(&self) -> &'static str {
        if self.yes { "yes" } else { "no" }
    }

    /// The answer a result document holds, if it is a `confirm` step's (an answer not
    /// written counts as yes).
    pub fn read(result: &Value) -> Option<ConfirmResult> {
        let by = result.get(ANSWERED_BY)?.as_str()?;
        Some(ConfirmResult {
            yes: result.get(ANSWER).and_then(Value::as_str).unwrap_or("yes") != "no",
            answered_by: by.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_command_result_keeps_its_keys_in_order() {
        let r = CommandResult::new(Some(3), "{\"a\":1}\n".into(), "oops\nbad\n\n".into())
            .with("host", "web-1")
            .with("stdout_truncated_bytes", 0);
        let doc = r.to_value();
        let keys: Vec<&str> = doc
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "exit_code",
                "stdout",
                "stderr",
                "json",
                "host",
                "stdout_truncated_bytes"
            ]
        );
        assert_eq!(doc["json"], json!({"a": 1}));
        assert_eq!(CommandResult::exit_code_in(&doc), Some(3));
        match r.into_outcome("no exit status", " on web-1") {
            Outcome::Failed { message, .. } => assert_eq!(message, "exit code 3 on web-1: bad"),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn a_confirm_result_reads_back() {
        let r = ConfirmResult {
            yes: false,
            answered_by: "ana".into(),
        };
        assert_eq!(r.to_value(), json!({"answer": "no", "answered_by": "ana"}));
        assert_eq!(ConfirmResult::read(&r.to_value()), Some(r));
        assert_eq!(ConfirmResult::read(&json!({"exit_code": 0})), None);
    }
}
