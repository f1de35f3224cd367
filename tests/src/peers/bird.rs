//! BIRD 2 as a test peer: `bird -f -c <dir>/bird.conf -s <dir>/bird.ctl` in a namespace.
//!
//! Each instance has its own control socket (`-s`), so any number run side by side; `birdc`
//! reaches it from the root namespace through that socket. Routes are originated by two static
//! protocols; their attributes are set in the BGP export filter, because BIRD sends MED to an
//! eBGP neighbour only when the export filter set it. `announce`/`withdraw` rewrite the config
//! and run `birdc configure`, which changes routes without resetting sessions.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::str::FromStr;

use ipnetwork::IpNetwork;

use super::daemon::Launch;
use super::{
    BgpPeer, Community, Daemon, Family, GracefulRestart, LargeCommunity, PeerConfig, PeerError,
    Result, RibRoute, Route, Session, SessionState,
};
use crate::netns::Netns;

const NAME: &str = "bird";

/// A BIRD daemon in a namespace, killed on drop.
#[derive(Debug)]
pub struct Bird {
    daemon: Daemon,
}

impl Bird {
    /// Renders `config`, starts BIRD in `netns` and waits until it answers on its socket.
    pub fn start(netns: &Netns, config: PeerConfig) -> Result<Bird> {
        let mut bird = Bird {
            daemon: Daemon::new(NAME, netns, config)?,
        };
        bird.launch(false)?;
        Ok(bird)
    }

    /// Runs a `birdc` command; returns its output.
    pub fn birdc(&self, args: &[&str]) -> Result<String> {
        birdc(&self.daemon, args)
    }

    fn protocol_of(&self, neighbor: IpAddr) -> Result<String> {
        self.daemon
            .config()
            .neighbors
            .iter()
            .position(|n| n.address == neighbor)
            .map(protocol_name)
            .ok_or_else(|| PeerError::Unsupported {
                daemon: NAME,
                what: format!("a session to unconfigured neighbour {neighbor}"),
            })
    }

    fn launch(&mut self, recovering: bool) -> Result<()> {
        self.daemon
            .write("bird.conf", &render(self.daemon.config(), &self.daemon))?;
        let mut args = vec![
            "-f".to_string(),
            "-c".to_string(),
            self.daemon.path("bird.conf").to_string_lossy().into_owned(),
            "-s".to_string(),
            self.daemon.path("bird.ctl").to_string_lossy().into_owned(),
            "-P".to_string(),
            self.daemon.path("bird.pid").to_string_lossy().into_owned(),
        ];
        if recovering {
            // Graceful restart recovery: neighbours keep our routes until we are back.
            args.push("-R".to_string());
        }
        self.daemon.launch(Launch {
            program: "bird",
            args,
            env: Vec::new(),
            socket: Some("bird.ctl"),
            ready: "control socket",
            probe: |d| birdc(d, &["show", "status"]).is_ok(),
        })
    }

    fn reconfigure(&mut self) -> Result<()> {
        self.daemon
            .write("bird.conf", &render(self.daemon.config(), &self.daemon))?;
        let out = self.birdc(&["configure"])?;
        if out.contains("Reconfigured") || out.contains("Reconfiguration in progress") {
            Ok(())
        } else {
            Err(PeerError::Parse {
                daemon: NAME,
                query: "configure".to_string(),
                reason: out,
            })
        }
    }
}

impl BgpPeer for Bird {
    fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    fn daemon_mut(&mut self) -> &mut Daemon {
        &mut self.daemon
    }

    fn sessions(&self) -> Result<Vec<Session>> {
        let out = self.birdc(&["show", "protocols"])?;
        Ok(parse_protocols(&out, self.daemon.config()))
    }

    fn routes(&self, family: Family) -> Result<Vec<RibRoute>> {
        let table = match family {
            Family::Ipv4Unicast => "master4",
            Family::Ipv6Unicast => "master6",
        };
        let out = self.birdc(&["show", "route", "all", "table", table])?;
        let mut routes =
            parse_routes(&out, self.daemon.config()).map_err(|reason| PeerError::Parse {
                daemon: NAME,
                query: format!("show route all table {table}"),
                reason,
            })?;
        // BIRD shows only long-lived stale routes as such; routes kept over a graceful restart
        // are stale while their protocol says "Neighbor graceful restart active".
        let restarting = restarting_neighbors(
            &self.birdc(&["show", "protocols", "all"])?,
            self.daemon.config(),
        );
        for route in &mut routes {
            route.stale |= route.from.is_some_and(|f| restarting.contains(&f));
        }
        Ok(routes)
    }

    fn announce(&mut self, route: Route) -> Result<()> {
        self.daemon.config_mut().upsert_route(route);
        self.reconfigure()
    }

    fn withdraw(&mut self, prefix: IpNetwork) -> Result<()> {
        self.daemon.config_mut().remove_route(prefix);
        self.reconfigure()
    }

    fn restart(&mut self) -> Result<()> {
        self.daemon.kill();
        self.launch(self.daemon.config().graceful_restart_enabled())
    }

    fn set_session_enabled(
        &mut self,
        neighbor: IpAddr,
        enabled: bool,
        message: Option<&str>,
    ) -> Result<()> {
        let name = self.protocol_of(neighbor)?;
        let quoted = message.map(|m| format!("\"{}\"", m.replace('"', "")));
        let mut args = vec![if enabled { "enable" } else { "disable" }, name.as_str()];
        if let (false, Some(q)) = (enabled, &quoted) {
            args.push(q);
        }
        self.birdc(&args)?;
        Ok(())
    }
}

/// Runs `birdc -s <socket> args…` from the root namespace: the unix socket needs no netns.
fn birdc(daemon: &Daemon, args: &[&str]) -> Result<String> {
    let socket = daemon.path("bird.ctl");
    let socket = socket.to_string_lossy();
    let mut full = vec!["-s", socket.as_ref()];
    full.extend_from_slice(args);
    Ok(daemon.control_here("birdc", &full)?)
}

fn protocol_name(index: usize) -> String {
    format!("peer{}", index + 1)
}

/// The neighbour whose BGP protocol is called `name`.
fn neighbor_of(config: &PeerConfig, name: &str) -> Option<IpAddr> {
    config
        .neighbors
        .iter()
        .enumerate()
        .find(|(i, _)| protocol_name(*i) == name)
        .map(|(_, n)| n.address)
}

/// The whole bird.conf for `config`.
fn render(config: &PeerConfig, daemon: &Daemon) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "router id {};", config.router_id);
    let _ = writeln!(c, "log \"{}\" all;", daemon.path("bird.log").display());
    c.push_str("protocol device { scan time 2; }\n");
    for (name, family, channel) in [
        ("static4", Family::Ipv4Unicast, "ipv4"),
        ("static6", Family::Ipv6Unicast, "ipv6"),
    ] {
        let _ = writeln!(c, "protocol static {name} {{\n    {channel};");
        for route in config.routes.iter().filter(|r| r.family() == family) {
            let _ = writeln!(c, "    route {} blackhole;", route.prefix);
        }
        c.push_str("}\n");
    }
    c.push_str(&render_export_filter(config));
    for (i, n) in config.neighbors.iter().enumerate() {
        let _ = writeln!(c, "protocol bgp {} {{", protocol_name(i));
        let local = n
            .local_address
            .or_else(|| {
                config
                    .listen_addresses
                    .iter()
                    .copied()
                    .find(|a| Family::of(*a) == n.family())
            })
            .map(|a| format!("{a} "))
            .unwrap_or_default();
        let _ = writeln!(
            c,
            "    local {local}port {} as {};",
            config.listen_port, config.asn
        );
        let _ = writeln!(
            c,
            "    neighbor {} port {} as {};",
            n.address, n.remote_port, n.remote_as
        );
        if n.passive {
            c.push_str("    passive on;\n");
        }
        if let Some(hold) = n.hold_time {
            let _ = writeln!(c, "    hold time {hold};");
        }
        if let Some(password) = &n.password {
            let _ = writeln!(c, "    password \"{password}\";");
        }
        if let Some(ttl) = n.multihop {
            let _ = writeln!(c, "    multihop {ttl};");
        }
        if n.rr_client {
            c.push_str("    rr client;\n");
        }
        if let Some(id) = config.cluster_id {
            let _ = writeln!(c, "    rr cluster id {id};");
        }
        match n.graceful_restart {
            GracefulRestart::Disabled => c.push_str("    graceful restart off;\n"),
            GracefulRestart::Helper => c.push_str("    graceful restart aware;\n"),
            GracefulRestart::Enabled { restart_time } => {
                let _ = writeln!(
                    c,
                    "    graceful restart on;\n    graceful restart time {restart_time};"
                );
            }
        }
        let _ = writeln!(
            c,
            "    connect delay time 1;\n    connect retry time {};\n    error wait time 1, 5;",
            super::CONNECT_RETRY
        );
        let add_paths = match (n.add_path.send, n.add_path.receive) {
            (true, true) => " add paths on;",
            (true, false) => " add paths tx;",
            (false, true) => " add paths rx;",
            (false, false) => "",
        };
        let channel = match n.family() {
            Family::Ipv4Unicast => "ipv4",
            Family::Ipv6Unicast => "ipv6",
        };
        let _ = writeln!(
            c,
            "    {channel} {{ import all; export filter export_routes;{add_paths} }};\n}}"
        );
    }
    c
}

/// The BGP export filter: everything passes; our static routes get their attributes here.
fn render_export_filter(config: &PeerConfig) -> String {
    let mut f = String::from("filter export_routes {\n    if source = RTS_STATIC then {\n");
    for route in &config.routes {
        let _ = write!(f, "        if net = {} then {{", route.prefix);
        if let Some(nh) = route.next_hop {
            let _ = write!(f, " bgp_next_hop = {nh};");
        }
        if let Some(med) = route.med {
            let _ = write!(f, " bgp_med = {med};");
        }
        if let Some(pref) = route.local_pref {
            let _ = write!(f, " bgp_local_pref = {pref};");
        }
        for Community { asn, value } in &route.communities {
            let _ = write!(f, " bgp_community.add(({asn},{value}));");
        }
        for LargeCommunity {
            global,
            local1,
            local2,
        } in &route.large_communities
        {
            let _ = write!(f, " bgp_large_community.add(({global},{local1},{local2}));");
        }
        // Prepending the last AS first leaves the path in the order given.
        for asn in route.as_path.iter().rev() {
            let _ = write!(f, " bgp_path.prepend({asn});");
        }
        f.push_str(" }\n");
    }
    f.push_str("    }\n    accept;\n}\n");
    f
}

/// Sessions from `show protocols`: `Name Proto Table State Since Info`, where a BGP row's Info
/// is the FSM state followed by the last error, e.g. `Active  Socket: Connection refused`.
fn parse_protocols(out: &str, config: &PeerConfig) -> Vec<Session> {
    let mut sessions = Vec::new();
    for line in out.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let [name, "BGP", _table, state, _since, info @ ..] = cols.as_slice() else {
            continue;
        };
        let Some(neighbor) = neighbor_of(config, name) else {
            continue;
        };
        // A protocol that is `down` (disabled or never started) shows no FSM state.
        let (fsm, error) = match info.split_first() {
            Some((first, rest)) if *state != "down" => (
                SessionState::parse(first).unwrap_or(SessionState::Idle),
                rest.join(" "),
            ),
            _ => (SessionState::Idle, info.join(" ")),
        };
        sessions.push(Session {
            neighbor,
            state: fsm,
            last_error: (!error.is_empty()).then_some(error),
        });
    }
    sessions
}

/// Neighbours whose protocol block in `show protocols all` says "Neighbor graceful restart
/// active": the session is down or back without End-of-RIB yet, and their routes are stale.
fn restarting_neighbors(out: &str, config: &PeerConfig) -> Vec<IpAddr> {
    let mut current: Option<IpAddr> = None;
    let mut restarting = Vec::new();
    for line in out.lines() {
        if !line.starts_with(' ') {
            let name = line.split_whitespace().next().unwrap_or_default();
            current = neighbor_of(config, name);
        } else if line.contains("Neighbor graceful restart active") {
            restarting.extend(current);
        }
    }
    restarting
}

/// Routes from `show route all`: a route starts with `<prefix> <type> [<proto> <since> …]
/// [*] (<pref>[s]…) …` (the prefix left blank for further paths of the same net), followed by
/// tab-indented attribute lines (`BGP.as_path: …`). `*` marks the best path, `s` after the
/// preference a stale one.
fn parse_routes(out: &str, config: &PeerConfig) -> std::result::Result<Vec<RibRoute>, String> {
    let mut routes: Vec<RibRoute> = Vec::new();
    let mut prefix: Option<IpNetwork> = None;
    for line in out.lines() {
        if line.trim().is_empty() || line.starts_with("Table ") || line.starts_with("BIRD ") {
            continue;
        }
        if let Some(attr) = line.strip_prefix('\t') {
            if let Some(route) = routes.last_mut() {
                parse_attribute(route, attr)?;
            }
            continue;
        }
        let mut tokens = line.split_whitespace().peekable();
        if !line.starts_with(' ') {
            let text = tokens.next().unwrap_or_default();
            prefix = Some(IpNetwork::from_str(text).map_err(|e| format!("prefix {text:?}: {e}"))?);
        }
        let net = prefix.ok_or_else(|| format!("path before any prefix: {line:?}"))?;
        let mut route = RibRoute::new(net);
        let rest: Vec<&str> = tokens.collect();
        let proto = rest
            .iter()
            .find_map(|t| t.strip_prefix('['))
            .ok_or_else(|| format!("no [protocol …] in {line:?}"))?;
        route.from = neighbor_of(config, proto);
        route.best = rest.contains(&"*");
        // `(100s)`, `(100-s/?)`: flags follow the preference, before `/` or `)`.
        route.stale = rest
            .iter()
            .find_map(|t| t.strip_prefix('('))
            .and_then(|pref| {
                pref.trim_start_matches(|c: char| c.is_ascii_digit())
                    .split(['/', ')'])
                    .next()
            })
            .is_some_and(|flags| flags.contains('s'));
        routes.push(route);
    }
    Ok(routes)
}

fn parse_attribute(route: &mut RibRoute, attr: &str) -> std::result::Result<(), String> {
    let Some((key, value)) = attr.split_once(':') else {
        return Ok(());
    };
    let value = value.trim();
    let number = |v: &str| v.parse::<u32>().map_err(|e| format!("{key} {v:?}: {e}"));
    match key {
        "BGP.as_path" => {
            route.as_path = value
                .split(|c: char| !c.is_ascii_digit())
                .filter(|t| !t.is_empty())
                .map(number)
                .collect::<std::result::Result<_, _>>()?;
        }
        "BGP.next_hop" => {
            let first = value.split_whitespace().next().unwrap_or_default();
            route.next_hop = Some(first.parse().map_err(|e| format!("{key} {first:?}: {e}"))?);
        }
        "BGP.med" => route.med = Some(number(value)?),
        "BGP.local_pref" => route.local_pref = Some(number(value)?),
        "BGP.community" => {
            route.communities = tuples(value)
                .map(|t| Community::parse(&t.replace(',', ":")))
                .collect::<Option<_>>()
                .ok_or_else(|| format!("{key} {value:?}"))?;
        }
        "BGP.large_community" => {
            route.large_communities = tuples(value)
                .map(LargeCommunity::parse)
                .collect::<Option<_>>()
                .ok_or_else(|| format!("{key} {value:?}"))?;
        }
        "BGP.originator_id" => {
            route.originator_id = Some(value.parse().map_err(|e| format!("{key}: {e}"))?);
        }
        "BGP.cluster_list" => {
            route.cluster_list = value
                .split_whitespace()
                .map(|t| t.parse().map_err(|e| format!("{key} {t:?}: {e}")))
                .collect::<std::result::Result<_, _>>()?;
        }
        _ => {}
    }
    Ok(())
}

/// The `( … )` groups of BIRD's community lists, without the parentheses.
fn tuples(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(')')
        .filter_map(|part| part.split_once('(').map(|(_, inner)| inner.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::Neighbor;

    fn config() -> PeerConfig {
        PeerConfig::new(65001, "10.9.0.1".parse().unwrap())
            .neighbor(Neighbor::new("10.9.0.2".parse().unwrap(), 65002))
    }

    #[test]
    fn parses_show_route_all() {
        let out = "BIRD 2.0.12 ready.\nTable master4:\n\
10.60.0.0/24         unicast [peer1 01:12:06.314] * (100) [AS65011?]\n\
\tvia 10.9.0.2 on veth0\n\
\tType: BGP univ\n\
\tBGP.origin: Incomplete\n\
\tBGP.as_path: 65002 65010 {65011 65012}\n\
\tBGP.next_hop: 10.9.0.2\n\
\tBGP.med: 3\n\
\tBGP.local_pref: 100\n\
\tBGP.community: (65002,9) (65535,65281)\n\
\tBGP.large_community: (65002, 1, 1) (65002, 1, 2)\n\
\tBGP.originator_id: 10.0.0.7\n\
\tBGP.cluster_list: 10.0.0.5 10.0.0.6\n\
\x20                    unicast [peer1 01:12:07.000] (100s) [AS65002i]\n\
\tBGP.as_path: 65002\n\
10.50.0.0/24         blackhole [static4 01:12:04.273] * (200)\n\
\tType: static univ\n";
        let routes = parse_routes(out, &config()).unwrap();
        assert_eq!(routes.len(), 3);
        let r = &routes[0];
        assert_eq!(r.prefix, "10.60.0.0/24".parse().unwrap());
        assert_eq!(r.from, Some("10.9.0.2".parse().unwrap()));
        assert!(r.best && !r.stale);
        assert_eq!(r.as_path, vec![65002, 65010, 65011, 65012]);
        assert_eq!(r.next_hop, Some("10.9.0.2".parse().unwrap()));
        assert_eq!((r.med, r.local_pref), (Some(3), Some(100)));
        assert_eq!(
            r.communities,
            vec![Community::new(65002, 9), Community::new(65535, 65281)]
        );
        assert_eq!(
            r.large_communities,
            vec![
                LargeCommunity::new(65002, 1, 1),
                LargeCommunity::new(65002, 1, 2)
            ]
        );
        assert_eq!(r.originator_id, Some("10.0.0.7".parse().unwrap()));
        assert_eq!(r.cluster_list.len(), 2);
        assert_eq!(routes[1].prefix, r.prefix);
        assert!(routes[1].stale && !routes[1].best);
        assert_eq!(routes[2].from, None);
    }

    #[test]
    fn finds_neighbors_in_graceful_restart() {
        let out = "BIRD 2.0.12 ready.\n\
Name       Proto      Table      State  Since         Info\n\
peer1      BGP        ---        start  01:26:51.575  Active        Socket: Connection refused\n\
\x20 BGP state:          Active\n\
\x20   Neighbor address: 10.9.0.2\n\
\x20   Neighbor graceful restart active\n\
\x20 Channel ipv4\n";
        assert_eq!(
            restarting_neighbors(out, &config()),
            vec!["10.9.0.2".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn parses_show_protocols() {
        let out = "BIRD 2.0.12 ready.\n\
Name       Proto      Table      State  Since         Info\n\
device1    Device     ---        up     01:12:04.273  \n\
peer1      BGP        ---        start  01:12:05.095  Idle          Received: Bad peer AS\n";
        let s = parse_protocols(out, &config());
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].state, SessionState::Idle);
        assert_eq!(s[0].last_error.as_deref(), Some("Received: Bad peer AS"));
    }
}
