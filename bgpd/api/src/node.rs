//! The node record every daemon keeps in etcd at `<root>/nodes/<name>` (under its lease), so
//! `routectl nodes` decodes exactly what the daemon writes.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::Role;

/// Record format written by this daemon (IPAM reads `version` and `labels` of the same JSON).
pub const RECORD_VERSION: u32 = 1;

/// The record at `<root>/nodes/<name>`, attached to the daemon's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Record format.
    pub version: u32,
    /// Labels (pool node selectors, policy selectors).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The address peers reach this node at.
    pub address: IpAddr,
    /// The node's IPv6 address beside an IPv4 `address`: the next hop of its IPv6 routes.
    #[serde(default)]
    pub address_v6: Option<Ipv6Addr>,
    /// Its AS.
    pub asn: u32,
    /// Its BGP router id.
    pub router_id: Ipv4Addr,
    /// Host or reflector.
    pub role: Role,
    /// It peers automatically (mesh or with reflectors).
    pub mesh: bool,
    /// Its BGP port.
    pub port: u16,
}
