//! Whatever is stored under IPAM's keys, no operation panics: damage is a typed error or a
//! finding of the check, never a crash.

use std::sync::Arc;

use ipam::store::{Store, Txn, Write};
use ipam::{AssignRequest, HandleId, HostName, Ipam, IpamOptions, MemStore, Pool, PoolName};
use proptest::prelude::*;

fn key() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        Just("10.0.0.0-26".to_string()),
        Just("10.0.0.64-26".to_string()),
        Just("10.0.0.0-8".to_string()),
        Just("fd00::-122".to_string()),
        Just("h1".to_string()),
        Just("h1/10.0.0.0-26".to_string()),
        Just("c1".to_string()),
        "[a-z0-9./-]{0,12}",
    ];
    let dir = prop_oneof![
        Just("pools/"),
        Just("blocks/"),
        Just("affinities/"),
        Just("handles/"),
        Just("nodes/"),
        Just("config/"),
    ];
    (dir, seg).prop_map(|(d, s)| format!("/fabric/v1/{d}{s}"))
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    let cidr = prop_oneof![
        Just("10.0.0.0/26"),
        Just("10.0.0.0/24"),
        Just("10.0.0.0/8"),
        Just("fd00::/122"),
        Just("fd00::/64"),
        Just("bogus"),
    ];
    let json = (cidr, any::<u32>(), any::<u32>(), any::<u8>(), any::<bool>()).prop_map(
        |(cidr, off, cursor, len, flag)| {
            let affinity = if flag { "\"h1\"" } else { "null" };
            format!(
                r#"{{"version":1,"name":"p","cidr":"{cidr}","block_prefix_len":{len},"disabled":{flag},
                "affinity":{affinity},"allocations":{{"{off}":"c1","1":"c1"}},"cursor":{cursor},
                "host":"h1","ips":[{{"ip":"10.0.0.1","block":"{cidr}"}}],"block":"{cidr}",
                "strict_affinity":{flag},"max_blocks_per_host":{len},"emptied_at_ms":{off}}}"#
            )
            .into_bytes()
        },
    );
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..48), json]
}

/// A damaged value must be reported, not make the client race itself until its budget ends.
fn no_spin<T: std::fmt::Debug>(r: ipam::Result<T>) {
    assert!(
        !matches!(r, Err(ipam::IpamError::ConflictBudgetExceeded { .. })),
        "{r:?}"
    );
}

async fn run(garbage: Vec<(String, Vec<u8>)>) {
    let store = Arc::new(MemStore::new());
    let ipam = Ipam::with_store(store.clone(), IpamOptions::default());
    let mut pool = Pool::new(PoolName::new("p").unwrap(), "10.0.0.0/24".parse().unwrap());
    pool.block_prefix_len = 26;
    no_spin(ipam.add_pool(&pool).await);
    let writes = garbage.into_iter().map(|(k, v)| Write::Put(k, v)).collect();
    store
        .txn(Txn {
            writes,
            ..Txn::default()
        })
        .await
        .unwrap();
    let host = HostName::new("h1").unwrap();
    let handle = HandleId::new("c1").unwrap();
    // Any result but a spin is fine (damage is `Corrupt`, not an endless race); a panic
    // fails the test.
    no_spin(ipam.check().await);
    no_spin(
        ipam.assign(&AssignRequest {
            handle: HandleId::new("c2").unwrap(),
            host: host.clone(),
            v4: 2,
            v6: 1,
        })
        .await,
    );
    no_spin(
        ipam.assign_ip(&handle, &host, "10.0.0.5".parse().unwrap())
            .await,
    );
    no_spin(ipam.release(&handle).await);
    no_spin(ipam.release_ip("10.0.0.1".parse().unwrap()).await);
    no_spin(ipam.blocks_of(&host).await);
    no_spin(ipam.handles_of(&host).await);
    no_spin(ipam.list_pools().await);
    no_spin(ipam.gc().await);
    no_spin(ipam.repair().await);
    no_spin(ipam.delete_pool(&PoolName::new("p").unwrap(), true).await);
    no_spin(ipam.check().await);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn garbage_in_etcd_never_panics(garbage in proptest::collection::vec((key(), value()), 1..8)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(garbage));
    }
}
