//! The few rtnetlink calls the endpoint needs, typed and with errors mapped, on either side.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage, State,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::attachment::MacAddr;
use crate::error::{Error, Result, errno_of};
use crate::spec::{IfName, Mtu};

/// What we need to know about an existing interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkState {
    pub index: u32,
    pub name: String,
    pub kind: Option<InfoKind>,
    pub alias: Option<String>,
    pub mac: Option<MacAddr>,
    pub mtu: Option<u32>,
    /// For a veth: the peer's ifindex (in the peer's namespace).
    pub peer_index: Option<u32>,
}

impl LinkState {
    fn from_message(msg: &LinkMessage) -> LinkState {
        let mut state = LinkState {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            alias: None,
            mac: None,
            mtu: None,
            peer_index: None,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => state.name = n.clone(),
                LinkAttribute::IfAlias(a) => state.alias = Some(a.clone()),
                LinkAttribute::Address(a) => state.mac = MacAddr::from_bytes(a),
                LinkAttribute::Mtu(m) => state.mtu = Some(*m),
                LinkAttribute::Link(l) => state.peer_index = Some(*l),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(k) = info {
                            state.kind = Some(k.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        state
    }

    /// A short description for error messages: kind and alias.
    pub fn describe(&self) -> String {
        let kind = self
            .kind
            .as_ref()
            .map_or_else(|| "no kind".to_string(), |k| format!("{k}"));
        match &self.alias {
            Some(alias) => format!("{kind}, alias {alias:?}"),
            None => format!("{kind}, no alias"),
        }
    }

    /// A veth carrying `alias`, or one with no alias yet (an attach interrupted between
    /// creating the pair and naming it; the hashed name under our prefix vouches for it).
    pub fn is_ours(&self, alias: &str) -> bool {
        self.kind == Some(InfoKind::Veth) && self.alias.as_deref().is_none_or(|a| a == alias)
    }
}

/// True for the errno values that mean "no such thing".
fn is_absent(err: &rtnetlink::Error) -> bool {
    use nix::libc::{ENODEV, ENOENT, ESRCH};
    matches!(errno_of(err), Some(ENODEV | ESRCH | ENOENT))
}

/// The interface named `name`, if there is one.
pub(crate) async fn link_by_name(handle: &Handle, name: &str) -> Result<Option<LinkState>> {
    let mut replies = handle.link().get().match_name(name).execute();
    match replies.try_next().await {
        Ok(Some(msg)) => Ok(Some(LinkState::from_message(&msg))),
        Ok(None) => Ok(None),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(Error::netlink(format!("get link {name}"), e)),
    }
}

/// How long an attach waits for a link to be ready before it returns anyway.
pub(crate) const READY_PATIENCE: Duration = Duration::from_secs(10);

/// Whether interface `name` is operationally up (`IF_OPER_UP`); false while it is absent.
async fn is_oper_up(handle: &Handle, name: &str) -> Result<bool> {
    let mut replies = handle.link().get().match_name(name).execute();
    match replies.try_next().await {
        Ok(Some(msg)) => Ok(msg
            .attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::OperState(State::Up)))),
        Ok(None) => Ok(false),
        Err(e) if is_absent(&e) => Ok(false),
        Err(e) => Err(Error::netlink(format!("get link {name}"), e)),
    }
}

/// The solicited-node multicast group of `addr` (RFC 4291 §2.7.1), as `/proc/net/igmp6`
/// prints groups: 32 hex digits.
fn solicited_node_group(addr: Ipv6Addr) -> String {
    let o = addr.octets();
    format!(
        "ff0200000000000000000001ff{:02x}{:02x}{:02x}",
        o[13], o[14], o[15]
    )
}

/// Whether interface `name` has joined the solicited-node group of every address in `v6`, in
/// the calling thread's namespace: only then does it answer neighbour solicitations for them.
fn solicited_nodes_joined(name: &str, v6: &[Ipv6Addr]) -> Result<bool> {
    if v6.is_empty() {
        return Ok(true);
    }
    // thread-self: the namespace of this thread, which may have entered a container's.
    let path = "/proc/thread-self/net/igmp6";
    let table = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    let joined: Vec<&str> = table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            (fields.next() == Some(name))
                .then(|| fields.next())
                .flatten()
        })
        .collect();
    Ok(v6
        .iter()
        .all(|a| joined.contains(&solicited_node_group(*a).as_str())))
}

/// Waits until interface `name` is ready to carry a container's first packets, at most
/// `patience`; whether it is.
///
/// The kernel finishes turning a link on after it reported success, from work queues that run
/// late on a busy host: a link whose carrier just came (a veth whose peer went up) has no
/// queueing discipline and drops every packet until it is operationally up, and an IPv6
/// address answers neighbour solicitations only once its solicited-node multicast group is
/// joined. An attach that returned earlier would hand out an interface that loses its first
/// packets (a lost neighbour solicitation costs a second).
pub(crate) async fn wait_ready(
    handle: &Handle,
    name: &str,
    v6: &[Ipv6Addr],
    patience: Duration,
) -> Result<bool> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if is_oper_up(handle, name).await? && solicited_nodes_joined(name, v6)? {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every interface in the namespace.
pub(crate) async fn links(handle: &Handle) -> Result<Vec<LinkState>> {
    let msgs: Vec<LinkMessage> = handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| Error::netlink("list links", e))?;
    Ok(msgs.iter().map(LinkState::from_message).collect())
}

/// Creates the veth pair `host`—`peer` with the peer created directly inside the namespace
/// behind `netns_fd`: it never appears in the host namespace, so no half-made interface is left
/// there and no temporary name can clash.
pub(crate) async fn create_veth(
    handle: &Handle,
    host: &IfName,
    peer: &IfName,
    netns_fd: i32,
    mtu: Mtu,
) -> Result<()> {
    let peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
        .name(peer.as_str())
        .mtu(mtu.get())
        .setns_by_fd(netns_fd)
        .build();
    let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(host.as_str())
        .mtu(mtu.get())
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
        .build();
    handle
        .link()
        .add(msg)
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("create veth {host} (peer {peer})"), e))
}

/// Sets alias and MTU and brings the interface up, in one request.
pub(crate) async fn set_link(handle: &Handle, index: u32, alias: &str, mtu: Mtu) -> Result<()> {
    let msg = LinkUnspec::new_with_index(index)
        .alias(alias)
        .mtu(mtu.get())
        .up()
        .build();
    handle
        .link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("set link {index}"), e))
}

/// Brings the interface up.
pub(crate) async fn set_up(handle: &Handle, index: u32) -> Result<()> {
    let msg = LinkUnspec::new_with_index(index).up().build();
    handle
        .link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("set link {index} up"), e))
}

/// Deletes the interface; false if it was already gone.
pub(crate) async fn delete_link(handle: &Handle, index: u32) -> Result<bool> {
    match handle.link().del(index).execute().await {
        Ok(()) => Ok(true),
        Err(e) if is_absent(&e) => Ok(false),
        Err(e) => Err(Error::netlink(format!("delete link {index}"), e)),
    }
}

/// An address on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IfAddress {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl IfAddress {
    /// A host address: /32 or /128.
    pub fn host(addr: IpAddr) -> IfAddress {
        IfAddress {
            addr,
            prefix_len: host_prefix_len(addr),
        }
    }

    fn from_message(msg: &AddressMessage) -> Option<IfAddress> {
        // IPv4 puts the interface's own address in IFA_LOCAL (IFA_ADDRESS is the peer's on
        // point-to-point links); IPv6 only sends IFA_ADDRESS.
        let local = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        });
        let address = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        });
        local.or(address).map(|addr| IfAddress {
            addr,
            prefix_len: msg.header.prefix_len,
        })
    }
}

/// 32 or 128.
pub(crate) fn host_prefix_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The addresses on interface `index`.
pub(crate) async fn addresses(handle: &Handle, index: u32) -> Result<Vec<IfAddress>> {
    let msgs: Vec<AddressMessage> = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(|e| Error::netlink(format!("list addresses of link {index}"), e))?;
    Ok(msgs
        .iter()
        .filter(|m| m.header.index == index)
        .filter_map(IfAddress::from_message)
        .collect())
}

/// Adds `addr` to interface `index` (replacing an equal one); IPv6 skips duplicate address
/// detection, since the address is ours by IPAM and must work at once.
pub(crate) async fn add_address(handle: &Handle, index: u32, addr: IfAddress) -> Result<()> {
    let mut req = handle
        .address()
        .add(index, addr.addr, addr.prefix_len)
        .replace();
    if addr.addr.is_ipv6() {
        req.message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    req.execute().await.map_err(|e| {
        Error::netlink(
            format!(
                "add address {}/{} to link {index}",
                addr.addr, addr.prefix_len
            ),
            e,
        )
    })
}

/// Removes `addr` from interface `index`; absent is fine.
pub(crate) async fn delete_address(handle: &Handle, index: u32, addr: IfAddress) -> Result<()> {
    let mut msg = AddressMessage::default();
    msg.header.index = index;
    msg.header.prefix_len = addr.prefix_len;
    msg.header.family = match addr.addr {
        IpAddr::V4(_) => rtnetlink::packet_route::AddressFamily::Inet,
        IpAddr::V6(_) => rtnetlink::packet_route::AddressFamily::Inet6,
    };
    msg.attributes.push(AddressAttribute::Local(addr.addr));
    msg.attributes.push(AddressAttribute::Address(addr.addr));
    match handle.address().del(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) if is_absent(&e) || errno_of(&e) == Some(nix::libc::EADDRNOTAVAIL) => Ok(()),
        Err(e) => Err(Error::netlink(
            format!("delete address {} from link {index}", addr.addr),
            e,
        )),
    }
}

/// Where our host routes go and how they are tagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteTag {
    /// The route protocol number (`ip route … proto <n>`) the fabric owns.
    pub protocol: u8,
    /// The routing table.
    pub table: u32,
}

/// A host route message: `dest/32|128 dev <oif> scope link proto <p> table <t>`.
pub(crate) fn host_route(dest: IpAddr, oif: u32, tag: RouteTag) -> RouteMessage {
    match dest {
        IpAddr::V4(a) => tagged(
            RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(a, 32),
            oif,
            tag,
        ),
        IpAddr::V6(a) => tagged(
            RouteMessageBuilder::<Ipv6Addr>::new().destination_prefix(a, 128),
            oif,
            tag,
        ),
    }
}

/// Adds our tag and the interface to a route of either family.
fn tagged<T>(builder: RouteMessageBuilder<T>, oif: u32, tag: RouteTag) -> RouteMessage {
    builder
        .scope(RouteScope::Link)
        .protocol(RouteProtocol::from(tag.protocol))
        .table_id(tag.table)
        .output_interface(oif)
        .build()
}

/// The container's default route through the link-local gateway on `oif`.
pub(crate) fn default_route(gateway: IpAddr, oif: u32) -> RouteMessage {
    match gateway {
        // The gateway is in no subnet of the container's, so the kernel must take our word
        // that it is on the link.
        IpAddr::V4(gw) => RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gw)
            .onlink()
            .protocol(RouteProtocol::Boot)
            .output_interface(oif)
            .build(),
        IpAddr::V6(gw) => RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(gw)
            .protocol(RouteProtocol::Boot)
            .output_interface(oif)
            .build(),
    }
}

/// Where a default route of the main table goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DefaultRoute {
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
}

impl std::fmt::Display for DefaultRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("default")?;
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        match self.oif {
            Some(oif) => write!(f, " dev #{oif}"),
            None => f.write_str(" (multipath or unreachable)"),
        }
    }
}

/// The default routes of the main table, IPv4 or IPv6.
pub(crate) async fn default_routes(handle: &Handle, ipv6: bool) -> Result<Vec<DefaultRoute>> {
    let filter = if ipv6 {
        RouteMessageBuilder::<Ipv6Addr>::new().build()
    } else {
        RouteMessageBuilder::<Ipv4Addr>::new().build()
    };
    let msgs: Vec<RouteMessage> = handle
        .route()
        .get(filter)
        .execute()
        .try_collect()
        .await
        .map_err(|e| Error::netlink("dump routes", e))?;
    Ok(msgs
        .iter()
        .filter(|m| {
            m.header.destination_prefix_length == 0
                && m.header.kind == RouteType::Unicast
                && route_table(m) == u32::from(RouteHeader::RT_TABLE_MAIN)
        })
        .map(|m| DefaultRoute {
            gateway: m.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
                RouteAttribute::Gateway(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
                _ => None,
            }),
            oif: m.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            }),
        })
        .collect())
}

/// Whether the namespace routes `dest` as plain unicast (`ip route get <dest>`), and through
/// which interface.
pub(crate) async fn unicast_route_to(handle: &Handle, dest: IpAddr) -> Result<Option<u32>> {
    // A bare request: strict checking refuses lookups with table, protocol or type set.
    let mut query = RouteMessage::default();
    query.header.address_family = match dest {
        IpAddr::V4(_) => rtnetlink::packet_route::AddressFamily::Inet,
        IpAddr::V6(_) => rtnetlink::packet_route::AddressFamily::Inet6,
    };
    query.header.destination_prefix_length = host_prefix_len(dest);
    query
        .attributes
        .push(RouteAttribute::Destination(RouteAddress::from(dest)));
    let mut replies = handle.route().get(query).execute();
    match replies.try_next().await {
        Ok(Some(route)) if route.header.kind == RouteType::Unicast => {
            Ok(route.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            }))
        }
        Ok(_) => Ok(None),
        Err(e)
            if matches!(
                errno_of(&e),
                Some(nix::libc::ENETUNREACH | nix::libc::EHOSTUNREACH)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::netlink(format!("route get {dest}"), e)),
    }
}

/// Adds `route`; fails if the kernel has one with the same key.
pub(crate) async fn add_route(handle: &Handle, route: RouteMessage) -> Result<()> {
    let what = describe_route(&route);
    handle
        .route()
        .add(route)
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("add route {what}"), e))
}

/// Adds or replaces `route` (NLM_F_REPLACE: idempotent, no gap).
pub(crate) async fn replace_route(handle: &Handle, route: RouteMessage) -> Result<()> {
    let what = describe_route(&route);
    handle
        .route()
        .add(route)
        .replace()
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("replace route {what}"), e))
}

/// Deletes `route`; absent is fine.
pub(crate) async fn delete_route(handle: &Handle, route: RouteMessage) -> Result<()> {
    let what = describe_route(&route);
    match handle.route().del(route).execute().await {
        Ok(()) => Ok(()),
        Err(e) if is_absent(&e) => Ok(()),
        Err(e) => Err(Error::netlink(format!("delete route {what}"), e)),
    }
}

/// Host routes of ours (protocol and table of `tag`) through interface `oif`: their destinations.
///
/// Needs a socket with strict checking on, so the kernel filters the dump by table, protocol and
/// interface instead of sending the whole table.
pub(crate) async fn host_routes_via(
    handle: &Handle,
    oif: u32,
    tag: RouteTag,
) -> Result<Vec<RouteMessage>> {
    let mut found = Vec::new();
    for mut filter in [
        tagged(RouteMessageBuilder::<Ipv4Addr>::new(), oif, tag),
        tagged(RouteMessageBuilder::<Ipv6Addr>::new(), oif, tag),
    ] {
        // Unset fields do not filter: any scope, any type.
        filter.header.scope = RouteScope::Universe;
        filter.header.kind = RouteType::Unspec;
        let msgs: Vec<RouteMessage> = handle
            .route()
            .get(filter)
            .execute()
            .try_collect()
            .await
            .map_err(|e| Error::netlink(format!("dump routes via link {oif}"), e))?;
        // Filter again: a kernel without strict checking ignores the request's fields.
        found.extend(msgs.into_iter().filter(|m| {
            m.header.protocol == RouteProtocol::from(tag.protocol)
                && route_table(m) == tag.table
                && m.attributes.contains(&RouteAttribute::Oif(oif))
        }));
    }
    Ok(found)
}

/// The destination of `route` as (address, prefix length).
pub(crate) fn route_destination(route: &RouteMessage) -> Option<IpAddr> {
    route.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
        RouteAttribute::Destination(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
        _ => None,
    })
}

fn route_table(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table))
}

fn describe_route(route: &RouteMessage) -> String {
    match route_destination(route) {
        Some(dest) => format!("{dest}/{}", route.header.destination_prefix_length),
        None => "default".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_tables_go_in_an_attribute() {
        let tag = RouteTag {
            protocol: 200,
            table: 1000,
        };
        let msg = host_route("10.0.0.1".parse().unwrap(), 7, tag);
        assert_eq!(route_table(&msg), 1000);
        assert_eq!(msg.header.destination_prefix_length, 32);
        let small = host_route(
            "fd00::1".parse().unwrap(),
            7,
            RouteTag { table: 254, ..tag },
        );
        assert_eq!(route_table(&small), 254);
        assert_eq!(small.header.destination_prefix_length, 128);
    }

    #[test]
    fn solicited_node_groups_take_the_last_24_bits() {
        let a: Ipv6Addr = "fd00:244::12:abcd".parse().unwrap();
        assert_eq!(solicited_node_group(a), "ff0200000000000000000001ff12abcd");
        let gw: Ipv6Addr = "fe80::1".parse().unwrap();
        assert_eq!(solicited_node_group(gw), "ff0200000000000000000001ff000001");
    }

    #[test]
    fn ownership_needs_veth_and_our_alias() {
        let state = |kind, alias: Option<&str>| LinkState {
            index: 1,
            name: "x".into(),
            kind,
            alias: alias.map(str::to_string),
            mac: None,
            mtu: None,
            peer_index: None,
        };
        assert!(state(Some(InfoKind::Veth), Some("ours")).is_ours("ours"));
        assert!(state(Some(InfoKind::Veth), None).is_ours("ours"));
        assert!(!state(Some(InfoKind::Veth), Some("theirs")).is_ours("ours"));
        assert!(!state(Some(InfoKind::Dummy), Some("ours")).is_ours("ours"));
        assert!(!state(None, None).is_ours("ours"));
    }
}
