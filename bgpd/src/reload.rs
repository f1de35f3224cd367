//! Reloading the configuration (SIGHUP, `POST /v1/reload`): read the file again and apply only
//! the difference. Peers, hold time and connect retry apply at once (a changed peer resets its
//! session alone); the rest is reported as needing a restart.

use bgpd_api::{ErrorKind, ReloadReport};
use bgpd_config::{BgpConfig, Config};

use crate::api::ApiError;
use crate::daemon::Daemon;

/// The keys that differ between `old` and `new` and only take effect after a restart.
pub fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut keys = Vec::new();
    let mut check = |key: &str, differs: bool| {
        if differs {
            keys.push(key.to_string());
        }
    };
    check("node", old.node != new.node);
    check("etcd", old.etcd != new.etcd);
    check("ipam", old.ipam != new.ipam);
    check("kernel", old.kernel != new.kernel);
    check("policy", old.policy != new.policy);
    check("log", old.log != new.log);
    check("metrics", old.metrics != new.metrics);
    check("api", old.api != new.api);
    let (o, n) = (&old.bgp, &new.bgp);
    check("bgp.listen_port", o.listen_port != n.listen_port);
    check(
        "bgp.listen_addresses",
        o.listen_addresses != n.listen_addresses,
    );
    check("bgp.mesh", o.mesh != n.mesh);
    check(
        "bgp.route_reflector",
        o.route_reflector != n.route_reflector,
    );
    check("bgp.cluster_id", o.cluster_id != n.cluster_id);
    check(
        "bgp.graceful_restart",
        o.graceful_restart != n.graceful_restart,
    );
    keys
}

/// The `[bgp]` settings a reload applies: `old` with the live-changeable keys of `new`.
pub fn applicable(old: &BgpConfig, new: &BgpConfig) -> BgpConfig {
    BgpConfig {
        peers: new.peers.clone(),
        hold_time: new.hold_time,
        connect_retry: new.connect_retry,
        ..old.clone()
    }
}

impl Daemon {
    /// Re-reads the configuration file and applies what can change live.
    pub async fn reload(&self) -> Result<ReloadReport, ApiError> {
        let new = Config::load(&self.config_path).map_err(|e| {
            tracing::error!("reload refused, configuration unchanged: {e}");
            ApiError::new(ErrorKind::BadRequest, e.to_string())
        })?;
        let mut st = self.state.lock().await;
        let needs_restart = needs_restart(&st.config, &new);
        st.config.bgp = applicable(&st.config.bgp, &new.bgp);
        let mut applied = self.converge(&mut st).await;
        let policy_reloaded = match self.firewall.lock() {
            Ok(mut guard) => match guard.reload() {
                Some(Ok(())) => true,
                Some(Err(e)) => {
                    tracing::error!("policy file not reloaded, the old policy stays: {e}");
                    false
                }
                None => false,
            },
            Err(_) => false,
        };
        if policy_reloaded {
            self.apply_firewall(&st);
            applied.push("policy file re-read and applied".to_string());
        }
        for key in &needs_restart {
            tracing::warn!("reload: {key} changed; it takes effect at the next restart");
        }
        tracing::info!(?applied, "configuration reloaded");
        Ok(ReloadReport {
            applied,
            needs_restart,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(text, std::path::Path::new("t.toml")).unwrap()
    }

    #[test]
    fn only_restart_bound_keys_are_reported() {
        let base = "[node]\nname = \"a\"\nasn = 64512\n[bgp]\nmesh = true\n";
        let old = config(base);
        let peers = config(&format!(
            "{base}[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 65000\n"
        ));
        assert!(needs_restart(&old, &peers).is_empty());
        let applied = applicable(&old.bgp, &peers.bgp);
        assert_eq!(applied.peers.len(), 1);
        let asn = config("[node]\nname = \"a\"\nasn = 64513\n[bgp]\nmesh = false\n");
        assert_eq!(needs_restart(&old, &asn), vec!["node", "bgp.mesh"]);
        assert!(
            applicable(&old.bgp, &asn.bgp).mesh,
            "mesh keeps its old value until a restart"
        );
    }
}
