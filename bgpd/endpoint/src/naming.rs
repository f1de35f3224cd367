//! How our interfaces are named and recognized.
//!
//! The host-side name is a fixed prefix plus a hash of (container id, interface), so it is stable
//! across restarts and reattaches (the daemon can recompute it from what etcd holds) and fits the
//! kernel's 15 bytes. The prefix lets operators tell our interfaces apart (`ip link | grep bgpd`),
//! like Calico's `cali…`. A name says nothing about ownership by itself, so each end also carries
//! an alias naming the container; an interface whose alias names someone else is never touched.

use sha2::{Digest, Sha256};

use crate::spec::{ContainerId, IfName};

/// Prefix of every host-side interface we create.
pub const HOST_IFNAME_PREFIX: &str = "bgpd";

/// Hex digits of the hash in the name: 15 bytes minus the prefix, 44 bits.
const HASH_HEX_DIGITS: usize = IfName::MAX_LEN - HOST_IFNAME_PREFIX.len();

/// The host-side interface name of `ifname` in container `id`.
pub fn host_ifname(id: &ContainerId, ifname: &IfName) -> IfName {
    // '/' can appear in neither part, so (id, ifname) ↦ input is one-to-one.
    let digest = Sha256::digest(format!("{id}/{ifname}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let name = format!("{HOST_IFNAME_PREFIX}{}", &hex[..HASH_HEX_DIGITS]);
    // A prefix and hex digits are always a valid name of exactly 15 bytes.
    IfName::new(&name).unwrap_or_else(|_| unreachable!("{name} is a valid interface name"))
}

/// Start of the alias (IFLA_IFALIAS) both ends of our veth pair carry.
const ALIAS_PREFIX: &str = "bgpd-endpoint container=";
const ALIAS_IFNAME: &str = " ifname=";

/// The alias (IFLA_IFALIAS) both ends of our veth pair carry.
pub fn ownership_alias(id: &ContainerId, ifname: &IfName) -> String {
    format!("{ALIAS_PREFIX}{id}{ALIAS_IFNAME}{ifname}")
}

/// The (container id, interface) an alias of ours names; None for any other text.
pub fn parse_ownership_alias(alias: &str) -> Option<(ContainerId, IfName)> {
    let (id, ifname) = alias.strip_prefix(ALIAS_PREFIX)?.split_once(ALIAS_IFNAME)?;
    Some((ContainerId::new(id).ok()?, IfName::new(ifname).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ContainerId {
        ContainerId::new(s).unwrap()
    }

    #[test]
    fn names_are_stable_prefixed_and_fit() {
        let eth0 = IfName::default();
        let a = host_ifname(&id("abc"), &eth0);
        assert_eq!(a, host_ifname(&id("abc"), &eth0));
        assert_eq!(a.as_str().len(), 15);
        assert!(a.as_str().starts_with(HOST_IFNAME_PREFIX));
        // Pinned so a change of scheme (which would orphan live interfaces) is a visible decision.
        assert_eq!(a.as_str(), "bgpd538f587a236");
    }

    #[test]
    fn names_differ_by_container_and_interface() {
        let eth0 = IfName::default();
        let net1 = IfName::new("net1").unwrap();
        assert_ne!(
            host_ifname(&id("abc"), &eth0),
            host_ifname(&id("abd"), &eth0)
        );
        assert_ne!(
            host_ifname(&id("abc"), &eth0),
            host_ifname(&id("abc"), &net1)
        );
    }

    #[test]
    fn aliases_round_trip_and_reject_others() {
        let (c, i) = (id("k8s_abc.1-x"), IfName::new("net1").unwrap());
        assert_eq!(
            parse_ownership_alias(&ownership_alias(&c, &i)),
            Some((c, i))
        );
        for other in [
            "",
            "uplink",
            "bgpd-endpoint container= ifname=eth0",
            "bgpd-endpoint container=abc",
            "bgpd-endpoint container=a b ifname=eth0",
            "bgpd-endpoint container=abc ifname=",
        ] {
            assert_eq!(parse_ownership_alias(other), None, "{other:?}");
        }
    }

    #[test]
    fn alias_fits_the_kernel_limit() {
        let longest = id(&"f".repeat(ContainerId::MAX_LEN));
        let name = IfName::new("fifteen-chars-x").unwrap();
        assert!(ownership_alias(&longest, &name).len() < 256);
    }
}
