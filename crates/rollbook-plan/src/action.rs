//! Actions with every template rendered and every default applied: what a runner receives.
//! The dry run shows the same values (with secrets masked), so what is reviewed is what runs.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::model::{HostKeyPolicy, RowsExpect, StatusExpect};
pub use crate::shell::ShellText;

/// One concrete thing to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// A command or script on a remote host.
    Ssh(SshCommand),
    /// An HTTP request.
    Http(HttpRequest),
    /// SQL statements against a database.
    Sql(SqlCall),
    /// A local command.
    Shell(ShellCommand),
    /// A wait.
    Sleep {
        /// How long (seconds in JSON).
        #[serde(with = "secs")]
        duration: Duration,
    },
    /// A question a person answers before the run goes on.
    Confirm {
        /// The question, rendered.
        prompt: String,
    },
}

impl Action {
    /// The runner kind that executes it: `ssh`, `http`, `sql`, `shell`, `sleep`, `confirm`.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Ssh(_) => "ssh",
            Action::Http(_) => "http",
            Action::Sql(_) => "sql",
            Action::Shell(_) => "shell",
            Action::Sleep { .. } => "sleep",
            Action::Confirm { .. } => "confirm",
        }
    }
}

/// A command or script on a remote host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SshCommand {
    /// The name as the plan wrote it (inventory name or address).
    pub host: String,
    /// Where to connect: the inventory's `address`, else the name.
    pub address: String,
    /// The port: the step's, else the inventory host's, else the default (none: the SSH
    /// runner's default).
    pub port: Option<u16>,
    /// The user: the step's, else the inventory host's, else the default.
    pub user: Option<String>,
    /// `run`: one command line (values as variable references, see [`ShellText`]).
    pub command: Option<ShellText>,
    /// `script`: sent on stdin to `sh -se`.
    pub script: Option<ShellText>,
    /// Run through `sudo -n`.
    pub sudo: bool,
    /// Variables exported (quoted) before the command: the defaults', then the step's.
    pub env: Vec<(String, String)>,
    /// A file to copy to the host first.
    pub upload: Option<Upload>,
    /// A private key file to log in with.
    pub identity_file: Option<String>,
    /// The known-hosts file to check the host key against.
    pub known_hosts: Option<String>,
    /// What to do with a host key that is not known.
    pub host_key_policy: HostKeyPolicyName,
    /// How long connecting may take (seconds in JSON).
    #[serde(with = "opt_secs")]
    pub connect_timeout: Option<Duration>,
}

/// [`HostKeyPolicy`] as the runner receives it (`strict` when the plan says nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicyName {
    /// Refuse unknown and changed host keys.
    Strict,
    /// Learn the keys of new hosts; refuse changed ones.
    AcceptNew,
}

impl From<HostKeyPolicy> for HostKeyPolicyName {
    fn from(p: HostKeyPolicy) -> Self {
        match p {
            HostKeyPolicy::Strict => HostKeyPolicyName::Strict,
            HostKeyPolicy::AcceptNew => HostKeyPolicyName::AcceptNew,
        }
    }
}

/// A local file to copy to the host before the command runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Upload {
    /// The local path.
    pub from: String,
    /// The path on the host.
    pub to: String,
    /// The file mode, read from the plan's octal text (`"0644"` is 420).
    pub mode: Option<u32>,
}

/// An HTTP request and what its response must look like.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpRequest {
    /// `GET` unless the step says otherwise.
    pub method: String,
    /// With the query string.
    pub url: String,
    /// Where to connect when the URL's host is an inventory name with an `address`: the
    /// inventory says where a host is for every protocol. The URL (and so the `Host` header
    /// and the TLS name) keeps the name.
    pub address: Option<String>,
    /// Headers in the order sent: defaults, connection, step (a later one replaces an
    /// earlier one of the same name).
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<HttpBody>,
    /// The status the response must have (none: any 2xx).
    pub expect_status: Option<StatusExpect>,
    /// Text the body must contain.
    pub expect_body_contains: Option<String>,
    /// A jq condition over `{status, headers, body, json}` that must hold.
    pub expect_jq: Option<String>,
    /// How the server is verified and how rollbook identifies itself.
    pub tls: Tls,
}

/// A request body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpBody {
    /// Sent as JSON (`json:`).
    Json(Value),
    /// Sent as written (`body:`).
    Text(String),
    /// Sent form-encoded (`form:`).
    Form(Vec<(String, String)>),
}

/// TLS settings of one request; the default verifies against the system's roots.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Tls {
    /// CA certificates (PEM) to trust instead of the system's.
    pub ca_file: Option<String>,
    /// A client certificate (PEM).
    pub client_cert: Option<String>,
    /// The client certificate's key (PEM).
    pub client_key: Option<String>,
    /// Skip certificate verification.
    pub insecure: bool,
}

/// SQL statements against one database.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SqlCall {
    /// The connection's name, when the step named one.
    pub connection: Option<String>,
    /// The database URL (empty when the plan gives none; validation refuses such a plan).
    pub url: String,
    /// The statements, in order.
    pub statements: Vec<SqlStatement>,
    /// All statements in one transaction.
    pub transaction: bool,
    /// The rows the statements must affect, checked before COMMIT.
    pub expect_rows_affected: Option<RowsExpect>,
    /// How long a statement may wait for a lock (seconds in JSON).
    #[serde(with = "opt_secs")]
    pub lock_timeout: Option<Duration>,
    /// The step's per-attempt timeout, to be enforced by the server too
    /// (`statement_timeout`, `max_statement_time`) so a cancelled attempt stops there.
    #[serde(with = "opt_secs")]
    pub statement_timeout: Option<Duration>,
}

/// One statement and the values bound to its placeholders.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SqlStatement {
    /// The SQL text.
    pub text: String,
    /// Bound to the placeholders, never spliced.
    pub args: Vec<Value>,
}

/// A command on the machine running rollbook.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShellCommand {
    /// `run`: one command line for `sh -c` (values as variable references, see
    /// [`ShellText`]).
    pub command: Option<ShellText>,
    /// `script`: sent on stdin to `sh -se`.
    pub script: Option<ShellText>,
    /// Variables set for the command.
    pub env: Vec<(String, String)>,
    /// The directory to run in.
    pub cwd: Option<String>,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

mod opt_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}
