//! The configuration schema: every key, its type and its default.
//!
//! Values that can be wrong on their own are small types whose `Deserialize` rejects them, so
//! the error points at the value; rules that relate several keys live in `validate`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use ipnetwork::IpNetwork;
use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::filter::{Cidr, CommunityValue, FilterRule};
use crate::selector::Selector;

/// The whole configuration of one bgpd.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This host.
    pub node: NodeConfig,
    /// The datastore.
    #[serde(default)]
    pub etcd: EtcdConfig,
    /// Address management.
    #[serde(default)]
    pub ipam: IpamConfig,
    /// BGP sessions and route reflection.
    #[serde(default)]
    pub bgp: BgpConfig,
    /// Kernel route programming.
    #[serde(default)]
    pub kernel: KernelConfig,
    /// Host firewall.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Prometheus metrics.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The control socket used by routectl and the CNI plugin.
    #[serde(default)]
    pub api: ApiConfig,
    /// Local state kept across restarts.
    #[serde(default)]
    pub state: StateConfig,
}

/// `[node]`: who this host is.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's name in the fabric; the host name when absent.
    pub name: Option<NodeName>,
    /// This host's AS number.
    pub asn: Asn,
    /// BGP router id; this node's IPv4 address when absent.
    pub router_id: Option<RouterId>,
    /// How the node's own address (the BGP next hop its peers use) is found.
    #[serde(default)]
    pub address: AddressDetection,
    /// Labels, for policy selectors and IP pool node selectors.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// How bgpd finds the node address.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AddressDetection {
    /// The first global address on an up interface that is not a container or bridge device
    /// (loopback, docker*, br-*, veth*, cni*, virbr* and our own fab* are skipped).
    #[default]
    FirstFound,
    /// This exact address: `address = { ip = "192.0.2.10" }`.
    Ip(IpAddr),
    /// The first address of the first interface whose name matches:
    /// `address = { interface = "^(eth|ens)[0-9]+$" }`.
    Interface(InterfacePattern),
    /// The source address the kernel would use to reach this destination:
    /// `address = { can_reach = "192.0.2.1" }`.
    CanReach(IpAddr),
}

/// `[etcd]`: where the datastore is.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// Client URLs of the etcd members.
    #[serde(default = "default_etcd_endpoints")]
    pub endpoints: Vec<EtcdEndpoint>,
    /// TLS client settings; plain TCP when absent.
    pub tls: Option<TlsFiles>,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            endpoints: default_etcd_endpoints(),
            tls: None,
        }
    }
}

fn default_etcd_endpoints() -> Vec<EtcdEndpoint> {
    vec![EtcdEndpoint("http://127.0.0.1:2379".to_string())]
}

/// `[etcd.tls]`: certificate files for talking to etcd.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// CA bundle that signed the etcd servers' certificates.
    pub ca_file: PathBuf,
    /// Client certificate; with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// Client key; with `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Name to verify the servers' certificates against instead of each endpoint's host.
    pub server_name: Option<String>,
}

/// `[ipam]`: which pools this host draws container addresses from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpamConfig {
    /// Pools that must exist in etcd; created at startup when missing, never changed if present.
    #[serde(default)]
    pub pools: Vec<PoolConfig>,
    /// Never borrow addresses from another host's block when this host's are full.
    #[serde(default)]
    pub strict_affinity: bool,
    /// The most blocks this host may hold; no limit when absent.
    pub max_blocks_per_host: Option<u32>,
    /// Seconds this host's IPAM garbage collection waits, after it first sees a host without
    /// its node record (deleted by `routectl node delete`), before it reclaims that host's
    /// addresses and blocks (Calico's IPAM leak grace period plays this part).
    #[serde(default = "default_dead_host_delay")]
    pub dead_host_delay: DeadHostDelay,
}

impl Default for IpamConfig {
    fn default() -> Self {
        IpamConfig {
            pools: Vec::new(),
            strict_affinity: false,
            max_blocks_per_host: None,
            dead_host_delay: default_dead_host_delay(),
        }
    }
}

fn default_dead_host_delay() -> DeadHostDelay {
    DeadHostDelay(300)
}

/// `[[ipam.pools]]`: one IP pool.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// The pool's name (its key in etcd).
    pub name: NodeName,
    /// The pool's range; host bits must be zero.
    pub cidr: IpNetwork,
    /// Prefix length of the per-host blocks; 26 for IPv4 and 122 for IPv6 when absent.
    pub block_size: Option<u8>,
    /// Masquerade traffic from this pool to destinations outside all pools.
    #[serde(default)]
    pub nat_outgoing: bool,
    /// A disabled pool hands out no new addresses.
    #[serde(default)]
    pub disabled: bool,
    /// Selector over node labels choosing the hosts that may use the pool; all when absent.
    /// Parsed at load time, so a mistake is reported at its line and column.
    pub node_selector: Option<Selector>,
}

/// The IPv4 block prefix lengths IPAM makes: at most 4096 addresses, so a block's record (one
/// etcd value, rewritten on every assignment) stays small.
pub const V4_BLOCK_LENS: std::ops::RangeInclusive<u8> = 20..=32;
/// The IPv6 block prefix lengths IPAM makes, bounded as for IPv4: at most 4096 addresses.
pub const V6_BLOCK_LENS: std::ops::RangeInclusive<u8> = 116..=128;

impl PoolConfig {
    /// The block prefix lengths IPAM allows for this pool's family.
    pub fn block_lens(&self) -> std::ops::RangeInclusive<u8> {
        match self.cidr {
            IpNetwork::V4(_) => V4_BLOCK_LENS,
            IpNetwork::V6(_) => V6_BLOCK_LENS,
        }
    }

    /// The block prefix length in force: the configured one or the family's default.
    pub fn block_size(&self) -> u8 {
        self.block_size.unwrap_or(match self.cidr {
            IpNetwork::V4(_) => 26,
            IpNetwork::V6(_) => 122,
        })
    }
}

/// `[bgp]`: sessions, mesh and route reflection.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpConfig {
    /// TCP port to listen on and to connect to mesh peers at.
    #[serde(default = "default_bgp_port")]
    pub listen_port: Port,
    /// Addresses to listen on; all when empty.
    #[serde(default)]
    pub listen_addresses: Vec<IpAddr>,
    /// Peer with every other host found in etcd (iBGP full mesh).
    #[serde(default = "yes")]
    pub mesh: bool,
    /// Act as a route reflector (RFC 4456) for the hosts; hosts then peer only with reflectors.
    #[serde(default)]
    pub route_reflector: bool,
    /// Cluster id of this reflector; its router id when absent. Only with `route_reflector`.
    pub cluster_id: Option<RouterId>,
    /// Hold time offered in OPEN, seconds (0, or 3 to 65535).
    #[serde(default = "default_hold_time")]
    pub hold_time: HoldTime,
    /// Seconds between connection attempts to a peer that is down.
    #[serde(default = "default_connect_retry")]
    pub connect_retry: u16,
    /// RFC 9687 send hold time, seconds (at least 1): a session that could write nothing to
    /// its peer for this long while it had something to write is closed. max(480, 2 × hold
    /// time) when absent.
    pub send_hold_time: Option<SendHoldTime>,
    /// Graceful restart (RFC 4724).
    #[serde(default)]
    pub graceful_restart: GracefulRestartConfig,
    /// Peers configured by hand: top-of-rack switches, external reflectors.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// Named filters (Calico's BGPFilter), referenced from `peers[].filters` and
    /// `mesh_filters`.
    #[serde(default)]
    pub filters: Vec<FilterConfig>,
    /// Filters for the sessions bgpd makes by itself (node mesh, reflectors, reflector
    /// clients), by name, in order.
    #[serde(default)]
    pub mesh_filters: Vec<NodeName>,
    /// Named communities, usable by name in `prefix_advertisements` (Calico's `communities`).
    #[serde(default)]
    pub communities: Vec<NamedCommunity>,
    /// Communities our own blocks (and borrowed addresses) are advertised with (Calico's
    /// `prefixAdvertisements`).
    #[serde(default)]
    pub prefix_advertisements: Vec<PrefixAdvertisement>,
}

impl BgpConfig {
    /// The communities an own prefix is advertised with: those of every
    /// `prefix_advertisements` entry whose cidr covers it, in file order, names resolved.
    pub fn advertised_communities(&self, prefix: bgpd_wire::Prefix) -> Vec<CommunityValue> {
        let mut out: Vec<CommunityValue> = Vec::new();
        for adv in self
            .prefix_advertisements
            .iter()
            .filter(|a| a.cidr.covers(prefix))
        {
            for c in adv.communities.iter().filter_map(|c| self.community(c)) {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        out
    }

    /// A community by literal or by `communities` name.
    pub(crate) fn community(&self, text: &str) -> Option<CommunityValue> {
        CommunityValue::parse(text).or_else(|| {
            self.communities
                .iter()
                .find(|n| n.name.as_str() == text)
                .map(|n| n.value)
        })
    }
}

/// `[[bgp.filters]]`: a named set of import and export rules.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The name peers refer to it by.
    pub name: NodeName,
    /// Rules for routes learned from the peer.
    #[serde(default)]
    pub import: Vec<FilterRule>,
    /// Rules for routes sent to the peer.
    #[serde(default)]
    pub export: Vec<FilterRule>,
}

/// `[[bgp.communities]]`: a community with a name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedCommunity {
    /// The name.
    pub name: NodeName,
    /// A standard (`"65000:100"`) or large (`"65000:1:2"`) community.
    pub value: CommunityValue,
}

/// `[[bgp.prefix_advertisements]]`: communities for the own prefixes inside `cidr`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixAdvertisement {
    /// Own blocks and borrowed addresses inside this prefix get the communities
    /// (`0.0.0.0/0` and `::/0` for all).
    pub cidr: Cidr,
    /// Community literals or names from `bgp.communities`.
    pub communities: Vec<String>,
}

impl Default for BgpConfig {
    fn default() -> Self {
        BgpConfig {
            listen_port: default_bgp_port(),
            listen_addresses: Vec::new(),
            mesh: true,
            route_reflector: false,
            cluster_id: None,
            hold_time: default_hold_time(),
            connect_retry: default_connect_retry(),
            send_hold_time: None,
            graceful_restart: GracefulRestartConfig::default(),
            peers: Vec::new(),
            filters: Vec::new(),
            mesh_filters: Vec::new(),
            communities: Vec::new(),
            prefix_advertisements: Vec::new(),
        }
    }
}

fn default_bgp_port() -> Port {
    Port(179)
}
fn default_hold_time() -> HoldTime {
    HoldTime(90)
}
fn default_connect_retry() -> u16 {
    5
}
fn yes() -> bool {
    true
}

/// `[bgp.graceful_restart]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GracefulRestartConfig {
    /// Advertise the capability and keep forwarding across restarts.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Seconds peers keep our routes while we restart (at most 4095, the field's size).
    #[serde(default = "default_restart_time")]
    pub restart_time: RestartTime,
    /// Seconds we keep a restarting peer's stale routes waiting for its End-of-RIB.
    #[serde(default = "default_stale_time")]
    pub stale_routes_time: u32,
}

impl Default for GracefulRestartConfig {
    fn default() -> Self {
        GracefulRestartConfig {
            enabled: true,
            restart_time: default_restart_time(),
            stale_routes_time: default_stale_time(),
        }
    }
}

fn default_restart_time() -> RestartTime {
    RestartTime(120)
}
fn default_stale_time() -> u32 {
    360
}

/// `[[bgp.peers]]`: one configured peer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// A name for logs and routectl; the address when absent.
    pub name: Option<String>,
    /// The peer's address.
    pub address: IpAddr,
    /// The peer's AS; equal to ours makes it iBGP.
    pub asn: Asn,
    /// The peer's TCP port.
    #[serde(default = "default_bgp_port")]
    pub port: Port,
    /// Source address for the session; chosen by the kernel when absent.
    pub local_address: Option<IpAddr>,
    /// Wait for the peer to connect; never connect out.
    #[serde(default)]
    pub passive: bool,
    /// TCP-MD5 (RFC 2385) password, at most 80 bytes.
    pub password: Option<String>,
    /// GTSM (RFC 5082): send with TTL 255 and accept only packets that travelled at most
    /// `multihop` (default 1) hops.
    #[serde(default)]
    pub ttl_security: bool,
    /// eBGP multihop: the peer is this many hops away (1 to 255).
    pub multihop: Option<Hops>,
    /// This peer is a client of ours as route reflector (iBGP only).
    #[serde(default)]
    pub route_reflector_client: bool,
    /// Put our own address as next hop on routes sent to this peer.
    #[serde(default)]
    pub next_hop_self: bool,
    /// Hold time for this peer; `bgp.hold_time` when absent.
    pub hold_time: Option<HoldTime>,
    /// Send hold time for this peer (RFC 9687); `bgp.send_hold_time` when absent.
    pub send_hold_time: Option<SendHoldTime>,
    /// Reset the session with Cease "Maximum Number of Prefixes Reached" beyond this many.
    pub max_prefixes: Option<u32>,
    /// Seconds the session stays down after that Cease before the peer may come back; 60 when
    /// absent.
    pub max_prefixes_restart: Option<MaxPrefixesRestart>,
    /// Named filters (`bgp.filters`), tried in order after this peer's own rules.
    #[serde(default)]
    pub filters: Vec<NodeName>,
    /// This peer's own rules for routes learned from it, tried first.
    #[serde(default)]
    pub import: Vec<FilterRule>,
    /// This peer's own rules for routes sent to it, tried first.
    #[serde(default)]
    pub export: Vec<FilterRule>,
    /// Also send this peer the routes learned from other sessions that lie inside the pools
    /// (a host sends only its own blocks and borrowed addresses otherwise). Hosts only.
    #[serde(default)]
    pub export_learned: bool,
}

/// `[kernel]`: where and how routes are programmed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelConfig {
    /// Routing table id (254 is `main`).
    #[serde(default = "default_table")]
    pub table: RouteTable,
    /// Route protocol number tagging our routes (`ip route show proto <n>`).
    #[serde(default = "default_proto")]
    pub proto: RouteProto,
    /// Leave our routes in the kernel on SIGTERM so forwarding continues across a restart.
    #[serde(default = "yes")]
    pub keep_routes_on_exit: bool,
}

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            table: default_table(),
            proto: default_proto(),
            keep_routes_on_exit: true,
        }
    }
}

fn default_table() -> RouteTable {
    RouteTable(254)
}
fn default_proto() -> RouteProto {
    RouteProto(RouteProto::DEFAULT)
}

/// `[policy]`: the host firewall.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// A policy file (bgpd-policy's TOML model); no local policy when absent.
    pub file: Option<PathBuf>,
}

/// `[log]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The least severe level logged.
    #[serde(default)]
    pub level: LogLevel,
    /// Line format.
    #[serde(default)]
    pub format: LogFormat,
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// The default.
    #[default]
    Info,
    /// For troubleshooting.
    Debug,
    /// Everything.
    Trace,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (journald adds the timestamp).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address serving Prometheus metrics at `/metrics`; off when absent.
    pub address: Option<SocketAddr>,
}

/// `[api]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Path of the control socket (mode 0600, root only).
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            socket: default_socket(),
        }
    }
}

fn default_socket() -> PathBuf {
    PathBuf::from("/run/bgpd/bgpd.sock")
}

/// `[state]`: what bgpd keeps on disk to start while etcd is unreachable.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Directory of the state file (`state.json`: our blocks, peers, pools, endpoints);
    /// absolute.
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: default_state_dir(),
        }
    }
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/bgpd")
}

/// Defines a newtype over an integer read from TOML, accepted when `$valid` holds.
macro_rules! checked_int {
    ($(#[$doc:meta])* $name:ident($inner:ty), $valid:expr, $expected:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub(crate) $inner);

        impl $name {
            /// The number.
            pub fn get(self) -> $inner {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // A visitor, so that a value of the wrong type is also reported as "expected …".
                struct Expecting;
                impl de::Visitor<'_> for Expecting {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expected)
                    }
                    fn visit_i64<E: de::Error>(self, n: i64) -> Result<$name, E> {
                        let valid: fn(i64) -> bool = $valid;
                        match <$inner>::try_from(n) {
                            Ok(v) if valid(n) => Ok($name(v)),
                            _ => Err(E::custom(format!(concat!("expected ", $expected, ", not {}"), n))),
                        }
                    }
                    fn visit_u64<E: de::Error>(self, n: u64) -> Result<$name, E> {
                        self.visit_i64(i64::try_from(n).unwrap_or(i64::MAX))
                    }
                }
                d.deserialize_i64(Expecting)
            }
        }
    };
}

checked_int!(
    /// An AS number; 0 and AS_TRANS (23456) are reserved (RFC 7607, RFC 6793).
    Asn(u32),
    |n| n != 0 && n != 23456,
    "an AS number from 1 to 4294967295 other than 23456 (AS_TRANS)"
);
checked_int!(
    /// A TCP port other than 0.
    Port(u16),
    |n| n != 0,
    "a TCP port from 1 to 65535"
);
checked_int!(
    /// A BGP hold time in seconds: 0 (no keepalives) or 3 to 65535 (RFC 4271 §4.2).
    HoldTime(u16),
    |n| n == 0 || n >= 3,
    "a hold time of 0 or 3 to 65535 seconds"
);
checked_int!(
    /// An RFC 9687 send hold time in seconds; 0 would close every session with anything to send.
    SendHoldTime(u32),
    |n| n >= 1,
    "a send hold time from 1 to 4294967295 seconds"
);
checked_int!(
    /// Seconds a session stays down after a max-prefix Cease; 0 would let the peer straight back.
    MaxPrefixesRestart(u32),
    |n| n >= 1,
    "a restart interval from 1 to 4294967295 seconds"
);
checked_int!(
    /// Graceful restart time in seconds; the capability has 12 bits for it (RFC 4724).
    RestartTime(u16),
    |n| n <= 4095,
    "a restart time from 0 to 4095 seconds"
);
checked_int!(
    /// IPAM's dead-host delay in seconds.
    DeadHostDelay(u32),
    |n| n >= 1,
    "a delay from 1 to 4294967295 seconds"
);
checked_int!(
    /// A hop count for multihop and GTSM.
    Hops(u8),
    |n| n >= 1,
    "a hop count from 1 to 255"
);
checked_int!(
    /// A kernel routing table id; 0 (unspec) and 255 (local) are the kernel's own.
    RouteTable(u32),
    |n| n != 0 && n != 255,
    "a routing table id from 1 to 4294967295 other than 255 (local)"
);
checked_int!(
    /// The route protocol number on our kernel routes. Numbers that iproute2's `rt_protos` (and
    /// FRR's `rt_protos.d/frr.conf`) assign to the kernel or to other routing daemons are
    /// refused, since reconcile deletes stale routes of its protocol and must never touch theirs.
    RouteProto(u8),
    |n| !RouteProto::is_taken(n),
    "a route protocol number not used by the kernel or another routing daemon (0-4, 8-16, 18, 42, 99, 186-197 are taken)"
);

impl RouteProto {
    /// Our default, named by no routing daemon; the kernel crate's default is the same number.
    pub const DEFAULT: u8 = 98;

    fn is_taken(n: i64) -> bool {
        matches!(n, 0..=4 | 8..=16 | 18 | 42 | 99 | 186..=197)
    }
}

/// Defines a string newtype read from TOML, accepted when `$valid` holds.
macro_rules! checked_str {
    ($(#[$doc:meta])* $name:ident, $valid:expr, $expected:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub(crate) String);

        impl $name {
            /// The string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                let valid: fn(&str) -> bool = $valid;
                if valid(&s) {
                    Ok($name(s))
                } else {
                    Err(de::Error::custom(format!("expected {}, not {s:?}", $expected)))
                }
            }
        }
    };
}

checked_str!(
    /// A node or pool name: it becomes part of etcd keys, so lowercase letters, digits, `-`
    /// and `.`, starting with a letter or digit, at most 253 bytes (a DNS name).
    NodeName,
    NodeName::is_valid,
    NodeName::RULE
);

impl NodeName {
    /// The rule, as error messages state it.
    pub const RULE: &str = "a name of lowercase letters, digits, '-' and '.' (a DNS name)";

    /// Whether `s` follows the rule; IPAM checks pool names with it too, so a pool made by
    /// routectl is one a config can name.
    pub fn is_valid(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 253
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    }
}
checked_str!(
    /// An etcd client URL: `http://host:port` or `https://host:port`.
    EtcdEndpoint,
    |s| {
        let rest = s.strip_prefix("http://").or_else(|| s.strip_prefix("https://"));
        rest.is_some_and(|r| !r.is_empty() && !r.contains(char::is_whitespace))
    },
    "an etcd URL like \"http://127.0.0.1:2379\" or \"https://etcd-1:2379\""
);

impl EtcdEndpoint {
    /// Whether the endpoint wants TLS.
    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }
}

/// A BGP router id (also a cluster id): an IPv4 address other than 0.0.0.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouterId(pub(crate) Ipv4Addr);

impl RouterId {
    /// The address.
    pub fn get(self) -> Ipv4Addr {
        self.0
    }
}

impl<'de> Deserialize<'de> for RouterId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.parse::<Ipv4Addr>() {
            Ok(a) if !a.is_unspecified() => Ok(RouterId(a)),
            _ => Err(de::Error::custom(format!(
                "expected a router id as a non-zero IPv4 address like \"192.0.2.1\", not {s:?}"
            ))),
        }
    }
}

/// An interface-name regular expression, compiled when the file is read.
#[derive(Debug, Clone)]
pub struct InterfacePattern(regex::Regex);

impl InterfacePattern {
    /// Whether `ifname` matches.
    pub fn matches(&self, ifname: &str) -> bool {
        self.0.is_match(ifname)
    }
}

impl PartialEq for InterfacePattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl<'de> Deserialize<'de> for InterfacePattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        regex::Regex::new(&s).map(InterfacePattern).map_err(|e| {
            let why = e.to_string().lines().last().unwrap_or_default().to_string();
            de::Error::custom(format!(
                "expected an interface-name regular expression: {why}"
            ))
        })
    }
}
