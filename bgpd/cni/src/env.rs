//! The CNI_* environment of one invocation, parsed and checked as the spec demands.

use std::collections::HashMap;
use std::net::IpAddr;

use bgpd_api::Labels;

use crate::error::{CniError, Code};

/// The label a Kubernetes pod's namespace (CNI_ARGS `K8S_POD_NAMESPACE`) becomes.
pub const NAMESPACE_LABEL: &str = "fabric.io/namespace";
/// The label a Kubernetes pod's name (CNI_ARGS `K8S_POD_NAME`) becomes, when it is a valid
/// label value (pod names may run to 253 characters, label values to 63: longer ones get none).
pub const POD_LABEL: &str = "fabric.io/pod";

/// CNI_COMMAND.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach the container.
    Add,
    /// Detach it (idempotent).
    Del,
    /// Verify the attachment.
    Check,
    /// Report the versions we speak.
    Version,
}

/// The parsed environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// CNI_COMMAND.
    pub command: Command,
    /// CNI_CONTAINERID (all commands but VERSION).
    pub container_id: String,
    /// CNI_NETNS (ADD and CHECK; may be absent on DEL).
    pub netns: Option<String>,
    /// CNI_IFNAME.
    pub ifname: String,
    /// CNI_ARGS' `IP=` addresses, if given (ADD only: DEL and CHECK ignore CNI_ARGS).
    pub ips: Vec<IpAddr>,
    /// Labels from CNI_ARGS: [`NAMESPACE_LABEL`] and [`POD_LABEL`] (ADD only).
    pub labels: Labels,
}

/// CNI_ARGS keys Kubernetes and containerd pass that we accept (the pod's namespace and name
/// become labels; the rest we do not need).
const KNOWN_ARGS: [&str; 5] = [
    "K8S_POD_NAMESPACE",
    "K8S_POD_NAME",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
    "IgnoreUnknown",
];

impl Invocation {
    /// Reads the invocation from environment variables (`std::env::vars()` in the binary).
    pub fn from_env(env: &HashMap<String, String>) -> Result<Invocation, CniError> {
        let command = match env.get("CNI_COMMAND").map(String::as_str) {
            Some("ADD") => Command::Add,
            Some("DEL") => Command::Del,
            Some("CHECK") => Command::Check,
            Some("VERSION") => Command::Version,
            Some(other) => {
                return Err(invalid(
                    "CNI_COMMAND",
                    &format!("unknown command {other:?}"),
                ));
            }
            None => return Err(invalid("CNI_COMMAND", "not set")),
        };
        if command == Command::Version {
            return Ok(Invocation {
                command,
                container_id: String::new(),
                netns: None,
                ifname: String::new(),
                ips: Vec::new(),
                labels: Labels::new(),
            });
        }
        let container_id = required(env, "CNI_CONTAINERID")?;
        if !container_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(
                "CNI_CONTAINERID",
                &format!("{container_id:?}: only letters, digits, '-', '_' and '.' are allowed"),
            ));
        }
        let ifname = required(env, "CNI_IFNAME")?;
        if ifname.len() > 15
            || ifname == "."
            || ifname == ".."
            || ifname.contains(|c: char| c == '/' || c == ':' || c.is_whitespace())
        {
            return Err(invalid(
                "CNI_IFNAME",
                &format!("{ifname:?}: at most 15 bytes, no '/', ':' or blanks, not '.' or '..'"),
            ));
        }
        let netns = env.get("CNI_NETNS").filter(|s| !s.is_empty()).cloned();
        if netns.is_none() && command != Command::Del {
            return Err(invalid("CNI_NETNS", "not set"));
        }
        // Only ADD uses CNI_ARGS. DEL must succeed as far as it can (the spec: a DEL follows a
        // failed ADD, and the runtime retries a failing DEL without end), and CHECK compares
        // what bgpd has with the previous result, so neither reads arguments it does not need.
        let Parsed { ips, labels } = match command {
            Command::Add => parse_args(env.get("CNI_ARGS").map_or("", String::as_str))?,
            _ => Parsed::default(),
        };
        Ok(Invocation {
            command,
            container_id,
            netns,
            ifname,
            ips,
            labels,
        })
    }
}

fn required(env: &HashMap<String, String>, key: &str) -> Result<String, CniError> {
    match env.get(key) {
        Some(v) if !v.is_empty() => Ok(v.clone()),
        _ => Err(invalid(key, "not set")),
    }
}

fn invalid(key: &str, what: &str) -> CniError {
    CniError::new(Code::InvalidEnv, format!("invalid {key}"), what)
}

/// What CNI_ARGS gives us.
#[derive(Default)]
struct Parsed {
    ips: Vec<IpAddr>,
    labels: Labels,
}

/// `K=V;K=V`: `IP=a` gives the requested address (a list parses, but bgpd assigns at most one); Kubernetes' keys are accepted, the pod's namespace
/// and name become labels; any other key is an error unless `IgnoreUnknown=1` (or `true`), as
/// libcni's convention has it.
fn parse_args(args: &str) -> Result<Parsed, CniError> {
    let pairs = args
        .split(';')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .ok_or_else(|| invalid("CNI_ARGS", &format!("{p:?} is not KEY=VALUE")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ignore_unknown = pairs.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("IgnoreUnknown")
            && matches!(v.to_ascii_lowercase().as_str(), "1" | "true")
    });
    let mut ips = Vec::new();
    let mut labels = Labels::new();
    for (key, value) in pairs {
        if key == "K8S_POD_NAMESPACE" && !value.is_empty() {
            bgpd_api::check_label(NAMESPACE_LABEL, value)
                .map_err(|e| invalid("CNI_ARGS", &format!("K8S_POD_NAMESPACE: {e}")))?;
            labels.insert(NAMESPACE_LABEL.to_string(), value.to_string());
        } else if key == "K8S_POD_NAME" && !value.is_empty() {
            if bgpd_api::check_label(POD_LABEL, value).is_ok() {
                labels.insert(POD_LABEL.to_string(), value.to_string());
            }
        } else if key == "IP" {
            for ip in value.split(',') {
                ips.push(ip.parse().map_err(|_| {
                    invalid("CNI_ARGS", &format!("IP={value}: {ip:?} is not an address"))
                })?);
            }
        } else if !ignore_unknown && !KNOWN_ARGS.contains(&key) {
            return Err(invalid(
                "CNI_ARGS",
                &format!("unknown key {key:?} (set IgnoreUnknown=1 to allow)"),
            ));
        }
    }
    Ok(Parsed { ips, labels })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const ADD: [(&str, &str); 4] = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc-123_x.y"),
        ("CNI_NETNS", "/var/run/netns/cni-1234"),
        ("CNI_IFNAME", "eth0"),
    ];

    #[test]
    fn a_full_add_environment_parses() {
        let mut e = env(&ADD);
        e.insert(
            "CNI_ARGS".into(),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web-0;IP=10.244.1.7,fd00::7;FOO=bar"
                .into(),
        );
        let i = Invocation::from_env(&e).unwrap();
        assert_eq!(i.labels[NAMESPACE_LABEL], "prod");
        assert_eq!(i.labels[POD_LABEL], "web-0");
        assert_eq!(i.command, Command::Add);
        assert_eq!(i.container_id, "abc-123_x.y");
        assert_eq!(i.netns.as_deref(), Some("/var/run/netns/cni-1234"));
        assert_eq!(
            i.ips,
            vec![
                "10.244.1.7".parse::<IpAddr>().unwrap(),
                "fd00::7".parse().unwrap()
            ]
        );
    }

    #[test]
    fn bad_environments_are_invalid_env() {
        // (variable, value or None to unset, the variable the error must name)
        let cases: [(&str, Option<&str>, &str); 12] = [
            ("CNI_COMMAND", None, "CNI_COMMAND"),
            ("CNI_COMMAND", Some("ATTACH"), "CNI_COMMAND"),
            ("CNI_CONTAINERID", None, "CNI_CONTAINERID"),
            ("CNI_CONTAINERID", Some("a/b"), "CNI_CONTAINERID"),
            ("CNI_CONTAINERID", Some(""), "CNI_CONTAINERID"),
            ("CNI_IFNAME", Some("eth0-much-too-long"), "CNI_IFNAME"),
            ("CNI_IFNAME", Some(".."), "CNI_IFNAME"),
            ("CNI_IFNAME", Some("et h0"), "CNI_IFNAME"),
            ("CNI_NETNS", Some(""), "CNI_NETNS"),
            ("CNI_ARGS", Some("FOO=bar"), "CNI_ARGS"),
            ("CNI_ARGS", Some("justtext"), "CNI_ARGS"),
            ("CNI_ARGS", Some("IP=10.0.0.300"), "CNI_ARGS"),
        ];
        for (var, value, key) in cases {
            let mut e = env(&ADD);
            match value {
                Some(v) => e.insert(var.into(), v.into()),
                None => e.remove(var),
            };
            let err = Invocation::from_env(&e).unwrap_err();
            assert_eq!(err.code, Code::InvalidEnv, "{key}: {err}");
            assert!(err.msg.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn pod_labels_from_cni_args() {
        let with = |args: &str| {
            let mut e = env(&ADD);
            e.insert("CNI_ARGS".into(), args.into());
            Invocation::from_env(&e)
        };
        assert!(with("").unwrap().labels.is_empty());
        assert!(
            with("K8S_POD_NAME=;K8S_POD_NAMESPACE=")
                .unwrap()
                .labels
                .is_empty()
        );
        // A pod name longer than a label value may be is a valid pod: it just gets no label.
        let long = format!("K8S_POD_NAMESPACE=ns;K8S_POD_NAME={}", "p".repeat(64));
        let i = with(&long).unwrap();
        assert_eq!(i.labels.keys().collect::<Vec<_>>(), vec![NAMESPACE_LABEL]);
        let e = with("K8S_POD_NAMESPACE=not a namespace").unwrap_err();
        assert_eq!(e.code, Code::InvalidEnv);
        assert!(e.details.contains("K8S_POD_NAMESPACE"), "{e}");
        assert!(e.msg.contains("CNI_ARGS"), "{e}");
    }

    #[test]
    fn del_needs_no_netns_and_version_needs_nothing() {
        let mut e = env(&ADD);
        e.insert("CNI_COMMAND".into(), "DEL".into());
        e.remove("CNI_NETNS");
        assert_eq!(Invocation::from_env(&e).unwrap().netns, None);
        let v = Invocation::from_env(&env(&[("CNI_COMMAND", "VERSION")])).unwrap();
        assert_eq!(v.command, Command::Version);
    }
}
