//! Node selectors on pools: which hosts may take blocks from a pool, by the labels of their node
//! record. A subset of Calico's syntax: `all()`, `has(k)`, `!has(k)`, `k == "v"`, `k != "v"`,
//! joined by `&&`. An empty selector means `all()`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{IpamError, Result};

/// One condition on a node's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Has(String),
    HasNot(String),
    Equals(String, String),
    Differs(String, String),
}

/// A parsed node selector; it keeps its source text so it round-trips unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    source: String,
    terms: Vec<Term>,
}

impl Selector {
    /// The selector that matches every host.
    pub fn all() -> Selector {
        Selector {
            source: "all()".into(),
            terms: Vec::new(),
        }
    }

    /// Whether a node with `labels` is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Has(k) => labels.contains_key(k),
            Term::HasNot(k) => !labels.contains_key(k),
            Term::Equals(k, v) => labels.get(k) == Some(v),
            Term::Differs(k, v) => labels.get(k) != Some(v),
        })
    }
}

impl Default for Selector {
    fn default() -> Selector {
        Selector::all()
    }
}

fn label_key(s: &str, whole: &str) -> Result<String> {
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if ok {
        Ok(s.to_string())
    } else {
        Err(IpamError::Invalid(format!(
            "selector {whole:?}: bad label key {s:?}"
        )))
    }
}

fn quoted(s: &str, whole: &str) -> Result<String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')));
    match inner {
        Some(v) if !v.contains(['"', '\'']) => Ok(v.to_string()),
        _ => Err(IpamError::Invalid(format!(
            "selector {whole:?}: expected a quoted value, got {s:?}"
        ))),
    }
}

fn term(t: &str, whole: &str) -> Result<Option<Term>> {
    let t = t.trim();
    if t == "all()" {
        return Ok(None);
    }
    if let Some(k) = t.strip_prefix("!has(").and_then(|r| r.strip_suffix(')')) {
        return Ok(Some(Term::HasNot(label_key(k.trim(), whole)?)));
    }
    if let Some(k) = t.strip_prefix("has(").and_then(|r| r.strip_suffix(')')) {
        return Ok(Some(Term::Has(label_key(k.trim(), whole)?)));
    }
    if let Some((k, v)) = t.split_once("!=") {
        return Ok(Some(Term::Differs(
            label_key(k.trim(), whole)?,
            quoted(v, whole)?,
        )));
    }
    if let Some((k, v)) = t.split_once("==") {
        return Ok(Some(Term::Equals(
            label_key(k.trim(), whole)?,
            quoted(v, whole)?,
        )));
    }
    Err(IpamError::Invalid(format!(
        "selector {whole:?}: cannot read {t:?}"
    )))
}

impl FromStr for Selector {
    type Err = IpamError;
    fn from_str(s: &str) -> Result<Selector> {
        if s.trim().is_empty() {
            return Ok(Selector::all());
        }
        let mut terms = Vec::new();
        for t in s.split("&&") {
            if let Some(t) = term(t, s)? {
                terms.push(t);
            }
        }
        Ok(Selector {
            source: s.trim().to_string(),
            terms,
        })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for Selector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_table() {
        let labels: BTreeMap<String, String> = [("rack", "r1"), ("zone", "a")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (sel, want) in [
            ("", Some(true)),
            ("all()", Some(true)),
            ("has(rack)", Some(true)),
            ("!has(rack)", Some(false)),
            ("rack == 'r1'", Some(true)),
            ("rack == \"r2\"", Some(false)),
            ("rack != 'r2' && zone == 'a'", Some(true)),
            ("rack == 'r1' && has(gpu)", Some(false)),
            ("rack = 'r1'", None),
            ("rack == r1", None),
            ("has()", None),
            ("bad key == 'x'", None),
        ] {
            let got = sel.parse::<Selector>().ok().map(|s| s.matches(&labels));
            assert_eq!(got, want, "{sel:?}");
        }
    }
}
