//! IP prefixes with validated lengths, and NLRI entries (a prefix plus an optional
//! ADD-PATH path identifier).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::family::{Afi, AfiSafi, Safi};

/// Why a prefix could not be built or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// The length exceeds the address width (32 or 128).
    #[error("prefix length {len} exceeds {max}")]
    Length {
        /// The length given.
        len: u8,
        /// The address width.
        max: u8,
    },
    /// The text is not `address/length`.
    #[error("not a prefix: {0:?}")]
    Syntax(String),
}

/// An IPv4 prefix; the length is at most 32 and host bits are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Prefix {
    addr: Ipv4Addr,
    len: u8,
}

impl Ipv4Prefix {
    /// The prefix `addr/len`, with host bits cleared; fails when `len > 32`.
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Self, PrefixError> {
        if len > 32 {
            return Err(PrefixError::Length { len, max: 32 });
        }
        Ok(Self::masked(u32::from(addr), len))
    }

    /// `len <= 32` is the caller's promise; host bits are cleared here.
    pub(crate) fn masked(bits: u32, len: u8) -> Self {
        // Shifting in 64 bits keeps len = 0 (a shift by 32) defined and branch-free.
        let mask = (u64::MAX << (32 - u32::from(len))) as u32;
        Ipv4Prefix {
            addr: Ipv4Addr::from(bits & mask),
            len,
        }
    }

    /// The network address.
    pub fn addr(self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn length(self) -> u8 {
        self.len
    }

    /// Whether this is the zero-length default route.
    pub fn is_default(self) -> bool {
        self.len == 0
    }

    /// Whether `addr` lies inside this prefix.
    pub fn contains(self, addr: Ipv4Addr) -> bool {
        Self::masked(u32::from(addr), self.len).addr == self.addr
    }
}

/// An IPv6 prefix; the length is at most 128 and host bits are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv6Prefix {
    addr: Ipv6Addr,
    len: u8,
}

impl Ipv6Prefix {
    /// The prefix `addr/len`, with host bits cleared; fails when `len > 128`.
    pub fn new(addr: Ipv6Addr, len: u8) -> Result<Self, PrefixError> {
        if len > 128 {
            return Err(PrefixError::Length { len, max: 128 });
        }
        Ok(Self::masked(u128::from(addr), len))
    }

    /// `len <= 128` is the caller's promise; host bits are cleared here.
    pub(crate) fn masked(bits: u128, len: u8) -> Self {
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        Ipv6Prefix {
            addr: Ipv6Addr::from(bits & mask),
            len,
        }
    }

    /// The network address.
    pub fn addr(self) -> Ipv6Addr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn length(self) -> u8 {
        self.len
    }

    /// Whether this is the zero-length default route.
    pub fn is_default(self) -> bool {
        self.len == 0
    }

    /// Whether `addr` lies inside this prefix.
    pub fn contains(self, addr: Ipv6Addr) -> bool {
        Self::masked(u128::from(addr), self.len).addr == self.addr
    }
}

/// An IPv4 or IPv6 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Prefix {
    /// IPv4.
    V4(Ipv4Prefix),
    /// IPv6.
    V6(Ipv6Prefix),
}

impl Prefix {
    /// The prefix `addr/len` of either family, with host bits cleared.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, PrefixError> {
        match addr {
            IpAddr::V4(a) => Ipv4Prefix::new(a, len).map(Prefix::V4),
            IpAddr::V6(a) => Ipv6Prefix::new(a, len).map(Prefix::V6),
        }
    }

    /// The network address.
    pub fn addr(self) -> IpAddr {
        match self {
            Prefix::V4(p) => IpAddr::V4(p.addr),
            Prefix::V6(p) => IpAddr::V6(p.addr),
        }
    }

    /// The prefix length in bits.
    pub fn length(self) -> u8 {
        match self {
            Prefix::V4(p) => p.len,
            Prefix::V6(p) => p.len,
        }
    }

    /// Whether this is a zero-length default route.
    pub fn is_default(self) -> bool {
        self.length() == 0
    }

    /// The address family.
    pub fn afi(self) -> Afi {
        match self {
            Prefix::V4(_) => Afi::IPV4,
            Prefix::V6(_) => Afi::IPV6,
        }
    }

    /// The unicast family of this prefix.
    pub fn unicast(self) -> AfiSafi {
        AfiSafi::new(self.afi(), Safi::UNICAST)
    }

    /// Octets this prefix takes in an NLRI field: the length octet plus the significant octets.
    pub fn wire_len(self) -> usize {
        1 + usize::from(self.length()).div_ceil(8)
    }
}

impl From<Ipv4Prefix> for Prefix {
    fn from(p: Ipv4Prefix) -> Self {
        Prefix::V4(p)
    }
}

impl From<Ipv6Prefix> for Prefix {
    fn from(p: Ipv6Prefix) -> Self {
        Prefix::V6(p)
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefix::V4(p) => p.fmt(f),
            Prefix::V6(p) => p.fmt(f),
        }
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    /// Parses `address/length`; host bits are cleared.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || PrefixError::Syntax(s.to_owned());
        let (addr, len) = s.split_once('/').ok_or_else(syntax)?;
        let addr: IpAddr = addr.parse().map_err(|_| syntax())?;
        let len: u8 = len.parse().map_err(|_| syntax())?;
        Prefix::new(addr, len)
    }
}

/// One NLRI entry: a prefix and, when ADD-PATH (RFC 7911) is in use for its family and
/// direction, the path identifier that goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nlri {
    /// The ADD-PATH path identifier; `None` when ADD-PATH is not negotiated.
    pub path_id: Option<u32>,
    /// The prefix.
    pub prefix: Prefix,
}

impl Nlri {
    /// An entry without a path identifier.
    pub fn new(prefix: impl Into<Prefix>) -> Self {
        Nlri {
            path_id: None,
            prefix: prefix.into(),
        }
    }

    /// An entry with an ADD-PATH path identifier.
    pub fn with_path_id(prefix: impl Into<Prefix>, path_id: u32) -> Self {
        Nlri {
            path_id: Some(path_id),
            prefix: prefix.into(),
        }
    }
}

impl From<Prefix> for Nlri {
    fn from(p: Prefix) -> Self {
        Nlri::new(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_bits_are_cleared_and_lengths_checked() {
        let p = Ipv4Prefix::new(Ipv4Addr::new(10, 1, 2, 3), 16).unwrap();
        assert_eq!(p.to_string(), "10.1.0.0/16");
        assert_eq!(
            Ipv4Prefix::new(Ipv4Addr::new(10, 1, 2, 3), 0)
                .unwrap()
                .addr(),
            Ipv4Addr::UNSPECIFIED
        );
        assert_eq!(
            Ipv4Prefix::new(Ipv4Addr::new(10, 1, 2, 3), 32)
                .unwrap()
                .addr(),
            Ipv4Addr::new(10, 1, 2, 3)
        );
        assert_eq!(
            Ipv4Prefix::new(Ipv4Addr::LOCALHOST, 33),
            Err(PrefixError::Length { len: 33, max: 32 })
        );
        assert_eq!(
            "2001:db8::1/32".parse::<Prefix>().unwrap().to_string(),
            "2001:db8::/32"
        );
        assert!(Ipv6Prefix::new(Ipv6Addr::LOCALHOST, 129).is_err());
        assert!("10.0.0.0".parse::<Prefix>().is_err());
        assert!("10.0.0.0/x".parse::<Prefix>().is_err());
    }

    #[test]
    fn wire_length_counts_significant_octets() {
        for (len, octets) in [(0, 1), (1, 2), (8, 2), (9, 3), (24, 4), (32, 5)] {
            assert_eq!(
                Prefix::V4(Ipv4Prefix::new(Ipv4Addr::BROADCAST, len).unwrap()).wire_len(),
                octets
            );
        }
    }

    #[test]
    fn contains_respects_the_mask() {
        let p = Ipv4Prefix::new(Ipv4Addr::new(10, 0, 0, 0), 8).unwrap();
        assert!(p.contains(Ipv4Addr::new(10, 200, 1, 1)));
        assert!(!p.contains(Ipv4Addr::new(11, 0, 0, 1)));
    }
}
