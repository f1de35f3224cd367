//! The state file: what BGP and the kernel need to resume without etcd — our blocks, the node
//! registry (our peers), the pools and our endpoints, as etcd last confirmed them — kept at
//! `<[state] dir>/state.json`. Written atomically (a temp file renamed over the old one)
//! whenever it changes while etcd answers; read at start when etcd does not. It is never a
//! source of allocations: IPAM stays the only writer of addresses and blocks.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bgpd_api::Labels;
use ipam::{AssignedIp, BlockCidr};
use serde::{Deserialize, Serialize};

use crate::daemon::{Attached, State};
use crate::node::Registry;
use crate::pools::Pools;

/// The file's name inside the state directory.
pub const FILE_NAME: &str = "state.json";

/// The format written; a file of another version is not read (start waits for etcd).
pub const FORMAT_VERSION: u32 = 1;

/// One address of a cached endpoint, as IPAM assigned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedIp {
    /// The address.
    pub ip: IpAddr,
    /// The block it is in.
    pub block: BlockCidr,
    /// Whether the block is another host's (we advertise a /32, /128 for it).
    pub borrowed: bool,
}

/// One container interface we had attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedEndpoint {
    /// Its container.
    pub container_id: String,
    /// Its interface name inside the container.
    pub ifname: String,
    /// Its addresses.
    pub ips: Vec<CachedIp>,
    /// Its labels (etcd's records win once etcd answers).
    pub labels: Labels,
}

impl CachedEndpoint {
    /// The addresses as the daemon holds them.
    pub fn assigned(&self) -> Vec<AssignedIp> {
        self.ips
            .iter()
            .map(|i| AssignedIp {
                ip: i.ip,
                block: i.block,
                borrowed: i.borrowed,
            })
            .collect()
    }
}

/// What the file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// The node it belongs to: a file of another node name is not used.
    pub host: String,
    /// Our blocks (affine to us in IPAM when written).
    pub blocks: Vec<BlockCidr>,
    /// Every pool (the import guard, the firewall).
    pub pools: Pools,
    /// The node registry (mesh and reflector peers).
    pub registry: Registry,
    /// Our endpoints.
    pub endpoints: Vec<CachedEndpoint>,
}

impl Snapshot {
    /// The snapshot of `st` for node `host`.
    pub fn of(host: &str, st: &State) -> Snapshot {
        let mut blocks = st.blocks.clone();
        blocks.sort();
        Snapshot {
            version: FORMAT_VERSION,
            host: host.to_string(),
            blocks,
            pools: st.pools.clone(),
            registry: st.registry.clone(),
            endpoints: st
                .attached
                .iter()
                .map(|((id, ifname), a)| cached(id, ifname, a))
                .collect(),
        }
    }
}

fn cached(container_id: &str, ifname: &str, a: &Attached) -> CachedEndpoint {
    CachedEndpoint {
        container_id: container_id.to_string(),
        ifname: ifname.to_string(),
        ips: a
            .ips
            .iter()
            .map(|i| CachedIp {
                ip: i.ip,
                block: i.block,
                borrowed: i.borrowed,
            })
            .collect(),
        labels: a.labels.clone(),
    }
}

/// Why the state file could not be used or written.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    /// Reading failed (other than the file being absent).
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not a snapshot (truncated, edited, garbage).
    #[error("{}: not a bgpd state file: {source}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        source: serde_json::Error,
    },
    /// Written by a bgpd of another format.
    #[error("{}: format version {found}, this bgpd reads {FORMAT_VERSION}", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
    /// Written for another node name.
    #[error("{}: written for node {found:?}, this node is {expected:?}", path.display())]
    OtherHost {
        /// The file.
        path: PathBuf,
        /// The name in the file.
        found: String,
        /// Ours.
        expected: String,
    },
    /// Writing failed.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// The state file of one node: reads it, and writes a snapshot when it differs from the last
/// one written.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    /// The last snapshot written, and whether the last write failed (logged once per failure
    /// streak, not on every change).
    written: Mutex<(Option<Snapshot>, bool)>,
}

impl StateFile {
    /// The state file in `dir`.
    pub fn in_dir(dir: &Path) -> StateFile {
        StateFile {
            path: dir.join(FILE_NAME),
            written: Mutex::new((None, false)),
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The snapshot for node `host`; `None` when there is no file (a first start).
    pub fn load(&self, host: &str) -> Result<Option<Snapshot>, StateFileError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateFileError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        // The version first, so a newer format says so rather than failing to decode.
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let decode = |source| StateFileError::Decode {
            path: self.path.clone(),
            source,
        };
        let found = serde_json::from_slice::<Versioned>(&bytes)
            .map_err(decode)?
            .version;
        if found != FORMAT_VERSION {
            return Err(StateFileError::Version {
                path: self.path.clone(),
                found,
            });
        }
        let snapshot: Snapshot = serde_json::from_slice(&bytes).map_err(decode)?;
        if snapshot.host != host {
            return Err(StateFileError::OtherHost {
                path: self.path.clone(),
                found: snapshot.host,
                expected: host.to_string(),
            });
        }
        Ok(Some(snapshot))
    }

    /// Writes `snapshot` unless it is what was written last; a failure is logged (once until
    /// a write succeeds again) and retried on the next change.
    pub fn save_if_changed(&self, snapshot: Snapshot) {
        let Ok(mut written) = self.written.lock() else {
            return;
        };
        if written.0.as_ref() == Some(&snapshot) {
            return;
        }
        match self.write(&snapshot) {
            Ok(()) => {
                if written.1 {
                    tracing::info!(path = %self.path.display(), "state file written again");
                }
                *written = (Some(snapshot), false);
            }
            Err(e) => {
                if !written.1 {
                    tracing::warn!(
                        "{e}; a restart while etcd is unreachable will wait for etcd instead of resuming BGP"
                    );
                }
                written.1 = true;
            }
        }
    }

    /// Writes atomically: a temp file in the same directory, synced, renamed over the file,
    /// and the directory synced, so a crash leaves the old file or the new one, never half.
    fn write(&self, snapshot: &Snapshot) -> Result<(), StateFileError> {
        let failed = |source| StateFileError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(dir).map_err(failed)?;
        let bytes =
            serde_json::to_vec_pretty(snapshot).map_err(|e| failed(std::io::Error::other(e)))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".state-")
            .tempfile_in(dir)
            .map_err(failed)?;
        tmp.write_all(&bytes).map_err(failed)?;
        tmp.as_file().sync_all().map_err(failed)?;
        tmp.persist(&self.path).map_err(|e| failed(e.error))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(failed)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use bgpd_api::{NodeRecord, RECORD_VERSION, Role};
    use ipam::{Pool, PoolName};

    fn snapshot() -> Snapshot {
        let block = BlockCidr::new("10.244.3.64/26".parse().unwrap()).unwrap();
        let mut pools = Pools::new();
        pools.insert(
            "v4".into(),
            Pool::new(
                PoolName::new("v4").unwrap(),
                "10.244.0.0/16".parse().unwrap(),
            ),
        );
        let mut registry = Registry::new();
        registry.insert(
            "host-2".into(),
            NodeRecord {
                version: RECORD_VERSION,
                labels: BTreeMap::new(),
                address: "10.99.0.12".parse().unwrap(),
                address_v6: None,
                asn: 64512,
                router_id: "10.99.0.12".parse().unwrap(),
                role: Role::Host,
                mesh: true,
                port: 179,
            },
        );
        Snapshot {
            version: FORMAT_VERSION,
            host: "host-1".into(),
            blocks: vec![block],
            pools,
            registry,
            endpoints: vec![CachedEndpoint {
                container_id: "c0ffee".into(),
                ifname: "eth0".into(),
                ips: vec![CachedIp {
                    ip: "10.244.3.65".parse().unwrap(),
                    block,
                    borrowed: false,
                }],
                labels: [("role".to_string(), "db".to_string())].into(),
            }],
        }
    }

    #[test]
    fn a_snapshot_is_written_atomically_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::in_dir(&dir.path().join("nested"));
        assert!(
            file.load("host-1").unwrap().is_none(),
            "no file: first start"
        );
        file.save_if_changed(snapshot());
        assert_eq!(file.load("host-1").unwrap(), Some(snapshot()));
        let names: Vec<_> = std::fs::read_dir(dir.path().join("nested"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE_NAME], "no temp file left behind");

        // Unchanged: not rewritten (the file's inode stays).
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::metadata(file.path()).unwrap().ino();
        file.save_if_changed(snapshot());
        assert_eq!(std::fs::metadata(file.path()).unwrap().ino(), inode);
        let mut changed = snapshot();
        changed.blocks.clear();
        file.save_if_changed(changed.clone());
        assert_ne!(std::fs::metadata(file.path()).unwrap().ino(), inode);
        assert_eq!(file.load("host-1").unwrap(), Some(changed));
    }

    #[test]
    fn a_bad_file_is_an_error_never_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::in_dir(dir.path());
        let good = serde_json::to_vec(&snapshot()).unwrap();
        let mut other_version = snapshot();
        other_version.version = 7;
        let bad_block = String::from_utf8(good.clone())
            .unwrap()
            .replace("10.244.3.64/26", "10.244.3.65/26");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "not a bgpd state file"),
            (b"\xff\x00garbage".to_vec(), "not a bgpd state file"),
            (good[..good.len() / 2].to_vec(), "not a bgpd state file"),
            (b"{\"version\":1}".to_vec(), "not a bgpd state file"),
            (bad_block.into_bytes(), "not a bgpd state file"),
            (
                serde_json::to_vec(&other_version).unwrap(),
                "format version 7",
            ),
        ];
        for (bytes, phrase) in cases {
            std::fs::write(file.path(), &bytes).unwrap();
            let e = file.load("host-1").unwrap_err().to_string();
            assert!(e.contains(phrase), "{e}");
            assert!(e.contains(&file.path().display().to_string()), "{e}");
        }
        std::fs::write(file.path(), &good).unwrap();
        let e = file.load("host-9").unwrap_err().to_string();
        assert!(e.contains("written for node \"host-1\""), "{e}");
    }

    #[test]
    fn an_unwritable_directory_is_logged_and_left() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        // The "directory" is a file: every write fails, none panics.
        let file = StateFile::in_dir(&blocker);
        file.save_if_changed(snapshot());
        file.save_if_changed(snapshot());
        assert!(file.load("host-1").is_err());
    }
}
