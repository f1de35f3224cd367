//! Rules at the edge, towards one update group: who may receive a route (RFC 4271 §9.2,
//! RFC 4456 §8, RFC 1997 well-known communities) and how its attributes change on the way out
//! (AS prepend, next hop, LOCAL_PREF, MED, reflection attributes).

use std::net::{Ipv4Addr, Ipv6Addr};

use bgpd_wire::{AfiSafi, AsPath, Asn, Community, NextHop, Origin, PathAttrs, SessionContext};

use crate::decision::SourceKind;
use crate::peer::{AddPathSend, PeerConfig, Session};
use crate::policy::Policy;

/// What peers must share to be sent the very same bytes: an update group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct GroupKey {
    pub(crate) ibgp: bool,
    pub(crate) rr_client: bool,
    pub(crate) next_hop_self: bool,
    pub(crate) send_med: bool,
    pub(crate) local_v4: Option<Ipv4Addr>,
    pub(crate) local_v6: Option<Ipv6Addr>,
    pub(crate) export: Policy,
    pub(crate) add_path_send: AddPathSend,
    pub(crate) four_octet_as: bool,
    pub(crate) add_path_tx: Vec<AfiSafi>,
    pub(crate) extended_message: bool,
    pub(crate) families: Vec<AfiSafi>,
}

impl GroupKey {
    /// The group of a peer with `config` on `session`, for a speaker in `local_as`.
    pub(crate) fn of(config: &PeerConfig, session: &Session, local_as: Asn) -> Self {
        let sorted = |v: &[AfiSafi]| {
            let mut v = v.to_vec();
            v.sort();
            v.dedup();
            v
        };
        let ibgp = config.remote_as == local_as;
        GroupKey {
            ibgp,
            rr_client: ibgp && config.rr_client,
            next_hop_self: config.next_hop_self,
            send_med: !ibgp && config.send_med,
            local_v4: session.local_v4,
            local_v6: session.local_v6,
            export: config.export.clone(),
            add_path_send: config.add_path_send,
            four_octet_as: session.four_octet_as,
            add_path_tx: sorted(&session.add_path_tx),
            extended_message: session.extended_message,
            families: sorted(&session.families),
        }
    }

    /// The encoding context of the group's sessions.
    pub(crate) fn context(&self) -> SessionContext {
        SessionContext {
            four_octet_as: self.four_octet_as,
            add_path_families: self.add_path_tx.clone(),
            max_message_size: if self.extended_message {
                bgpd_wire::EXTENDED_MAX_MESSAGE_SIZE
            } else {
                bgpd_wire::MAX_MESSAGE_SIZE
            },
        }
    }

    /// Whether the group sends path ids for `family`.
    pub(crate) fn add_path(&self, family: AfiSafi) -> bool {
        self.add_path_tx.contains(&family)
    }
}

/// What the edge rules need to know about a route's source.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SourceInfo {
    pub(crate) kind: SourceKind,
    /// The source peer is a route-reflector client.
    pub(crate) rr_client: bool,
    /// The source peer's BGP identifier (ORIGINATOR_ID when reflecting).
    pub(crate) router_id: Ipv4Addr,
}

/// The speaker-wide settings the edge rules use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Edge {
    pub(crate) local_as: Asn,
    pub(crate) cluster_id: Option<Ipv4Addr>,
    pub(crate) default_local_pref: u32,
}

/// The attributes `attrs` (of a route from `src`, of `family`) are sent with to `group`, or
/// `None` when the group must not receive the route. Export policy is applied afterwards.
pub(crate) fn edge_attrs(
    edge: &Edge,
    group: &GroupKey,
    src: &SourceInfo,
    attrs: &PathAttrs,
    family: AfiSafi,
) -> Option<PathAttrs> {
    // RFC 1997.
    if attrs.communities.contains(&Community::NO_ADVERTISE) {
        return None;
    }
    if !group.ibgp
        && attrs
            .communities
            .iter()
            .any(|c| *c == Community::NO_EXPORT || *c == Community::NO_EXPORT_SUBCONFED)
    {
        return None;
    }
    let reflecting = src.kind == SourceKind::Ibgp && group.ibgp;
    if reflecting {
        // RFC 4271 §9.2: no iBGP to iBGP, except by a reflector (RFC 4456 §8): a client's
        // routes go to everyone, a non-client's to clients only.
        edge.cluster_id?;
        if !(src.rr_client || group.rr_client) {
            return None;
        }
    }
    let mut a = attrs.clone();
    if src.kind != SourceKind::Local {
        // RFC 4271 §5: unrecognized transitive attributes passed on are marked Partial.
        a.set_partial_on_unknown();
    }
    if a.origin.is_none() {
        a.origin = Some(Origin::Igp);
    }
    let self_hop = next_hop_self(group, family);
    if group.ibgp {
        a.local_pref = Some(a.local_pref.unwrap_or(edge.default_local_pref));
        if reflecting {
            // RFC 4456 §8; the next hop stays as the client set it.
            if a.originator_id.is_none() {
                a.originator_id = Some(src.router_id);
            }
            if let Some(cluster) = edge.cluster_id {
                a.cluster_list.insert(0, cluster);
            }
        } else if group.next_hop_self || src.kind == SourceKind::Local || !fits(a.next_hop, family)
        {
            a.next_hop = Some(self_hop?);
        }
    } else {
        // RFC 4271 §5.1.2, §5.1.3, §5.1.4, §5.1.5.
        a.as_path
            .get_or_insert_with(AsPath::default)
            .prepend(edge.local_as);
        a.next_hop = Some(self_hop?);
        a.local_pref = None;
        if !group.send_med {
            a.med = None;
        }
        a.originator_id = None;
        a.cluster_list.clear();
    }
    if a.as_path.is_none() {
        a.as_path = Some(AsPath::default());
    }
    fits(a.next_hop, family).then_some(a)
}

/// Whether `nh` can be the next hop of routes of `family`.
fn fits(nh: Option<NextHop>, family: AfiSafi) -> bool {
    matches!(
        (nh, family),
        (Some(NextHop::V4(_)), AfiSafi::IPV4_UNICAST)
            | (Some(NextHop::V6 { .. }), AfiSafi::IPV6_UNICAST)
    )
}

/// Our address on the group's sessions, as a next hop for `family`.
fn next_hop_self(group: &GroupKey, family: AfiSafi) -> Option<NextHop> {
    if family == AfiSafi::IPV6_UNICAST {
        group.local_v6.map(|global| NextHop::V6 {
            global,
            link_local: None,
        })
    } else {
        group.local_v4.map(NextHop::V4)
    }
}
