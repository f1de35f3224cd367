//! Validated names: hosts, handles and pools become parts of etcd keys, so they may not hold `/`;
//! pool names follow bgpd's config rule.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{IpamError, Result};

/// Checks a name that becomes one etcd key segment.
fn validate(kind: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.len() > 253 {
        return Err(IpamError::Invalid(format!(
            "{kind} name must be 1..=253 bytes, got {}",
            s.len()
        )));
    }
    if s.chars()
        .any(|c| c == '/' || c.is_control() || c.is_whitespace())
    {
        return Err(IpamError::Invalid(format!(
            "{kind} name {s:?} may not contain '/', whitespace or control characters"
        )));
    }
    Ok(())
}

/// Pool names follow bgpd's config rule (a lowercase DNS name), so a pool made by routectl is
/// one a config can name.
fn check_pool_name(s: &str) -> Result<()> {
    if bgpd_config::NodeName::is_valid(s) {
        Ok(())
    } else {
        Err(IpamError::Invalid(format!(
            "pool name {s:?}: expected {}",
            bgpd_config::NodeName::RULE
        )))
    }
}

macro_rules! key_name {
    ($(#[$doc:meta])* $name:ident, $kind:literal $(, $rule:path)?) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `s` as a name of this kind.
            pub fn new(s: impl Into<String>) -> Result<Self> {
                let s = s.into();
                // A kind's own rule first: it is the narrower one and says what is expected.
                $($rule(&s)?;)?
                validate($kind, &s)?;
                Ok(Self(s))
            }

            /// The name as stored.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IpamError;
            fn try_from(s: String) -> Result<Self> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

key_name!(
    /// A host (node) name, as the daemon registers it.
    HostName,
    "host"
);
key_name!(
    /// One container attachment, e.g. `<container id>.<interface>`; owns its addresses.
    HandleId,
    "handle"
);
key_name!(
    /// An IP pool's name: a lowercase DNS name, as in bgpd's config.
    PoolName,
    "pool",
    check_pool_name
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reject_what_breaks_keys() {
        for (s, ok) in [
            ("node-1", true),
            ("abc.eth0", true),
            ("", false),
            ("a/b", false),
            ("a b", false),
            ("a\nb", false),
        ] {
            assert_eq!(HostName::new(s).is_ok(), ok, "{s:?}");
        }
        assert!(HandleId::new("x".repeat(254)).is_err());
        assert!(serde_json::from_str::<PoolName>("\"p/1\"").is_err());
        for (s, ok) in [
            ("rack-1.v4", true),
            ("Upper", false),
            ("a_b", false),
            ("-a", false),
        ] {
            assert_eq!(PoolName::new(s).is_ok(), ok, "{s:?}");
        }
    }
}
