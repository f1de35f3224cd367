//! Counter readback: `nft -j list table` output → counters per policy rule and endpoint.
//!
//! Rules carry a comment naming what they belong to (see [`mod@crate::compile`]); verdict-map
//! elements carry the same comment and a counter each. Counters with one owner (a rule split by
//! address family, a rule that became many map elements) are summed.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::model::Direction;

/// What a counter counts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CounterOwner {
    /// A policy rule: `policy <name> <direction> rule <index>`.
    Rule {
        /// Policy name.
        policy: String,
        /// Ingress or egress list.
        direction: Direction,
        /// Index in that list, from 0.
        index: usize,
    },
    /// An endpoint's default deny: `<workload|host> <name> <direction> default deny`.
    DefaultDeny {
        /// `workload <interface>` or `host <name>`.
        endpoint: String,
        /// Direction.
        direction: Direction,
    },
    /// A fixed rule of the table: `established`, `invalid`, `failsafe inbound`, `nat-outgoing`…
    Fixed {
        /// The rule's comment.
        comment: String,
    },
}

/// Prints the comment the counter carries in the table.
impl fmt::Display for CounterOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CounterOwner::Rule {
                policy,
                direction,
                index,
            } => f.write_str(&crate::compile::comment::rule(policy, *direction, *index)),
            CounterOwner::DefaultDeny {
                endpoint,
                direction,
            } => f.write_str(&crate::compile::comment::default_deny(endpoint, *direction)),
            CounterOwner::Fixed { comment } => f.write_str(comment),
        }
    }
}

impl CounterOwner {
    /// Reads a rule or element comment.
    pub fn from_comment(comment: &str) -> CounterOwner {
        let words: Vec<&str> = comment.split(' ').collect();
        let dir = |w: &str| match w {
            "ingress" => Some(Direction::Ingress),
            "egress" => Some(Direction::Egress),
            _ => None,
        };
        match words.as_slice() {
            ["policy", name, d, "rule", n] => {
                if let (Some(direction), Ok(index)) = (dir(d), n.parse()) {
                    return CounterOwner::Rule {
                        policy: (*name).to_string(),
                        direction,
                        index,
                    };
                }
            }
            [kind @ ("workload" | "host"), name, d, "default", "deny"] => {
                if let Some(direction) = dir(d) {
                    return CounterOwner::DefaultDeny {
                        endpoint: format!("{kind} {name}"),
                        direction,
                    };
                }
            }
            _ => {}
        }
        CounterOwner::Fixed {
            comment: comment.to_string(),
        }
    }
}

/// Packets and bytes counted for one owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Counter {
    /// What is counted.
    pub owner: CounterOwner,
    /// Packets matched.
    pub packets: u64,
    /// Bytes matched.
    pub bytes: u64,
    /// Handles of the nftables rules that carry this counter (none for map elements).
    pub handles: Vec<u64>,
    /// How many verdict-map elements carry this counter.
    pub elements: usize,
}

/// The JSON did not have the shape `nft -j` produces.
#[derive(Debug, thiserror::Error)]
#[error("unexpected nft JSON: {0}")]
pub struct CounterError(String);

/// Parses `nft -j list table …` output into counters, sorted by owner.
pub fn parse(json: &str) -> Result<Vec<Counter>, CounterError> {
    let doc: Value = serde_json::from_str(json).map_err(|e| CounterError(e.to_string()))?;
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or_else(|| CounterError("no \"nftables\" array".to_string()))?;
    let mut by_owner: BTreeMap<CounterOwner, Counter> = BTreeMap::new();
    let mut add = |comment: &str, c: &Value, handle: Option<u64>| {
        let owner = CounterOwner::from_comment(comment);
        let entry = by_owner.entry(owner.clone()).or_insert(Counter {
            owner,
            packets: 0,
            bytes: 0,
            handles: Vec::new(),
            elements: 0,
        });
        entry.packets += c.get("packets").and_then(Value::as_u64).unwrap_or(0);
        entry.bytes += c.get("bytes").and_then(Value::as_u64).unwrap_or(0);
        match handle {
            Some(h) => entry.handles.push(h),
            None => entry.elements += 1,
        }
    };
    for item in items {
        if let Some(rule) = item.get("rule") {
            let comment = rule.get("comment").and_then(Value::as_str);
            let counter = rule
                .get("expr")
                .and_then(Value::as_array)
                .and_then(|exprs| exprs.iter().find_map(|e| e.get("counter")));
            if let (Some(comment), Some(counter)) = (comment, counter) {
                add(comment, counter, rule.get("handle").and_then(Value::as_u64));
            }
        } else if let Some(map) = item.get("map").or_else(|| item.get("set")) {
            if let Some(elems) = map.get("elem") {
                walk_elements(elems, &mut |comment, counter| add(comment, counter, None));
            }
        }
    }
    Ok(by_owner.into_values().collect())
}

/// Finds every `{"elem": {…, "counter": …, "comment": …}}` however deeply a map nests it.
fn walk_elements(v: &Value, found: &mut impl FnMut(&str, &Value)) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| walk_elements(i, found)),
        Value::Object(obj) => {
            if let (Some(comment), Some(counter)) = (
                obj.get("comment").and_then(Value::as_str),
                obj.get("counter"),
            ) {
                found(comment, counter);
            } else if let Some(inner) = obj.get("elem") {
                walk_elements(inner, found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_parse_back() {
        let cases = [
            (
                "policy web ingress rule 3",
                CounterOwner::Rule {
                    policy: "web".into(),
                    direction: Direction::Ingress,
                    index: 3,
                },
            ),
            (
                "workload cali1 egress default deny",
                CounterOwner::DefaultDeny {
                    endpoint: "workload cali1".into(),
                    direction: Direction::Egress,
                },
            ),
            (
                "established",
                CounterOwner::Fixed {
                    comment: "established".into(),
                },
            ),
            (
                "policy web sideways rule 3",
                CounterOwner::Fixed {
                    comment: "policy web sideways rule 3".into(),
                },
            ),
        ];
        for (comment, want) in cases {
            assert_eq!(CounterOwner::from_comment(comment), want, "{comment}");
            assert_eq!(want.to_string(), comment, "Display gives the comment back");
        }
        let json = serde_json::to_value(CounterOwner::from_comment("policy web egress rule 1"));
        assert_eq!(
            json.unwrap(),
            serde_json::json!({"kind": "rule", "policy": "web", "direction": "egress", "index": 1})
        );
    }

    #[test]
    fn rules_and_map_elements_are_summed_per_owner() {
        let json = r#"{"nftables": [
          {"metainfo": {"version": "1.0.6"}},
          {"map": {"family": "inet", "name": "rules0", "table": "t", "elem": [
            [{"elem": {"val": {"concat": [{"prefix": {"addr": "10.0.0.0", "len": 24}}, 80]},
                       "counter": {"packets": 2, "bytes": 120}, "comment": "policy p ingress rule 0"}},
             {"accept": null}],
            [{"elem": {"val": {"concat": [{"prefix": {"addr": "10.0.1.0", "len": 24}}, 80]},
                       "counter": {"packets": 3, "bytes": 180}, "comment": "policy p ingress rule 0"}},
             {"drop": null}]]}},
          {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 7, "comment": "policy p ingress rule 1",
                    "expr": [{"counter": {"packets": 5, "bytes": 500}}, {"accept": null}]}},
          {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 8,
                    "expr": [{"jump": {"target": "x"}}]}}
        ]}"#;
        let counters = parse(json).unwrap();
        assert_eq!(counters.len(), 2, "{counters:?}");
        assert_eq!(
            (counters[0].packets, counters[0].bytes, counters[0].elements),
            (5, 300, 2)
        );
        assert_eq!(
            (counters[1].packets, counters[1].handles.clone()),
            (5, vec![7])
        );
        assert!(parse("{}").is_err());
        assert!(parse("not json").is_err());
    }
}
