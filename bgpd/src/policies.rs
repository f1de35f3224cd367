//! Cluster-wide policies from etcd (`<root>/policies/<name>`, the value a policy's TOML): listed
//! at start, then watched; every change is re-compiled with the policy file and applied in one
//! nftables transaction. A value that does not parse never panics and never tears anything
//! down: that policy keeps its last good version (see `bgpd_policy::cluster`). While etcd is
//! unreachable nothing changes, so the last applied table stays.

use std::sync::Arc;
use std::time::Duration;

use bgpd_policy::cluster::{self, Stored};
use etcd_client::Client;
use tokio::sync::watch;

use crate::daemon::Daemon;
use crate::health::EtcdHealth;

/// How long startup waits for the first listing before applying without cluster policies
/// (registration has reached etcd by then, so this is rarely waited out).
pub const FIRST_LIST_PATIENCE: Duration = Duration::from_secs(5);

/// Folds one key's change into the stored view (for `prefix_watch::follow`).
pub fn fold(stored: &mut Stored, key: &str, value: Option<&[u8]>) {
    match value {
        Some(bytes) => {
            stored.insert(key.to_string(), cluster::parse_value(key, bytes));
        }
        None => {
            stored.remove(key);
        }
    }
}

/// Starts following the cluster policies under `root`; the receiver sees each new view.
pub fn watch(client: Client, root: &str, health: Arc<EtcdHealth>) -> watch::Receiver<Stored> {
    let (tx, rx) = watch::channel(Stored::new());
    tokio::spawn(crate::prefix_watch::follow(
        client,
        cluster::prefix(root),
        tx,
        health,
        "cluster policies",
        fold,
    ));
    rx
}

/// The first listing, if it comes within `patience`.
pub async fn first_list(rx: &mut watch::Receiver<Stored>, patience: Duration) -> Option<Stored> {
    match tokio::time::timeout(patience, rx.changed()).await {
        Ok(Ok(())) => Some(rx.borrow_and_update().clone()),
        _ => {
            tracing::warn!(
                "cluster policies not listed within {}s: starting without them",
                patience.as_secs()
            );
            None
        }
    }
}

impl Daemon {
    /// Applies each new view of the cluster policies. Runs as a task.
    pub async fn follow_cluster_policies(self: Arc<Self>, mut rx: watch::Receiver<Stored>) {
        while rx.changed().await.is_ok() {
            let stored = rx.borrow_and_update().clone();
            let st = self.state.lock().await;
            let changed = match self.firewall.lock() {
                Ok(mut firewall) => firewall.take_cluster(&stored),
                Err(_) => false,
            };
            if changed {
                self.apply_firewall(&st);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_keeps_every_key_and_its_verdict() {
        let mut stored = Stored::new();
        fold(
            &mut stored,
            "db",
            Some(b"name = \"db\"\nselector = 'all()'\n"),
        );
        fold(&mut stored, "bad", Some(b"\x00\xff garbage"));
        fold(&mut stored, "x/y", Some(b"name = \"x\"\n"));
        assert!(stored["db"].is_ok());
        assert!(stored["bad"].is_err());
        assert!(stored["x/y"].is_err());
        fold(&mut stored, "db", None);
        assert_eq!(stored.keys().collect::<Vec<_>>(), ["bad", "x/y"]);
    }
}
