//! Finding this node's address (the BGP next hop its peers use) as `node.address` says.

use std::net::{IpAddr, Ipv6Addr, UdpSocket};

use bgpd_config::AddressDetection;

/// One address on one interface, as the host reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    /// Interface name.
    pub ifname: String,
    /// The interface is up.
    pub up: bool,
    /// The address.
    pub address: IpAddr,
}

/// Why no address was found.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    /// No interface address matched the rule.
    #[error("no node address found: {0}")]
    NotFound(String),
    /// The host's interfaces could not be listed.
    #[error("listing interfaces: {0}")]
    Io(#[from] std::io::Error),
}

/// Interfaces never chosen by `first_found`: container, bridge and virtual devices, and ours.
const SKIPPED_PREFIXES: [&str; 9] = [
    "lo", "docker", "br-", "veth", "cni", "virbr", "fab", "bgpd", "flannel",
];

/// Whether an address can be a node address: global unicast, not loopback or link-local.
fn usable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !(a.is_loopback() || a.is_link_local() || a.is_unspecified()),
        IpAddr::V6(a) => {
            !(a.is_loopback() || a.is_unspecified() || (a.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// Picks the node address from the host's interface addresses (pure; IPv4 before IPv6 on an
/// interface). `can_reach` is resolved by [`detect`] since it asks the kernel.
pub fn choose(
    rule: &AddressDetection,
    addresses: &[InterfaceAddress],
) -> Result<IpAddr, AddressError> {
    let candidates = |keep: &dyn Fn(&InterfaceAddress) -> bool| {
        let mut found: Vec<&InterfaceAddress> = addresses
            .iter()
            .filter(|a| a.up && usable(a.address) && keep(a))
            .collect();
        found.sort_by_key(|a| a.address.is_ipv6());
        found.first().map(|a| a.address)
    };
    match rule {
        AddressDetection::Ip(ip) => Ok(*ip),
        AddressDetection::Interface(pattern) => candidates(&|a| pattern.matches(&a.ifname))
            .ok_or_else(|| AddressError::NotFound("no up interface matches node.address.interface with a global address".into())),
        AddressDetection::FirstFound => candidates(&|a| {
            !SKIPPED_PREFIXES.iter().any(|p| a.ifname.starts_with(p))
        })
        .ok_or_else(|| AddressError::NotFound("no up interface with a global address (loopback, docker, bridge, veth and our own interfaces are skipped)".into())),
        AddressDetection::CanReach(_) => Err(AddressError::NotFound(
            "can_reach is resolved by the kernel, not from the interface list".into(),
        )),
    }
}

/// Finds the node address on this host.
pub fn detect(rule: &AddressDetection) -> Result<IpAddr, AddressError> {
    if let AddressDetection::CanReach(target) = rule {
        // connect() on a UDP socket only selects a route and a source; no packet is sent.
        let bind: IpAddr = if target.is_ipv4() {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        };
        let socket = UdpSocket::bind((bind, 0))?;
        socket.connect((*target, 9))?;
        return Ok(socket.local_addr()?.ip());
    }
    choose(rule, &host_addresses()?)
}

/// The host's interface addresses.
fn host_addresses() -> Result<Vec<InterfaceAddress>, AddressError> {
    let list = nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)?;
    Ok(list
        .filter_map(|ifa| {
            let storage = ifa.address?;
            let address = if let Some(v4) = storage.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else {
                IpAddr::V6(storage.as_sockaddr_in6()?.ip())
            };
            Some(InterfaceAddress {
                up: ifa.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP),
                ifname: ifa.interface_name,
                address,
            })
        })
        .collect())
}

/// The first global IPv6 address on the interface that holds `node` (pure).
pub fn companion(addresses: &[InterfaceAddress], node: IpAddr) -> Option<Ipv6Addr> {
    let ifname = &addresses.iter().find(|a| a.address == node)?.ifname;
    addresses.iter().find_map(|a| match a.address {
        IpAddr::V6(v6) if &a.ifname == ifname && usable(a.address) => Some(v6),
        _ => None,
    })
}

/// For an IPv4 node address, the IPv6 address beside it on its interface: the next hop our
/// IPv6 routes carry over IPv4 sessions. `None` for an IPv6 node address or none found.
pub fn companion_v6(node: IpAddr) -> Option<Ipv6Addr> {
    if node.is_ipv6() {
        return None;
    }
    companion(&host_addresses().ok()?, node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(ifname: &str, up: bool, address: &str) -> InterfaceAddress {
        InterfaceAddress {
            ifname: ifname.into(),
            up,
            address: address.parse().unwrap(),
        }
    }

    fn rule(json: &str) -> AddressDetection {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn table() {
        let host = vec![
            a("lo", true, "127.0.0.1"),
            a("docker0", true, "172.17.0.1"),
            a("veth12", true, "10.9.9.9"),
            a("bgpd1234", true, "10.8.8.8"),
            a("eth0", true, "fe80::1"),
            a("eth0", true, "2001:db8::5"),
            a("eth0", true, "192.0.2.5"),
            a("eth1", false, "198.51.100.7"),
            a("ens3", true, "203.0.113.9"),
        ];
        let cases: &[(&str, Option<&str>)] = &[
            (r#""first_found""#, Some("192.0.2.5")),
            (r#"{"interface": "^ens"}"#, Some("203.0.113.9")),
            (r#"{"interface": "^eth1$"}"#, None),
            (r#"{"interface": "^nomatch$"}"#, None),
            (r#"{"ip": "192.0.2.77"}"#, Some("192.0.2.77")),
        ];
        for (r, want) in cases {
            let got = choose(&rule(r), &host).ok();
            assert_eq!(got, want.map(|w| w.parse().unwrap()), "{r}");
        }
        assert_eq!(
            companion(&host, "192.0.2.5".parse().unwrap()),
            Some("2001:db8::5".parse().unwrap())
        );
        assert_eq!(companion(&host, "203.0.113.9".parse().unwrap()), None);
        let only_containers = vec![a("docker0", true, "172.17.0.1"), a("lo", true, "127.0.0.1")];
        assert!(choose(&AddressDetection::FirstFound, &only_containers).is_err());
    }

    #[test]
    fn can_reach_uses_the_source_the_kernel_picks() {
        let got = detect(&AddressDetection::CanReach("127.0.0.1".parse().unwrap())).unwrap();
        assert_eq!(got, "127.0.0.1".parse::<IpAddr>().unwrap());
    }
}
