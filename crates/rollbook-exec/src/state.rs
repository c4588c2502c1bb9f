//! Where runs, their journals, logs and locks are kept: the [`Store`] trait, and the file
//! store under a state directory (the default, `.rollbook/`).
//!
//! The commands (`run`, `resume`, `runs`, `show`, `report`) and the executor work through
//! these traits only, so they do not know which store they use. The shared store for teams
//! (PostgreSQL, the `rollbook-state` crate) keeps a local copy of each run in the file
//! journal's layout, so a run's directory is how every store hands a run to its readers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;

use crate::Error;
use crate::journal::{self, FileJournal, Journal, RunMeta, RunSummary};
use crate::lock::{self, LockGuard, LockHolder, Stale};

/// A place that keeps runs and locks.
pub trait Store: Send + Sync {
    /// Where the state is, for people and the journal (`.rollbook`,
    /// `postgres://ops@db:5432/rollbook`): never a password.
    fn describe(&self) -> String;
    /// Starts the journal of a new run, with its metadata, plan text and inventory text.
    fn create(
        &self,
        meta: &RunMeta,
        plan_text: &str,
        inventory_text: Option<&str>,
    ) -> Result<Box<dyn RunJournal>, Error>;
    /// A local directory that holds the run as the store has it, in the file journal's
    /// layout (`run.json`, `plan.yaml`, `journal.jsonl`, `logs/`), for reading; `None` when the
    /// store has no such run.
    fn fetch(&self, run_id: &str) -> Result<Option<PathBuf>, Error>;
    /// Opens a run's journal to go on with it (`resume`). A shared store first brings this
    /// machine's copy in line with the shared one, so a run can be resumed anywhere.
    fn reopen(&self, run_id: &str) -> Result<Box<dyn RunJournal>, Error>;
    /// Every run the store has, newest first.
    fn list(&self) -> Result<Vec<RunSummary>, Error>;
    /// Takes a lock, or says who has it.
    fn lock(&self, holder: &LockHolder, stale: Stale) -> Result<Box<dyn Lease>, Error>;
    /// Records a changed plan for a run resumed with it (`--allow-changed-plan`).
    fn replace_plan(&self, meta: &RunMeta, plan_text: &str) -> Result<(), Error>;
}

/// A run's journal as a store gives it out: the executor's [`Journal`], the run's local
/// directory, and how far a shared copy is behind.
pub trait RunJournal: Journal {
    /// The run's local directory (the whole run for the file store, the write-ahead copy for
    /// a shared one).
    fn dir(&self) -> &Path;
    /// The state of the shared copy while the run goes on; `None` for a store with no other
    /// copy.
    fn shared(&self) -> Option<watch::Receiver<SharedCopy>> {
        None
    }
    /// At the end of the run: waits up to `wait` for the shared copy to have every event.
    /// Says what is still missing when it could not catch up in time.
    fn settle(&mut self, _wait: Duration) -> Option<SharedCopy> {
        None
    }
}

/// How far the shared copy of a run's journal is behind this machine's copy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SharedCopy {
    /// Events journaled here and not yet in the shared copy.
    pub behind: u64,
    /// Why the last write to the shared copy failed, if it did (without secrets).
    pub error: Option<String>,
    /// A later controller took the run over: the shared copy takes no more events from this
    /// one, and `behind` stays on this machine only.
    pub taken_over: bool,
}

/// A held lock. Released when dropped.
pub trait Lease: Send + Sync {
    /// The fencing token of this acquisition: it grows with every acquisition of any lock,
    /// so of two controllers the later one has the larger token. `None` for a file lock,
    /// which two machines cannot share.
    fn token(&self) -> Option<i64>;
    /// Becomes `Some(why)` when the lease has lapsed (it could not be renewed in time, or it
    /// was taken over): from then on the run must start no new step.
    fn lapsed(&self) -> watch::Receiver<Option<String>>;
    /// What to do when rollbook exits at once (a third signal), without waiting: release what
    /// can be released within a moment. Best effort.
    fn on_exit(&self) -> Box<dyn Fn() + Send + Sync>;
}

/// The file store: runs under `<dir>/runs/`, locks under `<dir>/locks/`.
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// The store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileStore { dir: dir.into() }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A run's directory (there or not).
    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        journal::runs_dir(&self.dir).join(run_id)
    }
}

impl Store for FileStore {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn create(
        &self,
        meta: &RunMeta,
        plan_text: &str,
        inventory_text: Option<&str>,
    ) -> Result<Box<dyn RunJournal>, Error> {
        Ok(Box::new(FileJournal::create(
            &self.dir,
            meta,
            plan_text,
            inventory_text,
        )?))
    }

    fn fetch(&self, run_id: &str) -> Result<Option<PathBuf>, Error> {
        // Anything there is handed on, for the reader to say what is wrong with it (not a
        // directory, no `run.json`, not readable).
        let dir = self.run_dir(run_id);
        match std::fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            _ => Ok(Some(dir)),
        }
    }

    fn reopen(&self, run_id: &str) -> Result<Box<dyn RunJournal>, Error> {
        Ok(Box::new(FileJournal::open(&self.run_dir(run_id))?))
    }

    fn list(&self) -> Result<Vec<RunSummary>, Error> {
        journal::list_runs(&self.dir)
    }

    fn lock(&self, holder: &LockHolder, stale: Stale) -> Result<Box<dyn Lease>, Error> {
        let guard = lock::acquire(&self.dir, holder, stale)?;
        let (never, lapsed) = watch::channel(None);
        Ok(Box::new(FileLease {
            guard,
            _never: never,
            lapsed,
        }))
    }

    fn replace_plan(&self, meta: &RunMeta, plan_text: &str) -> Result<(), Error> {
        journal::replace_plan(&self.run_dir(&meta.run_id), meta, plan_text)
    }
}

impl RunJournal for FileJournal {
    fn dir(&self) -> &Path {
        FileJournal::dir(self)
    }
}

/// An OS file lock: it ends with its process, so it never lapses while the run lives.
struct FileLease {
    guard: LockGuard,
    /// Kept so that `lapsed` never changes.
    _never: watch::Sender<Option<String>>,
    lapsed: watch::Receiver<Option<String>>,
}

impl Lease for FileLease {
    fn token(&self) -> Option<i64> {
        None
    }

    fn lapsed(&self) -> watch::Receiver<Option<String>> {
        self.lapsed.clone()
    }

    fn on_exit(&self) -> Box<dyn Fn() + Send + Sync> {
        // The file lock itself ends with the process; the holder file would be left.
        let holder_file = self.guard.holder_file().to_path_buf();
        Box::new(move || {
            let _ = std::fs::remove_file(&holder_file);
        })
    }
}
