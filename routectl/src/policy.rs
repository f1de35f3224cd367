//! `routectl policy show|dry-run|apply|delete|counters`: the policy file and the cluster
//! policies compiled by bgpd-policy with this host's endpoints (from bgpd) and the pools (from
//! etcd), nft for the kernel side, and the cluster policies' keys in etcd.

use std::path::{Path, PathBuf};

use bgpd_policy::cluster::{self, ClusterFile, Stored};
use bgpd_policy::model::{Name, Policy};
use bgpd_policy::{
    ClusterPolicies, Counter, Effective, EndpointPlan, Inputs, Nft, PolicyFile, Pool, Ruleset,
    WorkloadEndpoint, check_pools, compile, plan,
};
use ipam::store::{Guard, Outcome, Read, Store, StoreError, Txn, Write};
use serde::Serialize;

use crate::cli::{Output, PolicyCommand, PolicySource};
use crate::failure::Failure;
use crate::render::{self, emit, list, table};
use crate::settings::Settings;

/// `routectl policy …`.
pub async fn run(
    settings: &Settings,
    command: PolicyCommand,
    output: Output,
) -> Result<(), Failure> {
    match command {
        PolicyCommand::Show { cluster: true, .. } => {
            let views = cluster_views(settings).await?;
            emit(output, &views, |v| cluster_table(v))
        }
        PolicyCommand::Show { source, .. } => {
            let inputs = gather(settings, &source, Strictness::BestEffort).await?;
            let plans = plan(&inputs.borrow()).map_err(policy_failure)?;
            emit(output, &plans, |p| plans_table(p))
        }
        PolicyCommand::DryRun(source) => {
            let inputs = gather(settings, &source, Strictness::BestEffort).await?;
            let ruleset = compile(&inputs.borrow()).map_err(policy_failure)?;
            emit(output, &RulesetView::of(&ruleset), |r| r.script.clone())
        }
        PolicyCommand::Apply {
            cluster: Some(path),
            ..
        } => apply_cluster(settings, &path, output).await,
        PolicyCommand::Apply { source, netns, .. } => {
            apply(settings, &source, nft(netns.as_deref()), output).await
        }
        PolicyCommand::Delete { cluster: name } => delete_cluster(settings, &name, output).await,
        PolicyCommand::Counters { table: name, netns } => {
            let name = bgpd_policy::model::Name::try_from(name).map_err(Failure::Usage)?;
            let nft = nft(netns.as_deref());
            let counters = tokio::task::spawn_blocking(move || nft.counters(&name))
                .await
                .map_err(policy_failure)?
                .map_err(policy_failure)?;
            emit(output, &counters, |c| counters_table(c))
        }
    }
}

/// `policy apply`. Without `--file`, the policy is bgpd's own (`policy.file`): it is compiled
/// and checked here, so errors show at once, then bgpd reloads and applies it (bgpd re-applies
/// on every endpoint change, so a table written behind its back would not last). With
/// `--file`, the table is applied directly, for hosts where bgpd manages no policy.
async fn apply(
    settings: &Settings,
    source: &PolicySource,
    nft: Nft,
    output: Output,
) -> Result<(), Failure> {
    let inputs = gather(settings, source, Strictness::Complete).await?;
    let ruleset = compile(&inputs.borrow()).map_err(policy_failure)?;
    let direct = source.file.is_some();
    let checked = tokio::task::spawn_blocking(move || {
        nft.check(&ruleset)?;
        if direct {
            nft.apply(&ruleset)?;
        }
        Ok::<_, bgpd_policy::NftError>(RulesetView::of(&ruleset))
    })
    .await
    .map_err(policy_failure)?
    .map_err(policy_failure)?;
    if direct {
        if let Some(managed) = &settings.policy_file {
            eprintln!(
                "note: bgpd manages policy from {}; it replaces this table on its next change",
                managed.display()
            );
        }
        return emit(output, &checked, |r| {
            format!(
                "applied table inet {} ({} lines)\n",
                r.table,
                r.script.lines().count()
            )
        });
    }
    let report = settings.daemon().reload().await?;
    emit(output, &report, |r| {
        let mut out = String::new();
        for line in &r.applied {
            out.push_str(&format!("applied: {line}\n"));
        }
        for line in &r.needs_restart {
            out.push_str(&format!("needs a restart: {line}\n"));
        }
        if out.is_empty() {
            out.push_str("bgpd reloaded: nothing changed\n");
        }
        out
    })
}

/// `nft` here, or in a named network namespace.
fn nft(netns: Option<&str>) -> Nft {
    netns.map_or_else(Nft::new, Nft::in_netns)
}

/// A compiled ruleset as printed: its table and the `nft -f` script.
#[derive(Debug, Serialize)]
struct RulesetView {
    table: String,
    script: String,
}

impl RulesetView {
    fn of(r: &Ruleset) -> RulesetView {
        RulesetView {
            table: r.table().to_string(),
            script: r.script().to_string(),
        }
    }
}

/// Whether every input must be there (apply) or what is reachable is enough (show, dry-run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strictness {
    Complete,
    BestEffort,
}

/// The compiler's inputs, owned.
struct Gathered {
    file: PolicyFile,
    workloads: Vec<WorkloadEndpoint>,
    pools: Vec<Pool>,
}

impl Gathered {
    fn borrow(&self) -> Inputs<'_> {
        Inputs {
            file: &self.file,
            workloads: &self.workloads,
            remote: &[],
            pools: &self.pools,
        }
    }
}

async fn gather(
    settings: &Settings,
    source: &PolicySource,
    strictness: Strictness,
) -> Result<Gathered, Failure> {
    let path: Option<PathBuf> = source.file.clone().or_else(|| settings.policy_file.clone());
    let file = match &path {
        Some(path) => PolicyFile::load(path).map_err(policy_failure)?,
        None => PolicyFile::default(),
    };
    let held = match cluster_policies(settings).await {
        Ok(held) => held,
        Err(e) if strictness == Strictness::BestEffort => {
            eprintln!("note: compiling without cluster policies: {e}");
            ClusterPolicies::default()
        }
        Err(e) => return Err(e),
    };
    if path.is_none() && held.is_empty() {
        return Err(Failure::Usage(
            "no policy file: give --file or set policy.file in bgpd's config (and no cluster \
             policies: `policy apply --cluster` writes them to etcd)"
                .to_string(),
        ));
    }
    for (key, e) in held.refused() {
        eprintln!("note: cluster policy {key}: value refused: {e}");
    }
    let effective = Effective::merge(&file, &held);
    for (name, why) in &effective.left_out {
        eprintln!("note: cluster policy {name} left out on this host: {why}");
    }
    let file = effective.file;
    let workloads = match workloads(settings).await {
        Ok(w) => w,
        Err(e) if strictness == Strictness::BestEffort => {
            eprintln!("note: compiling without this host's endpoints: {e}");
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    let pools = match pools(settings).await {
        Ok(p) => p,
        Err(e) if strictness == Strictness::BestEffort => {
            eprintln!("note: compiling without IP pools: {e}");
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    Ok(Gathered {
        file,
        workloads,
        pools,
    })
}

/// This host's containers as the compiler sees them, with their labels. (Containers on other
/// hosts are not gathered here: rule selectors match only local ones in routectl's compile.)
async fn workloads(settings: &Settings) -> Result<Vec<WorkloadEndpoint>, Failure> {
    let endpoints = settings.daemon().endpoints().await?;
    endpoints
        .into_iter()
        .map(|e| {
            Ok(WorkloadEndpoint {
                interface: e.host_ifname.as_str().try_into().map_err(Failure::Policy)?,
                ips: e.ips.iter().map(|i| i.address.ip()).collect(),
                labels: e.labels,
            })
        })
        .collect()
}

async fn pools(settings: &Settings) -> Result<Vec<Pool>, Failure> {
    let ipam = settings.ipam().await?;
    let pools = ipam
        .list_pools()
        .await
        .map_err(|e| settings.etcd_failure(e))?;
    pools
        .into_iter()
        .map(|p| {
            Ok(Pool {
                name: p.name.as_str().try_into().map_err(Failure::Policy)?,
                cidr: p.cidr,
                nat_outgoing: p.nat_outgoing,
            })
        })
        .collect()
}

/// Every stored cluster policy, each read as bgpd reads it.
async fn stored_policies(
    settings: &Settings,
) -> Result<Vec<(ipam::store::Entry, String)>, Failure> {
    let ipam = settings.ipam().await?;
    let prefix = cluster::prefix(&ipam.keys().root());
    // Paged: a listing of thousands of policies passes the 4 MiB of one reply.
    let (entries, _) = ipam
        .store()
        .list(&prefix)
        .await
        .map_err(|e| etcd_failure(settings, e))?;
    Ok(entries
        .into_iter()
        .filter_map(|e| {
            let name = e.key.strip_prefix(&prefix)?.to_string();
            Some((e, name))
        })
        .collect())
}

/// The cluster policies as a host holds them (good values; refused ones noted).
async fn cluster_policies(settings: &Settings) -> Result<ClusterPolicies, Failure> {
    let stored: Stored = stored_policies(settings)
        .await?
        .into_iter()
        .map(|(e, name)| {
            let value = cluster::parse_value(&name, &e.value);
            (name, value)
        })
        .collect();
    let mut held = ClusterPolicies::default();
    held.update(&stored);
    Ok(held)
}

/// A store failure: etcd refusing the request itself (too large, not permitted) is a failed
/// command that retrying cannot fix, not an unreachable etcd.
fn etcd_failure(settings: &Settings, e: StoreError) -> Failure {
    match e {
        StoreError::Refused(reason) => {
            Failure::Policy(format!("etcd refused the request: {reason}"))
        }
        other => Failure::EtcdUnreachable {
            endpoints: settings.etcd_endpoints.join(","),
            reason: other.to_string(),
        },
    }
}

/// The write of a cluster policy file failed. etcd takes at most `--max-txn-ops` operations
/// (128 by default) per part of a transaction, and the file is written in one, all or none.
/// That limit is etcd's setting and may be raised, so the refusal, not a count, decides.
fn cluster_write_failure(
    settings: &Settings,
    path: &Path,
    policies: usize,
    e: StoreError,
) -> Failure {
    match e {
        StoreError::Refused(reason) if reason.contains("too many operations") => {
            Failure::Policy(format!(
                "{}: {policies} policies are more than etcd writes in one transaction (its \
                 --max-txn-ops, 128 by default): a file is applied all or none, so split it into \
                 files of at most that many policies, or raise --max-txn-ops on every etcd member \
                 ({reason})",
                path.display()
            ))
        }
        other => etcd_failure(settings, other),
    }
}

/// One cluster policy as `policy show --cluster` prints it.
#[derive(Debug, Serialize)]
struct ClusterPolicyView {
    /// Its name (the key after `policies/`).
    name: String,
    /// The etcd key.
    key: String,
    /// The key's mod_revision.
    revision: i64,
    /// The policy, when its value reads.
    policy: Option<Policy>,
    /// Why bgpd refuses the value, when it does.
    error: Option<String>,
}

async fn cluster_views(settings: &Settings) -> Result<Vec<ClusterPolicyView>, Failure> {
    Ok(stored_policies(settings)
        .await?
        .into_iter()
        .map(|(e, name)| {
            let value = cluster::parse_value(&name, &e.value);
            ClusterPolicyView {
                key: e.key,
                revision: e.mod_revision,
                error: value.as_ref().err().map(ToString::to_string),
                policy: value.ok(),
                name,
            }
        })
        .collect())
}

fn cluster_table(views: &[ClusterPolicyView]) -> String {
    if views.is_empty() {
        return "no cluster policies\n".to_string();
    }
    let mut t = table(&[
        "name",
        "order",
        "selector",
        "types",
        "rules in/out",
        "state",
    ]);
    for v in views {
        let row = match &v.policy {
            Some(p) => [
                v.name.clone(),
                render::or_dash(p.order),
                p.selector.to_string(),
                list(&p.types.iter().map(|d| d.as_str()).collect::<Vec<_>>(), ","),
                format!("{}/{}", p.ingress.len(), p.egress.len()),
                "ok".to_string(),
            ],
            None => [
                v.name.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                format!("refused: {}", v.error.as_deref().unwrap_or("unreadable")),
            ],
        };
        t.add_row(row);
    }
    render::text(&t)
}

/// How many times a write that lost a race to another writer is tried again.
const WRITE_ATTEMPTS: usize = 5;

/// What `policy apply --cluster` / `policy delete --cluster` did to one key.
#[derive(Debug, Serialize)]
struct KeyWrite {
    /// The policy.
    name: String,
    /// Its key.
    key: String,
    /// created, updated, unchanged or deleted.
    action: &'static str,
}

/// `policy apply --cluster FILE`: checks the file as a policy file is checked (model errors
/// with file:line:column and key; the compiler's checks against the pools in etcd), then
/// writes every policy in one transaction guarded by each key's revision, so all or none land
/// and a concurrent writer is never overwritten unseen.
async fn apply_cluster(settings: &Settings, path: &Path, output: Output) -> Result<(), Failure> {
    let file = ClusterFile::load(path).map_err(policy_failure)?;
    if file.policies.is_empty() {
        return Err(Failure::Policy(format!(
            "{}: no [[policy]] in it: expected at least one",
            path.display()
        )));
    }
    let pools = pools(settings).await?;
    check_pools(&file.policies, &pools)
        .map_err(|e| Failure::Policy(format!("{}: {e}", path.display())))?;
    if let Some(local) = settings
        .policy_file
        .as_deref()
        .and_then(|p| PolicyFile::load(p).ok())
    {
        for p in &file.policies {
            if local.policies.iter().any(|l| l.name == p.name) {
                eprintln!(
                    "note: this host's policy file also has a policy {}: the file's wins here",
                    p.name
                );
            }
        }
    }
    let ipam = settings.ipam().await?;
    let root = ipam.keys().root();
    let keys: Vec<String> = file
        .policies
        .iter()
        .map(|p| cluster::key(&root, &p.name))
        .collect();
    let values: Vec<Vec<u8>> = file
        .policies
        .iter()
        .map(|p| cluster::value_of(p).map(String::into_bytes))
        .collect::<Result<_, _>>()
        .map_err(|e| Failure::Policy(format!("{}: {e}", path.display())))?;
    for _ in 0..WRITE_ATTEMPTS {
        let (current, _) = ipam
            .store()
            .read(keys.iter().cloned().map(Read::Key).collect())
            .await
            .map_err(|e| etcd_failure(settings, e))?;
        let mut report = Vec::new();
        let mut txn = Txn::default();
        for (((key, value), now), p) in keys.iter().zip(&values).zip(&current).zip(&file.policies) {
            let now = now.first();
            txn.guards.push(Guard::Revision(
                key.clone(),
                now.map_or(0, |e| e.mod_revision),
            ));
            txn.writes.push(Write::Put(key.clone(), value.clone()));
            report.push(KeyWrite {
                name: p.name.to_string(),
                key: key.clone(),
                action: match now {
                    None => "created",
                    Some(e) if &e.value == value => "unchanged",
                    Some(_) => "updated",
                },
            });
        }
        match ipam
            .store()
            .txn(txn)
            .await
            .map_err(|e| cluster_write_failure(settings, path, keys.len(), e))?
        {
            Outcome::Applied(_) => return emit(output, &report, |r| writes_text(r)),
            Outcome::Rejected(_) => continue,
        }
    }
    Err(Failure::Policy(format!(
        "other writers changed these keys {WRITE_ATTEMPTS} times while we wrote: try again"
    )))
}

/// `policy delete --cluster NAME`: deletes the key, guarded by the revision just read.
async fn delete_cluster(settings: &Settings, name: &str, output: Output) -> Result<(), Failure> {
    let name = Name::try_from(name).map_err(Failure::Usage)?;
    let ipam = settings.ipam().await?;
    let key = cluster::key(&ipam.keys().root(), &name);
    for _ in 0..WRITE_ATTEMPTS {
        let (current, _) = ipam
            .store()
            .read(vec![Read::Key(key.clone())])
            .await
            .map_err(|e| etcd_failure(settings, e))?;
        let Some(entry) = current.into_iter().flatten().next() else {
            return Err(Failure::Policy(format!(
                "no cluster policy {name} (no key {key})"
            )));
        };
        let txn = Txn {
            guards: vec![Guard::Revision(key.clone(), entry.mod_revision)],
            writes: vec![Write::Delete(key.clone())],
            on_reject: Vec::new(),
        };
        match ipam
            .store()
            .txn(txn)
            .await
            .map_err(|e| etcd_failure(settings, e))?
        {
            Outcome::Applied(_) => {
                let report = vec![KeyWrite {
                    name: name.to_string(),
                    key,
                    action: "deleted",
                }];
                return emit(output, &report, |r| writes_text(r));
            }
            Outcome::Rejected(_) => continue,
        }
    }
    Err(Failure::Policy(format!(
        "another writer changed {key} {WRITE_ATTEMPTS} times while we deleted it: try again"
    )))
}

fn writes_text(writes: &[KeyWrite]) -> String {
    writes
        .iter()
        .map(|w| format!("cluster policy {}: {} ({})\n", w.name, w.action, w.key))
        .collect()
}

fn policy_failure(e: impl std::fmt::Display) -> Failure {
    Failure::Policy(e.to_string())
}

fn plans_table(plans: &[EndpointPlan]) -> String {
    if plans.is_empty() {
        return "no policy selects any endpoint: all traffic is allowed\n".to_string();
    }
    let mut t = table(&["endpoint", "interface", "direction", "policies (in order)"]);
    for p in plans {
        t.add_row([
            p.endpoint.clone(),
            p.interface.to_string(),
            p.direction.as_str().to_string(),
            format!("{} → default deny", list(&p.policies, " → ")),
        ]);
    }
    render::text(&t)
}

fn counters_table(counters: &[Counter]) -> String {
    if counters.is_empty() {
        return "no counters\n".to_string();
    }
    let mut t = table(&["counter", "packets", "bytes"]);
    for c in counters {
        t.add_row([
            c.owner.to_string(),
            c.packets.to_string(),
            c.bytes.to_string(),
        ]);
    }
    render::text(&t)
}
