//! What a speaker is started with: speaker-wide settings and one [`PeerSettings`] per neighbour.
//! Deserializable from TOML for the `bgp-speaker` binary; the daemon builds it in code.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bgpd_rib::{AddPathSend, Policy};
use bgpd_wire::{
    AddPathFamily, AddPathMode, AfiSafi, Asn, Capability, GracefulRestart, GracefulRestartFamily,
    Prefix,
};
use serde::{Deserialize, Deserializer};

use crate::transport::{BGP_PORT, Reach, SocketOptions};

fn asn<'de, D: Deserializer<'de>>(d: D) -> Result<Asn, D::Error> {
    u32::deserialize(d).map(Asn)
}

fn prefix<'de, D: Deserializer<'de>>(d: D) -> Result<Prefix, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<Prefix>()
        .map_err(|e| serde::de::Error::custom(format!("{s}: {e}")))
}

fn prefixes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Prefix>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| {
            s.parse::<Prefix>()
                .map_err(|e| serde::de::Error::custom(format!("{s}: {e}")))
        })
        .collect()
}

/// Speaker-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeakerConfig {
    /// Our AS.
    #[serde(deserialize_with = "asn")]
    pub local_as: Asn,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Addresses to accept connections on (default: all IPv4 and IPv6 addresses, port 179).
    #[serde(default = "default_listen")]
    pub listen: Vec<SocketAddr>,
    /// Route reflector cluster id; peers marked `rr_client` are then clients (RFC 4456).
    #[serde(default)]
    pub cluster_id: Option<Ipv4Addr>,
    /// Width of the ECMP set reported for the kernel (1: best path only).
    #[serde(default = "one")]
    pub max_paths: usize,
    /// Host name announced in the hostname capability.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Graceful restart (RFC 4724).
    #[serde(default)]
    pub graceful_restart: GracefulRestartConfig,
    /// Produce best-path changes for the kernel (a pure reflector may turn this off).
    #[serde(default = "yes")]
    pub fib: bool,
    /// Prefixes announced from the start (the daemon's own blocks).
    #[serde(default, deserialize_with = "prefixes")]
    pub originate: Vec<Prefix>,
    /// Neighbours.
    #[serde(default)]
    pub peers: Vec<PeerSettings>,
    /// Dynamic neighbours: any address in a range may connect (like BIRD's `neighbor range`).
    #[serde(default)]
    pub peer_ranges: Vec<PeerRange>,
}

/// Passive neighbours accepted from any address in `prefix`; each connecting address becomes
/// a peer for as long as its session lasts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerRange {
    /// The addresses allowed to connect.
    #[serde(deserialize_with = "prefix")]
    pub prefix: Prefix,
    /// Their AS.
    #[serde(deserialize_with = "asn")]
    pub remote_as: Asn,
    /// Proposed hold time in seconds (0, or at least 3).
    #[serde(default = "default_hold")]
    pub hold_time: u16,
    /// Route-reflector clients.
    #[serde(default)]
    pub rr_client: bool,
    /// Announce ourselves as next hop.
    #[serde(default)]
    pub next_hop_self: bool,
    /// Families to enable (default IPv4 and IPv6 unicast).
    #[serde(default = "default_families")]
    pub families: Vec<Family>,
    /// GTSM hops.
    #[serde(default)]
    pub ttl_security: Option<u8>,
    /// RFC 9687 send hold time in seconds (see [`PeerSettings::send_hold_time`]).
    #[serde(default)]
    pub send_hold_time: Option<u32>,
    /// Import rules for every peer of the range (see [`PeerSettings::import`]).
    #[serde(
        default = "Policy::accept_all",
        deserialize_with = "bgpd_config::filter::deserialize_policy"
    )]
    pub import: Policy,
    /// Export rules for every peer of the range (see [`PeerSettings::export`]).
    #[serde(
        default = "Policy::accept_all",
        deserialize_with = "bgpd_config::filter::deserialize_policy"
    )]
    pub export: Policy,
}

impl PeerRange {
    /// Whether `addr` may connect under this range.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.prefix, addr) {
            (Prefix::V4(p), IpAddr::V4(a)) => p.contains(a),
            (Prefix::V6(p), IpAddr::V6(a)) => p.contains(a),
            _ => false,
        }
    }

    /// The settings of the peer at `address` that connected under this range.
    pub fn peer(&self, address: IpAddr) -> PeerSettings {
        PeerSettings {
            passive: true,
            hold_time: self.hold_time,
            rr_client: self.rr_client,
            next_hop_self: self.next_hop_self,
            families: self.families.clone(),
            ttl_security: self.ttl_security,
            send_hold_time: self.send_hold_time,
            import: self.import.clone(),
            export: self.export.clone(),
            ..PeerSettings::new(address, self.remote_as)
        }
    }
}

/// Graceful restart as restarting speaker and as helper.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GracefulRestartConfig {
    /// Announce the capability (and help peers that announce it).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Seconds peers should keep our routes while we restart.
    #[serde(default = "default_restart_time")]
    pub restart_time: u16,
    /// Seconds we keep a restarted peer's stale routes waiting for its End-of-RIB.
    #[serde(default = "default_stale_time")]
    pub stale_time: u32,
    /// We have just restarted with forwarding state kept: set the R and F bits and hold our
    /// initial updates until the peers' End-of-RIB (RFC 4724 §4.1).
    #[serde(default)]
    pub restarting: bool,
}

impl Default for GracefulRestartConfig {
    fn default() -> Self {
        GracefulRestartConfig {
            enabled: true,
            restart_time: default_restart_time(),
            stale_time: default_stale_time(),
            restarting: false,
        }
    }
}

/// ADD-PATH (RFC 7911) for a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddPath {
    /// Receive several paths per prefix.
    Receive,
    /// Send every accepted path per prefix.
    Send,
    /// Both.
    Both,
}

/// One neighbour.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSettings {
    /// The peer's address.
    pub address: IpAddr,
    /// The peer's AS; iBGP when equal to ours.
    #[serde(deserialize_with = "asn")]
    pub remote_as: Asn,
    /// The peer's TCP port.
    #[serde(default = "bgp_port")]
    pub port: u16,
    /// Our source address for the session.
    #[serde(default)]
    pub local_address: Option<IpAddr>,
    /// Wait for the peer to connect; never connect out.
    #[serde(default)]
    pub passive: bool,
    /// Proposed hold time in seconds (0, or at least 3).
    #[serde(default = "default_hold")]
    pub hold_time: u16,
    /// First reconnect delay in seconds (doubled per failure, capped at 120).
    #[serde(default = "default_connect_retry")]
    pub connect_retry: u64,
    /// RFC 9687 send hold time in seconds: the session is closed (NOTIFICATION 8) when nothing
    /// could be written to the peer for this long while there was something to write. Default:
    /// the RFC's max(8 minutes, 2 × hold time); at least 1.
    #[serde(default)]
    pub send_hold_time: Option<u32>,
    /// TCP-MD5 password (RFC 2385).
    #[serde(default)]
    pub password: Option<String>,
    /// eBGP multihop: the TTL of our packets.
    #[serde(default)]
    pub multihop: Option<u8>,
    /// GTSM (RFC 5082): accept packets from at most this many hops away.
    #[serde(default)]
    pub ttl_security: Option<u8>,
    /// A route-reflector client.
    #[serde(default)]
    pub rr_client: bool,
    /// Announce ourselves as next hop.
    #[serde(default)]
    pub next_hop_self: bool,
    /// Next hop announced for IPv6 routes on an IPv4 session (and vice versa for IPv4 routes).
    #[serde(default)]
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Next hop announced for IPv4 routes on an IPv6 session.
    #[serde(default)]
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Families to enable (default IPv4 and IPv6 unicast).
    #[serde(default = "default_families")]
    pub families: Vec<Family>,
    /// ADD-PATH mode for every enabled family.
    #[serde(default)]
    pub add_path: Option<AddPath>,
    /// Most accepted prefixes; more ends the session with Cease/1.
    #[serde(default)]
    pub max_prefix: Option<u32>,
    /// Seconds the session stays down after a max-prefix Cease before it may come back (FRR's
    /// `maximum-prefix N restart M`); at least 1, default 60.
    #[serde(default = "default_max_prefix_restart")]
    pub max_prefix_restart: u64,
    /// Pass MED on to this eBGP peer.
    #[serde(default)]
    pub send_med: bool,
    /// What we accept from the peer: in TOML, `[[peers.import]]` rules in bgpd's filter syntax
    /// (`bgpd_config::filter`); everything when absent.
    #[serde(
        default = "Policy::accept_all",
        deserialize_with = "bgpd_config::filter::deserialize_policy"
    )]
    pub import: Policy,
    /// What we announce to the peer: in TOML, `[[peers.export]]` rules; everything when absent.
    #[serde(
        default = "Policy::accept_all",
        deserialize_with = "bgpd_config::filter::deserialize_policy"
    )]
    pub export: Policy,
}

/// A family a session can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// IPv4 unicast.
    Ipv4,
    /// IPv6 unicast.
    Ipv6,
}

impl Family {
    /// The AFI/SAFI pair.
    pub fn afi_safi(self) -> AfiSafi {
        match self {
            Family::Ipv4 => AfiSafi::IPV4_UNICAST,
            Family::Ipv6 => AfiSafi::IPV6_UNICAST,
        }
    }
}

fn default_listen() -> Vec<SocketAddr> {
    vec![
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), BGP_PORT),
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), BGP_PORT),
    ]
}
fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn bgp_port() -> u16 {
    BGP_PORT
}
fn default_hold() -> u16 {
    90
}
fn default_connect_retry() -> u64 {
    5
}
fn default_max_prefix_restart() -> u64 {
    60
}
fn default_restart_time() -> u16 {
    120
}
fn default_stale_time() -> u32 {
    360
}
fn default_families() -> Vec<Family> {
    vec![Family::Ipv4, Family::Ipv6]
}

/// The floor of the default send hold time: 8 minutes (RFC 9687 §3).
const DEFAULT_SEND_HOLD: u32 = 480;

/// Ceiling of the reconnect backoff.
pub const CONNECT_RETRY_MAX: Duration = Duration::from_secs(120);

/// A setting no session could work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Hold times of 1 and 2 seconds are not allowed (RFC 4271 §4.2).
    #[error("peer {0}: hold time must be 0 or at least 3 seconds")]
    HoldTime(IpAddr),
    /// Linux keys are at most 80 octets.
    #[error("peer {0}: TCP-MD5 password longer than {max} octets", max = crate::transport::MD5_MAX_KEY)]
    PasswordTooLong(IpAddr),
    /// GTSM hops and multihop TTLs are 1 to 254; the two exclude each other.
    #[error("peer {0}: ttl_security and multihop must be 1-254 and not both set")]
    Ttl(IpAddr),
    /// A peer needs at least one family.
    #[error("peer {0}: no families")]
    NoFamilies(IpAddr),
    /// Two peers with one address.
    #[error("peer {0} is configured twice")]
    Duplicate(IpAddr),
    /// The BGP identifier must not be 0.0.0.0 (RFC 6286).
    #[error("router_id 0.0.0.0 is not a valid BGP identifier")]
    RouterId,
    /// A send hold time of 0 would close every session that has anything to send.
    #[error("peer {0}: send_hold_time must be at least 1 second")]
    SendHoldTime(IpAddr),
}

impl PeerSettings {
    /// Rejects settings no session could work with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let a = self.address;
        if matches!(self.hold_time, 1 | 2) {
            return Err(ConfigError::HoldTime(a));
        }
        if self
            .password
            .as_ref()
            .is_some_and(|p| p.len() > crate::transport::MD5_MAX_KEY)
        {
            return Err(ConfigError::PasswordTooLong(a));
        }
        let bad_ttl = |t: Option<u8>| t.is_some_and(|t| t == 0 || t == 255);
        if bad_ttl(self.ttl_security)
            || bad_ttl(self.multihop)
            || (self.ttl_security.is_some() && self.multihop.is_some())
        {
            return Err(ConfigError::Ttl(a));
        }
        if self.families.is_empty() {
            return Err(ConfigError::NoFamilies(a));
        }
        if self.send_hold_time == Some(0) {
            return Err(ConfigError::SendHoldTime(a));
        }
        Ok(())
    }

    /// How long the writer may make no progress before the session is closed (RFC 9687 §3).
    pub fn send_hold(&self) -> Duration {
        let default = || (2 * u32::from(self.hold_time)).max(DEFAULT_SEND_HOLD);
        Duration::from_secs(self.send_hold_time.unwrap_or_else(default).into())
    }
    /// A peer with every option at its default.
    pub fn new(address: IpAddr, remote_as: Asn) -> Self {
        PeerSettings {
            address,
            remote_as,
            port: BGP_PORT,
            local_address: None,
            passive: false,
            hold_time: default_hold(),
            connect_retry: default_connect_retry(),
            send_hold_time: None,
            password: None,
            multihop: None,
            ttl_security: None,
            rr_client: false,
            next_hop_self: false,
            next_hop_v6: None,
            next_hop_v4: None,
            families: default_families(),
            add_path: None,
            max_prefix: None,
            max_prefix_restart: default_max_prefix_restart(),
            send_med: false,
            import: Policy::accept_all(),
            export: Policy::accept_all(),
        }
    }

    /// Whether the session is iBGP.
    pub fn is_ibgp(&self, local_as: Asn) -> bool {
        self.remote_as == local_as
    }

    /// Socket options: TTL 1 for a direct eBGP peer, 255 for iBGP (which may be several hops
    /// away), the configured multihop TTL, or GTSM.
    pub fn socket_options(&self, local_as: Asn) -> SocketOptions {
        let reach = match (self.ttl_security, self.multihop) {
            (Some(hops), _) => Reach::Gtsm { hops },
            (None, Some(ttl)) => Reach::Ttl(ttl),
            (None, None) if self.is_ibgp(local_as) => Reach::Ttl(255),
            (None, None) => Reach::Ttl(1),
        };
        SocketOptions {
            local_addr: self.local_address,
            md5_key: self.password.clone(),
            reach,
        }
    }

    /// The RIB's view of this peer.
    pub fn rib_config(&self) -> bgpd_rib::PeerConfig {
        bgpd_rib::PeerConfig {
            address: self.address,
            remote_as: self.remote_as,
            rr_client: self.rr_client,
            next_hop_self: self.next_hop_self,
            send_med: self.send_med,
            import: self.import.clone(),
            export: self.export.clone(),
            max_prefix: self.max_prefix,
            add_path_send: match self.add_path {
                Some(AddPath::Send | AddPath::Both) => AddPathSend::All,
                _ => AddPathSend::Best,
            },
        }
    }

    /// Whether a change from `self` to `new` needs a new session (anything the OPEN, the
    /// socket or the RIB's view of the session depends on); policy changes do not.
    pub fn needs_reset(&self, new: &PeerSettings) -> bool {
        let strip = |p: &PeerSettings| PeerSettings {
            import: Policy::accept_all(),
            export: Policy::accept_all(),
            max_prefix: None,
            max_prefix_restart: 0,
            send_med: false,
            next_hop_self: false,
            ..p.clone()
        };
        strip(self) != strip(new)
    }

    /// The capabilities of our OPEN to this peer.
    pub fn capabilities(&self, speaker: &SpeakerConfig) -> Vec<Capability> {
        let families: Vec<AfiSafi> = self.families.iter().map(|f| f.afi_safi()).collect();
        let mut caps: Vec<Capability> = families
            .iter()
            .map(|f| Capability::Multiprotocol(*f))
            .collect();
        caps.push(Capability::RouteRefresh);
        caps.push(Capability::EnhancedRouteRefresh);
        caps.push(Capability::FourOctetAs(speaker.local_as));
        caps.push(Capability::ExtendedMessage);
        let gr = &speaker.graceful_restart;
        if gr.enabled {
            caps.push(Capability::GracefulRestart(GracefulRestart {
                restarting: gr.restarting,
                notification: false,
                restart_time: gr.restart_time,
                families: families
                    .iter()
                    .map(|f| GracefulRestartFamily {
                        afi_safi: *f,
                        forwarding_preserved: gr.restarting,
                    })
                    .collect(),
            }));
        }
        if let Some(mode) = self.add_path {
            let mode = match mode {
                AddPath::Receive => AddPathMode::Receive,
                AddPath::Send => AddPathMode::Send,
                AddPath::Both => AddPathMode::Both,
            };
            caps.push(Capability::AddPath(
                families
                    .iter()
                    .map(|f| AddPathFamily { afi_safi: *f, mode })
                    .collect(),
            ));
        }
        if let Some(host) = &speaker.hostname {
            caps.push(Capability::Hostname {
                host: host.clone(),
                domain: String::new(),
            });
        }
        caps
    }
}

impl SpeakerConfig {
    /// A speaker with no peers, listening on port 179 of every address.
    pub fn new(local_as: Asn, router_id: Ipv4Addr) -> Self {
        SpeakerConfig {
            local_as,
            router_id,
            listen: default_listen(),
            cluster_id: None,
            max_paths: 1,
            hostname: None,
            graceful_restart: GracefulRestartConfig::default(),
            fib: true,
            originate: Vec::new(),
            peers: Vec::new(),
            peer_ranges: Vec::new(),
        }
    }

    /// Rejects settings no session could work with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.router_id.is_unspecified() {
            return Err(ConfigError::RouterId);
        }
        let mut seen = std::collections::HashSet::new();
        for r in &self.peer_ranges {
            r.peer(r.prefix.addr()).validate()?;
        }
        for p in &self.peers {
            p.validate()?;
            if !seen.insert(p.address) {
                return Err(ConfigError::Duplicate(p.address));
            }
        }
        Ok(())
    }

    /// The RIB's settings.
    pub fn rib_settings(&self) -> bgpd_rib::RibSettings {
        bgpd_rib::RibSettings {
            cluster_id: self.cluster_id,
            max_paths: self.max_paths.max(1),
            fib: self.fib,
            ..bgpd_rib::RibSettings::new(self.local_as, self.router_id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_with_defaults() {
        let text = r#"
            local_as = 65000
            router_id = "10.0.0.1"
            [[peers]]
            address = "10.0.0.2"
            remote_as = 65001
            add_path = "both"
            ttl_security = 1
        "#;
        let text = format!("originate = [\"10.1.0.0/24\", \"fd00::/64\"]\n{text}");
        let c: SpeakerConfig = toml::from_str(&text).unwrap();
        assert_eq!(c.local_as, Asn(65000));
        assert_eq!(c.originate.len(), 2);
        let p = &c.peers[0];
        assert_eq!((p.port, p.hold_time, p.families.len()), (179, 90, 2));
        assert_eq!(p.socket_options(c.local_as).reach, Reach::Gtsm { hops: 1 });
        assert!(
            p.capabilities(&c)
                .iter()
                .any(|cap| matches!(cap, Capability::AddPath(f) if f.len() == 2))
        );
    }

    #[test]
    fn unworkable_settings_are_rejected() {
        let mut c = SpeakerConfig::new(Asn(65000), "10.0.0.1".parse().unwrap());
        let p = PeerSettings::new("10.0.0.2".parse().unwrap(), Asn(65001));
        c.peers = vec![PeerSettings {
            hold_time: 2,
            ..p.clone()
        }];
        assert_eq!(c.validate(), Err(ConfigError::HoldTime(p.address)));
        c.peers = vec![PeerSettings {
            ttl_security: Some(1),
            multihop: Some(2),
            ..p.clone()
        }];
        assert_eq!(c.validate(), Err(ConfigError::Ttl(p.address)));
        c.peers = vec![PeerSettings {
            password: Some("k".repeat(81)),
            ..p.clone()
        }];
        assert_eq!(c.validate(), Err(ConfigError::PasswordTooLong(p.address)));
        c.peers = vec![p.clone(), p.clone()];
        assert_eq!(c.validate(), Err(ConfigError::Duplicate(p.address)));
        c.peers = vec![p];
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn peer_ranges_admit_their_addresses_as_passive_peers() {
        let text = "local_as = 65000\nrouter_id = \"10.0.0.1\"\n[[peer_ranges]]\nprefix = \"10.77.0.0/16\"\nremote_as = 65000\nrr_client = true\n[[peer_ranges.export]]\naction = \"reject\"\n";
        let c: SpeakerConfig = toml::from_str(text).unwrap();
        let r = &c.peer_ranges[0];
        assert!(r.contains("10.77.3.4".parse().unwrap()));
        assert!(!r.contains("10.78.0.1".parse().unwrap()));
        assert!(!r.contains("fd00::1".parse().unwrap()));
        let p = r.peer("10.77.3.4".parse().unwrap());
        assert!(p.passive && p.rr_client && p.is_ibgp(c.local_as));
        assert_eq!(
            p.export
                .evaluate("10.1.0.0/16".parse().unwrap(), &Default::default()),
            bgpd_rib::Outcome::Reject,
            "the range's rules"
        );
        assert!(p.import.is_accept_all());
    }

    #[test]
    fn filters_use_the_daemon_syntax() {
        let text = concat!(
            "local_as = 65000\nrouter_id = \"10.0.0.1\"\n[[peers]]\naddress = \"10.0.0.2\"\nremote_as = 65001\n",
            "[[peers.import]]\naction = \"reject\"\ncidr = \"10.0.0.0/8\"\nmatch = \"not-in\"\n",
            "[[peers.export]]\naction = \"accept\"\nadd_communities = [\"65000:1\"]\n",
        );
        let c: SpeakerConfig = toml::from_str(text).unwrap();
        let p = &c.peers[0];
        let attrs = bgpd_wire::PathAttrs::default();
        let prefix = |s: &str| s.parse::<Prefix>().unwrap();
        assert_eq!(
            p.import.evaluate(prefix("192.0.2.0/24"), &attrs),
            bgpd_rib::Outcome::Reject
        );
        assert_eq!(
            p.import.evaluate(prefix("10.1.0.0/16"), &attrs),
            bgpd_rib::Outcome::Accept
        );
        assert!(!p.export.is_accept_all());
        let bad = text.replace("match = \"not-in\"", "match = \"not-in\"\nlocal_pref = 5");
        let err = toml::from_str::<SpeakerConfig>(&bad).unwrap_err();
        assert!(
            err.to_string()
                .contains("only an accepted route is changed"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(
            toml::from_str::<SpeakerConfig>("local_as = 1\nrouter_id = \"1.1.1.1\"\nbogus = 1")
                .is_err()
        );
    }

    #[test]
    fn policy_changes_do_not_reset_but_session_changes_do() {
        let a = PeerSettings::new("10.0.0.2".parse().unwrap(), Asn(65001));
        let b = PeerSettings {
            export: Policy::reject_all(),
            max_prefix: Some(10),
            ..a.clone()
        };
        assert!(!a.needs_reset(&b));
        let c = PeerSettings {
            hold_time: 30,
            ..a.clone()
        };
        assert!(a.needs_reset(&c));
    }

    #[test]
    fn ttl_defaults_follow_the_session_kind() {
        let ebgp = PeerSettings::new("10.0.0.2".parse().unwrap(), Asn(65001));
        let ibgp = PeerSettings::new("10.0.0.2".parse().unwrap(), Asn(65000));
        assert_eq!(ebgp.socket_options(Asn(65000)).reach, Reach::Ttl(1));
        assert_eq!(ibgp.socket_options(Asn(65000)).reach, Reach::Ttl(255));
    }

    #[test]
    fn send_hold_defaults_to_the_rfc_9687_value_and_is_never_zero() {
        let p = PeerSettings::new("10.0.0.2".parse().unwrap(), Asn(65001));
        assert_eq!(p.send_hold(), Duration::from_secs(480));
        let long = PeerSettings {
            hold_time: 300,
            ..p.clone()
        };
        assert_eq!(long.send_hold(), Duration::from_secs(600));
        let text = "address = \"10.0.0.2\"\nremote_as = 65001\nsend_hold_time = 5\n";
        let set: PeerSettings = toml::from_str(text).unwrap();
        assert_eq!(set.send_hold(), Duration::from_secs(5));
        let zero = PeerSettings {
            send_hold_time: Some(0),
            ..p
        };
        assert_eq!(
            zero.validate(),
            Err(ConfigError::SendHoldTime(zero.address))
        );
    }
}
