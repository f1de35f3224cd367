//! The consistency check (like `calicoctl ipam check`) and its repair.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::Serialize;

use crate::block::BlockCidr;
use crate::client::{Ipam, now_ms};
use crate::error::Result;
use crate::names::{HandleId, HostName, PoolName};
use crate::retry::Retry;
use crate::snapshot::Snapshot;
use crate::store::{Store, Txn};

/// One inconsistency found in the datastore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A block gives an address to a handle that does not exist or does not list it (leak).
    IpWithoutHandle {
        /// The address.
        ip: IpAddr,
        /// Its block.
        block: BlockCidr,
        /// The handle the block names.
        handle: HandleId,
    },
    /// A handle lists an address its block does not give it.
    HandleIpMissing {
        /// The handle.
        handle: HandleId,
        /// The address.
        ip: IpAddr,
    },
    /// A block is affine to a host with no node record (GC reclaims it after its delay).
    BlockHostGone {
        /// The block.
        block: BlockCidr,
        /// The host.
        host: HostName,
    },
    /// A handle belongs to a host with no node record (GC releases it after its delay).
    HandleHostGone {
        /// The handle.
        handle: HandleId,
        /// The host.
        host: HostName,
    },
    /// Two blocks share addresses.
    BlocksOverlap {
        /// One block.
        block: BlockCidr,
        /// The other.
        other: BlockCidr,
    },
    /// Two pools share addresses.
    PoolsOverlap {
        /// One pool.
        pool: PoolName,
        /// The other.
        other: PoolName,
    },
    /// A block lies in no pool (its pool was deleted).
    BlockOutsidePool {
        /// The block.
        block: BlockCidr,
        /// Addresses still assigned in it.
        used: usize,
    },
    /// An affinity key names a block that is missing or affine to someone else.
    AffinityWithoutBlock {
        /// The host of the key.
        host: HostName,
        /// The block it names.
        block: BlockCidr,
    },
    /// A block names a host whose affinity key is missing.
    BlockAffinityMissing {
        /// The block.
        block: BlockCidr,
        /// The host it names.
        host: HostName,
    },
    /// A key whose name or value cannot be read.
    Corrupt {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
}

impl Finding {
    /// Whether `repair` fixes this kind (hosts gone are GC's, after its safety delay; corrupt
    /// values and overlapping pools need a person).
    pub fn repairable(&self) -> bool {
        match self {
            Finding::IpWithoutHandle { .. }
            | Finding::HandleIpMissing { .. }
            | Finding::AffinityWithoutBlock { .. }
            | Finding::BlockAffinityMissing { .. }
            | Finding::BlocksOverlap { .. } => true,
            Finding::BlockOutsidePool { used, .. } => *used == 0,
            Finding::BlockHostGone { .. }
            | Finding::HandleHostGone { .. }
            | Finding::PoolsOverlap { .. }
            | Finding::Corrupt { .. } => false,
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::IpWithoutHandle { ip, block, handle } => write!(
                f,
                "{ip} in {block} is held for handle {handle}, which does not list it (leak)"
            ),
            Finding::HandleIpMissing { handle, ip } => {
                write!(
                    f,
                    "handle {handle} lists {ip}, which its block does not give it"
                )
            }
            Finding::BlockHostGone { block, host } => {
                write!(
                    f,
                    "block {block} is affine to {host}, which has no node record"
                )
            }
            Finding::HandleHostGone { handle, host } => {
                write!(
                    f,
                    "handle {handle} belongs to {host}, which has no node record"
                )
            }
            Finding::BlocksOverlap { block, other } => {
                write!(f, "blocks {block} and {other} overlap")
            }
            Finding::PoolsOverlap { pool, other } => write!(f, "pools {pool} and {other} overlap"),
            Finding::BlockOutsidePool { block, used } => {
                write!(f, "block {block} ({used} in use) lies in no pool")
            }
            Finding::AffinityWithoutBlock { host, block } => {
                write!(
                    f,
                    "{host} has an affinity to {block}, which is not its block"
                )
            }
            Finding::BlockAffinityMissing { block, host } => {
                write!(
                    f,
                    "block {block} names {host}, whose affinity key is missing"
                )
            }
            Finding::Corrupt { key, reason } => write!(f, "{key}: unreadable: {reason}"),
        }
    }
}

/// The result of a check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Blocks seen.
    pub blocks: usize,
    /// Handles seen.
    pub handles: usize,
    /// Addresses assigned in blocks.
    pub assigned: usize,
    /// What is wrong.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Nothing wrong.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// What a repair did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Repair {
    /// Findings fixed.
    pub fixed: Vec<Finding>,
    /// The check after repairing.
    pub after: Report,
}

/// Checks one snapshot.
pub(crate) fn check(s: &Snapshot) -> Report {
    let mut f = Vec::new();
    for (key, reason) in &s.corrupt {
        f.push(Finding::Corrupt {
            key: key.clone(),
            reason: reason.clone(),
        });
    }
    for (cidr, b) in &s.blocks {
        for (&off, handle) in &b.allocations {
            let Some(ip) = cidr.ip_at(off) else {
                f.push(Finding::Corrupt {
                    key: cidr.to_string(),
                    reason: format!("offset {off} outside the block"),
                });
                continue;
            };
            if s.unreadable_handles.contains(handle) {
                continue;
            }
            let listed = s
                .handles
                .get(handle)
                .is_some_and(|h| h.ips.iter().any(|i| i.ip == ip && i.block == *cidr));
            if !listed {
                f.push(Finding::IpWithoutHandle {
                    ip,
                    block: *cidr,
                    handle: handle.clone(),
                });
            }
        }
        if let Some(host) = &b.affinity {
            if !s.nodes.contains_key(host) {
                f.push(Finding::BlockHostGone {
                    block: *cidr,
                    host: host.clone(),
                });
            }
            if !s.affinities.contains_key(&(host.clone(), *cidr)) {
                f.push(Finding::BlockAffinityMissing {
                    block: *cidr,
                    host: host.clone(),
                });
            }
        }
        if s.pool_of(cidr).is_none() {
            f.push(Finding::BlockOutsidePool {
                block: *cidr,
                used: b.allocations.len(),
            });
        }
    }
    for (id, h) in &s.handles {
        for i in &h.ips {
            if s.unreadable_blocks.contains(&i.block) {
                continue;
            }
            let given = s.blocks.get(&i.block).is_some_and(|b| {
                i.block.offset_of(i.ip).and_then(|o| b.allocations.get(&o)) == Some(id)
            });
            if !given {
                f.push(Finding::HandleIpMissing {
                    handle: id.clone(),
                    ip: i.ip,
                });
            }
        }
        if !s.nodes.contains_key(&h.host) {
            f.push(Finding::HandleHostGone {
                handle: id.clone(),
                host: h.host.clone(),
            });
        }
    }
    for (host, cidr) in s.affinities.keys() {
        let held = s
            .blocks
            .get(cidr)
            .is_some_and(|b| b.affinity.as_ref() == Some(host));
        if !held && !s.unreadable_blocks.contains(cidr) {
            f.push(Finding::AffinityWithoutBlock {
                host: host.clone(),
                block: *cidr,
            });
        }
    }
    let cidrs: Vec<&BlockCidr> = s.blocks.keys().collect();
    for (i, a) in cidrs.iter().enumerate() {
        for b in cidrs[i + 1..].iter().take_while(|b| b.start() <= a.end()) {
            if a.overlaps(b) {
                f.push(Finding::BlocksOverlap {
                    block: **a,
                    other: **b,
                });
            }
        }
    }
    for (i, a) in s.pools.iter().enumerate() {
        for b in &s.pools[i + 1..] {
            let overlap = a.cidr.is_ipv4() == b.cidr.is_ipv4()
                && (a.cidr.contains(b.cidr.network()) || b.cidr.contains(a.cidr.network()));
            if overlap {
                f.push(Finding::PoolsOverlap {
                    pool: a.name.clone(),
                    other: b.name.clone(),
                });
            }
        }
    }
    Report {
        blocks: s.blocks.len(),
        handles: s.handles.len(),
        assigned: s.blocks.values().map(|b| b.allocations.len()).sum(),
        findings: f,
    }
}

/// The transaction that fixes a finding, if repair fixes it.
fn fix(s: &mut Snapshot, keys: &crate::record::Keys, finding: &Finding) -> Option<Txn> {
    match finding {
        Finding::IpWithoutHandle { ip, .. } => Some(s.free_ip(keys, *ip, now_ms())),
        Finding::HandleIpMissing { handle, ip } => Some(s.strip_handle_ip(keys, handle, *ip)),
        Finding::AffinityWithoutBlock { host, block } => Some(s.drop_affinity(keys, host, block)),
        Finding::BlockAffinityMissing { block, host } => {
            Some(s.restore_affinity(keys, host, block))
        }
        Finding::BlockOutsidePool { block, used: 0 } => Some(s.drop_block(keys, block, vec![])),
        Finding::BlocksOverlap { block, other } => {
            let empty = [other, block]
                .into_iter()
                .find(|c| s.blocks.get(c).is_some_and(|b| b.allocations.is_empty()))?;
            let empty = *empty;
            Some(s.drop_block(keys, &empty, vec![]))
        }
        _ => None,
    }
}

impl<S: Store> Ipam<S> {
    /// Checks the whole datastore at one revision.
    pub async fn check(&self) -> Result<Report> {
        let mut retry = Retry::new(&self.opts.retry, "check");
        Ok(check(&self.snapshot(&mut retry).await?))
    }

    /// Fixes what can be fixed safely, each fix one guarded transaction; a fix that loses a
    /// race is retried on a fresh snapshot, a few rounds at most.
    pub async fn repair(&self) -> Result<Repair> {
        let mut retry = Retry::new(&self.opts.retry, "repair");
        let mut fixed = Vec::new();
        let mut seen = BTreeSet::new();
        for _ in 0..5 {
            let mut snap = self.snapshot(&mut retry).await?;
            let report = check(&snap);
            let mut progress = false;
            for finding in report.findings.iter().filter(|f| f.repairable()) {
                let Some(txn) = fix(&mut snap, &self.keys, finding) else {
                    continue;
                };
                if !txn.writes.is_empty() && self.apply(&mut snap, txn, &mut retry).await? {
                    progress = true;
                    if seen.insert(format!("{finding:?}")) {
                        fixed.push(finding.clone());
                    }
                }
            }
            if !progress {
                break;
            }
        }
        self.forget_cache();
        Ok(Repair {
            fixed,
            after: self.check().await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Keys;
    use crate::store::Entry;

    /// (name, stored entries, expected finding kinds)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<&'a str>);

    const POOL: &str = r#"{"version":1,"name":"p","cidr":"10.0.0.0/24","block_prefix_len":26}"#;
    const NODE: &str = r#"{"version":1}"#;

    fn snap(entries: &[(&str, &str)]) -> Snapshot {
        let keys = Keys::new("/r");
        let entries = entries
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Entry {
                key: format!("/r/{k}"),
                value: v.as_bytes().to_vec(),
                mod_revision: i as i64 + 1,
            })
            .collect();
        Snapshot::parse(&keys, entries, 100)
    }

    fn kinds(r: &Report) -> Vec<String> {
        r.findings
            .iter()
            .map(|f| {
                serde_json::to_value(f)
                    .ok()
                    .and_then(|v| v["kind"].as_str().map(String::from))
                    .unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn check_table() {
        let block = |alloc: &str, host: &str| {
            format!(
                r#"{{"version":1,"cidr":"10.0.0.0/26","affinity":{host},"allocations":{{{alloc}}}}}"#
            )
        };
        let aff = r#"{"version":1,"block":"10.0.0.0/26"}"#;
        let handle = r#"{"version":1,"host":"a","ips":[{"ip":"10.0.0.1","block":"10.0.0.0/26"}]}"#;
        let healthy_block = block(r#""1":"c1""#, r#""a""#);
        let healthy: Vec<(&str, &str)> = vec![
            ("pools/p", POOL),
            ("nodes/a", NODE),
            ("blocks/10.0.0.0-26", &healthy_block),
            ("affinities/a/10.0.0.0-26", aff),
            ("handles/c1", handle),
        ];
        let leak = block(r#""1":"c1","2":"c9""#, r#""a""#);
        let other = block(r#""1":"c1""#, r#""b""#);
        let orphan = block("", "null");
        let cases: Vec<Case> = vec![
            ("healthy", healthy.clone(), vec![]),
            (
                "leak",
                vec![
                    ("pools/p", POOL),
                    ("nodes/a", NODE),
                    ("blocks/10.0.0.0-26", &leak),
                    ("affinities/a/10.0.0.0-26", aff),
                    ("handles/c1", handle),
                ],
                vec!["ip_without_handle"],
            ),
            (
                "dangling handle, host gone",
                vec![("pools/p", POOL), ("handles/c1", handle)],
                vec!["handle_ip_missing", "handle_host_gone"],
            ),
            (
                "block names b, whose key and node are missing; a's key is stray",
                vec![
                    ("pools/p", POOL),
                    ("nodes/a", NODE),
                    ("blocks/10.0.0.0-26", &other),
                    ("affinities/a/10.0.0.0-26", aff),
                    ("handles/c1", handle),
                ],
                vec![
                    "block_host_gone",
                    "block_affinity_missing",
                    "affinity_without_block",
                ],
            ),
            (
                "empty block without pool",
                vec![("blocks/10.0.0.0-26", &orphan)],
                vec!["block_outside_pool"],
            ),
            (
                "overlapping blocks",
                vec![
                    ("pools/p", POOL),
                    ("blocks/10.0.0.0-26", &orphan),
                    (
                        "blocks/10.0.0.0-25",
                        r#"{"version":1,"cidr":"10.0.0.0/25","affinity":null}"#,
                    ),
                ],
                vec!["blocks_overlap"],
            ),
            (
                "corrupt values and keys; a handle that cannot be read hides no leak",
                vec![
                    ("pools/p", POOL),
                    ("nodes/a", NODE),
                    ("blocks/10.0.0.0-26", &healthy_block),
                    ("affinities/a/10.0.0.0-26", aff),
                    ("handles/c1", "{bad"),
                    ("blocks/nonsense", "{}"),
                ],
                vec!["corrupt", "corrupt"],
            ),
        ];
        for (name, entries, want) in cases {
            let r = check(&snap(&entries));
            let mut got = kinds(&r);
            got.sort();
            let mut want: Vec<String> = want.into_iter().map(String::from).collect();
            want.sort();
            assert_eq!(got, want, "{name}: {:#?}", r.findings);
        }
    }

    #[test]
    fn findings_read_as_sentences() {
        let f = Finding::IpWithoutHandle {
            ip: "10.0.0.1".parse().unwrap(),
            block: "10.0.0.0/26".parse().unwrap(),
            handle: HandleId::new("c1").unwrap(),
        };
        assert_eq!(
            f.to_string(),
            "10.0.0.1 in 10.0.0.0/26 is held for handle c1, which does not list it (leak)"
        );
    }

    #[test]
    fn repairable_kinds() {
        let b: BlockCidr = "10.0.0.0/26".parse().unwrap();
        assert!(Finding::BlockOutsidePool { block: b, used: 0 }.repairable());
        assert!(!Finding::BlockOutsidePool { block: b, used: 1 }.repairable());
        assert!(
            !Finding::Corrupt {
                key: String::new(),
                reason: String::new()
            }
            .repairable()
        );
    }
}
