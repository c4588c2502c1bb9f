//! `rollbook state init | sync | import DIR`: the shared store's tables, catching up what
//! this machine journaled while the database could not be reached, and copying a state
//! directory's runs into it.

use std::path::Path;

use crate::Failure;
use crate::state::{shared_failure, shared_options};

/// What `rollbook state` does.
#[derive(Debug, clap::Subcommand)]
pub enum StateCommand {
    /// Create the shared store's tables, or migrate them to this rollbook's version.
    Init,
    /// Send what this machine journaled and the shared store does not have yet.
    Sync,
    /// Copy the runs of a state directory into the shared store (runs it has are left alone).
    Import {
        /// A state directory (the one with `runs/`), e.g. `.rollbook`.
        dir: std::path::PathBuf,
    },
}

pub fn run(url: Option<&str>, state_dir: &Path, command: &StateCommand) -> Result<(), Failure> {
    let Some(url) = url.filter(|u| !u.is_empty()) else {
        return Err(Failure::invalid(
            "`rollbook state` works on the shared store: give its URL with --state postgres://… or ROLLBOOK_STATE",
        ));
    };
    let options = shared_options(url, state_dir)?;
    match command {
        StateCommand::Init => {
            let (store, applied) =
                rollbook_state::PgStore::init(&options).map_err(shared_failure)?;
            let at = rollbook_exec::state::Store::describe(&store);
            if applied.from == applied.to {
                say!(
                    "{at}: the tables are at schema version {}, nothing to do",
                    applied.to
                );
            } else {
                say!(
                    "{at}: schema version {} → {} (the tables and their rules: docs/team-state.md)",
                    applied.from,
                    applied.to
                );
            }
            Ok(())
        }
        StateCommand::Sync => {
            let store = rollbook_state::PgStore::open(&options).map_err(shared_failure)?;
            let reports = store.sync().map_err(shared_failure)?;
            let mut behind = false;
            for r in &reports {
                match (&r.not_sent, r.sent) {
                    (Some(why), _) => {
                        behind = true;
                        say!("{}: not sent: {}", r.run_id, crate::terminal::escape(why));
                    }
                    (None, 0) => {}
                    (None, n) => say!("{}: sent {n} events", r.run_id),
                }
            }
            if reports.iter().all(|r| r.sent == 0 && r.not_sent.is_none()) {
                say!("the shared store has every event of this machine's runs");
            }
            if behind {
                return Err(Failure::internal(
                    "some events of this machine's copies are not in the shared store (see above)",
                ));
            }
            Ok(())
        }
        StateCommand::Import { dir } => {
            let store = rollbook_state::PgStore::open(&options).map_err(shared_failure)?;
            let report = store.import(dir).map_err(shared_failure)?;
            for id in &report.imported {
                say!("{id}: imported");
            }
            for (id, why) in &report.failed {
                say!("{id}: not imported: {}", crate::terminal::escape(why));
            }
            say!(
                "{} imported, {} already in the shared store, {} failed",
                report.imported.len(),
                report.already.len(),
                report.failed.len()
            );
            if report.failed.is_empty() {
                Ok(())
            } else {
                Err(Failure::internal("some runs could not be imported"))
            }
        }
    }
}
