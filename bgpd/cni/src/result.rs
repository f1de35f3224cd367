//! The success result of ADD (and CHECK's prevResult): interfaces, IPs, routes, DNS.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bgpd_api::Endpoint;
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::netconf::{Dns, NetConf};

/// The CNI result (spec 1.0 "Success"; for 0.3.x/0.4.0 each IP also carries `version`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Success {
    /// The config's cniVersion.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Host veth end, then the container's interface.
    pub interfaces: Vec<Interface>,
    /// The container's addresses.
    pub ips: Vec<IpConfig>,
    /// Routes inside the container.
    pub routes: Vec<Route>,
    /// DNS, from the config.
    pub dns: Dns,
}

/// One interface of the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its MAC address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The netns path for interfaces inside the container; absent for the host end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// One address of the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// `"4"` or `"6"`, only for results before 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The address with its prefix length.
    pub address: IpNetwork,
    /// The default gateway for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces` (the container's interface).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// One route of the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination.
    pub dst: IpNetwork,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// Index of the container's interface in `interfaces`.
const CONTAINER_INTERFACE: usize = 1;

impl Success {
    /// The result for an endpoint bgpd attached in `netns`.
    pub fn of(conf: &NetConf, endpoint: &Endpoint, netns: &str) -> Success {
        let interfaces = vec![
            Interface {
                name: endpoint.host_ifname.clone(),
                mac: None,
                sandbox: None,
            },
            Interface {
                name: endpoint.ifname.clone(),
                mac: endpoint.mac.clone(),
                sandbox: Some(netns.to_string()),
            },
        ];
        let ips = endpoint
            .ips
            .iter()
            .map(|i| IpConfig {
                version: conf
                    .wants_ip_version_field()
                    .then(|| if i.address.is_ipv4() { "4" } else { "6" }.to_string()),
                address: i.address,
                gateway: Some(i.gateway),
                interface: Some(CONTAINER_INTERFACE),
            })
            .collect();
        let routes = endpoint
            .ips
            .iter()
            .map(|i| Route {
                dst: default_route(i.gateway),
                gw: Some(i.gateway),
            })
            .collect();
        Success {
            cni_version: conf.cni_version.clone(),
            interfaces,
            ips,
            routes,
            dns: conf.dns.clone(),
        }
    }
}

fn default_route(gateway: IpAddr) -> IpNetwork {
    let any = match gateway {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    IpNetwork::new(any, 0).unwrap_or_else(|_| IpNetwork::from(any))
}
