//! Keys of each mapping, in the order the docs list them. The schema test checks that these
//! agree with the JSON Schema generated from the model.

/// The plan's top-level keys.
pub const PLAN: &[&str] = &[
    "version",
    "name",
    "description",
    "severity",
    "confirm",
    "lock",
    "budget",
    "params",
    "inventory",
    "secrets",
    "connections",
    "defaults",
    "steps",
    "on_failure",
    "finally",
];
/// Keys of a param.
pub const PARAM: &[&str] = &["type", "default", "required", "enum", "description"];
/// Keys of an inventory group written as a mapping.
pub const GROUP: &[&str] = &["hosts", "children"];
/// Keys of an inventory host written as an object.
pub const HOST: &[&str] = &["name", "address", "port", "user", "vars"];
/// The sources of a secret (one of them).
pub const SECRET: &[&str] = &["env", "file"];
/// The kinds of a connection (one of them).
pub const CONNECTION: &[&str] = &["sql", "http"];
/// Keys of an `sql` connection.
pub const SQL_CONNECTION: &[&str] = &["url"];
/// Keys of an `http` connection.
pub const HTTP_CONNECTION: &[&str] = &["base_url", "headers", "tls"];
/// Keys of `defaults`.
pub const DEFAULTS: &[&str] = &["timeout", "retry", "ssh", "http", "sql"];
/// Keys of `retry`.
pub const RETRY: &[&str] = &["attempts", "delay", "backoff", "max_delay", "jitter"];
/// SSH settings, in `defaults.ssh` and on an `ssh` action.
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
/// Keys of an `ssh` action besides its settings.
pub const SSH_ACTION_OWN: &[&str] = &["host", "run", "script", "upload"];
/// Keys of an `ssh` action's `upload`.
pub const UPLOAD: &[&str] = &["from", "to", "mode"];
/// Keys of `defaults.http`.
pub const HTTP_SETTINGS: &[&str] = &["headers", "tls"];
/// Keys of `defaults.sql`.
pub const SQL_SETTINGS: &[&str] = &["connection", "lock_timeout"];
/// Keys every step may have, besides its action.
pub const STEP_COMMON: &[&str] = &[
    "id",
    "name",
    "needs",
    "parallel",
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
    "undo",
    "irreversible",
    "check",
];
/// The action keys of a step, of which exactly one is set (or `steps`, a group).
pub const ACTIONS: &[&str] = &[
    "ssh", "http", "sql", "shell", "sleep", "confirm", "steps", "plan",
];
/// Keys of a step that calls a plan (`plan:`), besides the common ones.
pub const CALL: &[&str] = &["params", "secrets"];
/// The action keys of an `undo` (exactly one).
pub const UNDO: &[&str] = &["ssh", "http", "sql", "shell"];
/// Keys of an `http` action.
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
/// Keys of an `http` action's `expect`.
pub const HTTP_EXPECT: &[&str] = &["status", "body_contains", "jq"];
/// Keys of `tls`.
pub const TLS: &[&str] = &["ca_file", "client_cert", "client_key", "insecure"];
/// Keys of an `sql` action.
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
/// Keys of a statement written as `{ query, args }`.
pub const STATEMENT: &[&str] = &["query", "args"];
/// Keys of an `sql` action's `expect`.
pub const SQL_EXPECT: &[&str] = &["rows_affected"];
/// Keys of `rows_affected` written as a range.
pub const ROWS_RANGE: &[&str] = &["min", "max"];
/// Keys of a `shell` action.
pub const SHELL_ACTION: &[&str] = &["run", "script", "env", "cwd"];
