//! Showing plan diagnostics: miette's report for people, JSON for tools, and workflow
//! annotations for CI (`::error file=…,line=…::message`).

use std::fmt::Write;

use clap::ValueEnum;
use miette::{GraphicalReportHandler, GraphicalTheme};
use rollbook_plan::{Checked, Diagnostic, Level, Located};
use serde::Serialize;

use crate::ColorChoice;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Source lines with carets, for people (`human` is the same).
    #[value(alias = "human")]
    Text,
    /// One JSON array of diagnostics.
    Json,
    /// Workflow commands that annotate the plan's lines in a pull request.
    Github,
    /// SARIF 2.1.0, for code scanning.
    Sarif,
}

/// Whether to use color and Unicode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn from_choice(choice: ColorChoice) -> Self {
        use std::io::IsTerminal;
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        };
        Style { color }
    }

    pub const PLAIN: Style = Style { color: false };

    /// `error: message`, red on a terminal.
    pub fn error_line(&self, message: &str) -> String {
        if self.color {
            format!("\x1b[1;31merror\x1b[0m: {message}")
        } else {
            format!("error: {message}")
        }
    }
}

/// Renders the diagnostics of every file, followed by a summary for people.
pub fn render_all(checked: &[Checked], format: Format, style: Style) -> String {
    match format {
        Format::Text => human(checked, style),
        Format::Json => json(checked),
        Format::Github => github(checked),
        Format::Sarif => sarif(checked),
    }
}

fn handler(style: Style) -> GraphicalReportHandler {
    let theme = if style.color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false)
        .with_context_lines(1)
}

/// One diagnostic as miette draws it.
pub fn render_one(checked: &Checked, diagnostic: &Diagnostic, style: Style) -> String {
    let mut out = String::new();
    let located = Located::new(&checked.file, diagnostic);
    let _ = handler(style).render_report(&mut out, &located);
    out
}

fn human(checked: &[Checked], style: Style) -> String {
    let mut out = String::new();
    let (mut errors, mut warnings, mut bad_files) = (0, 0, 0);
    for c in checked {
        for d in &c.diagnostics {
            out.push_str(&render_one(c, d, style));
            match d.level {
                Level::Error => errors += 1,
                Level::Warning => warnings += 1,
            }
        }
        if !c.is_ok() {
            bad_files += 1;
        }
    }
    let plans = checked.len();
    let noun = if plans == 1 { "plan" } else { "plans" };
    let warn = match warnings {
        0 => String::new(),
        1 => ", 1 warning".into(),
        n => format!(", {n} warnings"),
    };
    if errors == 0 {
        let _ = writeln!(out, "ok: {plans} {noun} valid{warn}");
    } else {
        let _ = writeln!(
            out,
            "{}",
            style.error_line(&format!(
                "{errors} {} in {bad_files} of {plans} {noun}{warn}",
                if errors == 1 { "error" } else { "errors" }
            ))
        );
    }
    out
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    file: &'a str,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    level: &'static str,
    code: &'static str,
    message: &'a str,
    label: Option<&'a str>,
    help: Option<&'a str>,
    related: Vec<JsonRelated<'a>>,
}

#[derive(Serialize)]
struct JsonRelated<'a> {
    line: usize,
    column: usize,
    label: &'a str,
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warning => "warning",
    }
}

fn json(checked: &[Checked]) -> String {
    let mut all = Vec::new();
    for c in checked {
        for d in &c.diagnostics {
            let (line, column) = c.file.line_col(d.span.offset);
            let (end_line, end_column) = c.file.line_col(d.span.offset + d.span.len);
            all.push(JsonDiagnostic {
                file: &c.file.name,
                line,
                column,
                end_line,
                end_column,
                level: level_name(d.level),
                code: d.code,
                message: &d.message,
                label: d.label.as_deref(),
                help: d.help.as_deref(),
                related: d
                    .related
                    .iter()
                    .map(|(span, label)| {
                        let (line, column) = c.file.line_col(span.offset);
                        JsonRelated {
                            line,
                            column,
                            label,
                        }
                    })
                    .collect(),
            });
        }
    }
    let doc = serde_json::json!({ "version": 1, "diagnostics": all });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// SARIF 2.1.0 (the format code-scanning tools read): one run of the tool `rollbook`, a rule
/// per diagnostic code met, a result per diagnostic with its region (lines and columns from
/// 1) and its related places.
fn sarif(checked: &[Checked]) -> String {
    use serde_json::json;
    let mut rules: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let mut results = Vec::new();
    for c in checked {
        for d in &c.diagnostics {
            rules.insert(d.code);
            let region = |offset: usize, len: usize| {
                let (line, column) = c.file.line_col(offset);
                let (end_line, end_column) = c.file.line_col(offset + len);
                json!({"startLine": line, "startColumn": column,
                       "endLine": end_line, "endColumn": end_column.max(column + usize::from(end_line == line))})
            };
            let location = |offset: usize, len: usize| {
                json!({"physicalLocation": {"artifactLocation": {"uri": c.file.name},
                                            "region": region(offset, len)}})
            };
            let mut text = d.message.clone();
            if let Some(help) = &d.help {
                text.push('\n');
                text.push_str(help);
            }
            results.push(json!({
                "ruleId": d.code,
                "level": level_name(d.level),
                "message": {"text": text},
                "locations": [location(d.span.offset, d.span.len)],
                "relatedLocations": d.related.iter().enumerate().map(|(i, (span, label))| {
                    let mut l = location(span.offset, span.len);
                    l["id"] = json!(i);
                    l["message"] = json!({"text": label});
                    l
                }).collect::<Vec<_>>(),
            }));
        }
    }
    let doc = json!({
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "rollbook",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules.iter().map(|code| json!({
                    "id": code,
                    "shortDescription": {"text": format!("rollbook {code}")},
                })).collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// Escapes a workflow command's message (`%`, CR, LF).
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value (also `:` and `,`).
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

fn github(checked: &[Checked]) -> String {
    let mut out = String::new();
    for c in checked {
        for d in &c.diagnostics {
            let (line, col) = c.file.line_col(d.span.offset);
            let (end_line, end_col) = c.file.line_col(d.span.offset + d.span.len);
            let mut message = d.message.clone();
            if let Some(help) = &d.help {
                message.push('\n');
                message.push_str(help);
            }
            let mut props = format!(
                "file={},line={line},col={col},endLine={end_line}",
                escape_property(&c.file.name)
            );
            if end_line == line {
                let _ = write!(props, ",endColumn={end_col}");
            }
            let _ = writeln!(
                out,
                "::{} {props},title={}::{}",
                level_name(d.level),
                escape_property(&format!("rollbook {}", d.code)),
                escape_data(&message)
            );
        }
    }
    let errors = checked
        .iter()
        .flat_map(|c| &c.diagnostics)
        .filter(|d| d.is_error())
        .count();
    let warnings = checked.iter().map(|c| c.diagnostics.len()).sum::<usize>() - errors;
    let plans = checked.len();
    let _ = writeln!(
        out,
        "rollbook: {plans} {} checked, {errors} {}, {warnings} {}",
        if plans == 1 { "plan" } else { "plans" },
        if errors == 1 { "error" } else { "errors" },
        if warnings == 1 { "warning" } else { "warnings" }
    );
    out
}
