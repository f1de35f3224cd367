//! What a test asks of a peer daemon: one struct every launcher renders into its own config.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;

/// An address family the launchers speak: unicast only, as a container fabric needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 unicast (AFI 1, SAFI 1).
    Ipv4Unicast,
    /// IPv6 unicast (AFI 2, SAFI 1).
    Ipv6Unicast,
}

impl Family {
    /// The family an address (or a prefix's address) belongs to.
    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Ipv4Unicast,
            IpAddr::V6(_) => Family::Ipv6Unicast,
        }
    }
}

/// A standard community (RFC 1997), shown as `asn:value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Community {
    /// The high 16 bits, by convention an AS number.
    pub asn: u16,
    /// The low 16 bits.
    pub value: u16,
}

impl Community {
    /// `asn:value`.
    pub fn new(asn: u16, value: u16) -> Community {
        Community { asn, value }
    }

    /// From the 32-bit wire value.
    pub fn from_u32(raw: u32) -> Community {
        Community::new((raw >> 16) as u16, raw as u16)
    }

    /// Parses `asn:value`, or a well-known name as FRR prints it (`noExport`, …).
    pub fn parse(text: &str) -> Option<Community> {
        let well_known = match text {
            "noExport" | "no-export" => Some(0xFF01),
            "noAdvertise" | "no-advertise" => Some(0xFF02),
            "noExportSubconfed" | "no-export-subconfed" => Some(0xFF03),
            "noPeer" | "no-peer" => Some(0xFF04),
            "blackhole" => Some(0x029A),
            _ => None,
        };
        if let Some(value) = well_known {
            return Some(Community::new(0xFFFF, value));
        }
        let (asn, value) = text.trim().split_once(':')?;
        Some(Community::new(asn.parse().ok()?, value.parse().ok()?))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.asn, self.value)
    }
}

/// A large community (RFC 8092), shown as `global:local1:local2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LargeCommunity {
    /// Global administrator, by convention an AS number.
    pub global: u32,
    /// First local data part.
    pub local1: u32,
    /// Second local data part.
    pub local2: u32,
}

impl LargeCommunity {
    /// `global:local1:local2`.
    pub fn new(global: u32, local1: u32, local2: u32) -> LargeCommunity {
        LargeCommunity {
            global,
            local1,
            local2,
        }
    }

    /// Parses `g:l1:l2`, also BIRD's `(g, l1, l2)`.
    pub fn parse(text: &str) -> Option<LargeCommunity> {
        let mut parts = text
            .trim_matches(|c| c == '(' || c == ')')
            .split([':', ','])
            .map(|p| p.trim().parse::<u32>());
        let large = LargeCommunity::new(
            parts.next()?.ok()?,
            parts.next()?.ok()?,
            parts.next()?.ok()?,
        );
        parts.next().is_none().then_some(large)
    }
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.global, self.local1, self.local2)
    }
}

/// Graceful restart (RFC 4724) as the peer offers it to one neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GracefulRestart {
    /// No capability: the session's routes go when it goes.
    #[default]
    Disabled,
    /// Helper only: keeps a restarting neighbour's routes, never restarts gracefully itself.
    Helper,
    /// Restarting speaker and helper, announcing this restart time in seconds.
    Enabled {
        /// Seconds the neighbour should keep our routes while we restart.
        restart_time: u16,
    },
}

/// ADD-PATH (RFC 7911) directions offered to one neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddPath {
    /// Advertise several paths per prefix.
    pub send: bool,
    /// Accept several paths per prefix.
    pub receive: bool,
}

/// One BGP neighbour of the peer. The session's transport family is the family it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbor {
    /// The neighbour's address.
    pub address: IpAddr,
    /// The neighbour's AS; equal to the peer's own AS for iBGP.
    pub remote_as: u32,
    /// TCP port the neighbour listens on.
    pub remote_port: u16,
    /// Source address for the session; `None` lets the daemon pick.
    pub local_address: Option<IpAddr>,
    /// Wait for the neighbour to connect, never connect out.
    pub passive: bool,
    /// Hold time to offer (seconds); `None` keeps the daemon's default.
    pub hold_time: Option<u16>,
    /// TCP-MD5 (RFC 2385) password.
    pub password: Option<String>,
    /// eBGP multihop with this TTL; `None` for a directly connected neighbour.
    pub multihop: Option<u8>,
    /// The neighbour is a route-reflector client of this peer (RFC 4456).
    pub rr_client: bool,
    /// Graceful restart towards this neighbour.
    pub graceful_restart: GracefulRestart,
    /// ADD-PATH towards this neighbour.
    pub add_path: AddPath,
}

impl Neighbor {
    /// An active neighbour on port 179 with the daemon's defaults for everything else.
    pub fn new(address: IpAddr, remote_as: u32) -> Neighbor {
        Neighbor {
            address,
            remote_as,
            remote_port: 179,
            local_address: None,
            passive: false,
            hold_time: None,
            password: None,
            multihop: None,
            rr_client: false,
            graceful_restart: GracefulRestart::Disabled,
            add_path: AddPath::default(),
        }
    }

    /// The family this session carries.
    pub fn family(&self) -> Family {
        Family::of(self.address)
    }

    /// Connects to the neighbour on `port` instead of 179.
    pub fn remote_port(mut self, port: u16) -> Neighbor {
        self.remote_port = port;
        self
    }

    /// Uses `addr` as the session's source address.
    pub fn local_address(mut self, addr: IpAddr) -> Neighbor {
        self.local_address = Some(addr);
        self
    }

    /// Only accepts connections from the neighbour.
    pub fn passive(mut self) -> Neighbor {
        self.passive = true;
        self
    }

    /// Offers `seconds` as hold time (keepalives every third of it).
    pub fn hold_time(mut self, seconds: u16) -> Neighbor {
        self.hold_time = Some(seconds);
        self
    }

    /// Signs the session with TCP-MD5.
    pub fn password(mut self, password: &str) -> Neighbor {
        self.password = Some(password.to_string());
        self
    }

    /// eBGP multihop with `ttl`.
    pub fn multihop(mut self, ttl: u8) -> Neighbor {
        self.multihop = Some(ttl);
        self
    }

    /// Treats the neighbour as a route-reflector client.
    pub fn rr_client(mut self) -> Neighbor {
        self.rr_client = true;
        self
    }

    /// Sets graceful restart towards the neighbour.
    pub fn graceful_restart(mut self, gr: GracefulRestart) -> Neighbor {
        self.graceful_restart = gr;
        self
    }

    /// Offers ADD-PATH in the given directions.
    pub fn add_path(mut self, send: bool, receive: bool) -> Neighbor {
        self.add_path = AddPath { send, receive };
        self
    }

    pub(crate) fn is_ibgp(&self, local_as: u32) -> bool {
        self.remote_as == local_as
    }
}

/// A route the peer originates, with the attributes it should carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The prefix.
    pub prefix: IpNetwork,
    /// Next hop to advertise; `None` lets the daemon use its own session address.
    pub next_hop: Option<IpAddr>,
    /// AS numbers the path carries after the peer's own AS (which eBGP adds): prepends or a
    /// made-up origin.
    pub as_path: Vec<u32>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF (sent to iBGP neighbours only).
    pub local_pref: Option<u32>,
    /// COMMUNITIES.
    pub communities: Vec<Community>,
    /// LARGE_COMMUNITY.
    pub large_communities: Vec<LargeCommunity>,
}

impl Route {
    /// A route for `prefix` with no optional attributes.
    pub fn new(prefix: IpNetwork) -> Route {
        Route {
            prefix,
            next_hop: None,
            as_path: Vec::new(),
            med: None,
            local_pref: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
        }
    }

    /// A route for `prefix` given as text, e.g. `"10.1.0.0/24"`.
    pub fn parse(prefix: &str) -> Result<Route, ipnetwork::IpNetworkError> {
        prefix.parse().map(Route::new)
    }

    /// The route's family.
    pub fn family(&self) -> Family {
        Family::of(self.prefix.ip())
    }

    /// Advertises `addr` as next hop.
    pub fn next_hop(mut self, addr: IpAddr) -> Route {
        self.next_hop = Some(addr);
        self
    }

    /// Puts `asns` in the AS_PATH after the peer's own AS.
    pub fn as_path(mut self, asns: &[u32]) -> Route {
        self.as_path = asns.to_vec();
        self
    }

    /// Sets MULTI_EXIT_DISC.
    pub fn med(mut self, med: u32) -> Route {
        self.med = Some(med);
        self
    }

    /// Sets LOCAL_PREF.
    pub fn local_pref(mut self, pref: u32) -> Route {
        self.local_pref = Some(pref);
        self
    }

    /// Adds a community.
    pub fn community(mut self, asn: u16, value: u16) -> Route {
        self.communities.push(Community::new(asn, value));
        self
    }

    /// Adds a large community.
    pub fn large_community(mut self, global: u32, local1: u32, local2: u32) -> Route {
        self.large_communities
            .push(LargeCommunity::new(global, local1, local2));
        self
    }
}

/// Everything a peer daemon is told: identity, neighbours and the routes it originates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's own AS.
    pub asn: u32,
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// TCP port to listen on.
    pub listen_port: u16,
    /// Addresses to listen on; empty for all. BIRD and ExaBGP have no global listen address:
    /// there the first one of a session's family is that session's source address (unless the
    /// neighbour sets `local_address`).
    pub listen_addresses: Vec<IpAddr>,
    /// Route-reflector cluster id; the router id when `None` (RFC 4456 default).
    pub cluster_id: Option<Ipv4Addr>,
    /// The neighbours.
    pub neighbors: Vec<Neighbor>,
    /// Routes originated from the start; `announce`/`withdraw` change this list.
    pub routes: Vec<Route>,
}

impl PeerConfig {
    /// A peer in `asn` with `router_id`, listening on port 179 of every address.
    pub fn new(asn: u32, router_id: Ipv4Addr) -> PeerConfig {
        PeerConfig {
            asn,
            router_id,
            listen_port: 179,
            listen_addresses: Vec::new(),
            cluster_id: None,
            neighbors: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// Adds a neighbour.
    pub fn neighbor(mut self, neighbor: Neighbor) -> PeerConfig {
        self.neighbors.push(neighbor);
        self
    }

    /// Adds a route to originate.
    pub fn route(mut self, route: Route) -> PeerConfig {
        self.routes.push(route);
        self
    }

    /// Listens on `port`.
    pub fn listen_port(mut self, port: u16) -> PeerConfig {
        self.listen_port = port;
        self
    }

    /// Listens on `addr` only (call again for more).
    pub fn listen_address(mut self, addr: IpAddr) -> PeerConfig {
        self.listen_addresses.push(addr);
        self
    }

    /// Sets the route-reflector cluster id.
    pub fn cluster_id(mut self, id: Ipv4Addr) -> PeerConfig {
        self.cluster_id = Some(id);
        self
    }

    /// Replaces the route for `route.prefix` (or adds it).
    pub(crate) fn upsert_route(&mut self, route: Route) {
        self.routes.retain(|r| r.prefix != route.prefix);
        self.routes.push(route);
    }

    /// Removes the route for `prefix`; false if there was none.
    pub(crate) fn remove_route(&mut self, prefix: IpNetwork) -> bool {
        let before = self.routes.len();
        self.routes.retain(|r| r.prefix != prefix);
        self.routes.len() != before
    }

    pub(crate) fn graceful_restart_enabled(&self) -> bool {
        self.neighbors
            .iter()
            .any(|n| matches!(n.graceful_restart, GracefulRestart::Enabled { .. }))
    }
}
