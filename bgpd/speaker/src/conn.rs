//! The two tasks of one TCP connection. The reader cuts the byte stream into messages, decodes
//! them with the session's receive context and hands them to the instance; it runs supervised,
//! so a panic closes this connection only. The writer batches queued messages into few write
//! system calls.
//!
//! The writer has two queues: control messages (OPEN, KEEPALIVE, NOTIFICATION), which go out
//! first so a keepalive never waits behind a table's worth of UPDATEs, and UPDATEs (with
//! ROUTE-REFRESH, whose BoRR/EoRR frame them), counted in octets. When that count passes
//! [`HIGH_MARK`] the instance stops generating UPDATEs for the peer (the RIB keeps a backlog
//! of changed prefixes instead) until the writer reports [`ConnEvent::Writable`] below
//! [`LOW_MARK`]: a slow or stalled peer holds at most a few MiB of encoded messages.
//!
//! The writer also runs the send hold timer (RFC 9687): when it has had messages to write and
//! could not write a single octet for the send hold time, the peer is not reading (a TCP zero
//! window while its KEEPALIVEs still arrive). It then tries the NOTIFICATION 8/0 without
//! waiting, arranges for the connection to be reset when it closes (the unsent octets are
//! discarded, not retried for many more minutes), and reports [`ConnEvent::SendHoldExpired`].

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bgpd_wire::{HEADER_LEN, Header, Message, SessionContext, SessionError};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::AbortHandle;

/// Identifies one TCP connection for the life of the instance.
pub type ConnId = u64;

/// Wire octets of received messages decoded and not yet handled by the instance, over all
/// connections: readers wait for the instance (and TCP pushes back on the peers) instead of
/// decoding ahead. A decoded UPDATE takes about six times its wire size.
pub const READ_BUDGET: usize = 2 << 20;

/// The read budget shared by every connection of an instance.
pub fn read_budget() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(READ_BUDGET))
}

/// A decoded message's share of the read budget, returned when dropped.
#[derive(Debug)]
pub struct Credit {
    _permit: OwnedSemaphorePermit,
}

/// What a connection reports to the instance.
#[derive(Debug)]
pub enum ConnEvent {
    /// A decoded message, holding its share of the read budget until it is handled.
    Message(ConnId, Message, Credit),
    /// Bytes that could not be decoded: send this NOTIFICATION and close.
    Malformed(ConnId, SessionError),
    /// The connection is gone (closed by the peer, an error, or a panic in the reader).
    Closed(ConnId, String),
    /// The UPDATE queue, reported full by [`ConnHandle::over_high_mark`], is below the low mark.
    Writable(ConnId),
    /// Nothing could be written for the send hold time (RFC 9687): the writer has stopped, and
    /// the connection is reset once the instance closes it.
    SendHoldExpired(ConnId),
}

/// What the writer is asked to do, ahead of queued UPDATEs.
#[derive(Debug)]
pub enum WriterCmd {
    /// Send these encoded control messages.
    Send(Bytes),
    /// Send the control messages before this, then close our side.
    Close,
}

/// Queued UPDATE octets above which the instance stops generating UPDATEs for the peer.
pub const HIGH_MARK: usize = 2 << 20;
/// Queued UPDATE octets below which a full queue is reported writable again.
pub const LOW_MARK: usize = 512 << 10;

/// The fill of a connection's UPDATE queue: octets queued by the instance and written by the
/// writer. Each counter has one writer and a cache line of its own, so queueing a message
/// needs no read-modify-write on a line the writer's thread also changes (fan-out to 1,000
/// peers queues a million messages).
#[derive(Debug, Default)]
struct Fill {
    /// Stored by the instance only.
    sent: Line<AtomicUsize>,
    /// Stored by the writer only.
    written: Line<AtomicUsize>,
    /// The instance waits for [`ConnEvent::Writable`].
    wake: Line<AtomicBool>,
}

/// A value on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Line<T>(T);

/// The instance's end of a connection.
#[derive(Debug)]
pub struct ConnHandle {
    /// Control messages to the writer.
    control: mpsc::UnboundedSender<WriterCmd>,
    /// UPDATEs to the writer.
    updates: mpsc::UnboundedSender<Bytes>,
    fill: Arc<Fill>,
    /// The writer's count as last read: it only grows, so a queue that is not full by this
    /// count is not full.
    seen_written: Cell<usize>,
    /// Hands the reader the receive context once OPENs are exchanged; dropping it ends the
    /// reader after the OPEN.
    pub context: Option<oneshot::Sender<SessionContext>>,
    /// Stops the reader.
    pub reader: AbortHandle,
    /// Our address on the connection.
    pub local: SocketAddr,
}

impl ConnHandle {
    /// Queues encoded control messages, to go out before any queued UPDATE.
    pub fn send_control(&self, bytes: Bytes) {
        // A closed writer means the connection is going away; its reader reports that.
        let _ = self.control.send(WriterCmd::Send(bytes));
    }

    /// Queues encoded UPDATEs (or ROUTE-REFRESHes, in order with them).
    pub fn send(&self, bytes: Bytes) {
        let sent = self.fill.sent.0.load(Ordering::Relaxed) + bytes.len();
        self.fill.sent.0.store(sent, Ordering::Release);
        // A closed writer means the connection is going away; its reader reports that.
        let _ = self.updates.send(bytes);
    }

    /// Octets of UPDATEs queued and not yet written.
    pub fn queued(&self) -> usize {
        let written = self.fill.written.0.load(Ordering::SeqCst);
        self.seen_written.set(written);
        self.fill
            .sent
            .0
            .load(Ordering::Relaxed)
            .saturating_sub(written)
    }

    /// Whether the UPDATE queue is above [`HIGH_MARK`]. When it is, the connection reports
    /// [`ConnEvent::Writable`] once it falls below [`LOW_MARK`].
    pub fn over_high_mark(&self) -> bool {
        let sent = self.fill.sent.0.load(Ordering::Relaxed);
        if sent.saturating_sub(self.seen_written.get()) <= HIGH_MARK || self.queued() <= HIGH_MARK {
            return false;
        }
        self.fill.wake.0.store(true, Ordering::SeqCst);
        // The writer may have drained the queue before it could see the request: then no
        // event comes, and the queue is not full after all.
        !(self.queued() < LOW_MARK && self.fill.wake.0.swap(false, Ordering::SeqCst))
    }

    /// Sends the queued control messages and closes; queued UPDATEs are dropped (the session
    /// is over). The reader stops at once.
    pub fn close(&self) {
        let _ = self.control.send(WriterCmd::Close);
        self.reader.abort();
    }
}

/// Starts the reader and writer of `stream`, reporting to `events`. The writer gives up after
/// `send_hold` without progress while it has something to write.
pub fn spawn(
    id: ConnId,
    stream: TcpStream,
    events: mpsc::Sender<ConnEvent>,
    budget: Arc<Semaphore>,
    send_hold: Duration,
) -> std::io::Result<ConnHandle> {
    let local = stream.local_addr()?;
    let (rd, wr) = stream.into_split();
    let (context_tx, context_rx) = oneshot::channel();
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let (updates_tx, updates_rx) = mpsc::unbounded_channel();
    let fill = Arc::new(Fill::default());
    tokio::spawn(
        Writer {
            id,
            wr,
            control: control_rx,
            updates: updates_rx,
            fill: Arc::clone(&fill),
            events: events.clone(),
            send_hold,
        }
        .run(),
    );
    let reader = tokio::spawn(read_loop(id, rd, context_rx, events.clone(), budget));
    let abort = reader.abort_handle();
    // Supervisor: whatever ends the reader (return, panic), the instance hears of it once.
    tokio::spawn(async move {
        let reason = match reader.await {
            Ok(reason) => reason,
            Err(e) if e.is_panic() => {
                tracing::error!(conn = id, "reader panicked; closing this connection only");
                "reader panicked".to_string()
            }
            Err(_) => "closed".to_string(),
        };
        let _ = events.send(ConnEvent::Closed(id, reason)).await;
    });
    Ok(ConnHandle {
        control: control_tx,
        updates: updates_tx,
        fill,
        seen_written: Cell::new(0),
        context: Some(context_tx),
        reader: abort,
        local,
    })
}

/// Read buffer size; grows for messages that do not fit.
const READ_CHUNK: usize = 64 * 1024;

async fn read_loop(
    id: ConnId,
    mut rd: OwnedReadHalf,
    context: oneshot::Receiver<SessionContext>,
    events: mpsc::Sender<ConnEvent>,
    budget: Arc<Semaphore>,
) -> String {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut ctx = SessionContext::default();
    let mut context = Some(context);
    loop {
        loop {
            let header = match Header::peek(&buf, ctx.max_message_size) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => {
                    let _ = events.send(ConnEvent::Malformed(id, e)).await;
                    return "malformed header".into();
                }
            };
            if buf.len() < header.len {
                buf.reserve(header.len - buf.len());
                break;
            }
            // At most 65,535, far below the budget.
            let share = u32::try_from(header.len).unwrap_or(u32::MAX);
            let Ok(credit) = Arc::clone(&budget).acquire_many_owned(share).await else {
                return "instance stopped".into();
            };
            let frame = buf.split_to(header.len);
            match Message::decode(&frame, &ctx) {
                Ok(msg) => {
                    let is_open = matches!(msg, Message::Open(_));
                    let event = ConnEvent::Message(id, msg, Credit { _permit: credit });
                    if events.send(event).await.is_err() {
                        return "instance stopped".into();
                    }
                    // What follows the OPEN is decoded with what it negotiated.
                    if is_open && let Some(rx) = context.take() {
                        match rx.await {
                            Ok(c) => ctx = c,
                            Err(_) => return "session refused".into(),
                        }
                    }
                }
                Err(e) => {
                    let _ = events.send(ConnEvent::Malformed(id, e)).await;
                    return "malformed message".into();
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(READ_CHUNK);
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) => return "closed by peer".into(),
            Ok(_) => {}
            Err(e) => return format!("read: {e}"),
        }
    }
}

/// Coalesce queued messages up to this size per write: also the most a KEEPALIVE waits behind.
const WRITE_BATCH: usize = 256 * 1024;

/// The writing half of a connection with its two queues.
struct Writer {
    id: ConnId,
    wr: OwnedWriteHalf,
    control: mpsc::UnboundedReceiver<WriterCmd>,
    updates: mpsc::UnboundedReceiver<Bytes>,
    fill: Arc<Fill>,
    events: mpsc::Sender<ConnEvent>,
    /// RFC 9687 send hold time: the longest a write may make no progress.
    send_hold: Duration,
}

/// Why a batch could not be written.
enum WriteFailed {
    /// The connection is gone; the reader reports it.
    Closed,
    /// No octet went out for the send hold time; `written` of the batch did.
    Stalled { written: usize },
}

/// What the writer took from its queues.
enum Taken {
    Control(WriterCmd),
    Update(Bytes),
}

impl Writer {
    async fn run(mut self) {
        let mut batch = BytesMut::new();
        let mut written = 0usize;
        loop {
            // Anything queued, control first; else wait for either.
            let first = match self.control.try_recv() {
                Ok(c) => Some(Taken::Control(c)),
                Err(_) => match self.updates.try_recv() {
                    Ok(u) => Some(Taken::Update(u)),
                    Err(_) => tokio::select! {
                        biased;
                        c = self.control.recv() => c.map(Taken::Control),
                        u = self.updates.recv() => u.map(Taken::Update),
                    },
                },
            };
            // Both queues close together, when the instance drops the connection.
            let Some(first) = first else { return };
            let mut close = false;
            let mut updates = 0;
            let mut next = Some(first);
            while let Some(taken) = next.take() {
                match taken {
                    Taken::Control(WriterCmd::Send(b)) => batch.extend_from_slice(&b),
                    Taken::Control(WriterCmd::Close) => {
                        close = true;
                        break;
                    }
                    Taken::Update(b) => {
                        updates += b.len();
                        batch.extend_from_slice(&b);
                    }
                }
                if batch.len() < WRITE_BATCH {
                    next = match self.control.try_recv() {
                        Ok(c) => Some(Taken::Control(c)),
                        Err(_) => self.updates.try_recv().ok().map(Taken::Update),
                    };
                }
            }
            if !batch.is_empty() {
                match self.write(&batch).await {
                    Ok(()) => {}
                    Err(WriteFailed::Closed) => return,
                    Err(WriteFailed::Stalled { written }) => {
                        self.give_up(&batch, written).await;
                        return;
                    }
                }
                batch.clear();
                if batch.capacity() > WRITE_BATCH * 2 {
                    // One huge message should not pin its buffer for the session's life.
                    batch = BytesMut::new();
                }
            }
            if close {
                let _ = self.wr.shutdown().await;
                return;
            }
            if updates > 0 {
                written += updates;
                self.fill.written.0.store(written, Ordering::SeqCst);
                if self.fill.wake.0.load(Ordering::SeqCst)
                    && self
                        .fill
                        .sent
                        .0
                        .load(Ordering::Acquire)
                        .saturating_sub(written)
                        < LOW_MARK
                    && self.fill.wake.0.swap(false, Ordering::SeqCst)
                    && self
                        .events
                        .send(ConnEvent::Writable(self.id))
                        .await
                        .is_err()
                {
                    return;
                }
            }
        }
    }
}

impl Writer {
    /// Writes `batch`, each write call allowed the send hold time to make progress.
    async fn write(&mut self, batch: &[u8]) -> Result<(), WriteFailed> {
        let mut written = 0;
        while written < batch.len() {
            match tokio::time::timeout(self.send_hold, self.wr.write(&batch[written..])).await {
                Ok(Ok(0) | Err(_)) => return Err(WriteFailed::Closed),
                Ok(Ok(n)) => written += n,
                Err(_) => return Err(WriteFailed::Stalled { written }),
            }
        }
        Ok(())
    }

    /// The send hold timer expired: the NOTIFICATION is tried once without waiting, and only
    /// where it cannot land inside a half-written message; closing then resets the connection.
    async fn give_up(&mut self, batch: &[u8], written: usize) {
        tracing::warn!(
            conn = self.id,
            "send hold timer expired: the peer reads nothing"
        );
        if at_message_boundary(batch, written) {
            let mut out = BytesMut::new();
            let notification = Message::Notification(crate::fsm::send_hold_expired());
            if notification
                .encode(&SessionContext::default(), &mut out)
                .is_ok()
            {
                let _ = self.wr.try_write(&out);
            }
        }
        // Linger 0: the close sends RST and drops what the peer never took.
        let _ = socket2::SockRef::from(self.wr.as_ref()).set_linger(Some(Duration::ZERO));
        let _ = self.events.send(ConnEvent::SendHoldExpired(self.id)).await;
    }
}

/// Whether `at` is where a message of `batch` (whole messages back to back) begins or ends.
fn at_message_boundary(batch: &[u8], at: usize) -> bool {
    let mut start = 0;
    while start < at {
        let Some(len) = batch.get(start + 16..start + 18) else {
            return false;
        };
        start += usize::from(u16::from_be_bytes([len[0], len[1]])).max(HEADER_LEN);
    }
    start == at
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use tokio::net::TcpListener;

    /// A connected pair on loopback: our handle on one end, the raw peer socket on the other.
    async fn pair() -> (ConnHandle, mpsc::Receiver<ConnEvent>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ours, theirs) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (events_tx, events) = mpsc::channel(16);
        let handle = spawn(
            1,
            ours.unwrap(),
            events_tx,
            read_budget(),
            Duration::from_secs(600),
        )
        .unwrap();
        (handle, events, theirs.unwrap().0)
    }

    #[tokio::test]
    async fn a_keepalive_overtakes_queued_updates_and_a_drained_queue_reports_writable() {
        let (handle, mut events, mut peer) = pair().await;
        // 32 MiB of UPDATE octets (zeros) while the peer reads nothing.
        let chunk = Bytes::from(vec![0u8; 1 << 20]);
        for _ in 0..32 {
            handle.send(chunk.clone());
        }
        assert!(handle.over_high_mark());
        // Let the writer fill the socket buffers and block.
        tokio::time::sleep(Duration::from_millis(200)).await;
        handle.send_control(Bytes::from_static(&[0xff; 19]));
        let mut seen = 0usize;
        let mut at = None;
        let mut buf = vec![0u8; 1 << 16];
        while at.is_none() {
            let n = peer.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early");
            if let Some(i) = buf[..n].iter().position(|b| *b == 0xff) {
                at = Some(seen + i);
            }
            seen += n;
        }
        let at = at.expect("the KEEPALIVE came after the queued UPDATEs");
        // Socket buffers (a few MiB on loopback) and one write batch may be ahead of it, not
        // the whole queue.
        assert!(at < 16 << 20, "KEEPALIVE at octet {at}");
        // Reading the rest lets the queue drain: the writer reports it writable once.
        let drain = async {
            loop {
                if peer.read(&mut buf).await.unwrap() == 0 {
                    break;
                }
            }
        };
        let writable = async {
            loop {
                match events.recv().await {
                    Some(ConnEvent::Writable(1)) => break,
                    Some(_) => {}
                    None => panic!("events closed"),
                }
            }
            assert!(handle.queued() < LOW_MARK);
            handle.close();
        };
        tokio::time::timeout(Duration::from_secs(20), async {
            tokio::join!(drain, writable)
        })
        .await
        .expect("the drained queue was reported writable");
    }

    #[test]
    fn message_boundaries_follow_the_length_fields() {
        let mut batch = vec![0u8; 19 + 23];
        batch[16..18].copy_from_slice(&19u16.to_be_bytes());
        batch[19 + 16..19 + 18].copy_from_slice(&23u16.to_be_bytes());
        for (at, boundary) in [(0, true), (10, false), (19, true), (30, false), (42, true)] {
            assert_eq!(at_message_boundary(&batch, at), boundary, "at {at}");
        }
        assert!(!at_message_boundary(&batch[..30], 25));
    }

    #[tokio::test]
    async fn a_queue_below_the_high_mark_is_not_full() {
        let (handle, _events, _peer) = pair().await;
        handle.send(Bytes::from(vec![0u8; HIGH_MARK]));
        assert!(!handle.over_high_mark());
        handle.close();
    }
}
