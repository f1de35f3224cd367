//! What a peer daemon reports, parsed: session states and the routes in its RIB.

use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;

use super::config::{Community, LargeCommunity};

/// RFC 4271 session states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Not trying (yet, or after an error).
    Idle,
    /// Opening the TCP connection.
    Connect,
    /// Waiting for the neighbour to connect.
    Active,
    /// OPEN sent.
    OpenSent,
    /// OPEN received, waiting for KEEPALIVE.
    OpenConfirm,
    /// Up: routes flow.
    Established,
}

impl SessionState {
    /// Parses a state as the daemons print it: `Established`, `BGP_FSM_OPENSENT`,
    /// `openconfirm`, BIRD's `Passive` … (BIRD's `Passive`/`Down` mean idle).
    pub fn parse(text: &str) -> Option<SessionState> {
        let t = text.trim().to_ascii_lowercase();
        let t = t.strip_prefix("bgp_fsm_").unwrap_or(&t);
        Some(match t {
            "idle" | "passive" | "down" | "start" => SessionState::Idle,
            "connect" => SessionState::Connect,
            "active" => SessionState::Active,
            "opensent" => SessionState::OpenSent,
            "openconfirm" => SessionState::OpenConfirm,
            "established" => SessionState::Established,
            _ => return None,
        })
    }
}

/// One neighbour's session as the daemon sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The neighbour's address.
    pub neighbor: IpAddr,
    /// Current FSM state.
    pub state: SessionState,
    /// The daemon's account of the last error (e.g. a NOTIFICATION received), if it gives one.
    pub last_error: Option<String>,
}

/// One path in a daemon's RIB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RibRoute {
    /// The prefix.
    pub prefix: IpNetwork,
    /// Neighbour it was learned from; `None` for a route the daemon originates.
    pub from: Option<IpAddr>,
    /// The daemon chose it as best path.
    pub best: bool,
    /// Marked stale by graceful restart (the neighbour is restarting).
    pub stale: bool,
    /// NEXT_HOP (or the MP_REACH next hop).
    pub next_hop: Option<IpAddr>,
    /// AS_PATH flattened: sequences and sets in order.
    pub as_path: Vec<u32>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// COMMUNITIES.
    pub communities: Vec<Community>,
    /// LARGE_COMMUNITY.
    pub large_communities: Vec<LargeCommunity>,
    /// ORIGINATOR_ID (RFC 4456).
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST (RFC 4456), first entry is the last reflector.
    pub cluster_list: Vec<Ipv4Addr>,
}

impl RibRoute {
    /// A path for `prefix` with no attributes, to be filled in by a parser.
    pub(crate) fn new(prefix: IpNetwork) -> RibRoute {
        RibRoute {
            prefix,
            from: None,
            best: false,
            stale: false,
            next_hop: None,
            as_path: Vec::new(),
            med: None,
            local_pref: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
            originator_id: None,
            cluster_list: Vec::new(),
        }
    }
}
