//! Shared setup of the real-etcd tests: a client with short delays, pools and live nodes.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::BTreeMap;
use std::time::Duration;

use ipam::{
    AssignRequest, HandleId, HostName, Ipam, IpamOptions, NodeRecord, Pool, PoolName, RetryPolicy,
    StoreOptions,
};

/// Options with delays short enough for tests.
pub fn opts() -> IpamOptions {
    IpamOptions {
        root: "/fabric/v1".into(),
        store: StoreOptions {
            request_timeout: Duration::from_millis(1500),
            connect_timeout: Duration::from_millis(500),
            keep_alive: Duration::from_millis(300),
            tls: None,
        },
        retry: RetryPolicy {
            unavailable_budget: Duration::from_secs(8),
            ..RetryPolicy::default()
        },
        empty_block_grace: Duration::from_millis(300),
        dead_host_delay: Duration::from_millis(500),
    }
}

/// A client on every endpoint of `etcd`.
pub async fn client(etcd: &testkit::etcd::Etcd, opts: IpamOptions) -> Ipam {
    Ipam::connect(&etcd.endpoints(), opts).await.unwrap()
}

pub fn host(s: &str) -> HostName {
    HostName::new(s).unwrap()
}

pub fn handle(s: &str) -> HandleId {
    HandleId::new(s).unwrap()
}

/// Adds a pool with the given block size.
pub async fn pool(ipam: &Ipam, name: &str, cidr: &str, block: u8) -> Pool {
    let mut p = Pool::new(PoolName::new(name).unwrap(), cidr.parse().unwrap());
    p.block_prefix_len = block;
    ipam.add_pool(&p).await.unwrap();
    p
}

/// Registers live hosts without labels (no lease: they stay alive).
pub async fn nodes(ipam: &Ipam, hosts: &[&str]) {
    for h in hosts {
        ipam.register_node(&host(h), &NodeRecord::new(BTreeMap::new()), 0)
            .await
            .unwrap();
    }
}

/// A request for `v4` IPv4 and `v6` IPv6 addresses.
pub fn req(h: &str, on: &str, v4: u32, v6: u32) -> AssignRequest {
    AssignRequest {
        handle: handle(h),
        host: host(on),
        v4,
        v6,
    }
}

/// Asserts the check finds nothing.
pub async fn assert_clean(ipam: &Ipam) -> ipam::Report {
    let r = ipam.check().await.unwrap();
    assert!(r.is_clean(), "check found: {:#?}", r.findings);
    r
}
