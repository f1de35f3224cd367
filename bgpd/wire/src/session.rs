//! What decoding and encoding depend on once a session is up: the capabilities both sides
//! advertised (RFC 5492), reduced to what each direction of the session uses.

use crate::capability::{Capability, ExtendedNextHop, GracefulRestart};
use crate::family::AfiSafi;
use crate::header::{EXTENDED_MAX_MESSAGE_SIZE, MAX_MESSAGE_SIZE};
use crate::open::Open;

/// The parameters one direction of a session is decoded or encoded with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionContext {
    /// Both sides support four-octet ASes (RFC 6793): AS_PATH and AGGREGATOR carry four-octet
    /// ASes and AS4_PATH/AS4_AGGREGATOR are not used.
    pub four_octet_as: bool,
    /// Families whose NLRI carry ADD-PATH path identifiers in this direction (RFC 7911).
    pub add_path_families: Vec<AfiSafi>,
    /// Largest message allowed: 4096, or 65535 with extended messages (RFC 8654).
    pub max_message_size: usize,
}

impl Default for SessionContext {
    /// Before OPENs are exchanged: two-octet ASes, no ADD-PATH, 4096-octet messages.
    fn default() -> Self {
        SessionContext {
            four_octet_as: false,
            add_path_families: Vec::new(),
            max_message_size: MAX_MESSAGE_SIZE,
        }
    }
}

impl SessionContext {
    /// Whether NLRI of `family` carry path identifiers.
    pub fn add_path(&self, family: AfiSafi) -> bool {
        self.add_path_families.contains(&family)
    }
}

/// The outcome of capability negotiation between our OPEN and the peer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// How to decode what the peer sends.
    pub receive: SessionContext,
    /// How to encode what we send.
    pub send: SessionContext,
    /// Families both sides enabled (RFC 4760 §8; IPv4 unicast when a side advertises none).
    pub families: Vec<AfiSafi>,
    /// The smaller of the two hold times (RFC 4271 §4.2).
    pub hold_time: u16,
    /// Both support route refresh (RFC 2918).
    pub route_refresh: bool,
    /// Both support enhanced route refresh (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// (family, next-hop AFI) pairs both advertised (RFC 8950).
    pub extended_next_hop: Vec<ExtendedNextHop>,
    /// The peer's graceful restart capability (RFC 4724), if it sent one.
    pub peer_graceful_restart: Option<GracefulRestart>,
}

fn has(open: &Open, pred: impl Fn(&Capability) -> bool) -> bool {
    open.capabilities.iter().any(pred)
}

fn families(open: &Open) -> Vec<AfiSafi> {
    let mp: Vec<AfiSafi> = open
        .capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::Multiprotocol(f) => Some(*f),
            _ => None,
        })
        .collect();
    if mp.is_empty() {
        vec![AfiSafi::IPV4_UNICAST]
    } else {
        mp
    }
}

/// ADD-PATH families where `sender` may send and `receiver` may receive (RFC 7911 §5).
fn add_path(sender: &Open, receiver: &Open) -> Vec<AfiSafi> {
    let modes = |o: &Open| -> Vec<crate::capability::AddPathFamily> {
        o.capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::AddPath(v) => Some(v.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    };
    let (s, r) = (modes(sender), modes(receiver));
    s.iter()
        .filter(|a| {
            a.mode.sends()
                && r.iter()
                    .any(|b| b.afi_safi == a.afi_safi && b.mode.receives())
        })
        .map(|a| a.afi_safi)
        .collect()
}

/// Negotiates a session from our OPEN (`local`) and the peer's (`remote`).
pub fn negotiate(local: &Open, remote: &Open) -> Negotiated {
    let both = |pred: &dyn Fn(&Capability) -> bool| has(local, pred) && has(remote, pred);
    let four_octet_as = both(&|c| matches!(c, Capability::FourOctetAs(_)));
    let max_message_size = if both(&|c| matches!(c, Capability::ExtendedMessage)) {
        EXTENDED_MAX_MESSAGE_SIZE
    } else {
        MAX_MESSAGE_SIZE
    };
    let theirs = families(remote);
    let families = families(local)
        .into_iter()
        .filter(|f| theirs.contains(f))
        .collect();
    let enh = |o: &Open| -> Vec<ExtendedNextHop> {
        o.capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::ExtendedNextHop(v) => Some(v.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    };
    let remote_enh = enh(remote);
    Negotiated {
        receive: SessionContext {
            four_octet_as,
            add_path_families: add_path(remote, local),
            max_message_size,
        },
        send: SessionContext {
            four_octet_as,
            add_path_families: add_path(local, remote),
            max_message_size,
        },
        families,
        hold_time: local.hold_time.min(remote.hold_time),
        route_refresh: both(&|c| matches!(c, Capability::RouteRefresh)),
        enhanced_route_refresh: both(&|c| matches!(c, Capability::EnhancedRouteRefresh)),
        extended_next_hop: enh(local)
            .into_iter()
            .filter(|e| remote_enh.contains(e))
            .collect(),
        peer_graceful_restart: remote.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g.clone()),
            _ => None,
        }),
    }
}
