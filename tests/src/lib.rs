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

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}
