//! Attach and detach: the one entry point the daemon and the CNI plugin use.

use std::net::{IpAddr, Ipv6Addr};

use rtnetlink::Handle;
use rtnetlink::packet_route::link::InfoKind;

use crate::attachment::{Attachment, Detach, HostEndpoint};
use crate::container;
use crate::error::{Error, Result, Side};
use crate::gateway::{GATEWAY_V4, GATEWAY_V6};
use crate::host;
use crate::naming::{HOST_IFNAME_PREFIX, host_ifname, ownership_alias, parse_ownership_alias};
use crate::netns::NetnsFile;
use crate::rtnl::{self, LinkState, RouteTag};
use crate::spec::{ContainerId, EndpointSpec, IfName};

/// Plumbs container endpoints into the host's network namespace (the caller's).
///
/// Calls for the same endpoint must not run concurrently (the daemon serializes per endpoint);
/// calls for different endpoints may.
#[derive(Debug, Clone)]
pub struct Endpoints {
    handle: Handle,
    tag: RouteTag,
}

impl Endpoints {
    /// Opens a netlink connection in the caller's namespace; host routes get `tag`.
    ///
    /// Needs a tokio runtime with I/O and timers (the connection runs as a task on it, and an
    /// attach waits until the kernel has made the new link ready).
    pub fn new(tag: RouteTag) -> Result<Endpoints> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        // Strict checking lets the kernel filter route dumps by table, protocol and interface.
        let (connection, handle, _) =
            rtnetlink::new_connection_with_strict_check().map_err(Error::NetlinkSocket)?;
        runtime.spawn(connection);
        Ok(Endpoints { handle, tag })
    }

    /// The route protocol and table host routes are installed with.
    pub fn route_tag(&self) -> RouteTag {
        self.tag
    }

    /// Whether the host can answer containers' ARP for [`GATEWAY_V4`](crate::GATEWAY_V4).
    ///
    /// Linux answers proxy ARP only for an address it routes as unicast out of another
    /// interface; a host without a default route (or one covering 169.254.1.1) leaves IPv4
    /// containers without a gateway. The daemon checks this at startup and says so.
    pub async fn ipv4_gateway_answerable(&self) -> Result<bool> {
        let routed = rtnl::unicast_route_to(&self.handle, IpAddr::V4(GATEWAY_V4)).await?;
        Ok(routed.is_some())
    }

    /// Attaches the container interface `spec` describes, or brings an existing attachment to
    /// it (changed addresses or MTU); attaching twice gives the same result.
    pub async fn attach(&self, spec: &EndpointSpec) -> Result<Attachment> {
        let ns = NetnsFile::open(spec.netns())?;
        let host_name = host_ifname(spec.container_id(), spec.ifname());
        let alias = ownership_alias(spec.container_id(), spec.ifname());

        let host = rtnl::link_by_name(&self.handle, host_name.as_str()).await?;
        if let Some(link) = host.as_ref().filter(|l| !l.is_ours(&alias)) {
            return Err(clash(Side::Host, link));
        }
        let peer = container::inspect(&ns, spec).await?;
        let paired = match (&host, &peer) {
            (Some(h), Some(p)) => {
                p.is_ours(&alias) && p.peer_index == Some(h.index) && h.peer_index == Some(p.index)
            }
            _ => false,
        };
        if let Some(link) = peer.as_ref().filter(|_| !paired) {
            return Err(clash(Side::Container, link));
        }
        if !paired {
            if let Some(stale) = &host {
                // Ours, but its peer is not in this namespace: left by an attach that was cut
                // short or that went to a namespace now gone. Start over.
                tracing::info!(ifname = %host_name, "replacing a stale host-side veth");
                rtnl::delete_link(&self.handle, stale.index).await?;
            }
            rtnl::create_veth(
                &self.handle,
                &host_name,
                spec.ifname(),
                ns.raw_fd(),
                spec.mtu(),
            )
            .await?;
        }
        let host = rtnl::link_by_name(&self.handle, host_name.as_str())
            .await?
            .ok_or_else(|| {
                Error::UnexpectedReply(format!("{host_name} vanished after creation"))
            })?;

        let host_routes =
            host::configure(&self.handle, host.index, &host_name, &alias, spec, self.tag).await?;
        let container = container::configure(&ns, spec, &alias).await?;
        let gateway: &[Ipv6Addr] = if spec.has_ipv6() { &[GATEWAY_V6] } else { &[] };
        if !rtnl::wait_ready(
            &self.handle,
            host_name.as_str(),
            gateway,
            rtnl::READY_PATIENCE,
        )
        .await?
        {
            tracing::warn!(ifname = %host_name, "the host-side interface is not ready yet; returning anyway");
        }
        Ok(Attachment {
            container_id: spec.container_id().clone(),
            host_ifname: host_name,
            host_ifindex: host.index,
            container_ifname: spec.ifname().clone(),
            container_ifindex: container.index,
            container_mac: container.mac,
            addresses: spec.addresses().to_vec(),
            mtu: spec.mtu(),
            host_routes,
        })
    }

    /// Removes the veth pair of `ifname` in container `id`, and with it the container side,
    /// its addresses and routes, and the host routes. Absent is fine.
    ///
    /// Needs no namespace: the host side is found by its name, and deleting one end of a veth
    /// deletes the other wherever it is.
    pub async fn detach(&self, id: &ContainerId, ifname: &IfName) -> Result<Detach> {
        let host_name = host_ifname(id, ifname);
        let alias = ownership_alias(id, ifname);
        match rtnl::link_by_name(&self.handle, host_name.as_str()).await? {
            None => Ok(Detach::Absent),
            Some(link) if !link.is_ours(&alias) => Err(clash(Side::Host, &link)),
            Some(link) => Ok(if rtnl::delete_link(&self.handle, link.index).await? {
                Detach::Removed
            } else {
                Detach::Absent
            }),
        }
    }

    /// Our endpoints on this host: veths under our prefix whose alias names a container and
    /// whose name matches it. For the daemon after a restart, to garbage-collect endpoints of
    /// containers that are gone and to rebuild its wanted routes.
    pub async fn list(&self) -> Result<Vec<HostEndpoint>> {
        let links = rtnl::links(&self.handle).await?;
        Ok(links
            .into_iter()
            .filter(|l| l.name.starts_with(HOST_IFNAME_PREFIX) && l.kind == Some(InfoKind::Veth))
            .filter_map(|l| {
                let (container_id, container_ifname) = parse_ownership_alias(l.alias.as_deref()?)?;
                let host_ifname = host_ifname(&container_id, &container_ifname);
                (host_ifname.as_str() == l.name).then_some(HostEndpoint {
                    container_id,
                    container_ifname,
                    host_ifname,
                    host_ifindex: l.index,
                })
            })
            .collect())
    }
}

fn clash(side: Side, link: &LinkState) -> Error {
    Error::NameClash {
        side,
        ifname: link.name.clone(),
        what: link.describe(),
    }
}
