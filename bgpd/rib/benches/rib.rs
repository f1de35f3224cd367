//! RIB benchmarks: the reflector path (N IPv4 routes from one client, UPDATEs out to another)
//! and fan-out (S clients each announcing one /26 to all others), plus the memory the table
//! holds per route, measured with a counting global allocator.
//!
//! `cargo bench -p bgpd-rib --bench rib`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bgpd_rib::{PeerConfig, PeerId, Rib, RibSettings, Session};
use bgpd_wire::{AfiSafi, AsPath, Asn, Ipv4Prefix, NextHop, Nlri, Origin, PathAttrs};
use criterion::{BatchSize, Criterion, criterion_group};

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            grew(new_size - layout.size());
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const LOCAL_AS: Asn = Asn(65000);
const CLUSTER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// NLRI per injected UPDATE: what fits a 4096-octet message of /24s.
const PER_UPDATE: usize = 1000;
/// UPDATEs applied between drains, as an actor reading a socket in batches would.
const PER_DRAIN: usize = 64;

fn reflector() -> Rib {
    let mut s = RibSettings::new(LOCAL_AS, CLUSTER);
    s.cluster_id = Some(CLUSTER);
    s.fib = false;
    Rib::new(s)
}

fn client(rib: &mut Rib, i: u32) -> PeerId {
    let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 1, 0, 0)) + i);
    let mut c = PeerConfig::new(IpAddr::V4(addr), LOCAL_AS);
    c.rr_client = true;
    let id = rib.add_peer(c).expect("peer");
    rib.peer_up(id, Session::ipv4(addr, CLUSTER)).expect("up");
    id
}

fn attrs(next_hop: Ipv4Addr) -> PathAttrs {
    PathAttrs {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence([Asn(65100)])),
        next_hop: Some(NextHop::V4(next_hop)),
        local_pref: Some(100),
        ..PathAttrs::default()
    }
}

/// `n` distinct /24s (then /32s beyond 2^24).
fn prefixes(n: usize) -> Vec<Nlri> {
    (0..n as u32)
        .map(|i| {
            let p = Ipv4Prefix::new(Ipv4Addr::from(0x0b00_0000u32.wrapping_add(i << 8)), 24)
                .expect("prefix");
            Nlri::new(p)
        })
        .collect()
}

/// Source and monitor clients up and drained.
fn two_clients() -> (Rib, PeerId, PeerId) {
    let mut rib = reflector();
    let source = client(&mut rib, 1);
    let monitor = client(&mut rib, 2);
    rib.drain();
    (rib, source, monitor)
}

/// Injects `nlri` from `source` in UPDATE-sized batches; returns the octets produced.
fn propagate(rib: &mut Rib, source: PeerId, nlri: &[Nlri]) -> usize {
    let a = attrs(Ipv4Addr::new(10, 1, 0, 1));
    let mut octets = 0;
    for chunk in nlri.chunks(PER_UPDATE * PER_DRAIN) {
        for update in chunk.chunks(PER_UPDATE) {
            rib.announce(source, AfiSafi::IPV4_UNICAST, &a, update)
                .expect("announce");
        }
        octets += rib
            .drain()
            .outbound
            .iter()
            .map(|o| o.messages.len())
            .sum::<usize>();
    }
    octets
}

fn reflect(c: &mut Criterion) {
    let mut g = c.benchmark_group("reflect");
    g.sample_size(10);
    for n in [10_000usize, 100_000, 1_000_000] {
        let nlri = prefixes(n);
        g.bench_function(format!("{n} routes client to client"), |b| {
            b.iter_batched(
                two_clients,
                |(mut rib, source, _)| {
                    black_box(propagate(&mut rib, source, &nlri));
                    rib
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn fan_out(c: &mut Criterion) {
    let mut g = c.benchmark_group("fan-out");
    g.sample_size(10);
    for s in [200u32, 1000] {
        g.bench_function(format!("{s} clients one /26 each"), |b| {
            b.iter_batched(
                || {
                    let mut rib = reflector();
                    let ids: Vec<PeerId> = (0..s).map(|i| client(&mut rib, i + 1)).collect();
                    rib.drain();
                    (rib, ids)
                },
                |(mut rib, ids)| {
                    let mut sends = 0usize;
                    for (i, id) in ids.iter().enumerate() {
                        let addr =
                            Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 1, 0, 0)) + i as u32 + 1);
                        let p =
                            Ipv4Prefix::new(Ipv4Addr::from(0x0a40_0000u32 + ((i as u32) << 6)), 26)
                                .expect("prefix");
                        rib.announce(*id, AfiSafi::IPV4_UNICAST, &attrs(addr), &[Nlri::new(p)])
                            .expect("announce");
                        sends += rib
                            .drain()
                            .outbound
                            .iter()
                            .map(|o| o.peers.len())
                            .sum::<usize>();
                    }
                    black_box(sends);
                    rib
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// A client joining a table of `n` routes: every drain until its first table is sent (a batch
/// per drain since the tables are paced).
fn late_joiner(c: &mut Criterion) {
    let mut g = c.benchmark_group("late joiner");
    g.sample_size(10);
    for n in [100_000usize, 1_000_000] {
        let nlri = prefixes(n);
        g.bench_function(format!("first table of {n} routes"), |b| {
            b.iter_batched(
                || {
                    let (mut rib, source, _) = two_clients();
                    propagate(&mut rib, source, &nlri);
                    rib
                },
                |mut rib| {
                    client(&mut rib, 3);
                    let mut octets = 0usize;
                    loop {
                        let fx = rib.drain();
                        octets += fx.outbound.iter().map(|o| o.messages.len()).sum::<usize>();
                        if !rib.catching_up() {
                            break;
                        }
                    }
                    black_box(octets);
                    rib
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// Heap bytes per route: the table with 1M routes from one client, and the peak while
/// propagating them to another.
fn memory() {
    let n = 1_000_000;
    let nlri = prefixes(n);
    let (mut rib, source, _) = two_clients();
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let octets = propagate(&mut rib, source, &nlri);
    let (took, cpu) = (t.elapsed(), cpu_seconds() - cpu);
    let held = LIVE.load(Ordering::Relaxed) - before;
    let peak = PEAK.load(Ordering::Relaxed) - before;
    println!(
        "memory: {n} routes reflected in {:.0} ms wall, {:.0} ms CPU, {octets} octets of UPDATEs; table holds {} B ({:.1} B/route), \
         peak during propagation {} B ({:.1} B/route), {} attribute set(s)",
        took.as_secs_f64() * 1e3,
        cpu * 1e3,
        held,
        held as f64 / n as f64,
        peak,
        peak as f64 / n as f64,
        rib.attr_sets()
    );
    // The same prefixes from a second client: two candidates per prefix.
    let second = client(&mut rib, 3);
    rib.drain();
    let before = LIVE.load(Ordering::Relaxed);
    let a = attrs(Ipv4Addr::new(10, 1, 0, 3));
    for chunk in nlri.chunks(PER_UPDATE * PER_DRAIN) {
        for update in chunk.chunks(PER_UPDATE) {
            rib.announce(second, AfiSafi::IPV4_UNICAST, &a, update)
                .expect("announce");
        }
        rib.drain();
    }
    let extra = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "memory: a second path for each of the {n} prefixes adds {extra} B ({:.1} B/route)",
        extra as f64 / n as f64
    );
    drop(rib);
}

/// CPU seconds this process has used.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

criterion_group!(benches, reflect, fan_out, late_joiner);

fn main() {
    memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
