//! GoBGP as a test peer: `gobgpd -f <dir>/gobgpd.toml` in a namespace.
//!
//! The gRPC API listens on a unix socket in the temp dir (`--api-hosts unix://…`), so instances
//! never compete for port 50051 and the `gobgp` CLI reaches each one from the root namespace
//! with `--target unix://…`. GoBGP's config file has no static routes: routes are added with
//! `gobgp global rib add` after every start.

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde_json::Value;

use super::daemon::Launch;
use super::{
    BgpPeer, Community, Daemon, Family, GracefulRestart, LargeCommunity, PeerConfig, PeerError,
    Result, RibRoute, Route, Session, SessionState,
};
use crate::netns::Netns;

const NAME: &str = "gobgp";

/// A gobgpd in a namespace, killed on drop.
#[derive(Debug)]
pub struct Gobgp {
    daemon: Daemon,
}

impl Gobgp {
    /// Renders `config`, starts gobgpd in `netns`, waits for its API and adds the routes.
    pub fn start(netns: &Netns, config: PeerConfig) -> Result<Gobgp> {
        let mut gobgp = Gobgp {
            daemon: Daemon::new(NAME, netns, config)?,
        };
        gobgp.launch(false)?;
        Ok(gobgp)
    }

    /// Runs a `gobgp` CLI command against this instance; returns its output.
    pub fn gobgp(&self, args: &[&str]) -> Result<String> {
        gobgp(&self.daemon, args)
    }

    fn launch(&mut self, restarting: bool) -> Result<()> {
        self.daemon
            .write("gobgpd.toml", &render(self.daemon.config()))?;
        let mut args = vec![
            "-f".to_string(),
            self.daemon
                .path("gobgpd.toml")
                .to_string_lossy()
                .into_owned(),
            "-t".to_string(),
            "toml".to_string(),
            format!(
                "--api-hosts=unix://{}",
                self.daemon.path("gobgp.sock").display()
            ),
            "--pprof-disable".to_string(),
            "--log-plain".to_string(),
        ];
        if restarting {
            // Sets the Restart State bit so neighbours keep our routes as stale.
            args.push("--graceful-restart".to_string());
        }
        self.daemon.launch(Launch {
            program: "gobgpd",
            args,
            env: Vec::new(),
            socket: Some("gobgp.sock"),
            ready: "gRPC API",
            probe: |d| gobgp(d, &["global"]).is_ok(),
        })?;
        for route in self.daemon.config().routes.clone() {
            self.add(&route)?;
        }
        Ok(())
    }

    fn add(&self, route: &Route) -> Result<()> {
        let args = rib_add_args(route);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.gobgp(&args)?;
        Ok(())
    }
}

impl BgpPeer for Gobgp {
    fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    fn daemon_mut(&mut self) -> &mut Daemon {
        &mut self.daemon
    }

    fn sessions(&self) -> Result<Vec<Session>> {
        let out = self.gobgp(&["neighbor", "-j"])?;
        parse_neighbors(&out).map_err(|reason| PeerError::Parse {
            daemon: NAME,
            query: "neighbor -j".to_string(),
            reason,
        })
    }

    fn routes(&self, family: Family) -> Result<Vec<RibRoute>> {
        let afi = afi(family);
        let out = self.gobgp(&["global", "rib", "-a", afi, "-j"])?;
        parse_rib(&out).map_err(|reason| PeerError::Parse {
            daemon: NAME,
            query: format!("global rib -a {afi} -j"),
            reason,
        })
    }

    fn announce(&mut self, route: Route) -> Result<()> {
        self.add(&route)?;
        self.daemon.config_mut().upsert_route(route);
        Ok(())
    }

    fn withdraw(&mut self, prefix: IpNetwork) -> Result<()> {
        let afi = afi(Family::of(prefix.ip()));
        let prefix_text = prefix.to_string();
        self.gobgp(&["global", "rib", "del", "-a", afi, &prefix_text])?;
        self.daemon.config_mut().remove_route(prefix);
        Ok(())
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
        let addr = neighbor.to_string();
        let mut args = vec![
            "neighbor",
            addr.as_str(),
            if enabled { "enable" } else { "disable" },
        ];
        if let (false, Some(m)) = (enabled, message) {
            args.extend(["--reason", m]);
        }
        self.gobgp(&args)?;
        Ok(())
    }
}

/// Runs `gobgp --target unix://<socket> args…` from the root namespace.
fn gobgp(daemon: &Daemon, args: &[&str]) -> Result<String> {
    let target = format!("unix://{}", daemon.path("gobgp.sock").display());
    let mut full = vec!["--target", target.as_str()];
    full.extend_from_slice(args);
    Ok(daemon.control_here("gobgp", &full)?)
}

fn afi(family: Family) -> &'static str {
    match family {
        Family::Ipv4Unicast => "ipv4",
        Family::Ipv6Unicast => "ipv6",
    }
}

fn afi_safi_name(family: Family) -> &'static str {
    match family {
        Family::Ipv4Unicast => "ipv4-unicast",
        Family::Ipv6Unicast => "ipv6-unicast",
    }
}

/// `gobgp global rib add` arguments for `route` (ORIGIN igp, as the other daemons send).
fn rib_add_args(route: &Route) -> Vec<String> {
    let mut a: Vec<String> = ["global", "rib", "add", "-a", afi(route.family())]
        .map(String::from)
        .to_vec();
    a.push(route.prefix.to_string());
    a.extend(["origin".to_string(), "igp".to_string()]);
    if let Some(nh) = route.next_hop {
        a.extend(["nexthop".to_string(), nh.to_string()]);
    }
    if !route.as_path.is_empty() {
        let path: Vec<String> = route.as_path.iter().map(u32::to_string).collect();
        a.extend(["aspath".to_string(), path.join(",")]);
    }
    if let Some(med) = route.med {
        a.extend(["med".to_string(), med.to_string()]);
    }
    if let Some(pref) = route.local_pref {
        a.extend(["local-pref".to_string(), pref.to_string()]);
    }
    if !route.communities.is_empty() {
        let list: Vec<String> = route.communities.iter().map(|c| c.to_string()).collect();
        a.extend(["community".to_string(), list.join(",")]);
    }
    if !route.large_communities.is_empty() {
        let list: Vec<String> = route
            .large_communities
            .iter()
            .map(|c| c.to_string())
            .collect();
        a.extend(["large-community".to_string(), list.join(",")]);
    }
    a
}

/// The whole gobgpd.toml for `config`.
fn render(config: &PeerConfig) -> String {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "[global.config]\n  as = {}\n  router-id = \"{}\"\n  port = {}",
        config.asn, config.router_id, config.listen_port
    );
    if !config.listen_addresses.is_empty() {
        let list: Vec<String> = config
            .listen_addresses
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect();
        let _ = writeln!(c, "  local-address-list = [{}]", list.join(", "));
    }
    for n in &config.neighbors {
        let _ = writeln!(
            c,
            "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}",
            n.address, n.remote_as
        );
        if let Some(password) = &n.password {
            let _ = writeln!(c, "    auth-password = \"{password}\"");
        }
        let _ = writeln!(
            c,
            "  [neighbors.timers.config]\n    connect-retry = {}",
            super::CONNECT_RETRY
        );
        if let Some(hold) = n.hold_time {
            let _ = writeln!(
                c,
                "    hold-time = {hold}\n    keepalive-interval = {}",
                (hold / 3).max(1)
            );
        }
        let _ = writeln!(
            c,
            "  [neighbors.transport.config]\n    passive-mode = {}\n    remote-port = {}",
            n.passive, n.remote_port
        );
        if let Some(local) = n.local_address {
            let _ = writeln!(c, "    local-address = \"{local}\"");
        }
        if let Some(ttl) = n.multihop {
            let _ = writeln!(
                c,
                "  [neighbors.ebgp-multihop.config]\n    enabled = true\n    multihop-ttl = {ttl}"
            );
        }
        if n.rr_client {
            let cluster = config.cluster_id.unwrap_or(config.router_id);
            let _ = writeln!(
                c,
                "  [neighbors.route-reflector.config]\n    route-reflector-client = true\n    route-reflector-cluster-id = \"{cluster}\""
            );
        }
        match n.graceful_restart {
            GracefulRestart::Disabled => {}
            GracefulRestart::Helper => c.push_str(
                "  [neighbors.graceful-restart.config]\n    enabled = true\n    helper-only = true\n",
            ),
            GracefulRestart::Enabled { restart_time } => {
                let _ = writeln!(
                    c,
                    "  [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = {restart_time}"
                );
            }
        }
        let _ = writeln!(
            c,
            "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{}\"",
            afi_safi_name(n.family())
        );
        if n.graceful_restart != GracefulRestart::Disabled {
            c.push_str(
                "    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n",
            );
        }
        if n.add_path.send || n.add_path.receive {
            let _ = writeln!(
                c,
                "    [neighbors.afi-safis.add-paths.config]\n      receive = {}\n      send-max = {}",
                n.add_path.receive,
                if n.add_path.send { 8 } else { 0 }
            );
        }
    }
    c
}

/// Sessions from `gobgp neighbor -j`: `conf.neighbor_address` and `state.session_state`, the
/// API's enum (1 idle … 6 established). GoBGP reports no last error there.
fn parse_neighbors(out: &str) -> std::result::Result<Vec<Session>, String> {
    let peers: Value = serde_json::from_str(out).map_err(|e| e.to_string())?;
    let peers = peers.as_array().ok_or("not a JSON array")?;
    peers
        .iter()
        .map(|p| {
            let addr = p["conf"]["neighbor_address"]
                .as_str()
                .ok_or("no conf.neighbor_address")?;
            let state = match p["state"]["session_state"].as_u64() {
                Some(2) => SessionState::Connect,
                Some(3) => SessionState::Active,
                Some(4) => SessionState::OpenSent,
                Some(5) => SessionState::OpenConfirm,
                Some(6) => SessionState::Established,
                _ => SessionState::Idle,
            };
            Ok(Session {
                neighbor: addr.parse().map_err(|e| format!("{addr:?}: {e}"))?,
                state,
                last_error: None,
            })
        })
        .collect()
}

/// Routes from `gobgp global rib -j`: `{prefix: [path…]}`, each path with `best`, `stale`,
/// `neighbor-ip` (absent for local routes) and `attrs`, a list of `{type, …}` objects keyed by
/// attribute type code.
fn parse_rib(out: &str) -> std::result::Result<Vec<RibRoute>, String> {
    if out.trim().is_empty() {
        return Ok(Vec::new());
    }
    let rib: Value = serde_json::from_str(out).map_err(|e| e.to_string())?;
    let rib = rib.as_object().ok_or("not a JSON object")?;
    let mut routes = Vec::new();
    for (prefix, paths) in rib {
        let prefix: IpNetwork = prefix.parse().map_err(|e| format!("{prefix:?}: {e}"))?;
        for path in paths.as_array().ok_or("paths not an array")? {
            let mut route = RibRoute::new(prefix);
            route.best = path["best"].as_bool().unwrap_or(false);
            route.stale = path["stale"].as_bool().unwrap_or(false);
            route.from = path["neighbor-ip"].as_str().and_then(|a| a.parse().ok());
            for attr in path["attrs"].as_array().ok_or("attrs not an array")? {
                parse_attr(&mut route, attr)?;
            }
            routes.push(route);
        }
    }
    Ok(routes)
}

fn parse_attr(route: &mut RibRoute, attr: &Value) -> std::result::Result<(), String> {
    let u32_of = |v: &Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
    match attr["type"].as_u64() {
        Some(2) => {
            route.as_path = attr["as_paths"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|seg| seg["asns"].as_array().into_iter().flatten())
                .filter_map(u32_of)
                .collect();
        }
        Some(3) | Some(14) => route.next_hop = parsed(&attr["nexthop"]),
        Some(4) => route.med = u32_of(&attr["metric"]),
        Some(5) => route.local_pref = u32_of(&attr["value"]),
        Some(8) => {
            route.communities = attr["communities"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(u32_of)
                .map(Community::from_u32)
                .collect();
        }
        Some(9) => route.originator_id = parsed(&attr["value"]),
        Some(10) => {
            route.cluster_list = attr["value"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(parsed)
                .collect();
        }
        Some(32) => {
            route.large_communities = attr["value"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    Some(LargeCommunity::new(
                        u32_of(&c["ASN"])?,
                        u32_of(&c["LocalData1"])?,
                        u32_of(&c["LocalData2"])?,
                    ))
                })
                .collect::<Option<_>>()
                .ok_or("malformed large community")?;
        }
        _ => {}
    }
    Ok(())
}

/// A JSON string parsed as `T` (an address); `None` if absent or malformed.
fn parsed<T: std::str::FromStr>(v: &Value) -> Option<T> {
    v.as_str().and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_global_rib_json() {
        let out = r#"{"10.60.0.0/24":[{"nlri":{"prefix":"10.60.0.0/24"},"best":true,"attrs":[{"type":1,"value":2},{"type":2,"as_paths":[{"segment_type":2,"num":2,"asns":[65010,65011]}]},{"type":4,"metric":3},{"type":5,"value":200},{"type":8,"communities":[4259971081]},{"type":9,"value":"10.0.0.9"},{"type":10,"value":["10.0.0.5"]},{"type":32,"value":[{"ASN":65002,"LocalData1":1,"LocalData2":1}]},{"type":3,"nexthop":"10.9.0.1"}],"stale":true,"neighbor-ip":"10.9.0.1"}]}"#;
        let routes = parse_rib(out).unwrap();
        assert_eq!(routes.len(), 1);
        let r = &routes[0];
        assert!(r.best && r.stale);
        assert_eq!(r.from, Some("10.9.0.1".parse().unwrap()));
        assert_eq!(r.as_path, vec![65010, 65011]);
        assert_eq!((r.med, r.local_pref), (Some(3), Some(200)));
        assert_eq!(r.communities, vec![Community::new(65002, 9)]);
        assert_eq!(r.large_communities, vec![LargeCommunity::new(65002, 1, 1)]);
        assert_eq!(r.originator_id, Some("10.0.0.9".parse().unwrap()));
        assert_eq!(
            r.cluster_list,
            vec!["10.0.0.5".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        assert_eq!(r.next_hop, Some("10.9.0.1".parse().unwrap()));
    }

    #[test]
    fn parses_neighbor_json() {
        let out = r#"[{"conf":{"neighbor_address":"10.9.0.1"},"state":{"session_state":6}},{"conf":{"neighbor_address":"fd00::1"},"state":{}}]"#;
        let s = parse_neighbors(out).unwrap();
        assert_eq!(s[0].state, SessionState::Established);
        assert_eq!(s[1].state, SessionState::Idle);
    }
}
