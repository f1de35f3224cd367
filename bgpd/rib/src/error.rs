//! What the RIB refuses.

use bgpd_wire::EncodeError;

use crate::peer::PeerId;

/// Why a RIB call could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RibError {
    /// No peer has this id (never added, or removed).
    #[error("unknown peer {0}")]
    UnknownPeer(PeerId),
    /// The call needs an established session and the peer has none.
    #[error("peer {0} is not established")]
    NotEstablished(PeerId),
    /// More route sources (peer, ADD-PATH path id) than a route can name.
    #[error("too many distinct ADD-PATH paths")]
    TooManyPaths,
    /// An UPDATE could not be encoded.
    #[error("encoding an UPDATE failed: {0}")]
    Encode(#[from] EncodeError),
}
