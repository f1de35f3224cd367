//! Connection collision detection (RFC 4271 §6.8): when both speakers connect at once, both keep
//! the connection opened by the speaker with the higher BGP identifier.

use std::net::Ipv4Addr;

use bgpd_wire::{Cease, ErrorCode, Notification};

use crate::fsm::State;

/// Who opened a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We connected to the peer.
    Outgoing,
    /// The peer connected to us.
    Incoming,
}

/// Which of two connections to the same peer to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loser {
    /// Close the connection that existed first.
    Existing,
    /// Close the connection that just received the peer's OPEN.
    New,
}

/// Decides a collision between an `existing` connection in `existing_state` and a `new` one that
/// just received the peer's OPEN with `peer_id`. `None` when there is no collision to resolve
/// (the existing connection has not reached OpenSent).
pub fn resolve(
    local_id: Ipv4Addr,
    peer_id: Ipv4Addr,
    existing: (Direction, State),
    new: Direction,
) -> Option<Loser> {
    match existing.1 {
        State::Idle | State::Connect | State::Active => None,
        // An established session is kept; the newcomer is refused (RFC 4271 §6.8, without
        // CollisionDetectEstablishedState).
        State::Established => Some(Loser::New),
        State::OpenSent | State::OpenConfirm => {
            if existing.0 == new {
                // Two connections the same way cannot be a race between the speakers: keep the first.
                return Some(Loser::New);
            }
            // §6.8: if our id is lower, close the connection we initiated; else the one they did.
            let close = if u32::from(local_id) < u32::from(peer_id) {
                Direction::Outgoing
            } else {
                Direction::Incoming
            };
            Some(if existing.0 == close {
                Loser::Existing
            } else {
                Loser::New
            })
        }
    }
}

/// The NOTIFICATION that closes the losing connection (RFC 4486 subcode 7).
pub fn notification() -> Notification {
    Notification::new(
        ErrorCode::Cease(Cease::ConnectionCollisionResolution),
        Vec::new(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOW: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const HIGH: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    #[test]
    fn the_higher_identifier_keeps_its_own_connection() {
        use Direction::*;
        // We are lower: keep the peer's (incoming) connection.
        let table = [
            (LOW, HIGH, Outgoing, Incoming, Loser::Existing),
            (LOW, HIGH, Incoming, Outgoing, Loser::New),
            // We are higher: keep ours (outgoing).
            (HIGH, LOW, Outgoing, Incoming, Loser::New),
            (HIGH, LOW, Incoming, Outgoing, Loser::Existing),
        ];
        for (local, peer, existing, new, want) in table {
            for state in [State::OpenSent, State::OpenConfirm] {
                assert_eq!(
                    resolve(local, peer, (existing, state), new),
                    Some(want),
                    "{local} {peer} {existing:?} {state}"
                );
            }
        }
    }

    #[test]
    fn established_wins_and_early_states_do_not_collide() {
        assert_eq!(
            resolve(
                LOW,
                HIGH,
                (Direction::Outgoing, State::Established),
                Direction::Incoming
            ),
            Some(Loser::New)
        );
        for s in [State::Idle, State::Connect, State::Active] {
            assert_eq!(
                resolve(LOW, HIGH, (Direction::Outgoing, s), Direction::Incoming),
                None
            );
        }
    }

    #[test]
    fn both_sides_agree_on_the_survivor() {
        // Seen from each speaker, the connection initiated by HIGH survives.
        let at_low = resolve(
            LOW,
            HIGH,
            (Direction::Outgoing, State::OpenConfirm),
            Direction::Incoming,
        );
        let at_high = resolve(
            HIGH,
            LOW,
            (Direction::Incoming, State::OpenConfirm),
            Direction::Outgoing,
        );
        // LOW closes its outgoing (existing); HIGH closes the incoming from LOW (existing).
        assert_eq!(
            (at_low, at_high),
            (Some(Loser::Existing), Some(Loser::Existing))
        );
    }
}
