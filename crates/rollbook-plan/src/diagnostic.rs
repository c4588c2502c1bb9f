//! Problems found in a plan, each tied to a place in its file.
//!
//! Diagnostics are data: the loader and the validator collect all of them, and the CLI decides
//! how to show them (miette's graphical report, JSON, or CI annotations).

use std::fmt;
use std::sync::Arc;

/// A byte range of the plan's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord, Hash)]
pub struct Span {
    /// Byte offset of the first byte.
    pub offset: usize,
    /// Length in bytes (0 for a point, e.g. the end of the file).
    pub len: usize,
}

impl Span {
    /// `len` bytes from `offset`.
    pub const fn new(offset: usize, len: usize) -> Self {
        Span { offset, len }
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(span: Span) -> Self {
        (span.offset, span.len).into()
    }
}

/// How serious a diagnostic is. Errors sort before warnings at the same place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The plan cannot run.
    Error,
    /// The plan runs, but probably not as its author meant.
    Warning,
}

/// One problem, with where it is and what to do about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// Error or warning.
    pub level: Level,
    /// Stable kebab-case name of the kind of problem (`unknown-key`), for tools and docs.
    pub code: &'static str,
    /// What is wrong, in one sentence.
    pub message: String,
    /// Where: the value or key at fault.
    pub span: Span,
    /// Text shown at the caret.
    pub label: Option<String>,
    /// What to do about it (a fix, or "did you mean").
    pub help: Option<String>,
    /// Other places that belong to the story (the first definition of a duplicate id, the
    /// other steps of a cycle).
    pub related: Vec<(Span, String)>,
}

impl Diagnostic {
    /// An error with its code, place and message; add the rest with the builder methods.
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            level: Level::Error,
            code,
            message: message.into(),
            span,
            label: None,
            help: None,
            related: Vec::new(),
        }
    }

    /// A warning with its code, place and message.
    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            level: Level::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    /// Sets the text shown at the caret.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Sets what to do about it.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds another place that belongs to the story, with its label.
    pub fn related(mut self, span: Span, label: impl Into<String>) -> Self {
        self.related.push((span, label.into()));
        self
    }

    /// Whether it stops the plan from running.
    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }
}

/// A plan file's name and text, shared by the diagnostics about it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The name diagnostics show (a path as given, or `<stdin>`).
    pub name: String,
    /// The whole text.
    pub text: Arc<str>,
}

impl SourceFile {
    /// A file named `name` holding `text`.
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        SourceFile {
            name: name.into(),
            text: text.into(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A diagnostic together with its file, in the form miette renders.
#[derive(Debug)]
pub struct Located<'a> {
    /// The file the diagnostic is about.
    pub file: &'a SourceFile,
    /// The diagnostic.
    pub diagnostic: &'a Diagnostic,
    source: miette::NamedSource<Arc<str>>,
}

impl<'a> Located<'a> {
    /// `diagnostic` about `file`.
    pub fn new(file: &'a SourceFile, diagnostic: &'a Diagnostic) -> Self {
        let source = miette::NamedSource::new(file.name.clone(), file.text.clone());
        Located {
            file,
            diagnostic,
            source,
        }
    }
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for Located<'_> {}

impl miette::Diagnostic for Located<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(format!("rollbook::{}", self.diagnostic.code)))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.level {
            Level::Error => miette::Severity::Error,
            Level::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diagnostic
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let d = self.diagnostic;
        let primary = miette::LabeledSpan::new_primary_with_span(d.label.clone(), d.span);
        let related = d
            .related
            .iter()
            .map(|(span, label)| miette::LabeledSpan::new_with_span(Some(label.clone()), *span));
        Some(Box::new(std::iter::once(primary).chain(related)))
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo: a few
/// edits away (a swap counts as one), or sharing most of its letters in order.
pub fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let allowed_edits = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| {
            let edits = strsim::damerau_levenshtein(word, c);
            let similarity = strsim::jaro_winkler(word, c);
            (edits, similarity, c)
        })
        .filter(|(edits, similarity, _)| *edits <= allowed_edits || *similarity > 0.85)
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, c)| c)
}
