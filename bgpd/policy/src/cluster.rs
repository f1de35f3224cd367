//! Cluster-wide policies (Calico's GlobalNetworkPolicy): one policy per etcd key
//! `<root>/policies/<name>`, its value the policy as TOML in [`Policy::parse`]'s form — the keys
//! of one `[[policy]]` table, rules as `[[ingress]]` / `[[egress]]`. Pure: routectl writes the
//! keys, the daemon watches them; this module says what a value means and what is in force.
//!
//! What is in force on a host is its policy file's policies plus the cluster's, ordered
//! together by `order` then name. A cluster policy named like one of the file's is refused on
//! that host (the file, written for the host, wins). A value that does not parse leaves that
//! policy at its last good version, or out if it never had one: a bad write never opens or
//! closes anything by itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use crate::model::{
    ModelError, Name, Policy, PolicyFile, from_toml, invalid, second_name_line, unique_policy_names,
};

/// The directory of cluster policies under the fabric's etcd root.
pub const DIR: &str = "policies/";

/// The key prefix of every cluster policy: `<root>/policies/`.
pub fn prefix(root: &str) -> String {
    format!("{}/{DIR}", root.trim_end_matches('/'))
}

/// The key of one cluster policy: `<root>/policies/<name>`.
pub fn key(root: &str, name: &Name) -> String {
    format!("{}{name}", prefix(root))
}

/// A file of cluster policies, as `routectl policy apply --cluster` reads it: `[[policy]]`
/// tables only (settings and host endpoints belong to each host's own file).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// The policies.
    #[serde(default, rename = "policy")]
    pub policies: Vec<Policy>,
}

impl ClusterFile {
    /// Reads and validates a cluster policy file.
    pub fn load(path: &Path) -> Result<ClusterFile, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Read {
            path: path.display().to_string(),
            source,
        })?;
        ClusterFile::parse(&text, &path.display().to_string())
    }

    /// Parses and validates cluster policy TOML; `origin` names the input in errors.
    pub fn parse(text: &str, origin: &str) -> Result<ClusterFile, ModelError> {
        let file: ClusterFile = from_toml(text, origin)?;
        unique_policy_names(&file.policies).map_err(|(name, message)| {
            invalid(text, origin, second_name_line(text, &name), &message)
        })?;
        Ok(file)
    }
}

/// Why a stored value is not a usable cluster policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The part of the key after the prefix is not a policy name.
    #[error("{DIR}{key}: the key does not end in a policy name: {reason}")]
    Key {
        /// The key after the prefix.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The value is not UTF-8.
    #[error("{DIR}{key}: the value is not UTF-8 text: expected a policy in TOML")]
    NotText {
        /// The key after the prefix.
        key: String,
    },
    /// The value does not parse or validate (`policies/<name>:line:column: key …`).
    #[error("{0}")]
    Invalid(String),
    /// The policy inside names another policy than its key.
    #[error("{DIR}{key}: the policy is named {name:?}: expected the key's name {key:?}")]
    NameMismatch {
        /// The key after the prefix.
        key: String,
        /// The name in the value.
        name: String,
    },
}

/// Reads one stored value; `key` is the key after [`prefix`]. Never panics on any bytes.
pub fn parse_value(key: &str, value: &[u8]) -> Result<Policy, ValueError> {
    let name = Name::try_from(key).map_err(|reason| ValueError::Key {
        key: key.to_string(),
        reason,
    })?;
    let text = std::str::from_utf8(value).map_err(|_| ValueError::NotText {
        key: key.to_string(),
    })?;
    let policy = Policy::parse(text, &format!("{DIR}{key}"))
        .map_err(|e| ValueError::Invalid(e.to_string()))?;
    if policy.name != name {
        return Err(ValueError::NameMismatch {
            key: key.to_string(),
            name: policy.name.to_string(),
        });
    }
    Ok(policy)
}

/// Why a policy cannot be stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The serializer refused it.
    #[error("policy {name}: cannot be written as TOML: {reason}")]
    Toml {
        /// The policy.
        name: String,
        /// The serializer's message.
        reason: String,
    },
    /// What would be stored does not read back as the same policy.
    #[error("policy {name}: its stored form would not read back as the same policy: {reason}")]
    RoundTrip {
        /// The policy.
        name: String,
        /// What differs or fails.
        reason: String,
    },
}

/// The value to store for `policy`, checked to read back (as every host will read it) as the
/// very same policy.
pub fn value_of(policy: &Policy) -> Result<String, EncodeError> {
    let name = policy.name.to_string();
    let text = policy.to_toml().map_err(|e| EncodeError::Toml {
        name: name.clone(),
        reason: e.to_string(),
    })?;
    match parse_value(policy.name.as_str(), text.as_bytes()) {
        Ok(back) if &back == policy => Ok(text),
        Ok(back) => Err(EncodeError::RoundTrip {
            name,
            reason: format!("reads back as {back:?}"),
        }),
        Err(e) => Err(EncodeError::RoundTrip {
            name,
            reason: e.to_string(),
        }),
    }
}

/// The stored values by key (after the prefix), each read by [`parse_value`]: what a watch of
/// the prefix sees at one moment.
pub type Stored = BTreeMap<String, Result<Policy, ValueError>>;

/// What a new view changed for one key, for the log.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A new or changed policy is now the key's good version.
    Accepted(Name),
    /// The key's value was refused; `kept` says whether an earlier good version stays.
    Refused {
        /// The key after the prefix.
        key: String,
        /// Why.
        error: ValueError,
        /// True when the last good version stays in force.
        kept: bool,
    },
    /// The key was deleted.
    Removed(String),
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Entry {
    good: Option<Policy>,
    refused: Option<ValueError>,
}

/// The cluster policies a host holds: per key the last good version and the refusal of the
/// current value, if it was refused. It outlives re-lists of the prefix, so a value that goes
/// bad while the watch restarts still keeps its last good version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterPolicies {
    entries: BTreeMap<String, Entry>,
}

impl ClusterPolicies {
    /// Takes in the values stored now; returns what changed.
    pub fn update(&mut self, stored: &Stored) -> Vec<Change> {
        let mut changes = Vec::new();
        let gone: Vec<String> = self
            .entries
            .keys()
            .filter(|k| !stored.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            self.entries.remove(&key);
            changes.push(Change::Removed(key));
        }
        for (key, value) in stored {
            let entry = self.entries.entry(key.clone()).or_default();
            match value {
                Ok(policy) => {
                    if entry.good.as_ref() != Some(policy) || entry.refused.is_some() {
                        entry.good = Some(policy.clone());
                        entry.refused = None;
                        changes.push(Change::Accepted(policy.name.clone()));
                    }
                }
                Err(error) => {
                    if entry.refused.as_ref() != Some(error) {
                        entry.refused = Some(error.clone());
                        changes.push(Change::Refused {
                            key: key.clone(),
                            error: error.clone(),
                            kept: entry.good.is_some(),
                        });
                    }
                }
            }
        }
        changes
    }

    /// The good versions, by name.
    pub fn policies(&self) -> impl Iterator<Item = &Policy> {
        self.entries.values().filter_map(|e| e.good.as_ref())
    }

    /// Keys whose current value is refused, with why (their last good version, if any, is
    /// still among [`ClusterPolicies::policies`]).
    pub fn refused(&self) -> impl Iterator<Item = (&str, &ValueError)> {
        self.entries
            .iter()
            .filter_map(|(k, e)| e.refused.as_ref().map(|r| (k.as_str(), r)))
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The policies in force on a host: the file's and the cluster's, in one [`PolicyFile`] for
/// `compile`, and the cluster policies left out with why.
#[derive(Clone, Debug, PartialEq)]
pub struct Effective {
    /// The host's file (settings, host endpoints, policies) plus the cluster policies.
    pub file: PolicyFile,
    /// Cluster policies left out on this host, with the reason.
    pub left_out: Vec<(Name, String)>,
    cluster: BTreeSet<Name>,
}

impl Effective {
    /// The file's policies plus the cluster's good versions; a cluster policy named like one of
    /// the file's is left out (the file wins).
    pub fn merge(file: &PolicyFile, cluster: &ClusterPolicies) -> Effective {
        let local: BTreeSet<&Name> = file.policies.iter().map(|p| &p.name).collect();
        let mut merged = file.clone();
        let mut left_out = Vec::new();
        let mut names = BTreeSet::new();
        for p in cluster.policies() {
            if local.contains(&p.name) {
                left_out.push((
                    p.name.clone(),
                    "the host's policy file has a policy of this name, and the file wins"
                        .to_string(),
                ));
            } else {
                names.insert(p.name.clone());
                merged.policies.push(p.clone());
            }
        }
        Effective {
            file: merged,
            left_out,
            cluster: names,
        }
    }

    /// Leaves out cluster policy `name` (e.g. it names a pool this host does not have), so the
    /// rest can still be compiled. False when `name` is not a cluster policy in force: a
    /// problem of the host's own file is not ours to hide.
    pub fn leave_out(&mut self, name: &Name, reason: String) -> bool {
        if !self.cluster.remove(name) {
            return false;
        }
        self.file.policies.retain(|p| &p.name != name);
        self.left_out.push((name.clone(), reason));
        true
    }

    /// The cluster policies in force, by name.
    pub fn cluster_in_force(&self) -> impl Iterator<Item = &Name> {
        self.cluster.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DB: &str = "name = \"db\"\norder = 10\nselector = 'role == \"db\"'\n\n\
                      [[ingress]]\naction = \"allow\"\nprotocol = \"tcp\"\n\
                      destination = { ports = [5432] }\n";

    fn stored(pairs: &[(&str, &[u8])]) -> Stored {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), parse_value(k, v)))
            .collect()
    }

    #[test]
    fn keys_live_under_the_root() {
        let name = Name::try_from("db").unwrap();
        assert_eq!(prefix("/fabric/v1"), "/fabric/v1/policies/");
        assert_eq!(prefix("/fabric/v1/"), "/fabric/v1/policies/");
        assert_eq!(key("/fabric/v1", &name), "/fabric/v1/policies/db");
    }

    #[test]
    fn a_policy_round_trips_through_its_stored_form() {
        let file = PolicyFile::parse(
            "[[policy]]\nname = \"db\"\norder = 2.5\nselector = 'role == \"db\" && !has(x)'\n\
             [[policy.ingress]]\naction = \"allow\"\nprotocol = \"tcp\"\nip_version = 4\n\
             source = { selector = 'role == \"web\"', nets = [\"10.1.2.3/16\"], not_nets = [\"10.1.9.0/24\"], pools = [\"p\"] }\n\
             destination = { ports = [5432, \"6000:6010\"], not_ports = [6005], not_selector = 'q == \"y\"' }\n\
             [[policy.ingress]]\naction = \"log\"\n\
             [[policy.egress]]\naction = \"deny\"\nprotocol = \"icmpv6\"\nicmp = { type = 128, code = 0 }\n\
             [[policy]]\nname = \"plain\"\nselector = 'all()'\n",
            "p.toml",
        )
        .unwrap();
        for p in &file.policies {
            let text = value_of(p).unwrap_or_else(|e| panic!("{e}"));
            let back = parse_value(p.name.as_str(), text.as_bytes())
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(&back, p, "{text}");
            // JSON of the same serde form reads back too.
            let json = serde_json::to_string(p).unwrap();
            assert_eq!(&serde_json::from_str::<Policy>(&json).unwrap(), p, "{json}");
        }
    }

    #[test]
    fn bad_values_are_refused_with_where_and_why() {
        let cases: &[(&str, &[u8], &str)] = &[
            ("db", b"\xff\xfe", "policies/db: the value is not UTF-8"),
            (
                "db",
                b"name = \"db\"\nselector = 'role = \"db\"'\n",
                "policies/db:2:12: key `selector`",
            ),
            (
                "db",
                b"name = \"db\"\nselector = 'all()'\ncolour = 1\n",
                "policies/db:3:1: unknown field `colour`",
            ),
            (
                "db",
                b"name = \"web\"\nselector = 'all()'\n",
                "is named \"web\": expected the key's name \"db\"",
            ),
            (
                "a/b",
                DB.as_bytes(),
                "policies/a/b: the key does not end in a policy name",
            ),
            (
                "db",
                b"[[policy]]\nname = \"db\"\nselector = 'all()'\n",
                "unknown field `policy`",
            ),
            ("db", b"", "missing field `name`"),
        ];
        for (key, value, want) in cases {
            let e = parse_value(key, value).expect_err(want).to_string();
            assert!(e.contains(want), "got: {e}\nwant: {want}");
        }
    }

    #[test]
    fn a_cluster_file_holds_policies_only() {
        let in_file = format!(
            "[[policy]]\n{}",
            DB.replace("[[ingress]]", "[[policy.ingress]]")
        );
        let ok = ClusterFile::parse(&in_file, "c.toml");
        assert!(ok.is_ok(), "{ok:?}");
        let cases = [
            (
                "[settings]\ntable = \"x\"\n",
                "c.toml:1:2: unknown field `settings`, expected `policy`",
            ),
            (
                "[[policy]]\nname = \"a\"\nselector = 'all()'\n[[policy]]\nname = \"a\"\nselector = 'all()'\n",
                "c.toml:5:8: key `name`: duplicate policy name \"a\"",
            ),
            (
                "[[policy]]\nname = \"a\"\nselector = 'all()'\n[[policy.ingress]]\naction = \"alow\"\n",
                "c.toml:5:10: key `action`: unknown variant `alow`",
            ),
        ];
        for (text, want) in cases {
            let e = ClusterFile::parse(text, "c.toml")
                .expect_err(text)
                .to_string();
            assert!(e.contains(want), "got: {e}\nwant: {want}");
        }
    }

    #[test]
    fn a_refused_value_keeps_the_last_good_version_until_deleted() {
        let mut held = ClusterPolicies::default();
        let changes = held.update(&stored(&[("db", DB.as_bytes())]));
        assert_eq!(
            changes,
            vec![Change::Accepted(Name::try_from("db").unwrap())]
        );
        let good: Vec<Policy> = held.policies().cloned().collect();

        // Garbage over a good version: the good one stays, the refusal is reported once.
        let garbage = stored(&[("db", b"{not toml"), ("new", b"name = \"new\"\n")]);
        let changes = held.update(&garbage);
        assert!(
            matches!(&changes[..], [Change::Refused { key: a, kept: true, .. }, Change::Refused { key: b, kept: false, .. }] if a == "db" && b == "new"),
            "{changes:?}"
        );
        assert_eq!(held.policies().cloned().collect::<Vec<_>>(), good);
        assert_eq!(held.refused().count(), 2);
        assert!(
            held.update(&garbage).is_empty(),
            "nothing new, nothing logged"
        );

        // A re-list after a watch restart sees the same garbage: still the good version.
        let mut relisted = held.clone();
        assert!(relisted.update(&garbage).is_empty());
        assert_eq!(relisted.policies().count(), 1);

        // A good value replaces the refusal; a deletion removes the key.
        let changes = held.update(&stored(&[("db", DB.as_bytes())]));
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(held.refused().count(), 0);
        assert_eq!(
            held.update(&Stored::new()),
            vec![Change::Removed("db".into())]
        );
        assert!(held.is_empty());
    }

    #[test]
    fn the_file_wins_a_name_clash_and_order_spans_both() {
        let file = PolicyFile::parse(
            "[[policy]]\nname = \"db\"\norder = 5\nselector = 'all()'\n\
             [[policy]]\nname = \"local\"\norder = 20\nselector = 'all()'\n",
            "f.toml",
        )
        .unwrap();
        let mut held = ClusterPolicies::default();
        held.update(&stored(&[
            ("db", DB.as_bytes()),
            (
                "early",
                b"name = \"early\"\norder = 1\nselector = 'all()'\n",
            ),
        ]));
        let mut effective = Effective::merge(&file, &held);
        let names: Vec<&str> = effective
            .file
            .policies
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["db", "local", "early"]);
        assert_eq!(effective.file.policies[0].order, Some(5.0), "the file's db");
        assert_eq!(effective.left_out.len(), 1);
        assert_eq!(effective.left_out[0].0.as_str(), "db");
        let early = Name::try_from("early").unwrap();
        assert_eq!(effective.cluster_in_force().collect::<Vec<_>>(), [&early]);

        let plans = crate::plan(&crate::Inputs {
            file: &effective.file,
            workloads: &[crate::WorkloadEndpoint {
                interface: "cali-1".try_into().unwrap(),
                ips: vec!["10.0.0.1".parse().unwrap()],
                labels: Default::default(),
            }],
            remote: &[],
            pools: &[],
        })
        .unwrap();
        let order: Vec<&str> = plans[0].policies.iter().map(Name::as_str).collect();
        assert_eq!(
            order,
            ["early", "db", "local"],
            "one order across file and cluster"
        );

        // A file policy is never left out on a cluster policy's account.
        assert!(!effective.leave_out(&Name::try_from("local").unwrap(), "x".into()));
        assert!(effective.leave_out(&early, "unknown pool".into()));
        assert_eq!(effective.file.policies.len(), 2);
        assert_eq!(effective.cluster_in_force().count(), 0);
    }
}
