//! The kernel FIB through one netlink socket: list our table, and write changes many to a
//! `sendmsg`.
//!
//! Batching: a request without `NLM_F_ACK` is answered only if it fails, so a batch of
//! thousands of routes is one `sendmsg` (the kernel processes every message in it before the
//! call returns) and one acked message at its end; errors come back with the sequence number of
//! the message that caused them, which names the route.

use std::io;
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REPLACE,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

use crate::codec::{
    ChangeEncoder, dump_request, encode, extack_message, parse_route, split_messages,
};
use crate::config::{FibConfig, default_metric};
use crate::diff::{Change, plan};
use crate::error::{Error, Refusal, RouteFailure};
use crate::route::{KernelRoute, Route, RouteSet};

/// Bytes of requests per `sendmsg` (about 3,500 routes). Bigger batches gain little and need
/// a bigger receive buffer for the worst case of every route failing.
const BATCH_BYTES: usize = 256 * 1024;
/// Socket buffers, forced past `rmem_max`/`wmem_max` when we may (root).
const SOCKET_BUFFER: usize = 32 << 20;
/// A reply the kernel owes us and has not sent in this long means the socket is broken.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Room for one datagram of a dump (the kernel sends at most 32 KiB per datagram).
const RECEIVE_BYTES: usize = 1 << 20;
/// A dump the kernel marks inconsistent (changed while listed) is retried this often.
const DUMP_ATTEMPTS: usize = 3;

/// Writes that went through and those the kernel refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Route messages written.
    pub written: usize,
    /// The refused ones, each naming its route.
    pub failures: Vec<RouteFailure>,
}

/// What one reconcile found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Wanted routes found in place (not written).
    pub in_place: usize,
    /// Wanted routes not installed because another protocol's route holds their slot.
    pub conflicts: Vec<Route>,
    /// The writes.
    pub applied: Applied,
}

/// Our routes in the kernel, programmed through one netlink socket.
#[derive(Debug)]
pub struct Fib {
    config: FibConfig,
    socket: Socket,
    seq: u32,
    tx: Vec<u8>,
    rx: Vec<u8>,
    writes: u64,
}

impl Fib {
    /// Opens the socket in the calling thread's network namespace (it stays bound to it).
    pub fn open(config: FibConfig) -> Result<Fib, Error> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        grow_buffers(&socket);
        // Small acks (no echo of our request), the kernel's text on errors, filtered dumps.
        socket.set_cap_ack(true)?;
        socket.set_ext_ack(true)?;
        socket.set_netlink_get_strict_chk(true)?;
        setsockopt(
            &socket,
            sockopt::ReceiveTimeout,
            &TimeVal::new(REPLY_TIMEOUT.as_secs() as _, 0),
        )
        .map_err(io::Error::from)?;
        Ok(Fib {
            config,
            socket,
            seq: 1,
            tx: Vec::with_capacity(BATCH_BYTES + 4096),
            rx: Vec::with_capacity(RECEIVE_BYTES),
            writes: 0,
        })
    }

    /// Where and how this FIB programs.
    pub fn config(&self) -> &FibConfig {
        &self.config
    }

    /// Route messages written since `open` (the "zero writes" of an idle reconcile).
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Every IPv4 and IPv6 route in our table, of every protocol.
    pub fn dump(&mut self) -> Result<Vec<KernelRoute>, Error> {
        let mut routes = Vec::new();
        for ipv6 in [false, true] {
            // The last attempt is taken as it comes: a route that changed meanwhile is
            // caught by its notification or the next reconcile.
            for attempt in 1..=DUMP_ATTEMPTS {
                if self.dump_family(ipv6, attempt == DUMP_ATTEMPTS, &mut routes)? {
                    break;
                }
            }
        }
        Ok(routes)
    }

    /// Our routes now in the kernel (our protocol and table, our metric, a shape we program):
    /// a restarting daemon can keep them wanted until it has re-learned its routes.
    pub fn installed(&mut self) -> Result<RouteSet, Error> {
        let protocol = self.config.protocol.get();
        Ok(self
            .dump()?
            .into_iter()
            .filter(|r| r.protocol == protocol && r.metric == default_metric(r.prefix.is_ipv6()))
            .filter_map(|r| Route::new(r.prefix, r.kind?).ok())
            .collect())
    }

    /// Lists one family into `routes`; false if the kernel flagged the listing inconsistent
    /// and `take_inconsistent` is not set (then `routes` is left as it was).
    fn dump_family(
        &mut self,
        ipv6: bool,
        take_inconsistent: bool,
        routes: &mut Vec<KernelRoute>,
    ) -> Result<bool, Error> {
        let table = self.config.table.get();
        let seq = self.next_seq();
        self.tx.clear();
        let request = dump_request(ipv6, &self.config);
        encode(
            RouteNetlinkMessage::GetRoute(request),
            NLM_F_DUMP,
            seq,
            &mut self.tx,
        );
        self.socket.send(&self.tx, 0)?;
        let mut listed = Vec::new();
        let mut consistent = true;
        loop {
            self.receive()?;
            for msg in split_messages(&self.rx) {
                let Ok(bytes) = msg else {
                    tracing::warn!("truncated netlink message in a route dump");
                    continue;
                };
                let msg = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
                    Ok(msg) => msg,
                    Err(e) => {
                        tracing::warn!(error = %e, "undecodable message in a route dump");
                        continue;
                    }
                };
                if msg.header.sequence_number != seq {
                    continue;
                }
                consistent &= msg.header.flags & NLM_F_DUMP_INTR == 0;
                match msg.payload {
                    NetlinkPayload::Done(_) => {
                        let taken = consistent || take_inconsistent;
                        if taken {
                            routes.append(&mut listed);
                        }
                        return Ok(taken);
                    }
                    // IPv4 answers ENOENT for a table that does not exist yet: it is empty.
                    NetlinkPayload::Error(e) if e.raw_code() == -libc::ENOENT => return Ok(true),
                    NetlinkPayload::Error(e) => {
                        return Err(match e.raw_code().saturating_neg() {
                            libc::EPERM | libc::EACCES => Error::PermissionDenied,
                            errno => Error::Dump {
                                table,
                                cause: io::Error::from_raw_os_error(errno),
                            },
                        });
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m)) => {
                        listed.extend(parse_route(&m).filter(|r| r.table == table));
                    }
                    _ => {}
                }
            }
        }
    }

    /// Writes `changes`, batched; returns which the kernel refused. Removing a route that is
    /// already gone counts as done.
    pub fn apply(&mut self, changes: &[Change]) -> Result<Applied, Error> {
        let mut applied = Applied::default();
        for batch in self.batches(changes) {
            self.apply_batch(batch, &mut applied)?;
        }
        Ok(applied)
    }

    /// Splits `changes` into runs of about `BATCH_BYTES` of messages.
    fn batches<'c>(&self, changes: &'c [Change]) -> impl Iterator<Item = &'c [Change]> + use<'c> {
        // Route messages are 40-100 bytes; sizing by a fixed estimate keeps the split simple.
        const PER_ROUTE_ESTIMATE: usize = 72;
        changes.chunks((BATCH_BYTES / PER_ROUTE_ESTIMATE).max(1))
    }

    fn apply_batch(&mut self, batch: &[Change], applied: &mut Applied) -> Result<(), Error> {
        let Some(last_index) = batch.len().checked_sub(1) else {
            return Ok(());
        };
        self.tx.clear();
        let first = self.seq;
        let mut encoder = ChangeEncoder::default();
        for (i, change) in batch.iter().enumerate() {
            let seq = self.next_seq();
            // Only the last message is acked: it marks the end of the batch's replies.
            let ack = if i == last_index { NLM_F_ACK } else { 0 };
            let flags = match change {
                Change::Create(_) => NLM_F_CREATE | NLM_F_EXCL | ack,
                Change::Replace(_) => NLM_F_CREATE | NLM_F_REPLACE | ack,
                Change::Remove(_) => ack,
            };
            encoder.encode(change, &self.config, flags, seq, &mut self.tx);
        }
        let last = first.wrapping_add(last_index as u32);
        self.socket.send(&self.tx, 0)?;
        self.writes += batch.len() as u64;
        applied.written += batch.len();

        let mut denied = false;
        loop {
            self.receive()?;
            let mut done = false;
            for msg in split_messages(&self.rx).filter_map(Result::ok) {
                let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(msg) else {
                    tracing::warn!("undecodable netlink reply to a route write");
                    continue;
                };
                let NetlinkPayload::Error(err) = &msg.payload else {
                    continue;
                };
                let seq = msg.header.sequence_number;
                let index = seq.wrapping_sub(first) as usize;
                // Replies to earlier, abandoned batches fall outside and are ignored.
                let Some(change) = batch.get(index) else {
                    continue;
                };
                done |= seq == last;
                let errno = err.raw_code().saturating_neg();
                match (errno, change) {
                    (0, _) => {}
                    (libc::ESRCH, Change::Remove(_)) => {}
                    (libc::EPERM | libc::EACCES, _) => denied = true,
                    (errno, change) => applied.failures.push(RouteFailure {
                        change: change.clone(),
                        cause: Refusal::from_errno(
                            errno,
                            extack_message(msg.header.flags, &err.header),
                        ),
                    }),
                }
            }
            if done {
                return if denied {
                    Err(Error::PermissionDenied)
                } else {
                    Ok(())
                };
            }
        }
    }

    /// Lists our table, compares it with `wanted` and writes only the difference.
    pub fn reconcile(&mut self, wanted: &RouteSet) -> Result<Reconciled, Error> {
        let kernel = self.dump()?;
        let plan = plan(&kernel, wanted, &self.config);
        let applied = self.apply(&plan.changes)?;
        Ok(Reconciled {
            in_place: plan.in_place,
            conflicts: plan.conflicts,
            applied,
        })
    }

    fn next_seq(&mut self) -> u32 {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        seq
    }

    /// Receives one datagram into `rx`.
    fn receive(&mut self) -> Result<(), Error> {
        self.rx.clear();
        match self.socket.recv(&mut self.rx, 0) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Err(Error::Overrun),
            Err(e) => Err(Error::Socket(e)),
        }
    }
}

/// Large socket buffers: forced when privileged, else as large as `*mem_max` allows.
fn grow_buffers(socket: &Socket) {
    let size = SOCKET_BUFFER;
    if setsockopt(socket, sockopt::RcvBufForce, &size).is_err() {
        let _ = setsockopt(socket, sockopt::RcvBuf, &size);
    }
    if setsockopt(socket, sockopt::SndBufForce, &size).is_err() {
        let _ = setsockopt(socket, sockopt::SndBuf, &size);
    }
}
