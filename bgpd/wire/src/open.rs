//! OPEN (RFC 4271 §4.2) with capabilities in optional parameters (RFC 5492), including the
//! extended optional parameters length of RFC 9072, and the checks of RFC 4271 §6.2.

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};
use nom::Parser;
use nom::bytes::complete::take;
use nom::number::complete::{be_u8, be_u16};

use crate::asn::Asn;
use crate::capability::Capability;
use crate::error::{EncodeError, Malformed, SessionError};
use crate::notification::OpenError;

/// The only BGP version there is.
pub const BGP_VERSION: u8 = 4;
/// Optional parameter type carrying capabilities (RFC 5492).
const PARAM_CAPABILITIES: u8 = 2;
/// Marks the RFC 9072 extended form in both the length and the first type octet.
const EXTENDED_PARAMS: u8 = 255;

/// An OPEN message. Capabilities are kept flat, in the order received; on the wire each one
/// travels in its own optional parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Open {
    /// The two-octet "My Autonomous System" field (AS_TRANS for four-octet ASes).
    pub my_as: u16,
    /// Proposed hold time in seconds (0, or at least 3).
    pub hold_time: u16,
    /// BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// Advertised capabilities.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// An OPEN for `asn`: fills "My Autonomous System" (AS_TRANS when `asn` needs four octets) and
    /// adds the four-octet AS capability (RFC 6793 §3) unless `capabilities` has one.
    pub fn new(
        asn: Asn,
        hold_time: u16,
        bgp_id: Ipv4Addr,
        mut capabilities: Vec<Capability>,
    ) -> Self {
        if !capabilities
            .iter()
            .any(|c| matches!(c, Capability::FourOctetAs(_)))
        {
            capabilities.push(Capability::FourOctetAs(asn));
        }
        Open {
            my_as: asn.to_two_octet(),
            hold_time,
            bgp_id,
            capabilities,
        }
    }

    /// The speaker's AS: from the four-octet AS capability when present, else "My AS".
    pub fn asn(&self) -> Asn {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(a) => Some(*a),
                _ => None,
            })
            .unwrap_or(Asn(u32::from(self.my_as)))
    }

    /// The checks of RFC 4271 §6.2 that need configuration: the peer's AS against
    /// `expected_peer_as` (when configured; AS 0 is never valid, RFC 7607), the hold time, and
    /// the BGP identifier (non-zero; different from ours within one AS, RFC 6286 §2.2).
    pub fn validate(
        &self,
        expected_peer_as: Option<Asn>,
        local_as: Asn,
        local_id: Ipv4Addr,
    ) -> Result<(), SessionError> {
        let got = self.asn();
        if got.0 == 0 || expected_peer_as.is_some_and(|e| e != got) {
            let expected = expected_peer_as.unwrap_or(got);
            return Err(SessionError::open(
                Malformed::PeerAs { expected, got },
                OpenError::BadPeerAs,
                Vec::new(),
            ));
        }
        if matches!(self.hold_time, 1 | 2) {
            return Err(SessionError::open(
                Malformed::HoldTime(self.hold_time),
                OpenError::UnacceptableHoldTime,
                Vec::new(),
            ));
        }
        if self.bgp_id.is_unspecified() || (self.bgp_id == local_id && got == local_as) {
            return Err(SessionError::open(
                Malformed::BgpId(self.bgp_id),
                OpenError::BadBgpIdentifier,
                Vec::new(),
            ));
        }
        Ok(())
    }

    /// Decodes the body (after the header) of an OPEN.
    pub(crate) fn decode(body: &[u8]) -> Result<Open, SessionError> {
        let malformed = || {
            SessionError::open(
                Malformed::OptionalParameters,
                OpenError::Unspecific,
                Vec::new(),
            )
        };
        let fixed = (be_u8::<_, ()>, be_u16, be_u16, take(4usize), be_u8).parse(body);
        let (rest, (version, my_as, hold_time, id, opt_len)) = fixed.map_err(|_| malformed())?;
        if version != BGP_VERSION {
            return Err(SessionError::open(
                Malformed::Version(version),
                OpenError::UnsupportedVersionNumber,
                u16::from(BGP_VERSION).to_be_bytes().to_vec(),
            ));
        }
        let bgp_id = Ipv4Addr::new(id[0], id[1], id[2], id[3]);
        // RFC 9072 §2: a length of 255 followed by type 255 announces two-octet lengths.
        let extended = opt_len == EXTENDED_PARAMS && rest.first() == Some(&EXTENDED_PARAMS);
        let params = if extended {
            let (params, (_, len)) = (be_u8::<_, ()>, be_u16)
                .parse(rest)
                .map_err(|_| malformed())?;
            (params.len() == usize::from(len)).then_some(params)
        } else {
            (rest.len() == usize::from(opt_len)).then_some(rest)
        };
        let mut params = params.ok_or_else(malformed)?;
        let mut capabilities = Vec::new();
        while !params.is_empty() {
            let header = if extended {
                (be_u8::<_, ()>, be_u16).parse(params)
            } else {
                (be_u8::<_, ()>, be_u8.map(u16::from)).parse(params)
            };
            let (after, (ptype, plen)) = header.map_err(|_| malformed())?;
            let (after, mut value) = take::<_, _, ()>(plen)
                .parse(after)
                .map_err(|_| malformed())?;
            params = after;
            if ptype != PARAM_CAPABILITIES {
                return Err(SessionError::open(
                    Malformed::UnsupportedOptionalParameter(ptype),
                    OpenError::UnsupportedOptionalParameter,
                    Vec::new(),
                ));
            }
            // RFC 5492 §4: one parameter may hold several capabilities.
            while !value.is_empty() {
                let (after, (code, len)) = (be_u8::<_, ()>, be_u8)
                    .parse(value)
                    .map_err(|_| malformed())?;
                let (after, cap) = take::<_, _, ()>(len)
                    .parse(after)
                    .map_err(|_| malformed())?;
                capabilities.push(Capability::decode(code, cap));
                value = after;
            }
        }
        Ok(Open {
            my_as,
            hold_time,
            bgp_id,
            capabilities,
        })
    }

    /// Appends the body of this OPEN.
    pub(crate) fn encode_body(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        out.put_u8(BGP_VERSION);
        out.put_u16(self.my_as);
        out.put_u16(self.hold_time);
        out.put_slice(&self.bgp_id.octets());
        let mut caps = BytesMut::new();
        for cap in &self.capabilities {
            cap.encode(&mut caps)?;
        }
        // Each capability in its own parameter: two octets of parameter header each.
        let plain_len = caps.len() + 2 * self.capabilities.len();
        match u8::try_from(plain_len) {
            // 255 is kept for the RFC 9072 marker.
            Ok(len) if len < EXTENDED_PARAMS => {
                out.put_u8(len);
                for_each_capability(&caps, |cap| {
                    out.put_u8(PARAM_CAPABILITIES);
                    // Below 255 because the whole parameter list is.
                    out.put_u8(cap.len() as u8);
                    out.put_slice(cap);
                });
            }
            _ => {
                // RFC 9072 §2: parameter lengths grow to two octets.
                let ext_len = caps.len() + 3 * self.capabilities.len();
                let len = u16::try_from(ext_len)
                    .map_err(|_| EncodeError::ValueTooLong { len: ext_len })?;
                out.put_u8(EXTENDED_PARAMS);
                out.put_u8(EXTENDED_PARAMS);
                out.put_u16(len);
                for_each_capability(&caps, |cap| {
                    out.put_u8(PARAM_CAPABILITIES);
                    // At most 257: a capability's code, length octet and value.
                    out.put_u16(cap.len() as u16);
                    out.put_slice(cap);
                });
            }
        }
        Ok(())
    }
}

/// Calls `f` with each encoded capability (code, length, value) in `caps`.
fn for_each_capability(mut caps: &[u8], mut f: impl FnMut(&[u8])) {
    while let [_, len, ..] = caps {
        let (cap, rest) = caps.split_at((2 + usize::from(*len)).min(caps.len()));
        f(cap);
        caps = rest;
    }
}
