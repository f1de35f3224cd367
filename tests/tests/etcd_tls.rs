//! bgpd and routectl against a real etcd that requires TLS with client certificates
//! (`--client-cert-auth`), with certificates made by the `openssl` CLI. The daemon and etcd
//! run in a namespace of their own; bgpd's `[etcd.tls]` names the files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use testkit::certs::Pki;
use testkit::etcd::Etcd;
use testkit::fabric::Binaries;
use testkit::netns::Netns;
use testkit::process::{ChildGuard, stderr_of_failure, stdout_of_success, wait_until};
use testkit::single_host::stub_uplink;

const NODE: &str = "tls-host";
const ADDRESS: &str = "10.97.1.21";

/// A namespace with an underlay address, a TLS etcd inside it, and a bgpd config for both.
struct TlsHost {
    // Field order is drop order: the daemon stops before etcd, then the namespace goes.
    bgpd: Option<ChildGuard>,
    etcd: Etcd,
    ns: Netns,
    dir: tempfile::TempDir,
    bins: Binaries,
}

impl TlsHost {
    /// The namespace and etcd, and bgpd's config with `[etcd.tls]` from `tls` (TOML lines).
    fn new(tls: impl FnOnce(&Pki) -> String) -> TlsHost {
        let bins = Binaries::locate().expect("cargo build -p bgpd -p routectl first");
        let ns = Netns::new("tls").unwrap();
        stub_uplink(&ns, &format!("{ADDRESS}/24")).unwrap();
        let etcd = Etcd::builder().tls().in_netns(&ns).start().unwrap();
        let dir = tempfile::Builder::new()
            .prefix("etcd-tls-")
            .tempdir()
            .unwrap();
        let tls = tls(etcd.pki().unwrap());
        let config = format!(
            r#"[node]
name = "{NODE}"
asn = 64512
address = {{ ip = "{ADDRESS}" }}

[etcd]
endpoints = ["{endpoint}"]

[etcd.tls]
{tls}

[[ipam.pools]]
name = "pool4"
cidr = "10.245.0.0/16"

[bgp]
mesh = true

[api]
socket = "{socket}"

[state]
dir = "{state}"
"#,
            endpoint = etcd.endpoints()[0],
            socket = dir.path().join("bgpd.sock").display(),
            state = dir.path().join("state").display(),
        );
        std::fs::write(dir.path().join("bgpd.toml"), config).unwrap();
        TlsHost {
            bgpd: None,
            etcd,
            ns,
            dir,
            bins,
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("bgpd.toml")
    }

    fn bgpd_cmd(&self) -> Command {
        let mut cmd = self.ns.cmd(&self.bins.bgpd.to_string_lossy());
        cmd.arg("--config").arg(self.config());
        cmd
    }

    /// Starts bgpd, logging to `bgpd.log`.
    fn start_bgpd(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("bgpd.log")).unwrap();
        let mut cmd = self.bgpd_cmd();
        cmd.stdout(std::process::Stdio::null()).stderr(log);
        self.bgpd = Some(ChildGuard::spawn(&mut cmd, "bgpd").unwrap());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bgpd.log")).unwrap_or_default()
    }

    /// routectl inside the namespace, reading bgpd's config (for the socket, etcd and TLS).
    fn routectl(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        let routectl = self.bins.routectl().unwrap().to_string_lossy().into_owned();
        let mut cmd = self.ns.cmd(&routectl);
        cmd.arg("--config").arg(self.config()).args(args);
        for var in [
            "ETCD_ENDPOINTS",
            "ETCD_CA_CERT_FILE",
            "ETCD_CERT_FILE",
            "ETCD_KEY_FILE",
            "ETCD_SERVER_NAME",
            "BGPD_SOCKET",
            "BGPD_ETCD_ROOT",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

fn client_files(pki: &Pki) -> String {
    format!(
        "ca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}",
        pki.ca(),
        pki.client_cert(),
        pki.client_key()
    )
}

#[test]
fn bgpd_registers_and_claims_a_block_over_tls_and_routectl_reads_it() {
    let mut host = TlsHost::new(client_files);
    host.start_bgpd();
    let affinities = format!("/fabric/v1/affinities/{NODE}/");
    let node_key = format!("/fabric/v1/nodes/{NODE}");
    let up = wait_until(Duration::from_secs(60), || {
        let keys = host
            .etcd
            .etcdctl(&["get", "--prefix", "--keys-only", "/fabric/v1/"])
            .unwrap_or_default();
        keys.contains(&affinities) && keys.lines().any(|l| l == node_key)
    });
    assert!(
        up,
        "bgpd did not register and claim a block over TLS:\n{}",
        host.log()
    );

    // routectl takes etcd and its TLS files from bgpd's config.
    let nodes = stdout_of_success(&host.routectl(&["-o", "json", "nodes"], &[]));
    let nodes: serde_json::Value = serde_json::from_str(&nodes).unwrap();
    let ours = nodes
        .as_array()
        .and_then(|n| n.iter().find(|v| v["name"] == NODE))
        .unwrap_or_else(|| panic!("{NODE} missing from {nodes}"));
    assert_eq!(ours["record"]["address"], ADDRESS, "{ours}");
    let block = ours["blocks"][0]["cidr"].as_str().unwrap().to_string();
    assert!(block.starts_with("10.245."), "{ours}");

    // The daemon's view of its blocks, claimed over TLS.
    let show = stdout_of_success(&host.routectl(&["-o", "json", "ipam", "show"], &[]));
    assert!(show.contains(&block), "{show}");
    let pools = stdout_of_success(&host.routectl(&["ipam", "pools"], &[]));
    assert!(pools.contains("10.245.0.0/16"), "{pools}");

    // A CA that did not sign etcd's certificate (the environment beats the config): a clear
    // error within seconds, not a hang or a panic.
    let other_dir = host.dir.path().join("other");
    let other = Pki::generate(&other_dir).unwrap();
    let began = Instant::now();
    let out = host.routectl(&["nodes"], &[("ETCD_CA_CERT_FILE", &other.ca())]);
    let stderr = stderr_of_failure(&out);
    assert!(
        began.elapsed() < Duration::from_secs(8),
        "{:?}",
        began.elapsed()
    );
    assert!(
        stderr.contains("does not verify with the CA file"),
        "{stderr}"
    );

    // The flags name files too, and a missing one is named in the error.
    let missing = host.dir.path().join("nope.pem");
    let out = host.routectl(
        &["--etcd-cert", &missing.to_string_lossy(), "ipam", "pools"],
        &[],
    );
    let stderr = stderr_of_failure(&out);
    assert!(stderr.contains(&*missing.to_string_lossy()), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");

    // bgpd kept its session to etcd all along.
    assert!(
        host.bgpd.as_mut().is_some_and(|b| !b.has_exited()),
        "{}",
        host.log()
    );
}

#[test]
fn an_unreadable_certificate_stops_bgpd_before_the_host_changes() {
    let host = TlsHost::new(|pki| {
        format!(
            "ca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}",
            pki.ca(),
            Path::new("/nonexistent/client.pem"),
            pki.client_key()
        )
    });
    let out = host.bgpd_cmd().output().unwrap();
    let stderr = stderr_of_failure(&out);
    assert!(stderr.contains("/nonexistent/client.pem"), "{stderr}");
    assert!(stderr.contains("client certificate"), "{stderr}");
    // Nothing changed in the namespace: forwarding still off, no routes of ours, nothing
    // registered in etcd.
    let forwarding = host
        .ns
        .exec("sysctl", &["-n", "net.ipv4.ip_forward"])
        .unwrap();
    assert_eq!(forwarding.trim(), "0");
    let routes = host.ns.ip(&["route", "show", "table", "all"]).unwrap();
    assert!(!routes.contains("10.245."), "{routes}");
    let keys = host
        .etcd
        .etcdctl(&["get", "--prefix", "--keys-only", "/fabric/v1/"])
        .unwrap();
    assert!(keys.trim().is_empty(), "{keys}");
}

#[test]
fn bgpd_with_the_wrong_ca_waits_for_etcd_saying_why_and_still_stops() {
    let other_dir = tempfile::tempdir().unwrap();
    let other = Pki::generate(other_dir.path()).unwrap();
    let mut host = TlsHost::new(|pki| {
        format!(
            "ca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}",
            other.ca(),
            pki.client_cert(),
            pki.client_key()
        )
    });
    host.start_bgpd();
    let said = wait_until(Duration::from_secs(20), || {
        host.log().contains("invalid peer certificate")
    });
    assert!(said, "no TLS error in the log:\n{}", host.log());
    let bgpd = host.bgpd.as_mut().unwrap();
    assert!(!bgpd.has_exited(), "bgpd gave up:\n{}", host.log());
    // Nothing was registered, and SIGTERM still stops it at once.
    let keys = host
        .etcd
        .etcdctl(&["get", "--prefix", "--keys-only", "/fabric/v1/nodes/"])
        .unwrap();
    assert!(keys.trim().is_empty(), "{keys}");
    let bgpd = host.bgpd.as_mut().unwrap();
    bgpd.signal(libc::SIGTERM).unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || bgpd.has_exited()),
        "bgpd did not stop on SIGTERM"
    );
    assert!(!host.log().contains("panicked"), "{}", host.log());
}
