//! Where runs and locks are kept, as the command line and the environment say: the state
//! directory (`--state-dir`, the default `.rollbook`), or a shared PostgreSQL (`--state`,
//! `ROLLBOOK_STATE`) with its password from `ROLLBOOK_STATE_PASSWORD` or the file named by
//! `ROLLBOOK_STATE_PASSWORD_FILE`, never from the command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rollbook_exec::state::{FileStore, Store};

use crate::Failure;

/// rollbook's own variables for the shared store, taken out of every local step's
/// environment: a step has no business with the team's database password.
pub const HIDDEN_FROM_STEPS: &[&str] = &[
    "ROLLBOOK_STATE",
    "ROLLBOOK_STATE_PASSWORD",
    "ROLLBOOK_STATE_PASSWORD_FILE",
];

/// The store a command works on.
pub struct State {
    pub store: Box<dyn Store>,
    /// The state directory, when it is the store (`runs` lists its unreadable runs too).
    pub files: Option<PathBuf>,
    /// The shared store's passwords (the one in use, and one written in the URL that another
    /// source overrides): a run's redactor hides them too.
    pub passwords: Vec<String>,
}

impl State {
    /// The file store in `dir`.
    pub fn files(dir: &Path) -> Self {
        State {
            store: Box::new(FileStore::new(dir)),
            files: Some(dir.to_path_buf()),
            passwords: Vec::new(),
        }
    }

    /// The store `url` names (`postgres://…`), or the state directory when there is none.
    pub fn open(url: Option<&str>, dir: &Path) -> Result<Self, Failure> {
        match url.filter(|u| !u.is_empty()) {
            None => Ok(State::files(dir)),
            Some(url) => {
                let options = shared_options(url, dir)?;
                let store = rollbook_state::PgStore::open(&options).map_err(shared_failure)?;
                // Every password in play: the one the store uses, and one written in the URL
                // that ROLLBOOK_STATE_PASSWORD(_FILE) overrides. Steps do not get rollbook's
                // state variables (`HIDDEN_FROM_STEPS`); the redactor is the second guard, for
                // a step that finds the URL some other way.
                let passwords = [
                    options.password.clone(),
                    rollbook_state::Target::parse(url, None)
                        .ok()
                        .and_then(|t| t.password().map(str::to_string)),
                ]
                .into_iter()
                .flatten()
                .filter(|p| !p.is_empty())
                .collect();
                Ok(State {
                    store: Box::new(store),
                    files: None,
                    passwords,
                })
            }
        }
    }
}

/// The shared store's options from the environment.
pub fn shared_options(url: &str, dir: &Path) -> Result<rollbook_state::Options, Failure> {
    let password = match (
        std::env::var("ROLLBOOK_STATE_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty()),
        std::env::var_os("ROLLBOOK_STATE_PASSWORD_FILE").filter(|p| !p.is_empty()),
    ) {
        (Some(p), _) => Some(p),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(&file).map_err(|e| {
                Failure::invalid(format!(
                    "ROLLBOOK_STATE_PASSWORD_FILE {}: {e}",
                    Path::new(&file).display()
                ))
            })?;
            Some(text.strip_suffix('\n').unwrap_or(&text).to_string())
        }
        (None, None) => None,
    };
    let lease = match std::env::var("ROLLBOOK_STATE_LEASE") {
        Ok(text) if !text.is_empty() => humantime::parse_duration(&text)
            .ok()
            .filter(|d| *d >= Duration::from_secs(1))
            .ok_or_else(|| {
                Failure::invalid(format!(
                    "ROLLBOOK_STATE_LEASE={text:?} is not a duration of 1s or more (e.g. 15s)"
                ))
            })?,
        _ => rollbook_state::DEFAULT_LEASE,
    };
    let init = std::env::var("ROLLBOOK_STATE_INIT").is_ok_and(|v| v == "1" || v == "yes");
    Ok(rollbook_state::Options {
        url: url.to_string(),
        password,
        local_dir: dir.to_path_buf(),
        lease,
        init,
    })
}

/// A shared store that cannot be used: rollbook could not do its job (exit 5), except for a
/// URL that does not read (2).
pub fn shared_failure(e: rollbook_state::Error) -> Failure {
    match e {
        rollbook_state::Error::Url { .. } => Failure::invalid(e.to_string()),
        rollbook_state::Error::Local(e) => Failure::from(e),
        other => Failure::internal(other.to_string()),
    }
}
