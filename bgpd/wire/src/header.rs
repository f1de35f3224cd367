//! The 19-octet message header (RFC 4271 §4.1) and framing: how long the next message in a
//! byte stream is, checked as RFC 4271 §6.1 asks before the body is read.

use bytes::{BufMut, BytesMut};

use crate::error::{EncodeError, Malformed, SessionError};
use crate::notification::HeaderError;

/// Length of the header: marker (16), length (2), type (1).
pub const HEADER_LEN: usize = 19;
/// The message size limit without the extended message capability (RFC 4271 §4.1).
pub const MAX_MESSAGE_SIZE: usize = 4096;
/// The message size limit with the extended message capability (RFC 8654).
pub const EXTENDED_MAX_MESSAGE_SIZE: usize = 65535;

/// The five message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// OPEN (1).
    Open = 1,
    /// UPDATE (2).
    Update = 2,
    /// NOTIFICATION (3).
    Notification = 3,
    /// KEEPALIVE (4).
    Keepalive = 4,
    /// ROUTE-REFRESH (5, RFC 2918).
    RouteRefresh = 5,
}

impl MessageType {
    fn from_octet(t: u8) -> Option<Self> {
        Some(match t {
            1 => MessageType::Open,
            2 => MessageType::Update,
            3 => MessageType::Notification,
            4 => MessageType::Keepalive,
            5 => MessageType::RouteRefresh,
            _ => return None,
        })
    }

    /// The (minimum, maximum) lengths for this type under a session limit of `max`.
    /// OPEN and KEEPALIVE stay within 4096 even with extended messages (RFC 8654 §3).
    fn length_range(self, max: usize) -> (usize, usize) {
        match self {
            MessageType::Open => (29, MAX_MESSAGE_SIZE),
            MessageType::Update => (23, max),
            MessageType::Notification => (21, max),
            MessageType::Keepalive => (HEADER_LEN, HEADER_LEN),
            // A wrong ROUTE-REFRESH length has its own error (RFC 7313 §5), raised by its decoder.
            MessageType::RouteRefresh => (HEADER_LEN, max),
        }
    }
}

/// A checked header: the message type and the total length including the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The message type.
    pub msg_type: MessageType,
    /// Total message length, header included.
    pub len: usize,
}

impl Header {
    /// Checks the header at the start of `buf` (RFC 4271 §6.1). `Ok(None)` means fewer than 19
    /// octets have arrived. The message is complete once `buf.len() >= header.len`.
    pub fn peek(buf: &[u8], max_message_size: usize) -> Result<Option<Header>, SessionError> {
        let Some(head) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        if head
            .first_chunk::<16>()
            .is_none_or(|m| u128::from_ne_bytes(*m) != u128::MAX)
        {
            return Err(SessionError::header(
                Malformed::Marker,
                HeaderError::ConnectionNotSynchronized,
                Vec::new(),
            ));
        }
        let len = u16::from_be_bytes([head[16], head[17]]);
        let t = head[18];
        let bad_length = || {
            SessionError::header(
                Malformed::MessageLength { len, msg_type: t },
                HeaderError::BadMessageLength,
                len.to_be_bytes().to_vec(),
            )
        };
        let size = usize::from(len);
        if size < HEADER_LEN || size > max_message_size {
            return Err(bad_length());
        }
        let msg_type = MessageType::from_octet(t).ok_or_else(|| {
            SessionError::header(
                Malformed::MessageType(t),
                HeaderError::BadMessageType,
                vec![t],
            )
        })?;
        let (min, max) = msg_type.length_range(max_message_size);
        if size < min || size > max {
            return Err(bad_length());
        }
        Ok(Some(Header {
            msg_type,
            len: size,
        }))
    }
}

/// The checked header of `frame`, which must be exactly one whole message.
pub(crate) fn frame(frame: &[u8], max_message_size: usize) -> Result<Header, SessionError> {
    match Header::peek(frame, max_message_size)? {
        Some(h) if h.len == frame.len() => Ok(h),
        _ => {
            let len = u16::try_from(frame.len()).unwrap_or(u16::MAX);
            Err(SessionError::header(
                Malformed::MessageLength {
                    len,
                    msg_type: frame.get(18).copied().unwrap_or(0),
                },
                HeaderError::BadMessageLength,
                len.to_be_bytes().to_vec(),
            ))
        }
    }
}

/// Writes a header with a zero length; returns where the message starts for [`finish`].
pub(crate) fn start(out: &mut BytesMut, msg_type: MessageType) -> usize {
    let at = out.len();
    out.put_bytes(0xff, 16);
    out.put_u16(0);
    out.put_u8(msg_type as u8);
    at
}

/// Fills in the length of the message that starts at `at`, enforcing `max`.
pub(crate) fn finish(out: &mut BytesMut, at: usize, max: usize) -> Result<(), EncodeError> {
    let len = out.len() - at;
    let Some(len16) = u16::try_from(len).ok().filter(|_| len <= max) else {
        out.truncate(at);
        return Err(EncodeError::TooLarge { len, max });
    };
    out[at + 16..at + 18].copy_from_slice(&len16.to_be_bytes());
    Ok(())
}
