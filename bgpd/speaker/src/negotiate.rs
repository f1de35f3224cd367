//! What a session may use once both OPENs are known: the codec's capability negotiation
//! ([`bgpd_wire::negotiate`]) plus what the session itself needs from the peer's OPEN, and the
//! one negotiation failure we refuse a peer for: no family in common (RFC 5492 §3).

use std::net::Ipv4Addr;

use bgpd_wire::{Asn, Capability, ErrorCode, Notification, Open, OpenError};
use bytes::BytesMut;

/// The parameters of a session whose OPENs were exchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParams {
    /// Decode/encode contexts, families, hold time and the peer's optional capabilities.
    pub wire: bgpd_wire::Negotiated,
    /// Keepalive interval in seconds: a third of the hold time (0: no keepalives).
    pub keepalive: u16,
    /// The peer's AS (four-octet when it announced the capability).
    pub peer_as: Asn,
    /// The peer's BGP identifier.
    pub peer_id: Ipv4Addr,
    /// The peer's host name, when it announced one.
    pub peer_hostname: Option<String>,
}

impl SessionParams {
    /// Negotiates from our OPEN and the peer's (already validated). A peer sharing no family
    /// with us gets Unsupported Capability (2/7) carrying our multiprotocol capabilities.
    pub fn new(ours: &Open, theirs: &Open) -> Result<SessionParams, Notification> {
        let wire = bgpd_wire::negotiate(ours, theirs);
        if wire.families.is_empty() {
            let mut data = BytesMut::new();
            for cap in ours
                .capabilities
                .iter()
                .filter(|c| matches!(c, Capability::Multiprotocol(_)))
            {
                // Our own capabilities always encode; a failure would only shorten the data.
                let _ = cap.encode(&mut data);
            }
            return Err(Notification::new(
                ErrorCode::Open(OpenError::UnsupportedCapability),
                data.to_vec(),
            ));
        }
        Ok(SessionParams {
            keepalive: wire.hold_time / 3,
            wire,
            peer_as: theirs.asn(),
            peer_id: theirs.bgp_id,
            peer_hostname: theirs.capabilities.iter().find_map(|c| match c {
                Capability::Hostname { host, .. } => Some(host.clone()),
                _ => None,
            }),
        })
    }

    /// The negotiated hold time in seconds (0: none).
    pub fn hold_time(&self) -> u16 {
        self.wire.hold_time
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgpd_wire::AfiSafi;

    fn open(asn: u32, caps: Vec<Capability>, hold: u16) -> Open {
        Open::new(Asn(asn), hold, Ipv4Addr::new(10, 0, 0, 2), caps)
    }

    #[test]
    fn keepalive_is_a_third_of_the_smaller_hold_time() {
        let ours = open(65000, vec![], 90);
        let n = SessionParams::new(&ours, &open(65001, vec![], 9)).unwrap();
        assert_eq!((n.hold_time(), n.keepalive, n.peer_as), (9, 3, Asn(65001)));
        let ours = open(65000, vec![], 0);
        let n = SessionParams::new(&ours, &open(65001, vec![], 9)).unwrap();
        assert_eq!((n.hold_time(), n.keepalive), (0, 0));
    }

    #[test]
    fn no_common_family_is_unsupported_capability() {
        let ours = open(
            65000,
            vec![Capability::Multiprotocol(AfiSafi::IPV6_UNICAST)],
            90,
        );
        let theirs = open(
            65001,
            vec![Capability::Multiprotocol(AfiSafi::IPV4_UNICAST)],
            90,
        );
        let err = SessionParams::new(&ours, &theirs).unwrap_err();
        assert_eq!(err.code.octets(), (2, 7));
        assert_eq!(err.data, vec![1, 4, 0, 2, 0, 1]);
    }

    #[test]
    fn hostname_is_taken_from_the_peer() {
        let ours = open(65000, vec![], 90);
        let host = Capability::Hostname {
            host: "tor1".into(),
            domain: String::new(),
        };
        let n = SessionParams::new(&ours, &open(65001, vec![host], 90)).unwrap();
        assert_eq!(n.peer_hostname.as_deref(), Some("tor1"));
    }
}
