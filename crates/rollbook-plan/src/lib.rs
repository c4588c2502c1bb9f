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
pub mod inventory;
pub mod jq;
pub mod model;
pub mod params;
pub mod preview;
pub mod render;
pub mod schema;
pub mod shell;
pub mod template;
pub mod timing;
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

/// Reads an inventory file (`--inventory FILE`): `group: [host, { name, address, port, user,
/// vars }]` or `group: { hosts: [...], children: [group, ...] }`.
pub fn load_inventory(
    file: &SourceFile,
) -> Result<std::collections::BTreeMap<String, model::Group>, Vec<Diagnostic>> {
    load_inventory_files(std::slice::from_ref(file))
        .map_err(|diags| diags.into_iter().map(|(_, d)| d).collect())
}

/// Reads the files of an inventory as one (`--inventory DIR`: its `*.yaml` and `*.yml` files,
/// in the order given): their groups together, checked together ([`inventory::check`]). The
/// diagnostics come with the index of their file in `files`, each file's by place.
pub fn load_inventory_files(
    files: &[SourceFile],
) -> Result<std::collections::BTreeMap<String, model::Group>, Vec<(usize, Diagnostic)>> {
    let mut diags: Vec<(usize, Diagnostic)> = Vec::new();
    let mut decoded = Vec::new();
    for (i, file) in files.iter().enumerate() {
        match side_file(file) {
            Ok(root) => {
                let mut own = Vec::new();
                decoded.push((i, decode::decode_inventory(&root, &mut own)));
                diags.extend(own.into_iter().map(|d| (i, d)));
            }
            Err(own) => diags.extend(own.into_iter().map(|d| (i, d))),
        }
    }
    let defs: Vec<inventory::Defined<'_>> = decoded
        .iter()
        .flat_map(|(file, groups)| {
            groups.iter().map(move |(name, group)| inventory::Defined {
                file: *file,
                name,
                group,
            })
        })
        .collect();
    let place = |file: usize, span: Span| {
        let (line, col) = files[file].line_col(span.offset);
        format!("{}:{line}:{col}", files[file].name)
    };
    diags.extend(inventory::check(&defs, &place));
    if diags.iter().any(|(_, d)| d.is_error()) {
        diags.sort_by_key(|(file, d)| (*file, d.span.offset, d.level));
        return Err(diags);
    }
    let mut groups = std::collections::BTreeMap::new();
    for (_, entries) in decoded {
        for (name, group) in entries.0 {
            groups.entry(name.value).or_insert(group);
        }
    }
    Ok(groups)
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
