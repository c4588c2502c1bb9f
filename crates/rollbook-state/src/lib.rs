//! rollbook's shared state on PostgreSQL: every run's metadata, plan and inventory text,
//! journal and logs, and the locks, in one database a team already runs, so that a rollback
//! started on one machine can be seen, locked against and resumed from any other.
//!
//! [`PgStore`] implements [`rollbook_exec::state::Store`]. How it keeps the executor fast
//! and nothing lost:
//! - a run is journaled first into a local copy (the file journal, synced, under
//!   `<state-dir>/shared/<database>/runs/`), and a shipper sends each scheduler turn's events
//!   to the database in one transaction, in order ([`ship`]); when the database cannot be
//!   reached the run goes on and the shared copy catches up later, exactly once;
//! - locks are leases renewed while the run lives, each acquisition with a fencing token
//!   ([`lease`]); the events of a run are accepted only from the controller with the latest
//!   token;
//! - readers get a run as a local directory in the file journal's layout ([`fetch`]).
//!
//! The tables are in `sql/`, applied by [`PgStore::init`] ([`schema`]). The rules are in
//! `docs/team-state.md`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rollbook_exec::journal::{RunMeta, RunSummary};
use rollbook_exec::lock::{LockHolder, Stale};
use rollbook_exec::state::{Lease, RunJournal, Store};
use sqlx::postgres::{PgPool, PgPoolOptions};

mod fetch;
mod lease;
mod list;
mod runs;
pub mod schema;
mod ship;
mod sync;
mod target;

pub use sync::{ImportReport, SyncReport};
pub use target::Target;

/// How long one database operation may take before it counts as failed: a network cut
/// shows as no answer, never as an error.
const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// The shared store's faults.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The state URL does not read.
    #[error("the state URL {url} does not read: {message}")]
    Url {
        /// The URL without its password.
        url: String,
        /// Why.
        message: String,
    },
    /// The database could not be reached, or a statement failed.
    #[error("the shared state at {at}: {message}")]
    Database {
        /// Where, without the password.
        at: String,
        /// What failed (the password never in it).
        message: String,
    },
    /// The tables are missing or of another version.
    #[error("the shared state at {at}: {message}")]
    Schema {
        /// Where.
        at: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A run's events were refused: a later controller took the run over.
    #[error(
        "run {run_id} was taken over by a later controller (token {later}, this one has {token})"
    )]
    Superseded {
        /// The run.
        run_id: String,
        /// This controller's token.
        token: i64,
        /// The later one's.
        later: i64,
    },
    /// A local file of the state.
    #[error(transparent)]
    Local(#[from] rollbook_exec::Error),
}

impl From<Error> for rollbook_exec::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Local(e) => e,
            other => rollbook_exec::Error::Store(other.to_string()),
        }
    }
}

/// What the shared store needs to open.
#[derive(Debug, Clone)]
pub struct Options {
    /// `postgres://user@host:port/database?sslmode=verify-full&sslrootcert=FILE`.
    pub url: String,
    /// The password, when it is not in the URL (from the environment or a file).
    pub password: Option<String>,
    /// The local state directory: the write-ahead copies and the copies read live under
    /// `<dir>/shared/`.
    pub local_dir: PathBuf,
    /// How long a lock's lease lasts without renewal: a dead controller's lock is stale after
    /// at most this long.
    pub lease: Duration,
    /// Create or migrate the tables when they are missing or older (`ROLLBOOK_STATE_INIT`).
    pub init: bool,
}

/// The lease when nothing else is said: renewed every third of it, so two renewals may fail
/// before it lapses.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// The shared state on PostgreSQL.
pub struct PgStore {
    inner: Arc<Inner>,
}

/// What the store's parts share: the pool, the runtime that drives it, where local copies go.
pub(crate) struct Inner {
    pub target: Target,
    pub pool: PgPool,
    pub local: PathBuf,
    pub lease: Duration,
    /// The fencing token of the lock this process took last: the journal of the run it
    /// creates or reopens is written under it.
    pub token: Mutex<Option<(LockHolder, i64)>>,
    pub worker: Worker,
}

impl PgStore {
    /// Opens the store: parses the URL, connects, checks the schema's version (creating or
    /// migrating the tables when `init` allows).
    pub fn open(options: &Options) -> Result<Self, Error> {
        let store = PgStore::connect(options)?;
        let inner = store.inner.clone();
        let init = options.init;
        store.block(async move { schema::check(&inner, init).await })?;
        Ok(store)
    }

    /// The store without a look at its tables yet.
    fn connect(options: &Options) -> Result<Self, Error> {
        let target = Target::parse(&options.url, options.password.clone())?;
        let worker = Worker::start().map_err(|e| Error::Database {
            at: target.shown(),
            message: format!("cannot start the state's runtime: {e}"),
        })?;
        let connect = target.connect_options()?;
        let pool = worker.enter(|| {
            PgPoolOptions::new()
                .max_connections(4)
                .min_connections(0)
                .acquire_timeout(OP_TIMEOUT)
                .connect_lazy_with(connect)
        });
        let local = options.local_dir.join("shared").join(target.local_name());
        let store = PgStore {
            inner: Arc::new(Inner {
                target,
                pool,
                local,
                lease: options.lease,
                token: Mutex::new(None),
                worker,
            }),
        };
        Ok(store)
    }

    /// Creates or migrates the tables (`rollbook state init`); says which version it left.
    pub fn init(options: &Options) -> Result<(Self, schema::Applied), Error> {
        let store = PgStore::connect(options)?;
        let inner = store.inner.clone();
        let applied = store.block(async move { schema::migrate(&inner).await })?;
        Ok((store, applied))
    }

    /// Runs `fut` on the store's runtime and waits for it (from any thread, also from inside
    /// another runtime).
    fn block<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        self.inner.worker.block(fut).unwrap_or_else(|| {
            Err(Error::Database {
                at: self.inner.target.shown(),
                message: "the state's runtime stopped".into(),
            })
        })
    }

    /// Where this machine keeps its copies of the shared runs.
    pub fn local_dir(&self) -> &Path {
        &self.inner.local
    }

    /// Sends every run this machine journaled and the database does not have yet
    /// (`rollbook state sync`).
    pub fn sync(&self) -> Result<Vec<SyncReport>, Error> {
        let inner = self.inner.clone();
        self.block(async move { sync::sync_all(&inner).await })
    }

    /// Copies the runs of a local state directory into the database (`rollbook state
    /// import DIR`): runs it has already are left alone.
    pub fn import(&self, state_dir: &Path) -> Result<ImportReport, Error> {
        let inner = self.inner.clone();
        let dir = state_dir.to_path_buf();
        self.block(async move { sync::import(&inner, &dir).await })
    }
}

impl Store for PgStore {
    fn describe(&self) -> String {
        self.inner.target.shown()
    }

    fn create(
        &self,
        meta: &RunMeta,
        plan_text: &str,
        inventory_text: Option<&str>,
    ) -> Result<Box<dyn RunJournal>, rollbook_exec::Error> {
        let inner = self.inner.clone();
        let meta = meta.clone();
        let plan = plan_text.to_string();
        let inventory = inventory_text.map(str::to_string);
        let journal =
            self.block(async move { runs::create(inner, meta, plan, inventory).await })?;
        Ok(Box::new(journal))
    }

    fn fetch(&self, run_id: &str) -> Result<Option<PathBuf>, rollbook_exec::Error> {
        let inner = self.inner.clone();
        let id = run_id.to_string();
        Ok(self.block(async move {
            // What this machine journaled and could not send yet goes first, so that a reader
            // here (a resume after the database came back) sees the whole run.
            let mine = runs::local_runs(&inner).join(&id);
            if mine.join("run.json").is_file() {
                let _ = sync::sync_run(&inner, &mine).await;
            }
            fetch::view(&inner, &id).await
        })?)
    }

    fn reopen(&self, run_id: &str) -> Result<Box<dyn RunJournal>, rollbook_exec::Error> {
        let inner = self.inner.clone();
        let id = run_id.to_string();
        let journal = self.block(async move { runs::reopen(inner, id).await })?;
        Ok(Box::new(journal))
    }

    fn list(&self) -> Result<Vec<RunSummary>, rollbook_exec::Error> {
        let inner = self.inner.clone();
        Ok(self.block(async move { list::runs(&inner).await })?)
    }

    fn lock(
        &self,
        holder: &LockHolder,
        stale: Stale,
    ) -> Result<Box<dyn Lease>, rollbook_exec::Error> {
        let inner = self.inner.clone();
        let taken = holder.clone();
        let lease = self.block(async move { lease::acquire(inner, taken, stale).await })?;
        *self.inner.token.lock().expect("token lock") = Some((holder.clone(), lease.token_value()));
        Ok(Box::new(lease))
    }

    fn replace_plan(&self, meta: &RunMeta, plan_text: &str) -> Result<(), rollbook_exec::Error> {
        let inner = self.inner.clone();
        let meta = meta.clone();
        let plan = plan_text.to_string();
        Ok(self.block(async move { runs::replace_plan(&inner, &meta, &plan).await })?)
    }
}

/// The store's own runtime, on its own thread: the executor's loop never waits on the
/// database, and a blocking call from inside another runtime does not stop that runtime.
pub(crate) struct Worker {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Worker {
    fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("rollbook-state")
            .enable_all()
            .build()?;
        Ok(Worker {
            runtime: Some(runtime),
        })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime.as_ref().expect("runtime until drop").handle()
    }

    fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        let _guard = self.handle().enter();
        f()
    }

    /// Spawns a task that outlives the call (the shipper, a lease's renewal).
    pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.handle().spawn(fut);
    }

    /// Runs `fut` there and waits for its answer; `None` when the runtime is gone.
    pub fn block<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle().spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().ok()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Dropping a runtime from inside another one would panic; this never waits.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A database fault as the store's error, with the password never in it.
pub(crate) fn db_error(target: &Target, e: impl std::fmt::Display) -> Error {
    Error::Database {
        at: target.shown(),
        message: target.scrub(&e.to_string()),
    }
}

/// A local file of the state that could not be read or written.
pub(crate) fn local_io(path: &Path, source: std::io::Error) -> Error {
    Error::Local(rollbook_exec::Error::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Runs one database operation with [`OP_TIMEOUT`]: no answer is a failure too.
pub(crate) async fn bounded<T>(
    target: &Target,
    what: &str,
    fut: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(db_error(target, format!("{what}: {e}"))),
        Err(_) => Err(db_error(
            target,
            format!("{what}: no answer within {}s", OP_TIMEOUT.as_secs()),
        )),
    }
}
