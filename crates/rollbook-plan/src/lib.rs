//! rollbook's plan engine core: YAML plans in, diagnostics and a compiled DAG out.
//!
//! The phases, in the order a plan goes through them:
//! [`yaml`] (text → spanned tree) → [`decode`] (tree → typed [`model::Plan`]) →
//! [`validate`] (all diagnostics at once) → [`compile`] (params bound, DAG built).
//!
//! This crate does no I/O beyond what its caller hands it, and knows nothing of the network:
//! it builds and tests in seconds.

pub mod action;
pub mod calls;
pub mod compile;
pub mod decode;
pub mod diagnostic;
pub mod jq;
pub mod model;
pub mod params;
pub mod preview;
pub mod render;
pub mod schema;
pub mod shell;
pub mod template;
pub mod validate;
pub mod yaml;

pub use diagnostic::{Diagnostic, Level, Located, SourceFile, Span};
pub use model::Plan;

/// This crate's errors: why a plan could not be compiled (a plan with diagnostics never gets
/// this far), or a name that is not what it should be.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Param values that are missing, unknown, of the wrong type or not allowed; one line each.
    #[error("{}", .0.join("\n"))]
    Params(Vec<String>),
    /// The plan cannot be expanded with these values (a `for_each` that is not a list).
    #[error("{message}")]
    Compile {
        /// What is wrong, for people.
        message: String,
        /// Where in the plan, when it is one place.
        span: Option<Span>,
    },
    /// A phase name that is not `steps`, `on_failure` or `finally` (see
    /// [`compile::PhaseKind`]).
    #[error("`{0}` is not a phase: expected `steps`, `on_failure` or `finally`")]
    UnknownPhase(String),
}

/// A plan file read and checked: the plan (when it could be read at all) and every problem
/// found in it.
#[derive(Debug)]
pub struct Checked {
    /// The file that was read.
    pub file: SourceFile,
    /// The plan, unless the file is not YAML, is empty, or is not a mapping.
    pub plan: Option<Plan>,
    /// Every problem found, sorted by place (errors first at the same place).
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    /// True when nothing stops the plan from compiling (warnings may remain).
    pub fn is_ok(&self) -> bool {
        self.plan.is_some() && !self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Reads and validates a plan. `expected_name` is the file stem the plan's `name` must equal
/// (`None` to skip that check, e.g. for text from stdin).
pub fn check(file: SourceFile, expected_name: Option<&str>) -> Checked {
    let mut diagnostics = Vec::new();
    let plan = load(&file, &mut diagnostics);
    if let Some(plan) = &plan {
        diagnostics.extend(validate::validate(plan, expected_name, Some(&file.text)));
    }
    diagnostics.sort_by_key(|d| (d.span.offset, d.level));
    Checked {
        file,
        plan,
        diagnostics,
    }
}

/// [`check`], and the plan's calls of other plans (`plan: NAME`) against `library`: the
/// plans it may call, by name ([`calls::check_calls`]).
pub fn check_with(
    file: SourceFile,
    expected_name: Option<&str>,
    library: &calls::Library,
) -> Checked {
    let mut checked = check(file, expected_name);
    if let Some(plan) = &checked.plan {
        checked
            .diagnostics
            .extend(calls::check_calls(plan, library));
        checked
            .diagnostics
            .sort_by_key(|d| (d.span.offset, d.level));
    }
    checked
}

/// Parses and decodes a plan, without the semantic checks of [`validate`].
pub fn load(file: &SourceFile, diagnostics: &mut Vec<Diagnostic>) -> Option<Plan> {
    let root = match yaml::parse(&file.text, &yaml::Limits::default()) {
        Ok(Some(root)) => root,
        Ok(None) => {
            diagnostics.push(
                Diagnostic::error("empty-plan", Span::new(0, 0), "the plan file is empty")
                    .help("a plan starts with `version: 1`, `name:` and `steps:`"),
            );
            return None;
        }
        Err(e) => {
            let mut d = Diagnostic::error("yaml", e.span, e.message);
            if let Some(h) = e.help {
                d = d.help(h);
            }
            diagnostics.push(d);
            return None;
        }
    };
    if root.is_null() {
        diagnostics.push(
            Diagnostic::error("empty-plan", Span::new(0, 0), "the plan file is empty")
                .help("a plan starts with `version: 1`, `name:` and `steps:`"),
        );
        return None;
    }
    decode::decode_plan(&root, diagnostics)
}

/// Parses a YAML side file (`--inventory`, `--params-file`) into a tree, or diagnostics.
fn side_file(file: &SourceFile) -> Result<yaml::Node, Vec<Diagnostic>> {
    match yaml::parse(&file.text, &yaml::Limits::default()) {
        Ok(Some(root)) if !root.is_null() => Ok(root),
        Ok(_) => Err(vec![Diagnostic::error(
            "empty-file",
            Span::new(0, 0),
            "the file is empty",
        )]),
        Err(e) => Err(vec![Diagnostic::error("yaml", e.span, e.message)]),
    }
}

/// Reads an inventory file (`--inventory`): `group: [host, { name, address, port, user }]`.
pub fn load_inventory(
    file: &SourceFile,
) -> Result<std::collections::BTreeMap<String, Vec<model::Host>>, Vec<Diagnostic>> {
    let root = side_file(file)?;
    let mut diags = Vec::new();
    let groups = decode::decode_inventory(&root, &mut diags);
    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    Ok(groups.0.into_iter().map(|(k, v)| (k.value, v)).collect())
}

/// Reads a params file (`--params-file`): a mapping of param names to values.
pub fn load_params_file(
    file: &SourceFile,
) -> Result<serde_json::Map<String, serde_json::Value>, Vec<Diagnostic>> {
    let root = side_file(file)?;
    match root.to_json() {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(vec![Diagnostic::error(
            "wrong-type",
            root.span,
            "a params file is a mapping of param names to values",
        )]),
    }
}
