//! Named address sets the table declares: one per rule selector and per pool list.

use std::collections::{BTreeMap, BTreeSet};

use ipnetwork::IpNetwork;

use crate::compile::Inputs;
use crate::model::{IpVersion, Name};
use crate::selector::Selector;

/// Named address sets for rule selectors and pool lists, `<base>_v4` and `<base>_v6`.
pub(crate) struct AddressSets<'a> {
    pub(crate) inputs: &'a Inputs<'a>,
    selectors: BTreeMap<Selector, usize>,
    pool_lists: BTreeMap<Vec<Name>, usize>,
    /// (base name, what it is, members).
    pub(crate) defs: Vec<(String, String, BTreeSet<IpNetwork>)>,
}

impl<'a> AddressSets<'a> {
    pub(crate) fn new(inputs: &'a Inputs<'a>) -> Self {
        AddressSets {
            inputs,
            selectors: BTreeMap::new(),
            pool_lists: BTreeMap::new(),
            defs: Vec::new(),
        }
    }

    /// The set of addresses of every endpoint (local, remote, host) the selector matches.
    pub(crate) fn selector(&mut self, s: &Selector) -> (String, Families) {
        if let Some(&i) = self.selectors.get(s) {
            return self.describe(i);
        }
        let inputs = self.inputs;
        let hosts = inputs
            .file
            .host_endpoints
            .iter()
            .map(|h| (&h.labels, &h.ips));
        let members: BTreeSet<IpNetwork> = inputs
            .workloads
            .iter()
            .map(|w| (&w.labels, &w.ips))
            .chain(inputs.remote.iter().map(|r| (&r.labels, &r.ips)))
            .chain(hosts)
            .filter(|(labels, _)| s.matches(labels))
            .flat_map(|(_, ips)| ips.iter().map(|ip| IpNetwork::from(*ip)))
            .collect();
        let i = self.define(
            format!("sel{}", self.defs.len()),
            format!("selector {s}"),
            members,
        );
        self.selectors.insert(s.clone(), i);
        self.describe(i)
    }

    /// The set of the named pools' networks.
    pub(crate) fn pools(&mut self, names: &[Name]) -> Result<(String, Families), Name> {
        let mut key = names.to_vec();
        key.sort();
        key.dedup();
        if let Some(&i) = self.pool_lists.get(&key) {
            return Ok(self.describe(i));
        }
        let mut members = BTreeSet::new();
        for name in &key {
            let pool = self
                .inputs
                .pools
                .iter()
                .find(|p| &p.name == name)
                .ok_or_else(|| name.clone())?;
            members.insert(pool.cidr);
        }
        let what = key.iter().map(Name::as_str).collect::<Vec<_>>().join(",");
        let i = self.define(
            format!("pools{}", self.defs.len()),
            format!("pools {what}"),
            members,
        );
        self.pool_lists.insert(key, i);
        Ok(self.describe(i))
    }

    fn define(&mut self, base: String, what: String, members: BTreeSet<IpNetwork>) -> usize {
        self.defs.push((base, what, members));
        self.defs.len() - 1
    }

    pub(crate) fn describe(&self, i: usize) -> (String, Families) {
        let (base, _, members) = &self.defs[i];
        (
            base.clone(),
            Families {
                v4: members.iter().any(IpNetwork::is_ipv4),
                v6: members.iter().any(IpNetwork::is_ipv6),
            },
        )
    }
}

/// Which address families a set has members of.
#[derive(Clone, Copy)]
pub(crate) struct Families {
    pub(crate) v4: bool,
    pub(crate) v6: bool,
}

impl Families {
    pub(crate) fn has(self, fam: IpVersion) -> bool {
        match fam {
            IpVersion::V4 => self.v4,
            IpVersion::V6 => self.v6,
        }
    }
}

pub(crate) fn fam_suffix(fam: IpVersion) -> &'static str {
    match fam {
        IpVersion::V4 => "v4",
        IpVersion::V6 => "v6",
    }
}

pub(crate) fn fam_of(net: &IpNetwork) -> IpVersion {
    if net.is_ipv4() {
        IpVersion::V4
    } else {
        IpVersion::V6
    }
}
