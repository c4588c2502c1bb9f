//! Checks of each action's own fields: connections, TLS, SQL placeholders.

use super::*;

impl<'p> Validator<'p> {
    pub(super) fn ssh_settings(&mut self, s: &SshSettings, scope: &Scope<'p>) {
        for t in [&s.user, &s.identity_file, &s.known_hosts]
            .into_iter()
            .flatten()
        {
            self.template(t, scope, Sink::Text);
        }
        for (_, t) in s.env.iter() {
            self.template(t, scope, Sink::Text);
        }
    }

    pub(super) fn ssh(&mut self, a: &SshAction, scope: &Scope<'p>) {
        self.template(&a.host, scope, Sink::Text);
        for t in [&a.run, &a.script].into_iter().flatten() {
            self.template(t, scope, Sink::Shell);
        }
        if let Some(u) = &a.upload {
            self.template(&u.from, scope, Sink::Text);
            self.template(&u.to, scope, Sink::Text);
        }
        self.ssh_settings(&a.settings, scope);
    }

    /// A `shell` step's templates: `run` and `script` go to a shell, `env` and `cwd` do not.
    pub(super) fn shell(&mut self, a: &ShellAction, scope: &Scope<'p>) {
        for t in [&a.run, &a.script].into_iter().flatten() {
            self.template(t, scope, Sink::Shell);
        }
        for (_, t) in a.env.iter() {
            self.template(t, scope, Sink::Text);
        }
        if let Some(t) = &a.cwd {
            self.template(t, scope, Sink::Text);
        }
    }

    pub(super) fn tls(&mut self, tls: Option<&Tls>, scope: &Scope<'p>) {
        let Some(tls) = tls else { return };
        for t in [&tls.ca_file, &tls.client_cert, &tls.client_key]
            .into_iter()
            .flatten()
        {
            self.template(t, scope, Sink::Text);
        }
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            let at = tls
                .client_cert
                .as_ref()
                .or(tls.client_key.as_ref())
                .map(|t| t.span)
                .unwrap_or_default();
            self.push(Diagnostic::error(
                "bad-tls",
                at,
                "`client_cert` and `client_key` go together",
            ));
        }
        if let Some(i) = &tls.insecure
            && i.value
        {
            self.push(
                Diagnostic::warning(
                    "tls-insecure",
                    i.span,
                    "TLS certificates are not verified for this request",
                )
                .help("prefer `ca_file` with the CA that signed the server's certificate"),
            );
        }
    }

    pub(super) fn http(&mut self, a: &HttpAction, scope: &Scope<'p>) {
        if let Some(c) = &a.connection {
            self.connection_ref(c, "http");
            if a.path.is_none() {
                self.push(
                    Diagnostic::error(
                        "missing-key",
                        c.span,
                        "`connection` needs a `path` to request",
                    )
                    .help("add `path: /api/v1/...`"),
                );
            }
        } else if let Some(p) = &a.path {
            self.push(
                Diagnostic::error("conflicting-keys", p.span, "`path` goes with `connection`")
                    .help("use `url:` for a full address"),
            );
        }
        let mut templates: Vec<&Template> =
            [&a.url, &a.path, &a.body].into_iter().flatten().collect();
        for map in [&a.headers, &a.query, &a.form] {
            templates.extend(map.iter().map(|(_, t)| t));
        }
        if let Some(e) = &a.expect
            && let Some(b) = &e.body_contains
        {
            templates.push(b);
        }
        for t in templates {
            self.template(t, scope, Sink::Text);
        }
        if let Some(json) = &a.json {
            self.json_templates(json, scope);
        }
        if let Some(jq) = a.expect.as_ref().and_then(|e| e.jq.as_ref()) {
            self.jq(jq, scope, "expect.jq");
        }
        self.tls(a.tls.as_ref(), scope);
    }

    pub(super) fn sql(&mut self, a: &SqlAction, scope: &Scope<'p>) {
        match (&a.connection, &a.url) {
            (Some(c), _) => self.connection_ref(c, "sql"),
            (None, Some(u)) => self.template(u, scope, Sink::Text),
            (None, None) => {
                if self
                    .plan
                    .defaults
                    .sql
                    .as_ref()
                    .and_then(|s| s.connection.as_ref())
                    .is_none()
                {
                    self.push(
                        Diagnostic::error("missing-key", Span::new(a.span.offset, 0), "a sql action needs `connection` or `url`")
                            .help("name a connection from `connections:`, or set `defaults.sql.connection`"),
                    );
                }
            }
        }
        for statement in a.all_statements() {
            self.template(&statement.query, scope, Sink::Sql);
            for arg in &statement.args {
                self.json_templates(arg, scope);
            }
            let highest = placeholders(&statement.query.value)
                .into_iter()
                .max()
                .unwrap_or(0);
            let given = statement.args.len();
            if highest > given {
                self.push(
                    Diagnostic::error(
                        "sql-args",
                        statement.query.span,
                        format!(
                            "the statement uses ${highest} but has {given} {}",
                            if given == 1 { "arg" } else { "args" }
                        ),
                    )
                    .help("give one value per placeholder in `args:`, in order ($1 is the first)"),
                );
            } else if given > highest {
                self.push(
                    Diagnostic::error("sql-args", statement.query.span, format!("the statement has {given} {} but uses {}", if given == 1 { "arg" } else { "args" }, if highest == 0 { "no placeholder".to_string() } else { format!("only up to ${highest}") }))
                        .help("bind each value with a placeholder: $1, $2, ... (rewritten to ? for MySQL)"),
                );
            }
        }
        if let Some(stmts) = &a.statements
            && stmts.is_empty()
        {
            self.push(Diagnostic::error(
                "bad-value",
                a.span,
                "`statements` is empty",
            ));
        }
    }
}

/// The `$N` placeholders of a SQL text, outside quoted strings and comments.
pub(super) fn placeholders(sql: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'$' => {
                let digits: String = sql[i + 1..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if let Ok(n) = digits.parse() {
                    out.push(n);
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}
