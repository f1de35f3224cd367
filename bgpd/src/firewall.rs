//! The host firewall: the policy file from `[policy]` compiled with this host's endpoints and
//! the pools (`bgpd-policy`), applied as one atomic nftables transaction whenever they change.

use std::path::{Path, PathBuf};

use bgpd_policy::{Inputs, Nft, PolicyFile, Pool, WorkloadEndpoint, compile};

use crate::daemon::State;

/// A loaded policy file and where it came from.
pub struct Firewall {
    path: PathBuf,
    file: PolicyFile,
    nft: Nft,
}

impl Firewall {
    /// Reads and checks the policy file, if one is configured; touches nothing.
    pub fn load(path: Option<&Path>) -> Result<Option<Firewall>, bgpd_policy::ModelError> {
        let Some(path) = path else { return Ok(None) };
        Ok(Some(Firewall {
            path: path.to_path_buf(),
            file: PolicyFile::load(path)?,
            nft: Nft::new(),
        }))
    }

    /// Reads the file again (reload); on error the old policy stays.
    pub fn reload(&mut self) -> Result<(), bgpd_policy::ModelError> {
        self.file = PolicyFile::load(&self.path)?;
        Ok(())
    }

    /// Compiles the policy for the endpoints and pools in `st` and applies it.
    pub fn apply(&self, st: &State) -> Result<(), String> {
        let workloads: Vec<WorkloadEndpoint> = st
            .attached
            .values()
            .filter_map(|a| {
                Some(WorkloadEndpoint {
                    interface: a.host_ifname.as_str().try_into().ok()?,
                    ips: a.ips.iter().map(|i| i.ip).collect(),
                    labels: Default::default(),
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
        let ruleset = compile(&Inputs {
            file: &self.file,
            workloads: &workloads,
            remote: &[],
            pools: &pools,
        })
        .map_err(|e| e.to_string())?;
        self.nft.apply(&ruleset).map_err(|e| e.to_string())
    }
}
