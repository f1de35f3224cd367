//! Introspection for the control socket: what each session is doing and has done.

use std::net::{IpAddr, Ipv4Addr};

use bgpd_wire::{Message, Notification};
use serde::Serialize;

/// Messages of each type, in one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MessageCounts {
    /// OPENs.
    pub open: u64,
    /// UPDATEs.
    pub update: u64,
    /// NOTIFICATIONs.
    pub notification: u64,
    /// KEEPALIVEs.
    pub keepalive: u64,
    /// ROUTE-REFRESHes.
    pub route_refresh: u64,
}

impl MessageCounts {
    /// Counts one message.
    pub fn count(&mut self, msg: &Message) {
        match msg {
            Message::Open(_) => self.open += 1,
            Message::Update(_) => self.update += 1,
            Message::Notification(_) => self.notification += 1,
            Message::Keepalive => self.keepalive += 1,
            Message::RouteRefresh(_) => self.route_refresh += 1,
        }
    }
}

/// A NOTIFICATION decoded to text, as operators read it.
pub fn describe(n: &Notification) -> String {
    match n.code.octets() {
        // Named here until the codec knows RFC 9687's code.
        (8, 0) => "NOTIFICATION 8/0 (SendHoldTimerExpired)".to_string(),
        _ => n.to_string(),
    }
}

/// One peer, for `routectl peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    /// The peer's address.
    pub address: IpAddr,
    /// The configured AS.
    pub remote_as: u32,
    /// FSM state (RFC 4271 names).
    pub state: String,
    /// Seconds since the session was established.
    pub uptime_secs: Option<u64>,
    /// The peer's BGP identifier, once known.
    pub peer_id: Option<Ipv4Addr>,
    /// The peer's host name capability.
    pub hostname: Option<String>,
    /// Negotiated hold time.
    pub hold_time: Option<u16>,
    /// Negotiated families ("ipv4-unicast", ...).
    pub families: Vec<String>,
    /// Prefixes the peer announced and has not withdrawn.
    pub prefixes_received: u64,
    /// Of those, accepted by import policy and loop checks.
    pub prefixes_accepted: u64,
    /// Prefixes we advertise to it.
    pub prefixes_advertised: u64,
    /// Prefixes it announced or withdrew in families the session did not negotiate, ignored
    /// (RFC 4760 §6).
    pub prefixes_ignored: u64,
    /// ORIGINATOR_ID and CLUSTER_LIST attributes it sent as an eBGP peer, discarded (RFC 7606
    /// §7.9, §7.10).
    pub attributes_discarded: u64,
    /// Messages received.
    pub received: MessageCounts,
    /// Messages sent.
    pub sent: MessageCounts,
    /// Times the session reached Established.
    pub established_count: u32,
    /// The last NOTIFICATION we sent, decoded.
    pub last_notification_sent: Option<String>,
    /// The last NOTIFICATION the peer sent, decoded.
    pub last_notification_received: Option<String>,
    /// The peer's routes are kept as stale while it restarts (RFC 4724 helper).
    pub graceful_restart_stale: bool,
}

/// One candidate route, for `routectl routes` and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteStatus {
    /// The destination.
    pub prefix: String,
    /// The peer it came from; `None` for a local route.
    pub from: Option<IpAddr>,
    /// ADD-PATH path id given by the peer.
    pub path_id: Option<u32>,
    /// Selected as best.
    pub best: bool,
    /// In the multipath set.
    pub multipath: bool,
    /// Kept while its peer restarts (RFC 4724).
    pub stale: bool,
    /// Accepted by import policy and loop checks.
    pub accepted: bool,
    /// Next hop.
    pub next_hop: Option<String>,
    /// AS_PATH as a flat list (sets flattened).
    pub as_path: Vec<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// ORIGINATOR_ID (RFC 4456).
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST (RFC 4456).
    pub cluster_list: Vec<Ipv4Addr>,
}

impl RouteStatus {
    /// The status of `view`, whose peer (if any) has address `from`.
    pub fn new(view: &bgpd_rib::RouteView, from: Option<IpAddr>) -> Self {
        let a = &view.attrs;
        RouteStatus {
            prefix: view.prefix.to_string(),
            from,
            path_id: view.path_id,
            best: view.best,
            multipath: view.multipath,
            stale: view.stale,
            accepted: view.accepted,
            next_hop: a.next_hop.as_ref().map(|nh| match nh {
                bgpd_wire::NextHop::V4(v4) => v4.to_string(),
                bgpd_wire::NextHop::V6 { global, .. } => global.to_string(),
            }),
            as_path: a
                .as_path
                .as_ref()
                .map(|p| {
                    p.segments
                        .iter()
                        .flat_map(|s| s.asns.iter().map(|x| x.0))
                        .collect()
                })
                .unwrap_or_default(),
            local_pref: a.local_pref,
            originator_id: a.originator_id,
            cluster_list: a.cluster_list.clone(),
        }
    }
}
