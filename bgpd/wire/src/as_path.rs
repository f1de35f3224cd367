//! AS_PATH and AS4_PATH (RFC 4271 §4.3, RFC 6793, RFC 5065 confederation segments).

use bytes::{BufMut, BytesMut};
use smallvec::{SmallVec, smallvec};

use crate::asn::Asn;

/// Most ASes one segment holds (its length field is one octet).
const MAX_SEGMENT: usize = 255;

/// ASes a segment holds without a heap allocation: most Internet paths are no longer.
const INLINE_ASNS: usize = 8;

/// The kind of an AS path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SegmentKind {
    /// AS_SET (1): unordered, counts as one hop.
    Set,
    /// AS_SEQUENCE (2): ordered, nearest AS first.
    Sequence,
    /// AS_CONFED_SEQUENCE (3, RFC 5065).
    ConfedSequence,
    /// AS_CONFED_SET (4, RFC 5065).
    ConfedSet,
}

impl SegmentKind {
    fn from_octet(t: u8) -> Option<Self> {
        Some(match t {
            1 => SegmentKind::Set,
            2 => SegmentKind::Sequence,
            3 => SegmentKind::ConfedSequence,
            4 => SegmentKind::ConfedSet,
            _ => return None,
        })
    }

    fn octet(self) -> u8 {
        match self {
            SegmentKind::Set => 1,
            SegmentKind::Sequence => 2,
            SegmentKind::ConfedSequence => 3,
            SegmentKind::ConfedSet => 4,
        }
    }

    pub(crate) fn is_confed(self) -> bool {
        matches!(self, SegmentKind::ConfedSequence | SegmentKind::ConfedSet)
    }
}

/// One segment of an AS path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AsSegment {
    /// Set or sequence, plain or confederation.
    pub kind: SegmentKind,
    /// The ASes, in wire order. Up to eight are held inline: most Internet paths are that
    /// short, and decoding one UPDATE then needs no allocation for its path.
    pub asns: SmallVec<[Asn; INLINE_ASNS]>,
}

/// An AS path: its segments in wire order. Always four-octet ASes; the two-octet form and
/// AS4_PATH exist only on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AsPath {
    /// The segments, nearest first; one (the common case) is held inline.
    pub segments: SmallVec<[AsSegment; 1]>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE (empty when `asns` is).
    pub fn sequence(asns: impl IntoIterator<Item = Asn>) -> Self {
        let asns: SmallVec<[Asn; INLINE_ASNS]> = asns.into_iter().collect();
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: smallvec![AsSegment {
                kind: SegmentKind::Sequence,
                asns,
            }],
        }
    }

    /// The length used by best-path selection (RFC 4271 §9.1.2.2): a set counts as one,
    /// confederation segments count as nothing (RFC 5065 §5.3).
    pub fn path_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentKind::Sequence => s.asns.len(),
                SegmentKind::Set => 1,
                SegmentKind::ConfedSequence | SegmentKind::ConfedSet => 0,
            })
            .sum()
    }

    /// The AS the route was learned from: the first AS of a leading AS_SEQUENCE.
    pub fn first_asn(&self) -> Option<Asn> {
        match self.segments.first() {
            Some(AsSegment {
                kind: SegmentKind::Sequence,
                asns,
            }) => asns.first().copied(),
            _ => None,
        }
    }

    /// Whether `asn` appears anywhere in the path (loop detection, RFC 4271 §9.1.2).
    pub fn contains(&self, asn: Asn) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// Prepends `asn` as a sending eBGP speaker does (RFC 4271 §5.1.2): into the leading
    /// AS_SEQUENCE when it has room, else in a new one.
    pub fn prepend(&mut self, asn: Asn) {
        match self.segments.first_mut() {
            Some(s) if s.kind == SegmentKind::Sequence && s.asns.len() < MAX_SEGMENT => {
                s.asns.insert(0, asn)
            }
            _ => self.segments.insert(
                0,
                AsSegment {
                    kind: SegmentKind::Sequence,
                    asns: smallvec![asn],
                },
            ),
        }
    }

    /// Whether any AS needs four octets.
    pub(crate) fn needs_four_octets(&self) -> bool {
        self.segments
            .iter()
            .flat_map(|s| &s.asns)
            .any(|a| !a.is_two_octet())
    }

    /// Parses segments of `width` (2 or 4) octet ASes; `None` when malformed (see
    /// [`AsPath::decode_into`]).
    pub(crate) fn decode(v: &[u8], width: usize) -> Option<AsPath> {
        let mut path = AsPath::default();
        path.decode_into(v, width).then_some(path)
    }

    /// Parses segments of `width` (2 or 4) octet ASes into `self`, which must be empty, where
    /// the path is to stay: filling ASes one at a time and then moving them would stall the
    /// wide loads of the move. `false` when malformed (RFC 7606 §7.2: unknown segment type,
    /// overrun, a lone trailing octet, or a zero segment length), or when it holds AS 0
    /// (RFC 7607 §2); `self` then holds part of the path.
    pub(crate) fn decode_into(&mut self, mut v: &[u8], width: usize) -> bool {
        // Most paths are one segment, held inline; count first so that a longer list is
        // allocated once, exactly.
        let mut count = 0;
        let mut at = 0;
        while let Some(&n) = v.get(at + 1) {
            at += 2 + usize::from(n) * width;
            count += 1;
        }
        self.segments.reserve(count);
        while let [t, n, rest @ ..] = v {
            let Some(kind) = SegmentKind::from_octet(*t) else {
                return false;
            };
            let len = usize::from(*n) * width;
            if *n == 0 || rest.len() < len {
                return false;
            }
            let (body, after) = rest.split_at(len);
            self.segments.push(AsSegment {
                kind,
                asns: SmallVec::new(),
            });
            let Some(segment) = self.segments.last_mut() else {
                return false;
            };
            if read_asns(body, width, &mut segment.asns).is_none() {
                return false;
            }
            v = after;
        }
        v.is_empty()
    }

    /// Appends the segments with `width`-octet ASes (AS_TRANS for those that do not fit two).
    /// Segments longer than 255 ASes are split; confederation segments are left out when
    /// `skip_confed` (AS4_PATH must not carry them, RFC 6793 §3).
    pub(crate) fn encode(&self, out: &mut BytesMut, width: usize, skip_confed: bool) {
        for seg in &self.segments {
            if skip_confed && seg.kind.is_confed() {
                continue;
            }
            for chunk in seg.asns.chunks(MAX_SEGMENT) {
                out.put_u8(seg.kind.octet());
                // `chunks(255)` keeps this within one octet.
                out.put_u8(chunk.len() as u8);
                for asn in chunk {
                    if width == 4 {
                        out.put_u32(asn.0);
                    } else {
                        out.put_u16(asn.to_two_octet());
                    }
                }
            }
        }
    }

    /// The path rebuilt from AS_PATH and AS4_PATH (RFC 6793 §4.2.3): when AS4_PATH is no longer
    /// than AS_PATH, the leading ASes of AS_PATH are kept and the rest replaced by AS4_PATH;
    /// otherwise AS4_PATH is ignored.
    pub(crate) fn merge_as4(self, as4: AsPath) -> AsPath {
        // Counted as for best path (RFC 6793 §4.2.3 refers to RFC 4271 §9.1.2.2 and RFC 5065).
        let (n2, n4) = (self.path_len(), as4.path_len());
        if n4 > n2 {
            return self;
        }
        let mut keep = n2 - n4;
        let mut merged: SmallVec<[AsSegment; 1]> = SmallVec::new();
        for seg in self.segments {
            let hops = match seg.kind {
                SegmentKind::Sequence => seg.asns.len(),
                SegmentKind::Set => 1,
                // AS4_PATH never holds these, so they stay from AS_PATH.
                SegmentKind::ConfedSequence | SegmentKind::ConfedSet => 0,
            };
            if hops == 0 {
                merged.push(seg);
            } else if keep == 0 {
                break;
            } else if hops > keep {
                merged.push(AsSegment {
                    kind: seg.kind,
                    asns: SmallVec::from_slice(&seg.asns[..keep]),
                });
                keep = 0;
            } else {
                keep -= hops;
                merged.push(seg);
            }
        }
        let mut tail = as4.segments.into_iter();
        let first = tail.next();
        match (merged.last_mut(), first) {
            // A truncated AS_SEQUENCE and a leading AS4_PATH sequence are one sequence.
            (Some(last), Some(first))
                if last.kind == SegmentKind::Sequence && first.kind == SegmentKind::Sequence =>
            {
                last.asns.extend(first.asns)
            }
            (_, first) => merged.extend(first),
        }
        merged.extend(tail);
        AsPath { segments: merged }
    }
}

/// Appends the ASes of `width` (2 or 4) octets in `body` to `out`, reserving once and pushing
/// in place (building them elsewhere and moving them in would stall the move's wide loads on
/// the narrow stores); `None` on AS 0 (RFC 7607 §2).
fn read_asns(body: &[u8], width: usize, out: &mut SmallVec<[Asn; INLINE_ASNS]>) -> Option<()> {
    out.reserve_exact(body.len() / width);
    for c in body.chunks_exact(width) {
        let v = match *c {
            [a, b, c, d] => u32::from_be_bytes([a, b, c, d]),
            [a, b] => u32::from(u16::from_be_bytes([a, b])),
            _ => return None,
        };
        if v == 0 {
            return None;
        }
        out.push(Asn(v));
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(kind: SegmentKind, asns: &[u32]) -> AsSegment {
        AsSegment {
            kind,
            asns: asns.iter().map(|&a| Asn(a)).collect(),
        }
    }

    #[test]
    fn path_length_counts_sets_as_one_and_confederations_as_none() {
        let p = AsPath {
            segments: smallvec![
                seg(SegmentKind::ConfedSequence, &[64512, 64513]),
                seg(SegmentKind::Sequence, &[1, 2, 3]),
                seg(SegmentKind::Set, &[4, 5]),
            ],
        };
        assert_eq!(p.path_len(), 4);
        assert_eq!(p.first_asn(), None);
        assert!(p.contains(Asn(5)));
    }

    #[test]
    fn prepend_fills_the_leading_sequence_then_opens_another() {
        let mut p = AsPath::sequence((0..255).map(|a| Asn(a + 1)));
        p.prepend(Asn(7));
        assert_eq!(p.segments.len(), 2);
        assert_eq!(p.first_asn(), Some(Asn(7)));
        let mut q = AsPath::default();
        q.prepend(Asn(9));
        assert_eq!(q, AsPath::sequence([Asn(9)]));
    }

    #[test]
    fn as4_path_replaces_the_trailing_ases() {
        // RFC 6793 §4.2.3: AS_PATH [AS_TRANS 2 AS_TRANS], AS4_PATH [200000 300000].
        let as2 = AsPath::sequence([Asn::TRANS, Asn(2), Asn::TRANS]);
        let as4 = AsPath::sequence([Asn(200_000), Asn(300_000)]);
        assert_eq!(
            as2.merge_as4(as4),
            AsPath::sequence([Asn::TRANS, Asn(200_000), Asn(300_000)])
        );
        // A longer AS4_PATH is ignored.
        let short = AsPath::sequence([Asn(1)]);
        assert_eq!(
            short.clone().merge_as4(AsPath::sequence([Asn(2), Asn(3)])),
            short
        );
        // Confederation segments stay from AS_PATH.
        let confed = AsPath {
            segments: smallvec![
                seg(SegmentKind::ConfedSequence, &[64512]),
                seg(SegmentKind::Sequence, &[23456]),
            ],
        };
        let merged = confed.merge_as4(AsPath::sequence([Asn(200_000)]));
        assert_eq!(
            merged.segments[..],
            [
                seg(SegmentKind::ConfedSequence, &[64512]),
                seg(SegmentKind::Sequence, &[200_000])
            ]
        );
    }

    #[test]
    fn long_segments_split_on_the_wire() {
        let p = AsPath::sequence((1..=300).map(Asn));
        let mut out = BytesMut::new();
        p.encode(&mut out, 4, false);
        let back = AsPath::decode(&out, 4).unwrap();
        assert_eq!(back.segments.len(), 2);
        assert_eq!(back.path_len(), 300);
    }
}
