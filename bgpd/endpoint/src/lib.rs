//! Container endpoint plumbing: veth pair, namespace, addresses, proxy-ARP gateway.
//!
//! [`Endpoints::attach`] wires one container interface to the host the way Calico does: a veth
//! pair whose host end is named from a hash of the container id and interface
//! ([`host_ifname`]), the other end created inside the container's namespace, the container's
//! addresses as /32 and /128, a default route via a link-local gateway the host answers for
//! ([`GATEWAY_V4`] by proxy ARP, [`GATEWAY_V6`] held by the host end), and a host route per
//! address tagged with the fabric's route protocol. [`Endpoints::detach`] undoes it. Both are
//! idempotent. See the README for the scheme and the reasons.

mod attachment;
mod container;
mod endpoints;
mod error;
mod gateway;
mod host;
mod naming;
mod netns;
mod rtnl;
mod spec;
mod sysctl;

pub use attachment::{Attachment, Detach, HostEndpoint, HostRoute, MacAddr};
pub use endpoints::Endpoints;
pub use error::{Error, Result, Side};
pub use gateway::{GATEWAY_V4, GATEWAY_V6};
pub use naming::{HOST_IFNAME_PREFIX, host_ifname, ownership_alias, parse_ownership_alias};
pub use netns::NetnsFile;
pub use rtnl::RouteTag;
pub use spec::{ContainerId, EndpointSpec, IfName, InvalidSpec, Mtu, NetnsRef};
