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
    /// The value as decoded.
    pub value: T,
    /// Where it was written.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// `value`, read at `span`.
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
    /// A length written in the plan.
    Fixed(StdDuration),
    /// `{{ params.NAME }}`: the name of a `duration` param.
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
///
/// A list of pairs rather than a map: the order is the plan's (env variables and headers are
/// sent in it), and duplicates survive decoding so they can be reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Entries<V>(pub Vec<(Spanned<String>, V)>);

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<V> Entries<V> {
    /// The value of the first entry named `name`.
    pub fn get(&self, name: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k.value == name).map(|(_, v)| v)
    }
    /// Whether an entry is named `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    /// The names, in the order written.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.value.as_str())
    }
    /// The entries, in the order written.
    pub fn iter(&self) -> impl Iterator<Item = &(Spanned<String>, V)> {
        self.0.iter()
    }
    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// How many entries there are (duplicates included).
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
            "description": "Names and their values; the order written is kept.",
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
    /// How long the rollback may take (the seed's decision matrix: "service won't start:
    /// rollback in under 5 minutes"): `validate` warns when the worst case cannot fit, `plan
    /// --summary` compares, and the report says whether a run kept it.
    pub budget: Option<Spanned<Duration>>,
    /// Typed inputs: `--param name=value`, `--params-file FILE`.
    #[schemars(default)]
    pub params: Entries<Param>,
    /// Named host groups; `--inventory FILE|DIR` adds or overrides groups.
    #[schemars(default)]
    pub inventory: Entries<Group>,
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

/// How bad the situation is that a plan answers; shown by `list` and in incident reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum Severity {
    /// The most severe level.
    Critical,
    /// Severe, below `critical`.
    High,
    /// Between `high` and `low`.
    Medium,
    /// The least severe level.
    Low,
}

impl Severity {
    /// The names as written in plans, in declaration order.
    pub const NAMES: &[&str] = &["critical", "high", "medium", "low"];
    /// The name as written in plans.
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
    /// Where the param's mapping is written.
    #[schemars(skip)]
    pub span: Span,
}

impl Param {
    /// The declared type, `string` when none is written.
    pub fn ty(&self) -> ParamType {
        self.ty.as_ref().map_or(ParamType::String, |t| t.value)
    }
    /// Whether the run refuses to start without a value (`required: true`).
    pub fn is_required(&self) -> bool {
        self.required.as_ref().is_some_and(|r| r.value)
    }
}

/// The type of a param's value, checked when params are bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum ParamType {
    /// Any text (the default).
    String,
    /// A whole number.
    Int,
    /// `true` or `false`.
    Bool,
    /// A list of values (`--param nodes=a,b,c`), e.g. for `for_each`.
    List,
    /// A length such as `30s` or `5m`, usable as `{{ params.NAME }}` in durations.
    Duration,
}

impl ParamType {
    /// The names as written in plans, in declaration order.
    pub const NAMES: &[&str] = &["string", "int", "bool", "list", "duration"];
    /// The name as written in plans.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// An inventory group: a list of hosts, or `{ hosts: [...], children: [group, ...] }`.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(untagged)]
pub enum Group {
    /// Just its hosts.
    Hosts(Vec<Host>),
    /// Its own hosts and the groups whose hosts it holds too.
    Nested(GroupDetails),
}

impl Group {
    /// The hosts written in the group itself (not its children's).
    pub fn hosts(&self) -> &[Host] {
        match self {
            Group::Hosts(h) => h,
            Group::Nested(d) => &d.hosts,
        }
    }

    /// The groups named under `children`, in the order written.
    pub fn children(&self) -> &[Spanned<String>] {
        match self {
            Group::Hosts(_) => &[],
            Group::Nested(d) => &d.children,
        }
    }
}

/// A group written as a mapping: its own hosts and its child groups.
#[derive(Debug, Clone, PartialEq, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct GroupDetails {
    /// The group's own hosts, written as in a list group.
    #[schemars(default)]
    pub hosts: Vec<Host>,
    /// Groups whose hosts (and their children's, recursively) belong to this group too.
    #[schemars(default)]
    pub children: Vec<Spanned<String>>,
}

/// A host: a name (`us-east-op-1`), or an object with connection details.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(untagged)]
pub enum Host {
    /// Just the name, which is also the address to connect to.
    Name(Spanned<String>),
    /// A name with its own address, port, user or template values.
    Detailed(HostDetails),
}

impl Host {
    /// The name steps use for this host.
    pub fn name(&self) -> &Spanned<String> {
        match self {
            Host::Name(n) => n,
            Host::Detailed(d) => &d.name,
        }
    }
}

/// A host written as an object: its name and how to reach it when that differs from the
/// name.
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
    /// Free-form values for templates: `{{ host.vars.NAME }}`,
    /// `{{ inventory.hosts.HOST.vars.NAME }}`.
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
    /// A database, for `sql` steps.
    Sql(SqlConnection),
    /// An HTTP service, for `http` steps.
    Http(HttpConnection),
}

/// A database that `sql` steps name with `connection:` (and `defaults.sql.connection`).
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SqlConnection {
    /// `postgres://`, `mysql://` or `sqlite://` URL; usually `{{ secrets.NAME }}`.
    pub url: Template,
}

/// An HTTP service that `http` steps name with `connection:`, then give only a `path`.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HttpConnection {
    /// Prefix of every `path` of the steps that use this connection.
    pub base_url: Template,
    /// Headers sent with every request.
    #[schemars(default)]
    pub headers: Entries<Template>,
    /// TLS settings for this service (a step's own `tls` wins).
    pub tls: Option<Tls>,
}

/// Settings every step inherits.
#[derive(Debug, Clone, PartialEq, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Defaults {
    /// Per-attempt timeout.
    pub timeout: Option<Spanned<Duration>>,
    /// How failed attempts are retried, for steps that say nothing.
    pub retry: Option<Retry>,
    /// SSH settings for every `ssh` step.
    pub ssh: Option<SshSettings>,
    /// Headers and TLS for every `http` step.
    pub http: Option<HttpSettings>,
    /// The connection and lock timeout of every `sql` step.
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
    /// Where the `retry` mapping is written.
    #[schemars(skip)]
    pub span: Span,
}

/// How the delay between retries grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum Backoff {
    /// The same `delay` every time.
    Fixed,
    /// The delay doubles after each try, up to `max_delay`.
    Exponential,
}

/// SSH settings usually set once in `defaults.ssh`.
#[derive(Debug, Clone, PartialEq, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SshSettings {
    /// The user to log in as (the step's, else the inventory host's, else this default).
    pub user: Option<Template>,
    /// The port (the step's, else the inventory host's, else this default).
    pub port: Option<Spanned<u16>>,
    /// Run the command through `sudo -n`.
    pub sudo: Option<Spanned<bool>>,
    /// Variables exported (quoted) before the command.
    #[schemars(default)]
    pub env: Entries<Template>,
    /// A private key file to log in with.
    pub identity_file: Option<Template>,
    /// The known-hosts file that host keys are checked against.
    pub known_hosts: Option<Template>,
    /// `strict` (default): unknown or changed host keys are refused. `accept-new` learns new ones.
    pub host_key_policy: Option<Spanned<HostKeyPolicy>>,
    /// How long connecting (TCP, handshake and login) may take.
    pub connect_timeout: Option<Spanned<Duration>>,
}

/// What to do with a host key that is not in known_hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Refuse unknown and changed keys (the default).
    Strict,
    /// Learn the key of a host seen for the first time; still refuse changed keys.
    AcceptNew,
}

/// HTTP settings for every `http` step.
#[derive(Debug, Clone, PartialEq, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HttpSettings {
    /// Headers sent with every request (a connection's or step's header of the same name
    /// wins).
    #[schemars(default)]
    pub headers: Entries<Template>,
    /// TLS settings for every request without its own or its connection's.
    pub tls: Option<Tls>,
}

/// SQL settings for every `sql` step.
#[derive(Debug, Clone, PartialEq, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SqlSettings {
    /// The `sql` connection of steps that name neither a connection nor a URL.
    pub connection: Option<Spanned<String>>,
    /// How long a statement may wait for a lock before it fails (set on the server).
    pub lock_timeout: Option<Spanned<Duration>>,
}

/// One step: exactly one action (`ssh`, `http`, `sql`, `shell`, `sleep`, `confirm`) or a group
/// of `steps`. The steps of a list run in the order they are written: each starts after the
/// step above it has finished, unless it says `needs` (or its group says `parallel: true`).
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Step {
    /// Unique in its scope; `[a-z0-9][a-z0-9_-]*`.
    pub id: Spanned<String>,
    /// Human label (default: the id).
    pub name: Option<Spanned<String>>,
    /// Steps of the same list that must succeed (or be skipped) first, instead of the step
    /// above it. `needs: []` starts the step at once.
    pub needs: Option<Vec<Spanned<String>>>,
    /// On a group: its steps run together, each after its own `needs` only, instead of one
    /// after the other (default false).
    pub parallel: Option<Spanned<bool>>,
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
    /// How failed attempts are retried (default: from `defaults`, else no retry).
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
    /// Run a command or script on a host over SSH.
    pub ssh: Option<SshAction>,
    /// Send an HTTP request.
    pub http: Option<HttpAction>,
    /// Run SQL statements against a database.
    pub sql: Option<SqlAction>,
    /// Run a command on the machine running rollbook.
    pub shell: Option<ShellAction>,
    /// Wait this long.
    pub sleep: Option<Spanned<Duration>>,
    /// A question a person must answer to go on (`--yes` answers it).
    pub confirm: Option<Template>,
    /// A group: these steps run (once per `for_each` item) as a small graph of their own.
    pub steps: Option<Vec<Step>>,
    /// Call another plan of the plans directory by name: its `steps` run here, as a
    /// sub-graph of this run (one journal, one lock), their nodes named under this step.
    pub plan: Option<Spanned<String>>,
    /// With `plan`: the called plan's params. Values may be templates, rendered in this
    /// plan's context when the plan is compiled.
    #[schemars(default)]
    pub params: Entries<Node>,
    /// With `plan`: the called plan's secrets, each given one of this plan's
    /// (`called_name: this_plans_name`). A called plan sees no other secret.
    #[schemars(default)]
    pub secrets: Entries<Spanned<String>>,
    /// What puts back what this step did, run when the scope it succeeded in fails: its
    /// `for_each` instance, else the run (in reverse order of completion, before
    /// `on_failure`). Evaluated with the step's own context: same host, `item`, `index`, and
    /// its outputs as `steps.<id>.outputs`.
    pub undo: Option<Undo>,
    /// This step cannot be undone (a dropped column, deleted backups): the run asks for the
    /// plan's confirmation again right before it starts (default false).
    pub irreversible: Option<Spanned<bool>>,
    /// This step verifies (`true`) or does not (`false`): the report's checks. Without it,
    /// the report guesses (a gate, an `expect`, an id such as `verify*`, `check*`, `*health*`).
    pub check: Option<Spanned<bool>>,
    /// Where the step's mapping is written.
    #[schemars(skip)]
    pub span: Span,
}

/// A step's `undo`: one action (`ssh`, `http`, `sql` or `shell`). An `ssh` undo of an `ssh`
/// step may leave out `host` and the settings: it takes the step's.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Undo {
    /// Run a command or script over SSH; `host` and the settings default to the step's own
    /// `ssh` action.
    #[schemars(with = "Option<SshUndo>")]
    pub ssh: Option<SshAction>,
    /// Send an HTTP request.
    pub http: Option<HttpAction>,
    /// Run SQL statements against a database.
    pub sql: Option<SqlAction>,
    /// Run a command on the machine running rollbook.
    pub shell: Option<ShellAction>,
    /// Where `undo` is written (its key, which diagnostics point at).
    #[schemars(skip)]
    pub span: Span,
}

/// The `ssh` action of an `undo` as written (the schema of [`Undo::ssh`]): `host` may be left
/// out when the step is an `ssh` step.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SshUndo {
    /// Inventory name or address (default: the step's).
    host: Option<Template>,
    /// A command; substituted values are shell-quoted.
    run: Option<Template>,
    /// A multi-line script sent on stdin to `sh -se`.
    script: Option<Template>,
    /// Copy a local file to the host.
    upload: Option<Upload>,
    /// Connection and command settings, over the step's.
    #[schemars(flatten)]
    settings: SshSettings,
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
    /// The durations written in it: `delay` and `max_delay`.
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
    /// `ssh:`
    Ssh(&'a SshAction),
    /// `http:`
    Http(&'a HttpAction),
    /// `sql:`
    Sql(&'a SqlAction),
    /// `shell:`
    Shell(&'a ShellAction),
    /// `sleep:`
    Sleep(&'a Spanned<Duration>),
    /// `confirm:`
    Confirm(&'a Template),
    /// `steps:`: a group (or a step with no action at all).
    Group(&'a [Step]),
    /// `plan:`: a call of another plan, by name.
    Call(&'a Spanned<String>),
}

impl ActionRef<'_> {
    /// The key the action is written under: `ssh`, `http`, `sql`, `shell`, `sleep`,
    /// `confirm`, or `steps` for a group.
    pub fn kind(&self) -> &'static str {
        match self {
            ActionRef::Ssh(_) => "ssh",
            ActionRef::Http(_) => "http",
            ActionRef::Sql(_) => "sql",
            ActionRef::Shell(_) => "shell",
            ActionRef::Sleep(_) => "sleep",
            ActionRef::Confirm(_) => "confirm",
            ActionRef::Group(_) => "steps",
            ActionRef::Call(_) => "plan",
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
        } else if let Some(name) = &self.plan {
            ActionRef::Call(name)
        } else {
            ActionRef::Group(self.steps.as_deref().unwrap_or_default())
        }
    }

    /// What to call the step for people: its `name`, else its id.
    pub fn label(&self) -> &str {
        self.name.as_ref().map_or(&self.id.value, |n| &n.value)
    }

    /// The ids written in `needs` (none when it is absent or `[]`).
    pub fn needs_written(&self) -> &[Spanned<String>] {
        self.needs.as_deref().unwrap_or_default()
    }

    /// A group whose steps run together (`parallel: true`).
    pub fn is_parallel(&self) -> bool {
        self.parallel.as_ref().is_some_and(|p| p.value)
    }

    /// Marked `irreversible: true`.
    pub fn is_irreversible(&self) -> bool {
        self.irreversible.as_ref().is_some_and(|p| p.value)
    }

    /// The step that undoes this one: the step with its `undo` action in place of its own,
    /// and no `when`, `for_each`, `until`, `capture` or `undo` of its own (its timeout,
    /// retry and other settings stay). `None` when it has no `undo`.
    pub fn undo_step(&self) -> Option<Step> {
        let undo = self.undo.as_ref()?;
        let mut step = self.clone();
        step.ssh = undo.ssh.clone();
        step.http = undo.http.clone();
        step.sql = undo.sql.clone();
        step.shell = undo.shell.clone();
        step.sleep = None;
        step.confirm = None;
        step.steps = None;
        step.needs = None;
        step.when = None;
        step.for_each = None;
        step.until = None;
        step.capture = Entries::default();
        step.undo = None;
        step.irreversible = None;
        step.span = undo.span;
        Some(step)
    }
}

/// What a step waits for before it starts, by the rule that a list runs in order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Waits<'a> {
    /// The steps its `needs` names (none for `needs: []`).
    Needs(&'a [Spanned<String>]),
    /// The step just above it (its index in the list): it has no `needs` in a list that runs
    /// in order.
    Above(usize),
    /// Nothing: the first step of its list, or a step without `needs` in a `parallel: true`
    /// group.
    Nothing,
}

/// What each step of a list waits for. `parallel` is true for the steps of a
/// `parallel: true` group; the lists `steps`, `on_failure` and `finally` run in order.
pub fn waits(steps: &[Step], parallel: bool) -> Vec<Waits<'_>> {
    steps
        .iter()
        .enumerate()
        .map(|(i, step)| match &step.needs {
            Some(needs) => Waits::Needs(needs),
            None if parallel || i == 0 => Waits::Nothing,
            None => Waits::Above(i - 1),
        })
        .collect()
}

/// For each step of a list, the indexes of the steps of the same list it waits for, in
/// order, without repeats (a `needs` id that names no step of the list is left out).
pub fn waits_indexes(steps: &[Step], parallel: bool) -> Vec<Vec<usize>> {
    let index: std::collections::HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .rev()
        .map(|(i, s)| (s.id.value.as_str(), i))
        .collect();
    waits(steps, parallel)
        .into_iter()
        .map(|w| match w {
            Waits::Needs(needs) => {
                let mut found: Vec<usize> = Vec::new();
                for j in needs.iter().filter_map(|n| index.get(n.value.as_str())) {
                    if !found.contains(j) {
                        found.push(*j);
                    }
                }
                found
            }
            Waits::Above(j) => vec![j],
            Waits::Nothing => Vec::new(),
        })
        .collect()
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

/// What a step's failure does to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum OnFailure {
    /// Stop the phase: nothing new starts, `on_failure` steps run (the default).
    Abort,
    /// Record the failure and go on (the steps that need this one still run); the run ends
    /// `failed`, without `on_failure` steps.
    Continue,
}

/// What `resume` does with an attempt whose outcome a crash left unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum ResumePolicy {
    /// Run it again (the default): for actions that are safe to repeat.
    Rerun,
    /// Ask a person first: `yes` runs it again, `no` marks it skipped. For steps that must
    /// not run twice, such as a migration.
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
    /// Connection and command settings, over those of `defaults.ssh`.
    #[schemars(flatten)]
    pub settings: SshSettings,
    /// Where the `ssh` mapping is written.
    #[schemars(skip)]
    pub span: Span,
}

/// A local file copied to the host before the command runs (checked after the copy).
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Upload {
    /// The local file to copy.
    pub from: Template,
    /// The path on the host.
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
    /// With `connection`: appended to its `base_url`.
    pub path: Option<Template>,
    /// Request headers, over those of the connection and `defaults.http` (names compared
    /// without case).
    #[schemars(default)]
    pub headers: Entries<Template>,
    /// Query parameters, percent-encoded and appended to the URL.
    #[schemars(default)]
    pub query: Entries<Template>,
    /// A JSON body, built as a value (strings inside are templates).
    pub json: Option<Node>,
    /// A raw body.
    pub body: Option<Template>,
    /// A form-encoded body.
    #[schemars(default)]
    pub form: Entries<Template>,
    /// What the response must be for the step to succeed (default: any 2xx status).
    pub expect: Option<HttpExpect>,
    /// TLS settings (over the connection's and `defaults.http`'s).
    pub tls: Option<Tls>,
    /// Where the `http` mapping is written.
    #[schemars(skip)]
    pub span: Span,
}

/// What an HTTP response must be for the step to succeed; every check given must hold.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HttpExpect {
    /// A code (`200`), a list (`[200, 204]`) or a class (`"2xx"`). Default: any 2xx.
    pub status: Option<Spanned<StatusExpect>>,
    /// Text the response body must contain.
    pub body_contains: Option<Template>,
    /// jq condition over `{status, headers, body, json}`.
    pub jq: Option<Jq>,
}

/// The HTTP status a response must have.
#[derive(Debug, Clone, PartialEq, JsonSchema, serde::Serialize)]
#[schemars(untagged)]
#[serde(untagged)]
pub enum StatusExpect {
    /// Exactly this code.
    Code(u16),
    /// One of these codes.
    Codes(Vec<u16>),
    /// `"2xx"`, `"3xx"`, `"4xx"`, `"5xx"`.
    Class(String),
}

/// How an HTTPS server is verified and how rollbook proves who it is.
#[derive(Debug, Clone, PartialEq, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Tls {
    /// A PEM file of CA certificates to trust instead of the system's.
    pub ca_file: Option<Template>,
    /// A PEM client certificate, for servers that ask for one (with `client_key`).
    pub client_cert: Option<Template>,
    /// The PEM private key of `client_cert`.
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
    /// Values bound to the placeholders of `query`, in order; never spliced into the text.
    #[schemars(default)]
    pub args: Vec<Node>,
    /// Several statements, in order; each a SQL string, or `{ query, args }` to bind values.
    pub statements: Option<Vec<Statement>>,
    /// Run everything in one transaction (all or nothing).
    pub transaction: Option<Spanned<bool>>,
    /// A guard checked before COMMIT: otherwise the transaction is rolled back.
    pub expect: Option<SqlExpect>,
    /// How long a statement may wait for a lock (over `defaults.sql`), set on the server.
    pub lock_timeout: Option<Spanned<Duration>>,
    /// Where the `sql` mapping is written.
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
    /// The SQL text; values belong in `args`.
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
            "description": "One statement: SQL text, or `{ query, args }` to bind values to its placeholders.",
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

/// What a `sql` step must have done, checked before it commits.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SqlExpect {
    /// Checked before commit: a number or `{ min, max }`.
    pub rows_affected: Spanned<RowsExpect>,
}

/// How many rows a `sql` step's statements must affect in all: a number, or `{ min, max }`.
#[derive(Debug, Clone, PartialEq, JsonSchema, serde::Serialize)]
#[schemars(untagged)]
#[serde(untagged)]
pub enum RowsExpect {
    /// Exactly this many rows.
    Exactly(u64),
    /// Between `min` and `max` rows, both included; either may be left out.
    Range {
        /// The fewest rows allowed.
        min: Option<u64>,
        /// The most rows allowed.
        max: Option<u64>,
    },
}

/// A command on the machine running rollbook.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ShellAction {
    /// One command line, run by `sh -c`; substituted values are shell-quoted.
    pub run: Option<Template>,
    /// A multi-line script sent on stdin to `sh -se`.
    pub script: Option<Template>,
    /// Variables set for the command, on top of rollbook's environment.
    #[schemars(default)]
    pub env: Entries<Template>,
    /// The directory the command runs in; a relative path is relative to where rollbook
    /// was started.
    pub cwd: Option<Template>,
    /// Where the `shell` mapping is written.
    #[schemars(skip)]
    pub span: Span,
}
