//! What a session may use once both OPENs are known: the intersection of our capabilities with
//! the peer's (RFC 5492), the negotiated hold time (RFC 4271 §4.2) and the per-family ADD-PATH
//! directions (RFC 7911 §4).

use std::net::Ipv4Addr;

use bgpd_wire::asn::Asn;
use bgpd_wire::capability::{Capability, GracefulRestart};
use bgpd_wire::family::AfiSafi;
use bgpd_wire::notification::{ErrorCode, Notification, OpenError};
use bgpd_wire::open::Open;
use bytes::BytesMut;

/// The parameters of an established session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Hold time in seconds: the smaller of both proposals; 0 means no keepalives at all.
    pub hold_time: u16,
    /// Keepalive interval in seconds: a third of the hold time.
    pub keepalive: u16,
    /// The peer's AS (four-octet when it announced the capability).
    pub peer_as: Asn,
    /// The peer's BGP identifier.
    pub peer_id: Ipv4Addr,
    /// Families both sides announced (IPv4 unicast when a side announced none, RFC 4760 §8).
    pub families: Vec<AfiSafi>,
    /// Both sides carry four-octet AS numbers (RFC 6793).
    pub four_octet_as: bool,
    /// Families in which the peer sends us several paths with path ids.
    pub add_path_receive: Vec<AfiSafi>,
    /// Families in which we may send several paths with path ids.
    pub add_path_send: Vec<AfiSafi>,
    /// Both sides accept messages up to 65535 octets (RFC 8654).
    pub extended_message: bool,
    /// The peer accepts ROUTE-REFRESH (RFC 2918).
    pub route_refresh: bool,
    /// The peer accepts enhanced route refresh (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// The peer's graceful restart capability, when it announced one (RFC 4724).
    pub peer_graceful_restart: Option<GracefulRestart>,
    /// The peer's host name, when it announced one.
    pub peer_hostname: Option<String>,
}

/// The families a capability list announces; none announced means IPv4 unicast (RFC 4760 §8).
fn families(caps: &[Capability]) -> Vec<AfiSafi> {
    let mut out: Vec<AfiSafi> = caps
        .iter()
        .filter_map(|c| match c {
            Capability::Multiprotocol(f) => Some(*f),
            _ => None,
        })
        .collect();
    if out.is_empty() {
        out.push(AfiSafi::IPV4_UNICAST);
    }
    out.sort();
    out.dedup();
    out
}

fn add_path_modes(caps: &[Capability]) -> impl Iterator<Item = &bgpd_wire::capability::AddPathFamily> {
    caps.iter().flat_map(|c| match c {
        Capability::AddPath(fams) => fams.as_slice(),
        _ => &[],
    })
}

fn has(caps: &[Capability], want: impl Fn(&Capability) -> bool) -> bool {
    caps.iter().any(want)
}

impl Negotiated {
    /// Negotiates from our capabilities and hold time and the peer's OPEN (already validated).
    /// A peer sharing no family with us gets Unsupported Capability (2/7) carrying our
    /// multiprotocol capabilities, as RFC 5492 §3 suggests.
    pub fn new(ours: &[Capability], our_hold: u16, theirs: &Open) -> Result<Negotiated, Notification> {
        let our_families = families(ours);
        let their_families = families(&theirs.capabilities);
        let common: Vec<AfiSafi> = our_families.iter().copied().filter(|f| their_families.contains(f)).collect();
        if common.is_empty() {
            let mut data = BytesMut::new();
            for cap in ours.iter().filter(|c| matches!(c, Capability::Multiprotocol(_))) {
                // Our own capabilities always encode; a failure would only shorten the data.
                let _ = cap.encode(&mut data);
            }
            return Err(Notification::new(ErrorCode::Open(OpenError::UnsupportedCapability), data.to_vec()));
        }
        let hold_time = our_hold.min(theirs.hold_time);
        let directional = |we: fn(bgpd_wire::capability::AddPathMode) -> bool,
                           they: fn(bgpd_wire::capability::AddPathMode) -> bool| {
            common
                .iter()
                .copied()
                .filter(|f| {
                    add_path_modes(ours).any(|a| a.afi_safi == *f && we(a.mode))
                        && add_path_modes(&theirs.capabilities).any(|a| a.afi_safi == *f && they(a.mode))
                })
                .collect::<Vec<_>>()
        };
        let add_path_receive = directional(|m| m.receives(), |m| m.sends());
        let add_path_send = directional(|m| m.sends(), |m| m.receives());
        let both = |want: fn(&Capability) -> bool| has(ours, want) && has(&theirs.capabilities, want);
        Ok(Negotiated {
            hold_time,
            keepalive: hold_time / 3,
            peer_as: theirs.asn(),
            peer_id: theirs.bgp_id,
            families: common,
            four_octet_as: both(|c| matches!(c, Capability::FourOctetAs(_))),
            add_path_receive,
            add_path_send,
            extended_message: both(|c| matches!(c, Capability::ExtendedMessage)),
            route_refresh: has(&theirs.capabilities, |c| matches!(c, Capability::RouteRefresh)),
            enhanced_route_refresh: has(&theirs.capabilities, |c| matches!(c, Capability::EnhancedRouteRefresh)),
            peer_graceful_restart: theirs.capabilities.iter().find_map(|c| match c {
                Capability::GracefulRestart(gr) => Some(gr.clone()),
                _ => None,
            }),
            peer_hostname: theirs.capabilities.iter().find_map(|c| match c {
                Capability::Hostname { host, .. } => Some(host.clone()),
                _ => None,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgpd_wire::capability::{AddPathFamily, AddPathMode};

    fn open(caps: Vec<Capability>, hold: u16) -> Open {
        Open::new(Asn(65001), hold, Ipv4Addr::new(10, 0, 0, 2), caps)
    }

    #[test]
    fn hold_time_is_the_smaller_and_keepalive_a_third() {
        let ours = [Capability::Multiprotocol(AfiSafi::IPV4_UNICAST)];
        let n = Negotiated::new(&ours, 90, &open(vec![], 9)).unwrap();
        assert_eq!((n.hold_time, n.keepalive), (9, 3));
        let n = Negotiated::new(&ours, 0, &open(vec![], 9)).unwrap();
        assert_eq!((n.hold_time, n.keepalive), (0, 0));
    }

    #[test]
    fn no_multiprotocol_capability_means_ipv4_unicast() {
        let ours = [Capability::Multiprotocol(AfiSafi::IPV4_UNICAST), Capability::Multiprotocol(AfiSafi::IPV6_UNICAST)];
        let n = Negotiated::new(&ours, 90, &open(vec![], 90)).unwrap();
        assert_eq!(n.families, vec![AfiSafi::IPV4_UNICAST]);
    }

    #[test]
    fn no_common_family_is_unsupported_capability() {
        let ours = [Capability::Multiprotocol(AfiSafi::IPV6_UNICAST)];
        let err = Negotiated::new(&ours, 90, &open(vec![Capability::Multiprotocol(AfiSafi::IPV4_UNICAST)], 90))
            .unwrap_err();
        assert_eq!(err.code.octets(), (2, 7));
        assert_eq!(err.data, vec![1, 4, 0, 2, 0, 1]);
    }

    #[test]
    fn add_path_directions_pair_send_with_receive() {
        let fam = AfiSafi::IPV4_UNICAST;
        let ap = |mode| Capability::AddPath(vec![AddPathFamily { afi_safi: fam, mode }]);
        let ours = [Capability::Multiprotocol(fam), ap(AddPathMode::Both)];
        let n = Negotiated::new(&ours, 90, &open(vec![Capability::Multiprotocol(fam), ap(AddPathMode::Receive)], 90))
            .unwrap();
        assert_eq!((n.add_path_send.clone(), n.add_path_receive.clone()), (vec![fam], vec![]));
        let n = Negotiated::new(&ours, 90, &open(vec![Capability::Multiprotocol(fam), ap(AddPathMode::Send)], 90))
            .unwrap();
        assert_eq!((n.add_path_send, n.add_path_receive), (vec![], vec![fam]));
    }

    #[test]
    fn four_octet_as_needs_both_sides() {
        let ours = [Capability::Multiprotocol(AfiSafi::IPV4_UNICAST)];
        // Open::new always adds the four-octet capability to the peer's OPEN.
        let n = Negotiated::new(&ours, 90, &open(vec![], 90)).unwrap();
        assert!(!n.four_octet_as);
        let ours = [Capability::Multiprotocol(AfiSafi::IPV4_UNICAST), Capability::FourOctetAs(Asn(65000))];
        assert!(Negotiated::new(&ours, 90, &open(vec![], 90)).unwrap().four_octet_as);
    }
}
