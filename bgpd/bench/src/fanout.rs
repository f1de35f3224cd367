//! Fan-out: S clients, each announcing one prefix, until every client holds the routes of all
//! the others (S × (S − 1) receptions). Timed from the first UPDATE sent to the last reception.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use bgpd_wire::{AfiSafi, Asn, Nlri, pack};
use bytes::BytesMut;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::receive::{Expect, Received, receive_all};
use crate::routes::PrefixRange;
use crate::session::{Endpoint, Established, SessionError, establish};
use crate::{BenchError, Measurement, Sample, conclude, originated};

/// One fan-out run.
#[derive(Debug, Clone)]
pub struct Fanout {
    /// The reflector under test.
    pub reflector: SocketAddrV4,
    /// One source address (and BGP identifier) per client.
    pub clients: Vec<Ipv4Addr>,
    /// AS of the reflector and every client.
    pub asn: Asn,
    /// Hold time the clients offer.
    pub hold_time: u16,
    /// The first client's prefix; client `i` announces the `i`-th prefix of this length
    /// from here.
    pub prefix_base: Ipv4Addr,
    /// Length of the clients' prefixes.
    pub prefix_len: u8,
    /// The reflector's cluster id, expected first in every CLUSTER_LIST.
    pub cluster_id: Ipv4Addr,
    /// The reflector's pid, to read its peak RSS and CPU time.
    pub reflector_pid: Option<u32>,
    /// How long all sessions may take to come up.
    pub connect_within: Duration,
    /// Sessions opened at once (a burst of thousands of SYNs overflows listen backlogs).
    pub connect_parallel: usize,
    /// Longest wait for the reflector's End-of-RIB on each session (when it sends one).
    pub sync_within: Duration,
    /// Pause after the last session is up and synced, before the first UPDATE.
    pub settle: Duration,
    /// Time limit from the first UPDATE; later is a failure, not a number.
    pub timeout: Duration,
}

impl Fanout {
    /// Runs it once.
    pub async fn run(&self) -> Result<Measurement, BenchError> {
        let count = u32::try_from(self.clients.len()).unwrap_or(u32::MAX);
        let routes = PrefixRange::new(self.prefix_base, self.prefix_len, count)?;
        let (sessions, synced) = self.establish_all().await?;
        tokio::time::sleep(self.settle).await;

        let mut updates = Vec::with_capacity(sessions.len());
        for (i, (session, &local)) in sessions.iter().zip(&self.clients).enumerate() {
            let route = routes
                .nth(i as u32)
                .map(Nlri::new)
                .into_iter()
                .collect::<Vec<_>>();
            let mut out = BytesMut::new();
            pack::announce(
                &session.send,
                AfiSafi::IPV4_UNICAST,
                &originated(local),
                &route,
                &mut out,
            )?;
            updates.push(out.freeze());
        }

        let sample = Sample::take(self.reflector_pid)?;
        let start = Instant::now();
        let deadline = start + self.timeout;
        let originators = Arc::new(self.clients.clone());
        let mut writers = Vec::with_capacity(sessions.len());
        let mut receivers = JoinSet::new();
        for (i, session) in sessions.into_iter().enumerate() {
            let originators = Arc::clone(&originators);
            let expect = Expect {
                range: routes,
                own: Some(i as u32),
                cluster_id: self.cluster_id,
                originator: move |j: u32| {
                    originators
                        .get(j as usize)
                        .copied()
                        .unwrap_or(Ipv4Addr::UNSPECIFIED)
                },
            };
            receivers.spawn(receive_all(session.reader, expect, deadline));
            writers.push(session.writer);
        }
        for (writer, update) in writers.iter().zip(updates) {
            writer.send(update).await?;
        }
        let mut received: Vec<Received> = Vec::with_capacity(writers.len());
        while let Some(r) = receivers.join_next().await {
            received.push(r.map_err(|e| SessionError::Protocol {
                peer: Ipv4Addr::UNSPECIFIED,
                what: format!("receiver task failed: {e}"),
            })?);
        }
        let s = u64::from(count);
        let (end, tally) = conclude(received, s * s.saturating_sub(1), self.timeout)?;
        drop(writers);
        sample.finish(start, end, s, synced, tally)
    }

    /// Opens every client's session, a bounded number at a time, and waits for each one's
    /// End-of-RIB; all must come up. Returns them with how many sent End-of-RIB.
    async fn establish_all(&self) -> Result<(Vec<Established>, u64), BenchError> {
        let permits = Arc::new(Semaphore::new(self.connect_parallel.max(1)));
        let mut tasks = JoinSet::new();
        for (i, &local) in self.clients.iter().enumerate() {
            let endpoint = Endpoint {
                local,
                reflector: self.reflector,
                asn: self.asn,
                hold_time: self.hold_time,
            };
            let (permits, within, sync) =
                (Arc::clone(&permits), self.connect_within, self.sync_within);
            tasks.spawn(async move {
                let session = {
                    let _permit = permits.acquire_owned().await;
                    establish(endpoint, within).await
                };
                let synced = match session {
                    Ok(mut s) => s.initial_sync(sync).await.map(|synced| (s, synced)),
                    Err(e) => Err(e),
                };
                (i, synced)
            });
        }
        let mut synced = 0;
        let mut sessions: Vec<Option<Established>> =
            (0..self.clients.len()).map(|_| None).collect();
        while let Some(done) = tasks.join_next().await {
            let (i, session) = done.map_err(|e| SessionError::Protocol {
                peer: Ipv4Addr::UNSPECIFIED,
                what: format!("connect task failed: {e}"),
            })?;
            let (session, ended) = session?;
            synced += u64::from(ended);
            if let Some(slot) = sessions.get_mut(i) {
                *slot = Some(session);
            }
        }
        Ok((sessions.into_iter().flatten().collect(), synced))
    }
}
