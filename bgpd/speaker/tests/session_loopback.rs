//! Our speaker in-process against a scripted peer on loopback (127.0.0.1 ↔ 127.0.0.2): the
//! behaviour real daemons never show on demand — malformed messages, messages in the wrong
//! state, and connection collisions.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgpd_speaker::{PeerSettings, Speaker, SpeakerConfig};
use bgpd_wire::{
    AfiSafi, AsPath, Asn, Capability, Header, Message, NextHop, Nlri, Open, Origin, PathAttrs,
    Prefix, SessionContext, Update,
};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const OUR_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const OURS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const THEM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const WAIT: Duration = Duration::from_secs(10);

/// A BGP peer played message by message.
struct Scripted {
    stream: TcpStream,
    buf: BytesMut,
}

impl Scripted {
    async fn connect(port: u16) -> Scripted {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(IpAddr::V4(THEM), 0)).unwrap();
        let stream = socket
            .connect(SocketAddr::new(IpAddr::V4(OURS), port))
            .await
            .unwrap();
        Scripted {
            stream,
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, msg: &Message) {
        let mut out = BytesMut::new();
        msg.encode(
            &SessionContext {
                four_octet_as: true,
                ..SessionContext::default()
            },
            &mut out,
        )
        .unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next message, or `None` when the connection closes.
    async fn recv(&mut self) -> Option<Message> {
        let ctx = SessionContext {
            four_octet_as: true,
            ..SessionContext::default()
        };
        loop {
            if let Some(h) = Header::peek(&self.buf, 4096).unwrap()
                && self.buf.len() >= h.len
            {
                let frame = self.buf.split_to(h.len);
                return Some(Message::decode(&frame, &ctx).unwrap());
            }
            let n = tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buf))
                .await
                .expect("peer silent")
                .ok()?;
            if n == 0 {
                return None;
            }
        }
    }

    /// The next message that is not a KEEPALIVE or an UPDATE (End-of-RIB, routes).
    async fn recv_control(&mut self) -> Option<Message> {
        loop {
            match self.recv().await? {
                Message::Keepalive | Message::Update(_) => {}
                other => return Some(other),
            }
        }
    }

    fn open(id: Ipv4Addr) -> Message {
        Message::Open(Open::new(
            Asn(65002),
            30,
            id,
            vec![
                Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
                Capability::RouteRefresh,
            ],
        ))
    }

    async fn establish(&mut self) {
        self.establish_with(Scripted::open(Ipv4Addr::new(10, 0, 0, 2)))
            .await;
    }

    async fn establish_with(&mut self, open: Message) {
        self.send(&open).await;
        assert!(matches!(self.recv().await, Some(Message::Open(_))));
        assert!(matches!(self.recv().await, Some(Message::Keepalive)));
        self.send(&Message::Keepalive).await;
    }
}

fn speaker_config(port: u16, peer_port: u16, passive: bool) -> SpeakerConfig {
    let mut peer = PeerSettings::new(IpAddr::V4(THEM), Asn(65002));
    peer.passive = passive;
    peer.port = peer_port;
    peer.local_address = Some(IpAddr::V4(OURS));
    peer.connect_retry = 1;
    peer.hold_time = 30;
    SpeakerConfig {
        listen: vec![SocketAddr::new(IpAddr::V4(OURS), port)],
        peers: vec![peer],
        ..SpeakerConfig::new(Asn(65001), OUR_ID)
    }
}

fn update(prefix: &str) -> Message {
    let prefix: Prefix = prefix.parse().unwrap();
    Message::Update(Box::new(Update {
        withdrawn: vec![],
        attrs: PathAttrs {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([Asn(65002)])),
            next_hop: Some(NextHop::V4(THEM)),
            ..PathAttrs::default()
        },
        mp_reach: None,
        mp_unreach: None,
        nlri: vec![Nlri::new(prefix)],
        errors: vec![],
    }))
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn has_route(speaker: &Speaker, prefix: &str) -> bool {
    speaker
        .routes()
        .await
        .unwrap()
        .iter()
        .any(|r| r.prefix == prefix && r.from.is_some())
}

async fn peer_field(
    speaker: &Speaker,
    f: impl Fn(&bgpd_speaker::PeerStatus) -> Option<String>,
) -> Option<String> {
    speaker.peers().await.unwrap().first().and_then(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn treat_as_withdraw_keeps_the_session_and_a_bad_header_resets_it() {
    let port = testkit::free_port();
    let speaker = Speaker::start(speaker_config(port, 179, true)).unwrap();
    let mut peer = Scripted::connect(port).await;
    peer.establish().await;

    peer.send(&update("10.91.0.0/24")).await;
    wait_for("the route", async || {
        has_route(&speaker, "10.91.0.0/24").await
    })
    .await;

    // ORIGIN 5 is undefined: RFC 7606 §7.1 says treat-as-withdraw, not a reset.
    let mut bytes = BytesMut::new();
    update("10.91.0.0/24")
        .encode(
            &SessionContext {
                four_octet_as: true,
                ..Default::default()
            },
            &mut bytes,
        )
        .unwrap();
    let origin_at = bytes
        .windows(4)
        .position(|w| w == [0x40, 0x01, 0x01, 0x00])
        .expect("ORIGIN attribute")
        + 3;
    bytes[origin_at] = 5;
    peer.stream.write_all(&bytes).await.unwrap();
    wait_for("the withdrawal", async || {
        !has_route(&speaker, "10.91.0.0/24").await
    })
    .await;
    assert_eq!(speaker.peers().await.unwrap()[0].state, "Established");

    // A broken marker is a Message Header Error 1/1: NOTIFICATION, then the connection closes.
    let mut bad = vec![0u8; 19];
    bad[17] = 19;
    bad[18] = 4;
    peer.stream.write_all(&bad).await.unwrap();
    match peer.recv_control().await {
        Some(Message::Notification(n)) => assert_eq!(n.code.octets(), (1, 1)),
        other => panic!("expected a NOTIFICATION, got {other:?}"),
    }
    assert!(peer.recv_control().await.is_none(), "connection left open");
    wait_for("the reported notification", async || {
        peer_field(&speaker, |p| p.last_notification_sent.clone())
            .await
            .is_some_and(|n| n.starts_with("NOTIFICATION 1/1"))
    })
    .await;
    speaker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keepalive_in_open_sent_is_an_fsm_error() {
    let port = testkit::free_port();
    let speaker = Speaker::start(speaker_config(port, 179, true)).unwrap();
    let mut peer = Scripted::connect(port).await;
    assert!(matches!(peer.recv().await, Some(Message::Open(_))));
    peer.send(&Message::Keepalive).await;
    match peer.recv().await {
        // RFC 6608: 5/1 "unexpected message in OpenSent", data = the message type.
        Some(Message::Notification(n)) => assert_eq!((n.code.octets(), n.data), ((5, 1), vec![4])),
        other => panic!("expected a NOTIFICATION, got {other:?}"),
    }
    speaker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collision_keeps_the_connection_of_the_higher_identifier() {
    // We connect to the peer (it listens on 127.0.0.2) while it connects to us. Its
    // identifier is higher, so both keep its connection and ours is closed with Cease/7.
    let port = testkit::free_port();
    let listener = TcpListener::bind(SocketAddr::new(IpAddr::V4(THEM), 0))
        .await
        .unwrap();
    let peer_port = listener.local_addr().unwrap().port();
    let speaker = Speaker::start(speaker_config(port, peer_port, false)).unwrap();
    let (stream, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut ours_out = Scripted {
        stream,
        buf: BytesMut::new(),
    };
    assert!(matches!(ours_out.recv().await, Some(Message::Open(_))));
    let higher = Ipv4Addr::new(10, 0, 0, 9);
    ours_out.send(&Scripted::open(higher)).await;
    assert!(matches!(ours_out.recv().await, Some(Message::Keepalive)));

    let mut theirs = Scripted::connect(port).await;
    theirs.send(&Scripted::open(higher)).await;
    assert!(matches!(theirs.recv().await, Some(Message::Open(_))));
    match ours_out.recv_control().await {
        Some(Message::Notification(n)) => assert_eq!(n.code.octets(), (6, 7)),
        other => panic!("expected Cease/7 on our connection, got {other:?}"),
    }
    assert!(matches!(theirs.recv().await, Some(Message::Keepalive)));
    theirs.send(&Message::Keepalive).await;
    wait_for("Established on the surviving connection", async || {
        speaker.peers().await.unwrap()[0].state == "Established"
    })
    .await;
    theirs.send(&update("10.92.0.0/24")).await;
    wait_for("a route over it", async || {
        has_route(&speaker, "10.92.0.0/24").await
    })
    .await;
    speaker.shutdown().await;
}

/// The next UPDATE that announces something (skipping KEEPALIVEs and End-of-RIB markers).
async fn next_announcement(peer: &mut Scripted) -> Vec<Nlri> {
    loop {
        match peer.recv().await {
            Some(Message::Update(u)) if !u.nlri.is_empty() => return u.nlri.clone(),
            Some(Message::Update(_) | Message::Keepalive) => {}
            other => panic!("expected an UPDATE, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enhanced_route_refresh_resends_what_we_advertise_between_borr_and_eorr() {
    let port = testkit::free_port();
    let mut config = speaker_config(port, 179, true);
    config.originate = vec!["10.93.0.0/24".parse().unwrap()];
    let speaker = Speaker::start(config).unwrap();
    let mut peer = Scripted::connect(port).await;
    peer.establish_with(Message::Open(Open::new(
        Asn(65002),
        30,
        Ipv4Addr::new(10, 0, 0, 2),
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
        ],
    )))
    .await;
    let want = vec![Nlri::new("10.93.0.0/24".parse::<Prefix>().unwrap())];
    assert_eq!(next_announcement(&mut peer).await, want);
    let refresh = |subtype| {
        Message::RouteRefresh(bgpd_wire::RouteRefresh {
            afi_safi: AfiSafi::IPV4_UNICAST,
            subtype,
        })
    };
    peer.send(&refresh(bgpd_wire::RefreshSubtype::Normal)).await;
    assert_eq!(
        peer.recv_control().await,
        Some(refresh(bgpd_wire::RefreshSubtype::BeginningOfRefresh))
    );
    assert_eq!(next_announcement(&mut peer).await, want);
    assert_eq!(
        peer.recv_control().await,
        Some(refresh(bgpd_wire::RefreshSubtype::EndOfRefresh))
    );
    speaker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_prefix_ends_the_session_with_cease_1() {
    let port = testkit::free_port();
    let mut config = speaker_config(port, 179, true);
    config.peers[0].max_prefix = Some(1);
    let speaker = Speaker::start(config).unwrap();
    let mut peer = Scripted::connect(port).await;
    peer.establish().await;
    peer.send(&update("10.94.0.0/24")).await;
    peer.send(&update("10.95.0.0/24")).await;
    match peer.recv_control().await {
        Some(Message::Notification(n)) => assert_eq!(n.code.octets(), (6, 1)),
        other => panic!("expected Cease/1, got {other:?}"),
    }
    wait_for("the routes withdrawn", async || {
        !has_route(&speaker, "10.94.0.0/24").await
    })
    .await;
    speaker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_path_changes_reach_fib_subscribers() {
    let port = testkit::free_port();
    let speaker = Speaker::start(speaker_config(port, 179, true)).unwrap();
    let mut fib = speaker.subscribe_fib().unwrap();
    let mut peer = Scripted::connect(port).await;
    peer.establish().await;
    let prefix: Prefix = "10.96.0.0/24".parse().unwrap();
    let mut next_change = async || loop {
        let batch = tokio::time::timeout(WAIT, fib.recv())
            .await
            .expect("no FIB change")
            .expect("channel closed");
        if let Some(c) = batch.into_iter().find(|c| c.prefix == prefix) {
            return c.next_hops;
        }
    };
    peer.send(&update("10.96.0.0/24")).await;
    assert_eq!(next_change().await, vec![IpAddr::V4(THEM)]);
    peer.send(&Message::Update(Box::new(Update {
        withdrawn: vec![Nlri::new(prefix)],
        attrs: PathAttrs::default(),
        mp_reach: None,
        mp_unreach: None,
        nlri: vec![],
        errors: vec![],
    })))
    .await;
    assert_eq!(next_change().await, Vec::<IpAddr>::new());
    speaker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_session_changes_reset_a_peer() {
    let port = testkit::free_port();
    let config = speaker_config(port, 179, true);
    let settings = config.peers[0].clone();
    let speaker = Speaker::start(config).unwrap();
    let mut peer = Scripted::connect(port).await;
    peer.establish().await;
    wait_for("Established", async || {
        speaker.peers().await.unwrap()[0].state == "Established"
    })
    .await;
    // An export policy change is applied without touching the session.
    let quiet = PeerSettings {
        export: bgpd_rib::Policy::reject_all(),
        ..settings.clone()
    };
    speaker.reconfigure_peer(quiet.clone()).await.unwrap();
    // A hold time change needs a new OPEN: Cease/6 (Other Configuration Change).
    speaker
        .reconfigure_peer(PeerSettings {
            hold_time: 60,
            ..quiet
        })
        .await
        .unwrap();
    match peer.recv_control().await {
        Some(Message::Notification(n)) => assert_eq!(n.code.octets(), (6, 6)),
        other => panic!("expected Cease/6, got {other:?}"),
    }
    assert_eq!(speaker.peers().await.unwrap()[0].established_count, 1);
    speaker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_peer_sends_cease_peer_deconfigured() {
    let port = testkit::free_port();
    let speaker = Speaker::start(speaker_config(port, 179, true)).unwrap();
    let mut peer = Scripted::connect(port).await;
    peer.establish().await;
    wait_for("Established", async || {
        speaker.peers().await.unwrap()[0].state == "Established"
    })
    .await;
    speaker.remove_peer(IpAddr::V4(THEM)).await.unwrap();
    match peer.recv_control().await {
        Some(Message::Notification(n)) => assert_eq!(n.code.octets(), (6, 3)),
        other => panic!("expected Cease/3, got {other:?}"),
    }
    assert!(speaker.peers().await.unwrap().is_empty());
    speaker.shutdown().await;
}

/// Random bytes after a valid session start, from many peers: the speaker answers with
/// NOTIFICATIONs or waits for more bytes, and never stops serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_peers_never_stops_the_speaker() {
    use rand::{Rng, SeedableRng};
    let port = testkit::free_port();
    let mut config = speaker_config(port, 179, true);
    let peers: Vec<Ipv4Addr> = (3..=62).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
    let template = config.peers[0].clone();
    config.peers.extend(peers.iter().map(|a| PeerSettings {
        address: IpAddr::V4(*a),
        ..template.clone()
    }));
    let speaker = Speaker::start(config).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for (i, addr) in peers.iter().enumerate() {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(IpAddr::V4(*addr), 0)).unwrap();
        let stream = socket
            .connect(SocketAddr::new(IpAddr::V4(OURS), port))
            .await
            .unwrap();
        let mut peer = Scripted {
            stream,
            buf: BytesMut::new(),
        };
        peer.establish().await;
        let len: u16 = rng.random_range(19..200);
        let mut blob: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        // Most blobs get a valid marker and length so the body decoders are what is tested.
        if i % 4 != 0 {
            blob[..16].fill(0xff);
            blob[16..18].copy_from_slice(&len.to_be_bytes());
            blob[18] = [2, 2, 2, 3, 5, 1][i % 6];
        }
        peer.stream.write_all(&blob).await.unwrap();
        let _ = peer.stream.shutdown().await;
    }
    // Still serving: status answers and a well-behaved peer still gets a session.
    let status = speaker.peers().await.unwrap();
    assert_eq!(
        status.len(),
        peers.len() + 1,
        "{:?}",
        status.iter().map(|p| p.address).collect::<Vec<_>>()
    );
    let sent = speaker
        .peers()
        .await
        .unwrap()
        .iter()
        .filter(|p| p.last_notification_sent.is_some())
        .count();
    assert!(sent > 0, "no garbage was refused with a NOTIFICATION");
    let mut good = Scripted::connect(port).await;
    good.establish().await;
    speaker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_ranges_admit_any_address_inside_for_one_session() {
    let port = testkit::free_port();
    let mut config = speaker_config(port, 179, true);
    config.peer_ranges = vec![bgpd_speaker::config::PeerRange {
        prefix: "127.0.1.0/24".parse().unwrap(),
        remote_as: Asn(65002),
        hold_time: 30,
        rr_client: false,
        next_hop_self: false,
        families: vec![bgpd_speaker::Family::Ipv4],
        ttl_security: None,
        send_hold_time: None,
        import: bgpd_rib::Policy::accept_all(),
        export: bgpd_rib::Policy::accept_all(),
    }];
    let speaker = Speaker::start(config).unwrap();
    let dynamic = Ipv4Addr::new(127, 0, 1, 5);
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(IpAddr::V4(dynamic), 0))
        .unwrap();
    let stream = socket
        .connect(SocketAddr::new(IpAddr::V4(OURS), port))
        .await
        .unwrap();
    let mut peer = Scripted {
        stream,
        buf: BytesMut::new(),
    };
    peer.establish().await;
    let mut route = update("10.97.0.0/24");
    if let Message::Update(u) = &mut route {
        u.attrs.next_hop = Some(NextHop::V4(dynamic));
    }
    peer.send(&route).await;
    wait_for("the route", async || {
        has_route(&speaker, "10.97.0.0/24").await
    })
    .await;
    assert!(
        speaker
            .peers()
            .await
            .unwrap()
            .iter()
            .any(|p| p.address == IpAddr::V4(dynamic))
    );

    // Outside every range: refused.
    let outsider = TcpSocket::new_v4().unwrap();
    outsider
        .bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 2, 5)), 0))
        .unwrap();
    let stream = outsider
        .connect(SocketAddr::new(IpAddr::V4(OURS), port))
        .await
        .unwrap();
    let mut refused = Scripted {
        stream,
        buf: BytesMut::new(),
    };
    assert!(
        refused.recv().await.is_none(),
        "an address outside the ranges got an OPEN"
    );

    // The session ends: the peer and its routes go.
    drop(peer);
    wait_for("the dynamic peer forgotten", async || {
        !has_route(&speaker, "10.97.0.0/24").await
            && !speaker
                .peers()
                .await
                .unwrap()
                .iter()
                .any(|p| p.address == IpAddr::V4(dynamic))
    })
    .await;
    speaker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collision_with_a_lower_identifier_keeps_our_connection() {
    let port = testkit::free_port();
    let listener = TcpListener::bind(SocketAddr::new(IpAddr::V4(THEM), 0))
        .await
        .unwrap();
    let peer_port = listener.local_addr().unwrap().port();
    let speaker = Speaker::start(speaker_config(port, peer_port, false)).unwrap();
    let (stream, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut ours_out = Scripted {
        stream,
        buf: BytesMut::new(),
    };
    assert!(matches!(ours_out.recv().await, Some(Message::Open(_))));
    let lower = Ipv4Addr::new(9, 9, 9, 9);
    ours_out.send(&Scripted::open(lower)).await;
    assert!(matches!(ours_out.recv().await, Some(Message::Keepalive)));

    let mut theirs = Scripted::connect(port).await;
    theirs.send(&Scripted::open(lower)).await;
    match theirs.recv_control().await {
        Some(Message::Open(_)) => match theirs.recv_control().await {
            Some(Message::Notification(n)) => assert_eq!(n.code.octets(), (6, 7)),
            other => panic!("expected Cease/7 on their connection, got {other:?}"),
        },
        other => panic!("expected our OPEN, got {other:?}"),
    }
    ours_out.send(&Message::Keepalive).await;
    wait_for("Established on our connection", async || {
        speaker.peers().await.unwrap()[0].state == "Established"
    })
    .await;
    speaker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_colliding_connection_that_outlives_the_first_takes_over() {
    let port = testkit::free_port();
    let listener = TcpListener::bind(SocketAddr::new(IpAddr::V4(THEM), 0))
        .await
        .unwrap();
    let peer_port = listener.local_addr().unwrap().port();
    let mut config = speaker_config(port, peer_port, false);
    config.originate = vec!["10.98.0.0/24".parse().unwrap()];
    let speaker = Speaker::start(config).unwrap();
    let (stream, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut ours_out = Scripted {
        stream,
        buf: BytesMut::new(),
    };
    assert!(matches!(ours_out.recv().await, Some(Message::Open(_))));
    // Our connection waits in OpenSent; the peer's arrives beside it.
    let mut theirs = Scripted::connect(port).await;
    assert!(matches!(theirs.recv().await, Some(Message::Open(_))));
    drop(ours_out);
    theirs
        .send(&Scripted::open(Ipv4Addr::new(10, 0, 0, 2)))
        .await;
    assert!(matches!(theirs.recv().await, Some(Message::Keepalive)));
    theirs.send(&Message::Keepalive).await;
    let want = vec![Nlri::new("10.98.0.0/24".parse::<Prefix>().unwrap())];
    assert_eq!(next_announcement(&mut theirs).await, want);
    assert_eq!(speaker.peers().await.unwrap()[0].state, "Established");
    speaker.shutdown().await;
}

/// RFC 4760 §6: an IPv6 route on a session that negotiated IPv4 unicast only is ignored and
/// counted; the session stays up and its IPv4 routes are taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_of_a_family_not_negotiated_is_ignored() {
    use bgpd_wire::MpReach;
    let port = testkit::free_port();
    let speaker = Speaker::start(speaker_config(port, 179, true)).unwrap();
    let mut peer = Scripted::connect(port).await;
    peer.establish().await; // Multiprotocol IPv4 unicast only
    peer.send(&Message::Update(Box::new(Update {
        attrs: PathAttrs {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([Asn(65002)])),
            ..PathAttrs::default()
        },
        mp_reach: Some(MpReach {
            afi_safi: AfiSafi::IPV6_UNICAST,
            next_hop: NextHop::V6 {
                global: "2001:db8::2".parse().unwrap(),
                link_local: None,
            },
            nlri: vec![Nlri::new("2001:db8:97::/48".parse::<Prefix>().unwrap())],
        }),
        ..Update::default()
    })))
    .await;
    peer.send(&update("10.98.0.0/24")).await;
    wait_for("the IPv4 route", async || {
        has_route(&speaker, "10.98.0.0/24").await
    })
    .await;
    assert!(!has_route(&speaker, "2001:db8:97::/48").await);
    let status = speaker.peers().await.unwrap().remove(0);
    assert_eq!(
        (
            status.state.as_str(),
            status.prefixes_received,
            status.prefixes_ignored
        ),
        ("Established", 1, 1)
    );
    speaker.shutdown().await;
}

/// After a max-prefix Cease (with RFC 4486 §4's AFI, SAFI and upper bound) the peer is let back
/// after the restart interval, as FRR's `maximum-prefix N restart M` and BIRD's `receive limit
/// N action restart` do; before it the session stays Idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_over_its_max_prefix_comes_back_after_the_restart_interval() {
    let port = testkit::free_port();
    let mut config = speaker_config(port, 179, true);
    config.peers[0].max_prefix = Some(1);
    config.peers[0].max_prefix_restart = 2;
    let speaker = Speaker::start(config).unwrap();
    let mut peer = Scripted::connect(port).await;
    peer.establish().await;
    peer.send(&update("10.94.0.0/24")).await;
    peer.send(&update("10.95.0.0/24")).await;
    match peer.recv_control().await {
        Some(Message::Notification(n)) => {
            assert_eq!(n.code.octets(), (6, 1));
            assert_eq!(n.data, vec![0, 1, 1, 0, 0, 0, 1], "IPv4 unicast, limit 1");
        }
        other => panic!("expected Cease/1, got {other:?}"),
    }
    let ceased = std::time::Instant::now();
    drop(peer);
    // Connections are refused while the session is Idle; the peer keeps trying, as a real one
    // would with its connect-retry timer.
    let deadline = ceased + Duration::from_secs(60);
    let mut again = loop {
        let mut again = Scripted::connect(port).await;
        again
            .send(&Scripted::open(Ipv4Addr::new(10, 0, 0, 2)))
            .await;
        if let Some(Message::Open(_)) = again.recv().await {
            break again;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still locked out a minute after the Cease"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        ceased.elapsed() >= Duration::from_secs(1),
        "back before the restart interval: {:?}",
        ceased.elapsed()
    );
    assert!(matches!(again.recv().await, Some(Message::Keepalive)));
    again.send(&Message::Keepalive).await;
    wait_for("Established again", async || {
        peer_field(&speaker, |p| Some(p.state.clone()))
            .await
            .as_deref()
            == Some("Established")
    })
    .await;
    speaker.shutdown().await;
}
