//! A whole BGP message: dispatch on the header's type to each message's codec.

use bytes::{BufMut, BytesMut};

use crate::error::{EncodeError, SessionError};
use crate::header::{self, HEADER_LEN, MAX_MESSAGE_SIZE, MessageType};
use crate::notification::{ErrorCode, Notification};
use crate::open::Open;
use crate::route_refresh::RouteRefresh;
use crate::session::SessionContext;
use crate::update::Update;

/// Any BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE, boxed: it is large, and decoding it in place on the heap is cheaper than moving it
    /// through the call chain.
    Update(Box<Update>),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// Decodes one complete message, header included: `frame` must be exactly the length
    /// [`crate::Header::peek`] reported. UPDATE attribute errors that RFC 7606 does not make fatal come
    /// back inside [`Update::errors`]; every other error is a [`SessionError`].
    pub fn decode(frame: &[u8], ctx: &SessionContext) -> Result<Message, SessionError> {
        let header = header::frame(frame, ctx.max_message_size)?;
        let body = &frame[HEADER_LEN..];
        Ok(match header.msg_type {
            MessageType::Open => Message::Open(Open::decode(body)?),
            MessageType::Update => {
                let mut update = Box::<Update>::default();
                update.decode_body(body, ctx)?;
                Message::Update(update)
            }
            MessageType::Notification => {
                // The header check guarantees code and subcode are there.
                let (code, data) = body.split_at(2.min(body.len()));
                let (c, s) = (
                    code.first().copied().unwrap_or(0),
                    code.get(1).copied().unwrap_or(0),
                );
                Message::Notification(Notification::new(
                    ErrorCode::from_octets(c, s),
                    data.to_vec(),
                ))
            }
            MessageType::Keepalive => Message::Keepalive,
            MessageType::RouteRefresh => Message::RouteRefresh(RouteRefresh::decode(body, frame)?),
        })
    }

    /// Appends this message, header included. On error nothing is appended.
    pub fn encode(&self, ctx: &SessionContext, out: &mut BytesMut) -> Result<(), EncodeError> {
        let (msg_type, max) = match self {
            Message::Update(u) => return u.encode(ctx, out),
            Message::Open(_) => (MessageType::Open, MAX_MESSAGE_SIZE),
            Message::Notification(_) => (MessageType::Notification, ctx.max_message_size),
            Message::Keepalive => (MessageType::Keepalive, MAX_MESSAGE_SIZE),
            Message::RouteRefresh(_) => (MessageType::RouteRefresh, ctx.max_message_size),
        };
        let at = header::start(out, msg_type);
        let body = match self {
            Message::Open(o) => o.encode_body(out),
            Message::Notification(n) => {
                let (code, subcode) = n.code.octets();
                out.put_u8(code);
                out.put_u8(subcode);
                out.put_slice(&n.data);
                Ok(())
            }
            Message::RouteRefresh(r) => {
                r.encode_body(out);
                Ok(())
            }
            Message::Keepalive | Message::Update(_) => Ok(()),
        };
        match body {
            Ok(()) => header::finish(out, at, max),
            Err(e) => {
                out.truncate(at);
                Err(e)
            }
        }
    }

    /// The message type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }
}
