//! ExaBGP as a test peer: `exabgp <dir>/exabgp.conf` in a namespace, run as root.
//!
//! ExaBGP keeps no RIB and has no query socket of its own. Its API talks to a helper process
//! over that process's stdin and stdout, so the helper (`api.sh`) does both jobs: it follows
//! `<dir>/commands` (`tail -F`) into ExaBGP, which is how `announce`/`withdraw` reach it, and
//! copies what ExaBGP reports (JSON: neighbour state changes and received UPDATEs) into
//! `<dir>/events.json`. Sessions and the learned RIB are replayed from those events. The named
//! pipes of ExaBGP's own CLI are switched off (`exabgp_api_cli=false`): their fixed location
//! would be shared by every instance.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde_json::Value;

use super::daemon::Launch;
use super::{
    BgpPeer, Community, Daemon, Family, GracefulRestart, LargeCommunity, Neighbor, PeerConfig,
    PeerError, Result, RibRoute, Route, Session, SessionState,
};
use crate::netns::Netns;

const NAME: &str = "exabgp";

/// An ExaBGP in a namespace, killed on drop.
#[derive(Debug)]
pub struct Exabgp {
    daemon: Daemon,
}

impl Exabgp {
    /// Renders `config`, starts ExaBGP in `netns` and waits until its API helper runs.
    ///
    /// ExaBGP cannot be a route-reflector or a graceful-restart helper only; asking for either
    /// is an [`PeerError::Unsupported`] error.
    pub fn start(netns: &Netns, config: PeerConfig) -> Result<Exabgp> {
        if let Some(n) = config.neighbors.iter().find(|n| n.rr_client) {
            return Err(unsupported(format!("route-reflector client {}", n.address)));
        }
        if let Some(n) = config
            .neighbors
            .iter()
            .find(|n| n.graceful_restart == GracefulRestart::Helper)
        {
            return Err(unsupported(format!(
                "helper-only graceful restart to {}",
                n.address
            )));
        }
        let mut exabgp = Exabgp {
            daemon: Daemon::new(NAME, netns, config)?,
        };
        exabgp.launch()?;
        Ok(exabgp)
    }

    fn launch(&mut self) -> Result<()> {
        let dir = self.daemon.dir().to_path_buf();
        self.daemon
            .write("exabgp.conf", &render(self.daemon.config(), &self.daemon))?;
        // A fresh start replays nothing: the config holds the current routes.
        self.daemon.write("commands", "")?;
        self.daemon.write("events.json", "")?;
        let script = format!(
            "#!/bin/sh\n# ExaBGP's API process: events from ExaBGP on stdin, commands to it on stdout.\n\
             exec 3<&0\ncat <&3 >>'{events}' &\nexec tail -n +1 -F '{commands}' 2>/dev/null\n",
            events = dir.join("events.json").display(),
            commands = dir.join("commands").display(),
        );
        self.daemon.write("api.sh", &script)?;
        let passive: Vec<String> = self
            .daemon
            .config()
            .neighbors
            .iter()
            .filter(|n| n.passive)
            .map(|n| {
                n.local_address
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| unspecified(n.family()).to_string())
            })
            .collect();
        let env = vec![
            ("exabgp_daemon_user", "root".to_string()),
            ("exabgp_daemon_drop", "false".to_string()),
            ("exabgp_daemon_daemonize", "false".to_string()),
            ("exabgp_api_cli", "false".to_string()),
            ("exabgp_api_ack", "false".to_string()),
            (
                "exabgp_log_destination",
                dir.join("exabgp.log").to_string_lossy().into_owned(),
            ),
            // Listens only for passive neighbours; otherwise it only connects out.
            ("exabgp_tcp_bind", passive.join(" ")),
            (
                "exabgp_tcp_port",
                self.daemon.config().listen_port.to_string(),
            ),
        ];
        let conf = dir.join("exabgp.conf").to_string_lossy().into_owned();
        self.daemon.launch(Launch {
            program: "exabgp",
            args: vec![conf],
            env,
            socket: None,
            ready: "API process",
            probe: |d| {
                d.control_here("pgrep", &["-f", &d.path("commands").to_string_lossy()])
                    .is_ok()
            },
        })
    }

    /// Sends one raw API command, e.g. `neighbor 10.0.0.2 announce route 10.1.0.0/24 next-hop
    /// self attribute [ 0xff 0xc0 0x01020304 ]`: for attributes the other launchers cannot send
    /// (unknown, malformed-looking, AS_SET …). Such routes are not kept across a restart.
    pub fn api(&self, command: &str) -> Result<()> {
        self.send(&[command.to_string()])
    }

    /// Queues `lines` for ExaBGP's API.
    fn send(&self, lines: &[String]) -> Result<()> {
        let mut file = OpenOptions::new()
            .append(true)
            .open(self.daemon.path("commands"))?;
        for line in lines {
            writeln!(file, "{line}")?;
        }
        Ok(())
    }

    /// Every event ExaBGP reported since its last start, parsed.
    fn events(&self) -> Result<Vec<Value>> {
        let text = fs::read_to_string(self.daemon.path("events.json"))?;
        // A line still being written is skipped until it is whole.
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

impl BgpPeer for Exabgp {
    fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    fn daemon_mut(&mut self) -> &mut Daemon {
        &mut self.daemon
    }

    fn sessions(&self) -> Result<Vec<Session>> {
        Ok(replay_sessions(&self.events()?, self.daemon.config()))
    }

    fn routes(&self, family: Family) -> Result<Vec<RibRoute>> {
        let mut routes = replay_rib(&self.events()?).map_err(|reason| PeerError::Parse {
            daemon: NAME,
            query: "events.json".to_string(),
            reason,
        })?;
        routes.extend(self.daemon.config().routes.iter().map(|r| {
            let mut own = RibRoute::new(r.prefix);
            own.best = true;
            own.next_hop = r.next_hop;
            own.as_path = r.as_path.clone();
            own.med = r.med;
            own.local_pref = r.local_pref;
            own.communities = r.communities.clone();
            own.large_communities = r.large_communities.clone();
            own
        }));
        routes.retain(|r| Family::of(r.prefix.ip()) == family);
        Ok(routes)
    }

    fn announce(&mut self, route: Route) -> Result<()> {
        let lines: Vec<String> = self
            .daemon
            .config()
            .neighbors
            .iter()
            .filter(|n| n.family() == route.family())
            .map(|n| {
                format!(
                    "neighbor {} announce {}",
                    n.address,
                    route_spec(&route, n, self.daemon.config().asn)
                )
            })
            .collect();
        self.daemon.config_mut().upsert_route(route);
        self.daemon
            .write("exabgp.conf", &render(self.daemon.config(), &self.daemon))?;
        self.send(&lines)
    }

    fn withdraw(&mut self, prefix: IpNetwork) -> Result<()> {
        let lines: Vec<String> = self
            .daemon
            .config()
            .neighbors
            .iter()
            .filter(|n| n.family() == Family::of(prefix.ip()))
            .map(|n| {
                format!(
                    "neighbor {} withdraw route {prefix} next-hop self",
                    n.address
                )
            })
            .collect();
        self.daemon.config_mut().remove_route(prefix);
        self.daemon
            .write("exabgp.conf", &render(self.daemon.config(), &self.daemon))?;
        self.send(&lines)
    }

    fn restart(&mut self) -> Result<()> {
        self.daemon.kill();
        self.launch()
    }

    /// ExaBGP tears a session down with a Cease (it sends no shutdown message) and brings it
    /// back by itself, so `enabled = true` is a no-op.
    fn set_session_enabled(
        &mut self,
        neighbor: IpAddr,
        enabled: bool,
        _message: Option<&str>,
    ) -> Result<()> {
        if enabled {
            return Ok(());
        }
        // Cease subcode 2: Administrative Shutdown.
        self.send(&[format!("neighbor {neighbor} teardown 2")])
    }
}

fn unsupported(what: String) -> PeerError {
    PeerError::Unsupported { daemon: NAME, what }
}

fn unspecified(family: Family) -> IpAddr {
    match family {
        Family::Ipv4Unicast => IpAddr::from([0u8; 4]),
        Family::Ipv6Unicast => IpAddr::from([0u16; 8]),
    }
}

/// `route <prefix> next-hop … attributes…` as ExaBGP's config and API both take it. ExaBGP
/// sends the AS_PATH as given, so on eBGP our own AS goes first here.
fn route_spec(route: &Route, neighbor: &Neighbor, local_as: u32) -> String {
    let mut s = format!("route {}", route.prefix);
    match route.next_hop {
        Some(nh) => {
            let _ = write!(s, " next-hop {nh}");
        }
        None => s.push_str(" next-hop self"),
    }
    s.push_str(" origin igp");
    let mut path = route.as_path.clone();
    if !neighbor.is_ibgp(local_as) {
        path.insert(0, local_as);
    }
    let path: Vec<String> = path.iter().map(u32::to_string).collect();
    let _ = write!(s, " as-path [ {} ]", path.join(" "));
    if let Some(med) = route.med {
        let _ = write!(s, " med {med}");
    }
    if neighbor.is_ibgp(local_as) {
        let _ = write!(s, " local-preference {}", route.local_pref.unwrap_or(100));
    }
    if !route.communities.is_empty() {
        let list: Vec<String> = route.communities.iter().map(|c| c.to_string()).collect();
        let _ = write!(s, " community [ {} ]", list.join(" "));
    }
    if !route.large_communities.is_empty() {
        let list: Vec<String> = route
            .large_communities
            .iter()
            .map(|c| c.to_string())
            .collect();
        let _ = write!(s, " large-community [ {} ]", list.join(" "));
    }
    s
}

/// Each neighbour's session source address: configured, or the one the namespace's routing
/// table picks (`ip route get`), since ExaBGP 4.2 insists on knowing it.
fn local_addresses(config: &PeerConfig, daemon: &Daemon) -> BTreeMap<IpAddr, IpAddr> {
    config
        .neighbors
        .iter()
        .filter_map(|n| {
            let configured = n.local_address.or_else(|| {
                config
                    .listen_addresses
                    .iter()
                    .copied()
                    .find(|a| Family::of(*a) == n.family())
            });
            let local = configured.or_else(|| {
                let out = daemon
                    .control_here(
                        "ip",
                        &["-n", daemon.netns(), "route", "get", &n.address.to_string()],
                    )
                    .ok()?;
                let mut words = out.split_whitespace();
                words.find(|w| *w == "src")?;
                words.next()?.parse().ok()
            })?;
            Some((n.address, local))
        })
        .collect()
}

/// The whole exabgp.conf for `config`.
fn render(config: &PeerConfig, daemon: &Daemon) -> String {
    let local_addresses = local_addresses(config, daemon);
    let mut c = format!(
        "process api {{\n    run /bin/sh {};\n    encoder json;\n}}\n",
        daemon.path("api.sh").display()
    );
    for n in &config.neighbors {
        let _ = writeln!(c, "neighbor {} {{", n.address);
        let _ = writeln!(c, "    router-id {};", config.router_id);
        let local = local_addresses
            .get(&n.address)
            .map_or_else(|| "auto".to_string(), |a| a.to_string());
        let _ = writeln!(c, "    local-address {local};");
        let _ = writeln!(
            c,
            "    local-as {};\n    peer-as {};",
            config.asn, n.remote_as
        );
        if n.remote_port != 179 {
            let _ = writeln!(c, "    connect {};", n.remote_port);
        }
        if n.passive {
            c.push_str("    passive true;\n");
        }
        if let Some(hold) = n.hold_time {
            let _ = writeln!(c, "    hold-time {hold};");
        }
        if let Some(password) = &n.password {
            let _ = writeln!(c, "    md5-password \"{password}\";");
        }
        if let Some(ttl) = n.multihop {
            let _ = writeln!(c, "    outgoing-ttl {ttl};");
        }
        let family = match n.family() {
            Family::Ipv4Unicast => "ipv4 unicast",
            Family::Ipv6Unicast => "ipv6 unicast",
        };
        let _ = writeln!(c, "    family {{ {family}; }}");
        c.push_str("    capability {\n        route-refresh;\n");
        if let GracefulRestart::Enabled { restart_time } = n.graceful_restart {
            let _ = writeln!(c, "        graceful-restart {restart_time};");
        }
        let add_path = match (n.add_path.send, n.add_path.receive) {
            (true, true) => Some("send/receive"),
            (true, false) => Some("send"),
            (false, true) => Some("receive"),
            (false, false) => None,
        };
        if let Some(ap) = add_path {
            let _ = writeln!(c, "        add-path {ap};");
        }
        c.push_str("    }\n");
        c.push_str(
            "    api {\n        processes [ api ];\n        neighbor-changes;\n        receive { parsed; update; }\n    }\n",
        );
        c.push_str("    static {\n");
        for route in config.routes.iter().filter(|r| r.family() == n.family()) {
            let _ = writeln!(c, "        {};", route_spec(route, n, config.asn));
        }
        c.push_str("    }\n}\n");
    }
    c
}

/// The peer address an event is about.
fn peer_of(event: &Value) -> Option<IpAddr> {
    event["neighbor"]["address"]["peer"]
        .as_str()
        .and_then(|a| a.parse().ok())
}

/// Each configured neighbour's state after the last `state` event about it: `connected`
/// (TCP up, OPEN exchange) and `up` (Established) or `down` (with a reason).
fn replay_sessions(events: &[Value], config: &PeerConfig) -> Vec<Session> {
    config
        .neighbors
        .iter()
        .map(|n| {
            let last = events
                .iter()
                .rev()
                .find(|e| e["type"] == "state" && peer_of(e) == Some(n.address));
            let (state, last_error) = match last {
                Some(e) => match e["neighbor"]["state"].as_str() {
                    Some("up") => (SessionState::Established, None),
                    Some("connected") => (SessionState::OpenSent, None),
                    _ => (
                        SessionState::Idle,
                        e["neighbor"]["reason"].as_str().map(str::to_string),
                    ),
                },
                None => (SessionState::Idle, None),
            };
            Session {
                neighbor: n.address,
                state,
                last_error,
            }
        })
        .collect()
}

/// The learned RIB: received UPDATEs replayed in order, keyed by neighbour, prefix and path
/// id; a session going down drops what it brought.
fn replay_rib(events: &[Value]) -> std::result::Result<Vec<RibRoute>, String> {
    let mut rib: BTreeMap<(IpAddr, String, String), RibRoute> = BTreeMap::new();
    for event in events {
        let Some(peer) = peer_of(event) else {
            continue;
        };
        if event["type"] == "state" && event["neighbor"]["state"] == "down" {
            rib.retain(|(p, _, _), _| *p != peer);
            continue;
        }
        let update = &event["neighbor"]["message"]["update"];
        if event["type"] != "update" || update.is_null() {
            continue;
        }
        for nlris in update["withdraw"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            for nlri in nlris.as_array().into_iter().flatten() {
                rib.remove(&key(peer, nlri));
            }
        }
        let attrs = &update["attribute"];
        for by_next_hop in update["announce"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            for (next_hop, nlris) in by_next_hop.as_object().into_iter().flatten() {
                for nlri in nlris.as_array().into_iter().flatten() {
                    let text = nlri["nlri"].as_str().unwrap_or_default();
                    let prefix: IpNetwork =
                        text.parse().map_err(|e| format!("nlri {text:?}: {e}"))?;
                    let mut route = RibRoute::new(prefix);
                    route.from = Some(peer);
                    route.best = true;
                    route.next_hop = next_hop.parse().ok();
                    fill_attributes(&mut route, attrs);
                    rib.insert(key(peer, nlri), route);
                }
            }
        }
    }
    Ok(rib.into_values().collect())
}

fn key(peer: IpAddr, nlri: &Value) -> (IpAddr, String, String) {
    (
        peer,
        nlri["nlri"].as_str().unwrap_or_default().to_string(),
        nlri["path-information"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn fill_attributes(route: &mut RibRoute, attrs: &Value) {
    let u32_of = |v: &Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
    route.as_path = attrs["as-path"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(u32_of)
        .collect();
    route.med = u32_of(&attrs["med"]);
    route.local_pref = u32_of(&attrs["local-preference"]);
    route.communities = attrs["community"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some(Community::new(
                u16::try_from(c[0].as_u64()?).ok()?,
                u16::try_from(c[1].as_u64()?).ok()?,
            ))
        })
        .collect();
    route.large_communities = attrs["large-community"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some(LargeCommunity::new(
                u32_of(&c[0])?,
                u32_of(&c[1])?,
                u32_of(&c[2])?,
            ))
        })
        .collect();
    route.originator_id = attrs["originator-id"].as_str().and_then(|a| a.parse().ok());
    route.cluster_list = attrs["cluster-list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().and_then(|a| a.parse().ok()))
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_events_into_sessions_and_rib() {
        let lines = [
            r#"{"type":"state","neighbor":{"address":{"local":"10.77.0.1","peer":"10.77.0.2"},"state":"up"}}"#,
            r#"{"type":"update","neighbor":{"address":{"peer":"10.77.0.2"},"message":{"update":{"attribute":{"origin":"igp","as-path":[65002,65100],"med":7,"community":[[65002,20]],"large-community":[[65002,1,2]]},"announce":{"ipv4 unicast":{"10.77.0.2":[{"nlri":"10.202.0.0/24"},{"nlri":"10.203.0.0/24"}]}}}}}}"#,
            r#"{"type":"update","neighbor":{"address":{"peer":"10.77.0.2"},"message":{"update":{"withdraw":{"ipv4 unicast":[{"nlri":"10.203.0.0/24"}]}}}}}"#,
        ];
        let events: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let config = PeerConfig::new(65001, "10.77.0.1".parse().unwrap())
            .neighbor(Neighbor::new("10.77.0.2".parse().unwrap(), 65002));
        let sessions = replay_sessions(&events, &config);
        assert_eq!(sessions[0].state, SessionState::Established);
        let rib = replay_rib(&events).unwrap();
        assert_eq!(rib.len(), 1);
        assert_eq!(rib[0].prefix, "10.202.0.0/24".parse().unwrap());
        assert_eq!(rib[0].as_path, vec![65002, 65100]);
        assert_eq!(rib[0].med, Some(7));
        assert_eq!(rib[0].communities, vec![Community::new(65002, 20)]);
        assert_eq!(
            rib[0].large_communities,
            vec![LargeCommunity::new(65002, 1, 2)]
        );
        assert_eq!(rib[0].next_hop, Some("10.77.0.2".parse().unwrap()));
    }
}
