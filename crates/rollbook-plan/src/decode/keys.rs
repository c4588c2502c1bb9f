//! Keys of each mapping, in the order the docs list them. The schema test checks that these
//! agree with the JSON Schema generated from the model.

pub const PLAN: &[&str] = &[
    "version",
    "name",
    "description",
    "severity",
    "confirm",
    "lock",
    "params",
    "inventory",
    "secrets",
    "connections",
    "defaults",
    "steps",
    "on_failure",
    "finally",
];
pub const PARAM: &[&str] = &["type", "default", "required", "enum", "description"];
pub const HOST: &[&str] = &["name", "address", "port", "user", "vars"];
pub const SECRET: &[&str] = &["env", "file"];
pub const CONNECTION: &[&str] = &["sql", "http"];
pub const SQL_CONNECTION: &[&str] = &["url"];
pub const HTTP_CONNECTION: &[&str] = &["base_url", "headers", "tls"];
pub const DEFAULTS: &[&str] = &["timeout", "retry", "ssh", "http", "sql"];
pub const RETRY: &[&str] = &["attempts", "delay", "backoff", "max_delay", "jitter"];
pub const SSH_SETTINGS: &[&str] = &[
    "user",
    "port",
    "sudo",
    "env",
    "identity_file",
    "known_hosts",
    "host_key_policy",
    "connect_timeout",
];
pub const SSH_ACTION_OWN: &[&str] = &["host", "run", "script", "upload"];
pub const UPLOAD: &[&str] = &["from", "to", "mode"];
pub const HTTP_SETTINGS: &[&str] = &["headers", "tls"];
pub const SQL_SETTINGS: &[&str] = &["connection", "lock_timeout"];
pub const STEP_COMMON: &[&str] = &[
    "id",
    "name",
    "needs",
    "when",
    "for_each",
    "concurrency",
    "max_failures",
    "timeout",
    "retry",
    "until",
    "interval",
    "deadline",
    "capture",
    "on_failure",
    "resume",
];
pub const ACTIONS: &[&str] = &["ssh", "http", "sql", "shell", "sleep", "confirm", "steps"];
pub const HTTP_ACTION: &[&str] = &[
    "method",
    "url",
    "connection",
    "path",
    "headers",
    "query",
    "json",
    "body",
    "form",
    "expect",
    "tls",
];
pub const HTTP_EXPECT: &[&str] = &["status", "body_contains", "jq"];
pub const TLS: &[&str] = &["ca_file", "client_cert", "client_key", "insecure"];
pub const SQL_ACTION: &[&str] = &[
    "connection",
    "url",
    "query",
    "args",
    "statements",
    "transaction",
    "expect",
    "lock_timeout",
];
pub const STATEMENT: &[&str] = &["query", "args"];
pub const SQL_EXPECT: &[&str] = &["rows_affected"];
pub const ROWS_RANGE: &[&str] = &["min", "max"];
pub const SHELL_ACTION: &[&str] = &["run", "script", "env", "cwd"];
