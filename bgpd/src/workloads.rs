//! Workload endpoint records in etcd, as Calico's WorkloadEndpoints: every attached container
//! interface is written to `<root>/endpoints/<host>/<container id>:<ifname>` with its addresses
//! and labels. Every host follows the whole prefix, so its firewall can match containers on
//! other hosts by label (rule selectors); a restarted daemon reads its own records back for the
//! labels, which the kernel does not keep.
//!
//! A host's records count while the host is in the node registry or still holds an IPAM block
//! affinity: a host whose daemon is stopped or cut off from etcd keeps its (persistent) node
//! record, and a deleted host (`routectl node delete`) keeps its affinities until GC, while
//! its containers may still run, so their labels must keep matching (as Calico's
//! WorkloadEndpoints outlive felix). Once IPAM's garbage collection has reclaimed a gone host's
//! blocks (after its dead-host delay), its addresses may be reassigned
//! and its records are ignored; once the host has also been seen that way for the dead-host
//! delay, any daemon deletes them (guarded in etcd on the host still having no node record and
//! no affinity), so records of hosts gone for good do not pile up. A host that comes back under
//! the same name rewrites its own records from what it really runs when it starts.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bgpd_api::{Labels, check_labels};
use bgpd_policy::RemoteEndpoint;
use etcd_client::{Client, Compare, CompareOp, DeleteOptions, Txn, TxnOp};
use ipam::{BlockCidr, HostName, Keys};
use serde::{Deserialize, Serialize};

use crate::daemon::{Attached, Daemon, State};
use crate::node::Registry;

/// Record format written by this daemon.
pub const WORKLOAD_RECORD_VERSION: u32 = 1;

/// How long one etcd request about records may take (the stream client has no deadline).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The record at `<root>/endpoints/<host>/<container id>:<ifname>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadRecord {
    /// Record format.
    pub version: u32,
    /// The container id.
    pub container_id: String,
    /// Interface name inside the container.
    pub ifname: String,
    /// The host end of its veth pair.
    pub host_ifname: String,
    /// Its addresses.
    pub ips: Vec<IpAddr>,
    /// Its labels.
    #[serde(default)]
    pub labels: Labels,
}

impl WorkloadRecord {
    /// The record of an attached interface.
    pub fn of(container_id: &str, ifname: &str, a: &Attached) -> WorkloadRecord {
        WorkloadRecord {
            version: WORKLOAD_RECORD_VERSION,
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
            host_ifname: a.host_ifname.clone(),
            ips: a.ips.iter().map(|i| i.ip).collect(),
            labels: a.labels.clone(),
        }
    }

    /// The last part of its key: `<container id>:<ifname>` (neither holds a `:`).
    pub fn name(&self) -> String {
        format!("{}:{}", self.container_id, self.ifname)
    }
}

/// Every host's records as last seen: host → record name → record.
pub type Workloads = BTreeMap<String, BTreeMap<String, WorkloadRecord>>;

/// Decodes a record read at `<host>/<name>`; anything else than a record of our version whose
/// name matches its key and whose labels follow the rules is an error (logged and skipped by
/// callers), never a panic.
pub fn decode(name: &str, value: &[u8]) -> Result<WorkloadRecord, String> {
    let record: WorkloadRecord = serde_json::from_slice(value).map_err(|e| e.to_string())?;
    if record.version != WORKLOAD_RECORD_VERSION {
        return Err(format!("record version {}", record.version));
    }
    if record.name() != name {
        return Err(format!(
            "the key names {name:?} but the record is {:?}",
            record.name()
        ));
    }
    check_labels(&record.labels).map_err(|e| e.to_string())?;
    Ok(record)
}

/// Folds one change under `<root>/endpoints/` (key `<host>/<name>`) into `view`.
pub fn fold(view: &mut Workloads, key: &str, value: Option<&[u8]>) {
    let Some((host, name)) = key.split_once('/') else {
        return;
    };
    if host.is_empty() || name.is_empty() || name.contains('/') {
        return;
    }
    let record = value.and_then(|v| match decode(name, v) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(host, endpoint = name, "ignoring endpoint record: {e}");
            None
        }
    });
    match record {
        Some(r) => {
            view.entry(host.to_string())
                .or_default()
                .insert(name.to_string(), r);
        }
        None => {
            if let Some(records) = view.get_mut(host) {
                records.remove(name);
                if records.is_empty() {
                    view.remove(host);
                }
            }
        }
    }
}

/// Every host's IPAM block affinities as last seen: host → blocks (key segments).
pub type Affinities = BTreeMap<String, BTreeSet<String>>;

/// Folds one change under IPAM's affinities prefix (key `<host>/<block>`) into `view`; keys
/// that do not name a host and a block are skipped.
pub fn fold_affinity(view: &mut Affinities, key: &str, value: Option<&[u8]>) {
    let Some((host, block)) = key.split_once('/') else {
        return;
    };
    if HostName::new(host).is_err() || BlockCidr::from_key_segment(block).is_err() {
        return;
    }
    match value {
        Some(_) => {
            view.entry(host.to_string())
                .or_default()
                .insert(block.to_string());
        }
        None => {
            if let Some(blocks) = view.get_mut(host) {
                blocks.remove(block);
                if blocks.is_empty() {
                    view.remove(host);
                }
            }
        }
    }
}

/// The containers of other hosts that policy selectors may match: records of hosts other than
/// `me` that are in the registry or still hold a block affinity, in a stable order.
pub fn remote_endpoints(
    workloads: &Workloads,
    registry: &Registry,
    affinities: &Affinities,
    me: &str,
) -> Vec<RemoteEndpoint> {
    workloads
        .iter()
        .filter(|(host, _)| host.as_str() != me && counts(host, registry, affinities))
        .flat_map(|(_, records)| records.values())
        .map(|r| RemoteEndpoint {
            ips: r.ips.clone(),
            labels: r.labels.clone(),
        })
        .collect()
}

/// Whether `host`'s records count: it is registered or still holds a block affinity.
fn counts(host: &str, registry: &Registry, affinities: &Affinities) -> bool {
    registry.contains_key(host) || affinities.contains_key(host)
}

/// When each host whose records no longer count was first seen that way, so that its records
/// are deleted only after the dead-host delay (views may lag, and a host may come back).
#[derive(Debug, Default)]
pub struct Uncounted {
    since: BTreeMap<String, Instant>,
}

impl Uncounted {
    /// Updates the view at `now` and returns the hosts other than `me` whose records have not
    /// counted for at least `delay`.
    pub fn due(
        &mut self,
        workloads: &Workloads,
        registry: &Registry,
        affinities: &Affinities,
        me: &str,
        now: Instant,
        delay: Duration,
    ) -> Vec<String> {
        let uncounted: BTreeSet<&String> = workloads
            .keys()
            .filter(|h| h.as_str() != me && !counts(h, registry, affinities))
            .collect();
        self.since.retain(|h, _| uncounted.contains(h));
        uncounted
            .into_iter()
            .filter(|h| {
                let first = *self.since.entry((*h).clone()).or_insert(now);
                now.saturating_duration_since(first) >= delay
            })
            .cloned()
            .collect()
    }
}

/// Reads and writes this host's records.
#[derive(Clone)]
pub struct WorkloadStore {
    client: Client,
    keys: Keys,
    prefix: String,
    host: HostName,
    /// Set by `restore`, which is given the endpoints actually found on the host: until then
    /// `sync` only writes, since deleting a record would lose labels kept nowhere else.
    restored: Arc<AtomicBool>,
}

impl WorkloadStore {
    /// The records of `host` under `<root>/endpoints/`, beside IPAM's keys (`/fabric/v1/`).
    pub fn new(client: Client, keys: &Keys, host: HostName) -> WorkloadStore {
        WorkloadStore {
            client,
            prefix: format!("{}endpoints/", keys.root()),
            keys: keys.clone(),
            host,
            restored: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The prefix every host's records live under.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn own_prefix(&self) -> String {
        format!("{}{}/", self.prefix, self.host)
    }

    /// Writes (or rewrites) one record.
    pub async fn put(&self, record: &WorkloadRecord) -> Result<(), String> {
        let key = format!("{}{}", self.own_prefix(), record.name());
        let value = serde_json::to_vec(record).map_err(|e| e.to_string())?;
        let mut client = self.client.clone();
        timed(client.put(key, value, None)).await.map(drop)
    }

    /// Deletes one record (absent is fine).
    pub async fn delete(&self, container_id: &str, ifname: &str) -> Result<(), String> {
        let key = format!("{}{container_id}:{ifname}", self.own_prefix());
        let mut client = self.client.clone();
        timed(client.delete(key, None)).await.map(drop)
    }

    /// Every key under this host's prefix, in pages (one etcd reply holds at most 4 MiB).
    async fn list_own(&self) -> Result<Vec<etcd_client::KeyValue>, String> {
        let prefix = self.own_prefix();
        timed(ipam::store::list_prefix(&self.client, &prefix))
            .await
            .map(|l| l.kvs)
    }

    /// This host's records by name (ones that do not decode are left out, with a log line).
    pub async fn own(&self) -> Result<BTreeMap<String, WorkloadRecord>, String> {
        let listed = self.list_own().await?;
        let mut view = Workloads::new();
        for kv in &listed {
            let Some(key) = std::str::from_utf8(kv.key())
                .ok()
                .and_then(|k| k.strip_prefix(self.prefix.as_str()))
            else {
                continue;
            };
            fold(&mut view, key, Some(kv.value()));
        }
        Ok(view.remove(self.host.as_str()).unwrap_or_default())
    }

    /// After a restart: gives the endpoints found in the kernel their labels back from their
    /// records, then syncs the records (those of containers gone while we were down go).
    /// `attached` must be every endpoint on the host: from here on, `sync` deletes records of
    /// endpoints it does not hold.
    pub async fn restore(
        &self,
        attached: &mut BTreeMap<(String, String), Attached>,
    ) -> Result<(), String> {
        let records = self.own().await?;
        for ((id, ifname), a) in attached.iter_mut() {
            if let Some(r) = records.get(&format!("{id}:{ifname}")) {
                a.labels = r.labels.clone();
            }
        }
        self.restored.store(true, Ordering::SeqCst);
        self.sync(attached).await
    }

    /// Makes this host's records say what `attached` says: writes missing and different ones,
    /// deletes the rest (containers gone while we were down, garbage, records edited by hand)
    /// once `restore` has run; before, the rest stays.
    pub async fn sync(
        &self,
        attached: &BTreeMap<(String, String), Attached>,
    ) -> Result<(), String> {
        let prefix = self.own_prefix();
        let listed = self.list_own().await?;
        let mut stored: BTreeMap<String, Option<WorkloadRecord>> = BTreeMap::new();
        for kv in &listed {
            let Some(name) = std::str::from_utf8(kv.key())
                .ok()
                .and_then(|k| k.strip_prefix(prefix.as_str()))
            else {
                continue;
            };
            stored.insert(name.to_string(), decode(name, kv.value()).ok());
        }
        for ((id, ifname), a) in attached {
            let want = WorkloadRecord::of(id, ifname, a);
            match stored.remove(&want.name()) {
                Some(Some(have)) if have == want => {}
                _ => self.put(&want).await?,
            }
        }
        if !self.restored.load(Ordering::SeqCst) {
            return Ok(());
        }
        for name in stored.keys() {
            tracing::info!(endpoint = %name, "deleting an endpoint record with no endpoint");
            let mut client = self.client.clone();
            timed(client.delete(format!("{prefix}{name}"), None)).await?;
        }
        Ok(())
    }
}

impl WorkloadStore {
    /// Deletes every record of `host` in one transaction guarded on the host having no node
    /// record and no block affinity in etcd, whatever our views say. Returns whether it did.
    pub async fn forget(&self, host: &str) -> Result<bool, String> {
        let name = HostName::new(host).map_err(|e| e.to_string())?;
        let node = self.keys.node(&name);
        let affinities = self.keys.affinities_of(&name);
        let records = format!("{}{host}/", self.prefix);
        // A range compare on create revision 0 holds only when no key in the range exists.
        let txn = Txn::new()
            .when([
                Compare::create_revision(node, CompareOp::Equal, 0),
                Compare::create_revision(affinities, CompareOp::Equal, 0).with_prefix(),
            ])
            .and_then([TxnOp::delete(
                records,
                Some(DeleteOptions::new().with_prefix()),
            )]);
        let mut client = self.client.clone();
        timed(client.txn(txn)).await.map(|r| r.succeeded())
    }
}

async fn timed<T>(
    call: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "etcd did not answer in {}s",
            REQUEST_TIMEOUT.as_secs()
        )),
    }
}

impl Daemon {
    /// Recomputes the remote endpoints from the records, the registry and the block affinities
    /// in `st`; re-applies the firewall when they changed.
    pub fn refresh_remote(&self, st: &mut State) {
        let remote = remote_endpoints(
            &st.workloads,
            &st.registry,
            &st.affinities,
            self.identity.host.as_str(),
        );
        if remote != st.remote {
            tracing::info!(endpoints = remote.len(), "remote endpoints changed");
            st.remote = remote;
            self.apply_firewall(st);
        }
    }

    /// Writes one endpoint's record; a failure is logged and left to the next sync.
    pub async fn publish(&self, record: &WorkloadRecord) {
        if let Err(e) = self.workloads.put(record).await {
            tracing::warn!(endpoint = %record.name(), "writing the endpoint record: {e}; retried on the next sync");
        }
    }

    /// Every `period`: makes this host's records match its endpoints (repairs writes lost while
    /// etcd was away), and deletes the records of hosts whose records have not counted for
    /// `dead_host_delay` (IPAM's: by then it has reclaimed their addresses). Runs as a task.
    pub async fn maintain_workloads(self: Arc<Self>, period: Duration, dead_host_delay: Duration) {
        let mut tick = tokio::time::interval(period);
        let mut uncounted = Uncounted::default();
        tick.tick().await;
        loop {
            tick.tick().await;
            let _serial = self.endpoint_ops.lock().await;
            let (attached, due) = {
                let st = self.state.lock().await;
                let due = uncounted.due(
                    &st.workloads,
                    &st.registry,
                    &st.affinities,
                    self.identity.host.as_str(),
                    Instant::now(),
                    dead_host_delay,
                );
                (st.attached.clone(), due)
            };
            if let Err(e) = self.workloads.sync(&attached).await {
                tracing::warn!("syncing endpoint records: {e}");
            }
            for host in due {
                match self.workloads.forget(&host).await {
                    Ok(true) => {
                        tracing::info!(%host, "deleted the endpoint records of a host gone for good")
                    }
                    Ok(false) => {
                        tracing::debug!(%host, "host's endpoint records still count in etcd; kept")
                    }
                    Err(e) => tracing::warn!(%host, "deleting a gone host's endpoint records: {e}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgpd_api::{NodeRecord, RECORD_VERSION, Role};

    fn record(id: &str, ip: &str, labels: &[(&str, &str)]) -> WorkloadRecord {
        WorkloadRecord {
            version: WORKLOAD_RECORD_VERSION,
            container_id: id.into(),
            ifname: "eth0".into(),
            host_ifname: format!("bgpd{id}"),
            ips: vec![ip.parse().unwrap()],
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn json(r: &WorkloadRecord) -> Vec<u8> {
        serde_json::to_vec(r).unwrap()
    }

    #[test]
    fn garbage_is_skipped_and_good_records_kept() {
        let mut view = Workloads::new();
        let db = record("db1", "10.244.0.5", &[("role", "db")]);
        fold(&mut view, "host-a/db1:eth0", Some(&json(&db)));
        let garbage: [(&str, &[u8]); 9] = [
            ("host-a/x:eth0", b"\xff\x00garbage"),
            ("host-a/x:eth0", b"{}"),
            ("host-a/x:eth0", br#"{"version":1,"container_id":"x","ifname":"eth0","host_ifname":"h","ips":["10.0.0.300"]}"#),
            ("host-a/x:eth0", br#"{"version":2,"container_id":"x","ifname":"eth0","host_ifname":"h","ips":[]}"#),
            ("host-a/x:eth0", br#"{"version":1,"container_id":"x","ifname":"eth0","host_ifname":"h","ips":[],"labels":{"ro le":"x"}}"#),
            ("host-a/y:eth0", &json(&record("x", "10.0.0.1", &[]))),
            ("host-a", &json(&db)),
            ("/db1:eth0", &json(&db)),
            ("host-a/db1:eth0/more", &json(&db)),
        ];
        for (key, value) in garbage {
            fold(&mut view, key, Some(value));
        }
        assert_eq!(view.len(), 1);
        assert_eq!(view["host-a"].len(), 1);
        assert_eq!(view["host-a"]["db1:eth0"], db);
        // A record overwritten with garbage is gone, not kept stale.
        fold(&mut view, "host-a/db1:eth0", Some(b"null"));
        assert!(view.is_empty());
        fold(&mut view, "host-a/db1:eth0", Some(&json(&db)));
        fold(&mut view, "host-a/db1:eth0", None);
        assert!(view.is_empty());
    }

    #[test]
    fn remote_endpoints_are_other_hosts_registered_or_holding_blocks() {
        let mut view = Workloads::new();
        fold(
            &mut view,
            "me/a:eth0",
            Some(&json(&record("a", "10.244.0.1", &[]))),
        );
        fold(
            &mut view,
            "b/b:eth0",
            Some(&json(&record("b", "10.244.1.1", &[("role", "web")]))),
        );
        fold(
            &mut view,
            "gone/c:eth0",
            Some(&json(&record("c", "10.244.2.1", &[]))),
        );
        fold(
            &mut view,
            "stopped/d:eth0",
            Some(&json(&record("d", "10.244.3.1", &[("role", "db")]))),
        );
        let node = NodeRecord {
            version: RECORD_VERSION,
            labels: BTreeMap::new(),
            address: "10.99.0.11".parse().unwrap(),
            address_v6: None,
            asn: 64512,
            router_id: "10.99.0.11".parse().unwrap(),
            role: Role::Host,
            mesh: true,
            port: 179,
        };
        let registry: Registry = [("me".to_string(), node.clone()), ("b".to_string(), node)]
            .into_iter()
            .collect();
        // `stopped` lost its node record but still holds a block; `gone` holds none (IPAM
        // reclaimed it). Garbage affinity keys are skipped.
        let mut affinities = Affinities::new();
        for key in [
            "stopped/10.244.3.0-26",
            "me/10.244.0.0-26",
            "gone/not-a-block",
            "gone",
            "/10.244.2.0-26",
        ] {
            fold_affinity(&mut affinities, key, Some(b"{}"));
        }
        fold_affinity(&mut affinities, "gone/10.244.2.0-26", Some(b"{}"));
        fold_affinity(&mut affinities, "gone/10.244.2.0-26", None);
        assert_eq!(affinities.keys().collect::<Vec<_>>(), ["me", "stopped"]);
        let remote = remote_endpoints(&view, &registry, &affinities, "me");
        let labelled = |ip: &str, role: &str| RemoteEndpoint {
            ips: vec![ip.parse().unwrap()],
            labels: [("role".to_string(), role.to_string())]
                .into_iter()
                .collect(),
        };
        assert_eq!(
            remote,
            vec![labelled("10.244.1.1", "web"), labelled("10.244.3.1", "db")]
        );
        // Once IPAM reclaims the stopped host's block, its records stop counting.
        fold_affinity(&mut affinities, "stopped/10.244.3.0-26", None);
        assert_eq!(
            remote_endpoints(&view, &registry, &affinities, "me"),
            vec![labelled("10.244.1.1", "web")]
        );
    }

    #[test]
    fn hosts_whose_records_stop_counting_are_due_after_the_delay() {
        let mut view = Workloads::new();
        for (host, id) in [("me", "a"), ("b", "b"), ("stopped", "c"), ("gone", "d")] {
            fold(
                &mut view,
                &format!("{host}/{id}:eth0"),
                Some(&json(&record(id, "10.244.0.1", &[]))),
            );
        }
        let registry: Registry = Registry::new();
        let mut registered = registry.clone();
        let mut affinities = Affinities::new();
        fold_affinity(&mut affinities, "stopped/10.244.3.0-26", Some(b"{}"));
        fold_affinity(&mut affinities, "b/10.244.1.0-26", Some(b"{}"));
        let delay = Duration::from_secs(300);
        let t0 = Instant::now();
        let mut uncounted = Uncounted::default();
        // Never ourselves, never a host with an affinity; `gone` only once the delay has passed.
        assert!(
            uncounted
                .due(&view, &registry, &affinities, "me", t0, delay)
                .is_empty()
        );
        let later = t0 + delay;
        assert_eq!(
            uncounted.due(&view, &registry, &affinities, "me", later, delay),
            ["gone"]
        );
        // A host that counts again (it re-registered) starts over.
        let node: bgpd_api::NodeRecord = serde_json::from_value(serde_json::json!({
            "version": RECORD_VERSION, "labels": {}, "address": "10.99.0.12", "asn": 64512,
            "router_id": "10.99.0.12", "role": "host", "mesh": true, "port": 179
        }))
        .unwrap();
        registered.insert("gone".to_string(), node);
        assert!(
            uncounted
                .due(&view, &registered, &affinities, "me", later, delay)
                .is_empty()
        );
        let much_later = later + delay / 2;
        assert!(
            uncounted
                .due(&view, &registry, &affinities, "me", much_later, delay)
                .is_empty(),
            "the delay restarts when a host stops counting again"
        );
        // The stopped host's block reclaimed by IPAM: due a delay after that, not before.
        fold_affinity(&mut affinities, "stopped/10.244.3.0-26", None);
        let reclaimed = much_later + delay;
        let due = uncounted.due(&view, &registry, &affinities, "me", reclaimed, delay);
        assert_eq!(due, ["gone"]);
        let due = uncounted.due(
            &view,
            &registry,
            &affinities,
            "me",
            reclaimed + delay,
            delay,
        );
        assert_eq!(due, ["gone", "stopped"]);
    }
}

/// Against a real etcd: records written, read back for a restart, synced and followed.
#[cfg(test)]
mod etcd_tests {
    use super::*;
    use bgpd_kernel::Ifindex;
    use etcd_client::GetOptions;
    use ipam::AssignedIp;
    use testkit::etcd::Etcd;
    use tokio::sync::watch;

    fn attached(ip: &str, labels: &[(&str, &str)]) -> Attached {
        Attached {
            host_ifname: "bgpdc0ffee".into(),
            host_ifindex: Ifindex::new(7).unwrap(),
            mac: None,
            mtu: None,
            ips: vec![AssignedIp {
                ip: ip.parse().unwrap(),
                block: "10.244.0.0/26".parse().unwrap(),
                borrowed: false,
            }],
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    async fn raw(client: &Client, key: &str) -> Option<Vec<u8>> {
        let mut client = client.clone();
        let got = client.get(key, None).await.unwrap();
        got.kvs().first().map(|kv| kv.value().to_vec())
    }

    #[tokio::test]
    async fn records_are_written_restored_synced_and_followed() {
        let etcd = Etcd::single().unwrap();
        let client = Client::connect(etcd.endpoints(), None).await.unwrap();
        let host = HostName::new("host-a").unwrap();
        let store = WorkloadStore::new(client.clone(), &Keys::new("/fabric/v1"), host);
        let key = "/fabric/v1/endpoints/host-a/c0ffee:eth0";

        // Attach: the record is the endpoint's JSON under the documented key.
        let mut endpoints = BTreeMap::new();
        endpoints.insert(
            ("c0ffee".to_string(), "eth0".to_string()),
            attached("10.244.0.5", &[("role", "db")]),
        );
        let a = &endpoints[&("c0ffee".to_string(), "eth0".to_string())];
        store
            .put(&WorkloadRecord::of("c0ffee", "eth0", a))
            .await
            .unwrap();
        let value: serde_json::Value =
            serde_json::from_slice(&raw(&client, key).await.unwrap()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"version": 1, "container_id": "c0ffee", "ifname": "eth0",
                "host_ifname": "bgpdc0ffee", "ips": ["10.244.0.5"], "labels": {"role": "db"}})
        );

        // Another host's records and garbage are seen by the follower, garbage skipped.
        let (tx, mut rx) = watch::channel(Workloads::new());
        let follower = tokio::spawn(crate::prefix_watch::follow(
            client.clone(),
            store.prefix().to_string(),
            tx,
            Arc::new(crate::health::EtcdHealth::default()),
            "endpoint records",
            fold,
        ));
        let mut c = client.clone();
        c.put(
            "/fabric/v1/endpoints/host-b/web:eth0",
            serde_json::to_vec(&WorkloadRecord::of(
                "web",
                "eth0",
                &attached("10.244.1.5", &[("role", "web")]),
            ))
            .unwrap(),
            None,
        )
        .await
        .unwrap();
        c.put("/fabric/v1/endpoints/host-b/bad:eth0", "{not json", None)
            .await
            .unwrap();
        let seen = tokio::time::timeout(
            Duration::from_secs(10),
            rx.wait_for(|v| {
                v.get("host-b").is_some_and(|r| r.contains_key("web:eth0"))
                    && v.contains_key("host-a")
            }),
        )
        .await
        .expect("the follower saw both hosts")
        .unwrap()
        .clone();
        assert_eq!(seen["host-b"].len(), 1, "{seen:?}");
        assert_eq!(seen["host-a"]["c0ffee:eth0"].labels["role"], "db");

        // A restart: the kernel gives back the endpoint without labels; the record has them.
        // A record of a container gone meanwhile, and garbage under our prefix, are deleted.
        c.put(
            "/fabric/v1/endpoints/host-a/gone:eth0",
            serde_json::to_vec(&WorkloadRecord::of(
                "gone",
                "eth0",
                &attached("10.244.0.6", &[]),
            ))
            .unwrap(),
            None,
        )
        .await
        .unwrap();
        c.put("/fabric/v1/endpoints/host-a/junk", "\u{0}", None)
            .await
            .unwrap();
        let mut found = BTreeMap::new();
        found.insert(
            ("c0ffee".to_string(), "eth0".to_string()),
            attached("10.244.0.5", &[]),
        );
        store.restore(&mut found).await.unwrap();
        assert_eq!(found, endpoints, "labels came back from etcd");
        assert!(
            raw(&client, "/fabric/v1/endpoints/host-a/gone:eth0")
                .await
                .is_none()
        );
        assert!(
            raw(&client, "/fabric/v1/endpoints/host-a/junk")
                .await
                .is_none()
        );
        assert!(raw(&client, key).await.is_some());
        assert!(
            raw(&client, "/fabric/v1/endpoints/host-b/web:eth0")
                .await
                .is_some(),
            "other hosts' records are not ours to sync"
        );

        // Detach: the record goes, and the follower sees it go.
        store.delete("c0ffee", "eth0").await.unwrap();
        assert!(raw(&client, key).await.is_none());
        tokio::time::timeout(
            Duration::from_secs(10),
            rx.wait_for(|v| !v.contains_key("host-a")),
        )
        .await
        .expect("the follower saw the delete")
        .unwrap();
        follower.abort();
    }

    #[tokio::test]
    async fn sync_deletes_nothing_before_a_restore() {
        let etcd = Etcd::single().unwrap();
        let client = Client::connect(etcd.endpoints(), None).await.unwrap();
        let store = WorkloadStore::new(
            client.clone(),
            &Keys::new("/fabric/v1"),
            HostName::new("host-a").unwrap(),
        );
        let key = "/fabric/v1/endpoints/host-a/c0ffee:eth0";
        store
            .put(&WorkloadRecord::of(
                "c0ffee",
                "eth0",
                &attached("10.244.0.5", &[("role", "db")]),
            ))
            .await
            .unwrap();
        // A sync before the host's endpoints are known (a restore that has not succeeded)
        // keeps the record and its labels.
        store.sync(&BTreeMap::new()).await.unwrap();
        assert!(raw(&client, key).await.is_some(), "labels kept");
        // A restore that found no endpoint on the host is authoritative: the record goes.
        store.restore(&mut BTreeMap::new()).await.unwrap();
        assert!(raw(&client, key).await.is_none());
    }

    #[tokio::test]
    async fn forget_deletes_records_only_of_hosts_without_node_or_affinity() {
        let etcd = Etcd::single().unwrap();
        let client = Client::connect(etcd.endpoints(), None).await.unwrap();
        let keys = Keys::new("/fabric/v1");
        let store = WorkloadStore::new(client.clone(), &keys, HostName::new("me").unwrap());
        let mut c = client.clone();
        for host in ["registered", "holding", "gone", "gonealso"] {
            for id in ["x", "y"] {
                let record = WorkloadRecord::of(id, "eth0", &attached("10.244.0.1", &[]));
                c.put(
                    format!("/fabric/v1/endpoints/{host}/{id}:eth0"),
                    serde_json::to_vec(&record).unwrap(),
                    None,
                )
                .await
                .unwrap();
            }
        }
        let host = |h: &str| HostName::new(h).unwrap();
        c.put(keys.node(&host("registered")), "{}", None)
            .await
            .unwrap();
        c.put(
            format!("{}10.244.3.0-26", keys.affinities_of(&host("holding"))),
            "{}",
            None,
        )
        .await
        .unwrap();
        // `gonealso` shares a prefix with `gone`: its records must survive `gone`'s delete,
        // and its affinity must not shield `gone`.
        c.put(
            format!("{}10.244.4.0-26", keys.affinities_of(&host("gonealso"))),
            "{}",
            None,
        )
        .await
        .unwrap();
        let count = |h: &'static str| {
            let client = client.clone();
            async move {
                let mut client = client;
                client
                    .get(
                        format!("/fabric/v1/endpoints/{h}/"),
                        Some(GetOptions::new().with_prefix().with_count_only()),
                    )
                    .await
                    .unwrap()
                    .count()
            }
        };
        assert!(!store.forget("registered").await.unwrap());
        assert!(!store.forget("holding").await.unwrap());
        assert!(store.forget("gone").await.unwrap());
        assert!(!store.forget("gonealso").await.unwrap());
        assert_eq!(count("registered").await, 2);
        assert_eq!(count("holding").await, 2);
        assert_eq!(count("gone").await, 0);
        assert_eq!(count("gonealso").await, 2);
        assert!(store.forget("not a host name").await.is_err());
    }
}
