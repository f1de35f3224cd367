//! BGP message codec: pure bytes in, typed messages out and back; no I/O.
//!
//! - Framing: [`Header::peek`] tells how long the next message in a byte stream is.
//! - Decoding: [`Message::decode`] with the [`SessionContext`] of the receive direction.
//!   Errors that end the session are [`SessionError`] (with the NOTIFICATION to send); RFC 7606
//!   attribute errors stay inside the decoded [`Update`] as [`AttrError`]s with their
//!   [`AttrAction`].
//! - Encoding: [`Message::encode`] for single messages, [`pack`] for many routes sharing one
//!   attribute set, split over as few UPDATEs as the session's message size allows.

#![warn(missing_docs)]

mod as_path;
mod asn;
mod attr;
mod capability;
mod community;
mod error;
mod family;
mod header;
mod message;
mod nlri;
mod notification;
mod open;
pub mod pack;
mod prefix;
mod route_refresh;
mod session;
mod update;

pub use as_path::{AsPath, AsSegment, SegmentKind};
pub use asn::Asn;
pub use attr::{Aggregator, NextHop, Origin, PathAttrs, RawAttr, flag, type_code};
pub use capability::{
    AddPathFamily, AddPathMode, Capability, ExtendedNextHop, GracefulRestart,
    GracefulRestartFamily, code as capability_code,
};
pub use community::{Community, ExtCommunity, LargeCommunity};
pub use error::{AttrAction, AttrError, EncodeError, Malformed, SessionError};
pub use family::{Afi, AfiSafi, Safi};
pub use header::{EXTENDED_MAX_MESSAGE_SIZE, HEADER_LEN, Header, MAX_MESSAGE_SIZE, MessageType};
pub use message::Message;
pub use notification::{
    Cease, ErrorCode, FsmError, HeaderError, MAX_SHUTDOWN_MESSAGE, Notification, OpenError,
    RouteRefreshError, UpdateError,
};
pub use open::{BGP_VERSION, Open};
pub use prefix::{Ipv4Prefix, Ipv6Prefix, Nlri, Prefix, PrefixError};
pub use route_refresh::{RefreshSubtype, RouteRefresh};
pub use session::{Negotiated, SessionContext, negotiate};
pub use update::{MpReach, MpUnreach, Update};
