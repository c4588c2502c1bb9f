//! Just enough SQL lexing to bind arguments safely and to know what a statement does.
//!
//! Plans write PostgreSQL placeholders (`$1`, `$2`) whatever the database, so one plan serves
//! PostgreSQL, MySQL/MariaDB and SQLite. MySQL only knows `?`, bound in order, so a MySQL
//! statement is rewritten — but only where a `$N` is code: inside a string literal, a quoted
//! identifier or a comment it is text and stays as written. The lexer knows each dialect's
//! quoting (PostgreSQL dollar quotes and `E''` escapes, MySQL backslash escapes, `#` comments
//! and backticks, SQLite `[identifiers]`).
//!
//! It also finds a statement's verb (`DELETE`, and for `WITH ... DELETE` the `DELETE`), which
//! decides whether a statement's count is rows changed or rows read, and whether MySQL
//! commits it implicitly.

use crate::target::Dialect;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A keyword or identifier: its text.
    Word(String),
    /// `$N`, at this byte range.
    Placeholder {
        n: usize,
        start: usize,
        end: usize,
    },
    /// `?` outside strings and comments, at this byte offset.
    Question(usize),
    Open,
    Close,
    Semicolon,
    Other,
}

/// A statement ready for one dialect: its text (placeholders rewritten for MySQL) and what
/// the runner needs to know about it.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The text sent to the server.
    pub sql: String,
    /// Its main verb, upper case (`SELECT`, `DELETE`, ...), if it has one.
    pub verb: Option<String>,
}

impl Prepared {
    /// Reads rows without changing any: its count is not rows affected. (PostgreSQL reports
    /// `SELECT 5` for five rows read; MySQL and SQLite report 0.)
    pub fn reads_only(&self) -> bool {
        matches!(
            self.verb.as_deref(),
            Some(
                "SELECT" | "VALUES" | "TABLE" | "SHOW" | "EXPLAIN" | "DESCRIBE" | "DESC" | "FETCH"
            )
        )
    }

    /// Changes the schema (or may): prepared statements made before it may be stale.
    pub fn is_ddl(&self) -> bool {
        matches!(
            self.verb.as_deref(),
            Some("ALTER" | "CREATE" | "DROP" | "RENAME" | "TRUNCATE" | "COMMENT" | "SET" | "RESET")
        )
    }

    /// MySQL and MariaDB commit the open transaction before (and after) these statements.
    pub fn commits_implicitly_on_mysql(&self) -> bool {
        matches!(
            self.verb.as_deref(),
            Some(
                "ALTER"
                    | "CREATE"
                    | "DROP"
                    | "RENAME"
                    | "TRUNCATE"
                    | "GRANT"
                    | "REVOKE"
                    | "LOCK"
                    | "UNLOCK"
                    | "ANALYZE"
                    | "OPTIMIZE"
                    | "REPAIR"
                    | "INSTALL"
                    | "UNINSTALL"
            )
        )
    }

    /// Ends or starts a transaction: not allowed where the runner owns the transaction.
    pub fn controls_transaction(&self, sql: &str, dialect: Dialect) -> bool {
        match self.verb.as_deref() {
            Some("BEGIN" | "START" | "COMMIT" | "END" | "ABORT") => true,
            // `ROLLBACK TO SAVEPOINT x` stays inside the transaction.
            Some("ROLLBACK") => {
                let words: Vec<String> = lex(sql, dialect)
                    .into_iter()
                    .filter_map(|t| match t {
                        Token::Word(w) => Some(w.to_ascii_uppercase()),
                        _ => None,
                    })
                    .collect();
                !words.iter().skip(1).any(|w| w == "TO")
            }
            _ => false,
        }
    }
}

/// Checks a statement's placeholders against its arguments and readies its text for the
/// dialect. The error says what to write instead.
pub fn prepare(sql: &str, dialect: Dialect, nargs: usize) -> Result<Prepared, String> {
    let tokens = lex(sql, dialect);
    let verb = verb(&tokens);
    let placeholders: Vec<(usize, usize, usize)> = tokens
        .iter()
        .filter_map(|t| match t {
            Token::Placeholder { n, start, end } => Some((*n, *start, *end)),
            _ => None,
        })
        .collect();
    if dialect != Dialect::Postgres
        && let Some(Token::Question(_)) = tokens.iter().find(|t| matches!(t, Token::Question(_)))
    {
        return Err(format!(
            "it contains `?`, which {} takes as a placeholder: write placeholders as $1, $2, ... (one per arg, in order)",
            dialect.product()
        ));
    }
    let highest = placeholders.iter().map(|p| p.0).max().unwrap_or(0);
    if highest != nargs {
        return Err(format!(
            "it uses {} but has {nargs} {}",
            if highest == 0 {
                "no placeholder".to_string()
            } else {
                format!("placeholders up to ${highest}")
            },
            if nargs == 1 { "arg" } else { "args" }
        ));
    }
    // PostgreSQL and MySQL refuse two statements in one prepared statement; SQLite would run
    // them all. A trigger's body (`CREATE TRIGGER ... BEGIN ...; ...; END`) is one statement.
    let more = tokens
        .iter()
        .skip_while(|t| **t != Token::Semicolon)
        .any(|t| *t != Token::Semicolon);
    if dialect == Dialect::Sqlite && more && !creates_trigger(&tokens) {
        return Err(
            "it holds more than one statement (a `;` outside quotes and comments): give each its own item in `statements`"
                .into(),
        );
    }
    let sql = match dialect {
        Dialect::MySql => rewrite_for_mysql(sql, &placeholders)?,
        Dialect::Postgres | Dialect::Sqlite => sql.to_string(),
    };
    // A trailing `;` (as the dry run shows statements) is not a second statement.
    let sql = sql.trim_end().trim_end_matches(';').to_string();
    Ok(Prepared { sql, verb })
}

/// `$1 ... $2` → `? ... ?`. MySQL binds `?` by position, so `$N` must appear in order, each
/// once; anything else would bind a value to the wrong place, so it is refused.
fn rewrite_for_mysql(sql: &str, placeholders: &[(usize, usize, usize)]) -> Result<String, String> {
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    for (i, &(n, start, end)) in placeholders.iter().enumerate() {
        if n != i + 1 {
            let what = if placeholders[..i].iter().any(|p| p.0 == n) {
                format!("uses ${n} twice")
            } else {
                format!("uses ${n} where ${} comes next", i + 1)
            };
            return Err(format!(
                "it {what}: MySQL binds `?` in order, so write $1, $2, ... in order, each once (repeat a value in `args` to use it twice)"
            ));
        }
        out.push_str(&sql[last..start]);
        out.push('?');
        last = end;
    }
    out.push_str(&sql[last..]);
    Ok(out)
}

/// `CREATE [TEMP|TEMPORARY] TRIGGER`: its body holds `;`-separated statements.
fn creates_trigger(tokens: &[Token]) -> bool {
    let words: Vec<String> = tokens
        .iter()
        .take(3)
        .map(|t| match t {
            Token::Word(w) => w.to_ascii_uppercase(),
            _ => String::new(),
        })
        .collect();
    match words.as_slice() {
        [c, t, ..] if c == "CREATE" && t == "TRIGGER" => true,
        [c, temp, t] => c == "CREATE" && (temp == "TEMP" || temp == "TEMPORARY") && t == "TRIGGER",
        _ => false,
    }
}

/// The statement's main verb: its first word, or for `WITH ...` the first
/// SELECT/INSERT/UPDATE/DELETE/MERGE/VALUES/TABLE outside the parentheses of the CTEs.
fn verb(tokens: &[Token]) -> Option<String> {
    let mut words = tokens.iter().filter(|t| !matches!(t, Token::Open));
    let first = match words.next()? {
        Token::Word(w) => w.to_ascii_uppercase(),
        _ => return None,
    };
    if first != "WITH" {
        return Some(first);
    }
    let mut depth = 0i32;
    for t in tokens {
        match t {
            Token::Open => depth += 1,
            Token::Close => depth -= 1,
            Token::Word(w) if depth == 0 => {
                let w = w.to_ascii_uppercase();
                if matches!(
                    w.as_str(),
                    "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "VALUES" | "TABLE"
                ) {
                    return Some(w);
                }
            }
            _ => {}
        }
    }
    Some(first)
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Splits SQL into the tokens this module cares about; strings, quoted identifiers and
/// comments produce nothing. Never fails: an unterminated string runs to the end (the server
/// will say what is wrong with it).
fn lex(sql: &str, dialect: Dialect) -> Vec<Token> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        match c {
            b'-' if next == Some(b'-')
                && (dialect != Dialect::MySql
                    || b.get(i + 2)
                        .is_none_or(|c| c.is_ascii_whitespace() || *c < 0x20)) =>
            {
                i = skip_line(b, i);
            }
            b'#' if dialect == Dialect::MySql => i = skip_line(b, i),
            b'/' if next == Some(b'*') => {
                i = skip_block_comment(b, i, dialect == Dialect::Postgres)
            }
            b'\'' => {
                let backslash = match dialect {
                    Dialect::MySql => true,
                    Dialect::Postgres => {
                        i > 0
                            && matches!(b[i - 1], b'E' | b'e')
                            && (i < 2 || !is_ident_byte(b[i - 2]))
                    }
                    Dialect::Sqlite => false,
                };
                i = skip_quoted(b, i, b'\'', backslash);
            }
            b'"' => i = skip_quoted(b, i, b'"', dialect == Dialect::MySql),
            b'`' if dialect != Dialect::Postgres => i = skip_quoted(b, i, b'`', false),
            b'[' if dialect == Dialect::Sqlite => {
                i = b[i..]
                    .iter()
                    .position(|&c| c == b']')
                    .map_or(b.len(), |p| i + p + 1);
            }
            b'$' => {
                let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                if digits > 0 {
                    let end = i + 1 + digits;
                    let n = sql[i + 1..end].parse().unwrap_or(usize::MAX);
                    out.push(Token::Placeholder { n, start: i, end });
                    i = end;
                } else if dialect == Dialect::Postgres
                    && let Some(end) = skip_dollar_quote(b, i)
                {
                    i = end;
                } else {
                    out.push(Token::Other);
                    i += 1;
                }
            }
            b'?' => {
                out.push(Token::Question(i));
                i += 1;
            }
            b'(' => {
                out.push(Token::Open);
                i += 1;
            }
            b')' => {
                out.push(Token::Close);
                i += 1;
            }
            b';' => {
                out.push(Token::Semicolon);
                i += 1;
            }
            c if c.is_ascii_digit() => {
                while i < b.len() && (is_ident_byte(b[i]) || b[i] == b'.') {
                    i += 1;
                }
                out.push(Token::Other);
            }
            c if is_ident_byte(c) => {
                let start = i;
                while i < b.len() && is_ident_byte(b[i]) {
                    i += 1;
                }
                out.push(Token::Word(sql[start..i].to_string()));
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                out.push(Token::Other);
                i += 1;
            }
        }
    }
    out
}

fn skip_line(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| i + p + 1)
}

/// `/* ... */`; PostgreSQL nests them.
fn skip_block_comment(b: &[u8], mut i: usize, nested: bool) -> usize {
    let mut depth = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') && (depth == 0 || nested) {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// A quoted string or identifier starting at `i`: a doubled quote is a quote; with
/// `backslash`, `\x` is an escape.
fn skip_quoted(b: &[u8], i: usize, quote: u8, backslash: bool) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        if backslash && b[j] == b'\\' {
            j += 2;
        } else if b[j] == quote {
            if b.get(j + 1) == Some(&quote) {
                j += 2;
            } else {
                return j + 1;
            }
        } else {
            j += 1;
        }
    }
    b.len()
}

/// PostgreSQL `$tag$ ... $tag$` (or `$$ ... $$`) at `i`, unless `$` ends an identifier.
fn skip_dollar_quote(b: &[u8], i: usize) -> Option<usize> {
    if i > 0 && is_ident_byte(b[i - 1]) {
        return None;
    }
    let tag_len = b[i + 1..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c >= 0x80)
        .count();
    if b.get(i + 1 + tag_len) != Some(&b'$') || b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let tag = &b[i..i + tag_len + 2];
    let body = i + tag.len();
    let close = b[body..].windows(tag.len()).position(|w| w == tag);
    Some(close.map_or(b.len(), |p| body + p + tag.len()))
}

/// The statement's first non-empty line, shortened: how messages name a statement.
pub fn first_line(sql: &str) -> String {
    let line = sql
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let more = sql.trim().lines().count() > 1;
    match line.char_indices().nth(80) {
        Some((cut, _)) => format!("{} ...", &line[..cut]),
        None if more => format!("{line} ..."),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mysql(sql: &str, n: usize) -> Result<String, String> {
        prepare(sql, Dialect::MySql, n).map(|p| p.sql)
    }

    #[test]
    fn placeholders_become_question_marks_only_in_code() {
        assert_eq!(
            mysql(
                "UPDATE t SET a = $1, note = '$2 is text' -- $3\nWHERE id = $2 # $9",
                2
            )
            .unwrap(),
            "UPDATE t SET a = ?, note = '$2 is text' -- $3\nWHERE id = ? # $9"
        );
        assert_eq!(
            mysql(r#"SELECT "it\"s $1", `col$1`, /* $1 */ $1"#, 1).unwrap(),
            r#"SELECT "it\"s $1", `col$1`, /* $1 */ ?"#
        );
        assert_eq!(
            mysql(r"SELECT 'a\'$1' , $1", 1).unwrap(),
            r"SELECT 'a\'$1' , ?"
        );
        // An identifier may contain `$` in MySQL: `a$1` is a name, not a placeholder.
        assert_eq!(mysql("SELECT a$1 FROM t", 0).unwrap(), "SELECT a$1 FROM t");
    }

    #[test]
    fn out_of_order_or_repeated_placeholders_are_refused_for_mysql() {
        let e = mysql("SELECT $2, $1", 2).unwrap_err();
        assert!(e.contains("uses $2 where $1 comes next"), "{e}");
        let e = mysql("SELECT $1, $1", 1).unwrap_err();
        assert!(e.contains("uses $1 twice"), "{e}");
        // PostgreSQL numbers them itself: any order and reuse are fine.
        assert!(prepare("SELECT $2, $1, $1", Dialect::Postgres, 2).is_ok());
        let e = mysql("SELECT * FROM t WHERE a = ?", 0).unwrap_err();
        assert!(e.contains("`?`"), "{e}");
    }

    #[test]
    fn args_must_match_the_highest_placeholder() {
        let e = prepare("SELECT $1, $2", Dialect::Postgres, 1).unwrap_err();
        assert_eq!(e, "it uses placeholders up to $2 but has 1 arg");
        let e = prepare("SELECT 1", Dialect::Sqlite, 2).unwrap_err();
        assert_eq!(e, "it uses no placeholder but has 2 args");
    }

    #[test]
    fn postgres_quoting() {
        let p = prepare(
            "CREATE FUNCTION f() RETURNS int AS $body$ SELECT $1 $body$ LANGUAGE sql; SELECT E'\\'$1', $$ $2 $$, $1",
            Dialect::Postgres,
            1,
        )
        .unwrap();
        assert_eq!(p.verb.as_deref(), Some("CREATE"));
        // nested comments
        assert!(prepare("/* a /* b */ $2 */ SELECT $1", Dialect::Postgres, 1).is_ok());
    }

    #[test]
    fn verbs() {
        let v = |s: &str| prepare(s, Dialect::Postgres, 0).unwrap();
        assert!(v("  -- hi\n select 1").reads_only());
        assert!(v("(SELECT 1)").reads_only());
        assert!(v("WITH x AS (DELETE FROM t RETURNING *) SELECT count(*) FROM x").reads_only());
        assert!(
            !v("WITH x AS (SELECT 1) DELETE FROM t WHERE id IN (SELECT * FROM x)").reads_only()
        );
        assert!(v("alter table t add column c int").commits_implicitly_on_mysql());
        assert!(!v("UPDATE t SET a = 1").commits_implicitly_on_mysql());
        let p = v("ROLLBACK TO SAVEPOINT a");
        assert!(!p.controls_transaction("ROLLBACK TO SAVEPOINT a", Dialect::Postgres));
        let p = v("commit");
        assert!(p.controls_transaction("commit", Dialect::Postgres));
    }

    #[test]
    fn one_statement_per_item_on_sqlite() {
        let e = prepare("DELETE FROM t; DROP TABLE u", Dialect::Sqlite, 0).unwrap_err();
        assert!(e.contains("more than one statement"), "{e}");
        assert_eq!(
            prepare("DELETE FROM t;  ", Dialect::Sqlite, 0).unwrap().sql,
            "DELETE FROM t"
        );
        assert!(prepare("SELECT ';' -- ; x\n", Dialect::Sqlite, 0).is_ok());
        let trigger = "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE u SET n = n + 1; END";
        assert!(prepare(trigger, Dialect::Sqlite, 0).is_ok());
        assert!(
            prepare(
                &trigger.replace("CREATE", "CREATE TEMP"),
                Dialect::Sqlite,
                0
            )
            .is_ok()
        );
        assert!(prepare("CREATE TABLE a (x INT); DROP TABLE b", Dialect::Sqlite, 0).is_err());
    }

    #[test]
    fn first_lines() {
        assert_eq!(
            first_line("\n  UPDATE nodes n\n SET x = 1"),
            "UPDATE nodes n ..."
        );
        assert_eq!(first_line("DELETE FROM t"), "DELETE FROM t");
    }

    /// The placeholder scan against an oracle: statements built from code (with `$N`
    /// placeholders) and from text where `$N` is not a placeholder (strings, quoted
    /// identifiers, comments, dollar quotes), in each dialect's quoting.
    mod oracle {
        use proptest::prelude::*;

        use super::*;

        /// One piece of a statement.
        #[derive(Debug, Clone)]
        enum Piece {
            /// Words and operators, no quote or comment in them.
            Code(String),
            /// A placeholder in code: numbered in order when the statement is built.
            Placeholder,
            /// A string, quoted identifier or comment, written as it is.
            Text(String),
        }

        fn code() -> impl Strategy<Value = Piece> {
            proptest::collection::vec(
                proptest::sample::select(vec![
                    "SELECT", "a", "t.b", "1", "2.5", "=", ",", "(", ")", "+", "||", "x_1", "*",
                ]),
                1..4,
            )
            .prop_map(|words| Piece::Code(words.join(" ")))
        }

        /// The body of a quoted text: placeholders, dollars and the quoting characters of
        /// every dialect, but none of the characters in `forbidden` (what would end the text
        /// early) except in `escapes`; a lone `$` only when `dollar` (next to another `$` it
        /// could end a dollar quote).
        fn body(
            forbidden: &'static str,
            escapes: &'static [&'static str],
            dollar: bool,
        ) -> BoxedStrategy<String> {
            let mut tokens = vec![
                "a", "tag", " ", "$1", "$2", "$9", "$10", "$", "?", "'", "\"", "`", "--", "#",
                "/*", "*/", ";", "(", ")", "\\", "[", "]", "\n",
            ];
            tokens.retain(|t| !t.contains(|c| forbidden.contains(c)) && (dollar || *t != "$"));
            tokens.extend(escapes);
            proptest::collection::vec(proptest::sample::select(tokens), 0..8)
                .prop_map(|t| t.concat())
                .boxed()
        }

        /// `open` + body + `close` (see [`body`]).
        fn quoted(
            open: &'static str,
            close: &'static str,
            forbidden: &'static str,
            escapes: &'static [&'static str],
        ) -> BoxedStrategy<Piece> {
            body(forbidden, escapes, !close.contains('$'))
                .prop_map(move |b| Piece::Text(format!("{open}{b}{close}")))
                .boxed()
        }

        fn texts(dialect: Dialect) -> BoxedStrategy<Piece> {
            // A line comment ends at the newline; a block comment has no `*` inside (`/*/*`
            // holds a `*/`), but for the nested one PostgreSQL reads.
            let line_comment = quoted("-- ", "\n", "\n", &[]);
            match dialect {
                Dialect::MySql => prop_oneof![
                    quoted("'", "'", "'\\", &["''", "\\'", "\\\\"]),
                    quoted("\"", "\"", "\"\\", &["\"\"", "\\\"", "\\\\"]),
                    quoted("`", "`", "`", &["``"]),
                    line_comment,
                    quoted("#", "\n", "\n", &[]),
                    quoted("/*", "*/", "*", &[]),
                ]
                .boxed(),
                Dialect::Postgres => prop_oneof![
                    quoted("'", "'", "'", &["''"]),
                    quoted("E'", "'", "'\\", &["''", "\\'", "\\\\"]),
                    quoted("\"", "\"", "\"", &["\"\""]),
                    quoted("$$", "$$", "", &[]),
                    quoted("$tag$", "$tag$", "", &[]),
                    line_comment,
                    quoted("/*", "*/", "*", &[]),
                    quoted("/* a /* ", " */ b */", "*", &[]),
                ]
                .boxed(),
                Dialect::Sqlite => prop_oneof![
                    quoted("'", "'", "'", &["''"]),
                    quoted("\"", "\"", "\"", &["\"\""]),
                    quoted("`", "`", "`", &["``"]),
                    quoted("[", "]", "]", &[]),
                    line_comment,
                    quoted("/*", "*/", "*", &[]),
                ]
                .boxed(),
            }
        }

        fn statement(dialect: Dialect) -> impl Strategy<Value = Vec<Piece>> {
            proptest::collection::vec(
                prop_oneof![3 => code(), 2 => Just(Piece::Placeholder), 3 => texts(dialect)],
                0..12,
            )
        }

        /// The statement as written, the statement with its placeholders as `?`, and how many
        /// placeholders it has. Pieces are apart, so none runs into the next.
        fn build(pieces: &[Piece]) -> (String, String, usize) {
            let (mut sql, mut rewritten, mut n) = (String::new(), String::new(), 0);
            for piece in pieces {
                let (written, as_mysql) = match piece {
                    Piece::Code(c) | Piece::Text(c) => (c.clone(), c.clone()),
                    Piece::Placeholder => {
                        n += 1;
                        (format!("${n}"), "?".to_string())
                    }
                };
                for (out, text) in [(&mut sql, written), (&mut rewritten, as_mysql)] {
                    out.push(' ');
                    out.push_str(&text);
                    out.push(' ');
                }
            }
            (sql, rewritten, n)
        }

        fn trimmed(sql: &str) -> String {
            sql.trim_end().trim_end_matches(';').to_string()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn mysql_rewrites_exactly_the_placeholders_in_code(pieces in statement(Dialect::MySql)) {
                let (sql, expected, n) = build(&pieces);
                prop_assert_eq!(mysql(&sql, n), Ok(trimmed(&expected)), "{}", sql);
            }

            #[test]
            fn postgres_counts_exactly_the_placeholders_in_code(pieces in statement(Dialect::Postgres)) {
                let (sql, _, n) = build(&pieces);
                let prepared = prepare(&sql, Dialect::Postgres, n);
                prop_assert_eq!(prepared.map(|p| p.sql), Ok(trimmed(&sql)), "{}", sql);
                prop_assert!(prepare(&sql, Dialect::Postgres, n + 1).is_err(), "{}", sql);
            }

            #[test]
            fn sqlite_counts_exactly_the_placeholders_in_code(pieces in statement(Dialect::Sqlite)) {
                let (sql, _, n) = build(&pieces);
                let prepared = prepare(&sql, Dialect::Sqlite, n);
                prop_assert_eq!(prepared.map(|p| p.sql), Ok(trimmed(&sql)), "{}", sql);
                prop_assert!(prepare(&sql, Dialect::Sqlite, n + 1).is_err(), "{}", sql);
            }
        }
    }
}
