//! routectl's etcd commands against a real etcd that requires TLS client certificates, with
//! the files given as flags or environment variables (no config file).

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ipam::{EtcdTls, HostName, Ipam, IpamOptions, NodeRecord, Pool, PoolName, StoreOptions};
use testkit::etcd::Etcd;

/// routectl with only what `args` and `env` say (no config file, no inherited ETCD_*).
fn routectl(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_routectl"));
    cmd.args(["--config", "/nonexistent/bgpd.toml"]).args(args);
    for var in [
        "ETCD_ENDPOINTS",
        "ETCD_CA_CERT_FILE",
        "ETCD_CERT_FILE",
        "ETCD_KEY_FILE",
        "ETCD_SERVER_NAME",
        "BGPD_ETCD_ROOT",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run routectl")
}

fn stderr_of(o: &Output) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// A pool and a node written over TLS with the client certificate.
async fn seeded(etcd: &Etcd) {
    let pki = etcd.pki().unwrap();
    let tls =
        EtcdTls::from_files(&pki.ca(), Some((&pki.client_cert(), &pki.client_key()))).unwrap();
    let opts = IpamOptions {
        store: StoreOptions {
            tls: Some(tls),
            ..StoreOptions::default()
        },
        ..IpamOptions::default()
    };
    let ipam = Ipam::connect(&etcd.endpoints(), opts).await.unwrap();
    let pool = Pool::new(
        PoolName::new("secure").unwrap(),
        "10.246.0.0/16".parse().unwrap(),
    );
    ipam.add_pool(&pool).await.unwrap();
    let host = HostName::new("host-t").unwrap();
    ipam.register_node(&host, &NodeRecord::new(Default::default()), 0)
        .await
        .unwrap();
    ipam.claim(&host, ipam::Family::V4).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn flags_and_environment_reach_a_tls_etcd() {
    let etcd = Etcd::single_tls().unwrap();
    seeded(&etcd).await;
    let pki = etcd.pki().unwrap();
    let path = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
    let endpoint = etcd.endpoints().join(",");

    // Flags.
    let out = routectl(
        &[
            "--etcd-endpoints",
            &endpoint,
            "--etcd-ca",
            &path(pki.ca()),
            "--etcd-cert",
            &path(pki.client_cert()),
            "--etcd-key",
            &path(pki.client_key()),
            "ipam",
            "pools",
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stdout.contains("10.246.0.0/16"), "{stdout}");

    // The same from the environment (calicoctl's names), and a server name override that
    // the certificate lists.
    let env = vec![
        ("ETCD_ENDPOINTS", endpoint.clone()),
        ("ETCD_CA_CERT_FILE", path(pki.ca())),
        ("ETCD_CERT_FILE", path(pki.client_cert())),
        ("ETCD_KEY_FILE", path(pki.client_key())),
        ("ETCD_SERVER_NAME", "localhost".to_string()),
    ];
    for args in [&["-o", "json", "nodes"][..], &["ipam", "check"][..]] {
        let out = routectl(args, &env);
        assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
        if args.contains(&"nodes") {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                stdout.contains("host-t") && stdout.contains("10.246."),
                "{stdout}"
            );
        }
    }

    // A server name the certificate does not list: refused at once, and said why.
    let mut wrong_name = env.clone();
    wrong_name[4].1 = "etcd.example".into();
    let out = routectl(&["ipam", "pools"], &wrong_name);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not name the host"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_client_certificate_or_a_ca_routectl_says_why() {
    let etcd = Etcd::single_tls().unwrap();
    let pki = etcd.pki().unwrap();
    let endpoint = etcd.endpoints().join(",");

    // The CA but no client certificate: etcd closes the connection; routectl gives up within
    // its patience with a hint.
    let began = Instant::now();
    let out = routectl(
        &[
            "--etcd-endpoints",
            &endpoint,
            "--etcd-ca",
            &pki.ca().to_string_lossy(),
            "ipam",
            "pools",
        ],
        &[],
    );
    let stderr = stderr_of(&out);
    assert!(!out.status.success());
    assert!(
        began.elapsed() < Duration::from_secs(8),
        "{:?}",
        began.elapsed()
    );
    assert!(
        stderr.contains("client certificate") || stderr.contains("refused this client"),
        "{stderr}"
    );

    // https without any CA: a clear error before any connection.
    let out = routectl(&["--etcd-endpoints", &endpoint, "nodes"], &[]);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no CA file"), "{stderr}");

    // A certificate without its key is a usage error.
    let out = routectl(
        &[
            "--etcd-endpoints",
            &endpoint,
            "--etcd-ca",
            &pki.ca().to_string_lossy(),
            "--etcd-cert",
            &pki.client_cert().to_string_lossy(),
            "nodes",
        ],
        &[],
    );
    let stderr = stderr_of(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("--etcd-key"), "{stderr}");
}
