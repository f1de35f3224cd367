//! FRR's bgpd as a test peer, alone: `bgpd -Z` (no zebra) in a namespace.
//!
//! Several instances run side by side because each gets its own pid file (`-i`), zebra socket
//! path (`-z`, unused with `-Z`) and vty socket dir (`--vty_socket <dir>`, where bgpd creates
//! `bgpd.vty`); `vtysh --vty_socket <dir> -d bgpd` talks to exactly that instance from the root
//! namespace. The vty TCP port is off (`-P 0`). Without zebra nothing reaches the kernel
//! (`-n`), so `no bgp network import-check` lets `network` statements originate routes; their
//! attributes come from one route-map per route. Runtime changes go through vtysh and are
//! written back to the config file, so a restart brings them back.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnetwork::IpNetwork;
use serde_json::Value;

use super::daemon::Launch;
use super::{
    BgpPeer, Community, Daemon, Family, GracefulRestart, LargeCommunity, PeerConfig, PeerError,
    Result, RibRoute, Route, Session, SessionState,
};
use crate::netns::Netns;
use crate::process::wait_until;

const NAME: &str = "frr";

/// How long a withdrawn prefix may stay in FRR's adj-out before it counts as lost.
const WITHDRAWN: Duration = Duration::from_secs(3);
/// How often a lost withdrawal is made again.
const WITHDRAW_ATTEMPTS: usize = 3;

/// An FRR bgpd in a namespace, killed on drop.
#[derive(Debug)]
pub struct Frr {
    daemon: Daemon,
    /// The route-map that gives each originated prefix its attributes. A re-announced route
    /// gets a new one, bound to its `network` statement before the old one is deleted: FRR 8.4
    /// corrupts its heap (bgpd aborts in `malloc_consolidate`, about one run in ten under
    /// load) when a route-map that a `network` statement uses is deleted and made again.
    route_maps: BTreeMap<IpNetwork, String>,
    /// Route-maps made so far, so that a new one never takes a name in use.
    made: u32,
}

impl Frr {
    /// Renders `config`, starts bgpd in `netns` and waits until vtysh reaches it.
    pub fn start(netns: &Netns, config: PeerConfig) -> Result<Frr> {
        let prefixes: Vec<IpNetwork> = config.routes.iter().map(|r| r.prefix).collect();
        let mut frr = Frr {
            daemon: Daemon::new(NAME, netns, config)?,
            route_maps: BTreeMap::new(),
            made: 0,
        };
        for prefix in prefixes {
            frr.new_route_map(prefix);
        }
        frr.launch()?;
        Ok(frr)
    }

    /// Names a new route-map for `prefix` and makes it the prefix's; returns the name.
    fn new_route_map(&mut self, prefix: IpNetwork) -> String {
        self.made += 1;
        let mut name = String::from("ORIGINATE-");
        name.extend(
            prefix
                .to_string()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
        );
        name.push_str(&format!("-{}", self.made));
        self.route_maps.insert(prefix, name.clone());
        name
    }

    /// `route-map …` and `network … route-map …` lines originating `route`; the route-map is
    /// a new one.
    fn originate(&mut self, route: &Route) -> Vec<String> {
        let name = self.new_route_map(route.prefix);
        let mut lines = route_map(route, &name);
        lines.extend(self.address_family(route.family()));
        lines.push(network(route, &name));
        lines.extend(["exit-address-family".to_string(), "exit".to_string()]);
        lines
    }

    /// Whether any Established neighbour of `prefix`'s family still has `prefix` in FRR's
    /// adj-out (`advertised-routes`).
    fn advertised(&self, prefix: IpNetwork) -> Result<bool> {
        let family = Family::of(prefix.ip());
        for session in self.sessions()? {
            if session.state != SessionState::Established || Family::of(session.neighbor) != family
            {
                continue;
            }
            let query = format!(
                "show bgp {} unicast neighbors {} advertised-routes json",
                afi(family),
                session.neighbor
            );
            let out = self.vtysh(&[&query])?;
            let all: Value = serde_json::from_str(&out).map_err(|e| PeerError::Parse {
                daemon: NAME,
                query: query.clone(),
                reason: e.to_string(),
            })?;
            if all["advertisedRoutes"].get(prefix.to_string()).is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Runs vtysh commands (each one `-c`) against this instance; returns the output.
    pub fn vtysh(&self, commands: &[&str]) -> Result<String> {
        vtysh(&self.daemon, commands)
    }

    fn launch(&mut self) -> Result<()> {
        self.daemon
            .write("frr.conf", &render(self.daemon.config(), &self.route_maps))?;
        let path = |name: &str| self.daemon.path(name).to_string_lossy().into_owned();
        let mut args = vec![
            "-f".to_string(),
            path("frr.conf"),
            "-i".to_string(),
            path("bgpd.pid"),
            "-z".to_string(),
            path("zserv.api"),
            "--vty_socket".to_string(),
            self.daemon.dir().to_string_lossy().into_owned(),
            "--log".to_string(),
            format!("file:{}", path("frr.log")),
            "-Z".to_string(),
            "-n".to_string(),
            "-S".to_string(),
            "-u".to_string(),
            "root".to_string(),
            "-g".to_string(),
            "root".to_string(),
            "-P".to_string(),
            "0".to_string(),
            "-p".to_string(),
            self.daemon.config().listen_port.to_string(),
        ];
        for addr in &self.daemon.config().listen_addresses {
            args.extend(["-l".to_string(), addr.to_string()]);
        }
        self.daemon.launch(Launch {
            program: "/usr/lib/frr/bgpd",
            args,
            env: Vec::new(),
            socket: Some("bgpd.vty"),
            ready: "vty socket",
            probe: |d| vtysh(d, &["show version"]).is_ok(),
        })
    }

    /// Runs `configure terminal` followed by `lines`, then saves the new config to the file.
    fn configure(&self, lines: &[String]) -> Result<()> {
        let mut commands = vec!["configure terminal"];
        commands.extend(lines.iter().map(String::as_str));
        let out = self.vtysh(&commands)?;
        // vtysh exits 0 even when a line is rejected; it says so on stdout.
        if out.contains('%') {
            return Err(PeerError::Parse {
                daemon: NAME,
                query: lines.join(" / "),
                reason: out,
            });
        }
        self.daemon
            .write("frr.conf", &render(self.daemon.config(), &self.route_maps))?;
        Ok(())
    }

    fn address_family(&self, family: Family) -> Vec<String> {
        vec![
            format!("router bgp {}", self.daemon.config().asn),
            format!("address-family {} unicast", afi(family)),
        ]
    }
}

impl BgpPeer for Frr {
    fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    fn daemon_mut(&mut self) -> &mut Daemon {
        &mut self.daemon
    }

    fn sessions(&self) -> Result<Vec<Session>> {
        let out = self.vtysh(&["show bgp neighbors json"])?;
        parse_neighbors(&out).map_err(|reason| PeerError::Parse {
            daemon: NAME,
            query: "show bgp neighbors json".to_string(),
            reason,
        })
    }

    fn routes(&self, family: Family) -> Result<Vec<RibRoute>> {
        let query = format!("show bgp {} unicast json detail", afi(family));
        let out = self.vtysh(&[&query])?;
        parse_routes(&out).map_err(|reason| PeerError::Parse {
            daemon: NAME,
            query,
            reason,
        })
    }

    fn announce(&mut self, route: Route) -> Result<()> {
        // The old route-map goes once the statement uses the new one.
        let old = self.route_maps.get(&route.prefix).cloned();
        let mut lines = self.originate(&route);
        lines.extend(old.map(|name| format!("no route-map {name}")));
        self.daemon.config_mut().upsert_route(route);
        self.configure(&lines)
    }

    /// Removes the `network` statement, then waits until no neighbour's adj-out holds the
    /// prefix. FRR 8.4 sometimes never sends a withdrawal that meets a ROUTE-REFRESH from the
    /// neighbour (BIRD asks for one at every `birdc configure`): the prefix is gone from its
    /// table but stays in the adj-out for good. Originating it again and withdrawing it again
    /// sends the withdrawal.
    fn withdraw(&mut self, prefix: IpNetwork) -> Result<()> {
        let Some(route) = self
            .daemon
            .config()
            .routes
            .iter()
            .find(|r| r.prefix == prefix)
            .cloned()
        else {
            return Ok(());
        };
        self.daemon.config_mut().remove_route(prefix);
        for attempt in 0..WITHDRAW_ATTEMPTS {
            if attempt > 0 {
                let lines = self.originate(&route);
                self.configure(&lines)?;
                self.wait_for(&format!("{prefix} originated again"), WITHDRAWN, &|| {
                    self.advertised(prefix)
                })?;
            }
            let mut lines = self.address_family(route.family());
            lines.push(format!("no network {prefix}"));
            lines.extend(["exit-address-family".to_string(), "exit".to_string()]);
            lines.extend(
                self.route_maps
                    .remove(&prefix)
                    .map(|name| format!("no route-map {name}")),
            );
            self.configure(&lines)?;
            if wait_until(WITHDRAWN, || self.advertised(prefix).is_ok_and(|a| !a)) {
                return Ok(());
            }
        }
        Err(self.timeout(&format!("{prefix} withdrawn from the adj-out"), WITHDRAWN))
    }

    fn restart(&mut self) -> Result<()> {
        self.daemon.kill();
        self.launch()
    }

    fn set_session_enabled(
        &mut self,
        neighbor: IpAddr,
        enabled: bool,
        message: Option<&str>,
    ) -> Result<()> {
        let line = match (enabled, message) {
            (true, _) => format!("no neighbor {neighbor} shutdown"),
            (false, Some(m)) => format!("neighbor {neighbor} shutdown message {m}"),
            (false, None) => format!("neighbor {neighbor} shutdown"),
        };
        self.configure(&[format!("router bgp {}", self.daemon.config().asn), line])
    }
}

/// Runs `vtysh --vty_socket <dir> -d bgpd -c …` from the root namespace.
fn vtysh(daemon: &Daemon, commands: &[&str]) -> Result<String> {
    let dir = daemon.dir().to_string_lossy().into_owned();
    let mut args = vec!["--vty_socket", dir.as_str(), "-d", "bgpd"];
    for c in commands {
        args.extend(["-c", c]);
    }
    Ok(daemon.control_here("vtysh", &args)?)
}

fn afi(family: Family) -> &'static str {
    match family {
        Family::Ipv4Unicast => "ipv4",
        Family::Ipv6Unicast => "ipv6",
    }
}

/// The route-map `name` that gives an originated route its attributes.
fn route_map(route: &Route, name: &str) -> Vec<String> {
    let mut lines = vec![format!("route-map {name} permit 10")];
    if let Some(nh) = route.next_hop {
        lines.push(match nh {
            IpAddr::V4(a) => format!(" set ip next-hop {a}"),
            IpAddr::V6(a) => format!(" set ipv6 next-hop global {a}"),
        });
    }
    if let Some(med) = route.med {
        lines.push(format!(" set metric {med}"));
    }
    if let Some(pref) = route.local_pref {
        lines.push(format!(" set local-preference {pref}"));
    }
    if !route.communities.is_empty() {
        let list: Vec<String> = route.communities.iter().map(|c| c.to_string()).collect();
        lines.push(format!(" set community {}", list.join(" ")));
    }
    if !route.large_communities.is_empty() {
        let list: Vec<String> = route
            .large_communities
            .iter()
            .map(|c| c.to_string())
            .collect();
        lines.push(format!(" set large-community {}", list.join(" ")));
    }
    if !route.as_path.is_empty() {
        let list: Vec<String> = route.as_path.iter().map(u32::to_string).collect();
        lines.push(format!(" set as-path prepend {}", list.join(" ")));
    }
    lines.push("exit".to_string());
    lines
}

fn network(route: &Route, route_map: &str) -> String {
    format!("network {} route-map {route_map}", route.prefix)
}

/// The whole frr.conf for `config`, each route with its route-map in `route_maps`.
fn render(config: &PeerConfig, route_maps: &BTreeMap<IpNetwork, String>) -> String {
    let map = |route: &Route| route_maps.get(&route.prefix).cloned().unwrap_or_default();
    let mut c = String::from("frr defaults traditional\n!\n");
    for route in &config.routes {
        for line in route_map(route, &map(route)) {
            let _ = writeln!(c, "{line}");
        }
    }
    let _ = writeln!(c, "router bgp {}", config.asn);
    let _ = writeln!(c, " bgp router-id {}", config.router_id);
    c.push_str(
        " no bgp default ipv4-unicast\n no bgp ebgp-requires-policy\n no bgp network import-check\n",
    );
    if let Some(id) = config.cluster_id {
        let _ = writeln!(c, " bgp cluster-id {id}");
    }
    // FRR has one restart time for the whole instance.
    if let Some(time) = config
        .neighbors
        .iter()
        .find_map(|n| match n.graceful_restart {
            GracefulRestart::Enabled { restart_time } => Some(restart_time),
            _ => None,
        })
    {
        let _ = writeln!(c, " bgp graceful-restart restart-time {time}");
    }
    for n in &config.neighbors {
        let a = n.address;
        let _ = writeln!(c, " neighbor {a} remote-as {}", n.remote_as);
        // MRAI 0: the traditional 30 s between eBGP updates would slow every test.
        let _ = writeln!(c, " neighbor {a} advertisement-interval 0");
        let _ = writeln!(c, " neighbor {a} timers connect {}", super::CONNECT_RETRY);
        if n.remote_port != 179 {
            let _ = writeln!(c, " neighbor {a} port {}", n.remote_port);
        }
        if let Some(local) = n.local_address {
            let _ = writeln!(c, " neighbor {a} update-source {local}");
        }
        if n.passive {
            let _ = writeln!(c, " neighbor {a} passive");
        }
        if let Some(hold) = n.hold_time {
            let _ = writeln!(c, " neighbor {a} timers {} {hold}", (hold / 3).max(1));
        }
        if let Some(password) = &n.password {
            let _ = writeln!(c, " neighbor {a} password {password}");
        }
        if let Some(ttl) = n.multihop {
            let _ = writeln!(c, " neighbor {a} ebgp-multihop {ttl}");
        }
        let gr = match n.graceful_restart {
            GracefulRestart::Disabled => "graceful-restart-disable",
            GracefulRestart::Helper => "graceful-restart-helper",
            GracefulRestart::Enabled { .. } => "graceful-restart",
        };
        let _ = writeln!(c, " neighbor {a} {gr}");
    }
    for family in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
        let _ = writeln!(c, " address-family {} unicast", afi(family));
        for route in config.routes.iter().filter(|r| r.family() == family) {
            let _ = writeln!(c, "  {}", network(route, &map(route)));
        }
        for n in config.neighbors.iter().filter(|n| n.family() == family) {
            let a = n.address;
            let _ = writeln!(c, "  neighbor {a} activate");
            if n.rr_client {
                let _ = writeln!(c, "  neighbor {a} route-reflector-client");
            }
            if n.add_path.send {
                let _ = writeln!(c, "  neighbor {a} addpath-tx-all-paths");
            }
            if !n.add_path.receive {
                let _ = writeln!(c, "  neighbor {a} disable-addpath-rx");
            }
        }
        c.push_str(" exit-address-family\n");
    }
    c.push_str("exit\n");
    c
}

/// Sessions from `show bgp neighbors json`: `{address: {bgpState, lastResetDueTo, …}}`.
fn parse_neighbors(out: &str) -> std::result::Result<Vec<Session>, String> {
    let all: Value = serde_json::from_str(out).map_err(|e| e.to_string())?;
    let all = all.as_object().ok_or("not a JSON object")?;
    let mut sessions = Vec::new();
    for (addr, n) in all {
        let Some(state) = n["bgpState"].as_str() else {
            continue;
        };
        let last_error = ["lastNotificationReason", "lastResetDueTo"]
            .iter()
            .filter_map(|k| n[*k].as_str())
            .map(str::to_string)
            .reduce(|a, b| format!("{a}; {b}"));
        sessions.push(Session {
            neighbor: addr.parse().map_err(|e| format!("{addr:?}: {e}"))?,
            state: SessionState::parse(state).unwrap_or(SessionState::Idle),
            last_error,
        });
    }
    Ok(sessions)
}

/// Routes from `show bgp <afi> unicast json detail`: `{"routes": {prefix: [entry…]}}`, where
/// the first entry of each prefix is a summary (`advertisedTo`) and the others are paths.
fn parse_routes(out: &str) -> std::result::Result<Vec<RibRoute>, String> {
    let all: Value = serde_json::from_str(out).map_err(|e| e.to_string())?;
    let Some(by_prefix) = all["routes"].as_object() else {
        return Ok(Vec::new());
    };
    let mut routes = Vec::new();
    for (prefix, entries) in by_prefix {
        let prefix: IpNetwork = prefix.parse().map_err(|e| format!("{prefix:?}: {e}"))?;
        for path in entries.as_array().into_iter().flatten() {
            if path.get("aspath").is_none() {
                continue;
            }
            routes.push(parse_path(prefix, path));
        }
    }
    Ok(routes)
}

fn parse_path(prefix: IpNetwork, path: &Value) -> RibRoute {
    let u32_of = |v: &Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
    let strings = |v: &Value| -> Vec<String> {
        v["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let mut route = RibRoute::new(prefix);
    route.from = path["peer"]["peerId"]
        .as_str()
        .and_then(|p| p.parse::<IpAddr>().ok())
        .filter(|p| !p.is_unspecified());
    route.best = path["bestpath"]["overall"].as_bool().unwrap_or(false);
    route.stale = path["stale"].as_bool().unwrap_or(false);
    route.next_hop = path["nexthops"][0]["ip"]
        .as_str()
        .and_then(|a| a.parse::<IpAddr>().ok())
        .filter(|a| !a.is_unspecified());
    route.as_path = path["aspath"]["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["list"].as_array().into_iter().flatten())
        .filter_map(u32_of)
        .collect();
    route.med = u32_of(&path["metric"]);
    route.local_pref = u32_of(&path["locPrf"]);
    route.communities = strings(&path["community"])
        .iter()
        .filter_map(|c| Community::parse(c))
        .collect();
    route.large_communities = strings(&path["largeCommunity"])
        .iter()
        .filter_map(|c| LargeCommunity::parse(c))
        .collect();
    route.originator_id = path["originatorId"]
        .as_str()
        .and_then(|a| a.parse::<Ipv4Addr>().ok());
    route.cluster_list = strings(&path["clusterList"])
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    route
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_json_detail() {
        let out = r#"{"routes": { "10.50.0.0/24": [{"prefix":"10.50.0.0/24","advertisedTo":{}},{"aspath":{"string":"65002 65001","segments":[{"type":"as-sequence","list":[65002,65001]}],"length":2},"origin":"IGP","metric":4,"locPrf":150,"valid":true,"bestpath":{"overall":true},"stale":true,"community":{"string":"65001:1 no-export","list":["65001:1","noExport"]},"largeCommunity":{"string":"65001:2:3","list":["65001:2:3"]},"originatorId":"10.0.0.7","clusterList":{"list":["10.0.0.5"]},"nexthops":[{"ip":"10.9.1.2","afi":"ipv4"}],"peer":{"peerId":"10.9.1.2"}}],
"10.70.0.0/24": [{"prefix":"10.70.0.0/24"},{"aspath":{"string":"Local","segments":[],"length":0},"valid":true,"sourced":true,"bestpath":{"overall":true},"nexthops":[{"ip":"0.0.0.0"}],"peer":{"peerId":"0.0.0.0"}}] } }"#;
        let routes = parse_routes(out).unwrap();
        assert_eq!(routes.len(), 2);
        let r = routes
            .iter()
            .find(|r| r.prefix == "10.50.0.0/24".parse().unwrap())
            .unwrap();
        assert!(r.best && r.stale);
        assert_eq!(r.from, Some("10.9.1.2".parse().unwrap()));
        assert_eq!(r.as_path, vec![65002, 65001]);
        assert_eq!((r.med, r.local_pref), (Some(4), Some(150)));
        assert_eq!(
            r.communities,
            vec![Community::new(65001, 1), Community::new(0xFFFF, 0xFF01)]
        );
        assert_eq!(r.large_communities, vec![LargeCommunity::new(65001, 2, 3)]);
        assert_eq!(r.originator_id, Some("10.0.0.7".parse().unwrap()));
        assert_eq!(r.cluster_list.len(), 1);
        let local = routes.iter().find(|r| r.from.is_none()).unwrap();
        assert_eq!(local.next_hop, None);
    }

    #[test]
    fn parses_neighbors_json() {
        let out = r#"{"10.9.1.2":{"bgpState":"Active","lastResetDueTo":"BGP Notification received","lastNotificationReason":"OPEN Message Error/Bad Peer AS"}}"#;
        let s = parse_neighbors(out).unwrap();
        assert_eq!(s[0].state, SessionState::Active);
        assert!(s[0].last_error.as_deref().unwrap().contains("Bad Peer AS"));
    }
}
