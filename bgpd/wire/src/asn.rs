//! Autonomous system numbers (RFC 6793: four octets everywhere inside the daemon).

use std::fmt;

/// An autonomous system number, always held as four octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Asn(pub u32);

impl Asn {
    /// AS_TRANS (RFC 6793 §9): stands in for a four-octet AS where only two octets fit.
    pub const TRANS: Asn = Asn(23456);

    /// Whether this AS fits the two-octet fields of old speakers.
    pub fn is_two_octet(self) -> bool {
        self.0 <= u32::from(u16::MAX)
    }

    /// The value for a two-octet field: the AS itself, or AS_TRANS when it does not fit.
    pub fn to_two_octet(self) -> u16 {
        u16::try_from(self.0).unwrap_or(23456)
    }
}

impl From<u32> for Asn {
    fn from(v: u32) -> Self {
        Asn(v)
    }
}

impl fmt::Display for Asn {
    /// "asplain" notation (RFC 5396).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
