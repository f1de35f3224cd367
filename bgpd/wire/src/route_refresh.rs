//! ROUTE-REFRESH (RFC 2918) with the demarcation subtypes of enhanced route refresh (RFC 7313).

use bytes::{BufMut, BytesMut};

use crate::error::SessionError;
use crate::family::{Afi, AfiSafi, Safi};

/// The message subtype, in the octet RFC 2918 reserved (RFC 7313 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefreshSubtype {
    /// 0: a plain route refresh request.
    Normal,
    /// 1: Beginning of Route Refresh (BoRR).
    BeginningOfRefresh,
    /// 2: End of Route Refresh (EoRR).
    EndOfRefresh,
    /// Another value; RFC 7313 §5 says to ignore such a message.
    Reserved(u8),
}

impl From<u8> for RefreshSubtype {
    fn from(v: u8) -> Self {
        match v {
            0 => RefreshSubtype::Normal,
            1 => RefreshSubtype::BeginningOfRefresh,
            2 => RefreshSubtype::EndOfRefresh,
            other => RefreshSubtype::Reserved(other),
        }
    }
}

impl From<RefreshSubtype> for u8 {
    fn from(s: RefreshSubtype) -> u8 {
        match s {
            RefreshSubtype::Normal => 0,
            RefreshSubtype::BeginningOfRefresh => 1,
            RefreshSubtype::EndOfRefresh => 2,
            RefreshSubtype::Reserved(v) => v,
        }
    }
}

/// A ROUTE-REFRESH message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    /// The family to refresh.
    pub afi_safi: AfiSafi,
    /// Request, BoRR or EoRR.
    pub subtype: RefreshSubtype,
}

impl RouteRefresh {
    /// Decodes the body; `message` is the whole message, the error's data (RFC 7313 §5).
    pub(crate) fn decode(body: &[u8], message: &[u8]) -> Result<RouteRefresh, SessionError> {
        match body {
            [a, b, subtype, safi] => Ok(RouteRefresh {
                afi_safi: AfiSafi::new(Afi(u16::from_be_bytes([*a, *b])), Safi(*safi)),
                subtype: (*subtype).into(),
            }),
            // The header check bounds a message by 65535 octets.
            _ => Err(SessionError::route_refresh_length(
                u16::try_from(message.len()).unwrap_or(u16::MAX),
                message,
            )),
        }
    }

    /// Appends the body.
    pub(crate) fn encode_body(&self, out: &mut BytesMut) {
        out.put_u16(self.afi_safi.afi.0);
        out.put_u8(self.subtype.into());
        out.put_u8(self.afi_safi.safi.0);
    }
}
