//! A small lab around a `Rib`: peers with the sessions they negotiated, and what each peer has
//! received so far, decoded from the bytes the RIB produced (as the peer itself would).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use bgpd_rib::{Effects, FibChange, PeerConfig, PeerId, Rib, RibSettings, Session, Signal};
use bgpd_wire::{
    AfiSafi, AsPath, Asn, Header, Message, NextHop, Nlri, Origin, PathAttrs, Prefix,
    SessionContext, Update,
};

pub const LOCAL_AS: Asn = Asn(65000);

pub fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Attributes of a route learned with `path` and next hop `nh`.
pub fn route(path: &[u32], nh: &str) -> PathAttrs {
    PathAttrs {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence(path.iter().map(|a| Asn(*a)))),
        next_hop: Some(NextHop::V4(ip(nh))),
        ..PathAttrs::default()
    }
}

/// What one peer holds: (path id, prefix) -> attributes, plus End-of-RIB markers seen.
#[derive(Default, Debug)]
pub struct Received {
    pub routes: BTreeMap<(Option<u32>, Prefix), PathAttrs>,
    pub end_of_rib: Vec<AfiSafi>,
    pub messages: usize,
    pub withdrawals: usize,
}

pub struct Lab {
    pub rib: Rib,
    pub ctx: HashMap<PeerId, SessionContext>,
    pub seen: HashMap<PeerId, Received>,
    pub fib: Vec<FibChange>,
    pub signals: Vec<Signal>,
    /// Outbound entries of the last drain (for checks on grouping).
    pub last: Effects,
}

impl Lab {
    pub fn new(settings: RibSettings) -> Self {
        Lab {
            rib: Rib::new(settings),
            ctx: HashMap::new(),
            seen: HashMap::new(),
            fib: Vec::new(),
            signals: Vec::new(),
            last: Effects::default(),
        }
    }

    pub fn host(router_id: &str) -> Self {
        Lab::new(RibSettings::new(LOCAL_AS, ip(router_id)))
    }

    pub fn reflector(router_id: &str, cluster: &str) -> Self {
        let mut s = RibSettings::new(LOCAL_AS, ip(router_id));
        s.cluster_id = Some(ip(cluster));
        Lab::new(s)
    }

    /// Adds and establishes a peer at `addr` in `asn` with router id `addr`.
    pub fn peer(
        &mut self,
        addr: &str,
        asn: u32,
        tweak: impl FnOnce(&mut PeerConfig, &mut Session),
    ) -> PeerId {
        let mut config = PeerConfig::new(IpAddr::V4(ip(addr)), Asn(asn));
        let mut session = Session::ipv4(ip(addr), ip("192.0.2.254"));
        tweak(&mut config, &mut session);
        let id = self.rib.add_peer(config).unwrap();
        self.up(id, session);
        id
    }

    pub fn up(&mut self, id: PeerId, session: Session) {
        self.ctx.insert(
            id,
            SessionContext {
                four_octet_as: session.four_octet_as,
                add_path_families: session.add_path_tx.clone(),
                max_message_size: if session.extended_message {
                    65535
                } else {
                    4096
                },
            },
        );
        self.rib.peer_up(id, session).unwrap();
    }

    pub fn announce(&mut self, from: PeerId, attrs: &PathAttrs, prefixes: &[&str]) {
        let nlri: Vec<Nlri> = prefixes.iter().map(|s| Nlri::new(p(s))).collect();
        self.rib
            .announce(from, AfiSafi::IPV4_UNICAST, attrs, &nlri)
            .unwrap();
    }

    pub fn withdraw(&mut self, from: PeerId, prefixes: &[&str]) {
        let nlri: Vec<Nlri> = prefixes.iter().map(|s| Nlri::new(p(s))).collect();
        self.rib
            .withdraw(from, AfiSafi::IPV4_UNICAST, &nlri)
            .unwrap();
    }

    /// Drains the RIB and delivers every message to its peers' views.
    pub fn drain(&mut self) {
        let fx = self.rib.drain();
        for out in &fx.outbound {
            for peer in &out.peers {
                let ctx = self.ctx.get(peer).cloned().unwrap_or_default();
                let view = self.seen.entry(*peer).or_default();
                let mut buf: &[u8] = &out.messages;
                while !buf.is_empty() {
                    let h = Header::peek(buf, ctx.max_message_size).unwrap().unwrap();
                    let (frame, rest) = buf.split_at(h.len);
                    buf = rest;
                    let Message::Update(u) = Message::decode(frame, &ctx).unwrap() else {
                        panic!("not an UPDATE")
                    };
                    apply(view, &u);
                }
            }
        }
        self.fib.extend(fx.fib.iter().cloned());
        self.signals.extend(fx.signals.iter().cloned());
        self.last = fx;
    }

    pub fn seen(&self, peer: PeerId) -> &BTreeMap<(Option<u32>, Prefix), PathAttrs> {
        static EMPTY: BTreeMap<(Option<u32>, Prefix), PathAttrs> = BTreeMap::new();
        self.seen.get(&peer).map_or(&EMPTY, |r| &r.routes)
    }

    /// The attributes `peer` holds for `prefix` (no path id).
    pub fn got(&self, peer: PeerId, prefix: &str) -> Option<&PathAttrs> {
        self.seen(peer).get(&(None, p(prefix)))
    }
}

fn apply(view: &mut Received, u: &Update) {
    view.messages += 1;
    if let Some(f) = u.end_of_rib_family() {
        view.end_of_rib.push(f);
        return;
    }
    for n in &u.withdrawn {
        view.withdrawals += 1;
        view.routes.remove(&(n.path_id, n.prefix));
    }
    if let Some(mp) = &u.mp_unreach {
        for n in &mp.withdrawn {
            view.withdrawals += 1;
            view.routes.remove(&(n.path_id, n.prefix));
        }
    }
    for n in &u.nlri {
        view.routes.insert((n.path_id, n.prefix), u.attrs.clone());
    }
    if let Some(mp) = &u.mp_reach {
        for n in &mp.nlri {
            view.routes.insert(
                (n.path_id, n.prefix),
                PathAttrs {
                    next_hop: Some(mp.next_hop),
                    ..u.attrs.clone()
                },
            );
        }
    }
}
