//! Startup and the main loop, one way: config → etcd (register, claim blocks) → kernel
//! (blackholes, kept routes) → BGP (originate, peers from the registry) → control socket →
//! READY; then registry changes, best-path changes, signals and timers feed `converge`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgpd_api::Role;
use bgpd_config::Config;
use bgpd_endpoint::{Endpoints, RouteTag};
use bgpd_kernel::{Fib, FibConfig, FibMonitor, ProtocolId, ReconcileOptions, RouteSet, TableId};
use bgpd_speaker::{GracefulRestartConfig, Speaker, SpeakerConfig};
use bgpd_wire::Asn;
use etcd_client::Client;
use ipam::{BlockCidr, Family, HostName, Ipam, IpamOptions, StoreOptions};
use tokio::sync::watch;

use crate::address::{AddressError, companion_v6, detect};
use crate::daemon::{Attached, Daemon, Identity, State, kernel_prefix};
use crate::firewall::Firewall;
use crate::health::EtcdHealth;
use crate::mesh::cluster_id;
use crate::metrics::Metrics;
use crate::node::{Backoff, NodeRecord, RECORD_VERSION, Registration, Registry, follow};
use crate::pools::Pools;
use crate::routes::{RouteInputs, keepable, wanted};
use crate::signals::{Request, Signals};
use crate::state_file::{Snapshot, StateFile};
use crate::workloads::{Affinities, WorkloadStore, Workloads};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No node address.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// No usable router id.
    #[error("node.router_id is needed: the node address {0} is not IPv4")]
    RouterId(IpAddr),
    /// The node name is unusable.
    #[error("node name: {0}")]
    Name(String),
    /// etcd settings we cannot honour.
    #[error("etcd: {0}")]
    Etcd(String),
    /// `[etcd.tls]` is unusable (names the file).
    #[error("etcd TLS: {0}")]
    EtcdTls(ipam::TlsError),
    /// The kernel route task could not start.
    #[error("kernel routes: {0}")]
    Kernel(#[from] bgpd_kernel::Error),
    /// Endpoint plumbing could not start.
    #[error("endpoints: {0}")]
    Endpoint(#[from] bgpd_endpoint::Error),
    /// The BGP speaker could not start.
    #[error("bgp: {0}")]
    Speaker(#[from] bgpd_speaker::SpeakerError),
    /// The control socket could not be bound.
    #[error("control socket {path}: {source}")]
    Socket {
        /// Its path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("signals: {0}")]
    Signals(std::io::Error),
    /// The policy file is unusable.
    #[error("policy: {0}")]
    Policy(#[from] bgpd_policy::ModelError),
    /// The BGP speaker stopped while we ran.
    #[error("the BGP speaker stopped")]
    SpeakerStopped,
}

fn host_name(config: &Config) -> Result<HostName, StartError> {
    let name = match &config.node.name {
        Some(n) => n.as_str().to_string(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map_err(|e| StartError::Name(format!("reading the host name: {e}")))?
            .trim()
            .to_string(),
    };
    HostName::new(name).map_err(|e| StartError::Name(e.to_string()))
}

/// Turns on forwarding host-wide (IPv6 `all.forwarding` too, which felix also sets; it stops
/// `accept_ra` on every interface).
fn enable_forwarding() {
    for key in ["ipv4/ip_forward", "ipv6/conf/all/forwarding"] {
        let path = format!("/proc/sys/net/{key}");
        if let Err(e) = std::fs::write(&path, "1") {
            tracing::warn!("cannot set {path} = 1: {e}");
        }
    }
}

/// Every pool in etcd, after creating the configured ones it lacks. Waits for etcd (with a
/// log line per try) rather than starting with no pools, which would leave the import guard
/// open and fail every assignment.
async fn pools(client: &Client, ipam: &Ipam, config: &Config) -> Pools {
    let prefix = ipam.keys().pools();
    let mut backoff = Backoff::new();
    let mut created = false;
    loop {
        match crate::pools::read(client, &prefix).await {
            Ok(existing) if created => return existing,
            Ok(existing) => {
                crate::pools::create_configured(ipam, config, &existing).await;
                created = true;
                continue;
            }
            Err(e) => tracing::warn!(
                "reading IP pools: {e}; retrying in {}s",
                backoff.next().as_secs()
            ),
        }
        backoff.wait().await;
    }
}

/// This host's blocks: the ones it holds, plus one claimed for each family it has a pool of
/// and no block in.
async fn blocks(ipam: &Ipam, host: &HostName, pools: &Pools) -> Vec<BlockCidr> {
    // Waits for etcd rather than taking "none": after a start from the state file, that would
    // withdraw blocks that are still ours.
    let mut backoff = Backoff::new();
    let mut held: Vec<BlockCidr> = loop {
        match ipam.blocks_of(host).await {
            Ok(b) => break b.into_iter().map(|b| b.cidr).collect(),
            Err(e) => {
                tracing::warn!(
                    "reading our blocks: {e}; retrying in {}s",
                    backoff.next().as_secs()
                );
                backoff.wait().await;
            }
        }
    };
    for family in [Family::V4, Family::V6] {
        let has_pool = crate::pools::assigns(pools, family == Family::V4);
        if !has_pool || held.iter().any(|b| b.family() == family) {
            continue;
        }
        match ipam.claim(host, family).await {
            Ok(block) => {
                tracing::info!(block = %block.network(), "block claimed");
                held.push(block);
            }
            Err(e) => tracing::warn!(family = family.name(), "no block claimed: {e}"),
        }
    }
    held
}

fn speaker_config(config: &Config, id: &Identity, restarting: bool) -> SpeakerConfig {
    let bgp = &config.bgp;
    let port = bgp.listen_port.get();
    let listen = if bgp.listen_addresses.is_empty() {
        vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        ]
    } else {
        bgp.listen_addresses
            .iter()
            .map(|a| SocketAddr::new(*a, port))
            .collect()
    };
    SpeakerConfig {
        listen,
        cluster_id: cluster_id(bgp, id.router_id),
        max_paths: 8,
        hostname: Some(id.host.to_string()),
        graceful_restart: GracefulRestartConfig {
            enabled: bgp.graceful_restart.enabled,
            restart_time: bgp.graceful_restart.restart_time.get(),
            stale_time: bgp.graceful_restart.stale_routes_time,
            restarting,
        },
        ..SpeakerConfig::new(Asn(id.asn), id.router_id)
    }
}

/// How long a start with a state file waits for etcd before resuming from the file.
pub const ETCD_PATIENCE: Duration = Duration::from_secs(5);

/// What the daemon starts with: from etcd, or from the state file until etcd answers.
struct Start {
    pools: Pools,
    blocks: Vec<BlockCidr>,
    attached: BTreeMap<(String, String), Attached>,
    /// Empty from etcd (the registry follower fills it), the cached one from the file.
    registry: Registry,
}

/// Everything start-up's etcd steps need, owned, so they can go on in the background.
struct EtcdJoin {
    client: Client,
    ipam: Arc<Ipam>,
    config: Config,
    host: HostName,
    record: NodeRecord,
    health: Arc<EtcdHealth>,
    endpoints: Endpoints,
    workloads: WorkloadStore,
    endpoints_text: String,
}

/// Start-up's etcd steps, each waiting for etcd with a log line per try: register (and keep
/// the lease alive from then on), read the pools, confirm or claim our blocks, find our
/// endpoints again through IPAM and give them their labels back.
async fn join_etcd(j: EtcdJoin) -> Start {
    let role = j.record.role;
    let mut registration = Registration::new(
        j.client.clone(),
        j.ipam.keys(),
        &j.host,
        j.record,
        j.health.clone(),
    );
    let lease = registration.register(&j.endpoints_text).await;
    tracing::info!(lease, "node registered");
    tokio::spawn(registration.keep_alive(lease, j.endpoints_text));

    let pools = pools(&j.client, &j.ipam, &j.config).await;
    let blocks = match role {
        Role::Host => blocks(&j.ipam, &j.host, &pools).await,
        Role::Reflector => Vec::new(),
    };
    // An empty map in place of the endpoints we could not list would make the record sync
    // below delete this host's records, the only place their labels live: wait for IPAM and
    // netlink instead, as registering does.
    let mut backoff = Backoff::new();
    let mut attached = loop {
        match crate::endpoints::restore(&j.endpoints, &j.ipam, &j.host).await {
            Ok(a) => break a,
            Err(e) => {
                tracing::warn!(
                    "restoring endpoints: {e}; retrying in {}s",
                    backoff.next().as_secs()
                );
                backoff.wait().await;
            }
        }
    };
    // Until the labels are back, a sync would overwrite the records with none: wait for etcd,
    // as registering does.
    let mut backoff = Backoff::new();
    while let Err(e) = j.workloads.restore(&mut attached).await {
        tracing::warn!(
            "restoring endpoint labels from etcd: {e}; retrying in {}s",
            backoff.next().as_secs()
        );
        backoff.wait().await;
    }
    Start {
        pools,
        blocks,
        attached,
        registry: Registry::new(),
    }
}

/// The state file's snapshot, if there is a usable one; otherwise says why start-up waits for
/// etcd.
fn cached(file: &StateFile, host: &HostName) -> Option<Snapshot> {
    match file.load(host.as_str()) {
        Ok(Some(snapshot)) => Some(snapshot),
        Ok(None) => {
            tracing::info!(
                path = %file.path().display(),
                "no state file (first start): BGP starts once etcd answers"
            );
            None
        }
        Err(e) => {
            tracing::warn!("{e}: not used; BGP starts once etcd answers");
            None
        }
    }
}

/// Starts from the state file: its blocks, pools and peers, and those of its endpoints whose
/// veth is still on the host (nothing is assigned or released from it).
async fn from_snapshot(endpoints: &Endpoints, snapshot: Snapshot, role: Role) -> Start {
    let mut backoff = Backoff::new();
    let attached = loop {
        match crate::endpoints::restore_cached(endpoints, &snapshot.endpoints).await {
            Ok(a) => break a,
            Err(e) => {
                tracing::warn!(
                    "listing our veths: {e}; retrying in {}s",
                    backoff.next().as_secs()
                );
                backoff.wait().await;
            }
        }
    };
    Start {
        pools: snapshot.pools,
        blocks: match role {
            Role::Host => snapshot.blocks,
            Role::Reflector => Vec::new(),
        },
        attached,
        registry: snapshot.registry,
    }
}

/// etcd answered after a start from the state file: what etcd says replaces the cache (a
/// cached block IPAM no longer gives us is withdrawn), endpoint changes are accepted again and
/// the state file follows etcd from now on. The registry stays until its follower lists it.
async fn leave_degraded(daemon: &Daemon, joined: Start) {
    let _serial = daemon.endpoint_ops.lock().await;
    let mut st = daemon.state.lock().await;
    for gone in st.blocks.iter().filter(|b| !joined.blocks.contains(b)) {
        tracing::warn!(block = %gone.network(), "a block from the state file is no longer ours in IPAM: withdrawing it");
    }
    st.pools = joined.pools;
    st.blocks = joined.blocks;
    st.attached = joined.attached;
    st.degraded = None;
    daemon.converge(&mut st).await;
    daemon.apply_firewall(&st);
    tracing::info!(
        "etcd answers: registered, blocks confirmed, endpoints and labels restored; left degraded mode"
    );
}

/// The periodic etcd upkeep: our blocks re-read and IPAM GC, endpoint records synced.
fn spawn_maintenance(daemon: &Arc<Daemon>, dead_host_delay: Duration) {
    tokio::spawn(daemon.clone().maintain_ipam(Duration::from_secs(30)));
    tokio::spawn(
        daemon
            .clone()
            .maintain_workloads(Duration::from_secs(30), dead_host_delay),
    );
}

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(config_path: PathBuf, config: Config) -> Result<(), StartError> {
    let host = host_name(&config)?;
    let address = detect(&config.node.address)?;
    let router_id = match (config.node.router_id, address) {
        (Some(r), _) => r.get(),
        (None, IpAddr::V4(v4)) => v4,
        (None, v6) => return Err(StartError::RouterId(v6)),
    };
    let role = if config.bgp.route_reflector {
        Role::Reflector
    } else {
        Role::Host
    };
    let identity = Identity {
        host: host.clone(),
        role,
        asn: config.node.asn.get(),
        router_id,
        address,
    };
    tracing::info!(node = %host, %address, %router_id, asn = identity.asn, ?role, "starting");
    // Read before anything on the host changes, so a bad certificate or policy file changes
    // nothing either.
    let tls = config
        .etcd
        .tls
        .as_ref()
        .map(ipam::EtcdTls::from_config)
        .transpose()
        .map_err(StartError::EtcdTls)?;
    let mut firewall = Firewall::load(config.policy.file.as_deref())?;
    enable_forwarding();

    let endpoints_list: Vec<String> = config
        .etcd
        .endpoints
        .iter()
        .map(|e| e.as_str().to_string())
        .collect();
    let endpoints_text = endpoints_list.join(",");
    let ipam_options = IpamOptions {
        store: StoreOptions {
            tls: tls.clone(),
            ..StoreOptions::default()
        },
        dead_host_delay: Duration::from_secs(config.ipam.dead_host_delay.get().into()),
        ..IpamOptions::default()
    };
    let dead_host_delay = ipam_options.dead_host_delay;
    let ipam = Ipam::connect(&endpoints_list, ipam_options)
        .await
        .map_err(|e| StartError::Etcd(e.to_string()))?;
    let health = Arc::new(EtcdHealth::default());
    let address_v6 = companion_v6(address);
    let record = NodeRecord {
        version: RECORD_VERSION,
        labels: config.node.labels.clone(),
        address,
        address_v6,
        asn: identity.asn,
        router_id,
        role,
        mesh: config.bgp.mesh,
        port: config.bgp.listen_port.get(),
    };
    let client = crate::node::stream_client(&endpoints_list, tls.as_ref())
        .await
        .map_err(|e| StartError::Etcd(e.to_string()))?;
    let ipam = Arc::new(ipam);
    let table = config.kernel.table.get();
    let proto = config.kernel.proto.get();
    let endpoints = Endpoints::new(RouteTag {
        protocol: proto,
        table,
    })?;
    if role == Role::Host && !endpoints.ipv4_gateway_answerable().await.unwrap_or(false) {
        tracing::warn!(
            "no route covers 169.254.1.1: containers' IPv4 gateway will not be answered by proxy ARP until this host has a default route"
        );
    }
    let workloads = WorkloadStore::new(client.clone(), ipam.keys(), host.clone());
    let join = join_etcd(EtcdJoin {
        client: client.clone(),
        ipam: ipam.clone(),
        config: config.clone(),
        host: host.clone(),
        record: record.clone(),
        health: health.clone(),
        endpoints: endpoints.clone(),
        workloads: workloads.clone(),
        endpoints_text,
    });
    tokio::pin!(join);
    // With a state file, etcd gets a short while; then BGP and the kernel resume from the file
    // (graceful restart: peers must hear from us before their restart timer ends) and the etcd
    // steps go on in the main loop. Without one there is nothing to resume from: wait.
    let state_file = StateFile::in_dir(&config.state.dir);
    let (start, degraded) = match cached(&state_file, &host) {
        None => (join.as_mut().await, None),
        Some(snapshot) => match tokio::time::timeout(ETCD_PATIENCE, join.as_mut()).await {
            Ok(joined) => (joined, None),
            Err(_) => {
                let why = format!(
                    "started from {} because etcd did not answer within {}s",
                    state_file.path().display(),
                    ETCD_PATIENCE.as_secs()
                );
                tracing::warn!(
                    "{why}: BGP and kernel routes resume from it (blocks, peers, pools, endpoints); endpoint changes are refused until etcd answers"
                );
                (from_snapshot(&endpoints, snapshot, role).await, Some(why))
            }
        },
    };
    let mut waiting_for_etcd = degraded.is_some();

    let fib_config = FibConfig {
        table: TableId::new(table)
            .map_err(|e| StartError::Kernel(bgpd_kernel::Error::Config(e)))?,
        protocol: ProtocolId::new(proto)
            .map_err(|e| StartError::Kernel(bgpd_kernel::Error::Config(e)))?,
    };
    let mut fib = Fib::open(fib_config)?;
    let installed = fib.installed()?;
    let kept = keepable(installed.iter());
    let restarting = !installed.is_empty();
    if restarting {
        tracing::info!(
            routes = installed.len(),
            kept = kept.len(),
            "found our routes in the kernel: keeping them while BGP comes back (graceful restart)"
        );
    }

    let speaker = Speaker::start(speaker_config(&config, &identity, restarting))?;
    let mut fib_changes = speaker.subscribe_fib()?;

    let mut state = State {
        blocks: start.blocks,
        pools: start.pools,
        attached: start.attached,
        learned: BTreeMap::new(),
        kept,
        wanted: BTreeMap::new(),
        originated: Default::default(),
        peers: BTreeMap::new(),
        registry: start.registry,
        workloads: Workloads::new(),
        affinities: Affinities::new(),
        remote: Vec::new(),
        record,
        config: config.clone(),
        degraded,
    };
    let endpoint_routes: Vec<_> = state
        .attached
        .values()
        .flat_map(|a| a.ips.iter().map(|i| (i.ip, a.host_ifindex)))
        .collect();
    let block_prefixes: Vec<_> = state
        .blocks
        .iter()
        .filter_map(|b| bgpd_kernel::Prefix::new(b.network().ip(), b.network().prefix()).ok())
        .collect();
    state.wanted = wanted(&RouteInputs {
        blocks: &block_prefixes,
        endpoints: &endpoint_routes,
        learned: &state.learned,
        kept: &state.kept,
    });
    let mut initial = RouteSet::new();
    for (route, _) in state.wanted.values() {
        initial.insert(route.clone());
    }
    let monitor = FibMonitor::open()?;
    let (fib_handle, _fib_task) =
        bgpd_kernel::spawn(fib, monitor, initial, ReconcileOptions::default());

    let (registry_tx, mut registry_rx) = watch::channel(Registry::new());
    // Pools added, disabled or deleted at runtime change the import guard and NAT-outgoing.
    let (pools_tx, mut pools_rx) = watch::channel(state.pools.clone());
    tokio::spawn(crate::prefix_watch::follow(
        client.clone(),
        ipam.keys().pools(),
        pools_tx,
        health.clone(),
        "IP pools",
        crate::pools::fold,
    ));
    let (workloads_tx, mut workloads_rx) = watch::channel(Workloads::new());
    // Which hosts still hold blocks: a host's endpoint records count until IPAM reclaims them.
    let (affinities_tx, mut affinities_rx) = watch::channel(Affinities::new());
    tokio::spawn(crate::prefix_watch::follow(
        client.clone(),
        ipam.keys().affinities(),
        affinities_tx,
        health.clone(),
        "block affinities",
        crate::workloads::fold_affinity,
    ));
    tokio::spawn(crate::prefix_watch::follow(
        client.clone(),
        workloads.prefix().to_string(),
        workloads_tx,
        health.clone(),
        "endpoint records",
        crate::workloads::fold,
    ));
    let mut policies_rx =
        crate::policies::watch(client.clone(), &ipam.keys().root(), health.clone());
    if !waiting_for_etcd {
        if let Some(stored) =
            crate::policies::first_list(&mut policies_rx, crate::policies::FIRST_LIST_PATIENCE)
                .await
        {
            firewall.take_cluster(&stored);
        }
    }
    tokio::spawn(follow(
        client,
        ipam.keys().nodes(),
        registry_tx,
        health.clone(),
    ));

    let daemon = Arc::new(Daemon::new(
        config_path,
        identity,
        ipam,
        speaker,
        fib_handle,
        endpoints,
        health,
        state,
        (table, proto),
        firewall,
        workloads,
        state_file,
    ));
    {
        let mut st = daemon.state.lock().await;
        daemon.converge(&mut st).await;
        // From the state file, the table of before the restart stays: applied without the
        // cluster policies etcd holds, it would change what is allowed.
        if !waiting_for_etcd {
            daemon.apply_firewall(&st);
        }
    }

    tokio::spawn(daemon.clone().follow_cluster_policies(policies_rx));
    if !waiting_for_etcd {
        spawn_maintenance(&daemon, dead_host_delay);
    }
    let socket = config.api.socket.clone();
    let listener = crate::api::bind(&socket).map_err(|source| StartError::Socket {
        path: socket.clone(),
        source,
    })?;
    tokio::spawn(crate::api::serve(listener, daemon.clone()));
    tracing::info!(socket = %socket.display(), "control socket ready");
    if let Some(address) = config.metrics.address {
        tokio::spawn(crate::metrics::serve(
            address,
            Arc::new(Metrics::new()),
            daemon.clone(),
        ));
    }
    // Installed only now: until here SIGTERM's default action ends a start that waits on etcd.
    let mut signals = Signals::install().map_err(StartError::Signals)?;
    // A no-op without NOTIFY_SOCKET (not under systemd).
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!("sd_notify READY: {e}");
    }
    let watchdog = sd_notify::watchdog_enabled();
    let mut tick = tokio::time::interval(watchdog.map_or(Duration::from_secs(1), |w| {
        (w / 2).min(Duration::from_secs(1))
    }));
    let started = Instant::now();
    let keep_for = Duration::from_secs(u64::from(config.bgp.graceful_restart.restart_time.get()));
    let mut all_up_since: Option<Instant> = None;

    loop {
        tokio::select! {
            request = signals.next() => match request {
                Request::Reload => {
                    tracing::info!("SIGHUP: reloading {}", daemon.config_path.display());
                    let _ = daemon.reload().await;
                }
                Request::Stop => break,
            },
            joined = join.as_mut(), if waiting_for_etcd => {
                waiting_for_etcd = false;
                leave_degraded(&daemon, joined).await;
                spawn_maintenance(&daemon, dead_host_delay);
            }
            changed = registry_rx.changed() => {
                if changed.is_err() {
                    continue;
                }
                let registry = registry_rx.borrow_and_update().clone();
                let mut st = daemon.state.lock().await;
                st.registry = registry;
                daemon.converge(&mut st).await;
                daemon.refresh_remote(&mut st);
            }
            changed = pools_rx.changed() => {
                if changed.is_err() {
                    continue;
                }
                let pools = pools_rx.borrow_and_update().clone();
                let mut st = daemon.state.lock().await;
                if st.pools != pools {
                    tracing::info!(pools = ?pools.keys().collect::<Vec<_>>(), "IP pools changed");
                    st.pools = pools;
                    daemon.converge(&mut st).await;
                    daemon.apply_firewall(&st);
                }
            }
            changed = workloads_rx.changed() => {
                if changed.is_err() {
                    continue;
                }
                let workloads = workloads_rx.borrow_and_update().clone();
                let mut st = daemon.state.lock().await;
                st.workloads = workloads;
                daemon.refresh_remote(&mut st);
            }
            changed = affinities_rx.changed() => {
                if changed.is_err() {
                    continue;
                }
                let affinities = affinities_rx.borrow_and_update().clone();
                let mut st = daemon.state.lock().await;
                st.affinities = affinities;
                daemon.refresh_remote(&mut st);
            }
            batch = fib_changes.recv() => {
                let Some(batch) = batch else { return Err(StartError::SpeakerStopped) };
                let mut st = daemon.state.lock().await;
                for change in batch {
                    let Some(prefix) = kernel_prefix(change.prefix) else { continue };
                    // BGP has spoken for this prefix: what we kept from before is done.
                    st.kept.remove(&prefix);
                    if change.next_hops.is_empty() {
                        st.learned.remove(&prefix);
                    } else {
                        st.learned.insert(prefix, change.next_hops);
                    }
                }
                daemon.converge(&mut st).await;
            }
            _ = tick.tick() => {
                if watchdog.is_some() {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                }
                if daemon.state.lock().await.kept.is_empty() {
                    continue;
                }
                let all_up = daemon.speaker.peers().await.is_ok_and(|p| {
                    !p.is_empty() && p.iter().all(|s| s.state == "Established")
                });
                all_up_since = if all_up { all_up_since.or(Some(Instant::now())) } else { None };
                // Routes BGP has not re-learned by now are gone from the fabric.
                let settled = all_up_since.is_some_and(|t| t.elapsed() > Duration::from_secs(5));
                if settled || started.elapsed() > keep_for {
                    let mut st = daemon.state.lock().await;
                    tracing::info!(routes = st.kept.len(), "dropping kept routes BGP did not re-learn");
                    st.kept.clear();
                    daemon.converge(&mut st).await;
                }
            }
        }
    }
    stop(&daemon, &config).await;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// SIGTERM: by default leave the kernel routes and let the sessions drop without a Cease, so
/// peers keep our routes as graceful-restart helpers and forwarding goes on. With
/// `kernel.keep_routes_on_exit = false`, withdraw everything cleanly first.
async fn stop(daemon: &Daemon, config: &Config) {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    if config.kernel.keep_routes_on_exit {
        tracing::info!("stopping; kernel routes stay for graceful restart");
        return;
    }
    tracing::info!("stopping; removing our kernel routes and closing sessions");
    let peers: Vec<IpAddr> = daemon.state.lock().await.peers.keys().copied().collect();
    for p in peers {
        let _ = daemon.speaker.remove_peer(p).await;
    }
    let mut client = daemon.ipam.store().client().clone();
    if let Err(e) = crate::node::leave(&mut client, daemon.ipam.keys(), &daemon.identity.host).await
    {
        tracing::warn!("deleting our node record: {e}");
    }
    let _ = daemon
        .fib
        .update(bgpd_kernel::WantedUpdate::Replace(RouteSet::new()))
        .await;
    let mut status = daemon.fib.watch();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while !(status.borrow().wanted == 0 && status.borrow().in_sync) {
            if status.changed().await.is_err() {
                break;
            }
        }
    })
    .await;
}
