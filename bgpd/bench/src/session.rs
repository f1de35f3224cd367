//! A bare iBGP client session, as much as a tester needs: connect from a chosen source address,
//! exchange OPENs, then a writer task that interleaves KEEPALIVEs with whatever the tester sends
//! (so a slow reflector never sees our hold timer expire while we blast), and a framing reader.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use bgpd_wire::{
    AfiSafi, Asn, Capability, GracefulRestart, Header, Message, Negotiated, Open, SessionContext,
    negotiate,
};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// What ends a tester's session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The socket failed.
    #[error("{peer}: {source}")]
    Io {
        /// Our source address, to tell sessions apart.
        peer: Ipv4Addr,
        /// The socket error.
        source: std::io::Error,
    },
    /// The reflector sent bytes the codec rejects.
    #[error("{peer}: malformed message from the reflector: {source}")]
    Malformed {
        /// Our source address.
        peer: Ipv4Addr,
        /// The codec's verdict.
        source: bgpd_wire::SessionError,
    },
    /// The reflector sent a NOTIFICATION.
    #[error("{peer}: the reflector sent NOTIFICATION {notification}")]
    Notified {
        /// Our source address.
        peer: Ipv4Addr,
        /// The NOTIFICATION, decoded to text.
        notification: String,
    },
    /// The reflector sent something the FSM does not expect now (or its OPEN is wrong).
    #[error("{peer}: {what}")]
    Protocol {
        /// Our source address.
        peer: Ipv4Addr,
        /// What was wrong.
        what: String,
    },
    /// The reflector closed the connection.
    #[error("{peer}: the reflector closed the connection")]
    Closed {
        /// Our source address.
        peer: Ipv4Addr,
    },
    /// The session did not come up in time.
    #[error("{peer}: not Established within {after:?} (last error: {last})")]
    Timeout {
        /// Our source address.
        peer: Ipv4Addr,
        /// How long we tried.
        after: Duration,
        /// Why the last attempt failed.
        last: String,
    },
}

/// Where and as whom a tester session connects.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// Our source address, also our BGP identifier.
    pub local: Ipv4Addr,
    /// The reflector's address and port.
    pub reflector: SocketAddrV4,
    /// The AS of both ends (iBGP).
    pub asn: Asn,
    /// Hold time we offer, in seconds.
    pub hold_time: u16,
}

/// An Established session: a reader, a handle to the writer task, and how to encode for it.
#[derive(Debug)]
pub struct Established {
    /// Frames what the reflector sends.
    pub reader: Reader,
    /// Queues bytes for the writer task.
    pub writer: Writer,
    /// How to encode messages for this session (message size, AS width).
    pub send: SessionContext,
    /// The reflector announced graceful restart, so it ends its initial update with an
    /// End-of-RIB (RFC 4724 §2).
    pub sends_end_of_rib: bool,
}

impl Established {
    /// Waits for the reflector's End-of-RIB, the sign that it has finished its start-up work
    /// for this session (FRR, for one, holds the first updates to a new peer for a while);
    /// false, without waiting, if it does not send one, or if `within` passes first.
    pub async fn initial_sync(&mut self, within: Duration) -> Result<bool, SessionError> {
        if !self.sends_end_of_rib {
            return Ok(false);
        }
        let deadline = Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.reader.next()).await {
                Err(_) => return Ok(false),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(Message::Update(u))) if u.end_of_rib_family().is_some() => return Ok(true),
                Ok(Ok(_)) => {}
            }
        }
    }
}

/// Connects and completes the OPEN exchange, retrying while the reflector is not yet
/// listening or refuses us, until `within` has passed.
pub async fn establish(endpoint: Endpoint, within: Duration) -> Result<Established, SessionError> {
    let deadline = Instant::now() + within;
    loop {
        let attempt = tokio::time::timeout_at(deadline, try_establish(endpoint)).await;
        let last = match attempt {
            Ok(Ok(session)) => return Ok(session),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_string(),
        };
        if Instant::now() + Duration::from_millis(200) >= deadline {
            return Err(SessionError::Timeout {
                peer: endpoint.local,
                after: within,
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn try_establish(endpoint: Endpoint) -> Result<Established, SessionError> {
    let peer = endpoint.local;
    let io = |source| SessionError::Io { peer, source };
    let socket = TcpSocket::new_v4().map_err(io)?;
    socket
        .bind(SocketAddr::V4(SocketAddrV4::new(endpoint.local, 0)))
        .map_err(io)?;
    let stream = socket
        .connect(SocketAddr::V4(endpoint.reflector))
        .await
        .map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    let (read, mut write) = stream.into_split();

    let ours = Open::new(
        endpoint.asn,
        endpoint.hold_time,
        endpoint.local,
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            // Largest UPDATEs the reflector allows (RFC 8654) when it offers them too.
            Capability::ExtendedMessage,
            // Graceful-restart aware, no families kept: some reflectors (FRR) send End-of-RIB
            // only to peers that announce this, and End-of-RIB tells us they are ready.
            Capability::GracefulRestart(GracefulRestart {
                restarting: false,
                notification: false,
                restart_time: 0,
                families: Vec::new(),
            }),
        ],
    );
    let mut out = BytesMut::new();
    encode(
        &Message::Open(ours.clone()),
        &SessionContext::default(),
        peer,
        &mut out,
    )?;
    write.write_all(&out).await.map_err(io)?;

    let mut reader = Reader::new(read, SessionContext::default(), peer);
    let theirs = match reader.next().await? {
        Message::Open(open) => open,
        other => return Err(unexpected(peer, &other, "OPEN")),
    };
    if theirs.asn() != endpoint.asn {
        return Err(SessionError::Protocol {
            peer,
            what: format!(
                "reflector AS {} is not ours ({})",
                theirs.asn().0,
                endpoint.asn.0
            ),
        });
    }
    let negotiated: Negotiated = negotiate(&ours, &theirs);
    reader.ctx = negotiated.receive.clone();
    out.clear();
    encode(&Message::Keepalive, &negotiated.send, peer, &mut out)?;
    write.write_all(&out).await.map_err(io)?;
    match reader.next().await? {
        Message::Keepalive => {}
        other => return Err(unexpected(peer, &other, "KEEPALIVE")),
    }
    // RFC 4271 §4.4: a third of the hold time; hold time 0 means no keepalives at all.
    let every = (negotiated.hold_time > 0)
        .then(|| Duration::from_secs(u64::from(negotiated.hold_time.max(3) / 3)));
    let writer = Writer::spawn(write, every, &negotiated.send, peer)?;
    Ok(Established {
        reader,
        writer,
        send: negotiated.send,
        sends_end_of_rib: negotiated.peer_graceful_restart.is_some(),
    })
}

fn unexpected(peer: Ipv4Addr, got: &Message, wanted: &str) -> SessionError {
    SessionError::Protocol {
        peer,
        what: format!("expected {wanted}, got {:?}", got.message_type()),
    }
}

fn encode(
    message: &Message,
    ctx: &SessionContext,
    peer: Ipv4Addr,
    out: &mut BytesMut,
) -> Result<(), SessionError> {
    message
        .encode(ctx, out)
        .map_err(|e| SessionError::Protocol {
            peer,
            what: format!("cannot encode {:?}: {e}", message.message_type()),
        })
}

/// Reads whole messages from the reflector and decodes them.
#[derive(Debug)]
pub struct Reader {
    half: OwnedReadHalf,
    buf: BytesMut,
    ctx: SessionContext,
    peer: Ipv4Addr,
}

/// Bytes asked of the socket per read: room for many full-size UPDATEs.
const READ_CHUNK: usize = 256 * 1024;

impl Reader {
    fn new(half: OwnedReadHalf, ctx: SessionContext, peer: Ipv4Addr) -> Reader {
        Reader {
            half,
            buf: BytesMut::with_capacity(READ_CHUNK),
            ctx,
            peer,
        }
    }

    /// The next message; a NOTIFICATION or a closed connection is an error.
    pub async fn next(&mut self) -> Result<Message, SessionError> {
        let peer = self.peer;
        loop {
            let header = Header::peek(&self.buf, self.ctx.max_message_size)
                .map_err(|source| SessionError::Malformed { peer, source })?;
            if let Some(h) = header
                && self.buf.len() >= h.len
            {
                let frame = self.buf.split_to(h.len);
                let message = Message::decode(&frame, &self.ctx)
                    .map_err(|source| SessionError::Malformed { peer, source })?;
                if let Message::Notification(n) = message {
                    return Err(SessionError::Notified {
                        peer,
                        notification: n.to_string(),
                    });
                }
                return Ok(message);
            }
            self.buf.reserve(READ_CHUNK);
            let read = self
                .half
                .read_buf(&mut self.buf)
                .await
                .map_err(|source| SessionError::Io { peer, source })?;
            if read == 0 {
                return Err(SessionError::Closed { peer });
            }
        }
    }
}

/// The sending side: a task that writes queued bytes and a KEEPALIVE whenever one is due.
#[derive(Debug)]
pub struct Writer {
    queue: mpsc::Sender<Bytes>,
    task: JoinHandle<Result<(), SessionError>>,
    peer: Ipv4Addr,
}

/// Chunks queued ahead of the socket: enough to keep it busy, little enough to keep
/// KEEPALIVEs timely.
const QUEUE_DEPTH: usize = 4;

impl Writer {
    fn spawn(
        half: OwnedWriteHalf,
        every: Option<Duration>,
        ctx: &SessionContext,
        peer: Ipv4Addr,
    ) -> Result<Writer, SessionError> {
        let mut keepalive = BytesMut::new();
        encode(&Message::Keepalive, ctx, peer, &mut keepalive)?;
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        let task = tokio::spawn(write_loop(half, rx, keepalive.freeze(), every, peer));
        Ok(Writer { queue, task, peer })
    }

    /// Queues `bytes` (whole messages) to be written after what is queued already.
    pub async fn send(&self, bytes: Bytes) -> Result<(), SessionError> {
        if self.queue.send(bytes).await.is_ok() {
            return Ok(());
        }
        Err(SessionError::Closed { peer: self.peer })
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn write_loop(
    mut half: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
    keepalive: Bytes,
    every: Option<Duration>,
    peer: Ipv4Addr,
) -> Result<(), SessionError> {
    let io = |source| SessionError::Io { peer, source };
    // Without keepalives the timer never fires in practice.
    let period = every.unwrap_or(Duration::from_secs(86_400 * 365));
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = tick.tick() => half.write_all(&keepalive).await.map_err(io)?,
            queued = rx.recv() => match queued {
                Some(bytes) => half.write_all(&bytes).await.map_err(io)?,
                None => return Ok(()),
            },
        }
    }
}
