//! Decode and encode throughput, against zettabgp's UPDATE parser on the same bytes.
//!
//! Workloads: one UPDATE with 1,000 IPv4 /24s (extended message), and 10,000 UPDATEs shaped like
//! a full Internet table (AS paths of 1–10 ASes, 0–6 communities, some large communities and
//! MEDs, 1–6 prefixes of /16–/24 each). Throughput is in prefixes.
//!
//! `CODEC_BENCH_CLOCK=cpu` measures the benchmark thread's CPU time instead of wall time: on a
//! shared machine it leaves out the time the thread waits for a core.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Duration;

use bgpd_wire::*;
use bytes::BytesMut;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput};
use nix::time::{ClockId, clock_gettime};
use zettabgp::BgpMessage as _;
use zettabgp::prelude::{BgpAddrs, BgpSessionParams, BgpTransportMode, BgpUpdateMessage};

/// Deterministic xorshift, so every run measures the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn ctx() -> SessionContext {
    SessionContext {
        four_octet_as: true,
        add_path_families: Vec::new(),
        max_message_size: EXTENDED_MAX_MESSAGE_SIZE,
    }
}

fn base_attrs() -> PathAttrs {
    PathAttrs {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence([Asn(65001), Asn(3356), Asn(15169)])),
        next_hop: Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))),
        med: Some(10),
        communities: smallvec::smallvec![Community::new(65001, 100), Community::new(65001, 200)],
        ..PathAttrs::default()
    }
}

fn thousand_24s() -> Vec<Nlri> {
    (0..1000u32)
        .map(|i| Nlri::new(Ipv4Prefix::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap()))
        .collect()
}

/// 10,000 UPDATEs as one byte stream, and the number of prefixes they carry.
fn internet_table() -> (Vec<Update>, BytesMut, u64) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut updates = Vec::new();
    let mut prefixes = 0;
    for _ in 0..10_000 {
        let hops = 1 + rng.below(10) as usize;
        let as_path = AsPath::sequence((0..hops).map(|_| Asn(1 + rng.below(400_000) as u32)));
        let communities = (0..rng.below(7))
            .map(|_| Community(rng.next() as u32))
            .collect();
        let large_communities = if rng.below(5) == 0 {
            vec![LargeCommunity {
                global: 65001,
                local1: rng.next() as u32,
                local2: 1,
            }]
        } else {
            Vec::new()
        };
        let attrs = PathAttrs {
            origin: Some(if rng.below(10) == 0 {
                Origin::Incomplete
            } else {
                Origin::Igp
            }),
            as_path: Some(as_path),
            next_hop: Some(NextHop::V4(Ipv4Addr::new(
                192,
                0,
                2,
                1 + rng.below(200) as u8,
            ))),
            med: (rng.below(3) == 0).then(|| rng.below(1000) as u32),
            communities,
            large_communities,
            ..PathAttrs::default()
        };
        let nlri: Vec<Nlri> = (0..1 + rng.below(6))
            .map(|_| {
                let len = [16, 19, 20, 22, 23, 24, 24, 24, 24, 24][rng.below(10) as usize];
                Nlri::new(Ipv4Prefix::new(Ipv4Addr::from(rng.next() as u32), len).unwrap())
            })
            .collect();
        prefixes += nlri.len() as u64;
        updates.push(Update {
            attrs,
            nlri,
            ..Update::default()
        });
    }
    let mut bytes = BytesMut::new();
    for u in &updates {
        u.encode(&ctx(), &mut bytes).unwrap();
    }
    (updates, bytes, prefixes)
}

fn ours_decode_stream(mut stream: &[u8], ctx: &SessionContext) -> usize {
    let mut prefixes = 0;
    while let Ok(Some(h)) = Header::peek(stream, ctx.max_message_size) {
        let (frame, rest) = stream.split_at(h.len);
        if let Ok(Message::Update(u)) = Message::decode(frame, ctx) {
            prefixes += u.nlri.len();
            black_box(&u);
        }
        stream = rest;
    }
    prefixes
}

/// The same, decoding every UPDATE into one reused `Update` (`Update::decode_from`).
fn ours_decode_stream_reusing(
    mut stream: &[u8],
    ctx: &SessionContext,
    update: &mut Update,
) -> usize {
    let mut prefixes = 0;
    while let Ok(Some(h)) = Header::peek(stream, ctx.max_message_size) {
        let (frame, rest) = stream.split_at(h.len);
        if update.decode_from(frame, ctx).is_ok() {
            prefixes += update.nlri.len();
            black_box(&*update);
        }
        stream = rest;
    }
    prefixes
}

fn zetta_params() -> BgpSessionParams {
    let mut p = BgpSessionParams::new(
        65000,
        90,
        BgpTransportMode::IPv4,
        Ipv4Addr::new(1, 1, 1, 1),
        Vec::new(),
    );
    p.has_as32bit = true;
    // Our sessions know whether ADD-PATH is on; guessing would be extra work.
    p.fuzzy_pathid = false;
    p
}

fn zetta_decode_stream(mut stream: &[u8], params: &BgpSessionParams) -> usize {
    let mut prefixes = 0;
    while stream.len() >= 19 {
        let Ok((_, body_len)) = params.decode_message_head(stream) else {
            break;
        };
        let body = &stream[19..19 + body_len];
        let mut u = BgpUpdateMessage::new();
        if u.decode_from(params, body).is_ok() {
            if let BgpAddrs::IPV4U(v) = &u.updates {
                prefixes += v.len();
            }
            black_box(&u);
        }
        stream = &stream[19 + body_len..];
    }
    prefixes
}

fn benches<M: Measurement>(c: &mut Criterion<M>) {
    let ctx = ctx();
    let params = zetta_params();

    let routes = thousand_24s();
    let attrs = base_attrs();
    let mut one = BytesMut::new();
    assert_eq!(
        pack::announce(&ctx, AfiSafi::IPV4_UNICAST, &attrs, &routes, &mut one).unwrap(),
        1
    );
    assert_eq!(ours_decode_stream(&one, &ctx), 1000);
    assert_eq!(zetta_decode_stream(&one, &params), 1000);

    let mut g = c.benchmark_group("update_1000_v4_24s");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("decode/bgpd-wire", |b| {
        b.iter(|| ours_decode_stream(black_box(&one), &ctx))
    });
    g.bench_function("decode/zettabgp", |b| {
        b.iter(|| zetta_decode_stream(black_box(&one), &params))
    });
    let mut out = BytesMut::with_capacity(8192);
    g.bench_function("encode/bgpd-wire", |b| {
        b.iter(|| {
            out.clear();
            pack::announce(
                &ctx,
                AfiSafi::IPV4_UNICAST,
                black_box(&attrs),
                black_box(&routes),
                &mut out,
            )
            .unwrap()
        })
    });
    g.finish();

    let (updates, table, prefixes) = internet_table();
    assert_eq!(ours_decode_stream(&table, &ctx) as u64, prefixes);
    assert_eq!(zetta_decode_stream(&table, &params) as u64, prefixes);
    let mut g = c.benchmark_group("table_10k_updates");
    g.throughput(Throughput::Elements(prefixes));
    g.bench_function("decode/bgpd-wire", |b| {
        b.iter(|| ours_decode_stream(black_box(&table), &ctx))
    });
    g.bench_function("decode/zettabgp", |b| {
        b.iter(|| zetta_decode_stream(black_box(&table), &params))
    });
    let mut reused = Update::default();
    assert_eq!(
        ours_decode_stream_reusing(&table, &ctx, &mut reused) as u64,
        prefixes
    );
    g.bench_function("decode-reusing/bgpd-wire", |b| {
        b.iter(|| ours_decode_stream_reusing(black_box(&table), &ctx, &mut reused))
    });
    let mut out = BytesMut::with_capacity(table.len());
    g.bench_function("encode/bgpd-wire", |b| {
        b.iter(|| {
            out.clear();
            for u in black_box(&updates) {
                u.encode(&ctx, &mut out).unwrap();
            }
        })
    });
    g.finish();
}

/// The CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
struct ThreadCpuTime {
    /// Only for its formatter: both clocks count nanoseconds.
    wall: WallTime,
}

fn thread_cpu_now() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}

fn main() {
    if std::env::var("CODEC_BENCH_CLOCK").is_ok_and(|v| v == "cpu") {
        let mut c = Criterion::default()
            .with_measurement(ThreadCpuTime { wall: WallTime })
            .configure_from_args();
        benches(&mut c);
        c.final_summary();
    } else {
        let mut c = Criterion::default().configure_from_args();
        benches(&mut c);
        c.final_summary();
    }
}
