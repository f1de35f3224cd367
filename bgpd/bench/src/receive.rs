//! The receiving side of a tester client: reads the reflector's UPDATEs until it holds every
//! route it expects, checking on the way that each reflected route names its originator
//! (ORIGINATOR_ID) and starts its CLUSTER_LIST with the reflector's cluster id, as RFC 4456
//! requires of a reflector.

use std::net::Ipv4Addr;

use bgpd_wire::{Message, Update};
use serde::Serialize;
use tokio::time::Instant;

use crate::routes::{Held, PrefixRange};
use crate::session::{Reader, SessionError};

/// What one receiver saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    /// Routes of the range held at the end.
    pub held: u64,
    /// UPDATE messages read.
    pub updates: u64,
    /// Announcements of a route already held (implicit replacements).
    pub duplicates: u64,
    /// Withdrawals of held routes.
    pub withdrawn: u64,
    /// Announcements of prefixes outside the test range.
    pub foreign: u64,
    /// Our own route reflected back to us.
    pub own: u64,
    /// Routes without the right ORIGINATOR_ID, or whose CLUSTER_LIST does not start with the
    /// reflector's cluster id.
    pub bad_reflection: u64,
}

impl Tally {
    /// Adds another receiver's counts to this one.
    pub fn add(&mut self, other: &Tally) {
        self.held += other.held;
        self.updates += other.updates;
        self.duplicates += other.duplicates;
        self.withdrawn += other.withdrawn;
        self.foreign += other.foreign;
        self.own += other.own;
        self.bad_reflection += other.bad_reflection;
    }
}

/// Which routes a receiver expects and who must have originated each.
#[derive(Debug, Clone)]
pub struct Expect<F> {
    /// The test routes.
    pub range: PrefixRange,
    /// The index of the receiver's own route, which it does not expect back.
    pub own: Option<u32>,
    /// The BGP identifier of the client that announced route `i`.
    pub originator: F,
    /// The reflector's cluster id, which it prepends to CLUSTER_LIST.
    pub cluster_id: Ipv4Addr,
}

/// How a receiver ended.
#[derive(Debug)]
pub struct Received {
    /// What it saw.
    pub tally: Tally,
    /// When it came to hold every expected route; `None` if the deadline came first.
    pub complete_at: Option<Instant>,
    /// The session error that ended it early, if any.
    pub error: Option<SessionError>,
}

/// Reads from `reader` until every route of `expect` but its own is held, or `deadline`.
pub async fn receive_all<F>(mut reader: Reader, expect: Expect<F>, deadline: Instant) -> Received
where
    F: Fn(u32) -> Ipv4Addr,
{
    let wanted = expect.range.count() - u32::from(expect.own.is_some());
    let mut held = Held::new(expect.range.count());
    let mut tally = Tally::default();
    let mut error = None;
    let mut complete_at = (wanted == 0).then(Instant::now);
    while complete_at.is_none() {
        match tokio::time::timeout_at(deadline, reader.next()).await {
            Err(_) => break,
            Ok(Err(e)) => {
                error = Some(e);
                break;
            }
            Ok(Ok(Message::Update(update))) => {
                tally.updates += 1;
                apply(&update, &expect, &mut held, &mut tally);
                if held.len() == wanted {
                    complete_at = Some(Instant::now());
                }
            }
            Ok(Ok(_)) => {}
        }
    }
    tally.held = u64::from(held.len());
    Received {
        tally,
        complete_at,
        error,
    }
}

fn apply<F>(update: &Update, expect: &Expect<F>, held: &mut Held, tally: &mut Tally)
where
    F: Fn(u32) -> Ipv4Addr,
{
    for n in &update.withdrawn {
        if let Some(i) = expect.range.index_of(&n.prefix) {
            tally.withdrawn += u64::from(held.remove(i));
        }
    }
    // A route whose attributes the codec says to treat as withdrawn does not count as received.
    let withdraw = update.treat_as_withdraw();
    let reflected = update.attrs.cluster_list.first() == Some(&expect.cluster_id);
    for n in &update.nlri {
        let Some(i) = expect.range.index_of(&n.prefix) else {
            tally.foreign += 1;
            continue;
        };
        if expect.own == Some(i) {
            tally.own += 1;
        } else if withdraw {
            tally.withdrawn += u64::from(held.remove(i));
        } else if !reflected || update.attrs.originator_id != Some((expect.originator)(i)) {
            tally.bad_reflection += 1;
        } else if !held.insert(i) {
            tally.duplicates += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgpd_wire::{Nlri, PathAttrs};

    fn update(prefixes: &[u32], range: &PrefixRange, attrs: PathAttrs) -> Update {
        Update {
            nlri: prefixes
                .iter()
                .filter_map(|&i| range.nth(i))
                .map(Nlri::new)
                .collect(),
            attrs,
            ..Update::default()
        }
    }

    fn reflected(originator: &str) -> PathAttrs {
        PathAttrs {
            originator_id: Some(originator.parse().unwrap()),
            cluster_list: vec!["10.77.0.1".parse().unwrap()],
            ..PathAttrs::default()
        }
    }

    #[test]
    fn counts_only_correctly_reflected_routes_of_others() {
        let range = PrefixRange::new("100.96.0.0".parse().unwrap(), 26, 4).unwrap();
        let expect = Expect {
            range,
            own: Some(0),
            originator: |i: u32| Ipv4Addr::new(10, 77, 2, i as u8),
            cluster_id: Ipv4Addr::new(10, 77, 0, 1),
        };
        let mut held = Held::new(4);
        let mut tally = Tally::default();
        // Own route back beside another's with the wrong originator, a correct one, a
        // replacement, a wrong originator, no reflection attributes at all.
        apply(
            &update(&[0, 1], &range, reflected("10.77.2.0")),
            &expect,
            &mut held,
            &mut tally,
        );
        apply(
            &update(&[1], &range, reflected("10.77.2.1")),
            &expect,
            &mut held,
            &mut tally,
        );
        apply(
            &update(&[1], &range, reflected("10.77.2.1")),
            &expect,
            &mut held,
            &mut tally,
        );
        apply(
            &update(&[2], &range, reflected("10.77.2.9")),
            &expect,
            &mut held,
            &mut tally,
        );
        apply(
            &update(&[3], &range, PathAttrs::default()),
            &expect,
            &mut held,
            &mut tally,
        );
        assert_eq!(held.len(), 1);
        assert_eq!(tally.own, 1);
        assert_eq!(tally.duplicates, 1);
        assert_eq!(tally.bad_reflection, 3);

        // Another reflector's cluster id.
        let mut elsewhere = reflected("10.77.2.3");
        elsewhere.cluster_list = vec!["10.77.0.9".parse().unwrap()];
        apply(
            &update(&[3], &range, elsewhere),
            &expect,
            &mut held,
            &mut tally,
        );
        assert_eq!((held.len(), tally.bad_reflection), (1, 4));

        let other = PrefixRange::new("100.64.0.0".parse().unwrap(), 26, 1).unwrap();
        apply(
            &update(&[0], &other, reflected("10.77.2.1")),
            &expect,
            &mut held,
            &mut tally,
        );
        assert_eq!(tally.foreign, 1);

        let gone = Update {
            withdrawn: vec![Nlri::new(range.nth(1).unwrap())],
            ..Update::default()
        };
        apply(&gone, &expect, &mut held, &mut tally);
        assert_eq!((held.len(), tally.withdrawn), (0, 1));
    }
}
