//! What is stored in etcd, and where: versioned JSON records and the key layout.
//!
//! Every value carries `"version": 1`; a value that does not parse, or has another version, is
//! a [`IpamError::Corrupt`] naming its key, never a panic.

use std::collections::BTreeMap;
use std::net::IpAddr;

use bgpd_config::Selector;
use ipnetwork::IpNetwork;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::block::BlockCidr;
use crate::error::{IpamError, Result};
use crate::names::{HandleId, HostName, PoolName};

/// The record format this code writes and reads.
pub const VERSION: u32 = 1;

/// Decodes a stored record, checking its version first.
pub(crate) fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let corrupt = |reason: String| IpamError::Corrupt {
        key: key.to_string(),
        reason,
    };
    let v: Versioned = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if v.version != VERSION {
        return Err(corrupt(format!(
            "record version {} (this code reads {VERSION})",
            v.version
        )));
    }
    serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))
}

/// Decodes a pool and checks it as `add_pool` would, and that it is stored under its own
/// name: an impossible block size would otherwise reach the block arithmetic, and a record
/// under another key would make every transaction guard the wrong key. Never panics.
pub fn decode_pool(key: &str, bytes: &[u8]) -> Result<Pool> {
    let p: Pool = decode(key, bytes)?;
    let corrupt = |reason: String| IpamError::Corrupt {
        key: key.to_string(),
        reason,
    };
    p.validate().map_err(|e| corrupt(e.to_string()))?;
    if !key.ends_with(&format!("/{}", p.name)) {
        return Err(corrupt(format!(
            "pool {} stored under another name",
            p.name
        )));
    }
    Ok(p)
}

/// A pool's stored node selector; empty text (which earlier versions wrote) means `all()`.
fn stored_selector<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Selector, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim().is_empty() {
        return Ok(Selector::All);
    }
    Selector::parse(&text).map_err(serde::de::Error::custom)
}

/// Decodes a block and checks it is stored under its own CIDR.
pub(crate) fn decode_block(key: &str, bytes: &[u8]) -> Result<Block> {
    let b: Block = decode(key, bytes)?;
    if !key.ends_with(&format!("/{}", b.cidr.key_segment())) {
        return Err(IpamError::Corrupt {
            key: key.to_string(),
            reason: format!("block {} stored under another key", b.cidr),
        });
    }
    Ok(b)
}

/// Encodes a record; our own types always serialize.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// An IP pool: a CIDR cut into blocks that hosts claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Record format.
    pub version: u32,
    /// The pool's name (also its key).
    pub name: PoolName,
    /// The addresses of the pool.
    pub cidr: IpNetwork,
    /// Prefix length of its blocks (default /26 for IPv4, /122 for IPv6).
    pub block_prefix_len: u8,
    /// A disabled pool gives out no new blocks; existing assignments stay.
    #[serde(default)]
    pub disabled: bool,
    /// Containers in this pool are masqueraded when leaving the fabric (read by the daemon).
    #[serde(default)]
    pub nat_outgoing: bool,
    /// Which hosts may take blocks from this pool; stored as its text, parsed on read.
    #[serde(default, deserialize_with = "stored_selector")]
    pub node_selector: Selector,
}

impl Pool {
    /// A pool with the default block size for its family, enabled, for every host.
    pub fn new(name: PoolName, cidr: IpNetwork) -> Pool {
        Pool {
            version: VERSION,
            name,
            cidr,
            block_prefix_len: if cidr.is_ipv4() { 26 } else { 122 },
            disabled: false,
            nat_outgoing: false,
            node_selector: Selector::All,
        }
    }

    /// Checks the CIDR is aligned and the block size fits it.
    pub fn validate(&self) -> Result<()> {
        if self.cidr.ip() != self.cidr.network() {
            return Err(IpamError::Invalid(format!(
                "pool {}: {} is not aligned",
                self.name, self.cidr
            )));
        }
        let lens = if self.cidr.is_ipv4() {
            crate::block::V4_BLOCK_LENS
        } else {
            crate::block::V6_BLOCK_LENS
        };
        if !lens.contains(&self.block_prefix_len) || self.block_prefix_len < self.cidr.prefix() {
            return Err(IpamError::Invalid(format!(
                "pool {}: block size /{} must be in {lens:?} and not larger than {}",
                self.name, self.block_prefix_len, self.cidr
            )));
        }
        Ok(())
    }
}

/// A block: one host's share of a pool, with who holds each address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Record format.
    pub version: u32,
    /// The block's addresses.
    pub cidr: BlockCidr,
    /// The host the block is affine to (None once its host is gone but borrowers remain).
    pub affinity: Option<HostName>,
    /// Offset in the block → the handle holding that address.
    #[serde(default)]
    pub allocations: BTreeMap<u32, HandleId>,
    /// Where the next search for a free address starts, so a released address is reused last.
    #[serde(default)]
    pub cursor: u32,
    /// Unix milliseconds when the block last became (or was created) empty.
    #[serde(default)]
    pub emptied_at_ms: Option<u64>,
}

impl Block {
    /// A new, empty block affine to `host`.
    pub fn new(cidr: BlockCidr, host: HostName, now_ms: u64) -> Block {
        Block {
            version: VERSION,
            cidr,
            affinity: Some(host),
            allocations: BTreeMap::new(),
            cursor: 0,
            emptied_at_ms: Some(now_ms),
        }
    }

    /// Free addresses left.
    pub fn free(&self) -> u32 {
        self.cidr
            .size()
            .saturating_sub(self.allocations.len() as u32)
    }

    /// Frees `ip` if `handle` holds it; returns whether it did.
    pub(crate) fn release(&mut self, ip: IpAddr, handle: &HandleId, now_ms: u64) -> bool {
        let Some(off) = self.cidr.offset_of(ip) else {
            return false;
        };
        if self.allocations.get(&off) != Some(handle) {
            return false;
        }
        self.allocations.remove(&off);
        if self.allocations.is_empty() {
            self.emptied_at_ms = Some(now_ms);
        }
        true
    }
}

/// One address of a handle and the block it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandleIp {
    /// The address.
    pub ip: IpAddr,
    /// Its block.
    pub block: BlockCidr,
    /// The block was affine to another host when the address was given.
    #[serde(default)]
    pub borrowed: bool,
}

/// A handle: the addresses of one container attachment, and the host it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handle {
    /// Record format.
    pub version: u32,
    /// The host that asked for the addresses (GC releases them when it is gone).
    pub host: HostName,
    /// The addresses, in the order they were given.
    pub ips: Vec<HandleIp>,
}

/// The marker that a host holds a block; written in the same transaction as the block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affinity {
    /// Record format.
    pub version: u32,
    /// The block held.
    pub block: BlockCidr,
}

/// The node record at `nodes/<host>`, written by the daemon without a lease: the host is a
/// member (GC leaves its addresses alone) until the record is deleted (`routectl node delete`).
/// IPAM reads only the labels (for pool node selectors) and whether the key exists; the daemon
/// may add fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Record format.
    pub version: u32,
    /// Labels matched by pool node selectors.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl NodeRecord {
    /// A node record with these labels.
    pub fn new(labels: BTreeMap<String, String>) -> NodeRecord {
        NodeRecord {
            version: VERSION,
            labels,
        }
    }
}

/// Cluster-wide IPAM settings at `config/ipam`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamConfig {
    /// Record format.
    pub version: u32,
    /// Never borrow addresses from another host's block.
    #[serde(default)]
    pub strict_affinity: bool,
    /// At most this many blocks per host (None: no limit).
    #[serde(default)]
    pub max_blocks_per_host: Option<u32>,
}

/// The key layout under one root (default `/fabric/v1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    root: String,
}

impl Keys {
    /// Keys under `root` (without a trailing slash).
    pub fn new(root: &str) -> Keys {
        Keys {
            root: root.trim_end_matches('/').to_string(),
        }
    }

    /// Everything IPAM owns and reads, for one consistent snapshot.
    pub fn root(&self) -> String {
        format!("{}/", self.root)
    }
    /// `config/ipam`.
    pub fn config(&self) -> String {
        format!("{}/config/ipam", self.root)
    }
    /// Prefix of all pools.
    pub fn pools(&self) -> String {
        format!("{}/pools/", self.root)
    }
    /// One pool.
    pub fn pool(&self, name: &PoolName) -> String {
        format!("{}{name}", self.pools())
    }
    /// Prefix of all blocks.
    pub fn blocks(&self) -> String {
        format!("{}/blocks/", self.root)
    }
    /// One block.
    pub fn block(&self, cidr: &BlockCidr) -> String {
        format!("{}{}", self.blocks(), cidr.key_segment())
    }
    /// Prefix of all affinities.
    pub fn affinities(&self) -> String {
        format!("{}/affinities/", self.root)
    }
    /// Prefix of one host's affinities.
    pub fn affinities_of(&self, host: &HostName) -> String {
        format!("{}{host}/", self.affinities())
    }
    /// One host's affinity to one block.
    pub fn affinity(&self, host: &HostName, cidr: &BlockCidr) -> String {
        format!("{}{}", self.affinities_of(host), cidr.key_segment())
    }
    /// Prefix of all handles.
    pub fn handles(&self) -> String {
        format!("{}/handles/", self.root)
    }
    /// One handle.
    pub fn handle(&self, id: &HandleId) -> String {
        format!("{}{id}", self.handles())
    }
    /// Prefix of all node records.
    pub fn nodes(&self) -> String {
        format!("{}/nodes/", self.root)
    }
    /// One node record.
    pub fn node(&self, host: &HostName) -> String {
        format!("{}{host}", self.nodes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_never_panics_and_names_the_key() {
        for bad in [
            &b""[..],
            b"{",
            b"null",
            b"{\"version\":2}",
            b"{\"version\":1}",
            b"{\"version\":1,\"cidr\":\"10.0.0.1/26\",\"affinity\":null}",
            b"\xff\xfe",
        ] {
            match decode::<Block>("/k", bad) {
                Err(IpamError::Corrupt { key, .. }) => assert_eq!(key, "/k"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
        for bad in [
            r#"{"version":1,"name":"p","cidr":"fd00::/64","block_prefix_len":200}"#,
            r#"{"version":1,"name":"p","cidr":"10.0.0.0/24","block_prefix_len":8}"#,
            r#"{"version":1,"name":"p","cidr":"10.0.0.1/24","block_prefix_len":26}"#,
            r#"{"version":1,"name":"p","cidr":"10.0.0.0/24","block_prefix_len":26,"node_selector":"rack = 'r1'"}"#,
            r#"{"version":1,"name":"p","cidr":"10.0.0.0/24","block_prefix_len":26,"node_selector":7}"#,
        ] {
            assert!(matches!(
                decode_pool("/p", bad.as_bytes()),
                Err(IpamError::Corrupt { .. })
            ));
        }
    }

    #[test]
    fn pool_selector_is_stored_as_text() {
        let mut pool = Pool::new(PoolName::new("p").unwrap(), "10.0.0.0/24".parse().unwrap());
        pool.node_selector = "rack == \"r1\" && !has(gpu)".parse().unwrap();
        let bytes = encode(&pool);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.contains(r#""node_selector":"rack == 'r1' && !has(gpu)""#),
            "{text}"
        );
        assert_eq!(decode_pool("/p", &bytes).unwrap(), pool);
        // Earlier versions stored `""` for all(); a missing field also means all().
        for old in [
            r#"{"version":1,"name":"p","cidr":"10.0.0.0/24","block_prefix_len":26,"node_selector":""}"#,
            r#"{"version":1,"name":"p","cidr":"10.0.0.0/24","block_prefix_len":26}"#,
        ] {
            let p = decode_pool("/p", old.as_bytes()).unwrap();
            assert_eq!(p.node_selector, Selector::All, "{old}");
        }
    }

    #[test]
    fn block_round_trips() {
        let mut b = Block::new(
            "10.0.0.0/26".parse().unwrap(),
            HostName::new("h1").unwrap(),
            5,
        );
        b.allocations.insert(3, HandleId::new("c1.eth0").unwrap());
        let back: Block = decode("/k", &encode(&b)).unwrap();
        assert_eq!(back, b);
        assert_eq!(back.free(), 63);
    }
}
