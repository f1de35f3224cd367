//! What the compiler is given besides the policy file: workload endpoints and IP pools.
//!
//! The daemon fills these from its endpoint list and from etcd; tests fill them by hand.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::model::{IfName, Name};
use crate::selector::Labels;

/// A container on this host: its host-side interface, addresses and labels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadEndpoint {
    /// The host side of the container's veth; names its chains.
    pub interface: IfName,
    /// The container's addresses.
    pub ips: Vec<IpAddr>,
    /// Labels that policy selectors match.
    pub labels: Labels,
}

/// A container on another host: only its addresses and labels matter here (rule selectors).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteEndpoint {
    /// The container's addresses.
    pub ips: Vec<IpAddr>,
    /// Labels that rule selectors match.
    pub labels: Labels,
}

/// An IP pool: containers get addresses from pools; pools can be named in rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Name rules refer to.
    pub name: Name,
    /// The pool's network.
    pub cidr: IpNetwork,
    /// Masquerade traffic from this pool to destinations outside every pool.
    #[serde(default)]
    pub nat_outgoing: bool,
}
