//! Reloading the configuration (SIGHUP, `POST /v1/reload`): read the file again and apply only
//! the difference. Peers, hold time, send hold time and connect retry apply at once (a changed
//! peer resets its session alone); filters apply without a reset (a changed import filter asks
//! the peer for its routes again with ROUTE-REFRESH, a changed export filter re-sends to that
//! peer); changed communities of our own prefixes re-advertise them; the rest is reported as
//! needing a restart.

use bgpd_api::{ErrorKind, ReloadReport};
use bgpd_config::{BgpConfig, Config};

use crate::api::ApiError;
use crate::daemon::Daemon;
use crate::routes::advertised;

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
        send_hold_time: new.send_hold_time,
        connect_retry: new.connect_retry,
        filters: new.filters.clone(),
        mesh_filters: new.mesh_filters.clone(),
        communities: new.communities.clone(),
        prefix_advertisements: new.prefix_advertisements.clone(),
        ..old.clone()
    }
}

/// Whether going from `old` to `new` changes the communities our own prefixes carry.
fn advertisements_changed(old: &BgpConfig, new: &BgpConfig) -> bool {
    old.communities != new.communities || old.prefix_advertisements != new.prefix_advertisements
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
        let readvertise = advertisements_changed(&st.config.bgp, &new.bgp);
        st.config.bgp = applicable(&st.config.bgp, &new.bgp);
        let mut applied = self.converge(&mut st).await;
        if readvertise {
            // Originating a prefix again replaces its attributes; the RIB sends the change.
            for prefix in &st.originated {
                let _ = self
                    .speaker
                    .originate(*prefix, advertised(*prefix, &st.config.bgp));
            }
            applied.push(format!(
                "communities of {} own prefixes re-advertised",
                st.originated.len()
            ));
        }
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

    #[test]
    fn filters_and_advertised_communities_apply_live() {
        let base = "[node]\nname = \"a\"\nasn = 64512\n[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 65000\n";
        let old = config(base);
        let new = config(&format!(
            "{base}filters = [\"f\"]\n[[bgp.peers.import]]\naction = \"reject\"\n\
             [[bgp.filters]]\nname = \"f\"\n[[bgp.prefix_advertisements]]\ncidr = \"0.0.0.0/0\"\ncommunities = [\"1:1\"]\n\
             [bgp]\nmesh_filters = [\"f\"]\n"
        ));
        assert!(needs_restart(&old, &new).is_empty());
        let applied = applicable(&old.bgp, &new.bgp);
        assert_eq!(applied, new.bgp, "every changed key here applies live");
        assert!(advertisements_changed(&old.bgp, &new.bgp));
        let filters_only = config(&format!("{base}filters = []\n"));
        assert!(!advertisements_changed(&old.bgp, &filters_only.bgp));
    }
}
