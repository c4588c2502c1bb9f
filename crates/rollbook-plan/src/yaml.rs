//! YAML text → a tree of [`Node`]s that remember where they came from.
//!
//! We read the event stream of `saphyr-parser` ourselves instead of going through serde: serde
//! stops at the first error, while `validate` must report every problem of a plan at once, each
//! at its own line and column. Building the tree here is also where hostile input is refused:
//! aliases are expanded under a node budget (alias bombs), nesting is bounded, and so are the
//! sizes of the file and of each scalar.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError};

use crate::Span;

/// Bounds that keep a hostile file from using unbounded time or memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest plan file accepted, in bytes.
    pub max_file_bytes: usize,
    /// Deepest nesting of sequences and mappings.
    pub max_depth: usize,
    /// Most nodes in the tree, counting every alias expansion: an alias bomb hits this.
    pub max_nodes: usize,
    /// Longest single scalar, in bytes.
    pub max_scalar_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 4 << 20,
            max_depth: 64,
            max_nodes: 200_000,
            max_scalar_bytes: 1 << 20,
        }
    }
}

/// One YAML value with the span it was written at.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub kind: NodeKind,
    /// Where it is written (after alias expansion: where the anchored value is).
    pub span: Span,
}

/// The three shapes of a YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar as written; `plain` is false for quoted and block scalars, which are always
    /// strings (so `"1"` stays text while `1` is a number).
    Scalar {
        /// The text, after YAML's own escapes and folding.
        text: String,
        /// Written without quotes or a block indicator.
        plain: bool,
    },
    /// A sequence, in order.
    Seq(Vec<Node>),
    /// Keys in document order. Keys are kept as nodes so that diagnostics can point at them.
    Map(Vec<(Node, Node)>),
}

/// Why YAML text could not become a tree.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    /// What is wrong.
    pub message: String,
    /// Where the parser stopped.
    pub span: Span,
    /// What to do about it, when there is something to say.
    pub help: Option<String>,
}

impl Node {
    /// The scalar's text, if this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Plain `null`, `~` or an empty value.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// A short word for the node's kind, for messages ("expected a list, found a mapping").
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar { .. } if self.is_null() => "null",
            NodeKind::Scalar { .. } => "a scalar",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    /// The node as plain JSON data, with YAML 1.2 core-schema typing of plain scalars.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Scalar { text, plain: false } => Value::String(text.clone()),
            NodeKind::Scalar { text, plain: true } => plain_scalar_to_json(text),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Types a plain scalar the way YAML 1.2's core schema does.
pub fn plain_scalar_to_json(text: &str) -> serde_json::Value {
    use serde_json::Value;
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::from(i);
    }
    let looks_numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && text.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric
        && let Ok(f) = text.parse::<f64>()
        && let Some(n) = serde_json::Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text.to_string())
}

/// Converts the parser's character positions to byte offsets of the source.
struct Offsets<'a> {
    text: &'a str,
    /// Byte offset of every character; empty when the text is ASCII (offsets are the indices).
    char_starts: Vec<usize>,
}

impl<'a> Offsets<'a> {
    fn new(text: &'a str) -> Self {
        let char_starts = if text.is_ascii() {
            Vec::new()
        } else {
            text.char_indices().map(|(i, _)| i).collect()
        };
        Offsets { text, char_starts }
    }

    fn byte(&self, char_index: usize) -> usize {
        if self.char_starts.is_empty() {
            char_index.min(self.text.len())
        } else {
            self.char_starts
                .get(char_index)
                .copied()
                .unwrap_or(self.text.len())
        }
    }

    fn span(&self, span: saphyr_parser::Span) -> Span {
        let start = self.byte(span.start.index());
        let end = self.byte(span.end.index()).max(start);
        Span::new(start, end - start)
    }
}

/// Parses one YAML document into a tree. An empty document gives `Ok(None)`.
pub fn parse(text: &str, limits: &Limits) -> Result<Option<Node>, YamlError> {
    if text.len() > limits.max_file_bytes {
        return Err(YamlError {
            message: format!(
                "the file is {} bytes, more than the {} bytes a plan may have",
                text.len(),
                limits.max_file_bytes
            ),
            span: Span::new(0, 0),
            help: Some("split the plan, or move data out of it".into()),
        });
    }
    let mut builder = Builder {
        offsets: Offsets::new(text),
        limits,
        anchors: HashMap::new(),
        nodes: 0,
        stack: Vec::new(),
        root: None,
        documents: 0,
    };
    for event in Parser::new_from_str(text) {
        match event {
            Ok((event, span)) => builder.event(event, span)?,
            Err(e) => return Err(builder.scan_error(&e)),
        }
    }
    Ok(builder.root)
}

enum Frame {
    Seq {
        items: Vec<Node>,
        start: usize,
        anchor: usize,
    },
    Map {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        start: usize,
        anchor: usize,
    },
}

struct Builder<'a> {
    offsets: Offsets<'a>,
    limits: &'a Limits,
    anchors: HashMap<usize, Node>,
    /// Nodes made so far, alias expansions included.
    nodes: usize,
    stack: Vec<Frame>,
    root: Option<Node>,
    documents: usize,
}

impl Builder<'_> {
    fn scan_error(&self, e: &ScanError) -> YamlError {
        let at = self.offsets.byte(e.marker().index());
        YamlError {
            message: format!("YAML syntax error: {}", e.info()),
            span: Span::new(at, 0),
            help: Some("check the indentation and quoting around this point".into()),
        }
    }

    fn error(&self, span: Span, message: String, help: &str) -> YamlError {
        YamlError {
            message,
            span,
            help: Some(help.into()),
        }
    }

    fn count(&mut self, n: usize, span: Span) -> Result<(), YamlError> {
        self.nodes += n;
        if self.nodes > self.limits.max_nodes {
            return Err(self.error(
                span,
                format!(
                    "the document expands to more than {} values",
                    self.limits.max_nodes
                ),
                "aliases (`*name`) that repeat large anchors multiply the document's size; write the values out or reduce the repetition",
            ));
        }
        Ok(())
    }

    /// Adds one parser event to the tree being built.
    fn event(&mut self, event: Event<'_>, span: saphyr_parser::Span) -> Result<(), YamlError> {
        let span = self.offsets.span(span);
        match event {
            Event::DocumentStart(_) => self.document_start(span),
            Event::Scalar(text, style, anchor, tag) => {
                let is_str_tag = tag.as_ref().is_some_and(|t| t.suffix == "str");
                self.scalar(
                    text,
                    style == ScalarStyle::Plain && !is_str_tag,
                    anchor,
                    span,
                )
            }
            Event::SequenceStart(anchor, _) => {
                self.open(span)?;
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    start: span.offset,
                    anchor,
                });
                Ok(())
            }
            Event::MappingStart(anchor, _) => {
                self.open(span)?;
                self.stack.push(Frame::Map {
                    entries: Vec::new(),
                    key: None,
                    start: span.offset,
                    anchor,
                });
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(span.offset + span.len),
            Event::Alias(id) => self.alias(id, span),
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => Ok(()),
        }
    }

    /// A plan file holds one document.
    fn document_start(&mut self, span: Span) -> Result<(), YamlError> {
        self.documents += 1;
        if self.documents > 1 {
            return Err(self.error(
                span,
                "a plan file holds one YAML document, this is a second one".into(),
                "put each plan in a file of its own",
            ));
        }
        Ok(())
    }

    /// A scalar, refused past the size limit.
    fn scalar(
        &mut self,
        text: Cow<'_, str>,
        plain: bool,
        anchor: usize,
        span: Span,
    ) -> Result<(), YamlError> {
        if text.len() > self.limits.max_scalar_bytes {
            return Err(self.error(
                span,
                format!(
                    "a value of {} bytes, more than the {} bytes allowed",
                    text.len(),
                    self.limits.max_scalar_bytes
                ),
                "keep large data out of the plan, in a file a step reads",
            ));
        }
        self.count(1, span)?;
        let node = Node {
            kind: NodeKind::Scalar {
                text: Cow::into_owned(text),
                plain,
            },
            span,
        };
        self.finish(node, anchor)
    }

    /// The end of the innermost sequence or mapping: it becomes a node spanning from its
    /// start to `end`.
    fn close(&mut self, end: usize) -> Result<(), YamlError> {
        let (kind, start, anchor) = match self.stack.pop() {
            Some(Frame::Seq {
                items,
                start,
                anchor,
            }) => (NodeKind::Seq(items), start, anchor),
            Some(Frame::Map {
                entries,
                start,
                anchor,
                ..
            }) => (NodeKind::Map(self.merge(entries)?), start, anchor),
            None => return Ok(()),
        };
        let node = Node {
            kind,
            span: Span::new(start, end.saturating_sub(start)),
        };
        self.finish(node, anchor)
    }

    /// A mapping's merge keys (`<<: *defaults`, or `<<: [*a, *b]`) become the entries they
    /// bring, where the `<<` stands: a key written in the mapping itself wins, and of two
    /// merged mappings the first wins. Merged entries keep the spans where they were written,
    /// so a diagnostic points at the anchored text.
    fn merge(&self, entries: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, YamlError> {
        let is_merge =
            |k: &Node| matches!(&k.kind, NodeKind::Scalar { text, plain: true } if text == "<<");
        if !entries.iter().any(|(k, _)| is_merge(k)) {
            return Ok(entries);
        }
        let written: Vec<String> = entries
            .iter()
            .filter(|(k, _)| !is_merge(k))
            .filter_map(|(k, _)| k.as_str().map(str::to_string))
            .collect();
        let mut merged: Vec<String> = Vec::new();
        let mut out = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            if !is_merge(&key) {
                out.push((key, value));
                continue;
            }
            let sources = match value.kind {
                NodeKind::Map(_) => vec![value],
                NodeKind::Seq(items)
                    if items.iter().all(|i| matches!(i.kind, NodeKind::Map(_))) =>
                {
                    items
                }
                _ => {
                    return Err(self.error(
                        value.span,
                        format!(
                            "a merge key (`<<`) takes a mapping or a list of mappings, found {}",
                            value.kind_name()
                        ),
                        "merge an anchored mapping: `<<: *defaults`",
                    ));
                }
            };
            for source in sources {
                let NodeKind::Map(brought) = source.kind else {
                    continue;
                };
                for (k, v) in brought {
                    let Some(name) = k.as_str().map(str::to_string) else {
                        continue;
                    };
                    if !written.contains(&name) && !merged.contains(&name) {
                        merged.push(name);
                        out.push((k, v));
                    }
                }
            }
        }
        Ok(out)
    }

    /// An alias: a copy of its anchor's node, counted in full against the size limit (alias
    /// bombs) and reported where the alias stands.
    fn alias(&mut self, id: usize, span: Span) -> Result<(), YamlError> {
        let Some(target) = self.anchors.get(&id) else {
            return Err(self.error(
                span,
                "an alias to an anchor that is not defined".into(),
                "define the anchor (`&name`) before the alias (`*name`)",
            ));
        };
        let size = node_count(target);
        let mut copy = target.clone();
        self.count(size, span)?;
        copy.span = span;
        self.finish(copy, 0)
    }

    fn open(&mut self, span: Span) -> Result<(), YamlError> {
        self.count(1, span)?;
        if self.stack.len() >= self.limits.max_depth {
            return Err(self.error(
                span,
                format!(
                    "the document nests deeper than {} levels",
                    self.limits.max_depth
                ),
                "a plan never needs this depth; flatten the structure",
            ));
        }
        Ok(())
    }

    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), YamlError> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    if !matches!(node.kind, NodeKind::Scalar { .. }) {
                        return Err(self.error(
                            node.span,
                            format!(
                                "a mapping key must be a plain name, found {}",
                                node.kind_name()
                            ),
                            "write keys as plain words, like `timeout:`",
                        ));
                    }
                    *key = Some(node);
                }
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(())
    }
}

/// Nodes in a subtree, for the alias budget.
fn node_count(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Scalar { .. } => 1,
        NodeKind::Seq(items) => 1 + items.iter().map(node_count).sum::<usize>(),
        NodeKind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| node_count(k) + node_count(v))
                .sum::<usize>()
        }
    }
}
