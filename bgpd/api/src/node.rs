//! The node record every daemon keeps in etcd at `<root>/nodes/<name>`, and the key that says
//! its daemon is running, so `routectl nodes` and `routectl node delete` read exactly what the
//! daemon writes.
//!
//! The record is persistent, as Calico's Node resources are: it says the host is a member of
//! the fabric (peered with, its addresses kept) until `routectl node delete` removes it. That
//! the daemon runs and reaches etcd is a separate key under a lease, for display and for
//! `node delete`'s safety check only.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::Role;

/// Record format written by this daemon (IPAM reads `version` and `labels` of the same JSON).
pub const RECORD_VERSION: u32 = 1;

/// The record at `<root>/nodes/<name>` (no lease: it outlives the daemon).
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

/// Where the key that says `name`'s daemon runs lives: `<root>/alive/<name>` (`root` as IPAM's
/// `Keys::root`, with or without its trailing `/`). The daemon keeps it under a short lease.
pub fn alive_key(root: &str, name: &str) -> String {
    format!("{}{name}", alive_prefix(root))
}

/// The prefix of every liveness key: `<root>/alive/`.
pub fn alive_prefix(root: &str) -> String {
    format!("{}/alive/", root.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn alive_keys_sit_beside_the_node_records() {
        assert_eq!(
            super::alive_key("/fabric/v1/", "host-1"),
            "/fabric/v1/alive/host-1"
        );
        assert_eq!(
            super::alive_key("/fabric/v1", "host-1"),
            "/fabric/v1/alive/host-1"
        );
        assert_eq!(super::alive_prefix("/r/"), "/r/alive/");
    }
}
