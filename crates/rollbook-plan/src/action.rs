//! Actions with every template rendered and every default applied: what a runner receives.
//! The dry run shows the same values (with secrets masked), so what is reviewed is what runs.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::model::{HostKeyPolicy, RowsExpect, StatusExpect};

/// One concrete thing to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    Ssh(SshCommand),
    Http(HttpRequest),
    Sql(SqlCall),
    Shell(ShellCommand),
    Sleep {
        #[serde(with = "secs")]
        duration: Duration,
    },
    Confirm {
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
    pub port: Option<u16>,
    pub user: Option<String>,
    /// `run`: one command line.
    pub command: Option<String>,
    /// `script`: sent on stdin to `sh -se`.
    pub script: Option<String>,
    pub sudo: bool,
    pub env: Vec<(String, String)>,
    pub upload: Option<Upload>,
    pub identity_file: Option<String>,
    pub known_hosts: Option<String>,
    pub host_key_policy: HostKeyPolicyName,
    #[serde(with = "opt_secs")]
    pub connect_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicyName {
    Strict,
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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Upload {
    pub from: String,
    pub to: String,
    pub mode: Option<u32>,
}

/// An HTTP request and what its response must look like.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpRequest {
    pub method: String,
    /// With the query string.
    pub url: String,
    /// Where to connect when the URL's host is an inventory name with an `address`: the
    /// inventory says where a host is for every protocol. The URL (and so the `Host` header
    /// and the TLS name) keeps the name.
    pub address: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Option<HttpBody>,
    pub expect_status: Option<StatusExpect>,
    pub expect_body_contains: Option<String>,
    pub expect_jq: Option<String>,
    pub tls: Tls,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpBody {
    Json(Value),
    Text(String),
    Form(Vec<(String, String)>),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Tls {
    pub ca_file: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub insecure: bool,
}

/// SQL statements against one database.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SqlCall {
    /// The connection's name, when the step named one.
    pub connection: Option<String>,
    pub url: String,
    pub statements: Vec<SqlStatement>,
    pub transaction: bool,
    pub expect_rows_affected: Option<RowsExpect>,
    #[serde(with = "opt_secs")]
    pub lock_timeout: Option<Duration>,
    /// The step's per-attempt timeout, to be enforced by the server too
    /// (`statement_timeout`, `max_statement_time`) so a cancelled attempt stops there.
    #[serde(with = "opt_secs")]
    pub statement_timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SqlStatement {
    pub text: String,
    /// Bound to the placeholders, never spliced.
    pub args: Vec<Value>,
}

/// A command on the machine running rollbook.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShellCommand {
    pub command: Option<String>,
    pub script: Option<String>,
    pub env: Vec<(String, String)>,
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
