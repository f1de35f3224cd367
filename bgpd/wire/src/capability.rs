//! Capabilities advertised in OPEN (RFC 5492) and their codecs. A capability whose value does
//! not parse as its RFC describes is kept raw as [`Capability::Unknown`], like any code we do
//! not know, so nothing a peer advertises is lost or fatal.

use bytes::{BufMut, BytesMut};
use nom::number::complete::{be_u8, be_u16, be_u32};
use nom::{IResult, Parser};

use crate::asn::Asn;
use crate::error::EncodeError;
use crate::family::{Afi, AfiSafi, Safi};

/// Capability codes (IANA "Capability Codes").
pub mod code {
    /// Multiprotocol extensions (RFC 4760).
    pub const MULTIPROTOCOL: u8 = 1;
    /// Route refresh (RFC 2918).
    pub const ROUTE_REFRESH: u8 = 2;
    /// Extended next hop encoding (RFC 8950).
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    /// Extended message (RFC 8654).
    pub const EXTENDED_MESSAGE: u8 = 6;
    /// Graceful restart (RFC 4724).
    pub const GRACEFUL_RESTART: u8 = 64;
    /// Four-octet AS numbers (RFC 6793).
    pub const FOUR_OCTET_AS: u8 = 65;
    /// ADD-PATH (RFC 7911).
    pub const ADD_PATH: u8 = 69;
    /// Enhanced route refresh (RFC 7313).
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
    /// Hostname / FQDN (draft-walton-bgp-hostname-capability).
    pub const HOSTNAME: u8 = 73;
}

/// One capability from an OPEN message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Multiprotocol extensions for one family (RFC 4760 §8).
    Multiprotocol(AfiSafi),
    /// Route refresh (RFC 2918).
    RouteRefresh,
    /// Families whose NLRI may carry a next hop of another AFI (RFC 8950).
    ExtendedNextHop(Vec<ExtendedNextHop>),
    /// Messages up to 65535 octets (RFC 8654).
    ExtendedMessage,
    /// Graceful restart (RFC 4724, with the N bit of RFC 8538).
    GracefulRestart(GracefulRestart),
    /// The speaker's four-octet AS (RFC 6793).
    FourOctetAs(Asn),
    /// ADD-PATH send/receive per family (RFC 7911).
    AddPath(Vec<AddPathFamily>),
    /// Enhanced route refresh (RFC 7313).
    EnhancedRouteRefresh,
    /// The speaker's host and domain name (draft-walton-bgp-hostname-capability).
    Hostname {
        /// Host name.
        host: String,
        /// Domain name (often empty).
        domain: String,
    },
    /// A capability kept as received: an unknown code or a value that did not parse.
    Unknown {
        /// Capability code.
        code: u8,
        /// Value octets.
        value: Vec<u8>,
    },
}

/// One (NLRI family, next-hop AFI) pair of the extended next hop capability (RFC 8950 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtendedNextHop {
    /// The family of the NLRI.
    pub nlri: AfiSafi,
    /// The AFI its next hop may have.
    pub next_hop_afi: Afi,
}

/// Graceful restart parameters (RFC 4724 §3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GracefulRestart {
    /// R bit: the speaker has restarted.
    pub restarting: bool,
    /// N bit: graceful restart also applies to NOTIFICATION (RFC 8538).
    pub notification: bool,
    /// Seconds the peer keeps our routes while we restart (12 bits; higher bits are dropped).
    pub restart_time: u16,
    /// Families whose routes are preserved, with their forwarding-state flag.
    pub families: Vec<GracefulRestartFamily>,
}

/// One family of the graceful restart capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    /// The family.
    pub afi_safi: AfiSafi,
    /// F bit: forwarding state was preserved across the restart.
    pub forwarding_preserved: bool,
}

/// Whether a speaker sends, receives, or both, multiple paths of a family (RFC 7911 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddPathMode {
    /// Able to receive multiple paths.
    Receive,
    /// Able to send multiple paths.
    Send,
    /// Both.
    Both,
}

impl AddPathMode {
    /// Whether this mode includes receiving.
    pub fn receives(self) -> bool {
        matches!(self, AddPathMode::Receive | AddPathMode::Both)
    }

    /// Whether this mode includes sending.
    pub fn sends(self) -> bool {
        matches!(self, AddPathMode::Send | AddPathMode::Both)
    }
}

/// One family of the ADD-PATH capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddPathFamily {
    /// The family.
    pub afi_safi: AfiSafi,
    /// Send, receive or both.
    pub mode: AddPathMode,
}

type Res<'a, T> = IResult<&'a [u8], T, ()>;

fn afi_safi(i: &[u8]) -> Res<'_, AfiSafi> {
    let (i, afi) = be_u16(i)?;
    let (i, safi) = be_u8(i)?;
    Ok((i, AfiSafi::new(Afi(afi), Safi(safi))))
}

/// Parses `value` to its end with `item`, repeated.
fn all<'a, T>(mut i: &'a [u8], item: impl Fn(&'a [u8]) -> Res<'a, T>) -> Option<Vec<T>> {
    let mut out = Vec::new();
    while !i.is_empty() {
        let (rest, v) = item(i).ok()?;
        out.push(v);
        i = rest;
    }
    Some(out)
}

fn name(i: &[u8]) -> Res<'_, String> {
    let (i, len) = be_u8(i)?;
    let (i, raw) = nom::bytes::complete::take(len).parse(i)?;
    let text = std::str::from_utf8(raw).map_err(|_| nom::Err::Error(()))?;
    Ok((i, text.to_owned()))
}

impl Capability {
    /// The capability code.
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol(_) => code::MULTIPROTOCOL,
            Capability::RouteRefresh => code::ROUTE_REFRESH,
            Capability::ExtendedNextHop(_) => code::EXTENDED_NEXT_HOP,
            Capability::ExtendedMessage => code::EXTENDED_MESSAGE,
            Capability::GracefulRestart(_) => code::GRACEFUL_RESTART,
            Capability::FourOctetAs(_) => code::FOUR_OCTET_AS,
            Capability::AddPath(_) => code::ADD_PATH,
            Capability::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
            Capability::Hostname { .. } => code::HOSTNAME,
            Capability::Unknown { code, .. } => *code,
        }
    }

    /// The capability with `code` and `value`; kept raw when the value does not parse.
    pub fn decode(code: u8, value: &[u8]) -> Capability {
        Self::parse_known(code, value).unwrap_or_else(|| Capability::Unknown {
            code,
            value: value.to_vec(),
        })
    }

    fn parse_known(code: u8, v: &[u8]) -> Option<Capability> {
        let cap = match code {
            code::MULTIPROTOCOL => {
                // AFI (2), reserved (1), SAFI (1).
                let (rest, (afi, _, safi)) = (be_u16::<_, ()>, be_u8, be_u8).parse(v).ok()?;
                rest.is_empty().then_some(())?;
                Capability::Multiprotocol(AfiSafi::new(Afi(afi), Safi(safi)))
            }
            code::ROUTE_REFRESH if v.is_empty() => Capability::RouteRefresh,
            code::EXTENDED_MESSAGE if v.is_empty() => Capability::ExtendedMessage,
            code::ENHANCED_ROUTE_REFRESH if v.is_empty() => Capability::EnhancedRouteRefresh,
            code::EXTENDED_NEXT_HOP => Capability::ExtendedNextHop(all(v, |i| {
                let (i, (afi, safi, nh)) = (be_u16, be_u16, be_u16).parse(i)?;
                let safi = u8::try_from(safi).map_err(|_| nom::Err::Error(()))?;
                Ok((
                    i,
                    ExtendedNextHop {
                        nlri: AfiSafi::new(Afi(afi), Safi(safi)),
                        next_hop_afi: Afi(nh),
                    },
                ))
            })?),
            code::GRACEFUL_RESTART => {
                let (rest, flags_time) = be_u16::<_, ()>(v).ok()?;
                let families = all(rest, |i| {
                    let (i, afi_safi) = afi_safi(i)?;
                    let (i, flags) = be_u8(i)?;
                    Ok((
                        i,
                        GracefulRestartFamily {
                            afi_safi,
                            forwarding_preserved: flags & 0x80 != 0,
                        },
                    ))
                })?;
                Capability::GracefulRestart(GracefulRestart {
                    restarting: flags_time & 0x8000 != 0,
                    notification: flags_time & 0x4000 != 0,
                    restart_time: flags_time & 0x0fff,
                    families,
                })
            }
            code::FOUR_OCTET_AS => {
                let (rest, asn) = be_u32::<_, ()>(v).ok()?;
                rest.is_empty().then_some(())?;
                Capability::FourOctetAs(Asn(asn))
            }
            code::ADD_PATH => Capability::AddPath(all(v, |i| {
                let (i, afi_safi) = afi_safi(i)?;
                let (i, mode) = be_u8(i)?;
                let mode = match mode {
                    1 => AddPathMode::Receive,
                    2 => AddPathMode::Send,
                    3 => AddPathMode::Both,
                    _ => return Err(nom::Err::Error(())),
                };
                Ok((i, AddPathFamily { afi_safi, mode }))
            })?),
            code::HOSTNAME => {
                let (rest, (host, domain)) = (name, name).parse(v).ok()?;
                rest.is_empty().then_some(())?;
                Capability::Hostname { host, domain }
            }
            _ => return None,
        };
        Some(cap)
    }

    /// Appends code, length and value.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        out.put_u8(self.code());
        let len_at = out.len();
        out.put_u8(0);
        match self {
            Capability::Multiprotocol(f) => {
                out.put_u16(f.afi.0);
                out.put_u8(0);
                out.put_u8(f.safi.0);
            }
            Capability::RouteRefresh
            | Capability::ExtendedMessage
            | Capability::EnhancedRouteRefresh => {}
            Capability::ExtendedNextHop(entries) => {
                for e in entries {
                    out.put_u16(e.nlri.afi.0);
                    out.put_u16(u16::from(e.nlri.safi.0));
                    out.put_u16(e.next_hop_afi.0);
                }
            }
            Capability::GracefulRestart(gr) => {
                let flags = (u16::from(gr.restarting) << 15) | (u16::from(gr.notification) << 14);
                out.put_u16(flags | (gr.restart_time & 0x0fff));
                for f in &gr.families {
                    out.put_u16(f.afi_safi.afi.0);
                    out.put_u8(f.afi_safi.safi.0);
                    out.put_u8(if f.forwarding_preserved { 0x80 } else { 0 });
                }
            }
            Capability::FourOctetAs(asn) => out.put_u32(asn.0),
            Capability::AddPath(entries) => {
                for e in entries {
                    out.put_u16(e.afi_safi.afi.0);
                    out.put_u8(e.afi_safi.safi.0);
                    out.put_u8(match e.mode {
                        AddPathMode::Receive => 1,
                        AddPathMode::Send => 2,
                        AddPathMode::Both => 3,
                    });
                }
            }
            Capability::Hostname { host, domain } => {
                for text in [host, domain] {
                    let len = u8::try_from(text.len())
                        .map_err(|_| EncodeError::ValueTooLong { len: text.len() })?;
                    out.put_u8(len);
                    out.put_slice(text.as_bytes());
                }
            }
            Capability::Unknown { value, .. } => out.put_slice(value),
        }
        let len = out.len() - len_at - 1;
        out[len_at] = u8::try_from(len).map_err(|_| EncodeError::ValueTooLong { len })?;
        Ok(())
    }
}
