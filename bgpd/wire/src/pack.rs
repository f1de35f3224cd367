//! Packing many routes that share one attribute set into as few UPDATEs as the session's
//! maximum message size allows: IPv4 unicast with an IPv4 next hop in the NLRI field, every
//! other case in MP_REACH_NLRI (RFC 4760; RFC 8950 for IPv4 routes with an IPv6 next hop).
//! Withdrawals likewise, in the withdrawn routes field or MP_UNREACH_NLRI.

use bytes::{BufMut, BytesMut};

use crate::attr::{NextHop, PathAttrs};
use crate::error::EncodeError;
use crate::family::{Afi, AfiSafi};
use crate::header::{self, HEADER_LEN, MessageType};
use crate::nlri;
use crate::prefix::Nlri;
use crate::session::SessionContext;
use crate::update::{check_family, encode_mp_reach, encode_mp_unreach, patch_u16};

/// Withdrawn-routes length and total-attribute length fields.
const LENGTH_FIELDS: usize = 4;
/// Largest MP attribute header (flags, type, two-octet length) plus AFI and SAFI.
const MP_OVERHEAD: usize = 4 + 3;

/// Splits `routes` into runs whose encoded size fits `room`, calling `emit` with each.
/// Fails if one entry alone does not fit.
fn chunks(
    routes: &[Nlri],
    add_path: bool,
    room: usize,
    mut emit: impl FnMut(&[Nlri]) -> Result<(), EncodeError>,
) -> Result<usize, EncodeError> {
    let mut messages = 0;
    let mut start = 0;
    while start < routes.len() {
        let mut used = 0;
        let mut end = start;
        while let Some(n) = routes.get(end) {
            let len = nlri::wire_len(n, add_path);
            if used + len > room {
                break;
            }
            used += len;
            end += 1;
        }
        if end == start {
            return Err(EncodeError::TooLarge {
                len: room.saturating_add(1),
                max: room,
            });
        }
        emit(&routes[start..end])?;
        messages += 1;
        start = end;
    }
    Ok(messages)
}

/// The room left for prefixes once `fixed` octets of a message are spoken for.
fn room(ctx: &SessionContext, fixed: usize) -> Result<usize, EncodeError> {
    ctx.max_message_size
        .checked_sub(fixed)
        .filter(|&r| r > 0)
        .ok_or(EncodeError::TooLarge {
            len: fixed,
            max: ctx.max_message_size,
        })
}

/// Appends one UPDATE whose body `body` writes; nothing of it stays in `out` if that fails.
fn update_message(
    out: &mut BytesMut,
    max: usize,
    body: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let at = header::start(out, MessageType::Update);
    if let Err(e) = body(out) {
        out.truncate(at);
        return Err(e);
    }
    header::finish(out, at, max)
}

/// Appends UPDATEs announcing `routes` of `family` with `attrs` (whose `next_hop` must be set)
/// to `out`; returns how many messages were written. On error `out` keeps the whole messages
/// written before it.
pub fn announce(
    ctx: &SessionContext,
    family: AfiSafi,
    attrs: &PathAttrs,
    routes: &[Nlri],
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    let next_hop = attrs.next_hop.ok_or(EncodeError::NextHop(family))?;
    let add_path = ctx.add_path(family);
    match (family, next_hop) {
        (AfiSafi::IPV4_UNICAST, NextHop::V4(nh)) => {
            let mut common = BytesMut::new();
            attrs.encode_without_next_hop(ctx, &mut common, Some(nh));
            let room = room(ctx, HEADER_LEN + LENGTH_FIELDS + common.len())?;
            out.reserve(
                routes.len() * 4
                    + (routes.len() / 256 + 1) * (HEADER_LEN + LENGTH_FIELDS + common.len()),
            );
            chunks(routes, add_path, room, |run| {
                update_message(out, ctx.max_message_size, |out| {
                    out.put_u16(0);
                    // `room` keeps the attributes within the message, so within u16.
                    out.put_u16(common.len() as u16);
                    out.put_slice(&common);
                    for n in run {
                        check_family(n, family)?;
                        nlri::encode(n, add_path, out);
                    }
                    Ok(())
                })
            })
        }
        _ => {
            let mut common = BytesMut::new();
            attrs.encode_without_next_hop(ctx, &mut common, None);
            let nh_len = match next_hop {
                NextHop::V4(_) => 4,
                NextHop::V6 {
                    link_local: None, ..
                } => 16,
                NextHop::V6 {
                    link_local: Some(_),
                    ..
                } => 32,
            };
            // Next hop length, next hop, reserved octet.
            let fixed = HEADER_LEN + LENGTH_FIELDS + common.len() + MP_OVERHEAD + 1 + nh_len + 1;
            chunks(routes, add_path, room(ctx, fixed)?, |run| {
                update_message(out, ctx.max_message_size, |out| {
                    out.put_u16(0);
                    let attrs_at = out.len();
                    out.put_u16(0);
                    encode_mp_reach(family, next_hop, run, ctx, out)?;
                    out.put_slice(&common);
                    patch_u16(out, attrs_at)?;
                    Ok(())
                })
            })
        }
    }
}

/// Appends UPDATEs withdrawing `routes` of `family` to `out`; returns how many messages were
/// written.
pub fn withdraw(
    ctx: &SessionContext,
    family: AfiSafi,
    routes: &[Nlri],
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    let add_path = ctx.add_path(family);
    if family == AfiSafi::IPV4_UNICAST {
        let room = room(ctx, HEADER_LEN + LENGTH_FIELDS)?;
        return chunks(routes, add_path, room, |run| {
            update_message(out, ctx.max_message_size, |out| {
                let len_at = out.len();
                out.put_u16(0);
                for n in run {
                    check_family(n, family)?;
                    nlri::encode(n, add_path, out);
                }
                patch_u16(out, len_at)?;
                out.put_u16(0);
                Ok(())
            })
        });
    }
    if !matches!(family.afi, Afi::IPV4 | Afi::IPV6) {
        return Err(EncodeError::UnsupportedFamily(family));
    }
    let room = room(ctx, HEADER_LEN + LENGTH_FIELDS + MP_OVERHEAD)?;
    chunks(routes, add_path, room, |run| {
        update_message(out, ctx.max_message_size, |out| {
            out.put_u16(0);
            let attrs_at = out.len();
            out.put_u16(0);
            encode_mp_unreach(family, run, ctx, out)?;
            patch_u16(out, attrs_at)?;
            Ok(())
        })
    })
}
