//! The BGP decision process (RFC 4271 §9.1.2 with RFC 4456 §9 and RFC 5065): which of a
//! prefix's candidate routes is best, and which are equal enough to share the traffic (ECMP).
//!
//! Order of the tie-breaks, most important first:
//! 1. locally originated over learned, whatever the LOCAL_PREF (FRR and Cisco give local routes
//!    the top weight, BIRD its static protocol a higher preference): a host's own block must
//!    never be routed towards a peer that announces it back;
//! 2. higher degree of preference (LOCAL_PREF; the default for routes without one);
//! 3. shorter AS_PATH (an AS_SET counts one, confederation segments nothing);
//! 4. lower ORIGIN (IGP < EGP < INCOMPLETE);
//! 5. lower MULTI_EXIT_DISC, only between routes from the same neighbour AS unless
//!    `always_compare_med` (a missing MED is 0, the lowest);
//! 6. eBGP-learned over iBGP-learned;
//! 7. lower IGP cost to the next hop;
//! 8. lower BGP identifier, ORIGINATOR_ID standing in for it on reflected routes;
//! 9. shorter CLUSTER_LIST;
//! 10. lower peer address; then lower path id (several ADD-PATH paths of one peer).
//!
//! Comparing MED only within one neighbour AS makes a pairwise "better than" intransitive, so
//! selection never relies on it: routes are grouped by neighbour AS, each group is ranked with
//! MED ([`compare_within`], a total order inside a group), and the group winners are ranked
//! without it ([`compare_across`], a total order everywhere) — "deterministic MED".

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr};

use bgpd_wire::{Asn, Origin, PathAttrs};

/// Where a candidate route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// Originated by this speaker.
    Local,
    /// Learned over eBGP.
    Ebgp,
    /// Learned over iBGP.
    Ibgp,
}

/// A candidate route, with what the decision needs beyond its attributes.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// Its path attributes.
    pub attrs: &'a PathAttrs,
    /// How it was learned.
    pub kind: SourceKind,
    /// The BGP identifier of the peer it came from (ours for local routes).
    pub router_id: Ipv4Addr,
    /// The address of the peer it came from (unspecified for local routes).
    pub peer_address: IpAddr,
    /// IGP cost to its next hop.
    pub igp_cost: u32,
    /// Path id the peer gave it (0 without ADD-PATH).
    pub path_id: u32,
}

/// The settings the decision depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionSettings {
    /// Our AS: the neighbour AS of routes with an empty AS_PATH.
    pub local_as: Asn,
    /// LOCAL_PREF of routes that carry none.
    pub default_local_pref: u32,
    /// Compare MED between routes from different neighbour ASes too.
    pub always_compare_med: bool,
}

impl Candidate<'_> {
    fn local_pref(&self, s: &DecisionSettings) -> u32 {
        self.attrs.local_pref.unwrap_or(s.default_local_pref)
    }

    /// The neighbour AS for MED comparison (RFC 4271 §9.1.2.2 c).
    pub fn neighbour_as(&self, s: &DecisionSettings) -> Asn {
        self.attrs
            .as_path
            .as_ref()
            .and_then(|p| p.first_asn())
            .unwrap_or(s.local_as)
    }

    fn path_len(&self) -> usize {
        self.attrs.as_path.as_ref().map_or(0, |p| p.path_len())
    }

    fn origin(&self) -> u8 {
        match self.attrs.origin {
            Some(Origin::Igp) => 0,
            Some(Origin::Egp) => 1,
            Some(Origin::Incomplete) | None => 2,
        }
    }

    fn med(&self) -> u32 {
        self.attrs.med.unwrap_or(0)
    }

    fn ebgp_rank(&self) -> u8 {
        match self.kind {
            SourceKind::Local | SourceKind::Ebgp => 0,
            SourceKind::Ibgp => 1,
        }
    }

    fn router_id(&self) -> Ipv4Addr {
        self.attrs.originator_id.unwrap_or(self.router_id)
    }
}

/// Steps 1–4.
fn before_med(a: &Candidate, b: &Candidate, s: &DecisionSettings) -> Ordering {
    (b.kind == SourceKind::Local)
        .cmp(&(a.kind == SourceKind::Local))
        .then_with(|| b.local_pref(s).cmp(&a.local_pref(s)))
        .then_with(|| a.path_len().cmp(&b.path_len()))
        .then_with(|| a.origin().cmp(&b.origin()))
}

/// Steps 6–7.
fn after_med_to_igp(a: &Candidate, b: &Candidate) -> Ordering {
    a.ebgp_rank()
        .cmp(&b.ebgp_rank())
        .then_with(|| a.igp_cost.cmp(&b.igp_cost))
}

/// Steps 8–10.
fn tie_breaks(a: &Candidate, b: &Candidate) -> Ordering {
    a.router_id()
        .cmp(&b.router_id())
        .then_with(|| a.attrs.cluster_list.len().cmp(&b.attrs.cluster_list.len()))
        .then_with(|| a.peer_address.cmp(&b.peer_address))
        .then_with(|| a.path_id.cmp(&b.path_id))
}

/// Every step but MED: a total order, used between routes of different neighbour ASes.
/// `Less` means `a` is better.
pub fn compare_across(a: &Candidate, b: &Candidate, s: &DecisionSettings) -> Ordering {
    before_med(a, b, s)
        .then_with(|| after_med_to_igp(a, b))
        .then_with(|| tie_breaks(a, b))
}

/// Every step with MED: a total order, used between routes of one neighbour AS (or all routes
/// with `always_compare_med`). `Less` means `a` is better.
pub fn compare_within(a: &Candidate, b: &Candidate, s: &DecisionSettings) -> Ordering {
    before_med(a, b, s)
        .then_with(|| a.med().cmp(&b.med()))
        .then_with(|| after_med_to_igp(a, b))
        .then_with(|| tie_breaks(a, b))
}

/// The index of the best of `cands`, or `None` when there are none.
pub fn best(cands: &[Candidate], s: &DecisionSettings) -> Option<usize> {
    if s.always_compare_med {
        return (0..cands.len()).min_by(|&i, &j| compare_within(&cands[i], &cands[j], s));
    }
    // The winner of each neighbour AS, then the best winner.
    let mut winners: Vec<usize> = Vec::new();
    for i in 0..cands.len() {
        let asn = cands[i].neighbour_as(s);
        match winners
            .iter_mut()
            .find(|w| cands[**w].neighbour_as(s) == asn)
        {
            Some(w) => {
                if compare_within(&cands[i], &cands[*w], s) == Ordering::Less {
                    *w = i;
                }
            }
            None => winners.push(i),
        }
    }
    winners
        .into_iter()
        .min_by(|&i, &j| compare_across(&cands[i], &cands[j], s))
}

/// Whether `other` may share traffic with `best`: equal through the IGP-cost step (MED
/// compared as selection does).
pub fn multipath_equal(best: &Candidate, other: &Candidate, s: &DecisionSettings) -> bool {
    let med_counts = s.always_compare_med || best.neighbour_as(s) == other.neighbour_as(s);
    before_med(best, other, s) == Ordering::Equal
        && (!med_counts || best.med() == other.med())
        && after_med_to_igp(best, other) == Ordering::Equal
}

/// The best of `cands` first, then up to `max_paths - 1` more that are multipath-equal to it,
/// as indices into `cands`.
pub fn multipath(cands: &[Candidate], s: &DecisionSettings, max_paths: usize) -> Vec<usize> {
    let Some(b) = best(cands, s) else {
        return Vec::new();
    };
    let mut set = vec![b];
    let mut rest: Vec<usize> = (0..cands.len())
        .filter(|&i| i != b && multipath_equal(&cands[b], &cands[i], s))
        .collect();
    // Deterministic pick when more are equal than fit.
    rest.sort_by(|&i, &j| compare_across(&cands[i], &cands[j], s));
    set.extend(rest.into_iter().take(max_paths.saturating_sub(1)));
    set
}
