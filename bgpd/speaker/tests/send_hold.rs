//! RFC 9687 send hold timer against real TCP peers on loopback: a peer that completes OPEN and
//! KEEPALIVE, then stops reading (its receive window closes) while it keeps sending KEEPALIVEs
//! must lose its session with NOTIFICATION 8 and its TCP connection within the send hold time
//! set here (3 s) and some slack; a peer given the same setting that reads keeps its session.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgpd_speaker::{PeerSettings, PeerStatus, Speaker, SpeakerConfig};
use bgpd_wire::{
    AfiSafi, Asn, Capability, Community, Header, Message, Open, Origin, PathAttrs, Prefix,
    SessionContext,
};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const OUR_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const OURS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const STALLED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);
const READING: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);
const THEIR_AS: u32 = 65002;
/// Routes with an attribute set each (~290 octets an UPDATE): at least ~11 MiB to send, and
/// more than our writer queue and both socket buffers hold (see [`routes`]), so the writer
/// has octets it cannot write.
const ROUTES: u32 = 40_000;
const SEND_HOLD: u32 = 3;
/// Generous for a loaded two-core machine: the send hold time is 3 s.
const WAIT: Duration = Duration::from_secs(90);

fn ctx() -> SessionContext {
    SessionContext {
        four_octet_as: true,
        ..SessionContext::default()
    }
}

fn encode(msg: &Message) -> BytesMut {
    let mut out = BytesMut::new();
    msg.encode(&ctx(), &mut out).unwrap();
    out
}

/// The next message, or `None` when the connection closes or fails.
async fn next(stream: &mut TcpStream, buf: &mut BytesMut) -> Option<Message> {
    loop {
        if let Some(h) = Header::peek(buf, 4096).unwrap()
            && buf.len() >= h.len
        {
            let frame = buf.split_to(h.len);
            return Some(Message::decode(&frame, &ctx()).unwrap());
        }
        if stream.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}

/// Connects from `from` with a small receive buffer, exchanges OPEN and KEEPALIVE.
async fn establish(from: Ipv4Addr, port: u16) -> (TcpStream, BytesMut) {
    let socket = TcpSocket::new_v4().unwrap();
    // A small window: the speaker's octets pile up on its side, not in our buffer.
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
    let mut stream = tokio::time::timeout(
        WAIT,
        socket.connect(SocketAddr::new(IpAddr::V4(OURS), port)),
    )
    .await
    .expect("connect in time")
    .expect("speaker listening");
    let open = Message::Open(Open::new(
        Asn(THEIR_AS),
        30,
        from,
        vec![Capability::Multiprotocol(AfiSafi::IPV4_UNICAST)],
    ));
    let mut out = encode(&open);
    out.extend_from_slice(&encode(&Message::Keepalive));
    stream.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    let (mut open_seen, mut keepalive_seen) = (false, false);
    while !(open_seen && keepalive_seen) {
        match tokio::time::timeout(WAIT, next(&mut stream, &mut buf)).await {
            Ok(Some(Message::Open(_))) => open_seen = true,
            Ok(Some(Message::Keepalive)) => keepalive_seen = true,
            Ok(Some(Message::Notification(n))) => panic!("refused: {n}"),
            Ok(Some(_)) => {}
            Ok(None) => panic!("closed while opening"),
            Err(_) => panic!("no OPEN and KEEPALIVE in time"),
        }
    }
    (stream, buf)
}

/// [`ROUTES`], or more where the kernel lets a send buffer grow past 4 MiB: the table must
/// outgrow our send buffer and writer queue (2 MiB) with room to spare.
fn routes() -> u32 {
    let wmem_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse::<u64>().ok())
        .unwrap_or(4 << 20);
    let needed = (wmem_max + (6 << 20)) / 250;
    ROUTES.max(u32::try_from(needed).unwrap_or(u32::MAX))
}

fn peer(address: Ipv4Addr) -> PeerSettings {
    PeerSettings {
        passive: true,
        hold_time: 30,
        send_hold_time: Some(SEND_HOLD),
        families: vec![bgpd_speaker::Family::Ipv4],
        ..PeerSettings::new(IpAddr::V4(address), Asn(THEIR_AS))
    }
}

fn route(i: u32) -> (Prefix, PathAttrs) {
    let prefix = Prefix::new(IpAddr::V4(Ipv4Addr::from(0x6440_0000 + i)), 32).unwrap();
    let communities: Vec<Community> = (0..60)
        .map(|c| Community(0xfde8_0000 + c))
        .chain([Community(0xfde9_0000 + i)])
        .collect();
    let attrs = PathAttrs {
        origin: Some(Origin::Igp),
        communities: communities.into(),
        ..PathAttrs::default()
    };
    (prefix, attrs)
}

async fn status(speaker: &Speaker, address: Ipv4Addr) -> PeerStatus {
    speaker
        .peers()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.address == IpAddr::V4(address))
        .expect("configured peer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_loses_its_session_with_notification_8() {
    let port = testkit::free_port();
    let config = SpeakerConfig {
        listen: vec![SocketAddr::new(IpAddr::V4(OURS), port)],
        peers: vec![peer(STALLED), peer(READING)],
        fib: false,
        ..SpeakerConfig::new(Asn(65001), OUR_ID)
    };
    let speaker = Speaker::start(config).unwrap();
    let size = routes();
    for i in 0..size {
        let (prefix, attrs) = route(i);
        speaker.originate(prefix, attrs).unwrap();
    }

    // The reading peer takes the whole table while the stalled one is cut off.
    let (mut reading, mut reading_buf) = establish(READING, port).await;
    // It tells how many routes it holds once it has the table (or its session ends), and
    // stays up until the speaker shuts down.
    let (table_tx, table) = tokio::sync::oneshot::channel();
    let reader = tokio::spawn(async move {
        let mut table_tx = Some(table_tx);
        let mut routes = 0usize;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let keepalive = encode(&Message::Keepalive);
        loop {
            tokio::select! {
                msg = next(&mut reading, &mut reading_buf) => match msg {
                    Some(Message::Update(u)) => routes += u.nlri.len(),
                    Some(Message::Notification(_)) | None => break,
                    Some(_) => {}
                },
                _ = tick.tick() => {
                    if reading.write_all(&keepalive).await.is_err() {
                        break;
                    }
                }
            }
            if routes >= size as usize
                && let Some(tx) = table_tx.take()
            {
                let _ = tx.send(routes);
            }
        }
        if let Some(tx) = table_tx.take() {
            let _ = tx.send(routes);
        }
    });

    // The stalled peer: OPEN, KEEPALIVE, then only KEEPALIVEs out, nothing read.
    let (stalled, _) = establish(STALLED, port).await;
    let (_unread, mut write) = stalled.into_split();
    let keepalives = tokio::spawn(async move {
        let keepalive = encode(&Message::Keepalive);
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Err(e) = write.write_all(&keepalive).await {
                return e;
            }
        }
    });

    // Without the send hold timer this waits forever: the KEEPALIVEs keep the hold timer fed.
    let deadline = tokio::time::Instant::now() + WAIT;
    let closed = loop {
        let s = status(&speaker, STALLED).await;
        if s.last_notification_sent.is_some() {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled peer still has its session: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        closed.last_notification_sent.as_deref(),
        Some("NOTIFICATION 8/0 (SendHoldTimerExpired)")
    );
    assert_eq!(closed.sent.notification, 1, "{closed:?}");
    assert_eq!(closed.established_count, 1);
    assert_ne!(closed.state, "Established");

    // The TCP connection is torn down: the peer's next KEEPALIVEs are refused.
    let error = tokio::time::timeout(WAIT, keepalives)
        .await
        .expect("the stalled peer's connection was not torn down")
        .unwrap();
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{error}"
    );

    // The peer that reads keeps its session through the same send hold time, with the table.
    let s = status(&speaker, READING).await;
    assert_eq!(
        (s.state.as_str(), s.established_count),
        ("Established", 1),
        "{s:?}"
    );
    assert_eq!(s.last_notification_sent, None);
    let routes = tokio::time::timeout(WAIT, table)
        .await
        .expect("the reading peer got the table in time")
        .unwrap();
    speaker.shutdown().await;
    tokio::time::timeout(WAIT, reader)
        .await
        .expect("the reading peer saw the shutdown")
        .unwrap();
    assert_eq!(
        routes, size as usize,
        "the reading peer got the whole table"
    );
}
