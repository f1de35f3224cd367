//! Commands answered from etcd, cluster-wide, without the local daemon: `nodes`, `node delete`
//! and `ipam check|release|pools`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use ipam::store::{Guard, Outcome, Read, Store, StoreError, Txn, Write};
use ipam::{BlockInfo, HandleId, HostName, Pool, PoolName, Selector};
use serde::Serialize;

use crate::cli::{Output, PoolAction};
use crate::failure::Failure;
use crate::render::{self, emit, list, or_dash, table};
use crate::settings::Settings;

/// A node as `routectl nodes` shows it: the record its daemon keeps in etcd and its blocks.
#[derive(Debug, Serialize)]
pub struct NodeView {
    /// The node's name (its key under `nodes/`).
    pub name: String,
    /// Whether its bgpd runs and reaches etcd (its liveness key is there). A host that is not
    /// alive is still a member: peered with, its addresses kept, until `node delete`.
    pub alive: bool,
    /// The record as stored (address, asn, router_id, role, labels…).
    pub record: serde_json::Value,
    /// Blocks affine to it.
    pub blocks: Vec<BlockInfo>,
}

/// A read that did not reach etcd, as the exit code tells it.
fn store_failure(settings: &Settings, e: StoreError) -> Failure {
    match e {
        StoreError::Tls(e) => Failure::Ipam(e.into()),
        e => Failure::EtcdUnreachable {
            endpoints: settings.etcd_endpoints.join(","),
            reason: e.to_string(),
        },
    }
}

/// `routectl nodes`.
pub async fn nodes(settings: &Settings, output: Output) -> Result<(), Failure> {
    let ipam = settings.ipam().await?;
    let prefix = ipam.keys().nodes();
    let alive_prefix = bgpd_api::alive_prefix(&ipam.keys().root());
    let (mut read, _) = ipam
        .store()
        .read(vec![
            Read::Prefix(prefix.clone()),
            Read::PrefixKeys(alive_prefix.clone()),
        ])
        .await
        .map_err(|e| store_failure(settings, e))?;
    let alive: BTreeSet<String> = read
        .pop()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| Some(e.key.strip_prefix(&alive_prefix)?.to_string()))
        .collect();
    let mut views = Vec::new();
    for e in read.into_iter().flatten() {
        let name = e.key.strip_prefix(&prefix).unwrap_or(&e.key).to_string();
        // A record that is not JSON is shown as such rather than hiding the node.
        let record = serde_json::from_slice(&e.value)
            .unwrap_or_else(|err| serde_json::json!({ "unreadable": err.to_string() }));
        let blocks = match HostName::new(name.as_str()) {
            Ok(host) => ipam
                .blocks_of(&host)
                .await
                .map_err(|e| settings.etcd_failure(e))?,
            Err(_) => Vec::new(),
        };
        views.push(NodeView {
            alive: alive.contains(&name),
            name,
            record,
            blocks,
        });
    }
    emit(output, &views, |v| nodes_table(v))
}

/// What `routectl node delete` did.
#[derive(Debug, Serialize)]
pub struct NodeDeleted {
    /// The node deleted.
    pub deleted: String,
    /// Whether its bgpd looked alive (deleted with --force).
    pub was_alive: bool,
}

/// `routectl node delete <name> [--force]`: one transaction deleting the node record and its
/// liveness key, guarded on both being as read, so a bgpd that starts meanwhile is not
/// deleted under it.
pub async fn delete_node(
    settings: &Settings,
    name: &str,
    force: bool,
    output: Output,
) -> Result<(), Failure> {
    let ipam = settings.ipam().await?;
    let host = HostName::new(name).map_err(|e| settings.etcd_failure(e))?;
    let record_key = ipam.keys().node(&host);
    let alive_key = bgpd_api::alive_key(&ipam.keys().root(), host.as_str());
    let (read, _) = ipam
        .store()
        .read(vec![
            Read::Key(record_key.clone()),
            Read::Key(alive_key.clone()),
        ])
        .await
        .map_err(|e| store_failure(settings, e))?;
    let found = |i: usize| read.get(i).and_then(|entries| entries.first());
    let Some(record) = found(0) else {
        return Err(Failure::Usage(format!("no node {name} in etcd")));
    };
    let alive = found(1);
    if alive.is_some() && !force {
        return Err(Failure::Usage(format!(
            "node {name} is alive: its bgpd runs and reaches etcd (stop it first; --force deletes anyway, but a running bgpd writes its record back)"
        )));
    }
    let txn = Txn {
        guards: vec![
            Guard::Revision(record_key.clone(), record.mod_revision),
            Guard::Revision(alive_key.clone(), alive.map_or(0, |a| a.mod_revision)),
        ],
        writes: vec![Write::Delete(record_key), Write::Delete(alive_key)],
        on_reject: Vec::new(),
    };
    match ipam.store().txn(txn).await {
        Ok(Outcome::Applied(_)) => {}
        Ok(Outcome::Rejected(_)) => {
            return Err(Failure::Usage(format!(
                "node {name} changed while being deleted (its bgpd started?); nothing deleted"
            )));
        }
        Err(e) => return Err(store_failure(settings, e)),
    }
    let done = NodeDeleted {
        deleted: name.to_string(),
        was_alive: alive.is_some(),
    };
    emit(output, &done, |d| {
        format!(
            "node {} deleted: its peers drop their sessions to it now, and IPAM reclaims its addresses and blocks after the dead-host delay\n",
            d.deleted
        )
    })
}

fn nodes_table(nodes: &[NodeView]) -> String {
    if nodes.is_empty() {
        return "no nodes registered\n".to_string();
    }
    let mut t = table(&[
        "name",
        "alive",
        "address",
        "asn",
        "router id",
        "role",
        "blocks",
        "labels",
    ]);
    for n in nodes {
        let field = |k: &str| match n.record.get(k) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => "-".to_string(),
            Some(v) => v.to_string(),
        };
        let labels: Vec<String> = match n.record.get("labels") {
            Some(serde_json::Value::Object(m)) => m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect(),
            _ => Vec::new(),
        };
        let blocks: Vec<String> = n
            .blocks
            .iter()
            .map(|b| format!("{} ({}/{})", b.cidr, b.used, b.size))
            .collect();
        t.add_row([
            n.name.clone(),
            yes_no(n.alive),
            field("address"),
            field("asn"),
            field("router_id"),
            field("role"),
            list(&blocks, ", "),
            list(&labels, ","),
        ]);
    }
    render::text(&t)
}

/// `routectl ipam check [--repair]`; problems left make the exit code 5.
pub async fn check(settings: &Settings, repair: bool, output: Output) -> Result<(), Failure> {
    let ipam = settings.ipam().await?;
    let fail = |e| settings.etcd_failure(e);
    let left = if repair {
        let repaired = ipam.repair().await.map_err(fail)?;
        let left = repaired.after.findings.len();
        emit(output, &repaired, |r| {
            let mut out = String::new();
            for f in &r.fixed {
                let _ = writeln!(out, "fixed: {f}");
            }
            out.push_str(&report_text(&r.after));
            out
        })?;
        left
    } else {
        let report = ipam.check().await.map_err(fail)?;
        emit(output, &report, report_text)?;
        report.findings.len()
    };
    match left {
        0 => Ok(()),
        n => Err(Failure::Findings(n)),
    }
}

fn report_text(r: &ipam::Report) -> String {
    let mut out = format!(
        "{} blocks, {} handles, {} addresses assigned\n",
        r.blocks, r.handles, r.assigned
    );
    if r.findings.is_empty() {
        out.push_str("no problems found\n");
    }
    for f in &r.findings {
        let how = if f.repairable() {
            "repairable"
        } else {
            "not repairable here"
        };
        let _ = writeln!(out, "problem ({how}): {f}");
    }
    out
}

/// What `ipam release` released.
#[derive(Debug, Serialize)]
pub struct Released {
    /// The addresses given back.
    pub released: Vec<IpAddr>,
}

/// `routectl ipam release <ip|handle>`.
pub async fn release(settings: &Settings, target: &str, output: Output) -> Result<(), Failure> {
    let ipam = settings.ipam().await?;
    let fail = |e| settings.etcd_failure(e);
    let released = match target.parse::<IpAddr>() {
        Ok(ip) => {
            ipam.release_ip(ip).await.map_err(fail)?;
            vec![ip]
        }
        Err(_) => {
            let handle = HandleId::new(target).map_err(fail)?;
            ipam.release(&handle).await.map_err(fail)?
        }
    };
    emit(output, &Released { released }, |r| {
        if r.released.is_empty() {
            format!("{target}: nothing was assigned\n")
        } else {
            format!("released {}\n", list(&r.released, ", "))
        }
    })
}

/// `routectl ipam pools [add|delete]`.
pub async fn pools(
    settings: &Settings,
    action: Option<PoolAction>,
    output: Output,
) -> Result<(), Failure> {
    let ipam = settings.ipam().await?;
    let fail = |e| settings.etcd_failure(e);
    match action {
        None => {}
        Some(PoolAction::Add {
            name,
            cidr,
            block_size,
            nat_outgoing,
            disabled,
            node_selector,
        }) => {
            let mut pool = Pool::new(PoolName::new(name).map_err(fail)?, cidr);
            if let Some(len) = block_size {
                pool.block_prefix_len = len;
            }
            pool.nat_outgoing = nat_outgoing;
            pool.disabled = disabled;
            if let Some(s) = node_selector {
                pool.node_selector = Selector::parse(&s)
                    .map_err(|e| Failure::Ipam(ipam::IpamError::Invalid(e.to_string())))?;
            }
            ipam.add_pool(&pool).await.map_err(fail)?;
        }
        Some(PoolAction::Delete { name, force }) => {
            let name = PoolName::new(name).map_err(fail)?;
            let gone = ipam.delete_pool(&name, force).await.map_err(fail)?;
            if output == Output::Table {
                let line = format!(
                    "deleted pool {name}: {} blocks, {} addresses released\n",
                    gone.blocks, gone.released_ips
                );
                render::write_stdout(line.as_bytes())?;
            }
        }
    }
    let pools = ipam.list_pools().await.map_err(fail)?;
    emit(output, &pools, |p| pools_table(p))
}

fn pools_table(pools: &[Pool]) -> String {
    if pools.is_empty() {
        return "no pools\n".to_string();
    }
    let mut t = table(&[
        "name",
        "cidr",
        "block size",
        "nat outgoing",
        "disabled",
        "node selector",
    ]);
    for p in pools {
        t.add_row([
            p.name.to_string(),
            p.cidr.to_string(),
            format!("/{}", p.block_prefix_len),
            yes_no(p.nat_outgoing),
            yes_no(p.disabled),
            or_dash(Some(&p.node_selector)),
        ]);
    }
    render::text(&t)
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}
