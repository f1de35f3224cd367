//! Peers as the RIB sees them: configuration, the negotiated session, counters.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bgpd_wire::{AfiSafi, Asn};

use crate::policy::Policy;

/// A peer's handle, given by [`crate::Rib::add_peer`] and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u32);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Which paths go to a peer that negotiated ADD-PATH send for a family (RFC 7911).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AddPathSend {
    /// The best path only (with a path id).
    #[default]
    Best,
    /// The multipath (ECMP) set.
    Multipath,
    /// Every accepted path.
    All,
}

/// What the operator configured for a peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerConfig {
    /// The peer's address.
    pub address: IpAddr,
    /// The peer's AS; iBGP when it equals ours.
    pub remote_as: Asn,
    /// A route-reflector client (only with a cluster id and iBGP).
    pub rr_client: bool,
    /// Announce ourselves as next hop for routes we pass on (not for reflected routes).
    pub next_hop_self: bool,
    /// Pass MULTI_EXIT_DISC on to this eBGP peer.
    pub send_med: bool,
    /// What we accept from the peer.
    pub import: Policy,
    /// What we announce to the peer.
    pub export: Policy,
    /// Most accepted prefixes before [`crate::Signal::MaxPrefix`].
    pub max_prefix: Option<u32>,
    /// Paths to send when ADD-PATH send is negotiated.
    pub add_path_send: AddPathSend,
}

impl PeerConfig {
    /// A peer accepting and announcing everything, with no options set.
    pub fn new(address: IpAddr, remote_as: Asn) -> Self {
        PeerConfig {
            address,
            remote_as,
            rr_client: false,
            next_hop_self: false,
            send_med: false,
            import: Policy::accept_all(),
            export: Policy::accept_all(),
            max_prefix: None,
            add_path_send: AddPathSend::Best,
        }
    }
}

/// What an established session negotiated, as far as routing cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The peer's BGP identifier.
    pub router_id: Ipv4Addr,
    /// Our IPv4 address on the session: next hop for "self".
    pub local_v4: Option<Ipv4Addr>,
    /// Our IPv6 address on the session: next hop for "self".
    pub local_v6: Option<Ipv6Addr>,
    /// Families both sides enabled.
    pub families: Vec<AfiSafi>,
    /// Both sides speak four-octet AS numbers (RFC 6793).
    pub four_octet_as: bool,
    /// Families in which the peer sends us path ids (RFC 7911).
    pub add_path_rx: Vec<AfiSafi>,
    /// Families in which we send path ids to the peer.
    pub add_path_tx: Vec<AfiSafi>,
    /// Messages up to 65535 octets (RFC 8654).
    pub extended_message: bool,
    /// We are a restarting speaker: hold the initial table until [`crate::Rib::release_initial`].
    pub hold_initial: bool,
}

impl Session {
    /// The session `negotiated` by the OPEN exchange, with the peer's `router_id` and our
    /// addresses on the connection.
    pub fn negotiated(
        negotiated: &bgpd_wire::Negotiated,
        router_id: Ipv4Addr,
        local_v4: Option<Ipv4Addr>,
        local_v6: Option<Ipv6Addr>,
    ) -> Self {
        Session {
            router_id,
            local_v4,
            local_v6,
            families: negotiated.families.clone(),
            four_octet_as: negotiated.send.four_octet_as,
            add_path_rx: negotiated.receive.add_path_families.clone(),
            add_path_tx: negotiated.send.add_path_families.clone(),
            extended_message: negotiated.send.max_message_size > bgpd_wire::MAX_MESSAGE_SIZE,
            hold_initial: false,
        }
    }

    /// A four-octet-AS IPv4 unicast session with `router_id`, our address `local_v4`.
    pub fn ipv4(router_id: Ipv4Addr, local_v4: Ipv4Addr) -> Self {
        Session {
            router_id,
            local_v4: Some(local_v4),
            local_v6: None,
            families: vec![AfiSafi::IPV4_UNICAST],
            four_octet_as: true,
            add_path_rx: Vec::new(),
            add_path_tx: Vec::new(),
            extended_message: false,
            hold_initial: false,
        }
    }
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Down {
    /// Its routes are withdrawn now.
    Hard,
    /// The peer restarts gracefully (RFC 4724): its routes stay, marked stale.
    Graceful,
}

/// Prefix counters of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerCounts {
    /// Routes the peer announced and has not withdrawn (accepted or not).
    pub received: u64,
    /// Of those, the routes import policy and loop detection accepted.
    pub accepted: u64,
    /// Routes we advertise to the peer now.
    pub advertised: u64,
    /// Attributes dropped from the routes it announced (RFC 7606 "attribute discard"), since it
    /// was added.
    pub attributes_discarded: u64,
    /// Prefixes it announced or withdrew in families the session did not negotiate, ignored
    /// (RFC 4760 §6), since it was added.
    pub ignored: u64,
}
