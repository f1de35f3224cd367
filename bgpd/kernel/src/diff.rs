//! The FIB diff: what to write so the kernel's routes of our protocol become the wanted set.
//! Pure: kernel state and wanted set in, changes out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::config::{FibConfig, default_metric};
use crate::route::{KernelRoute, Prefix, Route, RouteSet};

/// Our route in the kernel that is not wanted (or sits at a metric we do not use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stale {
    /// Its destination.
    pub prefix: Prefix,
    /// Its metric, so the delete names exactly this route.
    pub metric: u32,
}

/// One write to the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// Add where no route is (`NLM_F_CREATE | NLM_F_EXCL`): a route that appeared in the slot
    /// since we looked, ours or another protocol's, is never overwritten.
    Create(Route),
    /// Replace our route in place (`NLM_F_CREATE | NLM_F_REPLACE`): never a delete-then-add gap.
    Replace(Route),
    /// Delete our route.
    Remove(Stale),
}

impl Change {
    /// The prefix this change writes.
    pub fn prefix(&self) -> Prefix {
        match self {
            Change::Create(route) | Change::Replace(route) => route.prefix(),
            Change::Remove(stale) => stale.prefix,
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Create(route) => write!(f, "add {route}"),
            Change::Replace(route) => write!(f, "replace {route}"),
            Change::Remove(stale) => write!(f, "remove {} metric {}", stale.prefix, stale.metric),
        }
    }
}

/// The outcome of comparing the kernel with the wanted set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The writes: adds and replaces in prefix order, then removals.
    pub changes: Vec<Change>,
    /// Wanted routes whose slot (prefix, table, default metric) holds another protocol's route:
    /// installing would overwrite it, so they are left out and reported.
    pub conflicts: Vec<Route>,
    /// Wanted routes already in the kernel as wanted (no write).
    pub in_place: usize,
}

/// Compares `kernel` (routes of our table; others are ignored) with `wanted`.
pub fn plan(kernel: &[KernelRoute], wanted: &RouteSet, config: &FibConfig) -> Plan {
    let table = config.table.get();
    let ours_proto = config.protocol.get();
    let mut ours: BTreeMap<Prefix, Vec<&KernelRoute>> = BTreeMap::new();
    let mut occupied: BTreeSet<Prefix> = BTreeSet::new();
    for route in kernel.iter().filter(|r| r.table == table) {
        if route.protocol == ours_proto {
            ours.entry(route.prefix).or_default().push(route);
        } else if route.metric == default_metric(route.prefix.is_ipv6()) {
            occupied.insert(route.prefix);
        }
    }

    let mut plan = Plan::default();
    let mut removes = Vec::new();
    for route in wanted.iter() {
        let prefix = route.prefix();
        let metric = default_metric(prefix.is_ipv6());
        let mine = ours.remove(&prefix).unwrap_or_default();
        // Ours at other metrics are leftovers (e.g. added by hand): they go either way.
        removes.extend(mine.iter().filter(|r| r.metric != metric).map(|r| stale(r)));
        if occupied.contains(&prefix) {
            plan.conflicts.push(route);
            continue;
        }
        let in_slot = mine.iter().find(|r| r.metric == metric);
        match in_slot.map(|r| {
            r.kind
                .as_ref()
                .is_some_and(|k| route.kind().is_satisfied_by(k))
        }) {
            Some(true) => plan.in_place += 1,
            Some(false) => plan.changes.push(Change::Replace(route)),
            None => plan.changes.push(Change::Create(route)),
        }
    }
    removes.extend(ours.values().flatten().map(|r| stale(r)));
    plan.changes.extend(removes.into_iter().map(Change::Remove));
    plan
}

fn stale(route: &KernelRoute) -> Stale {
    Stale {
        prefix: route.prefix,
        metric: route.metric,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{Ifindex, NextHop, NextHops, RouteKind};

    const OURS: u8 = crate::config::DEFAULT_PROTOCOL;
    const STATIC: u8 = 4;
    const MAIN: u32 = 254;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn dev(n: u32) -> RouteKind {
        RouteKind::Device(Ifindex::new(n).unwrap())
    }

    fn via(gws: &[&str]) -> RouteKind {
        RouteKind::Via(NextHops::new(gws.iter().map(|g| NextHop::via(g.parse().unwrap()))).unwrap())
    }

    fn via_dev(gw: &str, n: u32) -> RouteKind {
        RouteKind::Via(
            NextHops::new([NextHop {
                gateway: gw.parse().unwrap(),
                ifindex: Ifindex::new(n),
            }])
            .unwrap(),
        )
    }

    fn k(prefix: &str, protocol: u8, kind: RouteKind) -> KernelRoute {
        let prefix = p(prefix);
        KernelRoute {
            prefix,
            table: MAIN,
            protocol,
            metric: default_metric(prefix.is_ipv6()),
            kind: Some(kind),
        }
    }

    fn w(prefix: &str, kind: RouteKind) -> Route {
        Route::new(p(prefix), kind).unwrap()
    }

    fn create(prefix: &str, kind: RouteKind) -> Change {
        Change::Create(w(prefix, kind))
    }

    fn replace(prefix: &str, kind: RouteKind) -> Change {
        Change::Replace(w(prefix, kind))
    }

    fn remove(prefix: &str, metric: u32) -> Change {
        Change::Remove(Stale {
            prefix: p(prefix),
            metric,
        })
    }

    struct Case {
        name: &'static str,
        kernel: Vec<KernelRoute>,
        wanted: Vec<Route>,
        changes: Vec<Change>,
        conflicts: Vec<Route>,
        in_place: usize,
    }

    #[test]
    fn plan_table() {
        let cases = vec![
            Case {
                name: "empty both",
                kernel: vec![],
                wanted: vec![],
                changes: vec![],
                conflicts: vec![],
                in_place: 0,
            },
            Case {
                name: "fresh install of each kind, v4 and v6",
                kernel: vec![],
                wanted: vec![
                    w("10.10.0.0/26", RouteKind::Blackhole),
                    w("10.10.0.5/32", dev(7)),
                    w("10.20.0.0/26", via(&["192.168.0.2", "192.168.0.3"])),
                    w("fd00:10::/122", RouteKind::Blackhole),
                    w("fd00:20::/122", via(&["fe80::2"])),
                ],
                changes: vec![
                    create("10.10.0.0/26", RouteKind::Blackhole),
                    create("10.10.0.5/32", dev(7)),
                    create("10.20.0.0/26", via(&["192.168.0.2", "192.168.0.3"])),
                    create("fd00:10::/122", RouteKind::Blackhole),
                    create("fd00:20::/122", via(&["fe80::2"])),
                ],
                conflicts: vec![],
                in_place: 0,
            },
            Case {
                name: "wanted routes already there: zero writes",
                kernel: vec![
                    k("10.10.0.0/26", OURS, RouteKind::Blackhole),
                    k("10.10.0.5/32", OURS, dev(7)),
                    // The kernel reports the interface it resolved; we did not name one.
                    k("10.20.0.0/26", OURS, via_dev("192.168.0.2", 3)),
                ],
                wanted: vec![
                    w("10.10.0.0/26", RouteKind::Blackhole),
                    w("10.10.0.5/32", dev(7)),
                    w("10.20.0.0/26", via(&["192.168.0.2"])),
                ],
                changes: vec![],
                conflicts: vec![],
                in_place: 3,
            },
            Case {
                name: "stale routes of ours go, foreign routes stay",
                kernel: vec![
                    k("10.30.0.0/26", OURS, RouteKind::Blackhole),
                    k("fd00:30::/64", OURS, via(&["fd00::1"])),
                    k("10.40.0.0/16", STATIC, via(&["192.168.0.1"])),
                    k("10.50.0.0/16", 12, via(&["192.168.0.1"])),
                    KernelRoute {
                        table: 100,
                        ..k("10.60.0.0/16", OURS, RouteKind::Blackhole)
                    },
                ],
                wanted: vec![],
                changes: vec![remove("10.30.0.0/26", 0), remove("fd00:30::/64", 1024)],
                conflicts: vec![],
                in_place: 0,
            },
            Case {
                name: "changed kind or next hop is replaced in place, not removed",
                kernel: vec![
                    k("10.20.0.0/26", OURS, via_dev("192.168.0.2", 3)),
                    k("10.10.0.5/32", OURS, dev(7)),
                    k("10.10.0.0/26", OURS, dev(7)),
                ],
                wanted: vec![
                    w("10.20.0.0/26", via(&["192.168.0.2", "192.168.0.9"])),
                    w("10.10.0.5/32", dev(8)),
                    w("10.10.0.0/26", RouteKind::Blackhole),
                ],
                changes: vec![
                    replace("10.10.0.0/26", RouteKind::Blackhole),
                    replace("10.10.0.5/32", dev(8)),
                    replace("10.20.0.0/26", via(&["192.168.0.2", "192.168.0.9"])),
                ],
                conflicts: vec![],
                in_place: 0,
            },
            Case {
                name: "a foreign route in our slot is a conflict, left alone",
                kernel: vec![k("10.10.0.0/26", STATIC, dev(2))],
                wanted: vec![w("10.10.0.0/26", RouteKind::Blackhole)],
                changes: vec![],
                conflicts: vec![w("10.10.0.0/26", RouteKind::Blackhole)],
                in_place: 0,
            },
            Case {
                name: "a foreign route at another metric does not conflict",
                kernel: vec![KernelRoute {
                    metric: 100,
                    ..k("10.10.0.0/26", STATIC, dev(2))
                }],
                wanted: vec![w("10.10.0.0/26", RouteKind::Blackhole)],
                changes: vec![create("10.10.0.0/26", RouteKind::Blackhole)],
                conflicts: vec![],
                in_place: 0,
            },
            Case {
                name: "ours at an odd metric or of an odd shape is redone",
                kernel: vec![
                    KernelRoute {
                        metric: 5,
                        ..k("10.10.0.0/26", OURS, RouteKind::Blackhole)
                    },
                    KernelRoute {
                        kind: None,
                        ..k("10.70.0.0/24", OURS, RouteKind::Blackhole)
                    },
                ],
                wanted: vec![
                    w("10.10.0.0/26", RouteKind::Blackhole),
                    w("10.70.0.0/24", RouteKind::Blackhole),
                ],
                changes: vec![
                    // Nothing of ours at our metric: a create. Ours of an odd shape: replaced.
                    create("10.10.0.0/26", RouteKind::Blackhole),
                    replace("10.70.0.0/24", RouteKind::Blackhole),
                    remove("10.10.0.0/26", 5),
                ],
                conflicts: vec![],
                in_place: 0,
            },
        ];
        let config = FibConfig::default();
        for case in cases {
            let wanted: RouteSet = case.wanted.into_iter().collect();
            let got = plan(&case.kernel, &wanted, &config);
            assert_eq!(got.changes, case.changes, "{}: changes", case.name);
            assert_eq!(got.conflicts, case.conflicts, "{}: conflicts", case.name);
            assert_eq!(got.in_place, case.in_place, "{}: in place", case.name);
        }
    }
}
