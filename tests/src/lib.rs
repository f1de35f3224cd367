//! Test harness: real etcd, network namespaces and real BGP peers, cleaned up even on failure.
//!
//! Every resource is a guard that releases what it made on `Drop`, which also runs when a test
//! panics, so a failing test leaves no namespace, process or data dir behind. Names include the
//! test process id, so concurrent test binaries never collide.

pub mod certs;
pub mod control_socket;
pub mod etcd;
pub mod fabric;
pub mod netns;
pub mod peers;
pub mod process;
pub mod single_host;
pub mod traffic;

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every namespace the harness creates; `tests/run.sh` removes strays with it.
pub const NAME_PREFIX: &str = "fab";

/// A name unique to this process and call, short enough to fit where Linux limits names.
pub fn unique_name(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{NAME_PREFIX}{}-{n}-{tag}", std::process::id())
}

/// A TCP port on 127.0.0.1 that is free now and that no other call in this process returns.
///
/// Ports come from below the kernel's ephemeral range (`ip_local_port_range`): a port from
/// `bind(0)` is one the kernel also hands to outgoing connections, so between this call and the
/// server's own bind an etcd client or peer connection could take it ("address already in use").
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = listen_port_range();
    let span = u32::from(high - low);
    // Start at a pid-dependent place so concurrent test binaries rarely probe the same ports.
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = low + ((start + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free TCP port on 127.0.0.1 in {low}..{high}");
}

/// Ports outside the ephemeral range, so the kernel never picks them for outgoing connections.
fn listen_port_range() -> (u16, u16) {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|v| v.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        });
    match ephemeral {
        Some((low, _)) if low >= 12_000 => (10_000, low),
        Some((_, high)) if high <= 60_000 => (high + 1, 65_535),
        _ => (10_000, 32_768),
    }
}
