//! Driver errors as messages a person can act on, with nothing secret in them.
//!
//! A database's own error (SQLSTATE and text) is passed on as the database said it. Failures
//! to connect are told apart, because they are fixed in different places: a refused connection
//! (the server is down or elsewhere), a refused login (user or password), TLS, a bad URL.
//! Every message names the host; none shows the URL or the password.

use crate::target::{Dialect, Target};

/// The database's error text with its SQLSTATE, plus PostgreSQL's detail and hint.
pub fn database_error(e: &sqlx::Error, target: &Target) -> String {
    let text = match e {
        sqlx::Error::Database(db) => {
            let mut text = db.message().to_string();
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                if let Some(detail) = pg.detail() {
                    text.push_str(&format!(" ({detail})"));
                }
                if let Some(hint) = pg.hint() {
                    text.push_str(&format!("; hint: {hint}"));
                }
            }
            match db.code() {
                Some(code) => format!("{text} [SQLSTATE {code}]"),
                None => text,
            }
        }
        sqlx::Error::Io(io) => format!("lost the connection to {}: {io}", target.name()),
        sqlx::Error::Protocol(p) => format!("protocol error from {}: {p}", target.name()),
        sqlx::Error::ColumnDecode { index, source } => {
            format!("could not read column {index} of a result row: {source}")
        }
        other => other.to_string(),
    };
    target.scrub(&text)
}

/// Whether the connection can be used again after this error. A database error leaves it
/// usable (after a ROLLBACK); anything at the transport or protocol level does not.
pub fn leaves_connection_usable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(_))
}

/// Why connecting failed, naming the host and never the password.
pub fn connect_error(e: &sqlx::Error, target: &Target) -> String {
    let who = target.name();
    let text = match e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => format!(
            "cannot connect to {who}: connection refused (is the server running and listening on {}?)",
            target.host
        ),
        sqlx::Error::Io(io) => format!("cannot connect to {who}: {io}"),
        sqlx::Error::Tls(tls) => format!("TLS with {who} failed: {tls}"),
        sqlx::Error::Configuration(c) => format!("invalid database URL for {who}: {c}"),
        sqlx::Error::Database(db) if target.dialect == Dialect::Sqlite => format!(
            "cannot open {who}: {} (does the file exist? add `?mode=rwc` to the URL to create it)",
            db.message()
        ),
        // SQLSTATE class 28: invalid authorization (PostgreSQL 28P01/28000, MySQL 1045).
        sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("28")) => {
            format!(
                "{who} refused the login of user `{}`: {} (check the user and password in the URL)",
                target.user_name(),
                db.message()
            )
        }
        sqlx::Error::Database(db) => format!(
            "{who} refused the connection: {}{}",
            db.message(),
            db.code()
                .map(|c| format!(" [SQLSTATE {c}]"))
                .unwrap_or_default()
        ),
        other => format!("cannot connect to {who}: {other}"),
    };
    target.scrub(&text)
}
