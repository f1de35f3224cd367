//! Per-interface sysctls, written through `/proc/sys` of the calling thread's namespace.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::spec::IfName;

/// One per-interface setting: `net.<family>.<group>.<ifname>.<key> = <value>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sysctl {
    family: &'static str,
    group: &'static str,
    key: &'static str,
    value: &'static str,
}

impl Sysctl {
    const fn new(
        family: &'static str,
        group: &'static str,
        key: &'static str,
        value: &'static str,
    ) -> Sysctl {
        Sysctl {
            family,
            group,
            key,
            value,
        }
    }

    fn path(&self, ifname: &IfName) -> PathBuf {
        [
            "/proc/sys/net",
            self.family,
            self.group,
            ifname.as_str(),
            self.key,
        ]
        .iter()
        .collect()
    }
}

/// Host side, IPv4: route the container's packets, answer its ARP for the gateway at once.
pub(crate) const HOST_IPV4: &[Sysctl] = &[
    Sysctl::new("ipv4", "conf", "forwarding", "1"),
    Sysctl::new("ipv4", "conf", "proxy_arp", "1"),
    // Proxy ARP answers to broadcast requests are delayed up to 0.8 s by default (proxy_delay);
    // a container's first packet would wait for that.
    Sysctl::new("ipv4", "neigh", "proxy_delay", "0"),
];

/// Host side, IPv6: hold fe80::1 as the gateway, usable at once.
pub(crate) const HOST_IPV6: &[Sysctl] = &[
    Sysctl::new("ipv6", "conf", "disable_ipv6", "0"),
    Sysctl::new("ipv6", "conf", "forwarding", "1"),
    // Router advertisements from a container must not configure the host.
    Sysctl::new("ipv6", "conf", "accept_ra", "0"),
    Sysctl::new("ipv6", "conf", "accept_dad", "0"),
];

/// Container side, IPv6: addresses usable at once; no configuration from stray RAs.
pub(crate) const CONTAINER_IPV6: &[Sysctl] = &[
    Sysctl::new("ipv6", "conf", "disable_ipv6", "0"),
    Sysctl::new("ipv6", "conf", "accept_dad", "0"),
    Sysctl::new("ipv6", "conf", "accept_ra", "0"),
];

/// Writes `settings` for `ifname` in the calling thread's namespace.
pub(crate) fn apply(ifname: &IfName, settings: &[Sysctl]) -> Result<()> {
    for s in settings {
        let path = s.path(ifname);
        std::fs::write(&path, s.value).map_err(|e| Error::io("write sysctl", path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_interface() {
        let eth0 = IfName::default();
        assert_eq!(
            HOST_IPV4[2].path(&eth0),
            PathBuf::from("/proc/sys/net/ipv4/neigh/eth0/proxy_delay")
        );
    }
}
