//! The prefix encoding shared by the withdrawn routes, NLRI and MP_(UN)REACH_NLRI fields
//! (RFC 4271 §4.3, RFC 4760 §5), with ADD-PATH path identifiers (RFC 7911 §3). This is the hot
//! path of route propagation: one pass, no allocation per prefix.

use bytes::{BufMut, BytesMut};
use nom::IResult;
use nom::number::complete::{be_u8, be_u32};

use crate::family::Afi;
use crate::prefix::{Ipv4Prefix, Ipv6Prefix, Nlri, Prefix};

type Res<'a, T> = IResult<&'a [u8], T, ()>;

/// One prefix: length octet, then just enough octets for the length.
fn prefix_bits<const W: usize>(i: &[u8]) -> Res<'_, ([u8; W], u8)> {
    let (i, len) = be_u8(i)?;
    let n = usize::from(len).div_ceil(8);
    if n > W {
        return Err(nom::Err::Failure(()));
    }
    let (significant, rest) = i.split_at_checked(n).ok_or(nom::Err::Failure(()))?;
    let mut octets = [0u8; W];
    octets[..n].copy_from_slice(significant);
    Ok((rest, (octets, len)))
}

fn ipv4(i: &[u8]) -> Res<'_, Prefix> {
    let (i, (o, len)) = prefix_bits::<4>(i)?;
    Ok((
        i,
        Prefix::V4(Ipv4Prefix::masked(u32::from_be_bytes(o), len)),
    ))
}

fn ipv6(i: &[u8]) -> Res<'_, Prefix> {
    let (i, (o, len)) = prefix_bits::<16>(i)?;
    Ok((
        i,
        Prefix::V6(Ipv6Prefix::masked(u128::from_be_bytes(o), len)),
    ))
}

/// Decodes every prefix of `section` (of `afi`, with path ids when `add_path`) into `out`.
/// `Err` when a length exceeds the address width or a prefix runs past the section.
pub(crate) fn decode(
    section: &[u8],
    afi: Afi,
    add_path: bool,
    out: &mut Vec<Nlri>,
) -> Result<(), ()> {
    // Sized by the message, never by a length field: a /24 takes four octets.
    out.reserve(section.len() / 4);
    if afi == Afi::IPV4 {
        decode_with(section, add_path, out, ipv4)
    } else {
        decode_with(section, add_path, out, ipv6)
    }
}

/// The loop of [`decode`], monomorphic in the prefix parser so it inlines.
fn decode_with(
    section: &[u8],
    add_path: bool,
    out: &mut Vec<Nlri>,
    prefix: impl Fn(&[u8]) -> Res<'_, Prefix>,
) -> Result<(), ()> {
    let mut i = section;
    while !i.is_empty() {
        let (rest, path_id) = if add_path {
            let (rest, id) = be_u32::<_, ()>(i).map_err(|_| ())?;
            (rest, Some(id))
        } else {
            (i, None)
        };
        let (rest, prefix) = prefix(rest).map_err(|_| ())?;
        out.push(Nlri { path_id, prefix });
        i = rest;
    }
    Ok(())
}

/// Octets `n` takes on the wire.
pub(crate) fn wire_len(n: &Nlri, add_path: bool) -> usize {
    n.prefix.wire_len() + if add_path { 4 } else { 0 }
}

/// Appends one entry; a missing path id is sent as 0 when `add_path`.
pub(crate) fn encode(n: &Nlri, add_path: bool, out: &mut BytesMut) {
    if add_path {
        out.put_u32(n.path_id.unwrap_or(0));
    }
    let len = n.prefix.length();
    let bytes = usize::from(len).div_ceil(8);
    out.put_u8(len);
    match n.prefix {
        Prefix::V4(p) => out.put_slice(&p.addr().octets()[..bytes]),
        Prefix::V6(p) => out.put_slice(&p.addr().octets()[..bytes]),
    }
}
