//! The typed plan, as written in YAML (version 1), with a span on everything a diagnostic may
//! point at. `plan-format.md` in `docs/` is the reference; the JSON Schema in `schemas/` is
//! generated from these types, so the doc comments here are what an editor shows.
//!
//! The shapes mirror the YAML one to one (a step has an optional field per action kind, and
//! `decode` enforces that exactly one is set) so that the schema an editor uses is as simple as
//! the text a person writes.

use std::borrow::Cow;
use std::time::Duration as StdDuration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use crate::Span;
use crate::yaml::Node;

/// A value with the place in the file it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// A Handlebars template string (`{{ params.region }}`), kept as written.
pub type Template = Spanned<String>;

/// A jq expression, kept as written.
pub type Jq = Spanned<String>;

/// Any YAML value, kept as a tree with positions (param defaults, JSON bodies, SQL args).
impl JsonSchema for Node {
    fn schema_name() -> Cow<'static, str> {
        "AnyValue".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "description": "Any YAML value." })
    }
}

/// A duration such as `500ms`, `30s`, `5m` or `1h30m`, or `{{ params.NAME }}` naming a
/// `duration` param. A param is resolved when params are bound, so a run and its dry run
/// see the same length (and an operator can give a wait its length per incident).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Duration {
    Fixed(StdDuration),
    Param(String),
}

impl Duration {
    /// The length, given the bound `params` object. A param is checked to hold a duration
    /// when it is bound; should it not, the length is zero.
    pub fn resolve(&self, params: &serde_json::Value) -> StdDuration {
        match self {
            Duration::Fixed(d) => *d,
            Duration::Param(name) => params
                .get(name)
                .and_then(serde_json::Value::as_str)
                .and_then(|s| crate::decode::parse_duration(s).ok())
                .unwrap_or_default(),
        }
    }

    /// The length when it is written in the plan (not a param).
    pub fn fixed(&self) -> Option<StdDuration> {
        match self {
            Duration::Fixed(d) => Some(*d),
            Duration::Param(_) => None,
        }
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration: a number and a unit (ms, s, m, h, d), e.g. 30s, 5m, 1h30m; or `{{ params.NAME }}` naming a param of type duration.",
            "pattern": "^\\s*(([0-9]+\\s*(ns|us|ms|s|sec|secs|m|min|mins|h|hr|hrs|d|days?)\\s*)+|\\{\\{\\s*params\\.[a-z0-9][a-z0-9_-]*\\s*\\}\\})$"
        })
    }
}

/// An ordered map from names to values, as written in YAML.
#[derive(Debug, Clone, PartialEq)]
pub struct Entries<V>(pub Vec<(Spanned<String>, V)>);

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<V> Entries<V> {
    pub fn get(&self, name: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k.value == name).map(|(_, v)| v)
    }
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.value.as_str())
    }
    pub fn iter(&self) -> impl Iterator<Item = &(Spanned<String>, V)> {
        self.0.iter()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl<V: JsonSchema> JsonSchema for Entries<V> {
    fn schema_name() -> Cow<'static, str> {
        format!("Map_of_{}", V::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "additionalProperties": generator.subschema_for::<V>(),
        })
    }
}

/// A rollback plan (format version 1).
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields, title = "rollbook plan")]
pub struct Plan {
    /// The format version; always `1`.
    pub version: Spanned<u64>,
    /// The plan's name; equals the file stem (`rollbook run NAME`).
    pub name: Spanned<String>,
    /// What the plan does, shown by `list` and in reports.
    pub description: Option<Spanned<String>>,
    /// How bad the situation is that this plan answers.
    pub severity: Option<Spanned<Severity>>,
    /// A phrase a person types before the run starts; `--yes` skips it.
    pub confirm: Option<Spanned<String>>,
    /// Runs sharing a lock key never overlap (default: the plan's name).
    pub lock: Option<Spanned<String>>,
    /// Typed inputs: `--param name=value`, `--params-file FILE`.
    #[schemars(default)]
    pub params: Entries<Param>,
    /// Named host groups; `--inventory FILE` adds or overrides groups.
    #[schemars(default)]
    pub inventory: Entries<Vec<Host>>,
    /// Values read at run time only, never printed, logged or journaled.
    #[schemars(default)]
    pub secrets: Entries<SecretSource>,
    /// Named endpoints that steps refer to with `connection:`.
    #[schemars(default)]
    pub connections: Entries<Connection>,
    /// Settings inherited by every step.
    #[schemars(default)]
    pub defaults: Defaults,
    /// The main graph.
    pub steps: Vec<Step>,
    /// Steps run only when the main graph failed.
    #[schemars(default)]
    pub on_failure: Vec<Step>,
    /// Steps that always run last, whatever the outcome (see `run.status`).
    #[schemars(default)]
    pub finally: Vec<Step>,
    /// Where the whole document stands (for diagnostics about the plan as a whole).
    #[schemars(skip)]
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub const NAMES: &[&str] = &["critical", "high", "medium", "low"];
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// A typed input of the plan.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Param {
    /// The value's type (default `string`).
    #[schemars(rename = "type")]
    pub ty: Option<Spanned<ParamType>>,
    /// The value used when none is given.
    pub default: Option<Node>,
    /// The run refuses to start without a value.
    #[schemars(default)]
    pub required: Option<Spanned<bool>>,
    /// The allowed values.
    #[schemars(rename = "enum")]
    pub choices: Option<Vec<Node>>,
    /// What the parameter means, shown by `plan` and `--help`.
    pub description: Option<Spanned<String>>,
    #[schemars(skip)]
    pub span: Span,
}

impl Param {
    pub fn ty(&self) -> ParamType {
        self.ty.as_ref().map_or(ParamType::String, |t| t.value)
    }
    pub fn is_required(&self) -> bool {
        self.required.as_ref().is_some_and(|r| r.value)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Int,
    Bool,
    List,
    Duration,
}

impl ParamType {
    pub const NAMES: &[&str] = &["string", "int", "bool", "list", "duration"];
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// A host: a name (`us-east-op-1`), or an object with connection details.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(untagged)]
pub enum Host {
    Name(Spanned<String>),
    Detailed(HostDetails),
}

impl Host {
    pub fn name(&self) -> &Spanned<String> {
        match self {
            Host::Name(n) => n,
            Host::Detailed(d) => &d.name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HostDetails {
    /// The name steps use (`{{ item }}`).
    pub name: Spanned<String>,
    /// Address to connect to (default: the name).
    pub address: Option<Spanned<String>>,
    /// SSH port.
    pub port: Option<Spanned<u16>>,
    /// SSH user.
    pub user: Option<Spanned<String>>,
    /// Free-form values for templates.
    #[schemars(default)]
    pub vars: Entries<Node>,
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretSource {
    /// An environment variable.
    Env(Spanned<String>),
    /// A file (its content, trailing newline removed).
    File(Spanned<String>),
}

/// A named endpoint.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(rename_all = "snake_case", deny_unknown_fields)]
pub enum Connection {
    Sql(SqlConnection),
    Http(HttpConnection),
}

#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SqlConnection {
    /// `postgres://`, `mysql://` or `sqlite://` URL; usually `{{ secrets.NAME }}`.
    pub url: Template,
}

#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HttpConnection {
    /// Prefix of every `path` of the steps that use this connection.
    pub base_url: Template,
    /// Headers sent with every request.
    #[schemars(default)]
    pub headers: Entries<Template>,
    pub tls: Option<Tls>,
}

/// Settings every step inherits.
#[derive(Debug, Clone, PartialEq, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Defaults {
    /// Per-attempt timeout.
    pub timeout: Option<Spanned<Duration>>,
    pub retry: Option<Retry>,
    pub ssh: Option<SshSettings>,
    pub http: Option<HttpSettings>,
    pub sql: Option<SqlSettings>,
}

/// How a failed attempt is retried; `attempts` counts the first try.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Retry {
    /// Tries in all, the first included (1 = no retry).
    pub attempts: Spanned<u64>,
    /// Wait before the second try (default 1s).
    pub delay: Option<Spanned<Duration>>,
    /// `fixed` (default) or `exponential` (the delay doubles each time).
    pub backoff: Option<Spanned<Backoff>>,
    /// Cap on the delay with exponential backoff.
    pub max_delay: Option<Spanned<Duration>>,
    /// Spread delays randomly by up to half their length.
    pub jitter: Option<Spanned<bool>>,
    #[schemars(skip)]
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum Backoff {
    Fixed,
    Exponential,
}

/// SSH settings usually set once in `defaults.ssh`.
#[derive(Debug, Clone, PartialEq, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SshSettings {
    pub user: Option<Template>,
    pub port: Option<Spanned<u16>>,
    /// Run the command through `sudo -n`.
    pub sudo: Option<Spanned<bool>>,
    /// Variables exported (quoted) before the command.
    #[schemars(default)]
    pub env: Entries<Template>,
    pub identity_file: Option<Template>,
    pub known_hosts: Option<Template>,
    /// `strict` (default): unknown or changed host keys are refused. `accept-new` learns new ones.
    pub host_key_policy: Option<Spanned<HostKeyPolicy>>,
    pub connect_timeout: Option<Spanned<Duration>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    Strict,
    AcceptNew,
}

/// HTTP settings for every `http` step.
#[derive(Debug, Clone, PartialEq, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HttpSettings {
    #[schemars(default)]
    pub headers: Entries<Template>,
    pub tls: Option<Tls>,
}

/// SQL settings for every `sql` step.
#[derive(Debug, Clone, PartialEq, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SqlSettings {
    pub connection: Option<Spanned<String>>,
    pub lock_timeout: Option<Spanned<Duration>>,
}

/// One step: exactly one action (`ssh`, `http`, `sql`, `shell`, `sleep`, `confirm`) or a group
/// of `steps`.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Step {
    /// Unique in its scope; `[a-z0-9][a-z0-9_-]*`.
    pub id: Spanned<String>,
    /// Human label (default: the id).
    pub name: Option<Spanned<String>>,
    /// Steps of the same scope that must succeed (or be skipped) first.
    #[schemars(default)]
    pub needs: Vec<Spanned<String>>,
    /// jq condition; false or null skips the step.
    pub when: Option<Jq>,
    /// Run once per item: a YAML list, or a template yielding one (`{{ inventory.workers }}`).
    pub for_each: Option<ForEach>,
    /// Most instances of this step or group in flight at once.
    pub concurrency: Option<Spanned<u64>>,
    /// Instances allowed to fail before no further instance starts (default 0).
    pub max_failures: Option<Spanned<u64>>,
    /// Per-attempt timeout.
    pub timeout: Option<Spanned<Duration>>,
    pub retry: Option<Retry>,
    /// Health gate: jq condition over the result; the action repeats until it holds.
    pub until: Option<Jq>,
    /// Time between tries of an `until` gate (default 5s).
    pub interval: Option<Spanned<Duration>>,
    /// How long an `until` gate may take in all (default 10m).
    pub deadline: Option<Spanned<Duration>>,
    /// Values taken from the result with jq: `steps.<id>.outputs.<name>`.
    #[schemars(default)]
    pub capture: Entries<Jq>,
    /// `abort` (default) or `continue`.
    pub on_failure: Option<Spanned<OnFailure>>,
    /// What `resume` does with an attempt in flight at a crash: `rerun` (default) or `ask`.
    pub resume: Option<Spanned<ResumePolicy>>,
    pub ssh: Option<SshAction>,
    pub http: Option<HttpAction>,
    pub sql: Option<SqlAction>,
    pub shell: Option<ShellAction>,
    /// Wait this long.
    pub sleep: Option<Spanned<Duration>>,
    /// A question a person must answer to go on (`--yes` answers it).
    pub confirm: Option<Template>,
    /// A group: these steps run (once per `for_each` item) as a small graph of their own.
    pub steps: Option<Vec<Step>>,
    #[schemars(skip)]
    pub span: Span,
}

impl Step {
    /// The durations written on this step itself (not on the steps of its group).
    pub fn durations(&self) -> Vec<&Spanned<Duration>> {
        let mut all: Vec<&Spanned<Duration>> = [&self.timeout, &self.interval, &self.deadline]
            .into_iter()
            .flatten()
            .collect();
        all.extend(self.sleep.as_ref());
        all.extend(self.retry.iter().flat_map(Retry::durations));
        all.extend(
            self.ssh
                .as_ref()
                .and_then(|s| s.settings.connect_timeout.as_ref()),
        );
        all.extend(self.sql.as_ref().and_then(|s| s.lock_timeout.as_ref()));
        all
    }
}

impl Retry {
    pub fn durations(&self) -> impl Iterator<Item = &Spanned<Duration>> {
        self.delay.iter().chain(self.max_delay.iter())
    }
}

impl Defaults {
    /// Every duration of `defaults`.
    pub fn durations(&self) -> Vec<&Spanned<Duration>> {
        let mut all: Vec<&Spanned<Duration>> = self.timeout.iter().collect();
        all.extend(self.retry.iter().flat_map(Retry::durations));
        all.extend(self.ssh.as_ref().and_then(|s| s.connect_timeout.as_ref()));
        all.extend(self.sql.as_ref().and_then(|s| s.lock_timeout.as_ref()));
        all
    }
}

/// The one thing a step does.
#[derive(Debug, Clone, Copy)]
pub enum ActionRef<'a> {
    Ssh(&'a SshAction),
    Http(&'a HttpAction),
    Sql(&'a SqlAction),
    Shell(&'a ShellAction),
    Sleep(&'a Spanned<Duration>),
    Confirm(&'a Template),
    Group(&'a [Step]),
}

impl ActionRef<'_> {
    pub fn kind(&self) -> &'static str {
        match self {
            ActionRef::Ssh(_) => "ssh",
            ActionRef::Http(_) => "http",
            ActionRef::Sql(_) => "sql",
            ActionRef::Shell(_) => "shell",
            ActionRef::Sleep(_) => "sleep",
            ActionRef::Confirm(_) => "confirm",
            ActionRef::Group(_) => "steps",
        }
    }
}

impl Step {
    /// The step's action. `decode` guarantees exactly one is set; a step built otherwise is
    /// treated as an empty group.
    pub fn action(&self) -> ActionRef<'_> {
        if let Some(a) = &self.ssh {
            ActionRef::Ssh(a)
        } else if let Some(a) = &self.http {
            ActionRef::Http(a)
        } else if let Some(a) = &self.sql {
            ActionRef::Sql(a)
        } else if let Some(a) = &self.shell {
            ActionRef::Shell(a)
        } else if let Some(a) = &self.sleep {
            ActionRef::Sleep(a)
        } else if let Some(a) = &self.confirm {
            ActionRef::Confirm(a)
        } else {
            ActionRef::Group(self.steps.as_deref().unwrap_or_default())
        }
    }

    pub fn label(&self) -> &str {
        self.name.as_ref().map_or(&self.id.value, |n| &n.value)
    }
}

/// The items a step runs for.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(untagged)]
pub enum ForEach {
    /// Items written out.
    List(Vec<Node>),
    /// A template that yields a list: `{{ inventory.operators }}`, `{{ params.nodes }}`,
    /// `{{ steps.find.outputs.ids }}`.
    Template(Template),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum OnFailure {
    Abort,
    Continue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum ResumePolicy {
    Rerun,
    Ask,
}

/// A command or script on a host over SSH.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SshAction {
    /// Inventory name or address.
    pub host: Template,
    /// A command; substituted values are shell-quoted.
    pub run: Option<Template>,
    /// A multi-line script sent on stdin to `sh -se`.
    pub script: Option<Template>,
    /// Copy a local file to the host.
    pub upload: Option<Upload>,
    #[schemars(flatten)]
    pub settings: SshSettings,
    #[schemars(skip)]
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Upload {
    pub from: Template,
    pub to: Template,
    /// Octal file mode, e.g. `"0644"`.
    pub mode: Option<Spanned<String>>,
}

/// An HTTP request.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HttpAction {
    /// GET (default), POST, PUT, PATCH, DELETE, HEAD.
    pub method: Option<Spanned<String>>,
    /// The full URL; or `connection` + `path`.
    pub url: Option<Template>,
    /// A named `http` connection whose `base_url` prefixes `path`.
    pub connection: Option<Spanned<String>>,
    pub path: Option<Template>,
    #[schemars(default)]
    pub headers: Entries<Template>,
    #[schemars(default)]
    pub query: Entries<Template>,
    /// A JSON body, built as a value (strings inside are templates).
    pub json: Option<Node>,
    /// A raw body.
    pub body: Option<Template>,
    /// A form-encoded body.
    #[schemars(default)]
    pub form: Entries<Template>,
    pub expect: Option<HttpExpect>,
    pub tls: Option<Tls>,
    #[schemars(skip)]
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HttpExpect {
    /// A code (`200`), a list (`[200, 204]`) or a class (`"2xx"`). Default: any 2xx.
    pub status: Option<Spanned<StatusExpect>>,
    pub body_contains: Option<Template>,
    /// jq condition over `{status, headers, body, json}`.
    pub jq: Option<Jq>,
}

#[derive(Debug, Clone, PartialEq, JsonSchema, serde::Serialize)]
#[schemars(untagged)]
#[serde(untagged)]
pub enum StatusExpect {
    Code(u16),
    Codes(Vec<u16>),
    /// `"2xx"`, `"3xx"`, `"4xx"`, `"5xx"`.
    Class(String),
}

#[derive(Debug, Clone, PartialEq, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Tls {
    pub ca_file: Option<Template>,
    pub client_cert: Option<Template>,
    pub client_key: Option<Template>,
    /// Skip certificate verification. Explicit, and flagged by the dry run.
    pub insecure: Option<Spanned<bool>>,
}

/// SQL statements against a database.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SqlAction {
    /// A named `sql` connection.
    pub connection: Option<Spanned<String>>,
    /// Or a URL.
    pub url: Option<Template>,
    /// One statement; `args` are bound to its placeholders (`$1` or `?`).
    pub query: Option<Template>,
    #[schemars(default)]
    pub args: Vec<Node>,
    /// Several statements, in order; each a SQL string, or `{ query, args }` to bind values.
    pub statements: Option<Vec<Statement>>,
    /// Run everything in one transaction (all or nothing).
    pub transaction: Option<Spanned<bool>>,
    pub expect: Option<SqlExpect>,
    pub lock_timeout: Option<Spanned<Duration>>,
    #[schemars(skip)]
    pub span: Span,
}

impl SqlAction {
    /// The statements in order with their args: the `query` alone, or the `statements`.
    pub fn all_statements(&self) -> Vec<Statement> {
        match (&self.query, &self.statements) {
            (Some(q), _) => vec![Statement {
                query: q.clone(),
                args: self.args.clone(),
            }],
            (None, Some(list)) => list.clone(),
            (None, None) => Vec::new(),
        }
    }
}

/// One statement of a `statements` list.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub query: Template,
    /// Bound to the statement's placeholders (`$1`, `?`), never spliced.
    pub args: Vec<Node>,
}

impl JsonSchema for Statement {
    fn schema_name() -> Cow<'static, str> {
        "Statement".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "string", "description": "A SQL statement." },
                {
                    "type": "object",
                    "description": "A SQL statement with values bound to its placeholders.",
                    "properties": {
                        "query": { "type": "string" },
                        "args": { "type": "array" }
                    },
                    "required": ["query"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SqlExpect {
    /// Checked before commit: a number or `{ min, max }`.
    pub rows_affected: Spanned<RowsExpect>,
}

#[derive(Debug, Clone, PartialEq, JsonSchema, serde::Serialize)]
#[schemars(untagged)]
#[serde(untagged)]
pub enum RowsExpect {
    Exactly(u64),
    Range { min: Option<u64>, max: Option<u64> },
}

/// A command on the machine running rollbook.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ShellAction {
    pub run: Option<Template>,
    pub script: Option<Template>,
    #[schemars(default)]
    pub env: Entries<Template>,
    pub cwd: Option<Template>,
    #[schemars(skip)]
    pub span: Span,
}
