//! jq expressions (`when`, `until`, `expect.jq`, `capture`): compiled at validate time so a
//! typo fails the pull request, not the incident; evaluated by the executor at run time.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::Val;
use serde_json::Value;

/// The run context, as jq variables, in this order.
pub const VARIABLES: [&str; 5] = ["$params", "$item", "$index", "$steps", "$run"];

/// An expression that does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JqError {
    /// What jaq says is wrong.
    pub message: String,
    /// Byte offset inside the expression, when known.
    pub offset: Option<usize>,
    /// Length of the offending text at `offset` (0 when unknown).
    pub len: usize,
}

type Filter = jaq_core::Filter<data::JustLut<Val>>;

/// A compiled expression.
pub struct Program {
    filter: Filter,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("jq::Program")
    }
}

fn offset_in(code: &str, part: &str) -> Option<usize> {
    let start = code.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    (at >= start && at <= start + code.len()).then(|| at - start)
}

/// Checks many expressions at once (validate time). Compiling jq's standard library is most
/// of the cost of compiling one expression, so the expressions are compiled together, each
/// as a definition of one program; errors are mapped back to their expression.
pub fn check_all(exprs: &[&str]) -> Vec<Option<JqError>> {
    let mut errors: Vec<Option<JqError>> = exprs.iter().map(|e| parse_only(e).err()).collect();
    let valid: Vec<usize> = (0..exprs.len()).filter(|&i| errors[i].is_none()).collect();
    if valid.is_empty() {
        return errors;
    }
    let mut program = String::new();
    let mut ranges = Vec::new();
    for &i in &valid {
        program.push_str(&format!("def rollbook_expr_{i}: (\n"));
        let start = program.len();
        program.push_str(exprs[i]);
        ranges.push((i, start, program.len()));
        program.push_str("\n);\n");
    }
    program.push('.');
    if let Err(e) = compile(&program) {
        let at = e
            .offset
            .and_then(|at| ranges.iter().find(|(_, s, end)| (*s..=*end).contains(&at)));
        match at {
            Some(&(i, start, _)) => {
                errors[i] = Some(JqError {
                    offset: e.offset.map(|at| at - start),
                    ..e
                });
                // Others may be wrong too: check the rest one by one.
                for &j in valid.iter().filter(|&&j| j != i) {
                    errors[j] = compile(exprs[j]).err();
                }
            }
            None => {
                for &j in &valid {
                    errors[j] = compile(exprs[j]).err();
                }
            }
        }
    }
    errors
}

/// Lexes and parses an expression without compiling it: syntax errors only, cheaply.
fn parse_only(code: &str) -> Result<(), JqError> {
    let loader = Loader::new([]);
    let arena = Arena::default();
    loader
        .load(&arena, File { code, path: () })
        .map(|_| ())
        .map_err(|errs| load_error(code, errs))
}

/// Compiles an expression with the run context's variables in scope.
pub fn compile(code: &str) -> Result<Program, JqError> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let modules = loader
        .load(&arena, File { code, path: () })
        .map_err(|errs| load_error(code, errs))?;
    let filter = Compiler::default()
        .with_funs(funs)
        .with_global_vars(VARIABLES)
        .compile(modules)
        .map_err(|errs| {
            let undefined = errs.iter().flat_map(|(_, es)| es.iter()).next();
            match undefined {
                Some((name, what)) => JqError {
                    message: format!("undefined {} `{name}`", undefined_kind(what)),
                    offset: offset_in(code, name),
                    len: name.len(),
                },
                None => JqError {
                    message: "does not compile".into(),
                    offset: None,
                    len: 0,
                },
            }
        })?;
    Ok(Program { filter })
}

fn load_error(code: &str, errs: jaq_core::load::Errors<&str, ()>) -> JqError {
    let first = errs.into_iter().next().map(|(_, e)| e);
    match first {
        Some(jaq_core::load::Error::Lex(errs)) => {
            let (expect, at) = errs
                .into_iter()
                .next()
                .map(|(e, at)| (e.as_str().to_string(), at))
                .unzip();
            JqError {
                message: format!("expected {}", expect.unwrap_or_default()),
                offset: at.and_then(|at| offset_in(code, at)),
                len: 1,
            }
        }
        Some(jaq_core::load::Error::Parse(errs)) => {
            let (expect, at) = errs
                .into_iter()
                .next()
                .map(|(e, at)| (e.as_str().to_string(), at))
                .unzip();
            let found = at
                .filter(|s| !s.is_empty())
                .map_or("the end".to_string(), |s| {
                    format!("`{}`", s.chars().take(12).collect::<String>())
                });
            JqError {
                message: format!("expected {}, found {found}", expect.unwrap_or_default()),
                offset: at.and_then(|at| offset_in(code, at)),
                len: 1,
            }
        }
        _ => JqError {
            message: "cannot be read".into(),
            offset: None,
            len: 0,
        },
    }
}

fn undefined_kind(u: &jaq_core::compile::Undefined) -> &'static str {
    use jaq_core::compile::Undefined;
    match u {
        Undefined::Var => "variable",
        Undefined::Label => "label",
        Undefined::Mod => "module",
        Undefined::Filter(_) => "filter",
        _ => "name",
    }
}

impl Program {
    /// Runs the expression on `input` with the context variables (in [`VARIABLES`] order).
    /// Returns every output, or the first error.
    pub fn run(&self, input: &Value, vars: [&Value; 5]) -> Result<Vec<Value>, String> {
        let input = to_val(input);
        let vars = Vars::new(vars.map(to_val));
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, vars);
        self.filter
            .id
            .run((ctx, input))
            .map(|r| match jaq_core::unwrap_valr(r) {
                Ok(v) => Ok(from_val(&v)),
                Err(e) => Err(e.to_string()),
            })
            .collect()
    }

    /// A condition holds when its first output is neither `false` nor `null`.
    pub fn holds(&self, input: &Value, vars: [&Value; 5]) -> Result<bool, String> {
        let out = self.run(input, vars)?;
        Ok(out
            .first()
            .is_some_and(|v| !matches!(v, Value::Null | Value::Bool(false))))
    }
}

fn to_val(v: &Value) -> Val {
    match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Val::from(i as isize),
            (None, Some(f)) => Val::from(f),
            _ => Val::Null,
        },
        Value::String(s) => Val::from(s.clone()),
        Value::Array(items) => items.iter().map(to_val).collect(),
        Value::Object(map) => Val::obj(
            map.iter()
                .map(|(k, v)| (Val::from(k.clone()), to_val(v)))
                .collect(),
        ),
    }
}

fn from_val(v: &Val) -> Value {
    serde_json::from_str(&v.to_string()).unwrap_or(Value::Null)
}

/// Step ids read through `$steps.ID` (or `$steps["ID"]`) and the output names after them,
/// for the upstream check. Other uses of `$steps` are not analysed.
pub fn step_references(code: &str) -> Vec<(String, Option<String>, usize)> {
    let mut out = Vec::new();
    let mut search = 0;
    while let Some(found) = code[search..].find("$steps") {
        let at = search + found;
        let mut rest = &code[at + "$steps".len()..];
        search = at + "$steps".len();
        let Some(id) = next_key(&mut rest) else {
            continue;
        };
        let output = match next_key(&mut rest) {
            Some(k) if k == "outputs" => next_key(&mut rest),
            _ => None,
        };
        out.push((id, output, at));
    }
    out
}

/// Reads `.name` or `["name"]` off the front of `rest`.
fn next_key(rest: &mut &str) -> Option<String> {
    if let Some(r) = rest.strip_prefix('.') {
        let len = r
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(r.len());
        if len == 0 {
            return None;
        }
        let key = r[..len].to_string();
        *rest = &r[len..];
        return Some(key);
    }
    let r = rest.strip_prefix("[\"")?;
    let end = r.find("\"]")?;
    let key = r[..end].to_string();
    *rest = &r[end + 2..];
    Some(key)
}

/// True when the expression reads `$item` or `$index`.
pub fn uses_item(code: &str) -> bool {
    ["$item", "$index"].iter().any(|v| {
        code.match_indices(v).any(|(i, _)| {
            !code[i + v.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        })
    })
}
