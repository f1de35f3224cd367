//! What the RIB refuses.

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
    /// More route sources (peers, and their ADD-PATH path ids) than a route can name (2^24).
    #[error("too many route sources (peers and ADD-PATH paths)")]
    TooManySources,
}
