//! Endpoint labels and the rules they follow: Kubernetes' label syntax, so pod labels carry over
//! unchanged and every label is something a policy selector can name.
//!
//! - key: `[prefix/]name`; `name` 1–63 characters, letters, digits, `-`, `_`, `.`, beginning
//!   and ending with a letter or digit; `prefix` a DNS subdomain of at most 253 characters
//!   (lowercase letters, digits, `-`, `.`; each dot-separated part begins and ends with a letter
//!   or digit);
//! - value: empty, or 1–63 characters with the same rule as a key's `name`.

use std::collections::BTreeMap;

/// Labels of an endpoint: key → value (the same map as `bgpd_config::Labels`).
pub type Labels = BTreeMap<String, String>;

/// The longest label name and value.
pub const MAX_NAME: usize = 63;
/// The longest key prefix (a DNS subdomain).
pub const MAX_PREFIX: usize = 253;

/// A label that breaks the rules; names the label and says which rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label {key:?}: {reason}")]
pub struct LabelError {
    /// The label's key as given.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Checks one label.
pub fn check_label(key: &str, value: &str) -> Result<(), LabelError> {
    let fail = |reason: String| LabelError {
        key: key.to_string(),
        reason,
    };
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        check_prefix(prefix).map_err(|r| fail(format!("key prefix {prefix:?}: {r}")))?;
    }
    if name.is_empty() {
        return Err(fail("the key's name part is empty".into()));
    }
    check_name(name).map_err(|r| fail(format!("key name {name:?}: {r}")))?;
    if !value.is_empty() {
        check_name(value).map_err(|r| fail(format!("value {value:?}: {r}")))?;
    }
    Ok(())
}

/// Checks every label of a set; the error names the first bad one.
pub fn check_labels(labels: &Labels) -> Result<(), LabelError> {
    labels.iter().try_for_each(|(k, v)| check_label(k, v))
}

/// Parses `key=value` (as on the command line) and checks it.
pub fn parse_label(text: &str) -> Result<(String, String), LabelError> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(LabelError {
            key: text.to_string(),
            reason: "expected key=value".into(),
        });
    };
    check_label(key, value)?;
    Ok((key.to_string(), value.to_string()))
}

fn alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// A key's name part or a non-empty value.
fn check_name(s: &str) -> Result<(), String> {
    if s.len() > MAX_NAME {
        return Err(format!("longer than {MAX_NAME} characters"));
    }
    if let Some(c) = s
        .chars()
        .find(|&c| !(alnum(c) || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "{c:?} is not allowed (letters, digits, '-', '_' and '.' are)"
        ));
    }
    if !s.starts_with(alnum) || !s.ends_with(alnum) {
        return Err("must begin and end with a letter or digit".into());
    }
    Ok(())
}

/// A key's prefix: a DNS subdomain.
fn check_prefix(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty".into());
    }
    if s.len() > MAX_PREFIX {
        return Err(format!("longer than {MAX_PREFIX} characters"));
    }
    for part in s.split('.') {
        let lower = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        if part.is_empty()
            || !part.chars().all(|c| lower(c) || c == '-')
            || !part.starts_with(lower)
            || !part.ends_with(lower)
        {
            return Err("must be a DNS subdomain (lowercase letters, digits, '-' and '.')".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_labels_pass() {
        for (k, v) in [
            ("role", "db"),
            ("app.kubernetes.io/name", "my-app_1.2"),
            ("fabric.io/namespace", "kube-system"),
            ("a", ""),
            ("A_b-c.D", "X"),
            ("x", &"v".repeat(63)),
            (&format!("{}/n", "p".repeat(253)), "v"),
            (&"k".repeat(63), "v"),
        ] {
            assert_eq!(check_label(k, v), Ok(()), "{k}={v}");
        }
    }

    #[test]
    fn bad_labels_name_the_key_and_the_rule() {
        for (k, v, says) in [
            ("", "v", "name part is empty"),
            ("/role", "v", "prefix \"\""),
            ("Fabric.io/x", "v", "DNS subdomain"),
            ("a..b/x", "v", "DNS subdomain"),
            ("-a.io/x", "v", "DNS subdomain"),
            ("a/b/c", "v", "key name \"b/c\""),
            ("x/", "v", "name part is empty"),
            ("-role", "v", "begin and end"),
            ("role_", "v", "begin and end"),
            ("ro le", "v", "' ' is not allowed"),
            ("rôle", "v", "'ô' is not allowed"),
            ("role", "d b", "value \"d b\""),
            ("role", "db-", "begin and end"),
            ("role", "\"db\"", "not allowed"),
            (&"k".repeat(64), "v", "longer than 63"),
            ("role", &"v".repeat(64), "longer than 63"),
            (&format!("{}/n", "p".repeat(254)), "v", "longer than 253"),
        ] {
            let e = check_label(k, v).unwrap_err();
            assert_eq!(e.key, k);
            assert!(e.to_string().contains(says), "{k}={v}: {e}");
            assert!(e.to_string().starts_with(&format!("label {k:?}")), "{e}");
        }
    }

    #[test]
    fn command_line_labels() {
        assert_eq!(parse_label("role=db"), Ok(("role".into(), "db".into())));
        assert_eq!(parse_label("empty="), Ok(("empty".into(), String::new())));
        assert_eq!(
            parse_label("a=b=c").unwrap_err().reason,
            "value \"b=c\": '=' is not allowed (letters, digits, '-', '_' and '.' are)"
        );
        assert_eq!(
            parse_label("role").unwrap_err().reason,
            "expected key=value"
        );
        let set: Labels = [
            ("ok".to_string(), "1".to_string()),
            ("b d".into(), "2".into()),
        ]
        .into_iter()
        .collect();
        assert_eq!(check_labels(&set).unwrap_err().key, "b d");
    }
}
