//! Template values in shell code: data in every position, never code.
//!
//! A `run` or `script` template is rendered with each `{{ value }}` marked (see
//! [`mark_value`]). Then a small shell lexer reads the command as the shell will, and each
//! value is written in the form that keeps it data where it stands:
//!
//! - in the step's own shell, as a reference to an exported variable (`"${ROLLBOOK_V1}"`
//!   bare, `${ROLLBOOK_V1}` inside double quotes or an unquoted heredoc): the shell expands a
//!   variable once, as data, whatever it holds, and no quoting mistake can turn an expansion
//!   into code;
//! - inside text handed to another shell (`sh -c '…'`, `bash -c "…"`, `su -c`, `eval`,
//!   `ssh HOST '…'`, a heredoc read by `sh`/`bash`/`ssh`), as a quoted literal for that shell,
//!   escaped for the quotes around it: that shell may not inherit the variables (`sudo`
//!   resets them, another host never had them);
//! - inside a quoted heredoc (`<<'EOF'`), as the value itself, with the delimiter changed when
//!   the value holds it.
//!
//! [`ShellText::shown`] is the same command with every value written in literally, quoted:
//! what the dry run shows, and what means the same as [`ShellText::code`] with its
//! variables set.

use std::fmt::Write as _;

/// The first character of a marked value (a private-use code point, never in plan text).
const OPEN: char = '\u{E000}';
/// The last character of a marked value.
const CLOSE: char = '\u{E001}';

/// Prefix of the variables that carry values: `ROLLBOOK_V1`, `ROLLBOOK_V2`, ...
pub const VARIABLE_PREFIX: &str = "ROLLBOOK_V";

/// A value as the template engine writes it into shell text: hex between two markers, so
/// nothing in it can be read as text of the command.
pub fn mark_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2 + 6);
    out.push(OPEN);
    for b in value.bytes() {
        let _ = write!(out, "{b:02x}");
    }
    out.push(CLOSE);
    out
}

/// A rendered shell command: the code to run, the variables it needs, and the readable form.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ShellText {
    /// What the shell runs: values as references to [`ShellText::values`].
    pub code: String,
    /// The variables `code` refers to, to export before it runs: `("ROLLBOOK_V1", value)`.
    pub values: Vec<(String, String)>,
    /// The command with every value written in, quoted where it stands: the dry run's view.
    pub shown: String,
}

impl ShellText {
    /// Plain code with no values (a command written without templates).
    pub fn plain(code: impl Into<String>) -> Self {
        let code = code.into();
        ShellText {
            shown: code.clone(),
            code,
            values: Vec::new(),
        }
    }
}

impl From<&str> for ShellText {
    fn from(code: &str) -> Self {
        ShellText::plain(code)
    }
}

impl From<String> for ShellText {
    fn from(code: String) -> Self {
        ShellText::plain(code)
    }
}

/// Where a value stands, as the shell reads it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// A bare word (or part of one).
    Bare,
    /// Inside `"…"`.
    DoubleQuoted,
    /// Inside `'…'` that is not handed to another shell: text for the command.
    SingleQuoted,
    /// Inside `$'…'`.
    AnsiQuoted,
    /// In the body of a heredoc that is data (`cat <<EOF`); `quoted` for `<<'EOF'`.
    Heredoc {
        /// The delimiter was quoted: nothing in the body is expanded.
        quoted: bool,
    },
    /// In a comment.
    Comment,
    /// Inside `$(( … ))`: the shell evaluates the value's text as arithmetic (bash even runs
    /// `$(…)` in an array subscript there), so `validate` warns.
    Arithmetic,
}

/// Where one value stands: its position in the innermost shell that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The command it is an argument of, when that program reads its arguments or input as
    /// code of its own language (`awk`, `jq`, `psql`, `python`, ...).
    pub interpreter: Option<&'static str>,
    /// The position in the innermost shell.
    pub position: Position,
    /// 0: the step's own shell; 1: a shell it starts (`sh -c '…'`), and so on.
    pub depth: usize,
    /// The quotes around it hold nothing else (`"{{ x }}"`, `'{{ x }}'`).
    pub alone_in_quotes: bool,
}

/// Turns rendered text with marked values into a [`ShellText`].
///
/// Fails only for a value holding a NUL byte, which no shell can carry.
pub fn build(rendered: &str) -> Result<ShellText, String> {
    if !rendered.contains(OPEN) {
        // No value in it: the command as written.
        return Ok(ShellText::plain(rendered));
    }
    let (toks, values) = tokens(rendered);
    if values.iter().any(|v| v.contains('\0')) {
        return Err("a value holds a NUL byte, which a shell command cannot carry".into());
    }
    let code = Lexer::new(&values, Mode::Variables).run(&toks);
    let shown = Lexer::new(&values, Mode::Literal).run(&toks);
    // The values written as references: those of the step's own shell, but for the quoted
    // heredocs, which hold the value itself.
    let mut used: Vec<usize> = code
        .placements
        .iter()
        .filter(|(_, p)| p.depth == 0 && p.position != Position::Heredoc { quoted: true })
        .map(|(i, _)| *i)
        .collect();
    used.sort_unstable();
    used.dedup();
    Ok(ShellText {
        code: code.text(),
        values: used
            .into_iter()
            .map(|i| (variable(i), values[i].clone()))
            .collect(),
        shown: shown.text(),
    })
}

/// Programs that run text given to them as code of their own language: a value inside their
/// program text is data for the shell, but code for them.
pub const INTERPRETERS: &[&str] = &[
    "awk",
    "gawk",
    "mawk",
    "sed",
    "jq",
    "perl",
    "python",
    "python3",
    "ruby",
    "node",
    "php",
    "psql",
    "mysql",
    "mariadb",
    "sqlite3",
    "redis-cli",
    "kubectl",
];

/// What a `{{ … }}` of a template is, from the text between its braces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expression {
    /// An escaped expression: a value, marked where it stands.
    Value,
    /// Unescaped (`{{{ x }}}`, `{{ {x} }}`, `{{& x}}`): its text is spliced in as written.
    Spliced,
    /// A block, `else`, a comment, a partial or a decorator: no text of its own.
    Markup,
}

/// Classifies `{{ inner }}` (`inner` without the outer braces) as Handlebars reads it:
/// whitespace and a `~` may come before the sigil that makes it unescaped or markup.
fn expression_kind(inner: &str) -> Expression {
    let inner = inner.trim_start_matches(|c: char| c == '~' || c.is_ascii_whitespace());
    if inner.starts_with(['{', '&']) {
        Expression::Spliced
    } else if inner.starts_with(['#', '/', '!', '>', '^', '*']) || inner.starts_with("else") {
        Expression::Markup
    } else {
        Expression::Value
    }
}

/// Where each `{{ }}` of a shell template stands, in order, with its byte range in `src`: for
/// `validate`. `src` is the template as written; each escaped expression counts as one value,
/// an unescaped one (`{{{ }}}`, `{{& }}`) as text.
pub fn placements(src: &str) -> Vec<(std::ops::Range<usize>, Placement)> {
    let mut marked = String::with_capacity(src.len());
    let mut ranges = Vec::new();
    let mut rest = src;
    let mut n = 0usize;
    while let Some(open) = rest.find("{{") {
        marked.push_str(&rest[..open]);
        let after = &rest[open..];
        let triple = after.starts_with("{{{");
        let close = if triple { "}}}" } else { "}}" };
        let Some(end) = after.find(close) else {
            rest = "";
            break;
        };
        let kind = if triple {
            Expression::Spliced
        } else {
            expression_kind(&after[2..end])
        };
        if kind == Expression::Spliced {
            marked.push('x');
        } else if kind == Expression::Value {
            marked.push_str(&mark_value(&n.to_string()));
            let start = src.len() - rest.len() + open;
            ranges.push(start..start + end + close.len());
            n += 1;
        }
        rest = &after[end + close.len()..];
    }
    marked.push_str(rest);
    let (toks, values) = tokens(&marked);
    let mut out = Lexer::new(&values, Mode::Literal).run(&toks).placements;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter()
        .filter_map(|(i, p)| Some((ranges.get(i)?.clone(), p)))
        .collect()
}

fn variable(index: usize) -> String {
    format!("{VARIABLE_PREFIX}{}", index + 1)
}

/// One character of the command (with the text it was written as), or a value.
#[derive(Debug, Clone)]
enum Tok {
    Ch(char, String),
    Val(usize),
}

impl Tok {
    fn ch(&self) -> Option<char> {
        match self {
            Tok::Ch(c, _) => Some(*c),
            Tok::Val(_) => None,
        }
    }
}

fn tokens(rendered: &str) -> (Vec<Tok>, Vec<String>) {
    let mut toks = Vec::with_capacity(rendered.len());
    let mut values = Vec::new();
    let mut rest = rendered;
    while let Some(c) = rest.chars().next() {
        if c == OPEN
            && let Some(end) = rest.find(CLOSE)
            && let Some(value) = unhex(&rest[OPEN.len_utf8()..end])
        {
            toks.push(Tok::Val(values.len()));
            values.push(value);
            rest = &rest[end + CLOSE.len_utf8()..];
            continue;
        }
        toks.push(Tok::Ch(c, c.to_string()));
        rest = &rest[c.len_utf8()..];
    }
    (toks, values)
}

fn unhex(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// A piece of output: text as written, or an emitted value (to be escaped for every quoting
/// it is nested in).
#[derive(Debug, Clone)]
enum Seg {
    Raw(String),
    Emit(String),
}

/// How the values of the outermost shell are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// As variable references (what runs).
    Variables,
    /// As quoted literals (what the dry run shows).
    Literal,
}

/// What a nested shell's text sits in, in its parent: decides how emitted values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wrap {
    Single,
    Double,
    Heredoc { quoted: bool },
}

struct Output {
    segs: Vec<Seg>,
    placements: Vec<(usize, Placement)>,
}

impl Output {
    fn text(&self) -> String {
        self.segs
            .iter()
            .map(|s| match s {
                Seg::Raw(t) | Seg::Emit(t) => t.as_str(),
            })
            .collect()
    }
}

/// A heredoc announced on the current line, whose body starts after it.
struct PendingHeredoc {
    delimiter: String,
    quoted: bool,
    strip_tabs: bool,
    nested: bool,
    /// Index of the segment holding the delimiter word, to rename it.
    word_seg: usize,
}

/// Reads one level of shell code.
struct Lexer<'v> {
    values: &'v [String],
    mode: Mode,
    depth: usize,
    segs: Vec<Seg>,
    placements: Vec<(usize, Placement)>,
    /// Words of the simple command being read (their text, quotes removed).
    words: Vec<String>,
    word: String,
    in_word: bool,
    heredocs: Vec<PendingHeredoc>,
}

const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "busybox"];

fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

fn sq(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// A value as one shell word, quoted only when needed (readable in the dry run).
fn word_literal(value: &str) -> String {
    crate::template::shell_quote(value).into_owned()
}

fn escape_chars(text: &str, special: &[char]) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl<'v> Lexer<'v> {
    fn new(values: &'v [String], mode: Mode) -> Self {
        Lexer {
            values,
            mode,
            depth: 0,
            segs: Vec::new(),
            placements: Vec::new(),
            words: Vec::new(),
            word: String::new(),
            in_word: false,
            heredocs: Vec::new(),
        }
    }

    fn nested(&self) -> Lexer<'v> {
        Lexer {
            depth: self.depth + 1,
            ..Lexer::new(self.values, self.mode)
        }
    }

    fn run(mut self, toks: &[Tok]) -> Output {
        let mut i = 0;
        while i < toks.len() {
            i = self.code_step(toks, i);
        }
        self.end_word();
        Output {
            segs: self.segs,
            placements: self.placements,
        }
    }

    fn raw(&mut self, text: &str) {
        match self.segs.last_mut() {
            Some(Seg::Raw(t)) => t.push_str(text),
            _ => self.segs.push(Seg::Raw(text.to_string())),
        }
    }

    fn raw_tok(&mut self, tok: &Tok) {
        if let Tok::Ch(_, raw) = tok {
            self.raw(&raw.clone());
        }
    }

    fn end_word(&mut self) {
        if self.in_word {
            self.words.push(std::mem::take(&mut self.word));
            self.in_word = false;
        }
    }

    fn end_command(&mut self) {
        self.end_word();
        self.words.clear();
    }

    /// Writes value `i` standing at `position`.
    fn value(&mut self, i: usize, position: Position, alone: bool) {
        let interpreter = self.interpreter();
        self.placements.push((
            i,
            Placement {
                interpreter,
                position,
                depth: self.depth,
                alone_in_quotes: alone,
            },
        ));
        let v = &self.values[i];
        let name = variable(i);
        let text = if self.depth == 0 && self.mode == Mode::Variables {
            match position {
                Position::Bare => format!("\"${{{name}}}\""),
                Position::DoubleQuoted | Position::Comment | Position::Arithmetic => {
                    format!("${{{name}}}")
                }
                Position::Heredoc { quoted: false } => format!("${{{name}}}"),
                Position::Heredoc { quoted: true } => v.clone(),
                Position::SingleQuoted => format!("'\"${{{name}}}\"'"),
                Position::AnsiQuoted => format!("'\"${{{name}}}\"$'"),
            }
        } else {
            match position {
                Position::Bare => word_literal(v),
                Position::DoubleQuoted if !v.contains(['"', '$', '`', '\\']) => v.clone(),
                Position::DoubleQuoted => format!("\"{}\"", sq(v)),
                Position::SingleQuoted if !v.contains('\'') => v.clone(),
                Position::SingleQuoted => format!("'{}'", sq(v)),
                Position::AnsiQuoted => format!("'{}$'", sq(v)),
                Position::Heredoc { quoted: false } => escape_chars(v, &['\\', '$', '`']),
                Position::Heredoc { quoted: true } => v.clone(),
                // A comment ends at a newline: a value there is shown on one line.
                Position::Comment => word_literal(&v.replace(['\n', '\r'], " ")),
                // Quoted: anything but a number fails the arithmetic instead of running.
                Position::Arithmetic => word_literal(v),
            }
        };
        self.segs.push(Seg::Emit(text));
    }

    /// Reads from `toks[i]` one construct of shell code; returns where the next starts.
    fn code_step(&mut self, toks: &[Tok], i: usize) -> usize {
        let c = match &toks[i] {
            Tok::Val(v) => {
                self.in_word = true;
                self.word.push('\u{1}');
                self.value(*v, Position::Bare, false);
                return i + 1;
            }
            Tok::Ch(c, _) => *c,
        };
        let next = toks.get(i + 1).and_then(Tok::ch);
        match c {
            '\'' => self.single_quoted(toks, i),
            '"' => self.double_quoted(toks, i),
            '$' if next == Some('\'') => self.ansi_quoted(toks, i),
            '$' if next == Some('{') => {
                self.in_word = true;
                self.word.push('$');
                self.parameter(toks, i)
            }
            '$' if next == Some('(') && toks.get(i + 2).and_then(Tok::ch) == Some('(') => {
                self.in_word = true;
                self.arithmetic(toks, i)
            }
            '$' if next == Some('(') => {
                self.raw("$(");
                self.in_word = true;
                self.substitution(toks, i + 2, ')')
            }
            '`' => {
                self.raw("`");
                self.in_word = true;
                self.substitution(toks, i + 1, '`')
            }
            // See `escapes_a_value`.
            '\\' if escapes_a_value(toks, i) => i + 1,
            '\\' => {
                self.raw_tok(&toks[i]);
                if let Some(t) = toks.get(i + 1) {
                    self.raw_tok(t);
                    if let Some(n) = t.ch()
                        && n != '\n'
                    {
                        self.in_word = true;
                        self.word.push(n);
                    }
                }
                i + 2
            }
            '#' if !self.in_word => self.comment(toks, i),
            '<' if next == Some('<') && toks.get(i + 2).and_then(Tok::ch) != Some('<') => {
                self.heredoc_operator(toks, i)
            }
            '\n' => {
                self.raw("\n");
                self.end_command();
                self.heredoc_bodies(toks, i + 1)
            }
            ' ' | '\t' => {
                self.raw_tok(&toks[i]);
                self.end_word();
                i + 1
            }
            ';' | '&' | '|' | '(' | ')' | '{' | '}' => {
                self.raw_tok(&toks[i]);
                self.end_command();
                i + 1
            }
            '<' | '>' => {
                self.raw_tok(&toks[i]);
                self.end_word();
                i + 1
            }
            _ => {
                self.raw_tok(&toks[i]);
                self.in_word = true;
                self.word.push(c);
                i + 1
            }
        }
    }

    /// `$(…)` or `` `…` ``: code of the same shell, with its own commands; returns after the
    /// closing character.
    fn substitution(&mut self, toks: &[Tok], mut i: usize, close: char) -> usize {
        let words = std::mem::take(&mut self.words);
        let word = std::mem::take(&mut self.word);
        let in_word = self.in_word;
        self.in_word = false;
        let mut parens = 0usize;
        while i < toks.len() {
            match toks[i].ch() {
                Some(c) if c == close && (close != ')' || parens == 0) => {
                    self.raw(&close.to_string());
                    i += 1;
                    break;
                }
                Some(c @ ('(' | ')')) if close == ')' => {
                    parens = if c == '(' { parens + 1 } else { parens - 1 };
                    self.raw(&c.to_string());
                    self.end_command();
                    i += 1;
                }
                _ => i = self.code_step(toks, i),
            }
        }
        self.words = words;
        self.word = word;
        self.in_word = in_word;
        i
    }

    /// An expansion from `toks[i]` (its `$`) up to the `close` that matches its first `open`:
    /// `${…}` or `$(( … ))`, read as one piece (a `<<` in `$(( ))` is a shift, not a heredoc; a
    /// `#` in `${#x}` starts no comment). A value inside is written at `position`.
    fn expansion(
        &mut self,
        toks: &[Tok],
        mut i: usize,
        (open, close): (char, char),
        position: Position,
    ) -> usize {
        let mut depth = 0usize;
        while i < toks.len() {
            match &toks[i] {
                Tok::Val(v) => self.value(*v, position, false),
                Tok::Ch('\\', _) if escapes_a_value(toks, i) => {}
                t => {
                    self.raw_tok(t);
                    match t.ch() {
                        Some(c) if c == open => depth += 1,
                        Some(c) if c == close => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                return i + 1;
                            }
                        }
                        Some('\\') => {
                            if let Some(n) = toks.get(i + 1) {
                                self.raw_tok(n);
                            }
                            i += 1;
                        }
                        _ => {}
                    }
                }
            }
            i += 1;
        }
        i
    }

    /// `${…}`: a value inside (the word of `${x:-word}`) is a quoted word, which means the same
    /// inside double quotes and out.
    fn parameter(&mut self, toks: &[Tok], i: usize) -> usize {
        self.expansion(toks, i, ('{', '}'), Position::Bare)
    }

    /// `$(( … ))`: a value inside is evaluated as arithmetic (`validate` warns).
    fn arithmetic(&mut self, toks: &[Tok], i: usize) -> usize {
        self.expansion(toks, i, ('(', ')'), Position::Arithmetic)
    }

    fn comment(&mut self, toks: &[Tok], mut i: usize) -> usize {
        while i < toks.len() && toks[i].ch() != Some('\n') {
            match &toks[i] {
                Tok::Val(v) => self.value(*v, Position::Comment, false),
                t => self.raw_tok(t),
            }
            i += 1;
        }
        i
    }

    /// `'…'`: text for the command, or code for the shell it is handed to.
    fn single_quoted(&mut self, toks: &[Tok], i: usize) -> usize {
        let end = (i + 1..toks.len())
            .find(|&j| toks[j].ch() == Some('\''))
            .unwrap_or(toks.len());
        let content = &toks[i + 1..end];
        let nested = !self.in_word && self.is_code_argument();
        self.in_word = true;
        self.raw("'");
        if nested {
            self.nested_code(content, Wrap::Single);
        } else {
            let alone = content.len() == 1 && matches!(content[0], Tok::Val(_));
            for t in content {
                match t {
                    Tok::Val(v) => self.value(*v, Position::SingleQuoted, alone),
                    Tok::Ch(c, raw) => {
                        self.word.push(*c);
                        self.raw(&raw.clone());
                    }
                }
            }
        }
        if end < toks.len() {
            self.raw("'");
        }
        end + 1
    }

    /// `$'…'`: text with backslash escapes.
    fn ansi_quoted(&mut self, toks: &[Tok], i: usize) -> usize {
        self.raw("$'");
        self.in_word = true;
        let mut j = i + 2;
        while j < toks.len() {
            match &toks[j] {
                Tok::Val(v) => self.value(*v, Position::AnsiQuoted, false),
                Tok::Ch('\\', _) if escapes_a_value(toks, j) => {}
                Tok::Ch('\'', _) => {
                    self.raw("'");
                    return j + 1;
                }
                Tok::Ch('\\', _) => {
                    self.raw("\\");
                    if let Some(t) = toks.get(j + 1) {
                        self.raw_tok(t);
                    }
                    j += 1;
                }
                t => self.raw_tok(t),
            }
            j += 1;
        }
        j
    }

    /// The end of a double-quoted string starting at `toks[i]` (the index of its closing
    /// quote, or the end), skipping escapes and command substitutions.
    fn double_quote_end(toks: &[Tok], i: usize) -> usize {
        let mut j = i + 1;
        let mut depth = 0usize;
        while j < toks.len() {
            match toks[j].ch() {
                Some('\\') => j += 1,
                Some('$') if toks.get(j + 1).and_then(Tok::ch) == Some('(') => {
                    depth += 1;
                    j += 1;
                }
                Some(')') if depth > 0 => depth -= 1,
                Some('"') if depth == 0 => return j,
                _ => {}
            }
            j += 1;
        }
        toks.len()
    }

    /// `"…"`: text with expansions, or code for the shell it is handed to.
    fn double_quoted(&mut self, toks: &[Tok], i: usize) -> usize {
        let end = Self::double_quote_end(toks, i);
        let nested = !self.in_word && self.is_code_argument();
        self.in_word = true;
        self.raw("\"");
        if nested {
            // The text the inner shell reads: the outer shell's backslash escapes undone (a
            // backslash-newline joins lines: an ordinary character for the inner shell).
            let mut inner = Vec::new();
            let mut j = i + 1;
            while j < end {
                match (&toks[j], toks.get(j + 1)) {
                    (Tok::Ch('\\', _), Some(Tok::Ch(n, raw))) if "$`\"\\\n".contains(*n) => {
                        let c = if *n == '\n' { '\u{2}' } else { *n };
                        inner.push(Tok::Ch(c, format!("\\{raw}")));
                        j += 2;
                    }
                    (t, _) => {
                        inner.push(t.clone());
                        j += 1;
                    }
                }
            }
            self.nested_code(&inner, Wrap::Double);
        } else {
            let alone = end == i + 2 && matches!(toks[i + 1], Tok::Val(_));
            let mut j = i + 1;
            while j < end {
                match &toks[j] {
                    Tok::Val(v) => {
                        self.value(*v, Position::DoubleQuoted, alone);
                        j += 1;
                    }
                    Tok::Ch('\\', _) if escapes_a_value(toks, j) => j += 1,
                    Tok::Ch('\\', _) => {
                        self.raw("\\");
                        if let Some(t) = toks.get(j + 1) {
                            self.raw_tok(t);
                            if let Some(c) = t.ch() {
                                self.word.push(c);
                            }
                        }
                        j += 2;
                    }
                    Tok::Ch('$', _) if toks.get(j + 1).and_then(Tok::ch) == Some('{') => {
                        j = self.parameter(toks, j);
                    }
                    Tok::Ch('$', _) if toks.get(j + 1).and_then(Tok::ch) == Some('(') => {
                        self.raw("$(");
                        j = self.substitution(toks, j + 2, ')');
                    }
                    Tok::Ch('`', _) => {
                        self.raw("`");
                        j = self.substitution(toks, j + 1, '`');
                    }
                    Tok::Ch(c, raw) => {
                        self.word.push(*c);
                        self.raw(&raw.clone());
                        j += 1;
                    }
                }
            }
            if j > end {
                // A substitution read past the quote this scan took for the end (text the
                // two readings disagree on): go on from there, nothing written twice.
                return j;
            }
        }
        if end < toks.len() {
            self.raw("\"");
        }
        end + 1
    }

    /// Code for another shell: read it as that shell will, then escape what was emitted for
    /// the quotes it sits in here.
    fn nested_code(&mut self, content: &[Tok], wrap: Wrap) {
        let inner = self.nested().run(content);
        self.placements.extend(inner.placements);
        for seg in inner.segs {
            match seg {
                Seg::Raw(t) => self.raw(&t),
                Seg::Emit(e) => self.segs.push(Seg::Emit(match wrap {
                    Wrap::Single => e.replace('\'', r"'\''"),
                    Wrap::Double => escape_chars(&e, &['\\', '"', '$', '`']),
                    Wrap::Heredoc { quoted: false } => escape_chars(&e, &['\\', '$', '`']),
                    Wrap::Heredoc { quoted: true } => e,
                })),
            }
        }
    }

    /// The words of the current command, without leading `VAR=value` assignments.
    fn command_words(&self) -> &[String] {
        let start = self
            .words
            .iter()
            .position(|w| {
                !w.split_once('=').is_some_and(|(name, _)| {
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
            })
            .unwrap_or(self.words.len());
        &self.words[start..]
    }

    /// The interpreter the current command runs, if it is one ([`INTERPRETERS`]).
    fn interpreter(&self) -> Option<&'static str> {
        let first = basename(self.program_words().first()?);
        INTERPRETERS.iter().copied().find(|i| *i == first)
    }

    /// Does a quoted word starting here hand its text to a shell as code? After `-c` of a
    /// shell (`sh -c`, `bash -lc`, `su -c`, `flock -c`), as an argument of `eval`, or as the
    /// command of `ssh HOST`.
    fn is_code_argument(&self) -> bool {
        let words = self.command_words();
        let Some(first) = words.first() else {
            return false;
        };
        if first == "eval" {
            return true;
        }
        let last = words.last().map(String::as_str).unwrap_or_default();
        let dash_c = last.len() >= 2
            && last.starts_with('-')
            && !last.starts_with("--")
            && last.ends_with('c')
            && last[1..].chars().all(|c| c.is_ascii_alphabetic());
        if dash_c
            && words[..words.len() - 1].iter().any(|w| {
                let b = basename(w);
                SHELLS.contains(&b) || matches!(b, "su" | "runuser" | "flock")
            })
        {
            return true;
        }
        ssh_host_given(words)
    }

    /// The words of the current command from the program it runs: without `sudo`, `env`,
    /// `exec`, ... and their options.
    fn program_words(&self) -> &[String] {
        let mut rest = self.command_words();
        // Commands that run the next words as a command.
        loop {
            match rest.first().map(|w| basename(w)) {
                Some("sudo") => {
                    rest = &rest[1..];
                    while let Some(w) = rest.first() {
                        if !w.starts_with('-') {
                            break;
                        }
                        let takes_value = matches!(w.as_str(), "-u" | "-g" | "-C" | "-D" | "-h");
                        rest = &rest[if takes_value { 2.min(rest.len()) } else { 1 }..];
                    }
                }
                Some("env" | "exec" | "nohup" | "command" | "nice") => {
                    rest = &rest[1..];
                    while rest
                        .first()
                        .is_some_and(|w| w.starts_with('-') || w.contains('='))
                    {
                        rest = &rest[1..];
                    }
                }
                _ => break,
            }
        }
        rest
    }

    /// Is the heredoc of the current command read by a shell as its commands?
    fn stdin_is_code(&self) -> bool {
        let rest = self.program_words();
        let Some(first) = rest.first() else {
            return false;
        };
        if SHELLS.contains(&basename(first)) {
            // `sh`, `bash -s`, `sh -e`: commands from stdin; `sh file` or `sh -c …` not.
            return rest[1..]
                .iter()
                .all(|w| w.starts_with('-') && !w.starts_with("--") && !w.contains('c'));
        }
        basename(first) == "ssh" && ssh_command_words(rest).is_some_and(|n| n == 0)
    }

    /// `<<WORD` or `<<-WORD`: notes the heredoc; its body starts at the next line.
    fn heredoc_operator(&mut self, toks: &[Tok], i: usize) -> usize {
        self.end_word();
        let mut j = i + 2;
        let strip_tabs = toks.get(j).and_then(Tok::ch) == Some('-');
        if strip_tabs {
            j += 1;
        }
        // `<<-` strips the tabs that start the body's lines, also those of a value written
        // there; the author's tabs are stripped here instead, and the heredoc becomes `<<`.
        let mut op = "<<".to_string();
        while let Some(c @ (' ' | '\t')) = toks.get(j).and_then(Tok::ch) {
            op.push(c);
            j += 1;
        }
        self.raw(&op);
        let (mut delimiter, mut written, mut quoted) = (String::new(), String::new(), false);
        let mut quote: Option<char> = None;
        while let Some(c) = toks.get(j).and_then(Tok::ch) {
            match (quote, c) {
                (None, ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')') => break,
                (None, '\'' | '"') => {
                    quote = Some(c);
                    quoted = true;
                }
                (Some(q), c) if c == q => quote = None,
                // A backslash right before a value is left out ([`escapes_a_value`]); the value
                // ends the word, as it does without the backslash.
                (None, '\\') if escapes_a_value(toks, j) => {
                    j += 1;
                    break;
                }
                (None, '\\') => {
                    quoted = true;
                    j += 1;
                    written.push('\\');
                    if let Some(n) = toks.get(j).and_then(Tok::ch) {
                        delimiter.push(n);
                        written.push(n);
                    }
                    j += 1;
                    continue;
                }
                _ => delimiter.push(c),
            }
            written.push(c);
            j += 1;
        }
        let nested = self.stdin_is_code();
        self.segs.push(Seg::Raw(written));
        let word_seg = self.segs.len() - 1;
        // A new segment after the word, so that renaming it touches nothing else.
        self.segs.push(Seg::Raw(String::new()));
        self.heredocs.push(PendingHeredoc {
            delimiter,
            quoted,
            strip_tabs,
            nested,
            word_seg,
        });
        j
    }

    /// The bodies of the heredocs announced on the line that just ended, from `toks[i]`.
    fn heredoc_bodies(&mut self, toks: &[Tok], mut i: usize) -> usize {
        for doc in std::mem::take(&mut self.heredocs) {
            // The body's lines, up to the line that is the delimiter.
            let mut end = i;
            let mut terminator = None;
            loop {
                let line_end = (end..toks.len())
                    .find(|&j| toks[j].ch() == Some('\n'))
                    .unwrap_or(toks.len());
                let line: Option<String> = toks[end..line_end].iter().map(Tok::ch).collect();
                let is_end = line.as_deref().is_some_and(|l| {
                    let l = if doc.strip_tabs {
                        l.trim_start_matches('\t')
                    } else {
                        l
                    };
                    l == doc.delimiter
                });
                if is_end {
                    terminator = Some(line_end);
                    break;
                }
                if line_end >= toks.len() {
                    end = toks.len();
                    break;
                }
                end = line_end + 1;
            }
            let body: Vec<Tok> = if doc.strip_tabs {
                strip_leading_tabs(&toks[i..end])
            } else {
                toks[i..end].to_vec()
            };
            let body = &body[..];
            let first_seg = self.segs.len();
            if doc.nested {
                self.nested_code(body, Wrap::Heredoc { quoted: doc.quoted });
            } else {
                let position = Position::Heredoc { quoted: doc.quoted };
                for t in body {
                    match t {
                        Tok::Val(v) => self.value(*v, position, false),
                        t => self.raw_tok(t),
                    }
                }
            }
            let Some(line_end) = terminator else {
                return toks.len();
            };
            let delimiter = self.free_delimiter(&doc, first_seg);
            if delimiter != doc.delimiter {
                let word = if doc.quoted {
                    format!("'{delimiter}'")
                } else {
                    delimiter.clone()
                };
                self.segs[doc.word_seg] = Seg::Raw(word);
            }
            self.segs.push(Seg::Raw(delimiter));
            i = line_end;
            if i < toks.len() {
                self.raw("\n");
                i += 1;
            }
        }
        i
    }

    /// The heredoc's delimiter, or a new one when a line of the body could end it or be
    /// mangled by it (a value written there can hold anything; the author's lines are theirs).
    fn free_delimiter(&self, doc: &PendingHeredoc, first_seg: usize) -> String {
        let body: String = self.segs[first_seg..]
            .iter()
            .map(|s| match s {
                Seg::Raw(t) | Seg::Emit(t) => t.as_str(),
            })
            .collect();
        if !body.lines().any(|l| delimiter_conflicts(l, &doc.delimiter)) {
            return doc.delimiter.clone();
        }
        let letters = ('A'..='Z').chain('a'..='z');
        (1..100)
            .flat_map(|n| {
                letters
                    .clone()
                    .map(move |c| format!("{c}{}_{n}", doc.delimiter))
            })
            .find(|d| !body.lines().any(|l| delimiter_conflicts(l, d)))
            .unwrap_or_else(|| doc.delimiter.clone())
    }
}

/// A backslash right before a value: it would escape the value's first character, which is
/// data wherever it stands, so it has nothing to do and is left out (written, it would escape
/// the quote or the `$` of what the value becomes instead, and the value would be lost).
fn escapes_a_value(toks: &[Tok], i: usize) -> bool {
    matches!(toks.get(i + 1), Some(Tok::Val(_)))
}

/// Does body line `line` get in the way of heredoc delimiter `d`? It does when it starts with
/// `d` (a shell may end the body there), and when it starts with part of `d` followed by a
/// non-ASCII byte (dash drops that byte when it checks the line against the delimiter).
fn delimiter_conflicts(line: &str, d: &str) -> bool {
    let shared = line
        .bytes()
        .zip(d.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    shared == d.len() || (shared > 0 && line.as_bytes().get(shared).is_some_and(|b| *b >= 0x80))
}

/// The tokens without the tabs that start a line.
fn strip_leading_tabs(toks: &[Tok]) -> Vec<Tok> {
    let mut at_line_start = true;
    let mut out = Vec::with_capacity(toks.len());
    for t in toks {
        let c = t.ch();
        if at_line_start && c == Some('\t') {
            continue;
        }
        at_line_start = c == Some('\n');
        out.push(t.clone());
    }
    out
}

/// Options of `ssh` that take a value.
const SSH_OPTIONS_WITH_VALUE: &str = "BbcDEeFIiJLlmOopQRSWw";

/// For `ssh [options] HOST [command…]`: how many command words follow the host (`None` when no
/// host is given yet).
fn ssh_command_words(words: &[String]) -> Option<usize> {
    let mut j = 1;
    while j < words.len() {
        let w = &words[j];
        if w == "--" {
            j += 1;
            break;
        }
        if !w.starts_with('-') {
            break;
        }
        let last = w.chars().last().unwrap_or_default();
        j += if w.len() == 2 && SSH_OPTIONS_WITH_VALUE.contains(last) {
            2
        } else {
            1
        };
    }
    (j < words.len()).then(|| words.len() - j - 1)
}

/// `ssh … HOST` has been written: what follows is a command for the remote shell.
fn ssh_host_given(words: &[String]) -> bool {
    words
        .iter()
        .position(|w| basename(w) == "ssh")
        .is_some_and(|at| ssh_command_words(&words[at..]).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, values: &[&str]) -> ShellText {
        let mut text = template.to_string();
        for v in values {
            text = text.replacen("{}", &mark_value(v), 1);
        }
        build(&text).unwrap()
    }

    /// A backslash right before a value (`\\{{ x }}` in a template) is left out: the value
    /// stays data, where it used to be dropped and the backslash to escape what followed
    /// (found by fuzzing).
    #[test]
    fn a_backslash_before_a_value_is_left_out_and_the_value_kept() {
        let cases = [
            (r"echo \{} x", r#"echo "${ROLLBOOK_V1}" x"#, "echo 'a b' x"),
            (
                r#"echo "\{}" x"#,
                r#"echo "${ROLLBOOK_V1}" x"#,
                "echo \"a b\" x",
            ),
            (
                r"echo $(echo \{}) x",
                r#"echo $(echo "${ROLLBOOK_V1}") x"#,
                "echo $(echo 'a b') x",
            ),
            (
                r"echo ${x:-\{}} x",
                r#"echo ${x:-"${ROLLBOOK_V1}"} x"#,
                "echo ${x:-'a b'} x",
            ),
            (
                r"echo $'\{}' x",
                r#"echo $''"${ROLLBOOK_V1}"$'' x"#,
                "echo $'''a b'$'' x",
            ),
        ];
        // In a heredoc's delimiter, as without the backslash.
        let plain = render("cat <<{}\nbody\n", &["a b"]);
        let escaped = render("cat <<\\{}\nbody\n", &["a b"]);
        assert_eq!(escaped.code, plain.code);
        assert_eq!(escaped.values, plain.values);
        assert_eq!(escaped.values.len(), 1, "the value was dropped");
        for (template, code, shown) in cases {
            let t = render(template, &["a b"]);
            assert_eq!(t.code, code, "{template}");
            assert_eq!(t.shown, shown, "{template}");
            assert_eq!(t.values, [("ROLLBOOK_V1".to_string(), "a b".to_string())]);
        }
    }

    #[test]
    fn bare_and_double_quoted_values_become_variable_references() {
        let t = render("echo {} \"reason: {}\"", &["a b", "$(x)"]);
        assert_eq!(t.code, r#"echo "${ROLLBOOK_V1}" "reason: ${ROLLBOOK_V2}""#);
        assert_eq!(t.shown, r#"echo 'a b' "reason: "'$(x)'"""#);
        assert_eq!(t.values.len(), 2);
    }

    #[test]
    fn single_quotes_handed_to_sh_c_get_a_literal_for_the_inner_shell() {
        let t = render("sh -c 'echo {}'", &["it's $(x)"]);
        assert_eq!(t.code, r#"sh -c 'echo '\''it'\''\'\'''\''s $(x)'\'''"#);
        assert!(t.values.is_empty());
    }

    #[test]
    fn double_quotes_handed_to_bash_c_are_escaped_for_the_outer_shell() {
        let t = render("bash -c \"echo {}\"", &["$(x)"]);
        assert_eq!(t.code, r#"bash -c "echo '\$(x)'""#);
    }

    #[test]
    fn single_quotes_for_a_program_are_data() {
        let t = render("echo 'v: {}'", &["a'b"]);
        assert_eq!(t.code, r#"echo 'v: '"${ROLLBOOK_V1}"''"#);
    }

    #[test]
    fn heredocs_unquoted_get_references_and_quoted_get_the_value_with_a_free_delimiter() {
        let t = render("cat <<EOF\n{}\nEOF\n", &["x\nEOF\n$(y)"]);
        assert_eq!(t.code, "cat <<EOF\n${ROLLBOOK_V1}\nEOF\n");
        let t = render("cat <<'EOF'\n{}\nEOF\n", &["x\nEOF\ny"]);
        assert_eq!(t.code, "cat <<'AEOF_1'\nx\nEOF\ny\nAEOF_1\n");
        let t = render("cat <<'EOF'\n{}\nEOF\n", &["plain"]);
        assert_eq!(t.code, "cat <<'EOF'\nplain\nEOF\n");
    }

    #[test]
    fn a_heredoc_read_by_a_shell_is_code_for_that_shell() {
        let t = render("sh <<'EOF'\necho {}\nEOF\n", &["a b"]);
        assert_eq!(t.code, "sh <<'EOF'\necho 'a b'\nEOF\n");
    }

    #[test]
    fn placements_name_the_position_of_each_template() {
        let p = placements("echo \"{{ a }}\" '{{ b }}' {{ c }} {{{ d }}} sh -c 'x {{ e }}'");
        let positions: Vec<_> = p
            .iter()
            .map(|(_, p)| (p.position, p.depth, p.alone_in_quotes))
            .collect();
        assert_eq!(
            positions,
            vec![
                (Position::DoubleQuoted, 0, true),
                (Position::SingleQuoted, 0, true),
                (Position::Bare, 0, false),
                (Position::Bare, 1, false),
            ]
        );
        let src = "jq '.x == \"{{ a }}\"'";
        let p = placements(src);
        assert_eq!(&src[p[0].0.clone()], "{{ a }}");
        assert_eq!(p[0].1.interpreter, Some("jq"));
    }

    /// `{{& x}}` and `{{ {x} }}` splice text as `{{{ x }}}` does (found by fuzzing: the quotes
    /// around them were called needless, and they were taken for values).
    #[test]
    fn unescaped_expressions_in_every_spelling_are_text_not_values() {
        for spliced in [
            "{{& a }}",
            "{{ &a }}",
            "{{~& a}}",
            "{{ {a} }}",
            "{{~{a}~}}",
            "{{{ a }}}",
        ] {
            let src = format!("echo \"{spliced}\" {{{{ b }}}}");
            let p = placements(&src);
            assert_eq!(p.len(), 1, "{src}: {p:?}");
            assert_eq!(&src[p[0].0.clone()], "{{ b }}", "{src}");
            assert_eq!(p[0].1.position, Position::Bare, "{src}");
        }
        for markup in [
            "{{#if a}}x{{/if}}",
            "{{ # if a }}x{{ / if }}",
            "{{^}}",
            "{{! a }}",
            "{{ else }}",
        ] {
            let src = format!("echo {markup} '{{{{ b }}}}'");
            let p = placements(&src);
            assert_eq!(p.len(), 1, "{src}: {p:?}");
            assert_eq!(p[0].1.position, Position::SingleQuoted, "{src}");
        }
    }

    #[test]
    fn arithmetic_is_read_as_one_expansion_and_its_shift_is_no_heredoc() {
        let t = render("echo $(( {} << 2 )) {}", &["1", "x"]);
        assert_eq!(
            t.code,
            r#"echo $(( ${ROLLBOOK_V1} << 2 )) "${ROLLBOOK_V2}""#
        );
        let p = placements("echo $(( {{ a }} + 1 ))");
        assert_eq!(p[0].1.position, Position::Arithmetic);
    }

    proptest::proptest! {
        /// Any plan text (validate reads every shell template) and any command with values
        /// is read to its end: no panic, and the code holds every value as a reference.
        #[test]
        fn any_text_is_read_without_panic(
            src in "[a-z {}$()'\"`<>\\#;|&\n\t=-]{0,60}",
            value in "[^\u{0}]{0,8}",
        ) {
            let _ = placements(&src);
            // Without values, the author's text comes out as written: nothing dropped or
            // written twice (but for `<<-`, which becomes `<<` with its tabs stripped).
            if !src.contains("<<-") {
                let (toks, values) = tokens(&src);
                let again = Lexer::new(&values, Mode::Variables).run(&toks).text();
                proptest::prop_assert_eq!(&again, &src);
            }
            let marked = src.replace("{}", &mark_value(&value));
            let t = build(&marked).unwrap();
            proptest::prop_assert!(!t.code.contains(OPEN));
        }
    }

    #[test]
    fn a_nul_byte_is_refused() {
        assert!(build(&format!("echo {}", mark_value("a\0b"))).is_err());
    }
}
