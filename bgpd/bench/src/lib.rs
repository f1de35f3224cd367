//! Native BGP route-reflector benchmark, the bgperf way but timed from inside one process.
//!
//! - [`propagation`]: an injector client announces N prefixes to the reflector under test, a
//!   monitor client counts them arriving; time from the first UPDATE sent to the last prefix
//!   received.
//! - [`fanout`]: S clients each announce one prefix; time until every client holds every other
//!   client's route.
//!
//! Both check what they count (exactly the expected routes, each with ORIGINATOR_ID and
//! CLUSTER_LIST naming the right originator) and read the reflector's peak RSS and CPU time
//! from /proc. The clients speak BGP through `bgpd-wire` ([`session`]).

pub mod fanout;
pub mod propagation;
pub mod receive;
pub mod routes;
pub mod session;
pub mod usage;

use std::time::Duration;

use bgpd_wire::{AsPath, Header, NextHop, Origin, PathAttrs};
use bytes::Bytes;
use serde::Serialize;
use tokio::time::Instant;

use crate::receive::{Received, Tally};
use crate::session::SessionError;
use crate::usage::Usage;

/// Why a run produced no number.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A session failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The test routes are not a usable range.
    #[error(transparent)]
    Range(#[from] routes::RangeError),
    /// The routes could not be encoded for the session.
    #[error("cannot encode the test routes: {0}")]
    Encode(#[from] bgpd_wire::EncodeError),
    /// Reading the reflector's (or our own) resource use failed.
    #[error("cannot read process usage: {0}")]
    Usage(#[from] std::io::Error),
    /// Not every route arrived in time.
    #[error("timed out after {after:?}: {received} of {expected} routes received ({tally:?})")]
    Timeout {
        /// The run's time limit.
        after: Duration,
        /// Routes received.
        received: u64,
        /// Routes expected.
        expected: u64,
        /// What the receivers counted.
        tally: Tally,
    },
    /// Every route arrived, but something else was wrong with what was received.
    #[error("wrong routes received: {0:?}")]
    Wrong(Tally),
}

/// The numbers of one successful run.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// Seconds from the first UPDATE sent to the last expected route received.
    pub seconds: f64,
    /// Route receptions counted (N, or S × (S − 1)).
    pub received: u64,
    /// UPDATE messages the tester sent.
    pub updates_sent: u64,
    /// Sessions on which the reflector's End-of-RIB was seen before the start.
    pub synced_sessions: u64,
    /// What the receivers counted, summed.
    pub tally: Tally,
    /// The reflector's peak RSS (VmHWM) in MiB, if its pid was given.
    pub reflector_peak_rss_mib: Option<f64>,
    /// The reflector's user + system CPU seconds during the run, if its pid was given.
    pub reflector_cpu_seconds: Option<f64>,
    /// The tester's own user + system CPU seconds during the run.
    pub tester_cpu_seconds: f64,
}

/// Resource use sampled at the start of a run, to take differences at the end.
#[derive(Debug, Clone, Copy)]
struct Sample {
    reflector: Option<(u32, Usage)>,
    tester: Usage,
}

impl Sample {
    fn take(reflector_pid: Option<u32>) -> Result<Sample, BenchError> {
        let reflector = match reflector_pid {
            Some(pid) => Some((pid, Usage::of(pid)?)),
            None => None,
        };
        Ok(Sample {
            reflector,
            tester: Usage::own()?,
        })
    }

    /// The measurement for a run that began at `start` and ended at `end`.
    fn finish(
        self,
        start: Instant,
        end: Instant,
        updates_sent: u64,
        synced_sessions: u64,
        tally: Tally,
    ) -> Result<Measurement, BenchError> {
        let reflector = match self.reflector {
            Some((pid, before)) => Some((before, Usage::of(pid)?)),
            None => None,
        };
        Ok(Measurement {
            seconds: end.saturating_duration_since(start).as_secs_f64(),
            received: tally.held,
            updates_sent,
            synced_sessions,
            reflector_peak_rss_mib: reflector.map(|(_, a)| a.peak_rss_kib as f64 / 1024.0),
            reflector_cpu_seconds: reflector.map(|(b, a)| a.cpu_seconds - b.cpu_seconds),
            tester_cpu_seconds: Usage::own()?.cpu_seconds - self.tester.cpu_seconds,
            tally,
        })
    }
}

/// Settles a set of receivers: the time the last completed, or why not all did.
fn conclude(
    received: Vec<Received>,
    expected: u64,
    after: Duration,
) -> Result<(Instant, Tally), BenchError> {
    let mut tally = Tally::default();
    let mut last = None;
    let mut incomplete = false;
    let mut error = None;
    for r in received {
        tally.add(&r.tally);
        match r.complete_at {
            Some(at) => last = last.max(Some(at)),
            None => incomplete = true,
        }
        error = error.or(r.error);
    }
    if let Some(e) = error {
        return Err(e.into());
    }
    match last {
        Some(at) if !incomplete && tally.held == expected => {
            if tally.bad_reflection > 0 || tally.foreign > 0 {
                return Err(BenchError::Wrong(tally));
            }
            Ok((at, tally))
        }
        _ => Err(BenchError::Timeout {
            after,
            received: tally.held,
            expected,
            tally,
        }),
    }
}

/// The attributes a client originates its routes with: IGP origin, empty AS_PATH (iBGP),
/// itself as next hop, the default LOCAL_PREF.
fn originated(next_hop: std::net::Ipv4Addr) -> PathAttrs {
    PathAttrs {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        next_hop: Some(NextHop::V4(next_hop)),
        local_pref: Some(100),
        ..PathAttrs::default()
    }
}

/// Cuts encoded messages into pieces of about `target` bytes, each ending on a message
/// boundary, so KEEPALIVEs can be written between them.
fn split_messages(bytes: Bytes, target: usize) -> Vec<Bytes> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while let Ok(Some(h)) = Header::peek(&bytes[at..], usize::from(u16::MAX)) {
        at = (at + h.len).min(bytes.len());
        if at - start >= target {
            pieces.push(bytes.slice(start..at));
            start = at;
        }
        if at == bytes.len() {
            break;
        }
    }
    if start < bytes.len() {
        pieces.push(bytes.slice(start..));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgpd_wire::{AfiSafi, Nlri, SessionContext, pack};
    use bytes::BytesMut;

    #[test]
    fn splits_only_on_message_boundaries() {
        let range = routes::PrefixRange::new("100.64.0.0".parse().unwrap(), 32, 5000).unwrap();
        let nlri: Vec<Nlri> = range.nlri();
        let mut out = BytesMut::new();
        let ctx = SessionContext::default();
        let attrs = originated("10.77.1.1".parse().unwrap());
        let n = pack::announce(&ctx, AfiSafi::IPV4_UNICAST, &attrs, &nlri, &mut out).unwrap();
        assert!(n > 5);
        let whole = out.freeze();
        let pieces = split_messages(whole.clone(), 10_000);
        assert!(pieces.len() > 1);
        let mut joined = Vec::new();
        for p in &pieces {
            // Each piece starts with a header and holds whole messages.
            assert!(matches!(Header::peek(p, 4096), Ok(Some(_))));
            joined.extend_from_slice(p);
        }
        assert_eq!(joined, whole.to_vec());
    }
}
