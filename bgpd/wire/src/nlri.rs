//! The prefix encoding shared by the withdrawn routes, NLRI and MP_(UN)REACH_NLRI fields
//! (RFC 4271 §4.3, RFC 4760 §5), with ADD-PATH path identifiers (RFC 7911 §3). This is the hot
//! path of route propagation: one pass, no allocation per prefix.

use bytes::{BufMut, BytesMut};

use crate::family::Afi;
use crate::prefix::{Ipv4Prefix, Ipv6Prefix, Nlri, Prefix};

/// Decodes every prefix of `section` (of `afi`, with path ids when `add_path`) into `out`.
/// `Err` when a length exceeds the address width or a prefix runs past the section.
pub(crate) fn decode(
    section: &[u8],
    afi: Afi,
    add_path: bool,
    out: &mut Vec<Nlri>,
) -> Result<(), ()> {
    // Sized from the message, never from a length field, and without a counting pass (this loop
    // is hot): an entry is at least 4 octets for IPv4 /17–/24 and 7 for IPv6 /41–/48, the
    // common lengths; shorter ones cost one reallocation.
    let typical = if afi == Afi::IPV4 { 4 } else { 7 } + if add_path { 4 } else { 0 };
    out.reserve(section.len() / typical);
    if afi == Afi::IPV4 {
        decode_with::<4>(section, add_path, out, |o, len| {
            Prefix::V4(Ipv4Prefix::masked(u32::from_be_bytes(o), len))
        })
    } else {
        decode_with::<16>(section, add_path, out, |o, len| {
            Prefix::V6(Ipv6Prefix::masked(u128::from_be_bytes(o), len))
        })
    }
}

/// The loop of [`decode`] for addresses of `W` octets. This is the hottest loop of the daemon,
/// so it reads with slice patterns rather than parser combinators: when `W` octets are left it
/// loads a whole address and lets the mask drop what belongs to the next entry.
#[inline(always)]
fn decode_with<const W: usize>(
    mut i: &[u8],
    add_path: bool,
    out: &mut Vec<Nlri>,
    prefix: impl Fn([u8; W], u8) -> Prefix,
) -> Result<(), ()> {
    while !i.is_empty() {
        let path_id = if add_path {
            let (id, rest) = i.split_first_chunk::<4>().ok_or(())?;
            i = rest;
            Some(u32::from_be_bytes(*id))
        } else {
            None
        };
        let (&len, rest) = i.split_first().ok_or(())?;
        let n = usize::from(len).div_ceil(8);
        if n > W || rest.len() < n {
            return Err(());
        }
        let octets = match rest.first_chunk::<W>() {
            Some(whole) => *whole,
            // The last entry of a field: a byte loop, as a memcpy call costs more for so little.
            None => {
                let mut o = [0u8; W];
                for (d, s) in o.iter_mut().zip(&rest[..n]) {
                    *d = *s;
                }
                o
            }
        };
        out.push(Nlri {
            path_id,
            prefix: prefix(octets, len),
        });
        i = &rest[n..];
    }
    Ok(())
}

/// Octets `n` takes on the wire.
#[inline]
pub(crate) fn wire_len(n: &Nlri, add_path: bool) -> usize {
    n.prefix.wire_len() + if add_path { 4 } else { 0 }
}

/// Appends one entry; a missing path id is sent as 0 when `add_path`.
#[inline]
pub(crate) fn encode(n: &Nlri, add_path: bool, out: &mut BytesMut) {
    if add_path {
        out.put_u32(n.path_id.unwrap_or(0));
    }
    let len = n.prefix.length();
    let used = usize::from(len).div_ceil(8);
    // One fixed-size append of the length and the whole address, then drop the octets past the
    // length: cheaper in this loop than several small writes or a variable-length copy.
    match n.prefix {
        Prefix::V4(p) => {
            let [a, b, c, d] = p.addr().octets();
            out.extend_from_slice(&[len, a, b, c, d]);
            out.truncate(out.len() - (4 - used));
        }
        Prefix::V6(p) => {
            let mut entry = [len; 17];
            entry[1..].copy_from_slice(&p.addr().octets());
            out.extend_from_slice(&entry);
            out.truncate(out.len() - (16 - used));
        }
    }
}
