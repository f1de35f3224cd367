//! A route-reflector client that stops reading must not grow the speaker's memory: the
//! `bgp-speaker` process reflects an injector's churn (every route changed, many times over)
//! to a monitor and to a client that completed its OPEN and then never reads. The monitor
//! converges, the speaker's peak RSS stays under a ceiling far below what queueing the churn
//! for the stalled client would take, and once the stalled client reads again it ends with
//! exactly the final table. The same holds for a client that never reads and keeps asking for
//! the table again with ROUTE-REFRESH, and for a client that joins a large table and reads it
//! slowly: its table is sent a batch at a time as it reads. Loopback only (127.0.0.1–4).

mod support;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bgpd_wire::{
    AfiSafi, Asn, Capability, Community, Header, Message, NextHop, Nlri, Open, Origin, PathAttrs,
    Prefix, RefreshSubtype, RouteRefresh, SessionContext, pack,
};
use bytes::BytesMut;
use testkit::process::ChildGuard;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const ASN: u32 = 65000;
const SPEAKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const INJECTOR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const STALLED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const MONITOR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
/// Prefixes, each with its own attribute set (one UPDATE per route, ~330 octets reflected).
const PREFIXES: u32 = 10_000;
/// Times every route is replaced: ~50 MiB of UPDATEs owed to the stalled client in all.
const ROUNDS: u32 = 16;
/// Growth of the speaker's peak RSS over the first round that the churn may cause.
const CEILING_MIB: u64 = 24;
/// ROUTE-REFRESHes the client that never reads sends: about 130 MiB of UPDATEs if each
/// re-sent the table.
const REFRESHES: u32 = 40;
const WAIT: Duration = Duration::from_secs(240);
/// Routes of the table a late client joins: ~33 MiB of UPDATEs, far above the writer's high
/// mark (2 MiB).
const LARGE: u32 = 100_000;
/// Growth of the speaker's peak RSS while a late client reads the large table slowly: the
/// writer's queue and a batch of the table, not the table (measured 1 MiB; 150 MiB when the
/// whole table was encoded at once).
const JOIN_CEILING_MIB: u64 = 12;

fn ctx() -> SessionContext {
    SessionContext {
        four_octet_as: true,
        ..SessionContext::default()
    }
}

fn prefix(i: u32) -> Prefix {
    Prefix::new(IpAddr::V4(Ipv4Addr::from(0x6440_0000 + i)), 32).expect("a /32")
}

/// The route of prefix `i` of `n` in `round`: MED tells the round, communities make it large.
fn attrs(i: u32, round: u32, n: u32) -> PathAttrs {
    let communities: Vec<Community> = (0..60).map(|c| Community(0xfde8_0000 + c)).collect();
    PathAttrs {
        origin: Some(Origin::Igp),
        as_path: Some(Default::default()),
        next_hop: Some(NextHop::V4(INJECTOR)),
        local_pref: Some(100),
        med: Some(round * n + i),
        communities: communities.into(),
        ..PathAttrs::default()
    }
}

/// A client session: connects from `from`, exchanges OPEN and KEEPALIVE.
async fn connect(from: Ipv4Addr, port: u16) -> (TcpStream, BytesMut) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
        match socket
            .connect(SocketAddr::new(IpAddr::V4(SPEAKER), port))
            .await
        {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("speaker not listening: {e}"),
        }
    };
    let open = Message::Open(Open::new(
        Asn(ASN),
        240,
        from,
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
        ],
    ));
    let mut out = BytesMut::new();
    open.encode(&ctx(), &mut out).unwrap();
    Message::Keepalive.encode(&ctx(), &mut out).unwrap();
    stream.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    let mut opened = false;
    while !opened {
        match next(&mut stream, &mut buf, Duration::ZERO).await {
            Some(Message::Open(_)) => opened = true,
            Some(Message::Notification(n)) => panic!("refused: {n:?}"),
            Some(_) => {}
            None => panic!("closed during OPEN"),
        }
    }
    (stream, buf)
}

/// The next message, or `None` when the connection closes; each read of the socket waits
/// `pause` first (a peer on a slow link).
async fn next(stream: &mut TcpStream, buf: &mut BytesMut, pause: Duration) -> Option<Message> {
    loop {
        if let Some(h) = Header::peek(buf, 4096).unwrap()
            && buf.len() >= h.len
        {
            let frame = buf.split_to(h.len);
            return Some(Message::decode(&frame, &ctx()).unwrap());
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        // Up to 64 KiB a read.
        buf.reserve(64 << 10);
        if stream.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}

/// How a client reads: the table size and the pause before each socket read.
#[derive(Clone, Copy)]
struct Reading {
    prefixes: u32,
    pause: Duration,
}

/// A client reading as fast as it can a table of [`PREFIXES`].
const FAST: Reading = Reading {
    prefixes: PREFIXES,
    pause: Duration::ZERO,
};

/// Reads until every prefix holds its route of `round` (by MED); panics on a withdrawal.
async fn converge(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    held: &mut HashMap<Prefix, u32>,
    round: u32,
    how: Reading,
) {
    let n = how.prefixes;
    let current = |p: &Prefix, med: u32| med >= round * n && *p == prefix(med % n);
    let mut done = held.iter().filter(|(p, m)| current(p, **m)).count();
    while done < n as usize {
        match next(stream, buf, how.pause).await {
            Some(Message::Update(u)) => {
                assert!(u.withdrawn.is_empty(), "nothing is withdrawn here");
                if u.nlri.is_empty() {
                    continue; // End-of-RIB
                }
                let med = u.attrs.med.expect("MED reflected");
                for n in &u.nlri {
                    let was = held.insert(n.prefix, med);
                    let before = was.is_some_and(|m| current(&n.prefix, m));
                    match (before, current(&n.prefix, med)) {
                        (false, true) => done += 1,
                        (true, false) => done -= 1,
                        _ => {}
                    }
                }
            }
            Some(Message::Notification(n)) => panic!("session closed: {n:?}"),
            Some(_) => {}
            None => panic!("connection closed"),
        }
    }
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// The speaker's peak RSS (KiB) grew from `base` by less than `ceiling_mib`.
fn assert_rss_bounded(base: u64, peak: u64, ceiling_mib: u64, when: &str) {
    let growth_mib = peak.saturating_sub(base) / 1024;
    eprintln!(
        "speaker RSS at the start: {} MiB, peak {when}: {} MiB",
        base / 1024,
        peak / 1024
    );
    assert!(
        growth_mib < ceiling_mib,
        "peak RSS grew by {growth_mib} MiB over {} MiB {when}",
        base / 1024
    );
}

/// The UPDATEs announcing every prefix of `n` with its route of `round`.
fn round_updates(round: u32, n: u32) -> BytesMut {
    let mut out = BytesMut::new();
    for i in 0..n {
        pack::announce(
            &ctx(),
            AfiSafi::IPV4_UNICAST,
            &attrs(i, round, n),
            &[Nlri::new(prefix(i))],
            &mut out,
        )
        .unwrap();
    }
    out
}

/// A `bgp-speaker` process reflecting for every client on 127.0.0.0/29; its port, and the
/// directory with its log (`speaker.log`).
fn start_speaker() -> (ChildGuard, u16, tempfile::TempDir) {
    let port = testkit::free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"local_as = {ASN}
router_id = "{SPEAKER}"
listen = ["{SPEAKER}:{port}"]
cluster_id = "{SPEAKER}"
fib = false

[graceful_restart]
enabled = false

[[peer_ranges]]
prefix = "127.0.0.0/29"
remote_as = {ASN}
rr_client = true
hold_time = 240
families = ["ipv4"]
"#
    );
    std::fs::write(dir.path().join("speaker.toml"), config).unwrap();
    let log = std::fs::File::create(dir.path().join("speaker.log")).unwrap();
    let mut cmd = std::process::Command::new(support::binary());
    cmd.arg("-c")
        .arg(dir.path().join("speaker.toml"))
        .env("RUST_LOG", "info")
        .stderr(log);
    let speaker = ChildGuard::spawn(&mut cmd, "bgp-speaker").unwrap();
    (speaker, port, dir)
}

#[tokio::test]
#[serial_test::serial]
async fn a_client_that_stops_reading_does_not_grow_memory() {
    let (speaker, port, dir) = start_speaker();
    let pid = speaker.pid();
    let logs = || std::fs::read_to_string(dir.path().join("speaker.log")).unwrap_or_default();

    let (mut stalled, _) = connect(STALLED, port).await;
    let (mut monitor, mut monitor_buf) = connect(MONITOR, port).await;
    let (mut injector, _) = connect(INJECTOR, port).await;
    let mut monitor_held = HashMap::new();

    let run = async {
        injector
            .write_all(&round_updates(0, PREFIXES))
            .await
            .unwrap();
        converge(&mut monitor, &mut monitor_buf, &mut monitor_held, 0, FAST).await;
        let base = rss_kib(pid, "VmRSS:");
        for round in 1..=ROUNDS {
            let bytes = round_updates(round, PREFIXES);
            let (w, ()) = tokio::join!(
                injector.write_all(&bytes),
                converge(
                    &mut monitor,
                    &mut monitor_buf,
                    &mut monitor_held,
                    round,
                    FAST
                )
            );
            w.unwrap();
        }
        let peak = rss_kib(pid, "VmHWM:");
        (base, peak)
    };
    let (base, peak) = tokio::time::timeout(WAIT, run)
        .await
        .unwrap_or_else(|_| panic!("the monitor did not converge\nlog:\n{}", logs()));
    assert_rss_bounded(
        base,
        peak,
        CEILING_MIB,
        &format!("after {ROUNDS} rounds of churn"),
    );

    // Reading again, the stalled client catches up to exactly the final table.
    let mut held = HashMap::new();
    let mut buf = BytesMut::new();
    tokio::time::timeout(
        WAIT,
        converge(&mut stalled, &mut buf, &mut held, ROUNDS, FAST),
    )
    .await
    .unwrap_or_else(|_| panic!("the stalled client did not catch up\nlog:\n{}", logs()));
    assert!(!logs().contains("panicked"), "{}", logs());
}

#[tokio::test]
#[serial_test::serial]
async fn a_client_that_asks_for_the_table_again_and_again_without_reading_does_not_grow_memory() {
    let (speaker, port, dir) = start_speaker();
    let pid = speaker.pid();
    let logs = || std::fs::read_to_string(dir.path().join("speaker.log")).unwrap_or_default();

    let (mut monitor, mut monitor_buf) = connect(MONITOR, port).await;
    let (mut injector, _) = connect(INJECTOR, port).await;
    let mut monitor_held = HashMap::new();
    let run = async {
        injector
            .write_all(&round_updates(0, PREFIXES))
            .await
            .unwrap();
        converge(&mut monitor, &mut monitor_buf, &mut monitor_held, 0, FAST).await;
        // Joins with the table in place: its first table fills the writer, and it never reads.
        let (mut stalled, _) = connect(STALLED, port).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let base = rss_kib(pid, "VmRSS:");
        let mut refresh = BytesMut::new();
        Message::RouteRefresh(RouteRefresh {
            afi_safi: AfiSafi::IPV4_UNICAST,
            subtype: RefreshSubtype::Normal,
        })
        .encode(&ctx(), &mut refresh)
        .unwrap();
        for k in 0..REFRESHES {
            stalled.write_all(&refresh).await.unwrap();
            if k == REFRESHES / 2 {
                // The table changes while refreshes are owed: the client must end with this.
                let bytes = round_updates(1, PREFIXES);
                let (w, ()) = tokio::join!(
                    injector.write_all(&bytes),
                    converge(&mut monitor, &mut monitor_buf, &mut monitor_held, 1, FAST)
                );
                w.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let peak = rss_kib(pid, "VmHWM:");
        (stalled, base, peak)
    };
    let (mut stalled, base, peak) = tokio::time::timeout(WAIT, run)
        .await
        .unwrap_or_else(|_| panic!("the monitor did not converge\nlog:\n{}", logs()));
    assert_rss_bounded(
        base,
        peak,
        CEILING_MIB,
        &format!("with {REFRESHES} refreshes owed"),
    );

    // Reading at last, the client gets exactly the current table; the session stays up.
    let mut held = HashMap::new();
    let mut buf = BytesMut::new();
    tokio::time::timeout(WAIT, converge(&mut stalled, &mut buf, &mut held, 1, FAST))
        .await
        .unwrap_or_else(|_| panic!("the stalled client did not catch up\nlog:\n{}", logs()));
    assert_eq!(held.len(), PREFIXES as usize);
    // The refreshes merged into one re-send, closed by its End-of-Route-Refresh (RFC 7313).
    let end_of_refresh = async {
        loop {
            match next(&mut stalled, &mut buf, Duration::ZERO).await {
                Some(Message::RouteRefresh(r)) if r.subtype == RefreshSubtype::EndOfRefresh => {
                    break;
                }
                Some(Message::Notification(n)) => panic!("session closed: {n:?}"),
                Some(_) => {}
                None => panic!("connection closed"),
            }
        }
    };
    tokio::time::timeout(WAIT, end_of_refresh)
        .await
        .unwrap_or_else(|_| panic!("no End-of-Route-Refresh\nlog:\n{}", logs()));
    assert!(!logs().contains("panicked"), "{}", logs());
}

#[tokio::test]
#[serial_test::serial]
async fn a_client_joining_a_large_table_and_reading_slowly_is_sent_it_a_batch_at_a_time() {
    let (speaker, port, dir) = start_speaker();
    let pid = speaker.pid();
    let logs = || std::fs::read_to_string(dir.path().join("speaker.log")).unwrap_or_default();

    let (mut monitor, mut monitor_buf) = connect(MONITOR, port).await;
    let (mut injector, _) = connect(INJECTOR, port).await;
    let fast = Reading {
        prefixes: LARGE,
        pause: Duration::ZERO,
    };
    // 64 KiB every 5 ms at most: a few seconds for the table.
    let slow = Reading {
        prefixes: LARGE,
        pause: Duration::from_millis(5),
    };
    let run = async {
        let bytes = round_updates(0, LARGE);
        let mut monitor_held = HashMap::new();
        let (w, ()) = tokio::join!(
            injector.write_all(&bytes),
            converge(&mut monitor, &mut monitor_buf, &mut monitor_held, 0, fast)
        );
        w.unwrap();
        // Peak RSS from here on is the late client's doing.
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
        let base = rss_kib(pid, "VmRSS:");
        let (mut late, mut buf) = connect(STALLED, port).await;
        let mut held = HashMap::new();
        converge(&mut late, &mut buf, &mut held, 0, slow).await;
        assert_eq!(held.len(), LARGE as usize);
        (base, rss_kib(pid, "VmHWM:"))
    };
    let (base, peak) = tokio::time::timeout(WAIT, run)
        .await
        .unwrap_or_else(|_| panic!("no convergence\nlog:\n{}", logs()));
    assert_rss_bounded(
        base,
        peak,
        JOIN_CEILING_MIB,
        "while a late client read a 100,000-route table slowly",
    );
    assert!(!logs().contains("panicked"), "{}", logs());
}
