//! The running daemon's state and the one function that moves the world toward it: from what
//! we know (blocks, endpoints, learned routes, the node registry, the config) to the kernel's
//! wanted set, the routes we originate and the BGP peers we have.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bgpd_api::{
    BlockUsage, EtcdStatus, FibAction, FibRoute, KernelStatus, PeerSummary, RibRoute, Role, Routes,
    Status,
};
use bgpd_config::Config;
use bgpd_endpoint::Endpoints;
use bgpd_kernel::{FibHandle, Ifindex, Route, RouteKind};
use bgpd_speaker::Speaker;
use ipam::{AssignedIp, BlockCidr, HostName, Ipam};
use ipnetwork::IpNetwork;

use crate::api::ApiError;
use crate::firewall::Firewall;
use crate::health::EtcdHealth;
use crate::mesh::{MeshInputs, PeerPlan, desired_peers};
use crate::node::{NodeRecord, Registry};
use crate::routes::{RouteInputs, Wanted, advertised, diff, wanted};
use crate::state_file::{Snapshot, StateFile};
use crate::workloads::{Affinities, WorkloadStore, Workloads};

/// Who this node is; fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Node name (etcd key, IPAM host).
    pub host: HostName,
    /// Host or reflector.
    pub role: Role,
    /// Our AS.
    pub asn: u32,
    /// Our BGP router id.
    pub router_id: Ipv4Addr,
    /// The node address.
    pub address: IpAddr,
}

/// A container interface we attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// Host-side veth name.
    pub host_ifname: String,
    /// Host-side veth index.
    pub host_ifindex: Ifindex,
    /// Container-side MAC, when known (not after a restart).
    pub mac: Option<String>,
    /// MTU, when known.
    pub mtu: Option<u32>,
    /// Its addresses.
    pub ips: Vec<AssignedIp>,
    /// Its labels (policy selectors); after a restart, from its record in etcd.
    pub labels: bgpd_api::Labels,
}

/// Everything that changes while the daemon runs.
#[derive(Debug)]
pub struct State {
    /// Our blocks.
    pub blocks: Vec<BlockCidr>,
    /// Every pool, enabled or not (import guard, firewall); enabled ones choose the families
    /// to assign.
    pub pools: crate::pools::Pools,
    /// Attached endpoints by (container id, ifname).
    pub attached: BTreeMap<(String, String), Attached>,
    /// Best paths from BGP.
    pub learned: BTreeMap<bgpd_kernel::Prefix, Vec<IpAddr>>,
    /// Learned routes kept from before a restart.
    pub kept: BTreeMap<bgpd_kernel::Prefix, Route>,
    /// The wanted set last handed to the kernel task.
    pub wanted: Wanted,
    /// What we originate in BGP now.
    pub originated: BTreeSet<bgpd_wire::Prefix>,
    /// The peers we have now.
    pub peers: BTreeMap<IpAddr, PeerPlan>,
    /// The node registry as last seen.
    pub registry: Registry,
    /// Every host's endpoint records in etcd as last seen.
    pub workloads: Workloads,
    /// Every host's IPAM block affinities as last seen.
    pub affinities: Affinities,
    /// Containers on other (registered) hosts, for policy rule selectors.
    pub remote: Vec<bgpd_policy::RemoteEndpoint>,
    /// Our own node record.
    pub record: NodeRecord,
    /// The configuration in force.
    pub config: Config,
    /// Why we run from the state file (etcd did not answer at start), until etcd answers:
    /// endpoint changes are refused and nothing is written back to the state file.
    pub degraded: Option<String>,
}

/// The daemon: shared by the main loop, the control socket and the metrics endpoint.
pub struct Daemon {
    /// The configuration file (re-read on reload).
    pub config_path: PathBuf,
    /// Who we are.
    pub identity: Identity,
    /// When we started.
    pub started: Instant,
    /// IPAM over etcd (shared with start-up's etcd steps).
    pub ipam: Arc<Ipam>,
    /// The BGP speaker.
    pub speaker: Speaker,
    /// The kernel reconcile task.
    pub fib: FibHandle,
    /// Container plumbing.
    pub endpoints: Endpoints,
    /// etcd reachability.
    pub health: Arc<EtcdHealth>,
    /// The changing state.
    pub state: tokio::sync::Mutex<State>,
    /// Serializes endpoint attach/detach (the endpoint crate asks callers to).
    pub endpoint_ops: tokio::sync::Mutex<()>,
    /// Kernel table and protocol, for status.
    pub kernel_tag: (u32, u8),
    /// The host firewall: policy file and cluster policies.
    pub firewall: std::sync::Mutex<Firewall>,
    /// This host's endpoint records in etcd.
    pub workloads: WorkloadStore,
    /// What we start from when etcd does not answer.
    pub state_file: StateFile,
}

/// A wire prefix as a kernel prefix.
pub fn kernel_prefix(p: bgpd_wire::Prefix) -> Option<bgpd_kernel::Prefix> {
    bgpd_kernel::Prefix::new(p.addr(), p.length()).ok()
}

/// A block as a wire prefix.
fn wire_prefix(n: IpNetwork) -> Option<bgpd_wire::Prefix> {
    bgpd_wire::Prefix::new(n.ip(), n.prefix()).ok()
}

/// A host address as a wire prefix (/32, /128).
fn host_prefix(ip: IpAddr) -> Option<bgpd_wire::Prefix> {
    bgpd_wire::Prefix::new(ip, if ip.is_ipv4() { 32 } else { 128 }).ok()
}

impl Daemon {
    /// Assembles the daemon from its started parts.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config_path: PathBuf,
        identity: Identity,
        ipam: Arc<Ipam>,
        speaker: Speaker,
        fib: FibHandle,
        endpoints: Endpoints,
        health: Arc<EtcdHealth>,
        state: State,
        kernel_tag: (u32, u8),
        firewall: Firewall,
        workloads: WorkloadStore,
        state_file: StateFile,
    ) -> Daemon {
        Daemon {
            config_path,
            identity,
            started: Instant::now(),
            ipam,
            speaker,
            fib,
            endpoints,
            health,
            state: tokio::sync::Mutex::new(state),
            endpoint_ops: tokio::sync::Mutex::new(()),
            kernel_tag,
            firewall: std::sync::Mutex::new(firewall),
            workloads,
            state_file,
        }
    }

    /// Applies the host firewall for the endpoints and pools in `st` (no-op without a policy
    /// file or cluster policies).
    pub fn apply_firewall(&self, st: &State) {
        let Ok(mut firewall) = self.firewall.lock() else {
            return;
        };
        match firewall.apply(st) {
            Ok(()) => tracing::debug!("firewall applied"),
            Err(e) => tracing::error!("firewall not applied, the running table stays: {e}"),
        }
    }

    /// Moves kernel, originated routes and peers toward what `st` says. Returns one line per
    /// peer change.
    pub async fn converge(&self, st: &mut State) -> Vec<String> {
        let endpoints: Vec<(IpAddr, Ifindex)> = st
            .attached
            .values()
            .flat_map(|a| a.ips.iter().map(|i| (i.ip, a.host_ifindex)))
            .collect();
        let blocks: Vec<bgpd_kernel::Prefix> = st
            .blocks
            .iter()
            .filter_map(|b| {
                let n = b.network();
                bgpd_kernel::Prefix::new(n.ip(), n.prefix()).ok()
            })
            .collect();
        let new = wanted(&RouteInputs {
            blocks: &blocks,
            endpoints: &endpoints,
            learned: &st.learned,
            kept: &st.kept,
        });
        for update in diff(&st.wanted, &new) {
            if let Err(e) = self.fib.update(update).await {
                tracing::error!("kernel route task: {e}");
            }
        }
        st.wanted = new;

        let own: BTreeSet<bgpd_wire::Prefix> = st
            .blocks
            .iter()
            .filter_map(|b| wire_prefix(b.network()))
            .chain(
                st.attached
                    .values()
                    .flat_map(|a| a.ips.iter().filter(|i| i.borrowed))
                    .filter_map(|i| host_prefix(i.ip)),
            )
            .collect();
        for gone in st.originated.difference(&own) {
            tracing::info!(prefix = %gone, "withdrawing");
            let _ = self.speaker.withdraw(*gone);
        }
        for new in own.difference(&st.originated) {
            tracing::info!(prefix = %new, "originating");
            let _ = self
                .speaker
                .originate(*new, advertised(*new, &st.config.bgp));
        }
        st.originated = own;

        let pools: Vec<bgpd_wire::Prefix> = st
            .pools
            .values()
            .filter_map(|p| wire_prefix(p.cidr))
            .collect();
        let own: Vec<bgpd_wire::Prefix> = st.originated.iter().copied().collect();
        let desired = desired_peers(&MeshInputs {
            me: self.identity.host.as_str(),
            my_record: &st.record,
            registry: &st.registry,
            bgp: &st.config.bgp,
            pools: &pools,
            own: &own,
        });
        let changes = self.apply_peers(&st.peers, &desired).await;
        st.peers = desired;
        self.persist(st);
        changes
    }

    /// Writes the state file when what it holds changed. Not while degraded (it would only
    /// write the cache back), nor before the registry was listed since we registered (our own
    /// record is in it then): a file without peers could not resume BGP.
    fn persist(&self, st: &State) {
        if st.degraded.is_none() && st.registry.contains_key(self.identity.host.as_str()) {
            self.state_file
                .save_if_changed(Snapshot::of(self.identity.host.as_str(), st));
        }
    }

    async fn apply_peers(
        &self,
        current: &BTreeMap<IpAddr, PeerPlan>,
        desired: &BTreeMap<IpAddr, PeerPlan>,
    ) -> Vec<String> {
        let mut changes = Vec::new();
        for (addr, plan) in current {
            if !desired.contains_key(addr) {
                match self.speaker.remove_peer(*addr).await {
                    Ok(()) => changes.push(format!("peer {addr} ({}) removed", plan.name)),
                    Err(e) => tracing::warn!(peer = %addr, "removing peer: {e}"),
                }
            }
        }
        for (addr, plan) in desired {
            let result = match current.get(addr) {
                None => self
                    .speaker
                    .add_peer(plan.settings.clone())
                    .await
                    .map(|()| format!("peer {addr} ({}, {:?}) added", plan.name, plan.kind)),
                Some(old) if old.settings != plan.settings => self
                    .speaker
                    .reconfigure_peer(plan.settings.clone())
                    .await
                    .map(|()| format!("peer {addr} ({}) changed", plan.name)),
                Some(_) => continue,
            };
            match result {
                Ok(line) => {
                    tracing::info!("{line}");
                    changes.push(line);
                }
                Err(e) => tracing::warn!(peer = %addr, "configuring peer: {e}"),
            }
        }
        changes
    }

    /// Every `period`: re-reads our blocks from etcd (IPAM's garbage collection may have
    /// released an empty one) and runs a GC pass (reclaims addresses of hosts gone for longer
    /// than the safety delay; guarded, so every host may run it). Runs as a task.
    pub async fn maintain_ipam(self: Arc<Self>, period: std::time::Duration) {
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        loop {
            tick.tick().await;
            match self.ipam.gc().await {
                Ok(report) if report != ipam::GcReport::default() => {
                    tracing::info!(?report, "IPAM garbage collection")
                }
                Ok(_) => self.health.ok(),
                Err(e) => {
                    self.health.failed(&e);
                    tracing::warn!("IPAM garbage collection: {e}");
                }
            }
            if self.identity.role != Role::Host {
                continue;
            }
            match self.ipam.blocks_of(&self.identity.host).await {
                Ok(blocks) => {
                    let mut blocks: Vec<BlockCidr> = blocks.into_iter().map(|b| b.cidr).collect();
                    blocks.sort();
                    let mut st = self.state.lock().await;
                    let mut current = st.blocks.clone();
                    current.sort();
                    if blocks != current {
                        tracing::info!(?blocks, "our blocks changed in etcd");
                        st.blocks = blocks;
                        self.converge(&mut st).await;
                    }
                }
                Err(e) => self.health.failed(&e),
            }
        }
    }

    /// Peer summaries joined with why we peer.
    pub async fn peers(&self) -> Result<Vec<bgpd_api::Peer>, ApiError> {
        let statuses = self
            .speaker
            .peers()
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let st = self.state.lock().await;
        Ok(statuses
            .into_iter()
            .map(|s| {
                let plan = st.peers.get(&s.address);
                let count = |c: bgpd_speaker::MessageCounts| bgpd_api::MessageCounts {
                    open: c.open,
                    update: c.update,
                    notification: c.notification,
                    keepalive: c.keepalive,
                    route_refresh: c.route_refresh,
                };
                bgpd_api::Peer {
                    address: s.address,
                    name: plan.map_or_else(|| s.address.to_string(), |p| p.name.clone()),
                    kind: plan.map_or(bgpd_api::PeerKind::Configured, |p| p.kind),
                    asn: s.remote_as,
                    state: s.state,
                    uptime_secs: s.uptime_secs,
                    peer_id: s.peer_id,
                    hostname: s.hostname,
                    hold_time: s.hold_time,
                    families: s.families,
                    prefixes_received: s.prefixes_received,
                    prefixes_accepted: s.prefixes_accepted,
                    prefixes_ignored: s.prefixes_ignored,
                    attributes_discarded: s.attributes_discarded,
                    prefixes_advertised: s.prefixes_advertised,
                    received: count(s.received),
                    sent: count(s.sent),
                    established_count: s.established_count,
                    last_notification_sent: s.last_notification_sent,
                    last_notification_received: s.last_notification_received,
                    graceful_restart_stale: s.graceful_restart_stale,
                }
            })
            .collect())
    }

    /// This host's blocks with their use: from etcd, or counted locally while etcd is away.
    /// While degraded etcd is known to be away: counted locally at once, not after IPAM's
    /// retries.
    pub async fn block_usage(&self) -> Vec<BlockUsage> {
        if self.state.lock().await.degraded.is_none() {
            match self.ipam.blocks_of(&self.identity.host).await {
                Ok(blocks) => {
                    self.health.ok();
                    return blocks
                        .into_iter()
                        .map(|b| BlockUsage {
                            cidr: b.cidr.network(),
                            used: b.used,
                            size: b.size,
                        })
                        .collect();
                }
                Err(e) => self.health.failed(&e),
            }
        }
        let st = self.state.lock().await;
        st.blocks
            .iter()
            .map(|b| BlockUsage {
                cidr: b.network(),
                used: st
                    .attached
                    .values()
                    .flat_map(|a| &a.ips)
                    .filter(|i| i.block == *b)
                    .count() as u32,
                size: b.size(),
            })
            .collect()
    }

    /// `/v1/status`.
    pub async fn status(&self) -> Result<Status, ApiError> {
        let peers = self.peers().await?;
        let blocks = self.block_usage().await;
        let fib = self.fib.status();
        let last_error = self.health.last_error();
        Ok(Status {
            node: self.identity.host.to_string(),
            role: self.identity.role,
            asn: self.identity.asn,
            router_id: self.identity.router_id,
            address: self.identity.address,
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_secs: self.started.elapsed().as_secs(),
            blocks,
            peers: peers
                .into_iter()
                .map(|p| PeerSummary {
                    address: p.address,
                    name: p.name,
                    kind: p.kind,
                    asn: p.asn,
                    state: p.state,
                    uptime_secs: p.uptime_secs,
                    prefixes_received: p.prefixes_received,
                    prefixes_accepted: p.prefixes_accepted,
                    prefixes_advertised: p.prefixes_advertised,
                })
                .collect(),
            kernel: KernelStatus {
                in_sync: fib.in_sync,
                wanted: fib.wanted,
                installed: fib.installed,
                failures: fib.failures.iter().map(|f| f.to_string()).collect(),
                conflicts: fib.conflicts.iter().map(|r| r.to_string()).collect(),
                last_error: fib.last_error,
                table: self.kernel_tag.0,
                proto: self.kernel_tag.1,
            },
            etcd: EtcdStatus {
                reachable: last_error.is_none(),
                last_error,
                degraded: self.state.lock().await.degraded.clone(),
            },
            policy: self
                .firewall
                .lock()
                .map(|f| f.status().clone())
                .unwrap_or_default(),
        })
    }

    /// `/v1/routes`, only routes inside `within` when given.
    pub async fn routes(&self, within: Option<IpNetwork>) -> Result<Routes, ApiError> {
        let inside = |p: IpNetwork| {
            within.is_none_or(|w| {
                w.is_ipv4() == p.is_ipv4() && w.contains(p.network()) && p.prefix() >= w.prefix()
            })
        };
        let rib = self
            .speaker
            .routes()
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .into_iter()
            .filter_map(|r| {
                let prefix: IpNetwork = r.prefix.parse().ok()?;
                inside(prefix).then(|| RibRoute {
                    prefix,
                    from: r.from,
                    path_id: r.path_id,
                    best: r.best,
                    multipath: r.multipath,
                    stale: r.stale,
                    accepted: r.accepted,
                    next_hop: r.next_hop.and_then(|n| n.parse().ok()),
                    as_path: r.as_path,
                    local_pref: r.local_pref,
                    originator_id: r.originator_id,
                    cluster_list: r.cluster_list,
                })
            })
            .collect();
        let st = self.state.lock().await;
        let ifname_of = |index: u32| {
            st.attached
                .values()
                .find(|a| a.host_ifindex.get() == index)
                .map(|a| a.host_ifname.clone())
        };
        let fib = st
            .wanted
            .iter()
            .filter_map(|(prefix, (route, source))| {
                let net = IpNetwork::new(prefix.addr(), prefix.length()).ok()?;
                let (action, ifindex, next_hops) = match route.kind() {
                    RouteKind::Blackhole => (FibAction::Blackhole, None, Vec::new()),
                    RouteKind::Device(i) => (FibAction::Device, Some(i.get()), Vec::new()),
                    RouteKind::Via(hops) => (
                        FibAction::Via,
                        None,
                        hops.as_slice().iter().map(|h| h.gateway).collect(),
                    ),
                };
                inside(net).then_some(FibRoute {
                    prefix: net,
                    action,
                    ifindex,
                    ifname: ifindex.and_then(ifname_of),
                    next_hops,
                    source: *source,
                })
            })
            .collect();
        Ok(Routes { rib, fib })
    }
}
