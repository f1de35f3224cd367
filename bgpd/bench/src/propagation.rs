//! Propagation: an injector client announces N prefixes through the reflector to a monitor
//! client. Timed from the first UPDATE the injector sends to the last prefix the monitor holds.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use bgpd_wire::{AfiSafi, Asn, pack};
use bytes::BytesMut;
use tokio::time::Instant;

use crate::receive::{Expect, receive_all};
use crate::routes::PrefixRange;
use crate::session::{Endpoint, Established, Reader, SessionError, establish};
use crate::{BenchError, Measurement, Sample, conclude, originated, split_messages};

/// Bytes handed to the injector's writer at a time; KEEPALIVEs go between pieces.
const PIECE: usize = 256 * 1024;

/// One propagation run.
#[derive(Debug, Clone)]
pub struct Propagation {
    /// The reflector under test.
    pub reflector: SocketAddrV4,
    /// The injector's source address (and BGP identifier).
    pub injector: Ipv4Addr,
    /// The monitor's source address (and BGP identifier).
    pub monitor: Ipv4Addr,
    /// AS of the reflector and both clients.
    pub asn: Asn,
    /// Hold time the clients offer.
    pub hold_time: u16,
    /// The prefixes to announce.
    pub routes: PrefixRange,
    /// The reflector's cluster id, expected first in every CLUSTER_LIST.
    pub cluster_id: Ipv4Addr,
    /// The reflector's pid, to read its peak RSS and CPU time.
    pub reflector_pid: Option<u32>,
    /// How long the sessions may take to come up.
    pub connect_within: Duration,
    /// Longest wait for the reflector's End-of-RIB on each session (when it sends one).
    pub sync_within: Duration,
    /// Pause after that before the first UPDATE, so the reflector has finished its own
    /// session start-up work.
    pub settle: Duration,
    /// Time limit from the first UPDATE; later is a failure, not a number.
    pub timeout: Duration,
}

impl Propagation {
    /// Runs it once.
    pub async fn run(&self) -> Result<Measurement, BenchError> {
        let endpoint = |local| Endpoint {
            local,
            reflector: self.reflector,
            asn: self.asn,
            hold_time: self.hold_time,
        };
        let (mut injector, mut monitor) = tokio::try_join!(
            establish(endpoint(self.injector), self.connect_within),
            establish(endpoint(self.monitor), self.connect_within),
        )?;
        let synced = tokio::try_join!(
            injector.initial_sync(self.sync_within),
            monitor.initial_sync(self.sync_within),
        )?;
        let synced = u64::from(synced.0) + u64::from(synced.1);
        let Established {
            reader: injector_reader,
            writer,
            send,
            ..
        } = injector;
        // The reflector may send the injector things too (End-of-RIB, keepalives): keep
        // reading, or its socket would fill and stall it.
        let drain = tokio::spawn(drain(injector_reader));
        tokio::time::sleep(self.settle).await;

        let mut out = BytesMut::new();
        let attrs = originated(self.injector);
        let updates = pack::announce(
            &send,
            AfiSafi::IPV4_UNICAST,
            &attrs,
            &self.routes.nlri(),
            &mut out,
        )?;
        let pieces = split_messages(out.freeze(), PIECE);

        let sample = Sample::take(self.reflector_pid)?;
        let injector_id = self.injector;
        let start = Instant::now();
        let receiver = tokio::spawn(receive_all(
            monitor.reader,
            Expect {
                range: self.routes,
                own: None,
                originator: move |_| injector_id,
                cluster_id: self.cluster_id,
            },
            start + self.timeout,
        ));
        let blast = async {
            for piece in pieces {
                writer.send(piece).await?;
            }
            Ok::<(), SessionError>(())
        };
        // A reflector that stops reading must not hang us: past the deadline the monitor
        // reports what it got.
        if let Ok(sent) = tokio::time::timeout_at(start + self.timeout, blast).await {
            sent?;
        }
        let received = receiver.await.map_err(|e| SessionError::Protocol {
            peer: self.monitor,
            what: format!("monitor task failed: {e}"),
        })?;
        // An injector session reset explains a missing route better than the timeout does.
        if received.complete_at.is_none() && drain.is_finished() {
            if let Ok(e) = drain.await {
                return Err(e.into());
            }
        } else {
            drain.abort();
        }
        let (end, tally) = conclude(vec![received], u64::from(self.routes.count()), self.timeout)?;
        drop(monitor.writer);
        sample.finish(start, end, updates as u64, synced, tally)
    }
}

/// Reads and drops everything until the session fails; returns why it did.
async fn drain(mut reader: Reader) -> SessionError {
    loop {
        if let Err(e) = reader.next().await {
            return e;
        }
    }
}
