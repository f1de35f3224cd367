//! Mapping between byte offsets, key paths and line:column in the TOML text.

use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A key as a path from the top of the document, shown as `bgp.peers[1].asn`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(pub(crate) Vec<Step>);

impl KeyPath {
    /// The path of nested table keys `keys`.
    pub(crate) fn of(keys: &[&str]) -> KeyPath {
        KeyPath(keys.iter().map(|k| Step::Key((*k).to_string())).collect())
    }

    /// This path extended by `key`.
    pub(crate) fn key(&self, key: &str) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Step::Key(key.to_string()));
        p
    }

    /// This path extended by array index `i`.
    pub(crate) fn index(&self, i: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Step::Index(i));
        p
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    // As TOML writes it: a key that is not bare is quoted.
                    let bare = !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if bare {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The innermost key whose key or value covers byte `offset`; the top when none does.
pub(crate) fn path_at(text: &str, offset: usize) -> KeyPath {
    // Recoverable parsing still yields the keys before (and around) a syntax error.
    let (doc, _) = DeTable::parse_recoverable(text);
    let mut path = KeyPath::default();
    descend_table(doc.get_ref(), offset, &mut path);
    if path.0.is_empty() && offset > 0 {
        // A syntax error is often reported just past the value it broke (an unterminated
        // string ends at the line's end): attribute it to what ends there.
        descend_table(doc.get_ref(), offset - 1, &mut path);
    }
    if path.0.is_empty() {
        // The recovered document leaves out what it refused, such as a key given twice.
        path = path_of_line(text, doc.get_ref(), offset);
    }
    path
}

/// The key written on the line of `offset`, below the table whose header precedes it.
fn path_of_line(text: &str, doc: &DeTable<'_>, offset: usize) -> KeyPath {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[start..end];
    let (written, _) = DeTable::parse_recoverable(line);
    let mut key = KeyPath::default();
    first_key(line, written.get_ref(), &mut key);
    if key.0.is_empty() || line.trim_start().starts_with('[') {
        // A table header names its table from the top.
        return key;
    }
    let mut headers = Vec::new();
    collect_headers(text, doc, &KeyPath::default(), &mut headers);
    let mut path = headers
        .into_iter()
        .filter(|(at, _)| *at <= offset)
        .max_by_key(|(at, path)| (*at, path.0.len()))
        .map(|(_, path)| path)
        .unwrap_or_default();
    path.0.extend(key.0);
    path
}

/// The first key of `table` parsed from `line`, followed through dotted keys (`a.b = 1`).
fn first_key(line: &str, table: &DeTable<'_>, path: &mut KeyPath) {
    let Some((key, value)) = table.iter().next() else {
        return;
    };
    path.0.push(Step::Key(key.get_ref().to_string()));
    let inline = line.get(value.span()).is_some_and(|v| v.starts_with('{'));
    if let (DeValue::Table(t), false) = (value.get_ref(), inline) {
        first_key(line, t, path);
    }
}

/// Every table that has its own header (`[a.b]`, `[[a.c]]`): where the header starts, and the
/// table's path.
fn collect_headers(
    text: &str,
    table: &DeTable<'_>,
    at: &KeyPath,
    headers: &mut Vec<(usize, KeyPath)>,
) {
    let is_header = |span: Range<usize>| {
        let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
        text.get(span.start..).is_some_and(|t| t.starts_with('['))
            && text[line_start..span.start].trim().is_empty()
    };
    for (key, value) in table {
        let here = at.key(key.get_ref());
        match value.get_ref() {
            DeValue::Table(t) => {
                if is_header(value.span()) {
                    headers.push((value.span().start, here.clone()));
                }
                collect_headers(text, t, &here, headers);
            }
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let DeValue::Table(t) = item.get_ref() {
                        if is_header(item.span()) {
                            headers.push((item.span().start, here.index(i)));
                        }
                        collect_headers(text, t, &here.index(i), headers);
                    }
                }
            }
            _ => {}
        }
    }
}

fn covers(span: &Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

fn descend_table(table: &DeTable<'_>, offset: usize, path: &mut KeyPath) {
    for (key, value) in table {
        if covers(&key.span(), offset) {
            path.0.push(Step::Key(key.get_ref().to_string()));
            return;
        }
        if covers(&value.span(), offset) || contains(value.get_ref(), offset) {
            path.0.push(Step::Key(key.get_ref().to_string()));
            descend_value(value.get_ref(), offset, path);
            return;
        }
    }
}

fn descend_value(value: &DeValue<'_>, offset: usize, path: &mut KeyPath) {
    match value {
        DeValue::Table(t) => descend_table(t, offset, path),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if covers(&item.span(), offset) || contains(item.get_ref(), offset) {
                    path.0.push(Step::Index(i));
                    descend_value(item.get_ref(), offset, path);
                    return;
                }
            }
        }
        _ => {}
    }
}

/// Whether anything nested in `value` covers `offset`: a table's own span may be only its
/// header, while its keys sit on later lines.
fn contains(value: &DeValue<'_>, offset: usize) -> bool {
    match value {
        DeValue::Table(t) => t.iter().any(|(k, v)| {
            covers(&k.span(), offset) || covers(&v.span(), offset) || contains(v.get_ref(), offset)
        }),
        DeValue::Array(items) => items
            .iter()
            .any(|v| covers(&v.span(), offset) || contains(v.get_ref(), offset)),
        _ => false,
    }
}

/// The span of the value at `path` (or of the deepest part of it that exists).
pub(crate) fn span_of(text: &str, path: &KeyPath) -> Option<Range<usize>> {
    let doc = DeTable::parse(text).ok()?;
    let mut best: Option<Range<usize>> = None;
    let mut table: Option<&DeTable<'_>> = Some(doc.get_ref());
    let mut array: Option<&[_]> = None;
    for step in &path.0 {
        let next = match (step, table, array) {
            (Step::Key(k), Some(t), _) => t.get(k.as_str()),
            (Step::Index(i), _, Some(a)) => a.get(*i),
            _ => None,
        };
        let Some(value) = next else { break };
        best = Some(value.span());
        table = None;
        array = None;
        match value.get_ref() {
            DeValue::Table(t) => table = Some(t),
            DeValue::Array(a) => array = Some(a.as_ref()),
            _ => {}
        }
    }
    best
}
