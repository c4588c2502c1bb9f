//! Readers of the action mappings: `ssh`, `http`, `sql`, `shell`.

use super::*;

impl Decoder<'_> {
    /// An `ssh` action; `inherit` is the step's own `ssh` action when this is its `undo`'s:
    /// its `host` and settings are taken where this one leaves them out.
    pub(super) fn ssh(&mut self, node: &Node, inherit: Option<&SshAction>) -> Option<SshAction> {
        let known: Vec<&str> = keys::SSH_ACTION_OWN
            .iter()
            .chain(keys::SSH_SETTINGS)
            .copied()
            .collect();
        let f = self.fields(node, "an ssh action", &known)?;
        let host = match (f.get("host"), inherit) {
            (None, Some(step)) => Some(step.host.clone()),
            _ => self.required(&f, "host", node).and_then(|n| self.string(n)),
        };
        let run = f.get("run").and_then(|n| self.string(n));
        let script = f.get("script").and_then(|n| self.string(n));
        let upload = f.get("upload").and_then(|n| self.upload(n));
        self.exactly_one_command(node, &f, &["run", "script", "upload"], "an ssh action");
        let own = self.ssh_settings(&f);
        let settings = match inherit {
            Some(step) => inherit_settings(own, &step.settings),
            None => own,
        };
        Some(SshAction {
            host: host?,
            run,
            script,
            upload,
            settings,
            span: node.span,
        })
    }

    /// A step's `undo`: exactly one of `ssh`, `http`, `sql`, `shell`.
    pub(super) fn undo(&mut self, node: &Node, step_ssh: Option<&SshAction>) -> Option<Undo> {
        let f = self.fields(node, "an undo", keys::UNDO)?;
        self.exactly_one_command(node, &f, keys::UNDO, "an undo");
        Some(Undo {
            ssh: f.get("ssh").and_then(|n| self.ssh(n, step_ssh)),
            http: f.get("http").and_then(|n| self.http(n)),
            sql: f.get("sql").and_then(|n| self.sql(n)),
            shell: f.get("shell").and_then(|n| self.shell(n)),
            span: node.span,
        })
    }

    /// Reports a command-like action with none or several of `choices` set.
    pub(super) fn exactly_one_command(
        &mut self,
        node: &Node,
        f: &Fields<'_>,
        choices: &[&str],
        what: &str,
    ) {
        let mut present: Vec<&Node> = choices.iter().filter_map(|c| f.key(c)).collect();
        present.sort_by_key(|n| n.span.offset);
        match present.as_slice() {
            [] => self.push(
                Diagnostic::error(
                    "missing-key",
                    key_span(node),
                    format!("{what} needs one of: {}", choices.join(", ")),
                )
                .label("nothing to run"),
            ),
            [_] => {}
            [first, second, ..] => self.push(
                Diagnostic::error(
                    "conflicting-keys",
                    second.span,
                    format!("{what} takes one of {}, not several", choices.join(", ")),
                )
                .label("second one")
                .related(first.span, "first one"),
            ),
        }
    }

    pub(super) fn upload(&mut self, node: &Node) -> Option<Upload> {
        let f = self.fields(node, "upload", keys::UPLOAD)?;
        let from = self.required(&f, "from", node).and_then(|n| self.string(n));
        let to = self.required(&f, "to", node).and_then(|n| self.string(n));
        let mode = f.get("mode").and_then(|n| self.string(n));
        if let Some(m) = &mode
            && (m.value.is_empty()
                || m.value.len() > 4
                || !m.value.bytes().all(|b| (b'0'..=b'7').contains(&b)))
        {
            self.push(
                Diagnostic::error(
                    "bad-value",
                    m.span,
                    format!("`{}` is not an octal file mode", m.value),
                )
                .help("quote it, like `mode: \"0644\"`"),
            );
        }
        Some(Upload {
            from: from?,
            to: to?,
            mode,
        })
    }

    /// An `http` action: a known method, an address (`url`, or `connection` and `path`) and
    /// at most one body.
    pub(super) fn http(&mut self, node: &Node) -> Option<HttpAction> {
        let f = self.fields(node, "an http action", keys::HTTP_ACTION)?;
        let method = self.http_method(&f);
        self.http_address(&f, node);
        self.one_body(&f);
        Some(HttpAction {
            method,
            url: f.get("url").and_then(|n| self.string(n)),
            connection: f.get("connection").and_then(|n| self.string(n)),
            path: f.get("path").and_then(|n| self.string(n)),
            headers: f
                .get("headers")
                .map(|n| self.templates(n, "headers"))
                .unwrap_or_default(),
            query: f
                .get("query")
                .map(|n| self.templates(n, "query"))
                .unwrap_or_default(),
            json: f.get("json").cloned(),
            body: f.get("body").and_then(|n| self.string(n)),
            form: f
                .get("form")
                .map(|n| self.templates(n, "form"))
                .unwrap_or_default(),
            expect: f.get("expect").and_then(|n| self.http_expect(n)),
            tls: f.get("tls").and_then(|n| self.tls(n)),
            span: node.span,
        })
    }

    /// The method, upper-cased (methods are case-insensitive to write: `post`); an unknown
    /// one is reported.
    fn http_method(&mut self, f: &Fields<'_>) -> Option<Spanned<String>> {
        const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
        let m = f
            .get("method")
            .and_then(|n| self.string(n))
            .map(|m| Spanned::new(m.value.to_ascii_uppercase(), m.span))?;
        if !METHODS.contains(&m.value.as_str()) {
            let mut diag = Diagnostic::error(
                "bad-value",
                m.span,
                format!("`{}` is not an HTTP method", m.value),
            )
            .label(format!("expected one of: {}", METHODS.join(", ")));
            if let Some(s) = did_you_mean(&m.value.to_ascii_uppercase(), METHODS.iter().copied()) {
                diag = diag.help(format!("did you mean `{s}`?"));
            }
            self.push(diag);
        }
        Some(m)
    }

    /// Exactly one of `url` and `connection`.
    fn http_address(&mut self, f: &Fields<'_>, node: &Node) {
        match (f.key("url"), f.key("connection")) {
            (None, None) => self.push(
                Diagnostic::error(
                    "missing-key",
                    key_span(node),
                    "an http action needs `url`, or `connection` and `path`",
                )
                .label("no address"),
            ),
            (Some(u), Some(c)) => self.push(
                Diagnostic::error(
                    "conflicting-keys",
                    c.span,
                    "an http action takes `url` or `connection`, not both",
                )
                .related(u.span, "url"),
            ),
            _ => {}
        }
    }

    /// At most one of `json`, `body` and `form`.
    fn one_body(&mut self, f: &Fields<'_>) {
        let bodies: Vec<&Node> = ["json", "body", "form"]
            .iter()
            .filter_map(|k| f.key(k))
            .collect();
        if let [first, second, ..] = bodies.as_slice() {
            self.push(
                Diagnostic::error(
                    "conflicting-keys",
                    second.span,
                    "an http action has one body: `json`, `body` or `form`",
                )
                .related(first.span, "first body"),
            );
        }
    }

    pub(super) fn http_expect(&mut self, node: &Node) -> Option<HttpExpect> {
        let f = self.fields(node, "expect", keys::HTTP_EXPECT)?;
        Some(HttpExpect {
            status: f.get("status").and_then(|n| self.status(n)),
            body_contains: f.get("body_contains").and_then(|n| self.string(n)),
            jq: f.get("jq").and_then(|n| self.string(n)),
        })
    }

    pub(super) fn status(&mut self, node: &Node) -> Option<Spanned<StatusExpect>> {
        let code = |d: &mut Self, n: &Node| {
            let v = d.uint(n)?;
            match u16::try_from(v.value) {
                Ok(c) if (100..=599).contains(&c) => Some(c),
                _ => {
                    d.push(
                        Diagnostic::error(
                            "bad-value",
                            n.span,
                            format!("{} is not an HTTP status", v.value),
                        )
                        .label("expected 100 to 599"),
                    );
                    None
                }
            }
        };
        let value = match &node.kind {
            NodeKind::Seq(_) => StatusExpect::Codes(self.list(node, code)),
            NodeKind::Scalar { text, plain: false } => {
                if !matches!(text.as_str(), "1xx" | "2xx" | "3xx" | "4xx" | "5xx") {
                    self.push(
                        Diagnostic::error(
                            "bad-value",
                            node.span,
                            format!("`{text}` is not a status class"),
                        )
                        .help("write a code (200), a list ([200, 204]) or a class (\"2xx\")"),
                    );
                    return None;
                }
                StatusExpect::Class(text.clone())
            }
            _ => StatusExpect::Code(code(self, node)?),
        };
        Some(Spanned::new(value, node.span))
    }

    pub(super) fn sql(&mut self, node: &Node) -> Option<SqlAction> {
        let f = self.fields(node, "a sql action", keys::SQL_ACTION)?;
        self.exactly_one_command(node, &f, &["query", "statements"], "a sql action");
        if let (Some(u), Some(c)) = (f.key("url"), f.key("connection")) {
            self.push(
                Diagnostic::error(
                    "conflicting-keys",
                    c.span,
                    "a sql action takes `url` or `connection`, not both",
                )
                .related(u.span, "url"),
            );
        }
        if let (Some(a), None) = (f.key("args"), f.key("query")) {
            self.push(
                Diagnostic::error("conflicting-keys", a.span, "`args` go with `query`").help(
                    "with `statements`, give each its own: `- { query: \"... $1\", args: [...] }`",
                ),
            );
        }
        Some(SqlAction {
            connection: f.get("connection").and_then(|n| self.string(n)),
            url: f.get("url").and_then(|n| self.string(n)),
            query: f.get("query").and_then(|n| self.string(n)),
            args: f
                .get("args")
                .map(|n| self.list(n, |_, v| Some(v.clone())))
                .unwrap_or_default(),
            statements: f
                .get("statements")
                .map(|n| self.list(n, |d, v| d.statement(v))),
            transaction: f.get("transaction").and_then(|n| self.bool(n)),
            expect: f.get("expect").and_then(|n| {
                let f = self.fields(n, "expect", keys::SQL_EXPECT)?;
                let rows = self.required(&f, "rows_affected", n)?;
                let value = match &rows.kind {
                    NodeKind::Map(_) => {
                        let r = self.fields(rows, "rows_affected", keys::ROWS_RANGE)?;
                        let min = r.get("min").and_then(|n| self.uint(n)).map(|v| v.value);
                        let max = r.get("max").and_then(|n| self.uint(n)).map(|v| v.value);
                        if let (Some(lo), Some(hi)) = (min, max)
                            && lo > hi
                        {
                            self.push(Diagnostic::error(
                                "bad-value",
                                rows.span,
                                format!("min {lo} is above max {hi}"),
                            ));
                        }
                        RowsExpect::Range { min, max }
                    }
                    _ => RowsExpect::Exactly(self.uint(rows)?.value),
                };
                Some(SqlExpect {
                    rows_affected: Spanned::new(value, rows.span),
                })
            }),
            lock_timeout: f.get("lock_timeout").and_then(|n| self.duration(n)),
            span: node.span,
        })
    }

    pub(super) fn statement(&mut self, node: &Node) -> Option<Statement> {
        if let NodeKind::Map(_) = node.kind {
            let f = self.fields(node, "a statement", keys::STATEMENT)?;
            let query = self
                .required(&f, "query", node)
                .and_then(|n| self.string(n))?;
            let args = f
                .get("args")
                .map(|n| self.list(n, |_, v| Some(v.clone())))
                .unwrap_or_default();
            return Some(Statement { query, args });
        }
        Some(Statement {
            query: self.string(node)?,
            args: Vec::new(),
        })
    }

    pub(super) fn shell(&mut self, node: &Node) -> Option<ShellAction> {
        let f = self.fields(node, "a shell action", keys::SHELL_ACTION)?;
        self.exactly_one_command(node, &f, &["run", "script"], "a shell action");
        Some(ShellAction {
            run: f.get("run").and_then(|n| self.string(n)),
            script: f.get("script").and_then(|n| self.string(n)),
            env: f
                .get("env")
                .map(|n| self.templates(n, "env"))
                .unwrap_or_default(),
            cwd: f.get("cwd").and_then(|n| self.string(n)),
            span: node.span,
        })
    }
}

/// The settings of an undo's `ssh` action: its own, else its step's.
fn inherit_settings(own: SshSettings, step: &SshSettings) -> SshSettings {
    SshSettings {
        user: own.user.or_else(|| step.user.clone()),
        port: own.port.or_else(|| step.port.clone()),
        sudo: own.sudo.or_else(|| step.sudo.clone()),
        env: if own.env.is_empty() {
            step.env.clone()
        } else {
            own.env
        },
        identity_file: own.identity_file.or_else(|| step.identity_file.clone()),
        known_hosts: own.known_hosts.or_else(|| step.known_hosts.clone()),
        host_key_policy: own.host_key_policy.or_else(|| step.host_key_policy.clone()),
        connect_timeout: own.connect_timeout.or_else(|| step.connect_timeout.clone()),
    }
}
