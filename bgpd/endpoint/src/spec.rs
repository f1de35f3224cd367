//! What the caller asks for: validated domain types, so a wrong request never reaches the kernel.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// Why a request is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSpec {
    /// A container id must look like a CNI container id.
    #[error(
        "container id {0:?}: want 1 to {max} characters of [A-Za-z0-9_.-], \
         starting with a letter or digit",
        max = ContainerId::MAX_LEN
    )]
    ContainerId(String),
    /// Interface names are limited by the kernel.
    #[error("interface name {0:?}: want 1 to 15 bytes, no '/', ':' or whitespace, not '.' or '..'")]
    IfName(String),
    /// A namespace name (under /run/netns) cannot contain a path.
    #[error("namespace name {0:?}: want a plain name, or a path containing '/'")]
    NetnsName(String),
    /// MTU outside what a veth and IP accept.
    #[error("MTU {mtu}: want {min} to {max}")]
    Mtu {
        /// The MTU asked for.
        mtu: u32,
        /// The smallest allowed (1280 when IPv6 is configured).
        min: u32,
        /// The largest allowed.
        max: u32,
    },
    /// An endpoint without addresses would be unreachable.
    #[error("no addresses given")]
    NoAddresses,
    /// The same address twice.
    #[error("address {0} given twice")]
    DuplicateAddress(IpAddr),
    /// Only unicast, non-link-local addresses can be container addresses: link-local is the
    /// gateway's space.
    #[error("address {0} is not a routable unicast address")]
    Address(IpAddr),
    /// The namespace given is the one the daemon runs in: attaching would wire the host to itself.
    #[error("namespace {} is the host's own network namespace", .0.display())]
    HostNamespace(PathBuf),
}

/// A container id as CNI defines it (`CNI_CONTAINERID`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(String);

impl ContainerId {
    /// Longest id accepted; keeps the ownership alias below the kernel's 255-byte limit.
    pub const MAX_LEN: usize = 200;

    /// Validates `id`.
    pub fn new(id: &str) -> Result<ContainerId, InvalidSpec> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        let starts_ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if starts_ok && id.len() <= Self::MAX_LEN && id.chars().all(ok_char) {
            Ok(ContainerId(id.to_string()))
        } else {
            Err(InvalidSpec::ContainerId(id.to_string()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ContainerId {
    type Err = InvalidSpec;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ContainerId::new(s)
    }
}

/// A Linux interface name (what `dev_valid_name()` in the kernel accepts).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfName(String);

impl IfName {
    /// Longest name the kernel accepts (IFNAMSIZ - 1).
    pub const MAX_LEN: usize = 15;

    /// Validates `name`.
    pub fn new(name: &str) -> Result<IfName, InvalidSpec> {
        let bad_char = |c: char| c == '/' || c == ':' || c == '\0' || c.is_whitespace();
        if name.is_empty()
            || name.len() > Self::MAX_LEN
            || name == "."
            || name == ".."
            || name.chars().any(bad_char)
        {
            Err(InvalidSpec::IfName(name.to_string()))
        } else {
            Ok(IfName(name.to_string()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for IfName {
    /// `eth0`, what every container expects.
    fn default() -> Self {
        IfName("eth0".to_string())
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for IfName {
    type Err = InvalidSpec;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IfName::new(s)
    }
}

/// The MTU of both ends of the veth pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mtu(u32);

impl Mtu {
    /// Smallest IPv4 MTU (RFC 791).
    pub const MIN: u32 = 68;
    /// Smallest MTU when IPv6 is configured (RFC 8200).
    pub const MIN_IPV6: u32 = 1280;
    /// Largest veth MTU.
    pub const MAX: u32 = 65535;

    /// Validates `mtu` against the IPv4 bounds; IPv6 is checked by [`EndpointSpec::new`].
    pub fn new(mtu: u32) -> Result<Mtu, InvalidSpec> {
        if (Self::MIN..=Self::MAX).contains(&mtu) {
            Ok(Mtu(mtu))
        } else {
            Err(InvalidSpec::Mtu {
                mtu,
                min: Self::MIN,
                max: Self::MAX,
            })
        }
    }

    /// The value in bytes.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for Mtu {
    /// 1500, Ethernet's; set it lower when the fabric's links need room for encapsulation.
    fn default() -> Self {
        Mtu(1500)
    }
}

impl fmt::Display for Mtu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where the container's network namespace is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NetnsRef {
    /// A namespace file: `/proc/<pid>/ns/net`, `/var/run/netns/<name>`, a CNI `CNI_NETNS`.
    Path(PathBuf),
    /// A name under `/run/netns`, as `ip netns` makes them.
    Name(String),
}

impl NetnsRef {
    /// Where `ip netns` keeps named namespaces.
    pub const NAMED_DIR: &'static str = "/run/netns";

    /// Reads `s` as a path if it contains a '/', else as a name under `/run/netns`.
    pub fn parse(s: &str) -> Result<NetnsRef, InvalidSpec> {
        if s.contains('/') {
            Ok(NetnsRef::Path(PathBuf::from(s)))
        } else if s.is_empty() || s == "." || s == ".." || s.contains('\0') {
            Err(InvalidSpec::NetnsName(s.to_string()))
        } else {
            Ok(NetnsRef::Name(s.to_string()))
        }
    }

    /// The file to open.
    pub fn path(&self) -> PathBuf {
        match self {
            NetnsRef::Path(p) => p.clone(),
            NetnsRef::Name(n) => PathBuf::from(Self::NAMED_DIR).join(n),
        }
    }
}

impl FromStr for NetnsRef {
    type Err = InvalidSpec;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NetnsRef::parse(s)
    }
}

/// Everything needed to attach one container interface; valid by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    netns: NetnsRef,
    container_id: ContainerId,
    ifname: IfName,
    addresses: Vec<IpAddr>,
    mtu: Mtu,
}

impl EndpointSpec {
    /// Checks the addresses (at least one, no duplicates, routable unicast) and the MTU against
    /// them (IPv6 needs 1280).
    pub fn new(
        netns: NetnsRef,
        container_id: ContainerId,
        ifname: IfName,
        addresses: Vec<IpAddr>,
        mtu: Mtu,
    ) -> Result<EndpointSpec, InvalidSpec> {
        if addresses.is_empty() {
            return Err(InvalidSpec::NoAddresses);
        }
        for (i, addr) in addresses.iter().enumerate() {
            if !is_routable_unicast(*addr) {
                return Err(InvalidSpec::Address(*addr));
            }
            if addresses[..i].contains(addr) {
                return Err(InvalidSpec::DuplicateAddress(*addr));
            }
        }
        if addresses.iter().any(IpAddr::is_ipv6) && mtu.get() < Mtu::MIN_IPV6 {
            return Err(InvalidSpec::Mtu {
                mtu: mtu.get(),
                min: Mtu::MIN_IPV6,
                max: Mtu::MAX,
            });
        }
        Ok(EndpointSpec {
            netns,
            container_id,
            ifname,
            addresses,
            mtu,
        })
    }

    /// The container's namespace.
    pub fn netns(&self) -> &NetnsRef {
        &self.netns
    }

    /// The container id.
    pub fn container_id(&self) -> &ContainerId {
        &self.container_id
    }

    /// The interface name inside the container.
    pub fn ifname(&self) -> &IfName {
        &self.ifname
    }

    /// The container's addresses, in the order given.
    pub fn addresses(&self) -> &[IpAddr] {
        &self.addresses
    }

    /// The MTU of both ends.
    pub fn mtu(&self) -> Mtu {
        self.mtu
    }

    /// Whether any IPv4 address is configured.
    pub fn has_ipv4(&self) -> bool {
        self.addresses.iter().any(IpAddr::is_ipv4)
    }

    /// Whether any IPv6 address is configured.
    pub fn has_ipv6(&self) -> bool {
        self.addresses.iter().any(IpAddr::is_ipv6)
    }
}

/// Unicast and outside loopback, link-local (the gateway's space), multicast and broadcast.
fn is_routable_unicast(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_broadcast())
        }
        IpAddr::V6(a) => {
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_unicast_link_local()
                || a.is_multicast()
                || a.to_ipv4_mapped().is_some())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn container_ids() {
        for good in ["a", "0abc", "k8s_pod.x-1", &"f".repeat(200)] {
            assert!(ContainerId::new(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", ".a", "a/b", "a b", "ä", &"f".repeat(201)] {
            assert!(ContainerId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn interface_names() {
        for good in ["eth0", "net1", "a", "fifteen-chars-x"] {
            assert!(IfName::new(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "sixteen-chars-xx"] {
            assert!(IfName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn netns_refs() {
        assert_eq!(
            NetnsRef::parse("/proc/1/ns/net").unwrap().path(),
            PathBuf::from("/proc/1/ns/net")
        );
        assert_eq!(
            NetnsRef::parse("ctr1").unwrap().path(),
            PathBuf::from("/run/netns/ctr1")
        );
        for bad in ["", ".", ".."] {
            assert!(NetnsRef::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mtu_bounds() {
        assert!(Mtu::new(67).is_err());
        assert!(Mtu::new(68).is_ok());
        assert!(Mtu::new(65535).is_ok());
        assert!(Mtu::new(65536).is_err());
    }

    fn spec(addrs: &[&str], mtu: u32) -> Result<EndpointSpec, InvalidSpec> {
        EndpointSpec::new(
            NetnsRef::Name("x".into()),
            ContainerId::new("c1").unwrap(),
            IfName::default(),
            addrs.iter().map(|a| ip(a)).collect(),
            Mtu::new(mtu).unwrap(),
        )
    }

    #[test]
    fn addresses_are_checked() {
        assert!(spec(&["10.0.0.1", "fd00::1"], 1500).is_ok());
        assert_eq!(spec(&[], 1500), Err(InvalidSpec::NoAddresses));
        for bad in [
            "0.0.0.0",
            "127.0.0.1",
            "169.254.1.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "ff02::1",
            "::ffff:10.0.0.1",
        ] {
            assert_eq!(
                spec(&[bad], 1500),
                Err(InvalidSpec::Address(ip(bad))),
                "{bad}"
            );
        }
        assert_eq!(
            spec(&["10.0.0.1", "10.0.0.1"], 1500),
            Err(InvalidSpec::DuplicateAddress(ip("10.0.0.1")))
        );
    }

    #[test]
    fn ipv6_needs_1280() {
        assert!(spec(&["10.0.0.1"], 576).is_ok());
        assert!(matches!(
            spec(&["fd00::1"], 1279),
            Err(InvalidSpec::Mtu { min: 1280, .. })
        ));
    }
}
