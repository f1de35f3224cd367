//! IP pools as etcd has them, followed live: every pool, enabled or not. A disabled pool gives
//! out no new blocks, but its containers keep running, so its prefixes must stay importable
//! and routed (Calico's pool migration disables the old pool first); only the choice of
//! families to assign looks at enabled pools alone.

use std::collections::BTreeMap;

use bgpd_config::Config;
use ipam::{Ipam, Pool, PoolName};

/// Every pool by name, as last seen.
pub type Pools = BTreeMap<String, Pool>;

/// Folds one change under IPAM's pools prefix (key: the pool's name) into `view`. A record
/// that does not decode is logged and dropped from the view, never a panic.
pub fn fold(view: &mut Pools, name: &str, value: Option<&[u8]>) {
    let decoded = value.map(|v| ipam::decode_pool(&format!("pools/{name}"), v));
    match decoded {
        Some(Ok(pool)) => {
            view.insert(name.to_string(), pool);
        }
        Some(Err(e)) => {
            tracing::warn!(pool = name, "ignoring pool record: {e}");
            view.remove(name);
        }
        None => {
            view.remove(name);
        }
    }
}

/// Whether some enabled pool of `pools` is of the IPv4 (`v4`) or IPv6 family: whether this
/// host should hold a block and assign addresses of that family.
pub fn assigns(pools: &Pools, v4: bool) -> bool {
    pools
        .values()
        .any(|p| !p.disabled && p.cidr.is_ipv4() == v4)
}

/// Every pool under `prefix` (IPAM's pools prefix), read in pages at one revision.
pub async fn read(client: &etcd_client::Client, prefix: &str) -> Result<Pools, etcd_client::Error> {
    let listed = ipam::store::list_prefix(client, prefix).await?;
    let mut view = Pools::new();
    for kv in &listed.kvs {
        if let Some(name) = std::str::from_utf8(kv.key())
            .ok()
            .and_then(|k| k.strip_prefix(prefix))
        {
            fold(&mut view, name, Some(kv.value()));
        }
    }
    Ok(view)
}

/// Creates the configured pools that etcd does not have in `existing`; failures are logged
/// (the pool is then simply absent, as if not configured).
pub async fn create_configured(ipam: &Ipam, config: &Config, existing: &Pools) {
    for p in &config.ipam.pools {
        if existing.contains_key(p.name.as_str()) {
            continue;
        }
        let Ok(name) = PoolName::new(p.name.as_str()) else {
            continue;
        };
        let mut pool = Pool::new(name, p.cidr);
        pool.block_prefix_len = p.block_size();
        pool.nat_outgoing = p.nat_outgoing;
        pool.disabled = p.disabled;
        if let Some(s) = &p.node_selector {
            // The config's selector grammar is the fabric's; IPAM stores its own form.
            match s.to_string().parse() {
                Ok(sel) => pool.node_selector = sel,
                Err(e) => {
                    tracing::error!(pool = %p.name, "node_selector: {e}; pool not created");
                    continue;
                }
            }
        }
        match ipam.add_pool(&pool).await {
            Ok(()) => tracing::info!(pool = %p.name, cidr = %p.cidr, "pool created"),
            Err(e) => tracing::warn!(pool = %p.name, "pool not created: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, cidr: &str, disabled: bool) -> Vec<u8> {
        let mut pool = Pool::new(PoolName::new(name).unwrap(), cidr.parse().unwrap());
        pool.disabled = disabled;
        serde_json::to_vec(&pool).unwrap()
    }

    #[test]
    fn pools_fold_with_garbage_skipped_and_disabled_ones_kept() {
        let mut view = Pools::new();
        fold(&mut view, "v4", Some(&record("v4", "10.244.0.0/16", false)));
        fold(
            &mut view,
            "old",
            Some(&record("old", "10.200.0.0/16", true)),
        );
        fold(&mut view, "v6", Some(&record("v6", "fd00:244::/48", false)));
        for (name, bytes) in [
            ("junk", &b"\xff{"[..]),
            ("other", &record("v4", "10.99.0.0/16", false)[..]),
            (
                "bad-block",
                br#"{"version":1,"name":"bad-block","cidr":"10.1.0.0/16","block_prefix_len":8}"#,
            ),
        ] {
            fold(&mut view, name, Some(bytes));
        }
        assert_eq!(view.keys().collect::<Vec<_>>(), ["old", "v4", "v6"]);
        assert!(view["old"].disabled, "a disabled pool stays in the view");
        assert!(assigns(&view, true) && assigns(&view, false));
        // A pool overwritten with garbage is gone, not kept stale.
        fold(&mut view, "v6", Some(b"null"));
        assert!(!assigns(&view, false));
        fold(&mut view, "v4", None);
        assert!(!assigns(&view, true), "only a disabled IPv4 pool is left");
        assert_eq!(view.len(), 1);
    }
}
