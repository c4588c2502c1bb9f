//! Plan locks: runs sharing a lock key never overlap.
//!
//! The lock is an OS file lock (`<state-dir>/locks/<key>.lock`), so it is released by the
//! kernel when its holder dies, however it dies. Beside it, `<key>.json` names the holder;
//! when that file is there but the lock is free, the holder died without cleaning up: the lock
//! is *stale*, reported as such, and taken over only when asked (`--break-lock`) or by a
//! `resume` of the same run.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockHolder {
    /// The lock's key (the plan's `lock`, or its name).
    pub key: String,
    /// The run holding it.
    pub run_id: String,
    /// Who started that run.
    pub user: String,
    /// Where it runs.
    pub host: String,
    /// Its process.
    pub pid: u32,
    /// When it took the lock (RFC 3339).
    pub since: String,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "run {} by {} on {} (pid {}) since {}",
            self.run_id, self.user, self.host, self.pid, self.since
        )
    }
}

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
    info: PathBuf,
}

impl LockGuard {
    /// The file that names the holder: what is left of a lock when its process is gone (the
    /// file lock itself ends with the process).
    pub fn holder_file(&self) -> &Path {
        &self.info
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.info);
        let _ = self.file.unlock();
    }
}

/// The lock's file name. `validate` admits only keys of these characters (`bad-lock`), so for
/// every key a plan can hold this is the key itself and two keys never share a file; the
/// mapping only keeps a key that skipped validation inside `locks/`.
fn key_file_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// How to treat a stale lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Refuse it (the default).
    Refuse,
    /// Take it over (`--break-lock`).
    Break,
    /// Take it over if it was left by this run id (`resume`).
    IfRun,
}

/// Takes the lock `holder.key`, or says who has it.
pub fn acquire(state_dir: &Path, holder: &LockHolder, stale: Stale) -> Result<LockGuard, Error> {
    let dir = state_dir.join("locks");
    fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let name = key_file_name(&holder.key);
    let lock_path = dir.join(format!("{name}.lock"));
    let info_path = dir.join(format!("{name}.json"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| Error::Io {
            path: lock_path.display().to_string(),
            source,
        })?;
    let previous: Option<LockHolder> = fs::read_to_string(&info_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(Error::LockHeld(Box::new(previous.unwrap_or_else(|| {
                LockHolder {
                    key: holder.key.clone(),
                    run_id: "unknown".into(),
                    user: "unknown".into(),
                    host: "unknown".into(),
                    pid: 0,
                    since: "unknown".into(),
                }
            }))));
        }
        Err(fs::TryLockError::Error(source)) => {
            return Err(Error::Io {
                path: lock_path.display().to_string(),
                source,
            });
        }
    }
    if let Some(prev) = previous {
        let take = match stale {
            Stale::Break => true,
            Stale::IfRun => prev.run_id == holder.run_id,
            Stale::Refuse => false,
        };
        if !take {
            let _ = file.unlock();
            return Err(Error::StaleLock(Box::new(prev)));
        }
    }
    let mut info = File::create(&info_path).map_err(|source| Error::Io {
        path: info_path.display().to_string(),
        source,
    })?;
    let json = serde_json::to_vec_pretty(holder).expect("holder serializes");
    info.write_all(&json)
        .and_then(|_| info.sync_all())
        .map_err(|source| Error::Io {
            path: info_path.display().to_string(),
            source,
        })?;
    Ok(LockGuard {
        file,
        info: info_path,
    })
}
