//! Request and response bodies of the control socket. Every field is documented here because
//! these JSON shapes are what `routectl -o json` prints and what scripts rely on.

use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::labels::Labels;

/// What a node is in the fabric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A container host.
    Host,
    /// A route reflector (RFC 4456) for the hosts.
    Reflector,
}

/// `GET /v1/status`: one screen about this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The node's name in the fabric.
    pub node: String,
    /// Host or reflector.
    pub role: Role,
    /// Our AS number.
    pub asn: u32,
    /// Our BGP router id.
    pub router_id: Ipv4Addr,
    /// The node address peers reach us at (BGP next hop).
    pub address: IpAddr,
    /// bgpd's version.
    pub version: String,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// This host's IPAM blocks.
    pub blocks: Vec<BlockUsage>,
    /// One line per BGP peer.
    pub peers: Vec<PeerSummary>,
    /// How the kernel compares with the routes we want.
    pub kernel: KernelStatus,
    /// Whether etcd answers.
    pub etcd: EtcdStatus,
    /// The host firewall: cluster policies in force and refused (absent from older daemons).
    #[serde(default)]
    pub policy: PolicyStatus,
}

/// The host firewall as the daemon holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyStatus {
    /// Cluster policies (from etcd) in force on this host, by name.
    pub cluster_in_force: Vec<String>,
    /// Cluster policies whose stored value is refused (its last good version, if any, stays in
    /// force) or that are left out on this host.
    pub cluster_refused: Vec<RefusedPolicy>,
    /// Why the last apply failed (the previous table stays); `None` once one succeeds.
    pub last_error: Option<String>,
}

/// A cluster policy not in force as stored, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedPolicy {
    /// Its name (the key after `policies/`).
    pub name: String,
    /// Why.
    pub reason: String,
}

/// A block and how full it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockUsage {
    /// The block, e.g. `10.244.3.64/26`.
    pub cidr: IpNetwork,
    /// Addresses assigned.
    pub used: u32,
    /// Addresses in the block.
    pub size: u32,
}

/// Why we peer with someone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerKind {
    /// Another host of the node-to-node mesh, found in etcd.
    Mesh,
    /// A route reflector found in etcd (we are a host).
    Reflector,
    /// A host we reflect for (we are a reflector).
    ReflectorClient,
    /// A peer from `[[bgp.peers]]`.
    Configured,
}

/// A peer in the status summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSummary {
    /// The peer's address.
    pub address: IpAddr,
    /// Node name (mesh, reflectors) or configured name.
    pub name: String,
    /// Why we peer.
    pub kind: PeerKind,
    /// The peer's AS.
    pub asn: u32,
    /// FSM state: Idle, Connect, Active, OpenSent, OpenConfirm, Established.
    pub state: String,
    /// Seconds since Established; absent while down.
    pub uptime_secs: Option<u64>,
    /// Prefixes the peer announced.
    pub prefixes_received: u64,
    /// Of those, accepted.
    pub prefixes_accepted: u64,
    /// Prefixes we advertise to it.
    pub prefixes_advertised: u64,
}

/// The kernel FIB compared with the wanted routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelStatus {
    /// Every wanted route is installed as wanted.
    pub in_sync: bool,
    /// Routes wanted.
    pub wanted: usize,
    /// Wanted routes that are installed.
    pub installed: usize,
    /// Routes the kernel refused, one line each with the reason.
    pub failures: Vec<String>,
    /// Routes held back because another protocol's route holds their slot.
    pub conflicts: Vec<String>,
    /// The last whole-operation error, if any.
    pub last_error: Option<String>,
    /// Route table and protocol number in use.
    pub table: u32,
    /// Route protocol number (`ip route show proto <n>`).
    pub proto: u8,
}

/// etcd as the daemon sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdStatus {
    /// The last request (lease keep-alive, watch, IPAM) succeeded.
    pub reachable: bool,
    /// The last error, if the last request failed.
    pub last_error: Option<String>,
    /// Why bgpd runs from its state file (etcd did not answer at start), until etcd answers:
    /// BGP and routes resume from it, endpoint changes are refused (503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
}

/// Messages of each type in one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageCounts {
    /// OPENs.
    pub open: u64,
    /// UPDATEs.
    pub update: u64,
    /// NOTIFICATIONs.
    pub notification: u64,
    /// KEEPALIVEs.
    pub keepalive: u64,
    /// ROUTE-REFRESHes.
    pub route_refresh: u64,
}

/// `GET /v1/peers`: everything about one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// The peer's address.
    pub address: IpAddr,
    /// Node name or configured name.
    pub name: String,
    /// Why we peer.
    pub kind: PeerKind,
    /// The peer's AS.
    pub asn: u32,
    /// FSM state.
    pub state: String,
    /// Seconds since Established.
    pub uptime_secs: Option<u64>,
    /// The peer's BGP identifier.
    pub peer_id: Option<Ipv4Addr>,
    /// The peer's host name capability.
    pub hostname: Option<String>,
    /// Negotiated hold time, seconds.
    pub hold_time: Option<u16>,
    /// Negotiated families (`ipv4-unicast`, `ipv6-unicast`).
    pub families: Vec<String>,
    /// Prefixes the peer announced.
    pub prefixes_received: u64,
    /// Of those, accepted by import policy and loop checks.
    pub prefixes_accepted: u64,
    /// Prefixes it announced or withdrew in families the session did not negotiate, ignored
    /// (RFC 4760 §6).
    #[serde(default)]
    pub prefixes_ignored: u64,
    /// ORIGINATOR_ID and CLUSTER_LIST attributes it sent as an eBGP peer, discarded (RFC 7606).
    #[serde(default)]
    pub attributes_discarded: u64,
    /// Prefixes we advertise to it.
    pub prefixes_advertised: u64,
    /// Messages received.
    pub received: MessageCounts,
    /// Messages sent.
    pub sent: MessageCounts,
    /// Times the session reached Established.
    pub established_count: u32,
    /// The last NOTIFICATION we sent, decoded to text.
    pub last_notification_sent: Option<String>,
    /// The last NOTIFICATION the peer sent, decoded to text.
    pub last_notification_received: Option<String>,
    /// The peer's routes are kept as stale while it restarts (graceful restart helper).
    pub graceful_restart_stale: bool,
}

/// `GET /v1/routes[?prefix=<cidr>]`: the RIB and the FIB; with `prefix`, only routes whose
/// prefix lies inside it (or equals it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routes {
    /// Every candidate path in the Loc-RIB.
    pub rib: Vec<RibRoute>,
    /// The routes we want in the kernel, with whether each is installed.
    pub fib: Vec<FibRoute>,
}

/// One candidate path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RibRoute {
    /// The destination.
    pub prefix: IpNetwork,
    /// The peer it came from; absent for our own routes.
    pub from: Option<IpAddr>,
    /// ADD-PATH path id.
    pub path_id: Option<u32>,
    /// Selected as best.
    pub best: bool,
    /// In the multipath (ECMP) set.
    pub multipath: bool,
    /// Kept while its peer restarts.
    pub stale: bool,
    /// Accepted by import policy and loop checks.
    pub accepted: bool,
    /// BGP next hop.
    pub next_hop: Option<IpAddr>,
    /// AS_PATH, sets flattened.
    pub as_path: Vec<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// ORIGINATOR_ID (RFC 4456).
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST (RFC 4456).
    pub cluster_list: Vec<Ipv4Addr>,
}

/// Why a route is in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FibSource {
    /// Blackhole for one of our blocks.
    Block,
    /// Host route to a local container.
    Endpoint,
    /// Best path(s) learned over BGP.
    Learned,
    /// Found in the kernel at startup and kept until BGP re-learns it (graceful restart).
    Kept,
}

/// What a kernel route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FibAction {
    /// Drop.
    Blackhole,
    /// Deliver on a local interface.
    Device,
    /// Forward via gateway(s).
    Via,
}

/// One wanted kernel route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FibRoute {
    /// The destination.
    pub prefix: IpNetwork,
    /// What the route does.
    pub action: FibAction,
    /// Interface index for `device` routes.
    pub ifindex: Option<u32>,
    /// Interface name for `device` routes, when the daemon knows it (a container's host veth).
    #[serde(default)]
    pub ifname: Option<String>,
    /// Gateways for `via` routes (several: ECMP).
    pub next_hops: Vec<IpAddr>,
    /// Why we want it.
    pub source: FibSource,
}

/// `GET /v1/ipam`: this host's share of the address space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamView {
    /// Blocks affine to this host.
    pub blocks: Vec<BlockUsage>,
    /// Addresses assigned to containers on this host.
    pub addresses: Vec<IpamAddress>,
}

/// One assigned address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamAddress {
    /// The address.
    pub ip: IpAddr,
    /// The IPAM handle holding it (`<container id>.<ifname>`).
    pub handle: String,
    /// The block it comes from.
    pub block: IpNetwork,
    /// The block belongs to another host: we advertise a /32 (/128) for it.
    pub borrowed: bool,
}

/// `POST /v1/endpoints`: wire a container interface to this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachRequest {
    /// The container id (CNI_CONTAINERID).
    pub container_id: String,
    /// The interface name inside the container (CNI_IFNAME); `eth0` when absent.
    #[serde(default = "default_ifname")]
    pub ifname: String,
    /// The container's network namespace: a path (`/proc/<pid>/ns/net`, `/run/netns/x`) or a
    /// name under `/run/netns`.
    pub netns: String,
    /// Exact addresses wanted (CNI `ips`); otherwise one address per family this host has a
    /// pool for.
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    /// MTU of both veth ends; 1500 when absent.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Labels policy selectors match (rules in [`crate::labels`]); none when absent.
    #[serde(default)]
    pub labels: Labels,
}

fn default_ifname() -> String {
    "eth0".to_string()
}

/// An attached container interface (`GET /v1/endpoints` lists them, `POST` returns one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The container id.
    pub container_id: String,
    /// Interface name inside the container.
    pub ifname: String,
    /// The host end of the veth pair (`bgpd…`).
    pub host_ifname: String,
    /// Its interface index on the host.
    pub host_ifindex: u32,
    /// The container end's MAC address, `aa:bb:…`; absent when listed after a restart.
    pub mac: Option<String>,
    /// The container's addresses with their gateways.
    pub ips: Vec<EndpointIp>,
    /// MTU; absent when listed after a restart.
    pub mtu: Option<u32>,
    /// Its labels (absent from daemons older than labels: empty).
    #[serde(default)]
    pub labels: Labels,
}

/// `PUT /v1/endpoints/<container id>/<ifname>/labels`: replaces a running endpoint's labels;
/// answers the [`Endpoint`] as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelsRequest {
    /// The endpoint's new labels, all of them.
    pub labels: Labels,
}

/// One address of an endpoint, as a CNI result wants it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointIp {
    /// The address with its prefix length (`/32`, `/128`).
    pub address: IpNetwork,
    /// The container's default gateway for this family (169.254.1.1, fe80::1).
    pub gateway: IpAddr,
    /// Borrowed from another host's block (advertised as a host route).
    pub borrowed: bool,
}

/// `DELETE /v1/endpoints/<container id>/<ifname>`: what was removed. Idempotent: deleting an
/// unknown endpoint answers 200 with `removed: false`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachReport {
    /// A veth pair was removed.
    pub removed: bool,
    /// Addresses released back to IPAM.
    pub released: Vec<IpAddr>,
}

/// `POST /v1/reload` (and SIGHUP): the configuration file was read again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// What was applied, one line each (e.g. `peer 192.0.2.1 added`).
    pub applied: Vec<String>,
    /// Changes that need a restart to take effect (e.g. `node.asn`).
    pub needs_restart: Vec<String>,
}

/// What kind of failure an error response reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is malformed or invalid (HTTP 400).
    BadRequest,
    /// No such route or object (HTTP 404).
    NotFound,
    /// The method is not allowed on this path (HTTP 405).
    MethodNotAllowed,
    /// The request conflicts with the state (HTTP 409), e.g. an address in use.
    Conflict,
    /// A dependency (etcd, the kernel) is unavailable (HTTP 503).
    Unavailable,
    /// Anything else (HTTP 500).
    Internal,
}

impl ErrorKind {
    /// The HTTP status code for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Conflict => 409,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }
}

/// The body of every non-2xx response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// The category, for programs.
    pub kind: ErrorKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_request_defaults() {
        let r: AttachRequest =
            serde_json::from_str(r#"{"container_id":"c1","netns":"/proc/1/ns/net"}"#).unwrap();
        assert_eq!(r.ifname, "eth0");
        assert!(r.ips.is_empty());
        assert_eq!(r.mtu, None);
        assert!(r.labels.is_empty());
        let r: AttachRequest = serde_json::from_str(
            r#"{"container_id":"c1","netns":"n","labels":{"role":"db","fabric.io/pod":"p"}}"#,
        )
        .unwrap();
        assert_eq!(r.labels["role"], "db");
        assert_eq!(r.labels.len(), 2);
    }

    #[test]
    fn enums_are_snake_case() {
        assert_eq!(
            serde_json::to_string(&PeerKind::ReflectorClient).unwrap(),
            "\"reflector_client\""
        );
        let e = ErrorBody {
            error: "x".into(),
            kind: ErrorKind::MethodNotAllowed,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"error":"x","kind":"method_not_allowed"}"#
        );
    }
}
