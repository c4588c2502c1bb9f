//! Binding param values: defaults, then the params file, then `--param`.

use super::*;

/// Where param values come from, lowest priority first: defaults, then the params file, then
/// `--param` on the command line.
#[derive(Debug, Clone, Default)]
pub struct ParamInput {
    /// Values from `--params-file`.
    pub file: Map<String, Value>,
    /// `name=value` pairs as typed.
    pub cli: Vec<(String, String)>,
}

impl ParamInput {
    /// Splits `name=value` arguments.
    pub fn from_args(args: &[String]) -> Result<Self, Error> {
        let mut cli = Vec::new();
        for arg in args {
            let Some((k, v)) = arg.split_once('=') else {
                return Err(Error::Params(vec![format!(
                    "`--param {arg}` has no `=`: write `--param name=value`"
                )]));
            };
            cli.push((k.trim().to_string(), v.to_string()));
        }
        Ok(ParamInput {
            file: Map::new(),
            cli,
        })
    }
}

/// Binds every param of `plan`, checking types, `enum` and `required`. All problems are
/// reported together.
pub fn bind_params(plan: &Plan, input: &ParamInput) -> Result<Map<String, Value>, Error> {
    let mut problems = Vec::new();
    let mut bound = Map::new();
    let known: Vec<&str> = plan.params.names().collect();
    let given_names = input
        .file
        .keys()
        .map(String::as_str)
        .chain(input.cli.iter().map(|(k, _)| k.as_str()));
    for name in given_names {
        if !plan.params.contains(name) {
            let hint = match did_you_mean(name, known.iter().copied()) {
                Some(s) => format!("; did you mean `{s}`?"),
                None if known.is_empty() => "; it takes none".to_string(),
                None => format!("; it takes: {}", known.join(", ")),
            };
            problems.push(format!(
                "plan `{}` has no param `{name}`{hint}",
                plan.name.value
            ));
        }
    }
    for (name, param) in plan.params.iter() {
        let name = name.value.as_str();
        let ty = param.ty();
        let from_cli = input.cli.iter().rev().find(|(k, _)| k == name);
        let value = match (from_cli, input.file.get(name), &param.default) {
            (Some((_, text)), _, _) => parse_cli(ty, text),
            (None, Some(v), _) => check_value(ty, v),
            (None, None, Some(d)) => check_value(ty, &d.to_json()),
            (None, None, None) if param.is_required() => {
                let about = param
                    .description
                    .as_ref()
                    .map_or(String::new(), |d| format!(" — {}", d.value));
                problems.push(format!(
                    "param `{name}` is required: give it with `--param {name}=...`{about}"
                ));
                continue;
            }
            (None, None, None) => Ok(Value::Null),
        };
        let value = match value {
            Ok(v) => v,
            Err(why) => {
                problems.push(format!("param `{name}`: {why}"));
                continue;
            }
        };
        if let Some(choices) = &param.choices
            && !value.is_null()
        {
            let allowed: Vec<Value> = choices
                .iter()
                .filter_map(|c| check_value(ty, &c.to_json()).ok())
                .collect();
            if !allowed.contains(&value) {
                let list: Vec<String> = allowed.iter().map(display_value).collect();
                problems.push(format!(
                    "param `{name}` is `{}`, not one of: {}",
                    display_value(&value),
                    list.join(", ")
                ));
                continue;
            }
        }
        bound.insert(name.to_string(), value);
    }
    if problems.is_empty() {
        Ok(bound)
    } else {
        Err(Error::Params(problems))
    }
}
