//! The host firewall: the policy file from `[policy]` and the cluster policies from etcd
//! (`bgpd-policy`), compiled with this host's endpoints and the pools, applied as one atomic
//! nftables transaction (the changes since the last one) whenever the compiled ruleset changes.

use std::path::{Path, PathBuf};

use bgpd_api::{PolicyStatus, RefusedPolicy};
use bgpd_policy::cluster::{Change, Stored};
use bgpd_policy::{
    ClusterPolicies, CompileError, Effective, Inputs, Nft, NftError, PolicyFile, Pool, Ruleset,
    WorkloadEndpoint, compile,
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
    /// The ruleset in force, once we applied one: its table is removed when no policy is
    /// left, the next ruleset is applied as the changes from it (unchanged rules keep their
    /// counters), and a recompile giving the same script (a remote endpoint no selector
    /// matches changed) does not run `nft` at all.
    applied: Option<Ruleset>,
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
            if let Some(ruleset) = &self.applied {
                self.nft
                    .remove(ruleset.table())
                    .map_err(|e| e.to_string())?;
                self.applied = None;
            }
            return Ok(());
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
            .values()
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
        self.install(ruleset).map_err(|e| e.to_string())?;
        let left_out = effective
            .left_out
            .iter()
            .map(|(n, why)| (n.to_string(), why.clone()))
            .collect();
        self.note_cluster(&in_force, left_out);
        Ok(())
    }

    /// Applies `ruleset` unless it is the one in force: in place when we applied one before,
    /// so unchanged rules keep their counters. One `nft` refuses is not recorded (the old
    /// table stays in force), so the next apply tries it again.
    fn install(&mut self, ruleset: Ruleset) -> Result<(), NftError> {
        if self.applied.as_ref() == Some(&ruleset) {
            return Ok(());
        }
        let how = self.nft.update(self.applied.as_ref(), &ruleset)?;
        tracing::debug!(?how, "firewall table updated");
        self.applied = Some(ruleset);
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

/// Against real nftables in a namespace: an unchanged ruleset is not applied again.
#[cfg(test)]
mod tests {
    use super::*;
    use bgpd_policy::RemoteEndpoint;
    use bgpd_policy::model::Name;
    use testkit::netns::Netns;

    fn ruleset(interfaces: &[&str], remote: &[RemoteEndpoint]) -> Ruleset {
        let workloads: Vec<WorkloadEndpoint> = interfaces
            .iter()
            .map(|name| WorkloadEndpoint {
                interface: (*name).try_into().unwrap(),
                ips: vec![],
                labels: Default::default(),
            })
            .collect();
        // Every local endpoint governed; only remote endpoints labelled web are selected.
        let file = PolicyFile::parse(
            "[[policy]]\nname = \"all\"\nselector = 'all()'\n\
             [[policy.ingress]]\naction = \"allow\"\nsource = { selector = 'role == \"web\"' }\n",
            "test.toml",
        )
        .unwrap();
        compile(&Inputs {
            file: &file,
            workloads: &workloads,
            remote,
            pools: &[],
        })
        .unwrap()
    }

    fn has_table(ns: &Netns, table: &Name) -> bool {
        let name = table.to_string();
        ns.cmd("nft")
            .args(["list", "table", "inet", &name])
            .output()
            .unwrap()
            .status
            .success()
    }

    #[test]
    fn an_unchanged_ruleset_is_not_applied_again() {
        let ns = Netns::new("fwskip").unwrap();
        let mut firewall = Firewall::load(None).unwrap();
        firewall.nft = Nft::in_netns(ns.name());
        let one = ruleset(&["cali-a"], &[]);
        let table = one.table().clone();
        firewall.install(one.clone()).unwrap();
        assert!(has_table(&ns, &table));

        // Removed behind our back, the table only comes back when the ruleset changes: an
        // identical one (here, a remote endpoint no rule selects) does not run nft.
        ns.exec("nft", &["delete", "table", "inet", &table.to_string()])
            .unwrap();
        let same = ruleset(
            &["cali-a"],
            &[RemoteEndpoint {
                ips: vec!["10.244.9.9".parse().unwrap()],
                labels: Default::default(),
            }],
        );
        assert_eq!(same, one);
        firewall.install(same).unwrap();
        assert!(!has_table(&ns, &table), "nft ran for an identical ruleset");
        let two = ruleset(&["cali-a", "cali-b"], &[]);
        firewall.install(two.clone()).unwrap();
        assert!(has_table(&ns, &table));

        // A failed apply is not recorded: the same ruleset is tried again.
        let three = ruleset(&["cali-c"], &[]);
        firewall.nft = Nft::in_netns("bgpd-no-such-netns");
        assert!(firewall.install(three.clone()).is_err());
        assert_eq!(firewall.applied.as_ref(), Some(&two));
        firewall.nft = Nft::in_netns(ns.name());
        ns.exec("nft", &["delete", "table", "inet", &table.to_string()])
            .unwrap();
        firewall.install(three).unwrap();
        assert!(has_table(&ns, &table));
    }
}
