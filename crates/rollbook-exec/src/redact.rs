//! Secrets never leave the process: every line of output, log, event and journal goes
//! through a [`Redactor`] that replaces secret values with `***`.

/// Replaces known secret values.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is replaced whole.
    secrets: Vec<String>,
}

/// What a secret's value is replaced with.
pub const MASK: &str = "***";

impl Redactor {
    /// Values shorter than 4 bytes are not redacted: they would mask ordinary text
    /// everywhere, and no real credential is that short.
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = values.into_iter().filter(|v| v.len() >= 4).collect();
        // A secret given with a trailing newline is also redacted without it.
        let trimmed: Vec<String> = secrets
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|t| t.len() >= 4)
            .collect();
        secrets.extend(trimmed);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// `text` with every secret value replaced by [`MASK`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }

    /// Redacts every string inside a JSON value.
    pub fn redact_value(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        if self.secrets.is_empty() {
            return value.clone();
        }
        match value {
            Value::String(s) => Value::String(self.redact(s)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.redact_value(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.redact_value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}
