//! Address families (RFC 4760): AFI and SAFI numbers as IANA assigns them.

use std::fmt;

/// Address Family Identifier (IANA "Address Family Numbers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Afi(pub u16);

impl Afi {
    /// IPv4.
    pub const IPV4: Afi = Afi(1);
    /// IPv6.
    pub const IPV6: Afi = Afi(2);
}

/// Subsequent Address Family Identifier (IANA "SAFI Values").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Safi(pub u8);

impl Safi {
    /// Unicast forwarding.
    pub const UNICAST: Safi = Safi(1);
    /// Multicast RPF.
    pub const MULTICAST: Safi = Safi(2);
}

/// An (AFI, SAFI) pair: the family a capability, an NLRI or a refresh is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AfiSafi {
    /// The address family.
    pub afi: Afi,
    /// The sub-family.
    pub safi: Safi,
}

impl AfiSafi {
    /// IPv4 unicast, the family of plain RFC 4271 NLRI.
    pub const IPV4_UNICAST: AfiSafi = AfiSafi::new(Afi::IPV4, Safi::UNICAST);
    /// IPv6 unicast, carried in MP_REACH/MP_UNREACH.
    pub const IPV6_UNICAST: AfiSafi = AfiSafi::new(Afi::IPV6, Safi::UNICAST);

    /// The pair of `afi` and `safi`.
    pub const fn new(afi: Afi, safi: Safi) -> Self {
        AfiSafi { afi, safi }
    }

    /// Whether NLRI of this family are IP prefixes this codec decodes
    /// (IPv4/IPv6, unicast or multicast).
    pub fn has_ip_prefixes(self) -> bool {
        matches!(self.afi, Afi::IPV4 | Afi::IPV6)
            && matches!(self.safi, Safi::UNICAST | Safi::MULTICAST)
    }
}

impl fmt::Display for AfiSafi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.afi, self.safi) {
            (Afi::IPV4, Safi::UNICAST) => f.write_str("ipv4-unicast"),
            (Afi::IPV6, Safi::UNICAST) => f.write_str("ipv6-unicast"),
            (Afi::IPV4, Safi::MULTICAST) => f.write_str("ipv4-multicast"),
            (Afi::IPV6, Safi::MULTICAST) => f.write_str("ipv6-multicast"),
            (a, s) => write!(f, "afi{}-safi{}", a.0, s.0),
        }
    }
}
