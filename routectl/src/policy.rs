//! `routectl policy show|dry-run|apply|counters`: the policy file compiled by bgpd-policy with
//! this host's endpoints (from bgpd) and the pools (from etcd), and nft for the kernel side.

use std::path::PathBuf;

use bgpd_policy::{
    Counter, EndpointPlan, Inputs, Nft, PolicyFile, Pool, Ruleset, WorkloadEndpoint, compile, plan,
};
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
        PolicyCommand::Show(source) => {
            let inputs = gather(settings, &source, Strictness::BestEffort).await?;
            let plans = plan(&inputs.borrow()).map_err(policy_failure)?;
            emit(output, &plans, |p| plans_table(p))
        }
        PolicyCommand::DryRun(source) => {
            let inputs = gather(settings, &source, Strictness::BestEffort).await?;
            let ruleset = compile(&inputs.borrow()).map_err(policy_failure)?;
            emit(output, &RulesetView::of(&ruleset), |r| r.script.clone())
        }
        PolicyCommand::Apply { source, netns } => {
            apply(settings, &source, nft(netns.as_deref()), output).await
        }
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
    let path: PathBuf = source
        .file
        .clone()
        .or_else(|| settings.policy_file.clone())
        .ok_or_else(|| {
            Failure::Usage(
                "no policy file: give --file or set policy.file in bgpd's config".to_string(),
            )
        })?;
    let file = PolicyFile::load(&path).map_err(policy_failure)?;
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

/// This host's containers as the compiler sees them. bgpd keeps no endpoint labels yet, so
/// policies select them by interface-independent rules only (see the README's gaps).
async fn workloads(settings: &Settings) -> Result<Vec<WorkloadEndpoint>, Failure> {
    let endpoints = settings.daemon().endpoints().await?;
    endpoints
        .into_iter()
        .map(|e| {
            Ok(WorkloadEndpoint {
                interface: e.host_ifname.as_str().try_into().map_err(Failure::Policy)?,
                ips: e.ips.iter().map(|i| i.address.ip()).collect(),
                labels: Default::default(),
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
