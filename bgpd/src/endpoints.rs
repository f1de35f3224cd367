//! Container endpoints: addresses from IPAM, plumbing by `bgpd-endpoint`, host routes into the
//! wanted set and borrowed addresses into BGP; and finding them again after a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use bgpd_api::{
    AttachRequest, DetachReport, Endpoint, EndpointIp, ErrorKind, IpamAddress, IpamView, Labels,
};
use bgpd_endpoint::{
    ContainerId, Detach, EndpointSpec, Endpoints, GATEWAY_V4, GATEWAY_V6, HostEndpoint, IfName,
    Mtu, NetnsRef,
};
use bgpd_kernel::Ifindex;
use ipam::{AssignRequest, AssignedIp, HandleId, HostName, Ipam, IpamError};
use ipnetwork::IpNetwork;

use crate::api::ApiError;
use crate::daemon::{Attached, Daemon};
use crate::state_file::CachedEndpoint;
use crate::workloads::WorkloadRecord;

/// The IPAM handle of a container interface: `<container id>:<ifname>` (neither may hold a
/// `:`, so the pair is unambiguous).
pub fn handle_of(container_id: &str, ifname: &str) -> Result<HandleId, ApiError> {
    HandleId::new(format!("{container_id}:{ifname}"))
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

fn ipam_error(e: IpamError) -> ApiError {
    let kind = match &e {
        IpamError::DatastoreUnavailable(_) | IpamError::ConflictBudgetExceeded { .. } => {
            ErrorKind::Unavailable
        }
        IpamError::AddressInUse { .. }
        | IpamError::PoolExhausted { .. }
        | IpamError::BlockLimitReached { .. } => ErrorKind::Conflict,
        IpamError::Invalid(_) => ErrorKind::BadRequest,
        IpamError::NotFound(_) => ErrorKind::NotFound,
        _ => ErrorKind::Internal,
    };
    ApiError::new(kind, format!("ipam: {e}"))
}

fn endpoint_error(e: bgpd_endpoint::Error) -> ApiError {
    let kind = match &e {
        bgpd_endpoint::Error::Invalid(_)
        | bgpd_endpoint::Error::NamespaceNotFound { .. }
        | bgpd_endpoint::Error::NotANamespace { .. } => ErrorKind::BadRequest,
        bgpd_endpoint::Error::NameClash { .. } | bgpd_endpoint::Error::DefaultRouteTaken { .. } => {
            ErrorKind::Conflict
        }
        _ => ErrorKind::Internal,
    };
    ApiError::new(kind, e.to_string())
}

fn as_endpoint(container_id: &str, ifname: &str, a: &Attached) -> Endpoint {
    Endpoint {
        container_id: container_id.to_string(),
        ifname: ifname.to_string(),
        host_ifname: a.host_ifname.clone(),
        host_ifindex: a.host_ifindex.get(),
        mac: a.mac.clone(),
        ips: a
            .ips
            .iter()
            .filter_map(|i| {
                let (len, gateway) = match i.ip {
                    IpAddr::V4(_) => (32, IpAddr::V4(GATEWAY_V4)),
                    IpAddr::V6(_) => (128, IpAddr::V6(GATEWAY_V6)),
                };
                Some(EndpointIp {
                    address: IpNetwork::new(i.ip, len).ok()?,
                    gateway,
                    borrowed: i.borrowed,
                })
            })
            .collect(),
        mtu: a.mtu,
        labels: a.labels.clone(),
    }
}

fn check_labels(labels: &Labels) -> Result<(), ApiError> {
    bgpd_api::check_labels(labels).map_err(|e| ApiError::bad_request(e.to_string()))
}

impl Daemon {
    /// Attaches a container interface: addresses from IPAM (the same ones again for the same
    /// container and ifname), veth and routes, then BGP for borrowed addresses.
    pub async fn attach(&self, req: &AttachRequest) -> Result<Endpoint, ApiError> {
        let bad = |e: bgpd_endpoint::InvalidSpec| ApiError::bad_request(e.to_string());
        let id = ContainerId::new(&req.container_id).map_err(bad)?;
        let ifname = IfName::new(&req.ifname).map_err(bad)?;
        let netns = NetnsRef::parse(&req.netns).map_err(bad)?;
        let mtu = Mtu::new(req.mtu.unwrap_or(1500)).map_err(bad)?;
        let handle = handle_of(id.as_str(), ifname.as_str())?;
        check_labels(&req.labels)?;
        if req.ips.len() > 1 {
            return Err(ApiError::bad_request(
                "at most one requested address is supported",
            ));
        }
        self.refuse_while_degraded().await?;
        let _serial = self.endpoint_ops.lock().await;
        let host = &self.identity.host;
        let assignment = match req.ips.first() {
            Some(ip) => self.ipam.assign_ip(&handle, host, *ip).await,
            None => {
                let pools = self.state.lock().await.pools.clone();
                let want = |v4: bool| u32::from(crate::pools::assigns(&pools, v4));
                self.ipam
                    .assign(&AssignRequest {
                        handle: handle.clone(),
                        host: host.clone(),
                        v4: want(true),
                        v6: want(false),
                    })
                    .await
            }
        }
        .map_err(ipam_error)?;
        let addresses: Vec<IpAddr> = assignment.ips.iter().map(|i| i.ip).collect();
        let spec = EndpointSpec::new(netns, id.clone(), ifname.clone(), addresses, mtu);
        let attachment = match spec {
            Ok(spec) => self.endpoints.attach(&spec).await.map_err(endpoint_error),
            Err(e) => Err(bad(e)),
        };
        let attachment = match attachment {
            Ok(a) => a,
            Err(e) => {
                // Nothing was plumbed: give the addresses back rather than leak them.
                if let Err(release) = self.ipam.release(&handle).await {
                    tracing::warn!(handle = %handle, "releasing after a failed attach: {release}");
                }
                return Err(e);
            }
        };
        let host_ifindex = Ifindex::new(attachment.host_ifindex)
            .ok_or_else(|| ApiError::internal("the kernel reported interface index 0"))?;
        let attached = Attached {
            host_ifname: attachment.host_ifname.as_str().to_string(),
            host_ifindex,
            mac: Some(attachment.container_mac.to_string()),
            mtu: Some(attachment.mtu.get()),
            ips: assignment.ips.clone(),
            labels: req.labels.clone(),
        };
        let record = WorkloadRecord::of(id.as_str(), ifname.as_str(), &attached);
        let endpoint = as_endpoint(id.as_str(), ifname.as_str(), &attached);
        tracing::info!(container = %id, ifname = %ifname, ips = ?addresses_of(&assignment.ips), "endpoint attached");
        let mut st = self.state.lock().await;
        // IPAM claims a new block when ours are full: blackhole and originate it from now on.
        for ip in assignment.ips.iter().filter(|i| !i.borrowed) {
            if !st.blocks.contains(&ip.block) {
                tracing::info!(block = %ip.block.network(), "new block in use");
                st.blocks.push(ip.block);
            }
        }
        st.attached.insert(
            (id.as_str().to_string(), ifname.as_str().to_string()),
            attached,
        );
        self.converge(&mut st).await;
        self.apply_firewall(&st);
        drop(st);
        self.publish(&record).await;
        Ok(endpoint)
    }

    /// Detaches a container interface and releases its addresses; unknown ones are fine.
    pub async fn detach(&self, container_id: &str, ifname: &str) -> Result<DetachReport, ApiError> {
        let bad = |e: bgpd_endpoint::InvalidSpec| ApiError::bad_request(e.to_string());
        let id = ContainerId::new(container_id).map_err(bad)?;
        let name = IfName::new(ifname).map_err(bad)?;
        let handle = handle_of(container_id, ifname)?;
        self.refuse_while_degraded().await?;
        let _serial = self.endpoint_ops.lock().await;
        let removed = self
            .endpoints
            .detach(&id, &name)
            .await
            .map_err(endpoint_error)?;
        {
            let mut st = self.state.lock().await;
            st.attached
                .remove(&(container_id.to_string(), ifname.to_string()));
            self.converge(&mut st).await;
            self.apply_firewall(&st);
        }
        if let Err(e) = self.workloads.delete(container_id, ifname).await {
            tracing::warn!(container = %container_id, ifname, "deleting the endpoint record: {e}; retried on the next sync");
        }
        let released = self.ipam.release(&handle).await.map_err(ipam_error)?;
        tracing::info!(container = %container_id, ifname, ?released, "endpoint detached");
        Ok(DetachReport {
            removed: removed == Detach::Removed,
            released,
        })
    }

    /// Replaces a running endpoint's labels, re-applies the firewall and rewrites its record.
    pub async fn relabel(
        &self,
        container_id: &str,
        ifname: &str,
        labels: Labels,
    ) -> Result<Endpoint, ApiError> {
        check_labels(&labels)?;
        self.refuse_while_degraded().await?;
        let _serial = self.endpoint_ops.lock().await;
        let mut st = self.state.lock().await;
        let key = (container_id.to_string(), ifname.to_string());
        let Some(attached) = st.attached.get_mut(&key) else {
            return Err(ApiError::new(
                ErrorKind::NotFound,
                format!("no endpoint {container_id}/{ifname}"),
            ));
        };
        attached.labels = labels;
        let endpoint = as_endpoint(container_id, ifname, attached);
        let record = WorkloadRecord::of(container_id, ifname, attached);
        tracing::info!(container = %container_id, ifname, labels = ?endpoint.labels, "endpoint relabelled");
        self.apply_firewall(&st);
        drop(st);
        self.publish(&record).await;
        Ok(endpoint)
    }

    /// Endpoint changes need etcd (addresses from IPAM, records): while we run from the state
    /// file they are refused as unavailable (503), so nothing is assigned or freed from it.
    async fn refuse_while_degraded(&self) -> Result<(), ApiError> {
        match &self.state.lock().await.degraded {
            Some(why) => Err(ApiError::new(
                ErrorKind::Unavailable,
                format!("etcd unreachable: {why}; endpoint changes wait for etcd"),
            )),
            None => Ok(()),
        }
    }

    /// `/v1/endpoints`.
    pub async fn endpoint_list(&self) -> Vec<Endpoint> {
        let st = self.state.lock().await;
        st.attached
            .iter()
            .map(|((id, ifname), a)| as_endpoint(id, ifname, a))
            .collect()
    }

    /// `/v1/ipam`.
    pub async fn ipam_view(&self) -> Result<IpamView, ApiError> {
        let blocks = self.block_usage().await;
        let st = self.state.lock().await;
        let addresses = st
            .attached
            .iter()
            .flat_map(|((id, ifname), a)| {
                a.ips.iter().map(move |i| IpamAddress {
                    ip: i.ip,
                    handle: format!("{id}:{ifname}"),
                    block: i.block.network(),
                    borrowed: i.borrowed,
                })
            })
            .collect();
        Ok(IpamView { blocks, addresses })
    }
}

fn addresses_of(ips: &[AssignedIp]) -> Vec<IpAddr> {
    ips.iter().map(|i| i.ip).collect()
}

impl Attached {
    /// An endpoint found on the host after a restart, with its addresses and labels from
    /// elsewhere (IPAM or the state file); MAC and MTU are not known then.
    fn found(
        e: &HostEndpoint,
        host_ifindex: Ifindex,
        ips: Vec<AssignedIp>,
        labels: Labels,
    ) -> Self {
        Attached {
            host_ifname: e.host_ifname.as_str().to_string(),
            host_ifindex,
            mac: None,
            mtu: None,
            ips,
            labels,
        }
    }
}

/// After a restart: our veths on the host joined with their IPAM handles. Handles of this host
/// whose veth is gone belong to containers that went away while we were down: released.
pub async fn restore(
    endpoints: &Endpoints,
    ipam: &Ipam,
    host: &HostName,
) -> Result<BTreeMap<(String, String), Attached>, String> {
    let found = endpoints.list().await.map_err(|e| e.to_string())?;
    let mut attached = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for e in found {
        let (id, ifname) = (e.container_id.as_str(), e.container_ifname.as_str());
        let Ok(handle) = handle_of(id, ifname) else {
            continue;
        };
        seen.insert(handle.clone());
        let Some(ifindex) = Ifindex::new(e.host_ifindex) else {
            continue;
        };
        match ipam.handle(&handle).await {
            Ok(Some(a)) => {
                // Labels come from the endpoint records (`WorkloadStore::restore`).
                attached.insert(
                    (id.to_string(), ifname.to_string()),
                    Attached::found(&e, ifindex, a.ips, Labels::new()),
                );
            }
            Ok(None) => tracing::warn!(
                container = id,
                ifname,
                "veth {} has no IPAM handle; leaving it alone",
                e.host_ifname
            ),
            Err(e) => return Err(e.to_string()),
        }
    }
    for a in ipam.handles_of(host).await.map_err(|e| e.to_string())? {
        if !seen.contains(&a.handle) {
            tracing::info!(handle = %a.handle, "releasing addresses of a container that is gone");
            if let Err(e) = ipam.release(&a.handle).await {
                tracing::warn!(handle = %a.handle, "release: {e}");
            }
        }
    }
    Ok(attached)
}

/// After a restart while etcd is unreachable: our veths on the host joined with the endpoints
/// of the state file. Nothing is released: a veth without a cached endpoint is left alone, and
/// a cached endpoint whose veth is gone is left out here, its addresses IPAM's to release once
/// etcd answers ([`restore`]).
pub async fn restore_cached(
    endpoints: &Endpoints,
    cached: &[CachedEndpoint],
) -> Result<BTreeMap<(String, String), Attached>, String> {
    let found = endpoints.list().await.map_err(|e| e.to_string())?;
    let mut attached = BTreeMap::new();
    for e in found {
        let (id, ifname) = (e.container_id.as_str(), e.container_ifname.as_str());
        let Some(ifindex) = Ifindex::new(e.host_ifindex) else {
            continue;
        };
        match cached
            .iter()
            .find(|c| c.container_id == id && c.ifname == ifname)
        {
            Some(c) => {
                attached.insert(
                    (id.to_string(), ifname.to_string()),
                    Attached::found(&e, ifindex, c.assigned(), c.labels.clone()),
                );
            }
            None => tracing::warn!(
                container = id,
                ifname,
                "veth {} is not in the state file; left alone until etcd answers",
                e.host_ifname
            ),
        }
    }
    Ok(attached)
}
