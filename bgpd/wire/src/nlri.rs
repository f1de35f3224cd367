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
    // Sized from the message, never from a length field, and without a counting pass: its
    // serial dependence on each length octet costs as much as the decoding. An entry takes at
    // least 3 octets for IPv4 /9 and longer and 5 for IPv6 /25 and longer, so only shorter
    // prefixes can cost a reallocation. The list is a third larger than needed for IPv4 /24s,
    // up to 3.4 times for IPv6 /128s: memory held only while the UPDATE is.
    let shortest = if afi == Afi::IPV4 { 3 } else { 5 } + if add_path { 4 } else { 0 };
    let capacity = section.len() / shortest;
    if out.capacity() == 0 {
        // A fresh list (the common case): one direct allocation, not the growth path.
        *out = Vec::with_capacity(capacity);
    } else {
        out.reserve(capacity);
    }
    if afi == Afi::IPV4 {
        decode_with::<4>(section, add_path, out, |o, rotate, len| {
            Prefix::V4(Ipv4Prefix::masked(
                u32::from_be_bytes(o).rotate_left(rotate),
                len,
            ))
        })
    } else {
        decode_with::<16>(section, add_path, out, |o, rotate, len| {
            Prefix::V6(Ipv6Prefix::masked(
                u128::from_be_bytes(o).rotate_left(rotate),
                len,
            ))
        })
    }
}

/// The loop of [`decode`] for addresses of `W` octets. This is the hottest loop of the daemon,
/// so it reads with slice patterns rather than parser combinators, and every entry with one
/// whole-address load: the `W` octets after the length when the section has them, else the `W`
/// octets that end with the entry (rotated so the address leads). The mask in `prefix` drops
/// the octets that belong to neighbouring entries. Assembling the octets one by one instead
/// would stall the load that reads them back as one integer.
#[inline(always)]
fn decode_with<const W: usize>(
    section: &[u8],
    add_path: bool,
    out: &mut Vec<Nlri>,
    prefix: impl Fn([u8; W], u32, u8) -> Prefix,
) -> Result<(), ()> {
    let mut i = section;
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
        let (octets, rotate) = if let Some(whole) = rest.first_chunk::<W>() {
            (*whole, 0)
        } else if let Some(window) = ending_at(section, section.len() - rest.len() + n) {
            // The last entries of a section: the load ends with the entry.
            (window, 8 * (W - n) as u32)
        } else {
            // A section shorter than one address.
            let mut o = [0u8; W];
            for (d, s) in o.iter_mut().zip(&rest[..n]) {
                *d = *s;
            }
            (o, 0)
        };
        out.push(Nlri {
            path_id,
            prefix: prefix(octets, rotate, len),
        });
        i = &rest[n..];
    }
    Ok(())
}

/// The `W` octets of `section` that end at offset `end`, if there are that many.
#[inline(always)]
fn ending_at<const W: usize>(section: &[u8], end: usize) -> Option<[u8; W]> {
    let window = section.get(end.checked_sub(W)?..end)?;
    window.try_into().ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A prefix of `len` bits from an address whose octets all differ, so a misplaced octet
    /// shows.
    fn prefix(afi: Afi, len: u8) -> Prefix {
        if afi == Afi::IPV4 {
            Prefix::V4(Ipv4Prefix::masked(0xc1a2_b3d4, len))
        } else {
            Prefix::V6(Ipv6Prefix::masked(
                0x2001_0db8_a1b2_c3d4_e5f6_0718_293a_4b5c,
                len,
            ))
        }
    }

    fn round_trip(afi: Afi, entries: &[Prefix], add_path: bool) {
        let want: Vec<Nlri> = entries
            .iter()
            .zip(1..)
            .map(|(&p, id)| Nlri {
                path_id: add_path.then_some(id),
                prefix: p,
            })
            .collect();
        let mut wire = BytesMut::new();
        want.iter().for_each(|n| encode(n, add_path, &mut wire));
        let mut got = Vec::new();
        assert_eq!(decode(&wire, afi, add_path, &mut got), Ok(()), "{want:?}");
        assert_eq!(got, want);
    }

    /// Every length first, alone, and last: the three ways an address is loaded (after the
    /// length, ending with the entry, octet by octet in a section shorter than an address).
    #[test]
    fn every_length_decodes_wherever_it_sits() {
        for (afi, max, neighbours) in [(Afi::IPV4, 32, [8, 24]), (Afi::IPV6, 128, [16, 48])] {
            for len in 0..=max {
                let p = prefix(afi, len);
                for add_path in [false, true] {
                    round_trip(afi, &[p], add_path);
                    for n in neighbours {
                        let q = prefix(afi, n);
                        round_trip(afi, &[q, p], add_path);
                        round_trip(afi, &[p, q], add_path);
                        round_trip(afi, &[q, q, p], add_path);
                    }
                }
            }
        }
    }

    #[test]
    fn lengths_past_the_width_or_the_section_are_errors() {
        let mut out = Vec::new();
        assert_eq!(
            decode(&[33, 1, 2, 3, 4], Afi::IPV4, false, &mut out),
            Err(())
        );
        assert_eq!(decode(&[24, 10, 0], Afi::IPV4, false, &mut out), Err(()));
        assert_eq!(decode(&[0, 0, 0], Afi::IPV4, true, &mut out), Err(()));
        let mut v6 = vec![129];
        v6.extend([0; 16]);
        assert_eq!(decode(&v6, Afi::IPV6, false, &mut out), Err(()));
    }
}
