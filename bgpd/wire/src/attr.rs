//! Path attributes (RFC 4271 §4.3, §5): the interned attribute set [`PathAttrs`], the walk over an
//! UPDATE's attribute section with the error handling of RFC 7606, and the encoder.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use smallvec::SmallVec;

use crate::as_path::AsPath;
use crate::asn::Asn;
use crate::community::{Community, ExtCommunity, LargeCommunity};
use crate::error::{AttrAction, AttrError, Malformed, SessionError};
use crate::notification::UpdateError;
use crate::session::SessionContext;

/// Path attribute type codes (IANA "BGP Path Attributes").
pub mod type_code {
    /// ORIGIN (RFC 4271).
    pub const ORIGIN: u8 = 1;
    /// AS_PATH (RFC 4271).
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP (RFC 4271).
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC (RFC 4271).
    pub const MED: u8 = 4;
    /// LOCAL_PREF (RFC 4271).
    pub const LOCAL_PREF: u8 = 5;
    /// ATOMIC_AGGREGATE (RFC 4271).
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// AGGREGATOR (RFC 4271).
    pub const AGGREGATOR: u8 = 7;
    /// COMMUNITIES (RFC 1997).
    pub const COMMUNITIES: u8 = 8;
    /// ORIGINATOR_ID (RFC 4456).
    pub const ORIGINATOR_ID: u8 = 9;
    /// CLUSTER_LIST (RFC 4456).
    pub const CLUSTER_LIST: u8 = 10;
    /// MP_REACH_NLRI (RFC 4760).
    pub const MP_REACH_NLRI: u8 = 14;
    /// MP_UNREACH_NLRI (RFC 4760).
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// EXTENDED COMMUNITIES (RFC 4360).
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    /// AS4_PATH (RFC 6793).
    pub const AS4_PATH: u8 = 17;
    /// AS4_AGGREGATOR (RFC 6793).
    pub const AS4_AGGREGATOR: u8 = 18;
    /// LARGE_COMMUNITY (RFC 8092).
    pub const LARGE_COMMUNITIES: u8 = 32;
}

/// Attribute flag bits (RFC 4271 §4.3).
pub mod flag {
    /// Optional (else well-known).
    pub const OPTIONAL: u8 = 0x80;
    /// Transitive.
    pub const TRANSITIVE: u8 = 0x40;
    /// Partial: some speaker on the way did not recognize this optional transitive attribute.
    pub const PARTIAL: u8 = 0x20;
    /// Extended length: the length field has two octets.
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

use type_code as tc;

/// ORIGIN values (RFC 4271 §5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// Learned from an interior protocol (0).
    Igp,
    /// Learned from EGP (1).
    Egp,
    /// Learned some other way (2).
    Incomplete,
}

/// The next hop of a route: the NEXT_HOP attribute or the next hop of MP_REACH_NLRI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NextHop {
    /// An IPv4 next hop.
    V4(Ipv4Addr),
    /// An IPv6 next hop: a global address and, on a shared link, a link-local one (RFC 2545 §3).
    V6 {
        /// Global (or unique-local) address.
        global: Ipv6Addr,
        /// Link-local address, when sent.
        link_local: Option<Ipv6Addr>,
    },
}

/// AGGREGATOR (RFC 4271 §5.1.7), always with a four-octet AS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Aggregator {
    /// The AS that aggregated.
    pub asn: Asn,
    /// The BGP identifier of the speaker that aggregated.
    pub addr: Ipv4Addr,
}

/// An attribute this codec does not interpret, kept byte-exact so it can be passed on.
/// Only optional transitive ones are kept (RFC 4271 §5: unrecognized optional non-transitive
/// attributes are quietly ignored).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RawAttr {
    /// Flags as received, without the extended-length bit (the encoder picks it by length).
    pub flags: u8,
    /// Type code.
    pub type_code: u8,
    /// Value octets.
    pub value: Vec<u8>,
}

/// The path attributes of a route, without the NLRI-carrying MP_REACH/MP_UNREACH.
///
/// `Eq + Hash` so a speaker can intern sets in a map and share one `Arc<PathAttrs>` among all
/// routes that carry it. Empty lists mean "attribute absent" (RFC 7606 makes an empty
/// COMMUNITIES, EXTENDED COMMUNITIES, LARGE_COMMUNITY or CLUSTER_LIST malformed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PathAttrs {
    /// ORIGIN.
    pub origin: Option<Origin>,
    /// AS_PATH, with AS4_PATH merged in for two-octet sessions (RFC 6793 §4.2.3).
    pub as_path: Option<AsPath>,
    /// NEXT_HOP when decoded; for encoding, the next hop of the family being sent (an IPv6 one
    /// goes into MP_REACH_NLRI, see [`crate::pack`]).
    pub next_hop: Option<NextHop>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE.
    pub atomic_aggregate: bool,
    /// AGGREGATOR, with AS4_AGGREGATOR merged in for two-octet sessions.
    pub aggregator: Option<Aggregator>,
    /// COMMUNITIES. Up to four are held inline, in the space a `Vec` takes anyway: decoding an
    /// UPDATE with few communities then needs no allocation for them.
    pub communities: SmallVec<[Community; 4]>,
    /// EXTENDED COMMUNITIES.
    pub ext_communities: Vec<ExtCommunity>,
    /// LARGE_COMMUNITY.
    pub large_communities: Vec<LargeCommunity>,
    /// ORIGINATOR_ID (route reflection).
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST (route reflection).
    pub cluster_list: Vec<Ipv4Addr>,
    /// Unrecognized optional transitive attributes, in the order received.
    pub unknown: Vec<RawAttr>,
}

impl PathAttrs {
    /// Sets the Partial bit on every unrecognized attribute, as RFC 4271 §5 requires when a
    /// speaker passes them on. Call it on attributes learned from a peer before advertising
    /// them to others (not on attributes this speaker originates).
    pub fn set_partial_on_unknown(&mut self) {
        for a in &mut self.unknown {
            a.flags |= flag::PARTIAL;
        }
    }

    /// Empties the set but keeps the lists' allocations, for decoding into it again.
    pub(crate) fn clear(&mut self) {
        let PathAttrs {
            origin,
            as_path,
            next_hop,
            med,
            local_pref,
            atomic_aggregate,
            aggregator,
            communities,
            ext_communities,
            large_communities,
            originator_id,
            cluster_list,
            unknown,
        } = self;
        // Destructured so a new field cannot be forgotten here.
        (*origin, *as_path, *next_hop, *med, *local_pref) = (None, None, None, None, None);
        (*atomic_aggregate, *aggregator, *originator_id) = (false, None, None);
        communities.clear();
        ext_communities.clear();
        large_communities.clear();
        cluster_list.clear();
        unknown.clear();
    }
}

/// The flags (Optional, Transitive) a known attribute must carry, or `None` if unknown.
fn expected_flags(code: u8) -> Option<u8> {
    const WELL_KNOWN: u8 = flag::TRANSITIVE;
    const OPT_TRANS: u8 = flag::OPTIONAL | flag::TRANSITIVE;
    const OPT_NON_TRANS: u8 = flag::OPTIONAL;
    Some(match code {
        tc::ORIGIN | tc::AS_PATH | tc::NEXT_HOP | tc::LOCAL_PREF | tc::ATOMIC_AGGREGATE => {
            WELL_KNOWN
        }
        tc::MED
        | tc::ORIGINATOR_ID
        | tc::CLUSTER_LIST
        | tc::MP_REACH_NLRI
        | tc::MP_UNREACH_NLRI => OPT_NON_TRANS,
        tc::AGGREGATOR
        | tc::COMMUNITIES
        | tc::EXTENDED_COMMUNITIES
        | tc::AS4_PATH
        | tc::AS4_AGGREGATOR
        | tc::LARGE_COMMUNITIES => OPT_TRANS,
        _ => return None,
    })
}

/// The RFC 7606 §7 action for a malformed instance of a known, non-multiprotocol attribute.
fn action_for(code: u8) -> AttrAction {
    match code {
        // §7.6, §7.7; AS4_PATH and AS4_AGGREGATOR: RFC 6793 §6 as updated by RFC 7606 §7.
        tc::ATOMIC_AGGREGATE | tc::AGGREGATOR | tc::AS4_PATH | tc::AS4_AGGREGATOR => {
            AttrAction::AttributeDiscard
        }
        // §7.1-7.5, §7.8-7.10, §7.14; LARGE_COMMUNITY: RFC 8092 §6.
        _ => AttrAction::TreatAsWithdraw,
    }
}

/// What the attribute walk found; attributes and errors go straight into the UPDATE being built.
pub(crate) struct Walked<'a, 'u> {
    pub attrs: &'u mut PathAttrs,
    pub errors: &'u mut Vec<AttrError>,
    /// MP_REACH_NLRI as (flags, value), parsed by the UPDATE decoder.
    pub mp_reach: Option<(u8, &'a [u8])>,
    /// MP_UNREACH_NLRI as (flags, value).
    pub mp_unreach: Option<(u8, &'a [u8])>,
    /// Type codes seen, valid or not, for the missing-attribute check (bit per code).
    seen: [u64; 4],
}

impl<'u> Walked<'_, 'u> {
    /// Nothing walked yet; attributes and errors are to go into `attrs` and `errors`.
    pub fn new(attrs: &'u mut PathAttrs, errors: &'u mut Vec<AttrError>) -> Self {
        Walked {
            attrs,
            errors,
            mp_reach: None,
            mp_unreach: None,
            seen: [0; 4],
        }
    }

    fn mark_seen(&mut self, code: u8) -> bool {
        let (word, bit) = (usize::from(code / 64), 1u64 << (code % 64));
        let before = self.seen[word] & bit != 0;
        self.seen[word] |= bit;
        before
    }

    /// Whether an attribute of type `code` was present (even if malformed).
    pub fn saw(&self, code: u8) -> bool {
        self.seen[usize::from(code / 64)] & (1u64 << (code % 64)) != 0
    }

    fn fail(&mut self, code: u8, reason: Malformed) {
        self.errors.push(AttrError {
            type_code: code,
            reason,
            action: action_for(code),
        });
    }
}

/// Rebuilds one whole attribute (flags, type, length, value) for NOTIFICATION data.
pub(crate) fn whole(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(value.len() + 4);
    put_attr(&mut out, flags & !flag::EXTENDED_LENGTH, code, value);
    out.to_vec()
}

fn u32_at(v: &[u8]) -> u32 {
    u32::from_be_bytes([v[0], v[1], v[2], v[3]])
}

fn ipv4_at(v: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(v[0], v[1], v[2], v[3])
}

/// Walks the path attribute section of an UPDATE (RFC 4271 §4.3) under RFC 7606 into `w`
/// (filled in place: returning it would cost a copy that stalls on the stores just made).
/// Returns `Err` only for errors that need a session reset.
pub(crate) fn walk<'a>(
    mut section: &'a [u8],
    ctx: &SessionContext,
    w: &mut Walked<'a, '_>,
) -> Result<(), SessionError> {
    let mut as4_path = None;
    let mut as4_aggregator = None;
    while !section.is_empty() {
        // RFC 7606 §4: too few octets for an attribute header, or a length that overruns the
        // section: treat-as-withdraw, and the Total Attribute Length still locates the NLRI.
        let Some((flags, code, value, rest)) = split_attr(section) else {
            w.errors.push(AttrError {
                type_code: section.get(1).copied().unwrap_or(0),
                reason: Malformed::AttributeOverrun,
                action: AttrAction::TreatAsWithdraw,
            });
            break;
        };
        section = rest;
        let is_mp = code == tc::MP_REACH_NLRI || code == tc::MP_UNREACH_NLRI;
        if w.mark_seen(code) {
            if is_mp {
                // RFC 7606 §3 g: a repeated MP_REACH_NLRI or MP_UNREACH_NLRI is fatal.
                return Err(SessionError::update(
                    Malformed::Duplicate(code),
                    UpdateError::MalformedAttributeList,
                    Vec::new(),
                ));
            }
            // RFC 7606 §3 g: keep the first, discard the others.
            w.errors.push(AttrError {
                type_code: code,
                reason: Malformed::Duplicate(code),
                action: AttrAction::AttributeDiscard,
            });
            continue;
        }
        let Some(expected) = expected_flags(code) else {
            if flags & flag::OPTIONAL == 0 {
                // RFC 4271 §6.3, not relaxed by RFC 7606.
                return Err(SessionError::update(
                    Malformed::UnrecognizedWellKnown(code),
                    UpdateError::UnrecognizedWellKnownAttribute,
                    whole(flags, code, value),
                ));
            }
            if flags & flag::TRANSITIVE != 0 {
                w.attrs.unknown.push(RawAttr {
                    flags: flags & !flag::EXTENDED_LENGTH,
                    type_code: code,
                    value: value.to_vec(),
                });
            }
            continue;
        };
        // RFC 7606 §3 c: Optional/Transitive flags that conflict with the type make the
        // attribute malformed, handled as that attribute's malformation.
        if flags & (flag::OPTIONAL | flag::TRANSITIVE) != expected {
            let reason = Malformed::AttributeFlags {
                type_code: code,
                flags,
            };
            if is_mp {
                return Err(SessionError::update(
                    reason,
                    UpdateError::AttributeFlagsError,
                    whole(flags, code, value),
                ));
            }
            w.fail(code, reason);
            continue;
        }
        let bad_len = || Malformed::AttributeLength {
            type_code: code,
            len: value.len(),
        };
        let four = ctx.four_octet_as;
        match code {
            tc::MP_REACH_NLRI => w.mp_reach = Some((flags, value)),
            tc::MP_UNREACH_NLRI => w.mp_unreach = Some((flags, value)),
            // RFC 7606 §7.1.
            tc::ORIGIN => match value {
                [0] => w.attrs.origin = Some(Origin::Igp),
                [1] => w.attrs.origin = Some(Origin::Egp),
                [2] => w.attrs.origin = Some(Origin::Incomplete),
                [v] => w.fail(code, Malformed::Origin(*v)),
                _ => w.fail(code, bad_len()),
            },
            // RFC 7606 §7.2.
            tc::AS_PATH => {
                // Decoded where it stays (see `AsPath::decode_into`).
                let path = w.attrs.as_path.insert(AsPath::default());
                if !path.decode_into(value, if four { 4 } else { 2 }) {
                    w.attrs.as_path = None;
                    w.fail(code, Malformed::AsPath(code));
                }
            }
            // RFC 7606 §7.3: a NEXT_HOP of the wrong length, or one that is no host address.
            tc::NEXT_HOP => match value {
                [_, _, _, _] => {
                    let nh = ipv4_at(value);
                    if nh.is_unspecified() || nh.is_multicast() || nh.octets()[0] >= 240 {
                        w.fail(code, Malformed::NextHop(nh));
                    } else {
                        w.attrs.next_hop = Some(NextHop::V4(nh));
                    }
                }
                _ => w.fail(code, bad_len()),
            },
            // RFC 7606 §7.4, §7.5.
            tc::MED | tc::LOCAL_PREF => match value {
                [_, _, _, _] if code == tc::MED => w.attrs.med = Some(u32_at(value)),
                [_, _, _, _] => w.attrs.local_pref = Some(u32_at(value)),
                _ => w.fail(code, bad_len()),
            },
            // RFC 7606 §7.6.
            tc::ATOMIC_AGGREGATE => match value {
                [] => w.attrs.atomic_aggregate = true,
                _ => w.fail(code, bad_len()),
            },
            // RFC 7606 §7.7: six or eight octets as the session dictates; AS 0 per RFC 7607.
            tc::AGGREGATOR => match (four, value.len()) {
                (true, 8) if u32_at(value) != 0 => {
                    w.attrs.aggregator = Some(Aggregator {
                        asn: Asn(u32_at(value)),
                        addr: ipv4_at(&value[4..]),
                    })
                }
                (false, 6) if value[..2] != [0, 0] => {
                    let asn = Asn(u32::from(u16::from_be_bytes([value[0], value[1]])));
                    w.attrs.aggregator = Some(Aggregator {
                        asn,
                        addr: ipv4_at(&value[2..]),
                    })
                }
                _ => w.fail(code, bad_len()),
            },
            // RFC 7606 §7.8.
            tc::COMMUNITIES => match multiple_of(value, 4) {
                Some(items) => {
                    // Pushed in place after one reservation: cheaper than `extend` or than
                    // building the list elsewhere and moving it in.
                    let list = &mut w.attrs.communities;
                    list.reserve_exact(items.len());
                    for c in items {
                        list.push(Community(u32_at(c)));
                    }
                }
                None => w.fail(code, bad_len()),
            },
            // RFC 7606 §7.9.
            tc::ORIGINATOR_ID => match value {
                [_, _, _, _] => w.attrs.originator_id = Some(ipv4_at(value)),
                _ => w.fail(code, bad_len()),
            },
            // RFC 7606 §7.10.
            tc::CLUSTER_LIST => match multiple_of(value, 4) {
                Some(items) => w.attrs.cluster_list.extend(items.map(ipv4_at)),
                None => w.fail(code, bad_len()),
            },
            // RFC 7606 §7.14.
            tc::EXTENDED_COMMUNITIES => match multiple_of(value, 8) {
                Some(items) => w.attrs.ext_communities.extend(
                    items.map(|c| ExtCommunity([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])),
                ),
                None => w.fail(code, bad_len()),
            },
            // RFC 8092 §6: a length that is not a non-zero multiple of 12 is treat-as-withdraw.
            tc::LARGE_COMMUNITIES => match multiple_of(value, 12) {
                Some(items) => w
                    .attrs
                    .large_communities
                    .extend(items.map(|c| LargeCommunity {
                        global: u32_at(c),
                        local1: u32_at(&c[4..]),
                        local2: u32_at(&c[8..]),
                    })),
                None => w.fail(code, bad_len()),
            },
            // RFC 6793 §3: a four-octet session ignores AS4_PATH and AS4_AGGREGATOR; otherwise
            // malformed ones are discarded (RFC 6793 §6).
            tc::AS4_PATH if !four => match AsPath::decode(value, 4) {
                // RFC 6793 §6: confederation segments have no place in AS4_PATH.
                Some(p) if !p.segments.iter().any(|s| s.kind.is_confed()) => as4_path = Some(p),
                _ => w.fail(code, Malformed::AsPath(code)),
            },
            tc::AS4_AGGREGATOR if !four => match value.len() {
                8 if u32_at(value) != 0 => {
                    as4_aggregator = Some(Aggregator {
                        asn: Asn(u32_at(value)),
                        addr: ipv4_at(&value[4..]),
                    })
                }
                _ => w.fail(code, bad_len()),
            },
            _ => {}
        }
    }
    merge_as4(w.attrs, as4_path, as4_aggregator);
    Ok(())
}

/// RFC 6793 §4.2.3: AS4 attributes count only when AGGREGATOR (if any) carries AS_TRANS.
fn merge_as4(attrs: &mut PathAttrs, as4_path: Option<AsPath>, as4_aggregator: Option<Aggregator>) {
    if attrs.aggregator.is_some_and(|a| a.asn != Asn::TRANS) {
        return;
    }
    if let Some(agg) = as4_aggregator.filter(|_| attrs.aggregator.is_some()) {
        attrs.aggregator = Some(agg);
    }
    if let Some(as4) = as4_path {
        attrs.as_path = attrs.as_path.take().map(|path| path.merge_as4(as4));
    }
}

/// `value` cut into `n`-octet items, if its length is a non-zero multiple of `n`.
fn multiple_of(value: &[u8], n: usize) -> Option<std::slice::ChunksExact<'_, u8>> {
    (!value.is_empty() && value.len() % n == 0).then(|| value.chunks_exact(n))
}

/// Splits one attribute off the front of `s`: (flags, type, value, rest).
fn split_attr(s: &[u8]) -> Option<(u8, u8, &[u8], &[u8])> {
    let (&flags, rest) = s.split_first()?;
    let (&code, rest) = rest.split_first()?;
    let (len, rest) = if flags & flag::EXTENDED_LENGTH != 0 {
        let (l, r) = rest.split_first_chunk::<2>()?;
        (usize::from(u16::from_be_bytes(*l)), r)
    } else {
        let (&l, r) = rest.split_first()?;
        (usize::from(l), r)
    };
    (rest.len() >= len).then(|| {
        let (value, rest) = rest.split_at(len);
        (flags, code, value, rest)
    })
}

/// Appends one attribute, choosing the extended-length flag by the value's size.
pub(crate) fn put_attr(out: &mut BytesMut, flags: u8, code: u8, value: &[u8]) {
    if let Ok(len) = u8::try_from(value.len()) {
        out.put_u8(flags & !flag::EXTENDED_LENGTH);
        out.put_u8(code);
        out.put_u8(len);
    } else {
        out.put_u8(flags | flag::EXTENDED_LENGTH);
        out.put_u8(code);
        // Values longer than 65535 octets cannot fit any message; callers bound them by the
        // message size check that follows.
        out.put_u16(u16::try_from(value.len()).unwrap_or(u16::MAX));
    }
    out.put_slice(value);
}

/// Appends an attribute whose value `fill` writes, patching its length afterwards.
pub(crate) fn put_attr_with(
    out: &mut BytesMut,
    flags: u8,
    code: u8,
    fill: impl FnOnce(&mut BytesMut),
) {
    let at = out.len();
    out.put_u8(flags | flag::EXTENDED_LENGTH);
    out.put_u8(code);
    out.put_u16(0);
    fill(out);
    let len = out.len() - at - 4;
    if let Ok(short) = u8::try_from(len) {
        // Fits one octet: drop the extended length so the encoding is canonical.
        out[at] = flags & !flag::EXTENDED_LENGTH;
        out[at + 2] = short;
        out.copy_within(at + 4.., at + 3);
        out.truncate(out.len() - 1);
    } else {
        let len16 = u16::try_from(len).unwrap_or(u16::MAX);
        out[at + 2..at + 4].copy_from_slice(&len16.to_be_bytes());
    }
}

impl PathAttrs {
    /// Appends every attribute except NEXT_HOP (the caller knows whether the family takes it)
    /// in type-code order, then the unrecognized ones, as this session needs them: two-octet
    /// ASes plus AS4_PATH/AS4_AGGREGATOR when the peer lacks four-octet AS support.
    pub(crate) fn encode_without_next_hop(
        &self,
        ctx: &SessionContext,
        out: &mut BytesMut,
        next_hop_v4: Option<Ipv4Addr>,
    ) {
        const WK: u8 = flag::TRANSITIVE;
        const OT: u8 = flag::OPTIONAL | flag::TRANSITIVE;
        const ON: u8 = flag::OPTIONAL;
        let four = ctx.four_octet_as;
        if let Some(o) = self.origin {
            let v = match o {
                Origin::Igp => 0,
                Origin::Egp => 1,
                Origin::Incomplete => 2,
            };
            put_attr(out, WK, tc::ORIGIN, &[v]);
        }
        if let Some(p) = &self.as_path {
            put_attr_with(out, WK, tc::AS_PATH, |o| {
                p.encode(o, if four { 4 } else { 2 }, false)
            });
        }
        if let Some(nh) = next_hop_v4 {
            put_attr(out, WK, tc::NEXT_HOP, &nh.octets());
        }
        if let Some(med) = self.med {
            put_attr(out, ON, tc::MED, &med.to_be_bytes());
        }
        if let Some(lp) = self.local_pref {
            put_attr(out, WK, tc::LOCAL_PREF, &lp.to_be_bytes());
        }
        if self.atomic_aggregate {
            put_attr(out, WK, tc::ATOMIC_AGGREGATE, &[]);
        }
        if let Some(a) = self.aggregator {
            put_attr_with(out, OT, tc::AGGREGATOR, |o| {
                if four {
                    o.put_u32(a.asn.0);
                } else {
                    o.put_u16(a.asn.to_two_octet());
                }
                o.put_slice(&a.addr.octets());
            });
        }
        if !self.communities.is_empty() {
            put_attr_with(out, OT, tc::COMMUNITIES, |o| {
                self.communities.iter().for_each(|c| o.put_u32(c.0))
            });
        }
        if let Some(id) = self.originator_id {
            put_attr(out, ON, tc::ORIGINATOR_ID, &id.octets());
        }
        if !self.cluster_list.is_empty() {
            put_attr_with(out, ON, tc::CLUSTER_LIST, |o| {
                self.cluster_list
                    .iter()
                    .for_each(|c| o.put_slice(&c.octets()))
            });
        }
        if !self.ext_communities.is_empty() {
            put_attr_with(out, OT, tc::EXTENDED_COMMUNITIES, |o| {
                self.ext_communities.iter().for_each(|c| o.put_slice(&c.0))
            });
        }
        if !four {
            // RFC 6793 §4.2.2: an old peer gets AS_TRANS above, and the real ASes here.
            if let Some(p) = self.as_path.as_ref().filter(|p| p.needs_four_octets()) {
                put_attr_with(out, OT, tc::AS4_PATH, |o| p.encode(o, 4, true));
            }
            if let Some(a) = self.aggregator.filter(|a| !a.asn.is_two_octet()) {
                put_attr_with(out, OT, tc::AS4_AGGREGATOR, |o| {
                    o.put_u32(a.asn.0);
                    o.put_slice(&a.addr.octets());
                });
            }
        }
        if !self.large_communities.is_empty() {
            put_attr_with(out, OT, tc::LARGE_COMMUNITIES, |o| {
                for c in &self.large_communities {
                    o.put_u32(c.global);
                    o.put_u32(c.local1);
                    o.put_u32(c.local2);
                }
            });
        }
        for a in &self.unknown {
            put_attr(out, a.flags, a.type_code, &a.value);
        }
    }
}

/// The well-known attribute an UPDATE announcing routes lacks, if any (RFC 4271 §5, with
/// NEXT_HOP needed only for routes in the plain NLRI field, RFC 4760 §3).
pub(crate) fn missing_well_known(w: &Walked<'_, '_>, plain_nlri: bool) -> Option<u8> {
    [tc::ORIGIN, tc::AS_PATH, tc::NEXT_HOP]
        .into_iter()
        .find(|&code| !w.saw(code) && (code != tc::NEXT_HOP || plain_nlri))
}

/// Records an RFC 7606 §3 d missing-attribute error.
pub(crate) fn record_missing(w: &mut Walked<'_, '_>, code: u8) {
    w.errors.push(AttrError {
        type_code: code,
        reason: Malformed::MissingWellKnown(code),
        action: AttrAction::TreatAsWithdraw,
    });
}
