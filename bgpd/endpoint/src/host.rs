//! The host side of an endpoint: sysctls, the IPv6 gateway address and the host routes.

use std::net::IpAddr;

use rtnetlink::Handle;

use crate::attachment::HostRoute;
use crate::error::Result;
use crate::gateway::{GATEWAY_V6, GATEWAY_V6_PREFIX_LEN};
use crate::rtnl::{self, IfAddress, RouteTag};
use crate::spec::{EndpointSpec, IfName};
use crate::sysctl;

/// Brings the host-side veth `index` to what `spec` wants; returns the host routes.
///
/// Only differences are written: routes already there are left alone (no churn for the kernel
/// reconcile's monitor), stale ones of ours through this interface are removed.
pub(crate) async fn configure(
    handle: &Handle,
    index: u32,
    ifname: &IfName,
    alias: &str,
    spec: &EndpointSpec,
    tag: RouteTag,
) -> Result<Vec<HostRoute>> {
    // Before the link goes up, so IPv6 starts without duplicate address detection.
    if spec.has_ipv4() {
        sysctl::apply(ifname, sysctl::HOST_IPV4)?;
    }
    if spec.has_ipv6() {
        sysctl::apply(ifname, sysctl::HOST_IPV6)?;
    }
    rtnl::set_link(handle, index, alias, spec.mtu()).await?;
    if spec.has_ipv6() {
        let gateway = IfAddress {
            addr: IpAddr::V6(GATEWAY_V6),
            prefix_len: GATEWAY_V6_PREFIX_LEN,
        };
        if !rtnl::addresses(handle, index).await?.contains(&gateway) {
            rtnl::add_address(handle, index, gateway).await?;
        }
    }

    let existing = rtnl::host_routes_via(handle, index, tag).await?;
    let existing_dests: Vec<IpAddr> = existing
        .iter()
        .filter_map(rtnl::route_destination)
        .collect();
    for route in existing {
        let wanted =
            rtnl::route_destination(&route).is_some_and(|dest| spec.addresses().contains(&dest));
        if !wanted {
            rtnl::delete_route(handle, route).await?;
        }
    }
    let mut routes = Vec::with_capacity(spec.addresses().len());
    for &address in spec.addresses() {
        if !existing_dests.contains(&address) {
            rtnl::replace_route(handle, rtnl::host_route(address, index, tag)).await?;
        }
        routes.push(HostRoute {
            address,
            ifindex: index,
            tag,
        });
    }
    Ok(routes)
}
