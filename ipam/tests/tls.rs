//! IPAM against a real etcd that requires TLS with client certificates
//! (`--client-cert-auth`): assignments with the right certificate, a clear and quick refusal
//! without one or with the wrong CA.

mod common;

use std::time::{Duration, Instant};

use common::{assert_clean, client, host, nodes, opts, pool, req};
use ipam::{EtcdTls, Ipam, IpamError, IpamOptions, RetryPolicy};
use testkit::certs::Pki;
use testkit::etcd::Etcd;

/// Options of a client with `tls`, giving up on an unreachable etcd after 3 s as routectl does.
fn tls_opts(tls: EtcdTls) -> IpamOptions {
    let mut o = opts();
    o.store.tls = Some(tls);
    o.retry = RetryPolicy {
        unavailable_budget: Duration::from_secs(3),
        ..RetryPolicy::default()
    };
    o
}

/// The client certificate of `etcd`'s own CA.
fn good_tls(etcd: &Etcd) -> EtcdTls {
    let pki = etcd.pki().expect("a TLS etcd");
    EtcdTls::from_files(&pki.ca(), Some((&pki.client_cert(), &pki.client_key()))).unwrap()
}

/// Runs `op` and asserts it fails within a few seconds, with the error it gave.
async fn refused<T: std::fmt::Debug>(
    op: impl std::future::Future<Output = ipam::Result<T>>,
) -> IpamError {
    let began = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(10), op)
        .await
        .expect("no hang")
        .expect_err("refused");
    assert!(
        began.elapsed() < Duration::from_secs(6),
        "took {:?}",
        began.elapsed()
    );
    e
}

#[tokio::test]
async fn assignments_over_tls_with_a_client_certificate() {
    let etcd = Etcd::single_tls().unwrap();
    assert!(etcd.endpoints()[0].starts_with("https://"));
    let ipam = client(&etcd, tls_opts(good_tls(&etcd))).await;
    pool(&ipam, "p4", "10.70.0.0/16", 26).await;
    nodes(&ipam, &["h1"]).await;
    let a = ipam.assign(&req("c1", "h1", 2, 0)).await.unwrap();
    assert_eq!(a.ips.len(), 2);
    assert_eq!(ipam.blocks_of(&host("h1")).await.unwrap().len(), 1);
    assert_clean(&ipam).await;
    // What IPAM wrote is there for any other TLS client (etcdctl with the same certificate).
    let keys = etcd
        .etcdctl(&["get", "--prefix", "--keys-only", "/fabric/v1/handles/"])
        .unwrap();
    assert!(keys.contains("/fabric/v1/handles/c1"), "{keys}");
}

#[tokio::test]
async fn a_client_without_certificate_is_refused_clearly() {
    let etcd = Etcd::single_tls().unwrap();
    let pki = etcd.pki().unwrap();
    let tls = EtcdTls::from_files(&pki.ca(), None).unwrap();
    let ipam = Ipam::connect(&etcd.endpoints(), tls_opts(tls))
        .await
        .unwrap();
    // The server closes the connection after the handshake, or its alert gets through.
    let e = refused(ipam.list_pools()).await;
    let text = e.to_string();
    assert!(
        matches!(
            e,
            IpamError::Tls(ipam::TlsError::Handshake(_)) | IpamError::DatastoreUnavailable(_)
        ),
        "{text}"
    );
    assert!(
        text.contains("client certificate") || text.contains("BadCertificate"),
        "{text}"
    );
}

#[tokio::test]
async fn a_client_trusting_another_ca_is_refused_clearly() {
    let etcd = Etcd::single_tls().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let other = Pki::generate(dir.path()).unwrap();
    // Another CA's client certificate, and that CA as the trust root: the server's
    // certificate does not verify.
    let tls = EtcdTls::from_files(
        &other.ca(),
        Some((&other.client_cert(), &other.client_key())),
    )
    .unwrap();
    let ipam = Ipam::connect(&etcd.endpoints(), tls_opts(tls))
        .await
        .unwrap();
    let e = refused(ipam.list_pools()).await;
    let text = e.to_string();
    assert!(
        matches!(e, IpamError::Tls(ipam::TlsError::Handshake(_))),
        "{text}"
    );
    assert!(text.contains("does not verify with the CA file"), "{text}");
    assert!(text.contains("UnknownIssuer"), "{text}");
}

#[tokio::test]
async fn plain_and_tls_must_match_the_endpoints() {
    let etcd = Etcd::single_tls().unwrap();
    // https without a CA, and a CA with http: refused before any connection.
    let e = Ipam::connect(&etcd.endpoints(), opts()).await.unwrap_err();
    assert!(matches!(e, IpamError::Tls(ipam::TlsError::NoCa(_))), "{e}");
    let plain: Vec<String> = etcd
        .endpoints()
        .iter()
        .map(|e| e.replacen("https://", "http://", 1))
        .collect();
    let e = Ipam::connect(&plain, tls_opts(good_tls(&etcd)))
        .await
        .unwrap_err();
    assert!(
        matches!(e, IpamError::Tls(ipam::TlsError::PlainEndpoint(_))),
        "{e}"
    );
}
