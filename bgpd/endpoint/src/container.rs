//! The container side of an endpoint, configured from a thread inside its namespace.

use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};

use rtnetlink::Handle;

use crate::attachment::MacAddr;
use crate::error::{Error, Result};
use crate::gateway::{GATEWAY_V4, GATEWAY_V6};
use crate::netns::NetnsFile;
use crate::rtnl::{self, DefaultRoute, IfAddress, LinkState};
use crate::spec::{EndpointSpec, IfName, Mtu};
use crate::sysctl;

/// What the container side ended up as.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ContainerLink {
    pub index: u32,
    pub mac: MacAddr,
}

/// The interface named like the spec's inside the namespace, if any; fails, before anything
/// is changed, if the container routes a family of the spec elsewhere.
pub(crate) async fn inspect(ns: &NetnsFile, spec: &EndpointSpec) -> Result<Option<LinkState>> {
    let ifname = spec.ifname().clone();
    let families = families(spec.addresses());
    ns.run(move || {
        with_netlink(|handle| async move {
            let link = rtnl::link_by_name(&handle, ifname.as_str()).await?;
            for (wanted, gateway) in families {
                if !wanted {
                    continue;
                }
                let ours = our_default(gateway, link.as_ref().map(|l| l.index));
                if let Some(other) = rtnl::default_routes(&handle, gateway.is_ipv6())
                    .await?
                    .into_iter()
                    .find(|d| *d != ours)
                {
                    return Err(Error::DefaultRouteTaken {
                        family: if gateway.is_ipv6() { "IPv6" } else { "IPv4" },
                        existing: other.to_string(),
                    });
                }
            }
            Ok(link)
        })
    })
    .await
}

/// For each family, whether `addresses` has one, with its gateway.
fn families(addresses: &[IpAddr]) -> [(bool, IpAddr); 2] {
    [
        (
            addresses.iter().any(IpAddr::is_ipv4),
            IpAddr::V4(GATEWAY_V4),
        ),
        (
            addresses.iter().any(IpAddr::is_ipv6),
            IpAddr::V6(GATEWAY_V6),
        ),
    ]
}

/// Our default route through `gateway` on interface `oif`.
fn our_default(gateway: IpAddr, oif: Option<u32>) -> DefaultRoute {
    DefaultRoute {
        gateway: Some(gateway),
        oif,
    }
}

/// What the container side must look like.
#[derive(Debug, Clone)]
struct Wanted {
    ifname: IfName,
    alias: String,
    mtu: Mtu,
    addresses: Vec<IpAddr>,
}

/// Brings the container's interface to what `spec` wants: up with alias and MTU, exactly the
/// given host addresses, a default route per family via the link-local gateway, loopback up.
pub(crate) async fn configure(
    ns: &NetnsFile,
    spec: &EndpointSpec,
    alias: &str,
) -> Result<ContainerLink> {
    let wanted = Wanted {
        ifname: spec.ifname().clone(),
        alias: alias.to_string(),
        mtu: spec.mtu(),
        addresses: spec.addresses().to_vec(),
    };
    ns.run(move || with_netlink(|handle| async move { converge(&handle, &wanted).await }))
        .await
}

async fn converge(handle: &Handle, wanted: &Wanted) -> Result<ContainerLink> {
    let has_v6 = wanted.addresses.iter().any(IpAddr::is_ipv6);
    let link = rtnl::link_by_name(handle, wanted.ifname.as_str())
        .await?
        .ok_or_else(|| {
            Error::UnexpectedReply(format!("{} vanished from the container", wanted.ifname))
        })?;
    if has_v6 {
        sysctl::apply(&wanted.ifname, sysctl::CONTAINER_IPV6)?;
    }
    rtnl::set_link(handle, link.index, &wanted.alias, wanted.mtu).await?;
    // A fresh namespace has loopback down; containers expect 127.0.0.1 to work.
    if let Some(lo) = rtnl::link_by_name(handle, "lo").await? {
        rtnl::set_up(handle, lo.index).await?;
    }

    let want: Vec<IfAddress> = wanted
        .addresses
        .iter()
        .map(|a| IfAddress::host(*a))
        .collect();
    let have = rtnl::addresses(handle, link.index).await?;
    for addr in &have {
        // Link-local addresses are the kernel's own (IPv6 autoconfiguration).
        if !want.contains(addr) && !is_link_local(addr.addr) {
            rtnl::delete_address(handle, link.index, *addr).await?;
        }
    }
    for addr in &want {
        if !have.contains(addr) {
            rtnl::add_address(handle, link.index, *addr).await?;
        }
    }

    // Never replace a default route: `inspect` made sure the only one there is ours.
    for (present, gateway) in families(&wanted.addresses) {
        let have = rtnl::default_routes(handle, gateway.is_ipv6())
            .await?
            .contains(&our_default(gateway, Some(link.index)));
        let route = rtnl::default_route(gateway, link.index);
        if present && !have {
            rtnl::add_route(handle, route).await?;
        } else if !present && have {
            rtnl::delete_route(handle, route).await?;
        }
    }

    let v6: Vec<Ipv6Addr> = wanted
        .addresses
        .iter()
        .filter_map(|a| match a {
            IpAddr::V6(a) => Some(*a),
            IpAddr::V4(_) => None,
        })
        .collect();
    if !rtnl::wait_ready(handle, wanted.ifname.as_str(), &v6, rtnl::READY_PATIENCE).await? {
        tracing::warn!(ifname = %wanted.ifname, "the container interface is not ready yet; returning anyway");
    }

    let mac = link
        .mac
        .ok_or_else(|| Error::UnexpectedReply(format!("{} has no MAC address", wanted.ifname)))?;
    Ok(ContainerLink {
        index: link.index,
        mac,
    })
}

fn is_link_local(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.is_unicast_link_local(),
    }
}

/// Runs `work` with a netlink connection opened on the calling thread, i.e. in its namespace.
///
/// Meant for the namespace worker thread: it gets its own single-threaded runtime, so the
/// socket and every task stay on that thread.
fn with_netlink<T, F, Fut>(work: F) -> Result<T>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::Worker(format!("runtime: {e}")))?;
    runtime.block_on(async move {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(Error::NetlinkSocket)?;
        tokio::spawn(connection);
        work(handle).await
    })
}
