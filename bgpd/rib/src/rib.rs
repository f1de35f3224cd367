//! The RIB: what the speaker's actor owns and drives. Inputs are method calls (routes in, peers
//! up and down, timers fired); outputs are collected by [`Rib::drain`] as [`Effects`].

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bgpd_wire::{
    AfiSafi, AsPath, Asn, EncodeError, Message, NextHop, Nlri, Origin, PathAttrs, Prefix,
    SessionContext, Update, pack,
};
use bytes::BytesMut;
use hashbrown::HashMap;

use crate::backlog::{Backlog, CURRENT};
use crate::decision::{self, Candidate, DecisionSettings, SourceKind};
use crate::error::RibError;
use crate::export::{Edge, GroupKey, SourceInfo, edge_attrs};
use crate::intern::{AttrId, AttrStore};
use crate::outbox::{Audience, Outbound, Outbox, PartKey};
use crate::peer::{AddPathSend, Down, PeerConfig, PeerCounts, PeerId, Session};
use crate::policy::Outcome;
use crate::sources::{Owner, Sources, SrcId};
use crate::table::{Key, Route, Table, V4, V6, flag};
use crate::walk::Walk;

/// Backlog entries sent to one peer per drain: a few UPDATEs' worth, so that catching up
/// stops as soon as the peer's writer is full again.
const CATCH_UP_BATCH: usize = 8192;

/// Most prefixes of a whole-table send encoded per drain for one set of peers.
const WALK_BATCH: usize = 8192;
/// Most new exported attribute sets a whole-table send brings into one drain: with a set per
/// route (one UPDATE each, and the set kept until the drain ends) this, not the prefix count,
/// bounds a batch, to a few hundred KiB.
const WALK_SETS: usize = 512;

/// Speaker-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RibSettings {
    /// Our AS.
    pub local_as: Asn,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Set when we are a route reflector (RFC 4456); clients are marked per peer.
    pub cluster_id: Option<Ipv4Addr>,
    /// Width of the multipath (ECMP) set; 1 disables multipath.
    pub max_paths: usize,
    /// Compare MED between routes from different neighbour ASes too.
    pub always_compare_med: bool,
    /// LOCAL_PREF for routes without one (RFC 4271 §5.1.5 leaves it to us; 100 by custom).
    pub default_local_pref: u32,
    /// Report best-path changes for the kernel ([`Effects::fib`]).
    pub fib: bool,
}

impl RibSettings {
    /// Defaults for a host: no reflection, no multipath, LOCAL_PREF 100, FIB changes on.
    pub fn new(local_as: Asn, router_id: Ipv4Addr) -> Self {
        RibSettings {
            local_as,
            router_id,
            cluster_id: None,
            max_paths: 1,
            always_compare_med: false,
            default_local_pref: 100,
            fib: true,
        }
    }
}

/// A forwarding change for the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FibChange {
    /// The destination.
    pub prefix: Prefix,
    /// Next hops of the best path and its multipath set, sorted; empty: remove the route.
    pub next_hops: Vec<IpAddr>,
}

/// Something the session must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// The peer exceeded its accepted-prefix limit: send Cease, subcode 1 (Maximum Number of
    /// Prefixes Reached, RFC 4486), then call [`Rib::peer_down`].
    MaxPrefix {
        /// The peer.
        peer: PeerId,
        /// Its configured limit.
        limit: u32,
        /// The family whose routes went over it (RFC 4486 §4 names it in the Cease).
        family: AfiSafi,
    },
    /// The import policy changed: ask the peer for its routes again (ROUTE-REFRESH, or a reset
    /// where refresh was not negotiated).
    RefreshNeeded {
        /// The peer.
        peer: PeerId,
    },
    /// The configuration changed in a way only a new session applies (AS, address, client
    /// status): reset the session.
    ResetNeeded {
        /// The peer.
        peer: PeerId,
    },
    /// The peer sent routes or withdrawals of a family the session did not negotiate; they
    /// are ignored and counted ([`PeerCounts::ignored`]). Raised once per session, for a log.
    FamilyNotNegotiated {
        /// The peer.
        peer: PeerId,
        /// The first such family.
        family: AfiSafi,
    },
    /// Routes could not be encoded for these peers (an attribute set too large for a message);
    /// they were not sent.
    EncodeFailed {
        /// The peers concerned.
        peers: Vec<PeerId>,
        /// Why.
        error: EncodeError,
    },
}

/// What a drain produced, to carry out in order.
#[derive(Debug, Default)]
pub struct Effects {
    /// UPDATEs to send (End-of-RIB markers included), each to every listed peer, in order.
    pub outbound: Vec<Outbound>,
    /// Kernel route changes (locally originated prefixes are left to the daemon).
    pub fib: Vec<FibChange>,
    /// Things the session must do.
    pub signals: Vec<Signal>,
    /// Families whose full re-send to a peer (its table, a ROUTE-REFRESH answered, an export
    /// change) this drain finished, with its last batch: where an RFC 7313
    /// End-of-Route-Refresh goes after the UPDATEs.
    pub resent: Vec<(PeerId, AfiSafi)>,
}

/// Where a route in a [`RouteView`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteSource {
    /// Originated here.
    Local,
    /// Learned from a peer.
    Peer(PeerId),
}

/// One candidate route, for introspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteView {
    /// The destination.
    pub prefix: Prefix,
    /// Where it came from.
    pub source: RouteSource,
    /// The ADD-PATH path id the peer gave it.
    pub path_id: Option<u32>,
    /// Its attributes (after import policy).
    pub attrs: Arc<PathAttrs>,
    /// The best route of its prefix.
    pub best: bool,
    /// In the multipath set.
    pub multipath: bool,
    /// Kept stale for a restarting peer.
    pub stale: bool,
    /// Accepted by import policy and loop detection.
    pub accepted: bool,
}

/// Where a peer's session stands with respect to sending it the table.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Feed {
    /// Established, table held back (we restart and defer selection).
    Held,
    /// Being sent the whole table of `families`, a batch per drain while `writable` (the
    /// peer's [`Walk`] per family). Asking again (ROUTE-REFRESH) restarts a family's walk and
    /// adds nothing else, so refreshes cannot queue tables without limit.
    Dump {
        families: Vec<AfiSafi>,
        /// End-of-RIB follows the dump.
        eor: bool,
        /// Withdraw what is not exported (after an export change). What changes meanwhile
        /// goes to the backlog: only the current state, checked against the new policy, may
        /// replace what the old one let through.
        withdraw_unexported: bool,
        writable: bool,
        /// Nothing of the table sent yet in this session: changes need not reach it, the walk
        /// sends each prefix as it is then.
        fresh: bool,
    },
    /// Sent the table; gets changes.
    Synced,
    /// Its writer fell behind: changes go to its backlog instead, and while `writable`, a
    /// batch of the backlog is sent at each drain.
    Behind { writable: bool },
}

impl Feed {
    /// Changes are encoded for it with its group as they are drained.
    fn takes_changes(&self) -> bool {
        matches!(
            self,
            Feed::Synced
                | Feed::Dump {
                    writable: true,
                    withdraw_unexported: false,
                    fresh: false,
                    ..
                }
        )
    }

    /// Changed prefixes are noted in its backlog instead.
    fn notes_changes(&self) -> bool {
        matches!(self, Feed::Behind { .. } | Feed::Dump { fresh: false, .. })
            && !self.takes_changes()
    }

    /// Its writer has room, as far as the RIB knows.
    fn writable(&self) -> bool {
        match self {
            Feed::Held | Feed::Synced => true,
            Feed::Dump { writable, .. } | Feed::Behind { writable } => *writable,
        }
    }
}

struct PeerState {
    config: PeerConfig,
    session: Option<Session>,
    /// The peer's BGP identifier, kept while its routes are stale.
    router_id: Ipv4Addr,
    group: Option<usize>,
    /// Source of its routes without ADD-PATH.
    src: SrcId,
    received: u64,
    accepted: u64,
    attributes_discarded: u64,
    ignored: u64,
    /// A family not negotiated was seen in this session (and signalled).
    foreign_family: bool,
    /// Per family (IPv4, IPv6): items exported to its group that are its own routes (not sent
    /// back to it).
    own: [u64; 2],
    feed: Feed,
    over_limit: bool,
    /// Removed: kept until the next drain so withdrawals of its routes can be worked out.
    removed: bool,
    /// Prefixes changed while it was behind, per family.
    backlog_v4: Backlog<V4>,
    backlog_v6: Backlog<V6>,
    /// Progress of a whole-table send, per family.
    walk_v4: Walk<V4>,
    walk_v6: Walk<V6>,
}

impl PeerState {
    fn ibgp(&self, local_as: Asn) -> bool {
        self.config.remote_as == local_as
    }

    fn backlog_is_empty(&self) -> bool {
        self.backlog_v4.is_empty() && self.backlog_v6.is_empty()
    }

    fn clear_backlog(&mut self) {
        self.backlog_v4.clear();
        self.backlog_v6.clear();
    }

    /// Sends `families` in full from the next drain on (any walk in progress starts over);
    /// `first`: the session's first table, ended by End-of-RIB. The writer's state carries
    /// over, and so does a first table not finished yet.
    fn start_dump(&mut self, families: Vec<AfiSafi>, first: bool, withdraw_unexported: bool) {
        self.walk_v4 = Walk::Idle;
        self.walk_v6 = Walk::Idle;
        for &f in &families {
            self.restart_walk(f);
        }
        let (eor, fresh) = match self.feed {
            Feed::Dump { eor, fresh, .. } => (first || eor, first || fresh),
            _ => (first, first),
        };
        self.feed = Feed::Dump {
            families,
            eor,
            withdraw_unexported,
            writable: self.feed.writable(),
            fresh,
        };
    }

    fn restart_walk(&mut self, family: AfiSafi) {
        match family {
            AfiSafi::IPV4_UNICAST => self.walk_v4 = Walk::Pending,
            AfiSafi::IPV6_UNICAST => self.walk_v6 = Walk::Pending,
            _ => {}
        }
    }

    /// Where its walk of `family` is, if one is under way.
    fn walk_position(&self, family: AfiSafi) -> Option<(usize, usize)> {
        match family {
            AfiSafi::IPV4_UNICAST => self.walk_v4.position(),
            AfiSafi::IPV6_UNICAST => self.walk_v6.position(),
            _ => None,
        }
    }

    fn walks_done(&self) -> bool {
        self.walk_v4.is_idle() && self.walk_v6.is_idle()
    }
}

struct Group {
    key: GroupKey,
    ctx: SessionContext,
    accept_all: bool,
    members: Vec<PeerId>,
    /// Items (prefixes, or paths with ADD-PATH) exportable to the group.
    /// Per family (IPv4, IPv6).
    exported: [u64; 2],
    /// Per family: `exported` and the members' `own` follow the table (a recount set them and
    /// every drain since tracked the group's changes), so a member joining without routes of
    /// its own needs no recount.
    counted: [bool; 2],
}

#[derive(Default)]
struct Tables {
    v4: Table<V4>,
    v6: Table<V6>,
}

/// A family's key type and table.
trait Family: Key {
    const AFI_SAFI: AfiSafi;
    fn table(t: &Tables) -> &Table<Self>;
    fn table_mut(t: &mut Tables) -> &mut Table<Self>;
    fn backlog(p: &mut PeerState) -> &mut Backlog<Self>;
    fn walk(p: &mut PeerState) -> &mut Walk<Self>;
}

impl Family for V4 {
    const AFI_SAFI: AfiSafi = AfiSafi::IPV4_UNICAST;
    fn table(t: &Tables) -> &Table<V4> {
        &t.v4
    }
    fn table_mut(t: &mut Tables) -> &mut Table<V4> {
        &mut t.v4
    }
    fn backlog(p: &mut PeerState) -> &mut Backlog<V4> {
        &mut p.backlog_v4
    }
    fn walk(p: &mut PeerState) -> &mut Walk<V4> {
        &mut p.walk_v4
    }
}

impl Family for V6 {
    const AFI_SAFI: AfiSafi = AfiSafi::IPV6_UNICAST;
    fn table(t: &Tables) -> &Table<V6> {
        &t.v6
    }
    fn table_mut(t: &mut Tables) -> &mut Table<V6> {
        &mut t.v6
    }
    fn backlog(p: &mut PeerState) -> &mut Backlog<V6> {
        &mut p.backlog_v6
    }
    fn walk(p: &mut PeerState) -> &mut Walk<V6> {
        &mut p.walk_v6
    }
}

type BaseKey = (usize, AfiSafi, AttrId, Owner);

/// Exported attribute sets of one drain, deduplicated so equal sets share a partition.
#[derive(Default)]
struct Exports {
    base: HashMap<BaseKey, Option<u32>>,
    last: Option<(BaseKey, Option<u32>)>,
    sets: Vec<Arc<PathAttrs>>,
    index: HashMap<Arc<PathAttrs>, u32>,
}

impl Exports {
    fn intern(&mut self, a: PathAttrs) -> u32 {
        if let Some(&i) = self.index.get(&a) {
            return i;
        }
        let arc = Arc::new(a);
        let i = self.sets.len() as u32;
        self.sets.push(Arc::clone(&arc));
        self.index.insert(arc, i);
        i
    }
}

/// Counter changes found while the table is borrowed, applied afterwards.
#[derive(Default)]
struct Deltas {
    exported: HashMap<(usize, usize), i64>,
    own: HashMap<(PeerId, usize), i64>,
}

/// One route as exported to a group: path id (ADD-PATH), exported set, and the member it must
/// not go back to.
type Item = (Option<u32>, Option<u32>, Option<PeerId>);

/// The counter slot of `family`: 0 for IPv4, 1 for IPv6.
fn slot(family: AfiSafi) -> usize {
    usize::from(family == AfiSafi::IPV6_UNICAST)
}

/// Adjusts `v` by `d` without wrapping.
fn add(v: &mut u64, d: i64) {
    *v = if d < 0 {
        v.saturating_sub(d.unsigned_abs())
    } else {
        v.saturating_add(d as u64)
    };
}

/// The BGP RIB of one speaker.
pub struct Rib {
    settings: RibSettings,
    tables: Tables,
    attrs: AttrStore,
    sources: Sources,
    peers: Vec<Option<PeerState>>,
    groups: Vec<Option<Group>>,
    group_index: HashMap<GroupKey, usize>,
    igp: HashMap<IpAddr, Option<u32>>,
    signals: Vec<Signal>,
}

impl Rib {
    /// An empty RIB.
    pub fn new(settings: RibSettings) -> Self {
        Rib {
            settings,
            tables: Tables::default(),
            attrs: AttrStore::default(),
            sources: Sources::default(),
            peers: Vec::new(),
            groups: Vec::new(),
            group_index: HashMap::new(),
            igp: HashMap::new(),
            signals: Vec::new(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &RibSettings {
        &self.settings
    }

    /// Sets the IGP cost to `next_hop` (`None`: unreachable, routes via it are not eligible).
    /// Next hops never set cost 0 and are reachable. Every prefix is decided again.
    pub fn set_igp_cost(&mut self, next_hop: IpAddr, cost: Option<u32>) {
        if self.igp.insert(next_hop, cost) != Some(cost) {
            self.tables.v4.touch_all();
            self.tables.v6.touch_all();
        }
    }

    // ---- peers ----

    /// Adds a peer (not yet established).
    pub fn add_peer(&mut self, config: PeerConfig) -> Result<PeerId, RibError> {
        let id = PeerId(u32::try_from(self.peers.len()).map_err(|_| RibError::TooManySources)?);
        let src = self.sources.get_or_add(id, 0)?;
        self.peers.push(Some(PeerState {
            config,
            session: None,
            router_id: Ipv4Addr::UNSPECIFIED,
            group: None,
            src,
            received: 0,
            accepted: 0,
            attributes_discarded: 0,
            ignored: 0,
            foreign_family: false,
            own: [0; 2],
            feed: Feed::Synced,
            over_limit: false,
            removed: false,
            backlog_v4: Backlog::default(),
            backlog_v6: Backlog::default(),
            walk_v4: Walk::Idle,
            walk_v6: Walk::Idle,
        }));
        Ok(id)
    }

    fn peer(&self, id: PeerId) -> Result<&PeerState, RibError> {
        self.peers
            .get(id.0 as usize)
            .and_then(Option::as_ref)
            .filter(|p| !p.removed)
            .ok_or(RibError::UnknownPeer(id))
    }

    fn peer_mut(&mut self, id: PeerId) -> Result<&mut PeerState, RibError> {
        self.peers
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .filter(|p| !p.removed)
            .ok_or(RibError::UnknownPeer(id))
    }

    fn established(&self, id: PeerId) -> Result<(&PeerState, &Session), RibError> {
        let p = self.peer(id)?;
        let s = p.session.as_ref().ok_or(RibError::NotEstablished(id))?;
        Ok((p, s))
    }

    /// Changes a peer's configuration. Export changes are sent at the next drain; an import
    /// change raises [`Signal::RefreshNeeded`]; an AS, address or client change raises
    /// [`Signal::ResetNeeded`].
    pub fn reconfigure_peer(&mut self, id: PeerId, config: PeerConfig) -> Result<(), RibError> {
        let local_as = self.settings.local_as;
        let p = self.peer_mut(id)?;
        let old = std::mem::replace(&mut p.config, config.clone());
        let over = config.max_prefix.filter(|l| p.accepted > u64::from(*l));
        let session = p.session.clone();
        let group = p.group;
        if old.remote_as != config.remote_as
            || old.address != config.address
            || old.rr_client != config.rr_client
        {
            self.signals.push(Signal::ResetNeeded { peer: id });
        } else if old.import != config.import {
            self.signals.push(Signal::RefreshNeeded { peer: id });
        }
        if let Some(limit) = over {
            let family = session
                .as_ref()
                .and_then(|s| s.families.first().copied())
                .unwrap_or(AfiSafi::IPV4_UNICAST);
            self.signals.push(Signal::MaxPrefix {
                peer: id,
                limit,
                family,
            });
        }
        let Some(session) = session else {
            return Ok(());
        };
        let key = GroupKey::of(&config, &session, local_as);
        let current = group
            .and_then(|g| self.groups.get(g))
            .and_then(Option::as_ref)
            .map(|g| &g.key);
        if current != Some(&key) {
            self.leave_group(id);
            let g = self.join_group(id, key);
            let p = self.peer_mut(id)?;
            p.group = Some(g);
            if p.feed != Feed::Held {
                p.start_dump(session.families.clone(), false, true);
            }
        }
        Ok(())
    }

    /// Removes a peer; its routes are withdrawn.
    pub fn remove_peer(&mut self, id: PeerId) -> Result<(), RibError> {
        self.peer(id)?;
        self.flush_peer::<V4>(id, false);
        self.flush_peer::<V6>(id, false);
        self.leave_group(id);
        self.sources.retire(id);
        let p = self.peer_mut(id)?;
        p.session = None;
        p.removed = true;
        Ok(())
    }

    /// The session with the peer is established; the next drain sends it the table (and
    /// End-of-RIB), unless `session.hold_initial`.
    pub fn peer_up(&mut self, id: PeerId, session: Session) -> Result<(), RibError> {
        self.peer(id)?;
        self.leave_group(id);
        let mut session = session;
        // Only the families this RIB holds are dumped and marked with End-of-RIB.
        session
            .families
            .retain(|f| matches!(*f, AfiSafi::IPV4_UNICAST | AfiSafi::IPV6_UNICAST));
        let key = GroupKey::of(&self.peer(id)?.config, &session, self.settings.local_as);
        let g = self.join_group(id, key);
        let p = self.peer_mut(id)?;
        p.router_id = session.router_id;
        p.group = Some(g);
        p.over_limit = false;
        p.foreign_family = false;
        p.clear_backlog();
        // A new connection: its writer is empty.
        p.feed = Feed::Synced;
        if session.hold_initial {
            p.walk_v4 = Walk::Idle;
            p.walk_v6 = Walk::Idle;
            p.feed = Feed::Held;
        } else {
            p.start_dump(session.families.clone(), true, false);
        }
        p.session = Some(session);
        Ok(())
    }

    /// We restarted and the selection deferral is over: send the held table and End-of-RIB.
    pub fn release_initial(&mut self, id: PeerId) -> Result<(), RibError> {
        let p = self.peer_mut(id)?;
        let families = p
            .session
            .as_ref()
            .ok_or(RibError::NotEstablished(id))?
            .families
            .clone();
        if p.feed == Feed::Held {
            p.start_dump(families, true, false);
        }
        Ok(())
    }

    /// The session went down. `Hard`: its routes are withdrawn. `Graceful` (RFC 4724 helper):
    /// its routes stay, marked stale, until [`Rib::end_of_rib`], [`Rib::stale_timer_expired`]
    /// or a hard down.
    pub fn peer_down(&mut self, id: PeerId, down: Down) -> Result<(), RibError> {
        self.peer(id)?;
        self.leave_group(id);
        let p = self.peer_mut(id)?;
        p.session = None;
        p.feed = Feed::Synced;
        p.walk_v4 = Walk::Idle;
        p.walk_v6 = Walk::Idle;
        p.clear_backlog();
        match down {
            Down::Hard => {
                self.flush_peer::<V4>(id, false);
                self.flush_peer::<V6>(id, false);
            }
            Down::Graceful => {
                self.mark_stale::<V4>(id);
                self.mark_stale::<V6>(id);
            }
        }
        Ok(())
    }

    /// The peer sent End-of-RIB for `family`: its routes still stale there are withdrawn.
    pub fn end_of_rib(&mut self, id: PeerId, family: AfiSafi) -> Result<(), RibError> {
        self.peer(id)?;
        match family {
            AfiSafi::IPV4_UNICAST => self.flush_peer::<V4>(id, true),
            AfiSafi::IPV6_UNICAST => self.flush_peer::<V6>(id, true),
            _ => {}
        }
        Ok(())
    }

    /// The restart (or stale) timer for the peer fired: its stale routes are withdrawn.
    pub fn stale_timer_expired(&mut self, id: PeerId) -> Result<(), RibError> {
        self.peer(id)?;
        self.flush_peer::<V4>(id, true);
        self.flush_peer::<V6>(id, true);
        Ok(())
    }

    /// The peer asked for `family` again (ROUTE-REFRESH, RFC 2918): it is re-sent from the next
    /// drain on, a batch per drain, paused while the peer's writer is full
    /// ([`Rib::peer_blocked`] until [`Rib::peer_writable`]). [`Effects::resent`] tells when the
    /// last batch went out.
    pub fn route_refresh(&mut self, id: PeerId, family: AfiSafi) -> Result<(), RibError> {
        let p = self.peer_mut(id)?;
        let negotiated = p
            .session
            .as_ref()
            .ok_or(RibError::NotEstablished(id))?
            .families
            .contains(&family);
        if !negotiated {
            return Ok(());
        }
        match &mut p.feed {
            Feed::Held => {}
            Feed::Dump { families, .. } => {
                if !families.contains(&family) {
                    families.push(family);
                }
                // What was sent before the question may have been dropped by the peer.
                p.restart_walk(family);
            }
            // A peer behind keeps its backlog: the dump re-sends every prefix there is, the
            // backlog also withdraws those gone since.
            Feed::Synced | Feed::Behind { .. } => p.start_dump(vec![family], false, false),
        }
        Ok(())
    }

    /// The peer's writer is full: from the next drain on, its changes wait in a backlog
    /// instead of being encoded for it (so a slow peer costs at most one entry per changed
    /// prefix). Call [`Rib::peer_writable`] when it has room again.
    pub fn peer_blocked(&mut self, id: PeerId) -> Result<(), RibError> {
        let p = self.peer_mut(id)?;
        if p.session.is_none() {
            return Ok(());
        }
        match &mut p.feed {
            Feed::Synced => p.feed = Feed::Behind { writable: false },
            Feed::Behind { writable } | Feed::Dump { writable, .. } => *writable = false,
            Feed::Held => {}
        }
        Ok(())
    }

    /// The peer's writer has room again: each drain sends it a batch of the table it is being
    /// sent in full (its first table, families it asked for again) and then of its backlog
    /// (the current state of prefixes changed while it was blocked) until it is in sync.
    pub fn peer_writable(&mut self, id: PeerId) -> Result<(), RibError> {
        let p = self.peer_mut(id)?;
        if let Feed::Behind { writable } | Feed::Dump { writable, .. } = &mut p.feed {
            *writable = true;
        }
        Ok(())
    }

    /// Whether a drain has a table or backlog to send to a writable peer: the caller should
    /// drain again soon even without new input.
    pub fn catching_up(&self) -> bool {
        self.peers.iter().flatten().any(|p| {
            matches!(
                p.feed,
                Feed::Behind { writable: true } | Feed::Dump { writable: true, .. }
            )
        })
    }

    /// Prefixes changed since the last drain. The snapshots of changed prefixes are memory the
    /// drain frees: a caller feeding a large table drains when this grows.
    pub fn pending_changes(&self) -> usize {
        self.tables.v4.dirty_len() + self.tables.v6.dirty_len()
    }

    fn join_group(&mut self, id: PeerId, key: GroupKey) -> usize {
        if let Some(&g) = self.group_index.get(&key) {
            if let Some(group) = self.groups.get_mut(g).and_then(Option::as_mut) {
                group.members.push(id);
                return g;
            }
        }
        let group = Group {
            ctx: key.context(),
            accept_all: key.export.is_accept_all(),
            key: key.clone(),
            members: vec![id],
            exported: [0; 2],
            counted: [false; 2],
        };
        let g = match self.groups.iter().position(Option::is_none) {
            Some(g) => {
                self.groups[g] = Some(group);
                g
            }
            None => {
                self.groups.push(Some(group));
                self.groups.len() - 1
            }
        };
        self.group_index.insert(key, g);
        g
    }

    fn leave_group(&mut self, id: PeerId) {
        let Some(p) = self.peers.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            return;
        };
        let Some(g) = p.group.take() else { return };
        p.own = [0; 2];
        let Some(group) = self.groups.get_mut(g).and_then(Option::as_mut) else {
            return;
        };
        group.members.retain(|m| *m != id);
        if group.members.is_empty() {
            self.group_index.remove(&group.key);
            self.groups[g] = None;
        }
    }

    // ---- routes in ----

    /// Applies a decoded UPDATE from the peer: withdrawals, announcements (withdrawn instead
    /// under RFC 7606 treat-as-withdraw), End-of-RIB.
    pub fn apply_update(&mut self, id: PeerId, update: &Update) -> Result<(), RibError> {
        if let Some(family) = update.end_of_rib_family() {
            return self.end_of_rib(id, family);
        }
        self.withdraw(id, AfiSafi::IPV4_UNICAST, &update.withdrawn)?;
        if let Some(u) = &update.mp_unreach {
            self.withdraw(id, u.afi_safi, &u.withdrawn)?;
        }
        if update.treat_as_withdraw() {
            self.withdraw(id, AfiSafi::IPV4_UNICAST, &update.nlri)?;
            if let Some(r) = &update.mp_reach {
                self.withdraw(id, r.afi_safi, &r.nlri)?;
            }
            return Ok(());
        }
        if !update.nlri.is_empty() {
            self.announce(id, AfiSafi::IPV4_UNICAST, &update.attrs, &update.nlri)?;
        }
        if let Some(r) = &update.mp_reach {
            let attrs = PathAttrs {
                next_hop: Some(r.next_hop),
                ..update.attrs.clone()
            };
            self.announce(id, r.afi_safi, &attrs, &r.nlri)?;
        }
        Ok(())
    }

    /// The peer announces `nlri` of `family` with `attrs`.
    pub fn announce(
        &mut self,
        id: PeerId,
        family: AfiSafi,
        attrs: &PathAttrs,
        nlri: &[Nlri],
    ) -> Result<(), RibError> {
        if !self.negotiated(id, family, nlri)? {
            return Ok(());
        }
        match family {
            AfiSafi::IPV4_UNICAST => self.announce_in::<V4>(id, attrs, nlri),
            AfiSafi::IPV6_UNICAST => self.announce_in::<V6>(id, attrs, nlri),
            _ => Ok(()),
        }
    }

    /// The peer withdraws `nlri` of `family`.
    pub fn withdraw(&mut self, id: PeerId, family: AfiSafi, nlri: &[Nlri]) -> Result<(), RibError> {
        if !self.negotiated(id, family, nlri)? {
            return Ok(());
        }
        match family {
            AfiSafi::IPV4_UNICAST => self.withdraw_in::<V4>(id, nlri),
            AfiSafi::IPV6_UNICAST => self.withdraw_in::<V6>(id, nlri),
            _ => Ok(()),
        }
    }

    /// Whether the peer's session negotiated `family`. If not, `nlri` is ignored (RFC 4760 §6:
    /// a family not negotiated is not to be used, as BIRD, FRR and GoBGP ignore it): counted,
    /// and the first time in a session signalled for a log.
    fn negotiated(&mut self, id: PeerId, family: AfiSafi, nlri: &[Nlri]) -> Result<bool, RibError> {
        let (_, session) = self.established(id)?;
        if nlri.is_empty() || session.families.contains(&family) {
            return Ok(true);
        }
        let p = self.peer_mut(id)?;
        p.ignored = p.ignored.saturating_add(nlri.len() as u64);
        if !p.foreign_family {
            p.foreign_family = true;
            self.signals
                .push(Signal::FamilyNotNegotiated { peer: id, family });
        }
        Ok(false)
    }

    fn announce_in<K: Family>(
        &mut self,
        id: PeerId,
        attrs: &PathAttrs,
        nlri: &[Nlri],
    ) -> Result<(), RibError> {
        let (p, session) = self.established(id)?;
        let ibgp = p.ibgp(self.settings.local_as);
        let add_path = session.add_path_rx.contains(&K::AFI_SAFI);
        let default_src = p.src;
        let policy = (!p.config.import.is_accept_all()).then(|| p.config.import.clone());
        // Loop detection (RFC 4271 §9.1.2, RFC 4456 §8): kept, but not accepted.
        let looped = if ibgp {
            attrs.originator_id == Some(self.settings.router_id)
                || attrs
                    .cluster_list
                    .contains(&self.settings.cluster_id.unwrap_or(self.settings.router_id))
        } else {
            attrs
                .as_path
                .as_ref()
                .is_some_and(|path| path.contains(self.settings.local_as))
        };
        // From an external peer, LOCAL_PREF is ignored (RFC 4271 §5.1.5) and ORIGINATOR_ID and
        // CLUSTER_LIST are discarded (RFC 7606 §7.9, §7.10): passed on into iBGP, they would let
        // an external peer make our iBGP peers take the route for a reflection loop.
        let discarded = if ibgp {
            0
        } else {
            u64::from(attrs.originator_id.is_some()) + u64::from(!attrs.cluster_list.is_empty())
        };
        let base = if !ibgp && (attrs.local_pref.is_some() || discarded > 0) {
            self.attrs.intern(&PathAttrs {
                local_pref: None,
                originator_id: None,
                cluster_list: Vec::new(),
                ..attrs.clone()
            })
        } else {
            self.attrs.intern(attrs)
        };
        let (mut received, mut accepted) = (0i64, 0i64);
        let mut last_src: Option<(u32, SrcId)> = None;
        for n in nlri {
            let Some(key) = K::of(n.prefix) else { continue };
            let src = if add_path {
                let path_id = n.path_id.unwrap_or(0);
                match last_src {
                    Some((pid, s)) if pid == path_id => s,
                    _ => {
                        let s = self.sources.get_or_add(id, path_id)?;
                        last_src = Some((path_id, s));
                        s
                    }
                }
            } else {
                default_src
            };
            let (attrs_id, rejected) = match (&policy, looped) {
                (_, true) => (base, true),
                (None, false) => (base, false),
                (Some(pol), false) => match pol.evaluate(n.prefix, self.attrs.get(base)) {
                    Outcome::Reject => (base, true),
                    Outcome::Accept => (base, false),
                    Outcome::Modified(a) => (self.attrs.intern(&a), false),
                },
            };
            self.attrs.retain(attrs_id);
            let route = Route::new(attrs_id, src, if rejected { flag::REJECTED } else { 0 });
            match K::table_mut(&mut self.tables).upsert(key, route) {
                Some(old) => {
                    self.attrs.release(old.attrs());
                    accepted += i64::from(!rejected) - i64::from(!old.is(flag::REJECTED));
                }
                None => {
                    received += 1;
                    accepted += i64::from(!rejected);
                }
            }
        }
        let p = self.peer_mut(id)?;
        add(&mut p.received, received);
        add(&mut p.accepted, accepted);
        p.attributes_discarded += discarded;
        if let Some(limit) = p.config.max_prefix {
            if p.accepted > u64::from(limit) && !p.over_limit {
                p.over_limit = true;
                self.signals.push(Signal::MaxPrefix {
                    peer: id,
                    limit,
                    family: K::AFI_SAFI,
                });
            }
        }
        Ok(())
    }

    fn withdraw_in<K: Family>(&mut self, id: PeerId, nlri: &[Nlri]) -> Result<(), RibError> {
        let (p, session) = self.established(id)?;
        let add_path = session.add_path_rx.contains(&K::AFI_SAFI);
        let default_src = p.src;
        let (mut received, mut accepted) = (0i64, 0i64);
        for n in nlri {
            let Some(key) = K::of(n.prefix) else { continue };
            let src = if add_path {
                match self.sources.find(id, n.path_id.unwrap_or(0)) {
                    Some(s) => s,
                    None => continue,
                }
            } else {
                default_src
            };
            if let Some(old) = K::table_mut(&mut self.tables).remove(key, src) {
                self.attrs.release(old.attrs());
                received -= 1;
                accepted -= i64::from(!old.is(flag::REJECTED));
            }
        }
        let p = self.peer_mut(id)?;
        add(&mut p.received, received);
        add(&mut p.accepted, accepted);
        Ok(())
    }

    /// Withdraws the peer's routes (only the stale ones with `only_stale`).
    fn flush_peer<K: Family>(&mut self, id: PeerId, only_stale: bool) {
        let table = K::table_mut(&mut self.tables);
        let sources = &self.sources;
        let attrs = &mut self.attrs;
        let (mut received, mut accepted) = (0i64, 0i64);
        table.remove_where(
            |r| sources.owner(r.src()) == Owner::Peer(id) && (!only_stale || r.is(flag::STALE)),
            |old| {
                attrs.release(old.attrs());
                received -= 1;
                accepted -= i64::from(!old.is(flag::REJECTED));
            },
        );
        if let Some(p) = self.peers.get_mut(id.0 as usize).and_then(Option::as_mut) {
            add(&mut p.received, received);
            add(&mut p.accepted, accepted);
        }
    }

    fn mark_stale<K: Family>(&mut self, id: PeerId) {
        let sources = &self.sources;
        K::table_mut(&mut self.tables).for_each_mut(|_, routes| {
            for r in routes
                .iter_mut()
                .filter(|r| sources.owner(r.src()) == Owner::Peer(id))
            {
                r.set(flag::STALE, true);
            }
        });
    }

    /// Originates `prefix` (own block, borrowed /32). Left empty, ORIGIN is IGP, AS_PATH
    /// empty and the next hop ourselves on each session.
    pub fn originate(&mut self, prefix: Prefix, attrs: PathAttrs) {
        let mut attrs = attrs;
        attrs.origin.get_or_insert(Origin::Igp);
        attrs.as_path.get_or_insert_with(AsPath::default);
        let id = self.attrs.intern(&attrs);
        self.attrs.retain(id);
        let route = Route::new(id, SrcId::LOCAL, 0);
        let old = match prefix {
            Prefix::V4(_) => V4::of(prefix).and_then(|k| self.tables.v4.upsert(k, route)),
            Prefix::V6(_) => V6::of(prefix).and_then(|k| self.tables.v6.upsert(k, route)),
        };
        if let Some(old) = old {
            self.attrs.release(old.attrs());
        }
    }

    /// Stops originating `prefix`.
    pub fn withdraw_local(&mut self, prefix: Prefix) {
        let old = match prefix {
            Prefix::V4(_) => V4::of(prefix).and_then(|k| self.tables.v4.remove(k, SrcId::LOCAL)),
            Prefix::V6(_) => V6::of(prefix).and_then(|k| self.tables.v6.remove(k, SrcId::LOCAL)),
        };
        if let Some(old) = old {
            self.attrs.release(old.attrs());
        }
    }

    // ---- decision ----

    /// The read-only view the decision and the edge rules need, borrowed apart from the tables.
    fn facts(&self) -> Facts<'_> {
        Facts {
            settings: &self.settings,
            attrs: &self.attrs,
            sources: &self.sources,
            peers: &self.peers,
            igp: &self.igp,
        }
    }

    /// Next hops of the multipath set of `routes` for the kernel; empty when none or when the
    /// best route is our own.
    fn fib_next_hops(&self, routes: &[Route]) -> Vec<IpAddr> {
        if routes
            .iter()
            .any(|r| r.is(flag::BEST) && self.sources.owner(r.src()) == Owner::Local)
        {
            return Vec::new();
        }
        let mut v: Vec<IpAddr> = routes
            .iter()
            .filter(|r| r.is(flag::MULTIPATH))
            .filter_map(|r| next_hop_ip(self.attrs.get(r.attrs())))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    // ---- routes out ----

    /// The member of group `g` that `owner` is, if any: its routes are not sent back to it.
    fn member_of(&self, owner: Owner, g: usize) -> Option<PeerId> {
        match owner {
            Owner::Peer(p) => self
                .peers
                .get(p.0 as usize)
                .and_then(Option::as_ref)
                .filter(|s| s.group == Some(g))
                .map(|_| p),
            Owner::Local => None,
        }
    }

    /// The exported attribute set of `route` (of `prefix`) towards group `g`, if exported.
    fn export_of(
        &self,
        ex: &mut Exports,
        g: usize,
        family: AfiSafi,
        prefix: Prefix,
        route: Route,
    ) -> Option<u32> {
        let group = self.groups.get(g).and_then(Option::as_ref)?;
        let owner = self.sources.owner(route.src());
        let key = (g, family, route.attrs(), owner);
        let base = match ex.last {
            Some((k, v)) if k == key => v,
            _ => {
                let v = match ex.base.get(&key) {
                    Some(v) => *v,
                    None => {
                        let edge = Edge {
                            local_as: self.settings.local_as,
                            cluster_id: self.settings.cluster_id,
                            default_local_pref: self.settings.default_local_pref,
                        };
                        let info = self.facts().source_info(owner);
                        let v = edge_attrs(
                            &edge,
                            &group.key,
                            &info,
                            self.attrs.get(route.attrs()),
                            family,
                        )
                        .map(|a| ex.intern(a));
                        ex.base.insert(key, v);
                        v
                    }
                };
                ex.last = Some((key, v));
                v
            }
        }?;
        if group.accept_all {
            return Some(base);
        }
        let set = Arc::clone(&ex.sets[base as usize]);
        match group.key.export.evaluate(prefix, &set) {
            Outcome::Reject => None,
            Outcome::Accept => Some(base),
            Outcome::Modified(mut a) => {
                // A policy may set LOCAL_PREF; it never leaves the AS (RFC 4271 §5.1.5).
                if !group.key.ibgp {
                    a.local_pref = None;
                }
                Some(ex.intern(*a))
            }
        }
    }

    /// The items of `routes` group `g` is sent for `family`.
    fn items(
        &self,
        ex: &mut Exports,
        g: usize,
        family: AfiSafi,
        prefix: Prefix,
        routes: &[Route],
        out: &mut Vec<Item>,
    ) {
        out.clear();
        let Some(group) = self.groups.get(g).and_then(Option::as_ref) else {
            return;
        };
        let add_path = group.key.add_path(family);
        let wanted = |r: &Route| {
            if !add_path {
                return r.is(flag::BEST);
            }
            match group.key.add_path_send {
                AddPathSend::Best => r.is(flag::BEST),
                AddPathSend::Multipath => r.is(flag::MULTIPATH),
                AddPathSend::All => !r.is(flag::REJECTED),
            }
        };
        for r in routes.iter().filter(|r| wanted(r)) {
            let exported = self.export_of(ex, g, family, prefix, *r);
            let except = self.member_of(self.sources.owner(r.src()), g);
            out.push((add_path.then(|| r.src().path_id()), exported, except));
        }
    }

    /// Queues what group `g` must be told about `prefix` going from `old` to `new`.
    #[allow(clippy::too_many_arguments)]
    fn diff_group(
        &self,
        ex: &mut Exports,
        outbox: &mut Outbox,
        fx: &mut Effects,
        deltas: &mut Deltas,
        g: usize,
        family: AfiSafi,
        prefix: Prefix,
        old: &[Route],
        new: &[Route],
        bufs: &mut (Vec<Item>, Vec<Item>),
    ) {
        self.items(ex, g, family, prefix, old, &mut bufs.0);
        self.items(ex, g, family, prefix, new, &mut bufs.1);
        let (olds, news) = (&bufs.0, &bufs.1);
        let part = |audience, exported| PartKey {
            group: g,
            family,
            audience,
            exported,
        };
        let add_path = olds.iter().chain(news).any(|i| i.0.is_some());
        if !add_path {
            let (oe, ox) = olds.first().map_or((None, None), |i| (i.1, i.2));
            let (ne, nx) = news.first().map_or((None, None), |i| (i.1, i.2));
            if (oe, ox) == (ne, nx) {
                return;
            }
            let nlri = Nlri {
                path_id: None,
                prefix,
            };
            if let Some(e) = ne {
                self.queue(
                    ex,
                    outbox,
                    fx,
                    part(Audience::Synced { except: nx }, Some(e)),
                    nlri,
                );
                if let Some(x) = nx.filter(|x| oe.is_some() && ox != Some(*x)) {
                    self.queue(ex, outbox, fx, part(Audience::One(x), None), nlri);
                }
            } else if oe.is_some() {
                self.queue(
                    ex,
                    outbox,
                    fx,
                    part(Audience::Synced { except: ox }, None),
                    nlri,
                );
            }
        } else {
            for &(pid, e, x) in news {
                let Some(e) = e else { continue };
                if olds.iter().any(|o| o.0 == pid && o.1 == Some(e)) {
                    continue;
                }
                self.queue(
                    ex,
                    outbox,
                    fx,
                    part(Audience::Synced { except: x }, Some(e)),
                    Nlri {
                        path_id: pid,
                        prefix,
                    },
                );
            }
            for &(pid, e, x) in olds {
                if e.is_some() && !news.iter().any(|n| n.0 == pid && n.1.is_some()) {
                    self.queue(
                        ex,
                        outbox,
                        fx,
                        part(Audience::Synced { except: x }, None),
                        Nlri {
                            path_id: pid,
                            prefix,
                        },
                    );
                }
            }
        }
        for (items, sign) in [(olds, -1i64), (news, 1i64)] {
            for &(_, _, x) in items.iter().filter(|i| i.1.is_some()) {
                *deltas.exported.entry((g, slot(family))).or_default() += sign;
                if let Some(x) = x {
                    *deltas.own.entry((x, slot(family))).or_default() += sign;
                }
            }
        }
    }

    /// Adds one NLRI to a partition, encoding the partition when it is full.
    fn queue(&self, ex: &Exports, outbox: &mut Outbox, fx: &mut Effects, key: PartKey, nlri: Nlri) {
        if let Some((key, batch)) = outbox.push(key, nlri) {
            self.encode(ex, key, &batch, fx);
        }
    }

    /// The peers a partition's audience stands for.
    fn audience(&self, g: usize, family: AfiSafi, audience: Audience) -> Vec<PeerId> {
        let Some(group) = self.groups.get(g).and_then(Option::as_ref) else {
            return Vec::new();
        };
        let state = |m: &PeerId| {
            self.peers
                .get(m.0 as usize)
                .and_then(Option::as_ref)
                .map(|p| &p.feed)
        };
        match audience {
            Audience::One(p) => vec![p],
            Audience::Synced { except } => group
                .members
                .iter()
                .copied()
                .filter(|m| Some(*m) != except && state(m).is_some_and(Feed::takes_changes))
                .collect(),
            Audience::Walking { lead, except } => {
                let Some(at) = self.peer(lead).ok().and_then(|p| p.walk_position(family)) else {
                    return Vec::new();
                };
                self.cohort(g, family, at)
                    .filter(|m| Some(*m) != except)
                    .collect()
            }
        }
    }

    /// Members of group `g` walking `family` that are at `at` and writable.
    fn cohort(
        &self,
        g: usize,
        family: AfiSafi,
        at: (usize, usize),
    ) -> impl Iterator<Item = PeerId> + '_ {
        let members = self
            .groups
            .get(g)
            .and_then(Option::as_ref)
            .map_or(&[][..], |group| &group.members[..]);
        members.iter().copied().filter(move |m| {
            self.peer(*m).is_ok_and(|p| {
                matches!(p.feed, Feed::Dump { writable: true, .. })
                    && p.walk_position(family) == Some(at)
            })
        })
    }

    /// Encodes one partition batch into an [`Outbound`].
    fn encode(&self, ex: &Exports, key: PartKey, nlri: &[Nlri], fx: &mut Effects) {
        let Some(group) = self.groups.get(key.group).and_then(Option::as_ref) else {
            return;
        };
        let peers = self.audience(key.group, key.family, key.audience);
        if peers.is_empty() {
            return;
        }
        let mut buf = BytesMut::new();
        let done = match key.exported.and_then(|e| ex.sets.get(e as usize)) {
            Some(attrs) => pack::announce(&group.ctx, key.family, attrs, nlri, &mut buf),
            None => pack::withdraw(&group.ctx, key.family, nlri, &mut buf),
        };
        match done {
            Ok(_) => fx.outbound.push(Outbound {
                peers,
                messages: buf.freeze(),
            }),
            Err(error) => fx.signals.push(Signal::EncodeFailed { peers, error }),
        }
    }

    fn flush(&self, ex: &Exports, outbox: &mut Outbox, fx: &mut Effects) {
        for (key, batch) in outbox.take_all() {
            self.encode(ex, key, &batch, fx);
        }
    }

    /// Groups with members that take changes of `family`.
    fn synced_groups(&self, family: AfiSafi) -> Vec<usize> {
        (0..self.groups.len())
            .filter(|&g| {
                let Some(group) = self.groups[g].as_ref() else {
                    return false;
                };
                // Members behind count: the group's export counters follow every change.
                group.key.families.contains(&family)
                    && group.members.iter().any(|m| {
                        self.peer(*m)
                            .is_ok_and(|p| p.feed.takes_changes() || p.feed.notes_changes())
                    })
            })
            .collect()
    }

    fn drain_changes<K: Family>(
        &mut self,
        ex: &mut Exports,
        outbox: &mut Outbox,
        deltas: &mut Deltas,
        fx: &mut Effects,
    ) {
        if !K::table(&self.tables).has_dirty() {
            return;
        }
        let family = K::AFI_SAFI;
        let mut dirty = K::table_mut(&mut self.tables).take_dirty();
        K::table(&self.tables).order_by_position(&mut dirty);
        let groups = self.synced_groups(family);
        for (g, group) in self.groups.iter_mut().enumerate() {
            if let Some(group) = group.as_mut().filter(|_| !groups.contains(&g)) {
                group.counted[slot(family)] = false;
            }
        }
        let behind = self.behind_members(family, Feed::notes_changes);
        let mut new: Vec<Route> = Vec::new();
        let mut bufs = (Vec::new(), Vec::new());
        for (key, old) in dirty.iter() {
            new.clear();
            {
                let facts = Facts {
                    settings: &self.settings,
                    attrs: &self.attrs,
                    sources: &self.sources,
                    peers: &self.peers,
                    igp: &self.igp,
                };
                // One lookup: decide, copy out, end the dirty state.
                K::table_mut(&mut self.tables).settle_with(key, |routes| {
                    facts.decide(routes);
                    new.extend_from_slice(routes);
                });
            }
            let prefix = key.prefix();
            if self.settings.fib {
                let (before, after) = (self.fib_next_hops(old), self.fib_next_hops(&new));
                if before != after {
                    fx.fib.push(FibChange {
                        prefix,
                        next_hops: after,
                    });
                }
            }
            for &g in &groups {
                self.diff_group(
                    ex, outbox, fx, deltas, g, family, prefix, old, &new, &mut bufs,
                );
            }
            for &(m, _, add_path) in &behind {
                if let Some(p) = self.peers.get_mut(m.0 as usize).and_then(Option::as_mut) {
                    let paths = old.iter().filter(|_| add_path).map(|r| r.src().path_id());
                    K::backlog(p).record(key, paths);
                }
            }
        }
    }

    /// Members in a state `which` accepts whose group takes `family`, with their group and
    /// whether it uses ADD-PATH there.
    fn behind_members(
        &self,
        family: AfiSafi,
        which: impl Fn(&Feed) -> bool,
    ) -> Vec<(PeerId, usize, bool)> {
        let mut out = Vec::new();
        for (i, p) in self.peers.iter().enumerate() {
            let Some(p) = p else { continue };
            if !which(&p.feed) {
                continue;
            }
            let Some(g) = p.group else { continue };
            let Some(group) = self.groups.get(g).and_then(Option::as_ref) else {
                continue;
            };
            if group.key.families.contains(&family) {
                out.push((PeerId(i as u32), g, group.key.add_path(family)));
            }
        }
        out
    }

    /// Sends writable members behind a batch of their backlog of `family`: each noted prefix
    /// as it is now (announced, or withdrawn when not exported to them), and each noted path
    /// no longer exported withdrawn.
    fn catch_up<K: Family>(&mut self, ex: &mut Exports, outbox: &mut Outbox, fx: &mut Effects) {
        let family = K::AFI_SAFI;
        let mut items = Vec::new();
        let catching_up = |f: &Feed| matches!(f, Feed::Behind { writable: true });
        for (m, g, add_path) in self.behind_members(family, catching_up) {
            let Some(p) = self.peers.get_mut(m.0 as usize).and_then(Option::as_mut) else {
                continue;
            };
            let batch = K::backlog(p).take(CATCH_UP_BATCH);
            for (key, path) in batch {
                let prefix = key.prefix();
                self.items(
                    ex,
                    g,
                    family,
                    prefix,
                    K::table(&self.tables).get(key),
                    &mut items,
                );
                let part = |exported| PartKey {
                    group: g,
                    family,
                    audience: Audience::One(m),
                    exported,
                };
                let to_m = |i: &&Item| i.1.is_some() && i.2 != Some(m);
                if path != CURRENT {
                    if !items.iter().filter(to_m).any(|i| i.0 == Some(path)) {
                        let nlri = Nlri {
                            path_id: Some(path),
                            prefix,
                        };
                        self.queue(ex, outbox, fx, part(None), nlri);
                    }
                    continue;
                }
                let mut sent = false;
                for &(path_id, e, _) in items.iter().filter(to_m) {
                    sent = true;
                    let nlri = Nlri { path_id, prefix };
                    self.queue(ex, outbox, fx, part(e), nlri);
                }
                if !sent && !add_path {
                    let nlri = Nlri {
                        path_id: None,
                        prefix,
                    };
                    self.queue(ex, outbox, fx, part(None), nlri);
                }
            }
        }
    }

    /// Sends the members being sent the whole `family` table (and writable) their next batch
    /// of it. Those whose walk is pending start now: the table's keys are taken once for all
    /// of them, and their groups' export counters recounted. Members at the same point of the
    /// same keys share one encoding. Returns how far each position got, for
    /// [`Rib::advance_walks`] to move the members on once the drain has encoded the batch.
    fn walk<K: Family>(
        &mut self,
        ex: &mut Exports,
        outbox: &mut Outbox,
        fx: &mut Effects,
    ) -> Vec<((usize, usize), usize)> {
        let family = K::AFI_SAFI;
        let mut keys: Option<Arc<[K]>> = None;
        let mut recount = Vec::new();
        for p in self.peers.iter_mut().flatten() {
            if !matches!(p.feed, Feed::Dump { writable: true, .. })
                || !matches!(K::walk(p), Walk::Pending)
            {
                continue;
            }
            let carried = p.group.filter(|&g| {
                self.groups
                    .get(g)
                    .and_then(Option::as_ref)
                    .is_some_and(|group| group.key.families.contains(&family))
            });
            let Some(g) = carried else {
                *K::walk(p) = Walk::Idle;
                continue;
            };
            // A member new to the group brings its own routes into the counts.
            let joined = matches!(
                p.feed,
                Feed::Dump { fresh: true, .. }
                    | Feed::Dump {
                        withdraw_unexported: true,
                        ..
                    }
            );
            let counted = self.groups[g]
                .as_ref()
                .is_some_and(|group| group.counted[slot(family)]);
            if (!counted || (joined && p.received > 0)) && !recount.contains(&g) {
                recount.push(g);
            }
            let keys =
                keys.get_or_insert_with(|| K::table(&self.tables).iter().map(|(k, _)| k).collect());
            *K::walk(p) = Walk::At {
                keys: Arc::clone(keys),
                next: 0,
            };
        }
        for g in recount {
            self.recount::<K>(g);
        }
        let mut cohorts: Vec<(usize, PeerId, (usize, usize))> = Vec::new();
        for (i, p) in self.peers.iter().enumerate() {
            let Some(p) = p else { continue };
            let (Feed::Dump { writable: true, .. }, Some(g), Some(at)) =
                (&p.feed, p.group, p.walk_position(family))
            else {
                continue;
            };
            if !cohorts.iter().any(|&(cg, _, cat)| (cg, cat) == (g, at)) {
                cohorts.push((g, PeerId(i as u32), at));
            }
        }
        let mut items = Vec::new();
        let mut steps = Vec::new();
        for (g, lead, at) in cohorts {
            let Some((keys, range)) = self
                .peers
                .get_mut(lead.0 as usize)
                .and_then(Option::as_mut)
                .and_then(|p| K::walk(p).batch(WALK_BATCH))
            else {
                continue;
            };
            let (sets, mut taken) = (ex.sets.len(), 0);
            let cleanup: Vec<PeerId> = self
                .cohort(g, family, at)
                .filter(|&m| {
                    self.peer(m).is_ok_and(|p| {
                        matches!(
                            p.feed,
                            Feed::Dump {
                                withdraw_unexported: true,
                                ..
                            }
                        )
                    })
                })
                .collect();
            let add_path = self.groups[g]
                .as_ref()
                .is_some_and(|group| group.key.add_path(family));
            for &key in &keys[range] {
                if ex.sets.len() - sets >= WALK_SETS {
                    break;
                }
                taken += 1;
                let routes = K::table(&self.tables).get(key);
                if routes.is_empty() {
                    // Gone since the walk started: its withdrawal went out as a change (or
                    // waits in the backlog).
                    continue;
                }
                let prefix = key.prefix();
                self.items(ex, g, family, prefix, routes, &mut items);
                for &(path_id, e, x) in &items {
                    let Some(e) = e else { continue };
                    let part = PartKey {
                        group: g,
                        family,
                        audience: Audience::Walking { lead, except: x },
                        exported: Some(e),
                    };
                    self.queue(ex, outbox, fx, part, Nlri { path_id, prefix });
                }
                for &m in &cleanup {
                    let sent = |pid: Option<u32>| {
                        items
                            .iter()
                            .any(|i| i.0 == pid && i.1.is_some() && i.2 != Some(m))
                    };
                    let part = PartKey {
                        group: g,
                        family,
                        audience: Audience::One(m),
                        exported: None,
                    };
                    if add_path {
                        for r in routes.iter().filter(|r| !sent(Some(r.src().path_id()))) {
                            let nlri = Nlri {
                                path_id: Some(r.src().path_id()),
                                prefix,
                            };
                            self.queue(ex, outbox, fx, part, nlri);
                        }
                    } else if !sent(None) {
                        let nlri = Nlri {
                            path_id: None,
                            prefix,
                        };
                        self.queue(ex, outbox, fx, part, nlri);
                    }
                }
            }
            steps.push((at, taken));
        }
        steps
    }

    /// Moves every walk past the keys [`Rib::walk`] sent from its position (after the drain
    /// has encoded them for the cohorts as they were).
    fn advance_walks(&mut self, v4: &[((usize, usize), usize)], v6: &[((usize, usize), usize)]) {
        let step = |steps: &[((usize, usize), usize)], at: Option<(usize, usize)>| {
            steps.iter().find(|s| Some(s.0) == at).map_or(0, |s| s.1)
        };
        for p in self.peers.iter_mut().flatten() {
            if let Feed::Dump {
                writable: true,
                fresh,
                ..
            } = &mut p.feed
            {
                *fresh = false;
                let (n4, n6) = (
                    step(v4, p.walk_v4.position()),
                    step(v6, p.walk_v6.position()),
                );
                p.walk_v4.advance(n4);
                p.walk_v6.advance(n6);
            }
        }
    }

    /// Counts what group `g` is sent of `family`, and each member's own share of it, from the
    /// table as it is; changes keep the counts up to date from here on.
    fn recount<K: Family>(&mut self, g: usize) {
        let family = K::AFI_SAFI;
        let mut exported = 0u64;
        let mut own: HashMap<PeerId, u64> = HashMap::new();
        let mut items = Vec::new();
        let mut scratch = Exports::default();
        for (key, routes) in K::table(&self.tables).iter() {
            if scratch.sets.len() >= WALK_SETS {
                // The exported sets are only counted: a table of distinct sets must not
                // have them all exported at once.
                scratch = Exports::default();
            }
            self.items(&mut scratch, g, family, key.prefix(), routes, &mut items);
            for &(_, e, x) in &items {
                if e.is_none() {
                    continue;
                }
                exported += 1;
                if let Some(x) = x {
                    *own.entry(x).or_default() += 1;
                }
            }
        }
        if let Some(group) = self.groups[g].as_mut() {
            group.exported[slot(family)] = exported;
            group.counted[slot(family)] = true;
            for &m in &group.members {
                if let Some(p) = self.peers[m.0 as usize].as_mut() {
                    p.own[slot(family)] = own.get(&m).copied().unwrap_or(0);
                }
            }
        }
    }

    /// Encodes everything that changed since the last drain, and returns it with the kernel
    /// changes and signals. Call after each batch of inputs.
    pub fn drain(&mut self) -> Effects {
        let mut fx = Effects {
            signals: std::mem::take(&mut self.signals),
            ..Effects::default()
        };
        let mut ex = Exports::default();
        let mut outbox = Outbox::default();
        let mut deltas = Deltas::default();
        self.drain_changes::<V4>(&mut ex, &mut outbox, &mut deltas, &mut fx);
        self.drain_changes::<V6>(&mut ex, &mut outbox, &mut deltas, &mut fx);
        // Changes first: a member re-sent the table must end with its state.
        self.flush(&ex, &mut outbox, &mut fx);
        for ((g, f), d) in deltas.exported {
            if let Some(group) = self.groups.get_mut(g).and_then(Option::as_mut) {
                add(&mut group.exported[f], d);
            }
        }
        for ((p, f), d) in deltas.own {
            if let Some(p) = self.peers.get_mut(p.0 as usize).and_then(Option::as_mut) {
                add(&mut p.own[f], d);
            }
        }
        self.catch_up::<V4>(&mut ex, &mut outbox, &mut fx);
        self.catch_up::<V6>(&mut ex, &mut outbox, &mut fx);
        let v4 = self.walk::<V4>(&mut ex, &mut outbox, &mut fx);
        let v6 = self.walk::<V6>(&mut ex, &mut outbox, &mut fx);
        self.flush(&ex, &mut outbox, &mut fx);
        self.advance_walks(&v4, &v6);
        self.finish_dumps(&mut fx);
        for slot in &mut self.peers {
            if slot.as_ref().is_some_and(|p| p.removed) {
                *slot = None;
            }
        }
        self.attrs.collect();
        self.sources.collect();
        fx
    }

    /// Ends dumps whose every walk is done: End-of-RIB where due, members now in sync.
    fn finish_dumps(&mut self, fx: &mut Effects) {
        for (i, slot) in self.peers.iter_mut().enumerate() {
            let Some(p) = slot.as_mut() else { continue };
            if matches!(p.feed, Feed::Behind { writable: true }) && p.backlog_is_empty() {
                p.feed = Feed::Synced;
                continue;
            }
            if !p.walks_done() {
                continue;
            }
            let Feed::Dump {
                families,
                eor,
                writable,
                ..
            } = &p.feed
            else {
                continue;
            };
            let writable = *writable;
            fx.resent
                .extend(families.iter().map(|&f| (PeerId(i as u32), f)));
            if *eor {
                let ctx = p
                    .group
                    .and_then(|g| self.groups.get(g))
                    .and_then(Option::as_ref)
                    .map(|g| g.ctx.clone())
                    .unwrap_or_default();
                let mut buf = BytesMut::new();
                for &f in families {
                    if let Err(error) =
                        Message::Update(Box::new(Update::end_of_rib(f))).encode(&ctx, &mut buf)
                    {
                        fx.signals.push(Signal::EncodeFailed {
                            peers: vec![PeerId(i as u32)],
                            error,
                        });
                    }
                }
                fx.outbound.push(Outbound {
                    peers: vec![PeerId(i as u32)],
                    messages: buf.freeze(),
                });
            }
            // What changed before the dump and is gone since is still owed to a peer that was
            // behind.
            p.feed = if p.backlog_is_empty() && writable {
                Feed::Synced
            } else {
                Feed::Behind { writable }
            };
        }
    }

    // ---- introspection ----

    /// Prefix counters of a peer.
    pub fn peer_counts(&self, id: PeerId) -> Option<PeerCounts> {
        let p = self.peer(id).ok()?;
        let advertised = p
            .group
            .and_then(|g| self.groups.get(g))
            .and_then(Option::as_ref)
            .filter(|_| p.session.is_some())
            .map_or(0, |g| {
                (0..2).map(|f| g.exported[f].saturating_sub(p.own[f])).sum()
            });
        Some(PeerCounts {
            received: p.received,
            accepted: p.accepted,
            advertised,
            attributes_discarded: p.attributes_discarded,
            ignored: p.ignored,
        })
    }

    fn view(&self, prefix: Prefix, r: Route) -> RouteView {
        let owner = self.sources.owner(r.src());
        let add_path = match owner {
            Owner::Peer(p) => self
                .peers
                .get(p.0 as usize)
                .and_then(Option::as_ref)
                .and_then(|p| p.session.as_ref())
                .is_some_and(|s| s.add_path_rx.contains(&prefix.unicast())),
            Owner::Local => false,
        };
        RouteView {
            prefix,
            source: match owner {
                Owner::Local => RouteSource::Local,
                Owner::Peer(p) => RouteSource::Peer(p),
            },
            path_id: add_path.then(|| self.sources.remote_path_id(r.src())),
            attrs: Arc::clone(self.attrs.get(r.attrs())),
            best: r.is(flag::BEST),
            multipath: r.is(flag::MULTIPATH),
            stale: r.is(flag::STALE),
            accepted: !r.is(flag::REJECTED),
        }
    }

    /// Calls `f` with every candidate route, in no particular order, without building a list:
    /// for large tables (a reflector's million routes) that a caller streams out.
    pub fn for_each_route(&self, mut f: impl FnMut(RouteView)) {
        for (k, routes) in self.tables.v4.iter() {
            routes.iter().for_each(|r| f(self.view(k.prefix(), *r)));
        }
        for (k, routes) in self.tables.v6.iter() {
            routes.iter().for_each(|r| f(self.view(k.prefix(), *r)));
        }
    }

    /// Every candidate route, sorted by prefix, best first (the RIB view of `routectl routes`;
    /// see [`Rib::for_each_route`] for large tables).
    pub fn routes(&self) -> Vec<RouteView> {
        let mut v: Vec<RouteView> = Vec::new();
        self.for_each_route(|r| v.push(r));
        v.sort_by(|a, b| a.prefix.cmp(&b.prefix).then(b.best.cmp(&a.best)));
        v
    }

    /// The candidate routes of `prefix`, best first.
    pub fn routes_for(&self, prefix: Prefix) -> Vec<RouteView> {
        let routes = match prefix {
            Prefix::V4(_) => V4::of(prefix).map(|k| self.tables.v4.get(k)),
            Prefix::V6(_) => V6::of(prefix).map(|k| self.tables.v6.get(k)),
        };
        let mut v: Vec<RouteView> = routes
            .unwrap_or(&[])
            .iter()
            .map(|r| self.view(prefix, *r))
            .collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.best));
        v
    }

    /// Number of prefixes in the table.
    pub fn prefix_count(&self) -> usize {
        self.tables.v4.len() + self.tables.v6.len()
    }

    /// Number of distinct attribute sets alive.
    pub fn attr_sets(&self) -> usize {
        self.attrs.len()
    }
}

/// What the decision and the edge rules read, borrowed apart from the tables they change.
struct Facts<'a> {
    settings: &'a RibSettings,
    attrs: &'a AttrStore,
    sources: &'a Sources,
    peers: &'a [Option<PeerState>],
    igp: &'a HashMap<IpAddr, Option<u32>>,
}

impl Facts<'_> {
    fn peer(&self, id: PeerId) -> Option<&PeerState> {
        self.peers.get(id.0 as usize).and_then(Option::as_ref)
    }

    fn source_kind(&self, owner: Owner) -> SourceKind {
        match owner {
            Owner::Local => SourceKind::Local,
            Owner::Peer(p) => match self.peer(p) {
                Some(p) if p.ibgp(self.settings.local_as) => SourceKind::Ibgp,
                _ => SourceKind::Ebgp,
            },
        }
    }

    fn source_info(&self, owner: Owner) -> SourceInfo {
        let peer = match owner {
            Owner::Peer(p) => self.peer(p),
            Owner::Local => None,
        };
        SourceInfo {
            kind: self.source_kind(owner),
            rr_client: peer.is_some_and(|p| p.config.rr_client),
            router_id: peer.map_or(self.settings.router_id, |p| p.router_id),
        }
    }

    /// IGP cost to the next hop of `attrs`; `None` when unreachable.
    fn igp_cost(&self, attrs: &PathAttrs) -> Option<u32> {
        if self.igp.is_empty() {
            return Some(0);
        }
        match next_hop_ip(attrs) {
            Some(ip) => self.igp.get(&ip).copied().unwrap_or(Some(0)),
            None => Some(0),
        }
    }

    /// Whether `r` may be selected: accepted, and its next hop reachable.
    fn eligible(&self, r: Route) -> bool {
        !r.is(flag::REJECTED)
            && (self.sources.owner(r.src()) == Owner::Local
                || self.igp_cost(self.attrs.get(r.attrs())).is_some())
    }

    /// Runs the decision process on one prefix's routes, setting BEST and MULTIPATH flags.
    fn decide(&self, routes: &mut [Route]) {
        if let [only] = routes {
            // The common case, without allocating.
            let on = self.eligible(*only);
            only.set(flag::BEST, on);
            only.set(flag::MULTIPATH, on);
            return;
        }
        let s = DecisionSettings {
            local_as: self.settings.local_as,
            default_local_pref: self.settings.default_local_pref,
            always_compare_med: self.settings.always_compare_med,
        };
        let eligible: Vec<usize> = (0..routes.len())
            .filter(|&i| self.eligible(routes[i]))
            .collect();
        for r in routes.iter_mut() {
            r.set(flag::BEST, false);
            r.set(flag::MULTIPATH, false);
        }
        let chosen: Vec<usize> = if eligible.len() <= 1 {
            eligible
        } else {
            let cands: Vec<Candidate> = eligible
                .iter()
                .map(|&i| {
                    let r = routes[i];
                    let owner = self.sources.owner(r.src());
                    let attrs = self.attrs.get(r.attrs());
                    let info = self.source_info(owner);
                    let address = match owner {
                        Owner::Peer(p) => self.peer(p).map(|p| p.config.address),
                        Owner::Local => None,
                    };
                    Candidate {
                        attrs,
                        kind: info.kind,
                        router_id: info.router_id,
                        peer_address: address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                        igp_cost: if owner == Owner::Local {
                            0
                        } else {
                            self.igp_cost(attrs).unwrap_or(u32::MAX)
                        },
                        path_id: self.sources.remote_path_id(r.src()),
                    }
                })
                .collect();
            decision::multipath(&cands, &s, self.settings.max_paths.max(1))
                .into_iter()
                .map(|c| eligible[c])
                .collect()
        };
        for (n, &i) in chosen.iter().enumerate() {
            routes[i].set(flag::BEST, n == 0);
            routes[i].set(flag::MULTIPATH, true);
        }
    }
}

/// The next hop of `attrs` as an address.
fn next_hop_ip(attrs: &PathAttrs) -> Option<IpAddr> {
    match attrs.next_hop? {
        NextHop::V4(a) => Some(IpAddr::V4(a)),
        NextHop::V6 { global, link_local } => Some(IpAddr::V6(if global.is_unspecified() {
            link_local.unwrap_or(global)
        } else {
            global
        })),
    }
}
