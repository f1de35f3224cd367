//! The allocation decisions, as pure functions: which pool and block a host claims next, and
//! which addresses of a block it takes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::block::{BlockCidr, Family, block_at, blocks_in};
use crate::names::{HandleId, HostName};
use crate::record::{Block, Pool};

/// How many candidate blocks a claim looks at past the host's hashed start before giving up
/// on a pool; bounds the work in huge IPv6 pools, where a free block is found at once anyway.
pub const SCAN_LIMIT: u128 = 1 << 16;

/// A stable hash of the host name (FNV-1a), so each host starts its search elsewhere and
/// concurrent claims by different hosts rarely race for the same block.
pub fn host_hash(host: &HostName) -> u64 {
    host.as_str().bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The pools a host may claim blocks from for `family`, in name order.
pub fn usable_pools<'a>(
    pools: &'a [Pool],
    family: Family,
    labels: &BTreeMap<String, String>,
) -> Vec<&'a Pool> {
    let mut v: Vec<&Pool> = pools
        .iter()
        .filter(|p| {
            !p.disabled && Family::of(p.cidr.ip()) == family && p.node_selector.matches(labels)
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// The first free block of `pool` for `host`, starting at the host's hashed slot and probing
/// upwards; `taken` is every existing block (any pool), sorted.
pub fn choose_block(pool: &Pool, taken: &[BlockCidr], host: &HostName) -> Option<BlockCidr> {
    let n = blocks_in(&pool.cidr, pool.block_prefix_len);
    let start = u128::from(host_hash(host)) % n;
    (0..n.min(SCAN_LIMIT))
        .filter_map(|i| block_at(&pool.cidr, pool.block_prefix_len, (start + i) % n).ok())
        .find(|b| !overlaps_any(b, taken))
}

/// Whether `b` overlaps a block of the sorted list `taken`. Blocks hold at most 4096
/// addresses, so only blocks starting within 4096 addresses before `b` can reach into it.
fn overlaps_any(b: &BlockCidr, taken: &[BlockCidr]) -> bool {
    let i = taken.partition_point(|t| t < b);
    let same = |t: &&BlockCidr| t.family() == b.family();
    let after = taken[i..]
        .iter()
        .take_while(|t| same(t) && t.start() <= b.end())
        .any(|t| t.overlaps(b));
    let before = taken[..i]
        .iter()
        .rev()
        .take_while(|t| same(t) && t.start() + 4096 > b.start())
        .any(|t| t.overlaps(b));
    after || before
}

/// Takes up to `n` free addresses of `block` for `handle`, starting at the block's cursor so a
/// just-released address is reused last. Returns the addresses taken.
pub fn take(block: &mut Block, handle: &HandleId, n: u32) -> Vec<IpAddr> {
    let size = block.cidr.size();
    let start = block.cursor % size;
    let offsets: Vec<u32> = (0..size)
        .map(|i| (start + i) % size)
        .filter(|o| !block.allocations.contains_key(o))
        .take(n as usize)
        .collect();
    for &o in &offsets {
        block.allocations.insert(o, handle.clone());
    }
    if let Some(&last) = offsets.last() {
        block.cursor = (last + 1) % size;
        block.emptied_at_ms = None;
    }
    offsets
        .into_iter()
        .filter_map(|o| block.cidr.ip_at(o))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::PoolName;

    fn pool(cidr: &str, len: u8) -> Pool {
        let mut p = Pool::new(PoolName::new("p").unwrap(), cidr.parse().unwrap());
        p.block_prefix_len = len;
        p
    }

    fn host(s: &str) -> HostName {
        HostName::new(s).unwrap()
    }

    #[test]
    fn choose_block_table() {
        let p = pool("10.0.0.0/24", 26);
        let all: Vec<BlockCidr> = (0..4).map(|i| block_at(&p.cidr, 26, i).unwrap()).collect();
        // (taken indices, expected: None if exhausted)
        for (taken, exhausted) in [
            (vec![], false),
            (vec![0, 1, 2], false),
            (vec![0, 1, 2, 3], true),
        ] {
            let t: Vec<BlockCidr> = taken.iter().map(|&i| all[i]).collect();
            let got = choose_block(&p, &t, &host("h1"));
            assert_eq!(got.is_none(), exhausted, "{taken:?}");
            if let Some(b) = got {
                assert!(!t.contains(&b) && b.within(&p.cidr));
            }
        }
        // A leftover /24 block from an earlier pool shape covers the whole pool.
        let big: BlockCidr = "10.0.0.0/24".parse().unwrap();
        assert_eq!(choose_block(&p, &[big], &host("h1")), None);
    }

    #[test]
    fn hosts_start_at_different_blocks() {
        let p = pool("10.0.0.0/16", 26);
        let starts: std::collections::BTreeSet<BlockCidr> = (0..50)
            .filter_map(|i| choose_block(&p, &[], &host(&format!("host-{i}"))))
            .collect();
        assert!(starts.len() >= 45, "hash spreads poorly: {}", starts.len());
    }

    #[test]
    fn choose_block_in_huge_v6_pool() {
        let p = pool("fd00::/48", 122);
        let b = choose_block(&p, &[], &host("h1")).unwrap();
        assert!(b.within(&p.cidr));
        assert_eq!(b.size(), 64);
    }

    #[test]
    fn take_table() {
        let h = HandleId::new("c").unwrap();
        let cidr: BlockCidr = "10.0.0.0/30".parse().unwrap();
        // (already allocated offsets, cursor, n) → offsets taken
        for (used, cursor, n, want) in [
            (vec![], 0, 2, vec![0, 1]),
            (vec![0], 0, 2, vec![1, 2]),
            (vec![], 3, 2, vec![3, 0]),
            (vec![1, 2], 2, 5, vec![3, 0]),
            (vec![0, 1, 2, 3], 0, 1, vec![]),
        ] {
            let mut b = Block::new(cidr, host("h"), 0);
            for o in &used {
                b.allocations.insert(*o, HandleId::new("x").unwrap());
            }
            b.cursor = cursor;
            let got: Vec<u32> = take(&mut b, &h, n)
                .into_iter()
                .filter_map(|ip| cidr.offset_of(ip))
                .collect();
            assert_eq!(got, want, "used {used:?} cursor {cursor} n {n}");
            assert_eq!(b.allocations.len(), used.len() + want.len());
        }
    }

    #[test]
    fn usable_pools_filter() {
        let mut off = pool("10.1.0.0/16", 26);
        off.disabled = true;
        let mut rack = pool("10.2.0.0/16", 26);
        rack.node_selector = "rack == 'r1'".parse().unwrap();
        let v6 = pool("fd00::/64", 122);
        let pools = vec![off, rack, v6];
        let none = BTreeMap::new();
        let r1: BTreeMap<String, String> = [("rack".to_string(), "r1".to_string())].into();
        assert_eq!(usable_pools(&pools, Family::V4, &none).len(), 0);
        assert_eq!(usable_pools(&pools, Family::V4, &r1).len(), 1);
        assert_eq!(usable_pools(&pools, Family::V6, &none).len(), 1);
    }
}
