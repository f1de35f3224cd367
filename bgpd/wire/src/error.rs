//! What can be wrong with received bytes, and what the receiver must do about it.
//!
//! Two outcomes exist (RFC 7606 §2):
//! - [`SessionError`]: the message cannot be used at all. Send its [`Notification`] and close the
//!   session ("session reset", RFC 4271 §6). Decoding returns it as `Err`.
//! - [`AttrError`]: one path attribute of an UPDATE is malformed; the UPDATE still decodes and
//!   carries the error in [`crate::Update::errors`] with its [`AttrAction`]: "treat-as-withdraw"
//!   (every prefix in the UPDATE is withdrawn) or "attribute discard" (the attribute is dropped
//!   and the route kept).

use std::net::Ipv4Addr;

use crate::asn::Asn;
use crate::notification::{
    ErrorCode, HeaderError, Notification, OpenError, RouteRefreshError, UpdateError,
};

/// Why bytes were rejected; the `Display` text is for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The 16-octet marker is not all ones (RFC 4271 §6.1).
    #[error("marker is not all ones")]
    Marker,
    /// The length field is out of range for the message type (RFC 4271 §6.1).
    #[error("message length {len} is invalid for type {msg_type}")]
    MessageLength {
        /// The length field.
        len: u16,
        /// The type octet.
        msg_type: u8,
    },
    /// The type octet names no message we know (RFC 4271 §6.1).
    #[error("unknown message type {0}")]
    MessageType(u8),
    /// The OPEN version is not 4 (RFC 4271 §6.2).
    #[error("unsupported BGP version {0}")]
    Version(u8),
    /// The peer's AS is not the configured one (RFC 4271 §6.2).
    #[error("peer AS is {got}, expected {expected}")]
    PeerAs {
        /// The configured AS.
        expected: Asn,
        /// The AS the OPEN announces.
        got: Asn,
    },
    /// The hold time is 1 or 2 seconds (RFC 4271 §6.2).
    #[error("hold time {0} s is not acceptable")]
    HoldTime(u16),
    /// The BGP identifier is zero or equal to ours (RFC 6286 §2.2).
    #[error("BGP identifier {0} is not acceptable")]
    BgpId(Ipv4Addr),
    /// The optional parameters do not fit their length fields (RFC 4271 §6.2: Unspecific).
    #[error("optional parameters are malformed")]
    OptionalParameters,
    /// An optional parameter type other than capabilities (RFC 4271 §6.2).
    #[error("unsupported optional parameter type {0}")]
    UnsupportedOptionalParameter(u8),
    /// Withdrawn-routes and attribute lengths do not fit the message (RFC 4271 §6.3).
    #[error("UPDATE lengths are inconsistent")]
    AttributeList,
    /// An attribute runs past the attribute section (RFC 7606 §4).
    #[error("attribute overruns the attribute section")]
    AttributeOverrun,
    /// A well-known attribute type we do not know (RFC 4271 §6.3).
    #[error("unrecognized well-known attribute {0}")]
    UnrecognizedWellKnown(u8),
    /// A well-known mandatory attribute is missing (RFC 7606 §3 d).
    #[error("missing well-known attribute {0}")]
    MissingWellKnown(u8),
    /// The Optional or Transitive flag conflicts with the type (RFC 7606 §3 c).
    #[error("attribute {type_code} has flags {flags:#04x}")]
    AttributeFlags {
        /// The attribute type.
        type_code: u8,
        /// The flags octet.
        flags: u8,
    },
    /// An attribute's length is wrong for its type.
    #[error("attribute {type_code} has length {len}")]
    AttributeLength {
        /// The attribute type.
        type_code: u8,
        /// The attribute length.
        len: usize,
    },
    /// ORIGIN holds an undefined value (RFC 7606 §7.1).
    #[error("undefined ORIGIN {0}")]
    Origin(u8),
    /// NEXT_HOP is not a usable host address (RFC 7606 §7.3).
    #[error("invalid NEXT_HOP {0}")]
    NextHop(Ipv4Addr),
    /// AS_PATH or AS4_PATH segments are malformed (RFC 7606 §7.2).
    #[error("malformed AS path in attribute {0}")]
    AsPath(u8),
    /// An attribute appears twice (RFC 7606 §3 g).
    #[error("attribute {0} appears more than once")]
    Duplicate(u8),
    /// A prefix in the withdrawn routes or NLRI fields is malformed (RFC 7606 §5.3).
    #[error("invalid prefix in the NLRI field")]
    Nlri,
    /// MP_REACH_NLRI or MP_UNREACH_NLRI is malformed (RFC 7606 §7.11).
    #[error("malformed multiprotocol attribute {0}")]
    Multiprotocol(u8),
    /// MP_REACH_NLRI or MP_UNREACH_NLRI of a family whose NLRI this codec does not decode; the
    /// attribute is ignored (attribute discard).
    #[error("family {0} is not supported")]
    Family(crate::family::AfiSafi),
    /// A ROUTE-REFRESH of the wrong length (RFC 7313 §5).
    #[error("ROUTE-REFRESH length {0} is not 23")]
    RouteRefreshLength(u16),
}

/// The session must be reset: send `notification`, then close (RFC 4271 §6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}; send {notification}")]
pub struct SessionError {
    /// What was wrong.
    pub reason: Malformed,
    /// The NOTIFICATION to send before closing.
    pub notification: Notification,
}

impl SessionError {
    /// A reset for `reason` with the UPDATE Message Error `subcode` and `data`.
    pub(crate) fn update(reason: Malformed, subcode: UpdateError, data: Vec<u8>) -> Self {
        SessionError {
            reason,
            notification: Notification::new(ErrorCode::Update(subcode), data),
        }
    }

    /// A reset for `reason` with the OPEN Message Error `subcode` and `data`.
    pub(crate) fn open(reason: Malformed, subcode: OpenError, data: Vec<u8>) -> Self {
        SessionError {
            reason,
            notification: Notification::new(ErrorCode::Open(subcode), data),
        }
    }

    /// A Message Header Error for `reason` with `subcode` and `data`.
    pub(crate) fn header(reason: Malformed, subcode: HeaderError, data: Vec<u8>) -> Self {
        SessionError {
            reason,
            notification: Notification::new(ErrorCode::MessageHeader(subcode), data),
        }
    }

    /// A ROUTE-REFRESH Invalid Message Length error carrying the whole message.
    pub(crate) fn route_refresh_length(len: u16, message: &[u8]) -> Self {
        SessionError {
            reason: Malformed::RouteRefreshLength(len),
            notification: Notification::new(
                ErrorCode::RouteRefresh(RouteRefreshError::InvalidMessageLength),
                message.to_vec(),
            ),
        }
    }

    /// The (code, subcode) octets of the NOTIFICATION.
    pub fn code(&self) -> (u8, u8) {
        self.notification.code.octets()
    }
}

/// The RFC 7606 action for a malformed attribute that does not end the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AttrAction {
    /// Drop the attribute, keep the routes (RFC 7606 §2 "attribute discard").
    AttributeDiscard,
    /// Withdraw every prefix the UPDATE carries, as if it were a withdrawal
    /// (RFC 7606 §2 "treat-as-withdraw").
    TreatAsWithdraw,
}

/// A malformed path attribute and the action that applies to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attribute {type_code}: {reason} ({action:?})")]
pub struct AttrError {
    /// The attribute type code.
    pub type_code: u8,
    /// What was wrong.
    pub reason: Malformed,
    /// What the receiver must do.
    pub action: AttrAction,
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message would exceed the session's maximum message size.
    #[error("message of {len} octets exceeds the maximum of {max}")]
    TooLarge {
        /// The size the message would have.
        len: usize,
        /// The session's maximum.
        max: usize,
    },
    /// A prefix does not belong to the family being encoded.
    #[error("prefix {prefix} is not of family {family}")]
    FamilyMismatch {
        /// The prefix.
        prefix: crate::prefix::Prefix,
        /// The family being encoded.
        family: crate::family::AfiSafi,
    },
    /// The family has no prefix encoding in this codec.
    #[error("family {0} is not supported")]
    UnsupportedFamily(crate::family::AfiSafi),
    /// Announcing needs a next hop the family can carry.
    #[error("no usable next hop for family {0}")]
    NextHop(crate::family::AfiSafi),
    /// A capability or attribute value is longer than its length field allows.
    #[error("value of {len} octets does not fit its length field")]
    ValueTooLong {
        /// The value length.
        len: usize,
    },
}
