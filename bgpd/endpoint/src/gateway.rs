//! The link-local gateway every container routes through (Calico's scheme).
//!
//! The container holds only host addresses (/32, /128) and a default route via a link-local
//! gateway, so it shares no subnet with the host and needs no L2 with anything: the host answers
//! for the gateway and routes everything. See the crate README for why IPv4 and IPv6 differ.

use std::net::{Ipv4Addr, Ipv6Addr};

/// IPv4 gateway, answered by proxy ARP on the host-side veth; the default route is `onlink`.
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// IPv6 gateway, held as an address by the host-side veth.
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

/// Prefix length of [`GATEWAY_V6`] on the host-side veth (the link-local prefix).
pub(crate) const GATEWAY_V6_PREFIX_LEN: u8 = 64;
