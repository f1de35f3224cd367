//! What an attach returns: everything the daemon and the CNI plugin report or program.

use std::fmt;
use std::net::IpAddr;

use crate::rtnl::RouteTag;
use crate::spec::{ContainerId, IfName, Mtu};

/// An Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Reads six bytes; None for any other length (the kernel sends what the link type has).
    pub fn from_bytes(bytes: &[u8]) -> Option<MacAddr> {
        <[u8; 6]>::try_from(bytes).ok().map(MacAddr)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A host route to a container address: `address/32|128 dev <ifname> scope link`, tagged.
///
/// The daemon puts these in its wanted set so the kernel reconcile keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostRoute {
    /// The container's address; the prefix length is 32 or 128.
    pub address: IpAddr,
    /// The host-side interface it goes out of.
    pub ifindex: u32,
    /// Protocol number and table it was installed with.
    pub tag: RouteTag,
}

impl HostRoute {
    /// 32 for IPv4, 128 for IPv6.
    pub fn prefix_len(&self) -> u8 {
        crate::rtnl::host_prefix_len(self.address)
    }
}

/// A container interface as attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The container it belongs to.
    pub container_id: ContainerId,
    /// Host-side veth name (`bgpd` + hash).
    pub host_ifname: IfName,
    /// Host-side veth index.
    pub host_ifindex: u32,
    /// Interface name inside the container.
    pub container_ifname: IfName,
    /// Interface index inside the container's namespace.
    pub container_ifindex: u32,
    /// The container interface's MAC (for CNI results and static neighbour entries).
    pub container_mac: MacAddr,
    /// The container's addresses, each a /32 or /128 on its interface.
    pub addresses: Vec<IpAddr>,
    /// MTU of both ends.
    pub mtu: Mtu,
    /// The host routes installed, one per address.
    pub host_routes: Vec<HostRoute>,
}

/// One of our veths found on the host, named by its alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEndpoint {
    /// The container it was attached for.
    pub container_id: ContainerId,
    /// The interface name inside the container.
    pub container_ifname: IfName,
    /// Host-side veth name.
    pub host_ifname: IfName,
    /// Host-side veth index.
    pub host_ifindex: u32,
}

/// What a detach found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detach {
    /// The veth pair (and with it the routes and the container side) was removed.
    Removed,
    /// There was nothing to remove.
    Absent,
}
