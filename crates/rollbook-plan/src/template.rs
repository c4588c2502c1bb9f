//! Handlebars templates in plan strings: parsing, the names they read, and rendering.
//!
//! Two things are ours on top of Handlebars:
//! - `inventory[params.region]` is accepted as sugar for `lookup inventory params.region`, as
//!   operators write it;
//! - the escaping depends on where the text goes: values substituted into shell commands are
//!   marked and then placed as data by [`crate::shell`], everything else (URLs, JSON strings,
//!   headers) is left as is. `{{{ }}}` is the explicit, reviewable way to splice text.

use std::borrow::Cow;

use handlebars::template::{Parameter, Template, TemplateElement};
use handlebars::{Handlebars, Path};
use serde_json::Value;

/// How a rendered value is escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Each `{{ value }}` is marked ([`crate::shell::mark_value`]) for
    /// [`crate::shell::build`] to place as data where it stands.
    Shell,
    /// Values are inserted as they are.
    None,
}

/// A name a template reads, like `params.region` or `steps.find.outputs.node_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The path's segments: `["steps", "find", "outputs", "node_id"]`.
    pub path: Vec<String>,
    /// Written as `{{ x }}` (escaped), not `{{{ x }}}` or as a helper argument.
    pub escaped: bool,
    /// Its text is spliced as written: inside `{{{ }}}`.
    pub spliced: bool,
}

/// A template that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What Handlebars says is wrong.
    pub message: String,
    /// 1-based line and column inside the template text, when Handlebars knows them.
    pub position: Option<(usize, usize)>,
}

/// Rewrites `a.b[c.d]` into a `lookup` so Handlebars can evaluate it.
pub fn desugar(src: &str) -> Cow<'_, str> {
    if !src.contains('[') {
        return Cow::Borrowed(src);
    }
    let mut out = String::with_capacity(src.len() + 16);
    let mut rest = src;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open..].find("}}") else {
            break;
        };
        let close = open + close;
        out.push_str(&rest[..open + 2]);
        let inner = &rest[open + 2..close];
        out.push_str(&desugar_expression(inner));
        rest = &rest[close..];
        out.push_str(&rest[..2]);
        rest = &rest[2..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '@')
}

/// `inventory[params.region]` → `lookup inventory params.region` when it is the whole
/// expression, `(lookup inventory params.region)` inside a larger one.
fn desugar_expression(inner: &str) -> String {
    let (lead, body) =
        inner.split_at(inner.len() - inner.trim_start_matches(['{', '~', ' ']).len());
    let trimmed = body.trim_end_matches(['}', '~', ' ']);
    let trail = &body[trimmed.len()..];
    let mut out = String::new();
    let mut rest = trimmed;
    let mut replaced = 0;
    while let Some(open) = rest.find('[') {
        // The path starts after the last character that cannot be in one (which may take
        // more than one byte).
        let base_start = rest[..open]
            .char_indices()
            .rfind(|(_, c)| !is_path_char(*c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let base = &rest[base_start..open];
        let Some(close_rel) = rest[open..].find(']') else {
            break;
        };
        let key = &rest[open + 1..open + close_rel];
        let key_is_path = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '@')
            && key.chars().all(is_path_char);
        if base.is_empty() || base.ends_with('.') || !key_is_path {
            out.push_str(&rest[..open + close_rel + 1]);
            rest = &rest[open + close_rel + 1..];
            continue;
        }
        out.push_str(&rest[..base_start]);
        let expr_is_whole =
            replaced == 0 && base_start == 0 && rest[open + close_rel + 1..].trim().is_empty();
        if expr_is_whole && out.is_empty() {
            out.push_str(&format!("lookup {base} {key}"));
        } else {
            out.push_str(&format!("(lookup {base} {key})"));
        }
        replaced += 1;
        rest = &rest[open + close_rel + 1..];
    }
    out.push_str(rest);
    format!("{lead}{out}{trail}")
}

/// Parses a template (after desugaring).
pub fn parse(src: &str) -> Result<Template, ParseError> {
    Template::compile(&desugar(src)).map_err(|e| ParseError {
        message: e.reason().to_string(),
        position: e.pos(),
    })
}

/// Handlebars' own helpers, and ours ([`HELPERS`]).
pub const BUILTIN_HELPERS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "raw", "eq", "ne", "gt", "gte", "lt", "lte", "and",
    "or", "not", "len", "log",
];

/// Names of the helpers a template calls (`{{ json x }}`, `{{#each ...}}`, `(lookup a b)`).
pub fn helpers(template: &Template) -> Vec<String> {
    fn name_of(p: &Parameter) -> Option<&str> {
        match p {
            Parameter::Name(n) => Some(n),
            Parameter::Path(Path::Relative((_, raw))) => Some(raw),
            _ => None,
        }
    }
    fn params(ps: &[Parameter], out: &mut Vec<String>) {
        for p in ps {
            if let Parameter::Subexpression(sub) = p
                && let TemplateElement::Expression(h) = sub.element.as_ref()
            {
                out.extend(name_of(&h.name).map(str::to_string));
                params(&h.params, out);
            }
        }
    }
    fn walk(t: &Template, out: &mut Vec<String>) {
        for e in &t.elements {
            match e {
                TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                    if !h.params.is_empty() || !h.hash.is_empty() {
                        out.extend(name_of(&h.name).map(str::to_string));
                    }
                    params(&h.params, out);
                }
                TemplateElement::HelperBlock(h) => {
                    out.extend(name_of(&h.name).map(str::to_string));
                    params(&h.params, out);
                    for inner in [&h.template, &h.inverse].into_iter().flatten() {
                        walk(inner, out);
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(template, &mut out);
    out
}

/// Every name a template reads, in order. Names inside blocks that change the context
/// (`#each`, `#with`) are relative to it and are left out; `@`-variables too.
pub fn references(template: &Template) -> Vec<Reference> {
    let mut out = Vec::new();
    walk(template, &mut out, false);
    out
}

fn walk(template: &Template, out: &mut Vec<Reference>, in_new_context: bool) {
    for element in &template.elements {
        match element {
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                let escaped = matches!(element, TemplateElement::Expression(_));
                let first = out.len();
                let is_call = !h.params.is_empty() || !h.hash.is_empty();
                match (&h.name, is_call) {
                    (Parameter::Name(name), false) => push_path(out, name, escaped, in_new_context),
                    (Parameter::Path(p), false) => {
                        push_param(out, &Parameter::Path(p.clone()), escaped, in_new_context)
                    }
                    _ => {}
                }
                if is_call {
                    for p in h.params.iter().chain(h.hash.values()) {
                        push_param(out, p, escaped, in_new_context);
                    }
                }
                for r in &mut out[first..] {
                    r.spliced = !escaped;
                }
            }
            TemplateElement::HelperBlock(h) => {
                for p in h.params.iter().chain(h.hash.values()) {
                    push_param(out, p, false, in_new_context);
                }
                let changes_context =
                    matches!(h.name.as_name(), Some("each" | "with")) || h.block_param.is_some();
                if let Some(t) = &h.template {
                    walk(t, out, in_new_context || changes_context);
                }
                if let Some(t) = &h.inverse {
                    walk(t, out, in_new_context);
                }
            }
            _ => {}
        }
    }
}

fn push_param(out: &mut Vec<Reference>, param: &Parameter, escaped: bool, in_new_context: bool) {
    match param {
        Parameter::Path(Path::Relative((_, raw))) => push_path(out, raw, escaped, in_new_context),
        Parameter::Subexpression(sub) => {
            let element = &sub.element;
            if let TemplateElement::Expression(h) = element.as_ref() {
                for p in h.params.iter().chain(h.hash.values()) {
                    push_param(out, p, false, in_new_context);
                }
            }
        }
        _ => {}
    }
}

fn push_path(out: &mut Vec<Reference>, raw: &str, escaped: bool, in_new_context: bool) {
    if in_new_context
        || raw.starts_with('@')
        || raw.starts_with("..")
        || raw == "this"
        || raw.starts_with("this.")
    {
        return;
    }
    let path: Vec<String> = raw
        .split(['.', '/'])
        .map(|s| s.trim_start_matches('[').trim_end_matches(']').to_string())
        .collect();
    out.push(Reference {
        path,
        escaped,
        spliced: false,
    });
}

/// The step ids a (validated) template reads as `steps.ID...`, found without a full parse:
/// compilation needs only these, and parsing every template twice doubles its cost.
pub fn step_ids(src: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = src;
    let mut inside = false;
    while let Some(open) = rest.find(if inside { "}}" } else { "{{" }) {
        if inside {
            let block = &rest[..open];
            for (at, _) in block.match_indices("steps.") {
                let before = block[..at].chars().next_back();
                if before.is_some_and(|c| is_path_char(c) || c == '/') {
                    continue;
                }
                let id: String = block[at + 6..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
                    .collect();
                if !id.is_empty() {
                    ids.push(id);
                }
            }
        }
        rest = &rest[open + 2..];
        inside = !inside;
    }
    ids
}

/// If the template is a single `{{ expression }}` and nothing else, the expression's path
/// (`inventory[params.region]` gives `["inventory", "[params.region]"]` resolved by
/// [`eval_single`]).
pub fn single_expression(src: &str) -> Option<&str> {
    let t = src.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") {
        return None;
    }
    Some(inner.trim())
}

/// Evaluates a template that is one expression to a JSON value instead of text, so that
/// `for_each: "{{ inventory.operators }}"` yields a list. Supports paths and one level of
/// `a[b]` indexing. `Ok(None)` when the template is not of that form.
pub fn eval_single(src: &str, ctx: &Value) -> Result<Option<Value>, String> {
    let Some(expr) = single_expression(src) else {
        return Ok(None);
    };
    // `lookup a b` is the spelled-out form of `a[b]`.
    let spelled;
    let expr = match expr
        .strip_prefix("lookup ")
        .map(|rest| rest.split_whitespace().collect::<Vec<_>>())
    {
        Some(parts) if parts.len() == 2 => {
            spelled = format!("{}[{}]", parts[0], parts[1]);
            spelled.as_str()
        }
        _ => expr,
    };
    let (base, index) = match expr.find('[') {
        Some(open) if expr.ends_with(']') => (&expr[..open], Some(&expr[open + 1..expr.len() - 1])),
        _ => (expr, None),
    };
    if !base.chars().all(is_path_char) || base.is_empty() {
        return Ok(None);
    }
    let mut value = lookup_path(ctx, base).ok_or_else(|| format!("`{base}` has no value"))?;
    if let Some(index) = index {
        let key = match index.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            Some(literal) => Value::String(literal.to_string()),
            None => lookup_path(ctx, index)
                .ok_or_else(|| format!("`{index}` has no value"))?
                .clone(),
        };
        value = match (&value, &key) {
            (Value::Object(map), Value::String(k)) => {
                map.get(k).ok_or_else(|| format!("`{base}` has no `{k}`"))?
            }
            (Value::Array(items), Value::Number(n)) => n
                .as_u64()
                .and_then(|i| items.get(i as usize))
                .ok_or_else(|| format!("`{base}` has no item {n}"))?,
            _ => return Err(format!("`{base}` cannot be indexed by {key}")),
        };
    }
    Ok(Some(value.clone()))
}

fn lookup_path<'v>(ctx: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(ctx, |v, seg| match v {
        Value::Object(map) => map.get(seg),
        Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Quotes a value as one POSIX shell word.
pub fn shell_quote(s: &str) -> Cow<'_, str> {
    let safe = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'_' | b'-' | b'.' | b'/' | b':' | b',' | b'+' | b'=' | b'@' | b'%'
                )
        });
    if safe {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("'{}'", s.replace('\'', r"'\''")))
    }
}

/// Renders plan templates. Strict: a name with no value is an error, never an empty string.
pub struct Renderer {
    shell: Handlebars<'static>,
    plain: Handlebars<'static>,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

/// The helpers' implementations; the macro makes them public types, kept out of the API here.
mod helpers {
    use serde_json::Value;

    handlebars::handlebars_helper!(json_helper: |v: Json| serde_json::to_string(v).unwrap_or_default());
    handlebars::handlebars_helper!(join_helper: |list: array, sep: str| {
        list.iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(sep)
    });
}
use helpers::{join_helper, json_helper};

/// Helpers beyond Handlebars' own: `{{ json x }}` (a value as JSON text) and
/// `{{ join list "," }}`.
pub const HELPERS: &[&str] = &["json", "join"];

impl Renderer {
    /// A renderer with strict mode (a name without a value is an error) and rollbook's
    /// helpers, for both escapings.
    pub fn new() -> Self {
        let registry = |escape: fn(&str) -> String| {
            let mut r = Handlebars::new();
            r.set_strict_mode(true);
            r.register_escape_fn(escape);
            r.register_helper("json", Box::new(json_helper));
            r.register_helper("join", Box::new(join_helper));
            r
        };
        Renderer {
            shell: registry(crate::shell::mark_value),
            plain: registry(handlebars::no_escape),
        }
    }

    /// Renders `src` against `ctx`.
    pub fn render(&self, src: &str, ctx: &Value, escape: Escape) -> Result<String, String> {
        if !src.contains("{{") {
            return Ok(src.to_string());
        }
        let registry = match escape {
            Escape::Shell => &self.shell,
            Escape::None => &self.plain,
        };
        let template = parse(src).map_err(|e| e.message)?;
        let ctx = handlebars::Context::wraps(ctx).map_err(|e| e.to_string())?;
        let mut out = handlebars::StringOutput::new();
        let mut rc = handlebars::RenderContext::new(None);
        use handlebars::Renderable;
        template
            .render(registry, &ctx, &mut rc, &mut out)
            .map_err(|e| render_error_message(&e))?;
        // handlebars writes into an 8 KiB buffer: a rendered command kept for its attempt
        // should not hold 8 KiB for a line of text (256 attempts in flight held 1.5 MiB).
        let mut text = out.into_string().map_err(|e| e.to_string())?;
        text.shrink_to_fit();
        Ok(text)
    }
}

fn render_error_message(e: &handlebars::RenderError) -> String {
    let reason = e.reason().to_string();
    reason
        .strip_prefix("Failed to access variable in strict mode ")
        .map_or(reason.clone(), |v| {
            let name = v.trim_start_matches("Some(\"").trim_end_matches("\")");
            format!("`{name}` has no value")
        })
}

/// Hides the password of a URL (`postgres://app:hunter2@db/x` → `postgres://app:***@db/x`).
///
/// A URL that parses is rewritten by [`url::Url`] (a password may hold `@`, `:` or `%40`);
/// one without a password comes back as written. A URL that does not parse (say, one still
/// holding a placeholder, or a password with a `/` in it) is treated conservatively: if
/// anything between `://` and the last `@` could be `user:password`, all of it after the
/// first `:` is hidden.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => match parsed.password() {
            Some(_) => {
                let mut shown = parsed;
                // Cannot fail: the URL already has a password, so it can hold one.
                let _ = shown.set_password(Some("***"));
                shown.into()
            }
            None => url.to_string(),
        },
        Err(_) => redact_unparsed_url(url),
    }
}

/// [`redact_url`] for text that is not a URL: hides from the first `:` after `://` to the last
/// `@` before any `?` or `#`.
fn redact_unparsed_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let before_query = rest.find(['?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..before_query].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!("{scheme}://{}:***{}", &rest[..colon], &rest[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redact_url_hides_passwords_with_at_colon_or_percent() {
        assert_eq!(
            redact_url("postgres://app:p@ss@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(
            redact_url("postgres://app:p:ss@db/x"),
            "postgres://app:***@db/x"
        );
        assert_eq!(
            redact_url("mysql://app:p%40ss@db/x?ssl-mode=required"),
            "mysql://app:***@db/x?ssl-mode=required"
        );
        assert_eq!(
            redact_url("http://app:pw@[::1]:8080/health"),
            "http://app:***@[::1]:8080/health"
        );
        assert_eq!(redact_url("http://app:pw@web-1"), "http://app:***@web-1/");
    }

    #[test]
    fn redact_url_keeps_urls_without_a_password_as_written() {
        for url in [
            "mysql://root@127.0.0.1/x",
            "http://[::1]:8080",
            "HTTP://Web-1:80/x",
            "sqlite://rollbook.db",
            "sqlite::memory:",
            "postgres://db/x?password",
            "not a url",
            "",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn redact_url_hides_conservatively_what_does_not_parse() {
        // A `/` in the password ends the authority for a parser: the port would be `pa`.
        assert_eq!(
            redact_url("postgres://app:pa/ss@db/x"),
            "postgres://app:***@db/x"
        );
        // A placeholder in the host does not parse either.
        assert_eq!(
            redact_url("http://app:pw@<steps.find.outputs.host>/x"),
            "http://app:***@<steps.find.outputs.host>/x"
        );
        assert_eq!(
            redact_url("http://<steps.find.outputs.host>:8080/x"),
            "http://<steps.find.outputs.host>:8080/x"
        );
        assert_eq!(redact_url("http://app@[::1/"), "http://app@[::1/");
    }
}
