//! The network configuration on stdin: the keys we read, checked, and the versions we speak.

use std::net::IpAddr;
use std::path::PathBuf;

use bgpd_api::Labels;
use serde::{Deserialize, Serialize};

use crate::error::{CniError, Code};

/// CNI versions whose result format we produce (CHECK needs 0.4.0 or later).
pub const SUPPORTED_VERSIONS: [&str; 4] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

/// The version we answer in when the config names none we know.
pub const DEFAULT_VERSION: &str = "1.0.0";

/// The network configuration (one plugin entry of a conflist, as the runtime passes it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NetConf {
    /// The spec version the runtime speaks.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// The network's name.
    pub name: String,
    /// The plugin (binary) name, `bgpd-cni`.
    #[serde(rename = "type")]
    pub plugin: String,
    /// bgpd's control socket; `/run/bgpd/bgpd.sock` when absent.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// MTU of the veth pair; bgpd's default (1500) when absent.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// DNS settings passed through to the result.
    #[serde(default, deserialize_with = "null_as_default")]
    pub dns: Dns,
    /// Runtime-supplied values (the `ips` capability).
    #[serde(
        rename = "runtimeConfig",
        default,
        deserialize_with = "null_as_default"
    )]
    pub runtime_config: RuntimeConfig,
    /// Another IPAM plugin: not supported (bgpd is the IPAM), refused with code 2.
    #[serde(default)]
    pub ipam: Option<serde_json::Value>,
    /// The result of the previous ADD (CHECK compares against it).
    #[serde(rename = "prevResult", default)]
    pub prev_result: Option<serde_json::Value>,
    /// Per-container arguments from the runtime (CNI conventions, `args.cni.labels`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub args: Args,
}

/// An explicit `null` reads as an absent key (runtimes write `"args": null`); `#[serde(default)]`
/// alone only covers absence.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `args`: the runtime's per-container arguments; other plugins' keys are ignored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Args {
    /// The `cni` namespace of the conventions.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cni: CniArgs,
}

/// `args.cni`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct CniArgs {
    /// `labels: [{"key": …, "value": …}]`: the container's labels.
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: Vec<LabelArg>,
}

/// One entry of `args.cni.labels`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LabelArg {
    /// The label key.
    pub key: String,
    /// The label value.
    pub value: String,
}

/// `runtimeConfig`: what the runtime fills for capabilities we declare.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RuntimeConfig {
    /// The `ips` capability: `["10.244.1.7/24", "fd00::7"]`, with or without a prefix length.
    #[serde(default, deserialize_with = "null_as_default")]
    pub ips: Vec<String>,
}

/// DNS settings (CNI result `dns`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// resolv.conf options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl NetConf {
    /// Parses stdin: not JSON is code 6, JSON of the wrong shape code 7, an unknown version
    /// code 1, an `ipam` section code 2.
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let value: serde_json::Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(Code::Decode, "network config is not JSON", e.to_string())
        })?;
        let conf: NetConf = serde_json::from_value(value).map_err(|e| {
            CniError::new(
                Code::InvalidNetconf,
                "invalid network config",
                e.to_string(),
            )
        })?;
        if !SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()) {
            return Err(CniError::new(
                Code::IncompatibleVersion,
                "incompatible CNI version",
                format!(
                    "config has cniVersion {:?}; bgpd-cni speaks {}",
                    conf.cni_version,
                    SUPPORTED_VERSIONS.join(", ")
                ),
            ));
        }
        if conf.name.is_empty()
            || !conf
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(CniError::new(
                Code::InvalidNetconf,
                "invalid network config",
                format!("name {:?}: letters, digits, '-', '_' and '.'", conf.name),
            ));
        }
        if let Some(ipam) = &conf.ipam {
            return Err(CniError::new(
                Code::UnsupportedField,
                "unsupported field",
                format!("ipam = {ipam}: bgpd assigns addresses itself; remove the ipam section"),
            ));
        }
        Ok(conf)
    }

    /// Whether results carry the pre-1.0 `version` field on each IP.
    pub fn wants_ip_version_field(&self) -> bool {
        self.cni_version.starts_with("0.")
    }

    /// The labels of `args.cni.labels`, checked (a key given twice: the last value wins).
    pub fn labels(&self) -> Result<Labels, CniError> {
        let mut labels = Labels::new();
        for l in &self.args.cni.labels {
            bgpd_api::check_label(&l.key, &l.value).map_err(|e| {
                CniError::new(
                    Code::InvalidNetconf,
                    "invalid network config",
                    format!("args.cni.labels: {e}"),
                )
            })?;
            labels.insert(l.key.clone(), l.value.clone());
        }
        Ok(labels)
    }

    /// The addresses the runtime asks for (`runtimeConfig.ips`).
    pub fn requested_ips(&self) -> Result<Vec<IpAddr>, CniError> {
        self.runtime_config
            .ips
            .iter()
            .map(|s| {
                let ip = s.split_once('/').map_or(s.as_str(), |(ip, _)| ip);
                ip.parse().map_err(|_| {
                    CniError::new(
                        Code::InvalidNetconf,
                        "invalid network config",
                        format!("runtimeConfig.ips: {s:?} is not an address"),
                    )
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_conflist_plugin_parses() {
        let list: serde_json::Value =
            serde_json::from_str(include_str!("../10-bgpd.conflist")).unwrap();
        let mut plugin = list["plugins"][0].clone();
        plugin["cniVersion"] = list["cniVersion"].clone();
        plugin["name"] = list["name"].clone();
        let conf = NetConf::parse(plugin.to_string().as_bytes()).unwrap();
        assert_eq!(conf.plugin, "bgpd-cni");
        assert_eq!(conf.socket, Some(PathBuf::from(bgpd_api::DEFAULT_SOCKET)));
    }

    #[test]
    fn stdin_errors_map_to_their_codes() {
        for (stdin, code) in [
            ("", Code::Decode),
            ("{not json", Code::Decode),
            ("[1,2]", Code::InvalidNetconf),
            (r#"{"name":"n","type":"bgpd-cni"}"#, Code::InvalidNetconf),
            (
                r#"{"cniVersion":"1.0.0","type":"bgpd-cni"}"#,
                Code::InvalidNetconf,
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"a b","type":"bgpd-cni"}"#,
                Code::InvalidNetconf,
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"bgpd-cni","mtu":-1}"#,
                Code::InvalidNetconf,
            ),
            (
                r#"{"cniVersion":"9.9.9","name":"n","type":"bgpd-cni"}"#,
                Code::IncompatibleVersion,
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"bgpd-cni","ipam":{"type":"host-local"}}"#,
                Code::UnsupportedField,
            ),
        ] {
            let err = NetConf::parse(stdin.as_bytes()).unwrap_err();
            assert_eq!(err.code, code, "{stdin}: {err}");
        }
    }

    #[test]
    fn labels_from_args_cni() {
        let conf = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"bgpd-cni",
                 "args":{"cni":{"labels":[{"key":"role","value":"db"},
                                          {"key":"app.kubernetes.io/name","value":"pg"},
                                          {"key":"role","value":"web"}]},
                         "other-plugin":{"x":1}}}"#,
        )
        .unwrap();
        let labels = conf.labels().unwrap();
        assert_eq!(labels.len(), 2);
        assert_eq!(labels["role"], "web");
        assert_eq!(labels["app.kubernetes.io/name"], "pg");
        let none = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"bgpd-cni"}"#);
        assert!(none.unwrap().labels().unwrap().is_empty());
        let bad = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"bgpd-cni",
                 "args":{"cni":{"labels":[{"key":"ro le","value":"db"}]}}}"#,
        )
        .unwrap();
        let e = bad.labels().unwrap_err();
        assert_eq!(e.code, Code::InvalidNetconf);
        assert!(e.details.contains("label \"ro le\""), "{e}");
        for shape in [
            r#""args":{"cni":{"labels":"role=db"}}"#,
            r#""args":{"cni":{"labels":[{"key":"role"}]}}"#,
            r#""args":{"cni":{"labels":[{"key":1,"value":"x"}]}}"#,
            r#""args":{"cni":"labels"}"#,
        ] {
            let stdin = format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"bgpd-cni",{shape}}}"#);
            let e = NetConf::parse(stdin.as_bytes()).unwrap_err();
            assert_eq!(e.code, Code::InvalidNetconf, "{shape}: {e}");
        }
    }

    #[test]
    fn null_reads_as_absent() {
        for shape in [
            r#""args":null"#,
            r#""args":{"cni":null}"#,
            r#""args":{"cni":{"labels":null}}"#,
            r#""dns":null,"runtimeConfig":null"#,
            r#""runtimeConfig":{"ips":null}"#,
        ] {
            let stdin = format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"bgpd-cni",{shape}}}"#);
            let conf = NetConf::parse(stdin.as_bytes()).unwrap_or_else(|e| panic!("{shape}: {e}"));
            assert!(conf.labels().unwrap().is_empty(), "{shape}");
            assert!(conf.requested_ips().unwrap().is_empty(), "{shape}");
            assert_eq!(conf.dns, Dns::default(), "{shape}");
        }
    }

    #[test]
    fn runtime_ips_with_or_without_prefix() {
        let conf = NetConf::parse(
            br#"{"cniVersion":"0.4.0","name":"n","type":"bgpd-cni",
                 "runtimeConfig":{"ips":["10.244.1.7/24","fd00::7"]}}"#,
        )
        .unwrap();
        assert!(conf.wants_ip_version_field());
        assert_eq!(conf.requested_ips().unwrap().len(), 2);
        let bad = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"bgpd-cni","runtimeConfig":{"ips":["x"]}}"#,
        )
        .unwrap();
        assert_eq!(bad.requested_ips().unwrap_err().code, Code::InvalidNetconf);
    }
}
