//! The commands: ADD attaches through bgpd, DEL detaches (idempotent), CHECK compares bgpd's
//! endpoint with the previous result, VERSION lists what we speak.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use bgpd_api::{AttachRequest, Client};
use serde_json::{Value, json};

use crate::env::{Command, Invocation};
use crate::error::{CniError, Code};
use crate::netconf::{DEFAULT_VERSION, NetConf, SUPPORTED_VERSIONS};
use crate::result::Success;

/// How long one call to bgpd may take before the runtime is told to try again.
const DAEMON_DEADLINE: Duration = Duration::from_secs(60);

/// What to print on stdout, and whether it is an error (exit status 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The JSON document for stdout (empty for a successful DEL).
    pub stdout: Option<Value>,
    /// Whether the invocation failed.
    pub failed: bool,
}

/// Runs one invocation: `env` are the process's variables, `stdin` its input.
pub async fn run(env: &HashMap<String, String>, stdin: &[u8]) -> Outcome {
    // The version errors are reported in: the config's if it has one we know.
    let version = serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| DEFAULT_VERSION.to_string());
    match dispatch(env, stdin, &version).await {
        Ok(stdout) => Outcome {
            stdout,
            failed: false,
        },
        Err(e) => Outcome {
            stdout: Some(e.to_json(&version)),
            failed: true,
        },
    }
}

async fn dispatch(
    env: &HashMap<String, String>,
    stdin: &[u8],
    version: &str,
) -> Result<Option<Value>, CniError> {
    let invocation = Invocation::from_env(env)?;
    if invocation.command == Command::Version {
        return Ok(Some(json!({
            "cniVersion": version,
            "supportedVersions": SUPPORTED_VERSIONS,
        })));
    }
    let conf = NetConf::parse(stdin)?;
    let client = Client::new(
        conf.socket
            .clone()
            .unwrap_or_else(|| bgpd_api::DEFAULT_SOCKET.into()),
    );
    match invocation.command {
        Command::Add => add(&client, &conf, &invocation).await.map(Some),
        Command::Del => del(&client, &invocation).await.map(|()| None),
        Command::Check => check(&client, &conf, &invocation).await.map(|()| None),
        Command::Version => Ok(None),
    }
}

async fn add(client: &Client, conf: &NetConf, inv: &Invocation) -> Result<Value, CniError> {
    let netns = inv.netns.clone().unwrap_or_default();
    let mut ips = conf.requested_ips()?;
    for ip in &inv.ips {
        if !ips.contains(ip) {
            ips.push(*ip);
        }
    }
    // The runtime's facts (the pod's namespace and name) override the config's labels.
    let mut labels = conf.labels()?;
    labels.extend(inv.labels.clone());
    let request = AttachRequest {
        container_id: inv.container_id.clone(),
        ifname: inv.ifname.clone(),
        netns: netns.clone(),
        ips,
        mtu: conf.mtu,
        labels,
    };
    let endpoint = within_deadline(client.attach(&request)).await?;
    serde_json::to_value(Success::of(conf, &endpoint, &netns))
        .map_err(|e| CniError::new(Code::Io, "cannot encode the result", e.to_string()))
}

/// DEL succeeds whether or not bgpd knew the container (its netns may be long gone); it fails
/// only when bgpd cannot be asked, so the runtime retries and no address leaks.
async fn del(client: &Client, inv: &Invocation) -> Result<(), CniError> {
    within_deadline(client.detach(&inv.container_id, &inv.ifname))
        .await
        .map(drop)
}

async fn check(client: &Client, conf: &NetConf, inv: &Invocation) -> Result<(), CniError> {
    if conf.cni_version.starts_with("0.3.") {
        return Err(CniError::new(
            Code::IncompatibleVersion,
            "CHECK needs cniVersion 0.4.0 or later",
            format!("config has {}", conf.cni_version),
        ));
    }
    let endpoints = within_deadline(client.endpoints()).await?;
    let endpoint = endpoints
        .iter()
        .find(|e| e.container_id == inv.container_id && e.ifname == inv.ifname)
        .ok_or_else(|| {
            CniError::new(
                Code::UnknownContainer,
                "unknown container",
                format!("bgpd has no endpoint {}/{}", inv.container_id, inv.ifname),
            )
        })?;
    let Some(prev) = &conf.prev_result else {
        return Ok(());
    };
    let prev: Success = serde_json::from_value(prev.clone())
        .map_err(|e| CniError::new(Code::InvalidNetconf, "invalid prevResult", e.to_string()))?;
    let want: BTreeSet<IpAddr> = prev.ips.iter().map(|i| i.address.ip()).collect();
    let have: BTreeSet<IpAddr> = endpoint.ips.iter().map(|i| i.address.ip()).collect();
    if want != have {
        return Err(CniError::new(
            Code::Mismatch,
            "endpoint differs from the previous result",
            format!("prevResult has {want:?}, bgpd has {have:?}"),
        ));
    }
    Ok(())
}

async fn within_deadline<T>(
    call: impl Future<Output = Result<T, bgpd_api::ClientError>>,
) -> Result<T, CniError> {
    match tokio::time::timeout(DAEMON_DEADLINE, call).await {
        Ok(r) => r.map_err(CniError::from),
        Err(_) => Err(CniError::new(
            Code::TryAgainLater,
            "bgpd did not answer in time",
            format!("no answer within {}s", DAEMON_DEADLINE.as_secs()),
        )),
    }
}
