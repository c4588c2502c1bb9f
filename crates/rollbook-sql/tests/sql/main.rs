//! The SQL runner against real servers: PostgreSQL and MariaDB on loopback (started by
//! `scripts/test-servers`, found through `ROLLBOOK_TEST_PG_URL` and `ROLLBOOK_TEST_MYSQL_URL`),
//! and SQLite files in temporary directories.
//!
//! Each test makes a database of its own with a unique name and drops it afterwards (also when
//! the test fails), so tests run in parallel and leave nothing behind. A test whose server is
//! not there fails and says how to start it: it never passes without having run.
//!
//! Tests that run plans go through the real executor (`rollbook_exec::Execution`) with the
//! real runner, as `rollbook run` does; the others call the runner directly.

// Helpers of a test binary, not an API: the crate's `missing_docs` is for its library.
#![allow(missing_docs)]

mod check;
mod connect;
mod guard;
mod injection;
mod migration;
mod sqlite;
mod timeouts;
mod types;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rollbook_exec::event::{Event, NodeStatus, RunStatus};
use rollbook_exec::executor::{Asker, Control, Execution, Options, Prior};
use rollbook_exec::journal::Journal;
use rollbook_exec::redact::Redactor;
use rollbook_exec::runner::{Attempt, BoxFuture, Outcome, OutputSink, Runner, Runners, Stream};
use rollbook_exec::runners::{Answer, ConfirmRunner, Prompter};
use rollbook_plan::SourceFile;
use rollbook_plan::action::{Action, SqlCall, SqlStatement};
use rollbook_plan::compile::{self, CompiledPlan, ParamInput, RunInfo};
use rollbook_plan::model::RowsExpect;
use rollbook_sql::SqlRunner;
use serde_json::{Map, Value};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub const PG_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const MYSQL_DEFAULT: &str = "mysql://root@127.0.0.1:3306/test";

pub fn pg_url() -> String {
    std::env::var("ROLLBOOK_TEST_PG_URL").unwrap_or_else(|_| PG_DEFAULT.into())
}

pub fn mysql_url() -> String {
    std::env::var("ROLLBOOK_TEST_MYSQL_URL").unwrap_or_else(|_| MYSQL_DEFAULT.into())
}

/// The workspace root, where `plans/` and `examples/` are.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Pg,
    MySql,
}

impl Server {
    fn admin_url(self) -> String {
        match self {
            Server::Pg => pg_url(),
            Server::MySql => mysql_url(),
        }
    }

    fn how_to_start(self, url: &str, why: &str) -> String {
        let (product, var) = match self {
            Server::Pg => ("PostgreSQL", "ROLLBOOK_TEST_PG_URL"),
            Server::MySql => ("MariaDB", "ROLLBOOK_TEST_MYSQL_URL"),
        };
        format!(
            "{product} for the tests is not reachable at {url} ({why}). Start the test servers \
             with `source scripts/test-servers` (scripts/test does it for you), or set {var} to \
             a server where the tests may create and drop databases."
        )
    }
}

/// `postgres://u@h:1/old?x=1` → `postgres://u@h:1/new?x=1`
pub fn with_database(url: &str, db: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let path_start = rest.find(['/', '?']).unwrap_or(rest.len());
    let query = rest[path_start..]
        .find('?')
        .map(|q| &rest[path_start + q..])
        .unwrap_or("");
    format!("{}{}/{db}{query}", &url[..scheme_end], &rest[..path_start])
}

static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// A database of its own for one test; dropped when this goes out of scope, even after a
/// failed assertion.
pub struct TestDb {
    pub server: Server,
    pub url: String,
    pub name: String,
    admin: String,
}

impl TestDb {
    pub async fn new(server: Server, tag: &str) -> TestDb {
        let admin = server.admin_url();
        let name = format!(
            "rb_{tag}_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let create = format!("CREATE DATABASE {name}");
        if let Err(e) = admin_exec(server, &admin, &create).await {
            panic!(
                "{}",
                server.how_to_start(&rollbook_sql::target::redact(&admin), &e)
            );
        }
        TestDb {
            server,
            url: with_database(&admin, &name),
            name,
            admin,
        }
    }

    pub async fn pg(tag: &str) -> TestDb {
        TestDb::new(Server::Pg, tag).await
    }

    pub async fn mysql(tag: &str) -> TestDb {
        TestDb::new(Server::MySql, tag).await
    }

    /// Runs statements (separated by `;`) in this database, outside the runner.
    #[track_caller]
    pub fn exec(&self, sql: &str) -> impl Future<Output = ()> + '_ {
        let caller = std::panic::Location::caller();
        let sql = sql.to_string();
        async move {
            if let Err(e) = admin_exec(self.server, &self.url, &sql).await {
                panic!("{caller}: setting up the test database failed: {e}\n{sql}");
            }
        }
    }

    /// Every value of a query's rows as text (NULL as `NULL`), read outside the runner.
    pub async fn strings(&self, sql: &str) -> Vec<Vec<String>> {
        query_strings(self.server, &self.url, sql)
            .await
            .unwrap_or_else(|e| panic!("query failed: {e}\n{sql}"))
    }

    /// The columns of the tables of this database, as `table.column type` lines, in order:
    /// the whole schema, for comparing before and after.
    pub async fn columns(&self) -> Vec<String> {
        let sql = match self.server {
            Server::Pg => {
                "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text \
                 FROM information_schema.columns WHERE table_schema = 'public' \
                 ORDER BY table_name, ordinal_position"
                    .to_string()
            }
            Server::MySql => format!(
                "SELECT table_name, column_name, column_type, is_nullable \
                 FROM information_schema.columns WHERE table_schema = '{}' \
                 ORDER BY table_name, ordinal_position",
                self.name
            ),
        };
        self.strings(&sql)
            .await
            .into_iter()
            .map(|r| r.join(" "))
            .collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (server, admin) = (self.server, self.admin.clone());
        let drop_sql = match server {
            Server::Pg => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            Server::MySql => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        // Drop runs outside async: a thread with its own runtime does the async work.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(admin_exec(server, &admin, &drop_sql))
        })
        .join();
        if let Ok(Err(e)) = done {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

async fn admin_exec(server: Server, url: &str, sql: &str) -> Result<(), String> {
    let q = sqlx::raw_sql(AssertSqlSafe(sql.to_string()));
    let r = match server {
        Server::Pg => {
            let mut c = sqlx::postgres::PgConnectOptions::from_str(url)
                .map_err(|e| e.to_string())?
                .disable_statement_logging()
                .connect()
                .await
                .map_err(|e| e.to_string())?;
            let r = q.execute(&mut c).await.map(drop);
            let _ = c.close().await;
            r
        }
        Server::MySql => {
            let mut c = sqlx::mysql::MySqlConnectOptions::from_str(url)
                .map_err(|e| e.to_string())?
                .disable_statement_logging()
                .connect()
                .await
                .map_err(|e| e.to_string())?;
            let r = q.execute(&mut c).await.map(drop);
            let _ = c.close().await;
            r
        }
    };
    r.map_err(|e| e.to_string())
}

async fn query_strings(server: Server, url: &str, sql: &str) -> Result<Vec<Vec<String>>, String> {
    fn text<R: Row>(row: &R, i: usize) -> String
    where
        for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<i32>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        usize: sqlx::ColumnIndex<R>,
    {
        if let Ok(v) = row.try_get::<Option<String>, _>(i) {
            return v.unwrap_or_else(|| "NULL".into());
        }
        if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
            return v.map_or_else(|| "NULL".into(), |n| n.to_string());
        }
        if let Ok(v) = row.try_get::<Option<i32>, _>(i) {
            return v.map_or_else(|| "NULL".into(), |n| n.to_string());
        }
        "<unreadable>".into()
    }
    let sql = AssertSqlSafe(sql.to_string());
    match server {
        Server::Pg => {
            let mut c = sqlx::postgres::PgConnection::connect(url)
                .await
                .map_err(|e| e.to_string())?;
            let rows = sqlx::query(sql)
                .fetch_all(&mut c)
                .await
                .map_err(|e| e.to_string())?;
            let _ = c.close().await;
            Ok(rows
                .iter()
                .map(|r| (0..r.len()).map(|i| text(r, i)).collect())
                .collect())
        }
        Server::MySql => {
            let mut c = sqlx::mysql::MySqlConnection::connect(url)
                .await
                .map_err(|e| e.to_string())?;
            let rows = sqlx::query(sql)
                .fetch_all(&mut c)
                .await
                .map_err(|e| e.to_string())?;
            let _ = c.close().await;
            Ok(rows
                .iter()
                .map(|r| (0..r.len()).map(|i| text(r, i)).collect())
                .collect())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Calling the runner directly

/// A `sql` action as a plan would give it: `statements` are (text, args).
pub fn call(url: &str, statements: &[(&str, Vec<Value>)]) -> SqlCall {
    SqlCall {
        connection: None,
        url: url.to_string(),
        statements: statements
            .iter()
            .map(|(text, args)| SqlStatement {
                text: text.to_string(),
                args: args.clone(),
            })
            .collect(),
        transaction: false,
        expect_rows_affected: None,
        lock_timeout: None,
        statement_timeout: Some(std::time::Duration::from_secs(30)),
    }
}

/// One statement without arguments.
pub fn one(url: &str, sql: &str) -> SqlCall {
    call(url, &[(sql, vec![])])
}

pub fn in_transaction(mut c: SqlCall, expect: Option<RowsExpect>) -> SqlCall {
    c.transaction = true;
    c.expect_rows_affected = expect;
    c
}

/// What one attempt came to, with its output lines.
pub struct Ran {
    pub outcome: Outcome,
    pub lines: Vec<(Stream, String)>,
}

impl Ran {
    #[track_caller]
    pub fn result(&self) -> &Value {
        match &self.outcome {
            Outcome::Succeeded { result } => result,
            Outcome::Failed { message, .. } => panic!("the step failed: {message}"),
        }
    }

    #[track_caller]
    pub fn failure(&self) -> &str {
        match &self.outcome {
            Outcome::Failed { message, .. } => message,
            Outcome::Succeeded { result } => panic!("the step succeeded: {result}"),
        }
    }

    pub fn output(&self) -> String {
        self.lines.iter().map(|(_, l)| format!("{l}\n")).collect()
    }
}

pub async fn run_with(runner: &SqlRunner, c: SqlCall, cancel: CancellationToken) -> Ran {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let outcome = runner
        .run(
            &Action::Sql(c),
            Attempt::new(
                Arc::from("test"),
                1,
                cancel,
                OutputSink::new(Arc::from("test"), tx),
            ),
        )
        .await;
    let mut lines = Vec::new();
    while let Ok(l) = rx.try_recv() {
        lines.push((l.stream, l.line));
    }
    Ran { outcome, lines }
}

pub async fn run(runner: &SqlRunner, c: SqlCall) -> Ran {
    run_with(runner, c, CancellationToken::new()).await
}

// ---------------------------------------------------------------------------------------------
// Running plans through the executor

pub fn run_info() -> RunInfo {
    RunInfo {
        id: "20260101-000000-sqltest".into(),
        reason: "testing".into(),
        user: "tester".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
    }
}

/// Validates and compiles a plan file with `--param name=value` arguments, as `rollbook run`
/// does.
pub fn compile_file(path: &std::path::Path, args: &[&str]) -> CompiledPlan {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let checked = rollbook_plan::check(SourceFile::new(path.display().to_string(), text), None);
    let errors: Vec<_> = checked
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    assert!(
        errors.is_empty(),
        "{} is invalid: {errors:#?}",
        path.display()
    );
    let plan = checked.plan.expect("a plan");
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let params = compile::bind_params(&plan, &ParamInput::from_args(&args).unwrap()).unwrap();
    compile::compile(&plan, params, &BTreeMap::new(), &run_info()).unwrap()
}

/// Says yes to every `confirm` step and keeps the prompts.
#[derive(Default, Clone)]
pub struct Yes {
    pub prompts: Arc<Mutex<Vec<String>>>,
}

impl Prompter for Yes {
    fn ask<'a>(&'a self, _node: &'a str, prompt: &'a str) -> BoxFuture<'a, Result<Answer, String>> {
        self.prompts.lock().unwrap().push(prompt.to_string());
        Box::pin(async {
            Ok(Answer {
                yes: true,
                by: "tester".into(),
            })
        })
    }
}

#[derive(Default)]
pub struct MemJournal {
    pub events: Vec<Event>,
    /// (node, stream, line)
    pub logs: Vec<(String, Stream, String)>,
}

impl Journal for MemJournal {
    fn append(&mut self, events: &[Event]) -> Result<(), rollbook_exec::Error> {
        self.events.extend_from_slice(events);
        Ok(())
    }

    fn log(
        &mut self,
        _phase: &str,
        node: &str,
        stream: Stream,
        line: &str,
    ) -> Result<(), rollbook_exec::Error> {
        self.logs.push((node.into(), stream, line.into()));
        Ok(())
    }
}

impl MemJournal {
    /// A node's end state and message.
    #[track_caller]
    pub fn finish(&self, node: &str) -> (NodeStatus, Option<String>, Option<Value>) {
        self.events
            .iter()
            .find_map(|e| match e {
                Event::NodeFinished {
                    phase,
                    node: n,
                    status,
                    message,
                    outputs,
                    ..
                } if phase == "steps" && n == node => {
                    Some((*status, message.clone(), outputs.clone()))
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("`{node}` never finished: {:#?}", self.events))
    }

    /// A node's log, one line per line.
    pub fn log_of(&self, node: &str) -> String {
        self.logs
            .iter()
            .filter(|(n, _, _)| n == node)
            .map(|(_, _, l)| format!("{l}\n"))
            .collect()
    }
}

/// Runs a compiled plan with the real `sql` runner and a `confirm` runner that says yes (also
/// to the confirmation before an irreversible step).
pub async fn execute(
    plan: &CompiledPlan,
    secrets: Map<String, Value>,
    yes: &Yes,
) -> (RunStatus, MemJournal) {
    let runners = Runners::new()
        .with(SqlRunner::new())
        .with(ConfirmRunner::new(Arc::new(yes.clone())));
    let mut journal = MemJournal::default();
    let redactor = Redactor::new(
        secrets
            .values()
            .filter_map(|v| v.as_str().map(str::to_string)),
    );
    let status = Execution {
        plan,
        runners: &runners,
        secrets,
        redactor,
        journal: &mut journal,
        observer: None,
        control: Control::default(),
        options: Options {
            asker: Some(Asker(Arc::new(yes.clone()))),
            ..Options::default()
        },
        prior: Prior::default(),
        resumed: None,
    }
    .run()
    .await
    .expect("the executor itself does not fail")
    .status;
    (status, journal)
}
