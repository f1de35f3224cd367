//! The routes we program, as pure data: prefixes, next hops and the wanted set.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;

use ipnetwork::IpNetwork;

/// Why a route, prefix or next hop cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The prefix length is longer than the address.
    #[error("prefix length {len} is too long for {addr}")]
    PrefixLength {
        /// The address given.
        addr: IpAddr,
        /// The length given.
        len: u8,
    },
    /// Not `address/length`.
    #[error("{0:?} is not a prefix (address/length)")]
    PrefixSyntax(String),
    /// A next hop of the other address family (RFC 5549 style routes are not programmed).
    #[error("next hop {gateway} is not of the family of {prefix}")]
    FamilyMismatch {
        /// The route's destination.
        prefix: Prefix,
        /// The offending gateway.
        gateway: IpAddr,
    },
    /// A `Via` route needs at least one next hop.
    #[error("a route via gateways needs at least one next hop")]
    NoNextHop,
}

/// A destination prefix with its host bits cleared, so equal networks compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix(IpNetwork);

impl Prefix {
    /// The network `addr/len`; host bits of `addr` are cleared.
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, RouteError> {
        let net = IpNetwork::new(addr, len).map_err(|_| RouteError::PrefixLength { addr, len })?;
        let masked = IpNetwork::new(net.network(), len)
            .map_err(|_| RouteError::PrefixLength { addr, len })?;
        Ok(Prefix(masked))
    }

    /// The host route for `addr` (/32 or /128).
    pub fn host(addr: IpAddr) -> Prefix {
        Prefix(IpNetwork::from(addr))
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.0.ip()
    }

    /// The prefix length.
    pub fn length(&self) -> u8 {
        self.0.prefix()
    }

    /// True for an IPv6 prefix.
    pub fn is_ipv6(&self) -> bool {
        self.0.is_ipv6()
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.length())
    }
}

impl FromStr for Prefix {
    type Err = RouteError;

    fn from_str(s: &str) -> Result<Prefix, RouteError> {
        let syntax = || RouteError::PrefixSyntax(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(syntax)?;
        let addr: IpAddr = addr.parse().map_err(|_| syntax())?;
        let len: u8 = len.parse().map_err(|_| syntax())?;
        Prefix::new(addr, len)
    }
}

/// A kernel interface index (never 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ifindex(NonZeroU32);

impl Ifindex {
    /// The index `n`, or `None` for 0 (which names no interface).
    pub fn new(n: u32) -> Option<Ifindex> {
        NonZeroU32::new(n).map(Ifindex)
    }

    /// The raw index.
    pub fn get(self) -> u32 {
        self.0.get()
    }

    /// Looks up an interface by name in the calling thread's network namespace.
    pub fn by_name(name: &str) -> Result<Ifindex, crate::Error> {
        nix::net::if_::if_nametoindex(name)
            .ok()
            .and_then(Ifindex::new)
            .ok_or_else(|| crate::Error::InterfaceNotFound(name.to_string()))
    }
}

impl fmt::Display for Ifindex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "if#{}", self.0)
    }
}

/// One way to forward toward a learned prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NextHop {
    /// The gateway's address.
    pub gateway: IpAddr,
    /// The interface to reach it on; `None` lets the kernel resolve it (needed for link-local
    /// IPv6 gateways).
    pub ifindex: Option<Ifindex>,
}

impl NextHop {
    /// A next hop through `gateway`, interface left to the kernel.
    pub fn via(gateway: IpAddr) -> NextHop {
        NextHop {
            gateway,
            ifindex: None,
        }
    }

    /// Whether the kernel's next hop `installed` is this one (an unspecified interface matches
    /// whichever the kernel resolved).
    fn is_satisfied_by(&self, installed: &NextHop) -> bool {
        self.gateway == installed.gateway
            && (self.ifindex.is_none() || self.ifindex == installed.ifindex)
    }
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "via {}", self.gateway)?;
        if let Some(ifindex) = self.ifindex {
            write!(f, " dev {ifindex}")?;
        }
        Ok(())
    }
}

/// A non-empty set of next hops, sorted and without duplicates; more than one is ECMP.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NextHops(Vec<NextHop>);

impl NextHops {
    /// The set of `hops`; fails when empty.
    pub fn new(hops: impl IntoIterator<Item = NextHop>) -> Result<NextHops, RouteError> {
        let mut hops: Vec<NextHop> = hops.into_iter().collect();
        hops.sort();
        hops.dedup();
        if hops.is_empty() {
            return Err(RouteError::NoNextHop);
        }
        Ok(NextHops(hops))
    }

    /// The next hops, sorted.
    pub fn as_slice(&self) -> &[NextHop] {
        &self.0
    }

    /// True when there are several next hops (a multipath route).
    pub fn is_multipath(&self) -> bool {
        self.0.len() > 1
    }

    /// Whether the kernel's set `installed` is this set, hop for hop.
    fn is_satisfied_by(&self, installed: &NextHops) -> bool {
        self.0.len() == installed.0.len()
            && self
                .0
                .iter()
                .all(|want| installed.0.iter().any(|have| want.is_satisfied_by(have)))
    }
}

/// What a route does with packets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// Drop silently: our own blocks, so unassigned addresses in them never leak to a default.
    Blackhole,
    /// Deliver on a local interface (a container's host-side veth).
    Device(Ifindex),
    /// Forward to one or several gateways (learned routes; several is ECMP).
    Via(NextHops),
}

impl RouteKind {
    /// Whether the kernel's `installed` kind does what this one asks.
    pub fn is_satisfied_by(&self, installed: &RouteKind) -> bool {
        match (self, installed) {
            (RouteKind::Blackhole, RouteKind::Blackhole) => true,
            (RouteKind::Device(want), RouteKind::Device(have)) => want == have,
            (RouteKind::Via(want), RouteKind::Via(have)) => want.is_satisfied_by(have),
            _ => false,
        }
    }
}

/// A route we want in the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    prefix: Prefix,
    kind: RouteKind,
}

impl Route {
    /// A route to `prefix`; next hops must be of the prefix's family.
    pub fn new(prefix: Prefix, kind: RouteKind) -> Result<Route, RouteError> {
        if let RouteKind::Via(hops) = &kind {
            if let Some(hop) = hops
                .0
                .iter()
                .find(|h| h.gateway.is_ipv6() != prefix.is_ipv6())
            {
                return Err(RouteError::FamilyMismatch {
                    prefix,
                    gateway: hop.gateway,
                });
            }
        }
        Ok(Route { prefix, kind })
    }

    /// A blackhole for `prefix`.
    pub fn blackhole(prefix: Prefix) -> Route {
        Route {
            prefix,
            kind: RouteKind::Blackhole,
        }
    }

    /// A host route (/32, /128) for `addr` out of interface `ifindex`.
    pub fn host(addr: IpAddr, ifindex: Ifindex) -> Route {
        Route {
            prefix: Prefix::host(addr),
            kind: RouteKind::Device(ifindex),
        }
    }

    /// A route to `prefix` through `hops`.
    pub fn via(prefix: Prefix, hops: NextHops) -> Result<Route, RouteError> {
        Route::new(prefix, RouteKind::Via(hops))
    }

    /// The destination.
    pub fn prefix(&self) -> Prefix {
        self.prefix
    }

    /// What the route does.
    pub fn kind(&self) -> &RouteKind {
        &self.kind
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.prefix)?;
        match &self.kind {
            RouteKind::Blackhole => write!(f, " blackhole"),
            RouteKind::Device(ifindex) => write!(f, " dev {ifindex}"),
            RouteKind::Via(hops) => hops.0.iter().try_for_each(|hop| write!(f, " {hop}")),
        }
    }
}

/// The routes we want in our table, at most one per prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteSet(BTreeMap<Prefix, RouteKind>);

impl RouteSet {
    /// An empty set.
    pub fn new() -> RouteSet {
        RouteSet::default()
    }

    /// Adds `route`, replacing any route to the same prefix; returns the replaced kind.
    pub fn insert(&mut self, route: Route) -> Option<RouteKind> {
        self.0.insert(route.prefix, route.kind)
    }

    /// Removes the route to `prefix`; returns what it did.
    pub fn remove(&mut self, prefix: &Prefix) -> Option<RouteKind> {
        self.0.remove(prefix)
    }

    /// The wanted kind for `prefix`.
    pub fn get(&self, prefix: &Prefix) -> Option<&RouteKind> {
        self.0.get(prefix)
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no route is wanted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The routes in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = Route> + '_ {
        self.0.iter().map(|(prefix, kind)| Route {
            prefix: *prefix,
            kind: kind.clone(),
        })
    }
}

impl FromIterator<Route> for RouteSet {
    fn from_iter<I: IntoIterator<Item = Route>>(iter: I) -> RouteSet {
        RouteSet(iter.into_iter().map(|r| (r.prefix, r.kind)).collect())
    }
}

/// A route as the kernel reports it (dump or event), in any table and of any protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute {
    /// The destination.
    pub prefix: Prefix,
    /// The table it is in.
    pub table: u32,
    /// Its route protocol number.
    pub protocol: u8,
    /// Its metric (priority).
    pub metric: u32,
    /// What it does, or `None` for a shape we never program (unreachable, local, source or
    /// TOS routes, lightweight tunnels...).
    pub kind: Option<RouteKind>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_are_normalized_and_checked() {
        let cases: &[(&str, Result<&str, ()>)] = &[
            ("10.1.2.3/24", Ok("10.1.2.0/24")),
            ("10.1.2.3/32", Ok("10.1.2.3/32")),
            ("0.0.0.0/0", Ok("0.0.0.0/0")),
            ("fd00::1:2/64", Ok("fd00::/64")),
            ("10.0.0.0/33", Err(())),
            ("fd00::/129", Err(())),
            ("10.0.0.0", Err(())),
            ("10.0.0.0/x", Err(())),
            ("banana/8", Err(())),
        ];
        for (input, want) in cases {
            let got = input
                .parse::<Prefix>()
                .map(|p| p.to_string())
                .map_err(|_| ());
            assert_eq!(got, want.map(str::to_string), "{input}");
        }
    }

    #[test]
    fn next_hops_are_a_sorted_set() {
        let a = NextHop::via(ip("10.0.0.2"));
        let b = NextHop::via(ip("10.0.0.1"));
        let hops = NextHops::new([a, b, a]).unwrap();
        assert_eq!(hops.as_slice(), &[b, a]);
        assert!(hops.is_multipath());
        assert_eq!(NextHops::new([]), Err(RouteError::NoNextHop));
    }

    #[test]
    fn gateways_must_match_the_family() {
        let hops = NextHops::new([NextHop::via(ip("fe80::1"))]).unwrap();
        let err = Route::via("10.0.0.0/8".parse().unwrap(), hops).unwrap_err();
        assert!(matches!(err, RouteError::FamilyMismatch { .. }));
    }

    #[test]
    fn satisfaction_table() {
        let if1 = Ifindex::new(1).unwrap();
        let if2 = Ifindex::new(2).unwrap();
        let hop = |gw: &str, dev: Option<Ifindex>| NextHop {
            gateway: ip(gw),
            ifindex: dev,
        };
        let via = |hops: &[NextHop]| RouteKind::Via(NextHops::new(hops.iter().copied()).unwrap());
        let cases = [
            (RouteKind::Blackhole, RouteKind::Blackhole, true),
            (RouteKind::Blackhole, RouteKind::Device(if1), false),
            (RouteKind::Device(if1), RouteKind::Device(if1), true),
            (RouteKind::Device(if1), RouteKind::Device(if2), false),
            // An unspecified interface matches the one the kernel resolved.
            (
                via(&[hop("10.0.0.1", None)]),
                via(&[hop("10.0.0.1", Some(if1))]),
                true,
            ),
            (
                via(&[hop("10.0.0.1", Some(if2))]),
                via(&[hop("10.0.0.1", Some(if1))]),
                false,
            ),
            (
                via(&[hop("10.0.0.1", None)]),
                via(&[hop("10.0.0.9", Some(if1))]),
                false,
            ),
            (
                via(&[hop("10.0.0.1", None), hop("10.0.0.2", None)]),
                via(&[hop("10.0.0.2", Some(if2)), hop("10.0.0.1", Some(if1))]),
                true,
            ),
            (
                via(&[hop("10.0.0.1", None), hop("10.0.0.2", None)]),
                via(&[hop("10.0.0.1", Some(if1))]),
                false,
            ),
            (via(&[hop("10.0.0.1", None)]), RouteKind::Blackhole, false),
        ];
        for (want, have, ok) in cases {
            assert_eq!(want.is_satisfied_by(&have), ok, "{want:?} by {have:?}");
        }
    }
}
