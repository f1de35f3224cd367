//! The host firewall: the policy file from `[policy]` and the cluster policies from etcd
//! (`bgpd-policy`), compiled with this host's endpoints and the pools, applied as one atomic
//! nftables transaction whenever any of them changes.

use std::path::{Path, PathBuf};

use bgpd_api::{PolicyStatus, RefusedPolicy};
use bgpd_policy::cluster::{Change, Stored};
use bgpd_policy::model::Name;
use bgpd_policy::{
    ClusterPolicies, CompileError, Effective, Inputs, Nft, PolicyFile, Pool, WorkloadEndpoint,
    compile,
};

use crate::daemon::State;

/// The policy file and where it came from.
struct LocalFile {
    path: PathBuf,
    policy: PolicyFile,
}

/// The host firewall's inputs and the table it last applied.
pub struct Firewall {
    file: Option<LocalFile>,
    cluster: ClusterPolicies,
    nft: Nft,
    /// Our table, once we applied it (so it can be removed when no policy is left).
    applied: Option<Name>,
    status: PolicyStatus,
}

impl Firewall {
    /// Reads and checks the policy file, if one is configured; touches nothing.
    pub fn load(path: Option<&Path>) -> Result<Firewall, bgpd_policy::ModelError> {
        let file = match path {
            Some(path) => Some(LocalFile {
                path: path.to_path_buf(),
                policy: PolicyFile::load(path)?,
            }),
            None => None,
        };
        Ok(Firewall {
            file,
            cluster: ClusterPolicies::default(),
            nft: Nft::new(),
            applied: None,
            status: PolicyStatus::default(),
        })
    }

    /// Reads the file again (reload); on error the old policy stays. `None` without a file.
    pub fn reload(&mut self) -> Option<Result<(), bgpd_policy::ModelError>> {
        let file = self.file.as_mut()?;
        Some(PolicyFile::load(&file.path).map(|policy| file.policy = policy))
    }

    /// Takes in the cluster policies stored in etcd now, logging each change; true when
    /// something changed (the caller re-applies). A refused value keeps its last good version.
    pub fn take_cluster(&mut self, stored: &Stored) -> bool {
        let changes = self.cluster.update(stored);
        for change in &changes {
            match change {
                Change::Accepted(name) => tracing::info!(policy = %name, "cluster policy accepted"),
                Change::Removed(key) => tracing::info!(policy = %key, "cluster policy deleted"),
                Change::Refused {
                    error, kept: true, ..
                } => {
                    tracing::error!("cluster policy refused, its last good version stays: {error}")
                }
                Change::Refused {
                    error, kept: false, ..
                } => tracing::error!("cluster policy refused, it has no good version: {error}"),
            }
        }
        !changes.is_empty()
    }

    /// What is in force, refused and failing now.
    pub fn status(&self) -> &PolicyStatus {
        &self.status
    }

    /// Compiles the file's and the cluster's policies for the endpoints and pools in `st`
    /// and applies them. With neither a file nor any cluster policy, there is nothing to
    /// enforce: a table we applied before is removed, else nothing is touched. On error the
    /// running table stays.
    pub fn apply(&mut self, st: &State) -> Result<(), String> {
        let result = self.compile_and_apply(st);
        self.status.last_error = result.as_ref().err().cloned();
        result
    }

    fn compile_and_apply(&mut self, st: &State) -> Result<(), String> {
        if self.file.is_none() && self.cluster.is_empty() {
            self.note_cluster(&[], Vec::new());
            return match self.applied.take() {
                Some(table) => self.nft.remove(&table).map_err(|e| e.to_string()),
                None => Ok(()),
            };
        }
        let workloads: Vec<WorkloadEndpoint> = st
            .attached
            .values()
            .filter_map(|a| {
                Some(WorkloadEndpoint {
                    interface: a.host_ifname.as_str().try_into().ok()?,
                    ips: a.ips.iter().map(|i| i.ip).collect(),
                    labels: a.labels.clone(),
                })
            })
            .collect();
        let pools: Vec<Pool> = st
            .pools
            .iter()
            .filter_map(|p| {
                Some(Pool {
                    name: p.name.as_str().try_into().ok()?,
                    cidr: p.cidr,
                    nat_outgoing: p.nat_outgoing,
                })
            })
            .collect();
        let no_file = PolicyFile::default();
        let file = self.file.as_ref().map_or(&no_file, |f| &f.policy);
        let mut effective = Effective::merge(file, &self.cluster);
        let ruleset = loop {
            let compiled = compile(&Inputs {
                file: &effective.file,
                workloads: &workloads,
                remote: &st.remote,
                pools: &pools,
            });
            match compiled {
                Ok(ruleset) => break ruleset,
                Err(e) => {
                    // A cluster policy naming a pool this host does not know (disabled,
                    // deleted) stays out here rather than holding every other change back.
                    let culprit = match &e {
                        CompileError::UnknownPool { policy, .. } => Some(policy.clone()),
                        CompileError::DuplicateInterface(_) => None,
                    };
                    match culprit {
                        Some(name) if effective.leave_out(&name, e.to_string()) => continue,
                        _ => return Err(e.to_string()),
                    }
                }
            }
        };
        let in_force: Vec<String> = effective
            .cluster_in_force()
            .map(|n| n.to_string())
            .collect();
        self.nft.apply(&ruleset).map_err(|e| e.to_string())?;
        self.applied = Some(ruleset.table().clone());
        let left_out = effective
            .left_out
            .iter()
            .map(|(n, why)| (n.to_string(), why.clone()))
            .collect();
        self.note_cluster(&in_force, left_out);
        Ok(())
    }

    /// Records what is in force and refused, logging cluster policies newly left out.
    fn note_cluster(&mut self, in_force: &[String], left_out: Vec<(String, String)>) {
        let mut refused: Vec<RefusedPolicy> = self
            .cluster
            .refused()
            .map(|(name, e)| RefusedPolicy {
                name: name.to_string(),
                reason: e.to_string(),
            })
            .collect();
        for (name, reason) in left_out {
            let known = self
                .status
                .cluster_refused
                .iter()
                .any(|r| r.name == name && r.reason == reason);
            if !known {
                tracing::error!(policy = %name, "cluster policy left out on this host: {reason}");
            }
            refused.push(RefusedPolicy { name, reason });
        }
        self.status.cluster_in_force = in_force.to_vec();
        self.status.cluster_refused = refused;
    }
}
