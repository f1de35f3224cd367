//! Where to find the daemon, etcd and the policy: flags and environment first, then bgpd's
//! configuration file (as calicoctl reads its own), then the defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bgpd_config::{Config, TlsFiles};
use ipam::{EtcdTls, Ipam, IpamOptions, RetryPolicy, StoreOptions};

use crate::cli::Global;
use crate::failure::Failure;

/// How long routectl keeps retrying an unreachable etcd before saying so (a person waits).
const ETCD_PATIENCE: Duration = Duration::from_secs(3);

/// The resolved targets of one invocation.
#[derive(Debug)]
pub struct Settings {
    /// The control socket.
    pub socket: PathBuf,
    /// etcd client URLs.
    pub etcd_endpoints: Vec<String>,
    /// TLS files for etcd, read when etcd is first needed (commands for the daemon never
    /// need them, nor the right to read them).
    pub etcd_tls: Option<TlsFiles>,
    /// Key root of the fabric in etcd.
    pub etcd_root: String,
    /// The configured policy file, if any.
    pub policy_file: Option<PathBuf>,
}

impl Settings {
    /// Resolves flags against the config file; a config file that exists but is invalid is an
    /// error (silently ignoring it would aim routectl at the wrong daemon).
    pub fn resolve(global: &Global) -> Result<Settings, Failure> {
        let config = load_if_present(&global.config)?;
        let socket = global.socket.clone().unwrap_or_else(|| match &config {
            Some(c) => c.api.socket.clone(),
            None => PathBuf::from(bgpd_api::DEFAULT_SOCKET),
        });
        let etcd_endpoints = if global.etcd_endpoints.is_empty() {
            match &config {
                Some(c) => c
                    .etcd
                    .endpoints
                    .iter()
                    .map(|e| e.as_str().to_string())
                    .collect(),
                None => vec!["http://127.0.0.1:2379".to_string()],
            }
        } else {
            global.etcd_endpoints.clone()
        };
        let etcd_tls = tls_files(global, config.as_ref().and_then(|c| c.etcd.tls.clone()))?;
        Ok(Settings {
            socket,
            etcd_endpoints,
            etcd_tls,
            etcd_root: global.etcd_root.clone(),
            policy_file: config.and_then(|c| c.policy.file),
        })
    }

    /// A client of the local daemon.
    pub fn daemon(&self) -> bgpd_api::Client {
        bgpd_api::Client::new(&self.socket)
    }

    /// An IPAM client over etcd that gives up on an unreachable etcd after a few seconds.
    pub async fn ipam(&self) -> Result<Ipam, Failure> {
        let tls = self
            .etcd_tls
            .as_ref()
            .map(EtcdTls::from_config)
            .transpose()
            .map_err(|e| Failure::Ipam(e.into()))?;
        let opts = IpamOptions {
            root: self.etcd_root.clone(),
            retry: RetryPolicy {
                unavailable_budget: ETCD_PATIENCE,
                ..RetryPolicy::default()
            },
            store: StoreOptions {
                tls,
                ..StoreOptions::default()
            },
            ..IpamOptions::default()
        };
        Ipam::connect(&self.etcd_endpoints, opts)
            .await
            .map_err(|e| self.etcd_failure(e))
    }

    /// Maps an IPAM error of this invocation's etcd.
    pub fn etcd_failure(&self, e: ipam::IpamError) -> Failure {
        Failure::from_ipam(&self.etcd_endpoints, e)
    }
}

/// The TLS files: each flag (or its environment variable) over the config's `[etcd.tls]`.
fn tls_files(global: &Global, config: Option<TlsFiles>) -> Result<Option<TlsFiles>, Failure> {
    let ca = global
        .etcd_ca
        .clone()
        .or(config.as_ref().map(|c| c.ca_file.clone()));
    let cert_file = global
        .etcd_cert
        .clone()
        .or(config.as_ref().and_then(|c| c.cert_file.clone()));
    let key_file = global
        .etcd_key
        .clone()
        .or(config.as_ref().and_then(|c| c.key_file.clone()));
    let server_name = global
        .etcd_server_name
        .clone()
        .or(config.and_then(|c| c.server_name));
    if cert_file.is_some() != key_file.is_some() {
        return Err(Failure::Usage(
            "--etcd-cert and --etcd-key go together (or etcd.tls.cert_file and key_file)".into(),
        ));
    }
    match ca {
        Some(ca_file) => Ok(Some(TlsFiles {
            ca_file,
            cert_file,
            key_file,
            server_name,
        })),
        None if cert_file.is_some() || server_name.is_some() => Err(Failure::Usage(
            "TLS to etcd needs --etcd-ca (or etcd.tls.ca_file in the config)".into(),
        )),
        None => Ok(None),
    }
}

fn load_if_present(path: &Path) -> Result<Option<Config>, Failure> {
    if !path.exists() {
        return Ok(None);
    }
    Config::load(path).map(Some).map_err(Failure::from)
}
