//! UPDATE (RFC 4271 §4.3) with MP_REACH_NLRI/MP_UNREACH_NLRI (RFC 4760), End-of-RIB
//! (RFC 4724 §2) and the error handling of RFC 7606.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};

use crate::attr::{self, NextHop, PathAttrs, flag, put_attr_with, type_code as tc};
use crate::error::{AttrAction, AttrError, EncodeError, Malformed, SessionError};
use crate::family::{Afi, AfiSafi};
use crate::header::{self, MessageType};
use crate::nlri;
use crate::notification::{HeaderError, UpdateError};
use crate::prefix::Nlri;
use crate::session::SessionContext;

/// MP_REACH_NLRI (RFC 4760 §3): routes of one family with their next hop.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpReach {
    /// The family of `nlri`.
    pub afi_safi: AfiSafi,
    /// The next hop for every route in `nlri`.
    pub next_hop: NextHop,
    /// The announced routes.
    pub nlri: Vec<Nlri>,
}

/// MP_UNREACH_NLRI (RFC 4760 §4): withdrawn routes of one family.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    /// The family of `withdrawn`.
    pub afi_safi: AfiSafi,
    /// The withdrawn routes; empty in an End-of-RIB marker.
    pub withdrawn: Vec<Nlri>,
}

/// An UPDATE message.
///
/// IPv4 unicast routes travel in `withdrawn` and `nlri` (with `attrs.next_hop` as NEXT_HOP);
/// other families in `mp_unreach` and `mp_reach`. A route announced in `mp_reach` has the path
/// attributes `attrs` with the next hop `mp_reach.next_hop`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// Withdrawn IPv4 unicast routes.
    pub withdrawn: Vec<Nlri>,
    /// Path attributes shared by every announced route.
    pub attrs: PathAttrs,
    /// Announced routes of another family.
    pub mp_reach: Option<MpReach>,
    /// Withdrawn routes of another family.
    pub mp_unreach: Option<MpUnreach>,
    /// Announced IPv4 unicast routes.
    pub nlri: Vec<Nlri>,
    /// RFC 7606 attribute errors found while decoding (never encoded). When any has
    /// [`AttrAction::TreatAsWithdraw`], every route in `nlri` and `mp_reach` must be handled as
    /// withdrawn; see [`Update::treat_as_withdraw`].
    pub errors: Vec<AttrError>,
}

impl Update {
    /// The End-of-RIB marker for `family` (RFC 4724 §2): an empty UPDATE for IPv4 unicast, an
    /// empty MP_UNREACH_NLRI otherwise.
    pub fn end_of_rib(family: AfiSafi) -> Update {
        if family == AfiSafi::IPV4_UNICAST {
            return Update::default();
        }
        Update {
            mp_unreach: Some(MpUnreach {
                afi_safi: family,
                withdrawn: Vec::new(),
            }),
            ..Update::default()
        }
    }

    /// The family this UPDATE marks the End-of-RIB of, if it is such a marker.
    pub fn end_of_rib_family(&self) -> Option<AfiSafi> {
        let bare = self.withdrawn.is_empty()
            && self.nlri.is_empty()
            && self.mp_reach.is_none()
            && self.errors.is_empty();
        if !bare || self.attrs != PathAttrs::default() {
            return None;
        }
        match &self.mp_unreach {
            None => Some(AfiSafi::IPV4_UNICAST),
            Some(u) if u.withdrawn.is_empty() => Some(u.afi_safi),
            Some(_) => None,
        }
    }

    /// Whether RFC 7606 treat-as-withdraw applies: the announced routes must be withdrawn.
    pub fn treat_as_withdraw(&self) -> bool {
        self.errors
            .iter()
            .any(|e| e.action == AttrAction::TreatAsWithdraw)
    }

    /// Decodes the UPDATE message `frame` (header included, as framed with [`crate::Header::peek`])
    /// into `self`, replacing what it held but keeping its allocations: a reader that decodes
    /// every UPDATE into one `Update` stops allocating for NLRI and communities once warm.
    /// A frame of another type is a Bad Message Type error.
    pub fn decode_from(&mut self, frame: &[u8], ctx: &SessionContext) -> Result<(), SessionError> {
        let header = header::frame(frame, ctx.max_message_size)?;
        if header.msg_type != MessageType::Update {
            let t = header.msg_type as u8;
            return Err(SessionError::header(
                Malformed::MessageType(t),
                HeaderError::BadMessageType,
                vec![t],
            ));
        }
        self.withdrawn.clear();
        self.nlri.clear();
        self.errors.clear();
        self.attrs.clear();
        (self.mp_reach, self.mp_unreach) = (None, None);
        self.decode_body(&frame[header::HEADER_LEN..], ctx)
    }

    /// Decodes the body (after the header) of an UPDATE into `self`, which must be empty (new,
    /// or emptied by [`Update::decode_from`]). In place because an UPDATE is large: moving it
    /// costs more than parsing a small one.
    pub(crate) fn decode_body(
        &mut self,
        body: &[u8],
        ctx: &SessionContext,
    ) -> Result<(), SessionError> {
        // RFC 4271 §6.3: lengths that do not fit the message.
        let list_error = || {
            SessionError::update(
                Malformed::AttributeList,
                UpdateError::MalformedAttributeList,
                Vec::new(),
            )
        };
        let (wlen, rest) = body.split_first_chunk::<2>().ok_or_else(list_error)?;
        let (withdrawn_raw, rest) = rest
            .split_at_checked(usize::from(u16::from_be_bytes(*wlen)))
            .ok_or_else(list_error)?;
        let (alen, rest) = rest.split_first_chunk::<2>().ok_or_else(list_error)?;
        let (attrs_raw, nlri_raw) = rest
            .split_at_checked(usize::from(u16::from_be_bytes(*alen)))
            .ok_or_else(list_error)?;

        // RFC 7606 §5.3: a prefix that does not parse leaves no way to find the routes.
        let network_error = || {
            SessionError::update(
                Malformed::Nlri,
                UpdateError::InvalidNetworkField,
                Vec::new(),
            )
        };
        let v4_add_path = ctx.add_path(AfiSafi::IPV4_UNICAST);
        // Most UPDATEs have no withdrawn routes, and some (End-of-RIB, MP only) no NLRI.
        if !withdrawn_raw.is_empty() {
            nlri::decode(withdrawn_raw, Afi::IPV4, v4_add_path, &mut self.withdrawn)
                .map_err(|_| network_error())?;
        }
        if !nlri_raw.is_empty() {
            nlri::decode(nlri_raw, Afi::IPV4, v4_add_path, &mut self.nlri)
                .map_err(|_| network_error())?;
        }

        let mut walked = attr::Walked::new(&mut self.attrs, &mut self.errors);
        attr::walk(attrs_raw, ctx, &mut walked)?;
        let mp_reach = match walked.mp_reach {
            Some((flags, v)) => decode_mp_reach(flags, v, ctx, walked.errors)?,
            None => None,
        };
        let mp_unreach = match walked.mp_unreach {
            Some((flags, v)) => decode_mp_unreach(flags, v, ctx, walked.errors)?,
            None => None,
        };
        // RFC 7606 §3 d: announcing routes without a well-known mandatory attribute.
        let plain = !self.nlri.is_empty();
        if plain || mp_reach.as_ref().is_some_and(|m| !m.nlri.is_empty()) {
            if let Some(code) = attr::missing_well_known(&walked, plain) {
                attr::record_missing(&mut walked, code);
            }
        }
        self.mp_reach = mp_reach;
        self.mp_unreach = mp_unreach;
        Ok(())
    }

    /// Appends this UPDATE as one message. MP_UNREACH_NLRI and MP_REACH_NLRI come first
    /// (RFC 7606 §5.1), then the other attributes in type-code order.
    pub fn encode(&self, ctx: &SessionContext, out: &mut BytesMut) -> Result<(), EncodeError> {
        let at = header::start(out, MessageType::Update);
        let result = self.encode_body(ctx, out);
        match result {
            Ok(()) => header::finish(out, at, ctx.max_message_size),
            Err(e) => {
                out.truncate(at);
                Err(e)
            }
        }
    }

    fn encode_body(&self, ctx: &SessionContext, out: &mut BytesMut) -> Result<(), EncodeError> {
        let v4 = AfiSafi::IPV4_UNICAST;
        let v4_add_path = ctx.add_path(v4);
        let len_at = out.len();
        out.put_u16(0);
        for n in &self.withdrawn {
            check_family(n, v4)?;
            nlri::encode(n, v4_add_path, out);
        }
        patch_u16(out, len_at)?;
        let attrs_at = out.len();
        out.put_u16(0);
        if let Some(u) = &self.mp_unreach {
            encode_mp_unreach(u.afi_safi, &u.withdrawn, ctx, out)?;
        }
        if let Some(r) = &self.mp_reach {
            encode_mp_reach(r.afi_safi, r.next_hop, &r.nlri, ctx, out)?;
        }
        let next_hop_v4 = match self.attrs.next_hop {
            None => None,
            Some(NextHop::V4(a)) => Some(a),
            Some(NextHop::V6 { .. }) => return Err(EncodeError::NextHop(v4)),
        };
        self.attrs.encode_without_next_hop(ctx, out, next_hop_v4);
        patch_u16(out, attrs_at)?;
        for n in &self.nlri {
            check_family(n, v4)?;
            nlri::encode(n, v4_add_path, out);
        }
        Ok(())
    }
}

/// Writes the length of what follows the two octets at `at` into them.
pub(crate) fn patch_u16(out: &mut BytesMut, at: usize) -> Result<(), EncodeError> {
    let len = out.len() - at - 2;
    let len16 = u16::try_from(len).map_err(|_| EncodeError::ValueTooLong { len })?;
    out[at..at + 2].copy_from_slice(&len16.to_be_bytes());
    Ok(())
}

pub(crate) fn check_family(n: &Nlri, family: AfiSafi) -> Result<(), EncodeError> {
    if n.prefix.afi() == family.afi {
        Ok(())
    } else {
        Err(EncodeError::FamilyMismatch {
            prefix: n.prefix,
            family,
        })
    }
}

/// Appends MP_REACH_NLRI for `family` with `next_hop` and `routes`.
pub(crate) fn encode_mp_reach(
    family: AfiSafi,
    next_hop: NextHop,
    routes: &[Nlri],
    ctx: &SessionContext,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    if !family.has_ip_prefixes() {
        return Err(EncodeError::UnsupportedFamily(family));
    }
    // RFC 4760 §3 for IPv6, RFC 8950 §3 for IPv6 next hops of IPv4 routes.
    if family.afi == Afi::IPV6 && matches!(next_hop, NextHop::V4(_)) {
        return Err(EncodeError::NextHop(family));
    }
    for n in routes {
        check_family(n, family)?;
    }
    let add_path = ctx.add_path(family);
    put_attr_with(out, flag::OPTIONAL, tc::MP_REACH_NLRI, |o| {
        o.put_u16(family.afi.0);
        o.put_u8(family.safi.0);
        match next_hop {
            NextHop::V4(a) => {
                o.put_u8(4);
                o.put_slice(&a.octets());
            }
            NextHop::V6 {
                global,
                link_local: None,
            } => {
                o.put_u8(16);
                o.put_slice(&global.octets());
            }
            NextHop::V6 {
                global,
                link_local: Some(ll),
            } => {
                o.put_u8(32);
                o.put_slice(&global.octets());
                o.put_slice(&ll.octets());
            }
        }
        o.put_u8(0);
        routes.iter().for_each(|n| nlri::encode(n, add_path, o));
    });
    Ok(())
}

/// Appends MP_UNREACH_NLRI for `family` withdrawing `routes`.
pub(crate) fn encode_mp_unreach(
    family: AfiSafi,
    routes: &[Nlri],
    ctx: &SessionContext,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    if !family.has_ip_prefixes() {
        return Err(EncodeError::UnsupportedFamily(family));
    }
    for n in routes {
        check_family(n, family)?;
    }
    let add_path = ctx.add_path(family);
    put_attr_with(out, flag::OPTIONAL, tc::MP_UNREACH_NLRI, |o| {
        o.put_u16(family.afi.0);
        o.put_u8(family.safi.0);
        routes.iter().for_each(|n| nlri::encode(n, add_path, o));
    });
    Ok(())
}

/// RFC 7606 §7.11: a malformed MP attribute resets the session (the AFI/SAFI-disable
/// alternative is left to the speaker); data is the attribute.
fn mp_error(flags: u8, code: u8, value: &[u8]) -> SessionError {
    SessionError::update(
        Malformed::Multiprotocol(code),
        UpdateError::OptionalAttributeError,
        attr::whole(flags, code, value),
    )
}

fn mp_family(v: &[u8]) -> Option<(AfiSafi, &[u8])> {
    let (afi, rest) = v.split_first_chunk::<2>()?;
    let (&safi, rest) = rest.split_first()?;
    Some((
        AfiSafi::new(Afi(u16::from_be_bytes(*afi)), crate::family::Safi(safi)),
        rest,
    ))
}

/// A family this codec cannot decode: the attribute is ignored and the fact recorded.
fn unsupported(family: AfiSafi, code: u8, errors: &mut Vec<AttrError>) {
    errors.push(AttrError {
        type_code: code,
        reason: Malformed::Family(family),
        action: AttrAction::AttributeDiscard,
    });
}

fn decode_mp_reach(
    flags: u8,
    v: &[u8],
    ctx: &SessionContext,
    errors: &mut Vec<AttrError>,
) -> Result<Option<MpReach>, SessionError> {
    let code = tc::MP_REACH_NLRI;
    let fail = || mp_error(flags, code, v);
    let (family, rest) = mp_family(v).ok_or_else(fail)?;
    let (&nh_len, rest) = rest.split_first().ok_or_else(fail)?;
    let (nh, rest) = rest
        .split_at_checked(usize::from(nh_len))
        .ok_or_else(fail)?;
    // One reserved octet (RFC 4760 §3), then the NLRI.
    let (_, routes) = rest.split_first().ok_or_else(fail)?;
    if !family.has_ip_prefixes() {
        unsupported(family, code, errors);
        return Ok(None);
    }
    let v6 = |o: &[u8]| Ipv6Addr::from(<[u8; 16]>::try_from(o).unwrap_or_default());
    // RFC 7606 §7.11: a next hop length the family cannot have makes the attribute malformed.
    let next_hop = match (family.afi, nh.len()) {
        (Afi::IPV4, 4) => NextHop::V4(Ipv4Addr::new(nh[0], nh[1], nh[2], nh[3])),
        (_, 16) => NextHop::V6 {
            global: v6(nh),
            link_local: None,
        },
        (_, 32) => NextHop::V6 {
            global: v6(&nh[..16]),
            link_local: Some(v6(&nh[16..])),
        },
        _ => return Err(fail()),
    };
    let mut nlri = Vec::new();
    nlri::decode(routes, family.afi, ctx.add_path(family), &mut nlri).map_err(|_| fail())?;
    Ok(Some(MpReach {
        afi_safi: family,
        next_hop,
        nlri,
    }))
}

fn decode_mp_unreach(
    flags: u8,
    v: &[u8],
    ctx: &SessionContext,
    errors: &mut Vec<AttrError>,
) -> Result<Option<MpUnreach>, SessionError> {
    let code = tc::MP_UNREACH_NLRI;
    let (family, routes) = mp_family(v).ok_or_else(|| mp_error(flags, code, v))?;
    if !family.has_ip_prefixes() {
        unsupported(family, code, errors);
        return Ok(None);
    }
    let mut withdrawn = Vec::new();
    nlri::decode(routes, family.afi, ctx.add_path(family), &mut withdrawn)
        .map_err(|_| mp_error(flags, code, v))?;
    Ok(Some(MpUnreach {
        afi_safi: family,
        withdrawn,
    }))
}
