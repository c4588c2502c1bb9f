//! Which database a URL names, how to show it, and how to keep its password out of text.
//!
//! Everything the runner says about a database (output lines, failure messages, `check()`
//! results) names it through [`Target`], never through the URL itself: the URL may carry a
//! password, in the authority (`postgres://app:pw@db/x`) or in the query (`?password=pw`).
//! Driver errors can quote the URL or the password, so they go through [`Target::scrub`].

use percent_encoding::percent_decode_str;
use rollbook_plan::template::redact_url;
use url::Url;

/// The SQL dialect, from the URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL (`postgres://`, `postgresql://`).
    Postgres,
    /// MySQL and MariaDB: one wire protocol, told apart after connecting.
    MySql,
    /// SQLite (`sqlite:`), a file on the controller.
    Sqlite,
}

impl Dialect {
    /// The name people know the database by.
    pub fn product(self) -> &'static str {
        match self {
            Dialect::Postgres => "PostgreSQL",
            Dialect::MySql => "MySQL",
            Dialect::Sqlite => "SQLite",
        }
    }

    fn default_port(self) -> Option<u16> {
        match self {
            Dialect::Postgres => Some(5432),
            Dialect::MySql => Some(3306),
            Dialect::Sqlite => None,
        }
    }
}

/// A database URL, understood well enough to connect and to talk about it safely.
#[derive(Debug, Clone)]
pub struct Target {
    /// Which database speaks at the other end.
    pub dialect: Dialect,
    /// The URL as sqlx takes it (`mariadb://` becomes `mysql://`). Holds the password: never
    /// shown.
    pub(crate) connect_url: String,
    /// `host:port` (or the file of a SQLite database), for messages.
    pub host: String,
    /// The user name from the URL, if any.
    pub user: Option<String>,
    /// The database (path) from the URL, if any.
    pub database: Option<String>,
    /// Text that must never be shown: the URL as written and its password (raw and
    /// percent-decoded).
    secrets: Vec<String>,
}

impl Target {
    /// Understands `postgres://`, `postgresql://`, `mysql://`, `mariadb://` and `sqlite:`
    /// URLs. The error text is safe to show.
    pub fn parse(url: &str) -> Result<Target, String> {
        let url = url.trim();
        if url.is_empty() {
            return Err("the step has no database URL (its connection or `url` is empty)".into());
        }
        let (scheme, rest) = match url.split_once(':') {
            Some((s, r)) => (s.to_ascii_lowercase(), r),
            None => return Err(format!("`{}` is not a database URL", redact(url))),
        };
        let (dialect, connect_url) = match scheme.as_str() {
            "postgres" | "postgresql" => (Dialect::Postgres, url.to_string()),
            "mysql" => (Dialect::MySql, url.to_string()),
            "mariadb" => (Dialect::MySql, format!("mysql:{rest}")),
            "sqlite" => (Dialect::Sqlite, url.to_string()),
            _ => {
                return Err(format!(
                    "unsupported database URL `{}`: use postgres://, mysql:// (MariaDB too) or sqlite://",
                    redact(url)
                ));
            }
        };
        if dialect == Dialect::Sqlite {
            return Ok(Target::sqlite(url, rest, connect_url));
        }
        Target::server(url, &scheme, rest, dialect, connect_url)
    }

    /// A SQLite file (or `:memory:`): no host, no user, no password.
    fn sqlite(url: &str, rest: &str, connect_url: String) -> Target {
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or(path);
        Target {
            dialect: Dialect::Sqlite,
            connect_url,
            host: if path.is_empty() {
                ":memory:".into()
            } else {
                path.into()
            },
            user: None,
            database: Some(path.to_string()),
            secrets: vec![url.to_string()],
        }
    }

    /// A database server's URL, `SCHEME://USER:PASSWORD@HOST:PORT/DATABASE?…`, read with the
    /// `url` crate; its password (in the authority or a `password=` parameter) is kept as a
    /// secret, as written and percent-decoded.
    fn server(
        url: &str,
        scheme: &str,
        rest: &str,
        dialect: Dialect,
        connect_url: String,
    ) -> Result<Target, String> {
        let not_a_url = || {
            format!(
                "`{}` is not a database URL: expected {scheme}://USER@HOST:PORT/DATABASE",
                redact(url)
            )
        };
        if !rest.starts_with("//") {
            return Err(not_a_url());
        }
        let parsed = Url::parse(url).map_err(|_| not_a_url())?;
        let user = Some(parsed.username())
            .filter(|u| !u.is_empty())
            .map(decode);
        let mut secrets = vec![url.to_string()];
        let raw_query_password = parsed.query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("password="))
                .map(str::to_string)
        });
        for pw in parsed
            .password()
            .map(str::to_string)
            .iter()
            .chain(&raw_query_password)
        {
            if !pw.is_empty() {
                secrets.push(pw.clone());
                secrets.push(decode(pw));
            }
        }
        let database = parsed
            .path()
            .strip_prefix('/')
            .filter(|p| !p.is_empty())
            .map(decode);
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .unwrap_or("localhost");
        let host = match parsed.port().or(dialect.default_port()) {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        // Longest first, so that a password inside the URL is not replaced before the URL.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Ok(Target {
            dialect,
            connect_url,
            host,
            user,
            database,
            secrets,
        })
    }

    /// `PostgreSQL at 127.0.0.1:5432`: how messages name the database.
    pub fn name(&self) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("SQLite database {}", self.host),
            d => format!("{} at {}", d.product(), self.host),
        }
    }

    /// The user for messages: `postgres`, or `(default user)`.
    pub fn user_name(&self) -> &str {
        self.user.as_deref().unwrap_or("(default user)")
    }

    /// Replaces the URL and its password in `text`: driver errors may quote either. A
    /// password of fewer than 4 characters is left alone in free text (replacing every `e`
    /// would garble the message more than it protects); it is still hidden inside the URL.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (i, secret) in self.secrets.iter().enumerate() {
            let is_url = i == 0 || secret.contains("://");
            if is_url {
                out = out.replace(secret.as_str(), &redact(secret));
            } else if secret.chars().count() >= 4 {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}

/// The URL with its password hidden, in the authority and in a `password=` query parameter.
pub fn redact(url: &str) -> String {
    let shown = redact_url(url);
    match shown.split_once('?') {
        Some((base, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{base}?{}", query.join("&"))
        }
        None => shown,
    }
}

/// `%40` → `@`: user names, passwords and paths in URLs are percent-encoded.
fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_survives_scrubbing() {
        let t =
            Target::parse("postgres://app:s3cr%40t@db.internal:6543/main?sslmode=require").unwrap();
        assert_eq!(t.dialect, Dialect::Postgres);
        assert_eq!(t.host, "db.internal:6543");
        assert_eq!(t.user.as_deref(), Some("app"));
        assert_eq!(t.database.as_deref(), Some("main"));
        let text = "failed: postgres://app:s3cr%40t@db.internal:6543/main?sslmode=require \
                    and s3cr@t and s3cr%40t";
        let clean = t.scrub(text);
        assert!(!clean.contains("s3cr"), "{clean}");
        assert!(
            clean.contains("postgres://app:***@db.internal:6543/main"),
            "{clean}"
        );
    }

    #[test]
    fn a_query_password_is_hidden_too() {
        let t = Target::parse("mysql://root@127.0.0.1/test?password=hunter22").unwrap();
        assert_eq!(t.host, "127.0.0.1:3306");
        assert!(!t.scrub("x hunter22 y").contains("hunter22"));
        assert_eq!(
            redact("mysql://root@127.0.0.1/test?ssl-mode=required&password=hunter22"),
            "mysql://root@127.0.0.1/test?ssl-mode=required&password=***"
        );
    }

    #[test]
    fn schemes_and_defaults() {
        let t = Target::parse("mariadb://u@h/db").unwrap();
        assert_eq!(t.dialect, Dialect::MySql);
        assert!(t.connect_url.starts_with("mysql://"));
        assert_eq!(t.name(), "MySQL at h:3306");
        let t = Target::parse("sqlite:///tmp/x.db?mode=rwc").unwrap();
        assert_eq!(t.host, "/tmp/x.db");
        let e = Target::parse("redis://u:pw@h").unwrap_err();
        assert!(e.contains("redis://u:***@h"), "{e}");
        assert!(Target::parse("").is_err());
        assert!(Target::parse("postgres:db").is_err());
    }

    #[test]
    fn hosts_users_and_databases_are_read_as_urls_define_them() {
        // An `@` and a `:` in the password, encoded as URLs require.
        let t = Target::parse("postgres://us%3Aer:p%40ss%3Aword@[::1]:6000/my%20db").unwrap();
        assert_eq!(t.host, "[::1]:6000");
        assert_eq!(t.user.as_deref(), Some("us:er"));
        assert_eq!(t.database.as_deref(), Some("my db"));
        let clean = t.scrub("refused p@ss:word and p%40ss%3Aword");
        assert!(!clean.contains("ss"), "{clean}");
        // No host: the driver's default, localhost.
        let t = Target::parse("postgres:///main").unwrap();
        assert_eq!(t.host, "localhost:5432");
        assert_eq!(t.user, None);
        // A user without a password, and no database.
        let t = Target::parse("mysql://deploy@db.internal:3307").unwrap();
        assert_eq!(t.host, "db.internal:3307");
        assert_eq!(t.user.as_deref(), Some("deploy"));
        assert_eq!(t.database, None);
    }
}
