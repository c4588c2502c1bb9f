//! The state URL: what it names, how to connect, and how to show it without its password.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

use crate::Error;

/// A parsed state URL.
#[derive(Debug, Clone)]
pub struct Target {
    url: url::Url,
    password: Option<String>,
}

impl Target {
    /// Reads `postgres://user[:password]@host[:port]/database[?sslmode=…&sslrootcert=FILE]`;
    /// `password` (from the environment or a file) wins over one written in the URL.
    pub fn parse(text: &str, password: Option<String>) -> Result<Self, Error> {
        let url = url::Url::parse(text).map_err(|e| Error::Url {
            url: hide_password(text),
            message: e.to_string(),
        })?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(Error::Url {
                url: hide_password(text),
                message: format!(
                    "`{}:` is not a state backend: the shared state is on PostgreSQL (postgres://…)",
                    url.scheme()
                ),
            });
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Error::Url {
                url: hide_password(text),
                message: "it names no host".into(),
            });
        }
        let in_url = url.password().map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        });
        Ok(Target {
            password: password.filter(|p| !p.is_empty()).or(in_url),
            url,
        })
    }

    /// The URL for people and the journal: no password, no query.
    pub fn shown(&self) -> String {
        let mut url = self.url.clone();
        let _ = url.set_password(None);
        url.set_query(None);
        url.to_string()
    }

    /// A directory name for this database's local copies: host, port and database.
    pub fn local_name(&self) -> String {
        let raw = format!(
            "{}-{}-{}",
            self.url.host_str().unwrap_or("db"),
            self.url.port().unwrap_or(5432),
            self.url.path().trim_start_matches('/')
        );
        raw.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// sqlx's options: the URL (with `sslmode`, `sslrootcert` and the rest of libpq's
    /// parameters), the password given apart, and a name the server's `pg_stat_activity`
    /// shows.
    pub fn connect_options(&self) -> Result<PgConnectOptions, Error> {
        let mut url = self.url.clone();
        let _ = url.set_password(None);
        let mut options = PgConnectOptions::from_str(url.as_str()).map_err(|e| Error::Url {
            url: self.shown(),
            message: self.scrub(&e.to_string()),
        })?;
        if let Some(p) = &self.password {
            options = options.password(p);
        }
        // A controller cut off in the middle of a transaction would keep its session, and the
        // run's advisory lock with it, until the server notices the dead connection (hours
        // without keepalives): a takeover would wait on it. Our transactions never wait on
        // the client, so one idle inside a transaction for 10 s is a lost client.
        Ok(options
            .application_name("rollbook")
            .options([("idle_in_transaction_session_timeout", "10s")]))
    }

    /// `text` with the password, in any form it could take there, as `***`.
    pub fn scrub(&self, text: &str) -> String {
        let Some(p) = self.password.as_deref().filter(|p| !p.is_empty()) else {
            return text.to_string();
        };
        let encoded = percent_encoding::utf8_percent_encode(p, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
        text.replace(p, "***").replace(&encoded, "***")
    }

    /// The password, for a run's redactor: it must never show in a step's output either.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
}

/// A URL that did not parse, shown with whatever sits between `://` and `@` after the first
/// `:` hidden.
fn hide_password(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_string();
    };
    let rest = &text[scheme_end + 3..];
    let Some(at) = rest.rfind('@') else {
        return text.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &text[..scheme_end + 3],
            &rest[..colon],
            &rest[at..]
        ),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_shown() {
        let t = Target::parse(
            "postgres://ops:s3cr%2Ft@db.internal:5433/rollbook?sslmode=require",
            None,
        )
        .unwrap();
        assert_eq!(t.shown(), "postgres://ops@db.internal:5433/rollbook");
        assert_eq!(t.password(), Some("s3cr/t"));
        assert_eq!(
            t.scrub("auth failed for s3cr/t and s3cr%2Ft"),
            "auth failed for *** and ***"
        );
        assert_eq!(t.local_name(), "db.internal-5433-rollbook");
    }

    #[test]
    fn a_password_given_apart_wins() {
        let t = Target::parse("postgres://ops:old@db/rb", Some("new".into())).unwrap();
        assert_eq!(t.password(), Some("new"));
        assert!(!t.shown().contains("old"));
    }

    #[test]
    fn a_url_that_does_not_read_hides_its_password() {
        let e = Target::parse("postgres://ops:hunter2@[bad/rb", None).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = Target::parse("mysql://ops:hunter2@db/rb", None).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
