//! Block arithmetic: a block is an aligned CIDR inside a pool; addresses are offsets into it.

use std::cmp::Ordering;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::error::{IpamError, Result};

// The allowed block sizes are the configuration's, so `bgpd --check` refuses what IPAM would.
pub(crate) use bgpd_config::{V4_BLOCK_LENS, V6_BLOCK_LENS};

/// An address as an integer, so IPv4 and IPv6 share one arithmetic.
pub(crate) fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The inverse of [`ip_to_u128`]; IPv4 values are truncated to 32 bits.
pub(crate) fn u128_to_ip(v6: bool, x: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(x))
    } else {
        IpAddr::V4(Ipv4Addr::from(x as u32))
    }
}

/// Address family, for requests and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }

    /// "IPv4" or "IPv6".
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// An aligned block CIDR (its address is its network address) of 1 to 4096 addresses.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockCidr(IpNetwork);

impl BlockCidr {
    /// Accepts `net` if it is aligned and its size is an allowed block size.
    pub fn new(net: IpNetwork) -> Result<BlockCidr> {
        let lens = match net {
            IpNetwork::V4(_) => V4_BLOCK_LENS,
            IpNetwork::V6(_) => V6_BLOCK_LENS,
        };
        if !lens.contains(&net.prefix()) {
            return Err(IpamError::Invalid(format!(
                "block {net}: prefix length must be in {lens:?}"
            )));
        }
        if net.ip() != net.network() {
            return Err(IpamError::Invalid(format!(
                "block {net} is not aligned (network is {})",
                net.network()
            )));
        }
        Ok(BlockCidr(net))
    }

    /// The block as a CIDR.
    pub fn network(&self) -> IpNetwork {
        self.0
    }

    /// The family of its addresses.
    pub fn family(&self) -> Family {
        Family::of(self.0.ip())
    }

    /// Number of addresses (1..=4096).
    pub fn size(&self) -> u32 {
        let bits = if self.0.is_ipv4() { 32 } else { 128 };
        1u32 << (bits - u32::from(self.0.prefix()))
    }

    /// The first address as an integer.
    pub(crate) fn start(&self) -> u128 {
        ip_to_u128(self.0.network())
    }

    /// The last address as an integer.
    pub(crate) fn end(&self) -> u128 {
        self.start() + u128::from(self.size()) - 1
    }

    /// The offset of `ip` in the block, if it is inside.
    pub fn offset_of(&self, ip: IpAddr) -> Option<u32> {
        if ip.is_ipv4() != self.0.is_ipv4() {
            return None;
        }
        let x = ip_to_u128(ip);
        (self.start()..=self.end())
            .contains(&x)
            .then(|| (x - self.start()) as u32)
    }

    /// The address at `offset`, if the offset is inside the block.
    pub fn ip_at(&self, offset: u32) -> Option<IpAddr> {
        (offset < self.size())
            .then(|| u128_to_ip(self.0.is_ipv6(), self.start() + u128::from(offset)))
    }

    /// Whether the two blocks share an address.
    pub fn overlaps(&self, other: &BlockCidr) -> bool {
        self.0.is_ipv4() == other.0.is_ipv4()
            && self.start() <= other.end()
            && other.start() <= self.end()
    }

    /// Whether the block lies inside `net`.
    pub fn within(&self, net: &IpNetwork) -> bool {
        net.is_ipv4() == self.0.is_ipv4()
            && net.prefix() <= self.0.prefix()
            && net.contains(self.0.network())
    }

    /// The key segment: `/` would split the key, so `10.0.0.0/26` is stored as `10.0.0.0-26`.
    pub fn key_segment(&self) -> String {
        format!("{}-{}", self.0.network(), self.0.prefix())
    }

    /// Parses a key segment written by [`BlockCidr::key_segment`].
    pub fn from_key_segment(s: &str) -> Result<BlockCidr> {
        let (ip, len) = s
            .rsplit_once('-')
            .ok_or_else(|| IpamError::Invalid(format!("block key segment {s:?}")))?;
        BlockCidr::from_str(&format!("{ip}/{len}"))
    }
}

impl Ord for BlockCidr {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.0.is_ipv6(), self.start(), self.0.prefix()).cmp(&(
            other.0.is_ipv6(),
            other.start(),
            other.0.prefix(),
        ))
    }
}

impl PartialOrd for BlockCidr {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for BlockCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.network(), self.0.prefix())
    }
}

impl fmt::Debug for BlockCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for BlockCidr {
    type Err = IpamError;
    fn from_str(s: &str) -> Result<BlockCidr> {
        let net =
            IpNetwork::from_str(s).map_err(|e| IpamError::Invalid(format!("block {s:?}: {e}")))?;
        BlockCidr::new(net)
    }
}

impl Serialize for BlockCidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BlockCidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        BlockCidr::from_str(&s).map_err(serde::de::Error::custom)
    }
}

/// How many blocks of `/block_len` a pool `net` holds (saturating: IPv6 pools can be huge).
pub fn blocks_in(net: &IpNetwork, block_len: u8) -> u128 {
    let shift = u32::from(block_len.saturating_sub(net.prefix()));
    1u128.checked_shl(shift).unwrap_or(u128::MAX)
}

/// The `index`-th block of `/block_len` in pool `net` (the caller keeps `index` in range).
pub fn block_at(net: &IpNetwork, block_len: u8, index: u128) -> Result<BlockCidr> {
    let bits: u32 = if net.is_ipv4() { 32 } else { 128 };
    let step = bits
        .checked_sub(u32::from(block_len))
        .and_then(|shift| 1u128.checked_shl(shift))
        .ok_or_else(|| IpamError::Invalid(format!("block length {block_len}")))?;
    let start = index
        .checked_mul(step)
        .and_then(|off| ip_to_u128(net.network()).checked_add(off))
        .ok_or_else(|| IpamError::Invalid(format!("block {index} of {net}")))?;
    let ip = u128_to_ip(net.is_ipv6(), start);
    let cidr = IpNetwork::new(ip, block_len)
        .map_err(|e| IpamError::Invalid(format!("block {ip}/{block_len}: {e}")))?;
    BlockCidr::new(cidr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> BlockCidr {
        s.parse().unwrap()
    }

    #[test]
    fn block_validation() {
        for (s, ok) in [
            ("10.0.0.0/26", true),
            ("10.0.0.64/26", true),
            ("10.0.0.1/26", false),
            ("10.0.0.0/8", false),
            ("fd00::/122", true),
            ("fd00::40/122", true),
            ("fd00::/64", false),
            ("nonsense", false),
        ] {
            assert_eq!(s.parse::<BlockCidr>().is_ok(), ok, "{s}");
        }
    }

    #[test]
    fn offsets_round_trip() {
        let v4 = b("10.0.0.64/26");
        assert_eq!(v4.size(), 64);
        assert_eq!(v4.offset_of("10.0.0.64".parse().unwrap()), Some(0));
        assert_eq!(v4.offset_of("10.0.0.127".parse().unwrap()), Some(63));
        assert_eq!(v4.offset_of("10.0.0.128".parse().unwrap()), None);
        assert_eq!(v4.offset_of("fd00::1".parse().unwrap()), None);
        assert_eq!(v4.ip_at(63), Some("10.0.0.127".parse().unwrap()));
        assert_eq!(v4.ip_at(64), None);
        let v6 = b("fd00::40/122");
        assert_eq!(v6.ip_at(1), Some("fd00::41".parse().unwrap()));
        assert_eq!(BlockCidr::from_key_segment(&v6.key_segment()).unwrap(), v6);
        assert_eq!(v4.key_segment(), "10.0.0.64-26");
    }

    #[test]
    fn overlap_and_containment() {
        assert!(b("10.0.0.0/26").overlaps(&b("10.0.0.0/24")));
        assert!(!b("10.0.0.0/26").overlaps(&b("10.0.0.64/26")));
        assert!(b("10.0.0.64/26").within(&"10.0.0.0/24".parse().unwrap()));
        assert!(!b("10.0.1.0/26").within(&"10.0.0.0/24".parse().unwrap()));
    }

    #[test]
    fn pool_blocks() {
        let pool: IpNetwork = "10.0.0.0/24".parse().unwrap();
        assert_eq!(blocks_in(&pool, 26), 4);
        assert_eq!(block_at(&pool, 26, 3).unwrap(), b("10.0.0.192/26"));
        let pool6: IpNetwork = "fd00::/48".parse().unwrap();
        assert_eq!(blocks_in(&pool6, 122), 1 << 74);
        assert_eq!(block_at(&pool6, 122, 1).unwrap(), b("fd00::40/122"));
    }
}
