//! The two tasks of one TCP connection. The reader cuts the byte stream into messages, decodes
//! them with the session's receive context and hands them to the instance; it runs supervised,
//! so a panic closes this connection only. The writer batches queued messages into few write
//! system calls.

use std::net::SocketAddr;

use bgpd_wire::{Header, Message, SessionContext, SessionError};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

/// Identifies one TCP connection for the life of the instance.
pub type ConnId = u64;

/// What a connection reports to the instance.
#[derive(Debug)]
pub enum ConnEvent {
    /// A decoded message.
    Message(ConnId, Message),
    /// Bytes that could not be decoded: send this NOTIFICATION and close.
    Malformed(ConnId, SessionError),
    /// The connection is gone (closed by the peer, an error, or a panic in the reader).
    Closed(ConnId, String),
}

/// What the writer is asked to do.
#[derive(Debug)]
pub enum WriterCmd {
    /// Send these encoded messages.
    Send(Bytes),
    /// Send what is queued, then close our side.
    Close,
}

/// The instance's end of a connection.
#[derive(Debug)]
pub struct ConnHandle {
    /// Queue to the writer.
    pub out: mpsc::UnboundedSender<WriterCmd>,
    /// Hands the reader the receive context once OPENs are exchanged; dropping it ends the
    /// reader after the OPEN.
    pub context: Option<oneshot::Sender<SessionContext>>,
    /// Stops the reader.
    pub reader: AbortHandle,
    /// Our address on the connection.
    pub local: SocketAddr,
}

impl ConnHandle {
    /// Queues encoded messages.
    pub fn send(&self, bytes: Bytes) {
        // A closed writer means the connection is going away; its reader reports that.
        let _ = self.out.send(WriterCmd::Send(bytes));
    }

    /// Flushes and closes; the reader stops at once.
    pub fn close(&self) {
        let _ = self.out.send(WriterCmd::Close);
        self.reader.abort();
    }
}

/// Starts the reader and writer of `stream`, reporting to `events`.
pub fn spawn(
    id: ConnId,
    stream: TcpStream,
    events: mpsc::Sender<ConnEvent>,
) -> std::io::Result<ConnHandle> {
    let local = stream.local_addr()?;
    let (rd, wr) = stream.into_split();
    let (context_tx, context_rx) = oneshot::channel();
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    tokio::spawn(write_loop(wr, out_rx));
    let reader = tokio::spawn(read_loop(id, rd, context_rx, events.clone()));
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
        out: out_tx,
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
            let frame = buf.split_to(header.len);
            match Message::decode(&frame, &ctx) {
                Ok(msg) => {
                    let is_open = matches!(msg, Message::Open(_));
                    if events.send(ConnEvent::Message(id, msg)).await.is_err() {
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

/// Coalesce queued messages up to this size per write.
const WRITE_BATCH: usize = 256 * 1024;

async fn write_loop(mut wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<WriterCmd>) {
    let mut batch = BytesMut::new();
    while let Some(first) = rx.recv().await {
        let mut close = false;
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                WriterCmd::Send(b) => batch.extend_from_slice(&b),
                WriterCmd::Close => {
                    close = true;
                    break;
                }
            }
            if batch.len() < WRITE_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            if wr.write_all(&batch).await.is_err() {
                return;
            }
            batch.clear();
        }
        if close {
            let _ = wr.shutdown().await;
            return;
        }
    }
}
