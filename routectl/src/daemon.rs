//! Commands answered by the local bgpd over its control socket: status, peers, routes, this
//! host's IPAM view and endpoints. The JSON output is the API's own types.

use std::fmt::Write as _;
use std::net::IpAddr;

use bgpd_api::{
    AttachRequest, BlockUsage, Client, DetachReport, Endpoint, FibAction, FibRoute, IpamView,
    KernelStatus, MessageCounts, Peer, PeerSummary, RibRoute, Routes, Status,
};
use ipnetwork::IpNetwork;
use serde::Serialize;

use crate::cli::{EndpointCommand, Output};
use crate::failure::Failure;
use crate::render::{self, duration, emit, list, or_dash, table};

/// `routectl status`.
pub async fn status(client: &Client, output: Output) -> Result<(), Failure> {
    emit(output, &client.status().await?, status_text)
}

/// `routectl peers`.
pub async fn peers(client: &Client, output: Output) -> Result<(), Failure> {
    emit(output, &client.peers().await?, |peers| {
        let summaries: Vec<PeerSummary> = peers.iter().map(summary).collect();
        peers_table(&summaries)
    })
}

/// `routectl peer <address>`.
pub async fn peer(client: &Client, address: IpAddr, output: Output) -> Result<(), Failure> {
    let peers = client.peers().await?;
    let peer = peers
        .into_iter()
        .find(|p| p.address == address)
        .ok_or_else(|| Failure::Usage(format!("bgpd has no peer {address}")))?;
    emit(output, &peer, peer_text)
}

/// `routectl routes [prefix]`.
pub async fn routes(
    client: &Client,
    prefix: Option<IpNetwork>,
    output: Output,
) -> Result<(), Failure> {
    let prefix = prefix.map(|p| p.to_string());
    emit(
        output,
        &client.routes(prefix.as_deref()).await?,
        routes_text,
    )
}

/// `routectl ipam show`.
pub async fn ipam_show(client: &Client, output: Output) -> Result<(), Failure> {
    emit(output, &client.ipam().await?, ipam_text)
}

/// `routectl endpoint add|del|list`.
pub async fn endpoint(
    client: &Client,
    command: EndpointCommand,
    output: Output,
) -> Result<(), Failure> {
    match command {
        EndpointCommand::Add {
            container_id,
            netns,
            ifname,
            ips,
            mtu,
            labels,
        } => {
            let request = AttachRequest {
                container_id,
                ifname,
                netns,
                ips,
                mtu,
                labels: labels.into_iter().collect(),
            };
            let endpoint = client.attach(&request).await?;
            emit(output, &[endpoint], |e| endpoints_table(e))
        }
        EndpointCommand::Label {
            container_id,
            ifname,
            labels,
        } => {
            let labels = labels.into_iter().collect();
            let endpoint = client.set_labels(&container_id, &ifname, &labels).await?;
            emit(output, &[endpoint], |e| endpoints_table(e))
        }
        EndpointCommand::Del {
            container_id,
            ifname,
        } => {
            let report = client.detach(&container_id, &ifname).await?;
            emit(output, &report, |r| detach_text(&container_id, &ifname, r))
        }
        EndpointCommand::List => emit(output, &client.endpoints().await?, |e| endpoints_table(e)),
    }
}

fn status_text(s: &Status) -> String {
    let mut out = String::new();
    let role = serde_label(&s.role);
    let _ = writeln!(
        out,
        "node     {} ({role}), AS {}, router id {}, address {}",
        s.node, s.asn, s.router_id, s.address
    );
    let _ = writeln!(
        out,
        "bgpd     {}, up {}",
        s.version,
        duration(s.uptime_secs)
    );
    let _ = writeln!(out, "kernel   {}", kernel_text(&s.kernel));
    let etcd = match (&s.etcd.reachable, &s.etcd.last_error) {
        (true, _) => "reachable".to_string(),
        (false, Some(e)) => format!("UNREACHABLE: {e}"),
        (false, None) => "UNREACHABLE".to_string(),
    };
    let _ = writeln!(out, "etcd     {etcd}");
    if let Some(why) = &s.etcd.degraded {
        let _ = writeln!(out, "DEGRADED {why}");
    }
    out.push('\n');
    out.push_str(&blocks_table(&s.blocks));
    out.push('\n');
    out.push_str(&peers_table(&s.peers));
    out
}

fn kernel_text(k: &KernelStatus) -> String {
    let mut out = if k.in_sync {
        format!("in sync, {}/{} routes", k.installed, k.wanted)
    } else {
        format!("NOT in sync, {}/{} routes installed", k.installed, k.wanted)
    };
    let _ = write!(out, " (table {}, proto {})", k.table, k.proto);
    for f in &k.failures {
        let _ = write!(out, "\n         refused: {f}");
    }
    for c in &k.conflicts {
        let _ = write!(out, "\n         conflict: {c}");
    }
    if let Some(e) = &k.last_error {
        let _ = write!(out, "\n         last error: {e}");
    }
    out
}

fn blocks_table(blocks: &[BlockUsage]) -> String {
    if blocks.is_empty() {
        return "no blocks\n".to_string();
    }
    let mut t = table(&["block", "used", "size", "use"]);
    for b in blocks {
        let pct = if b.size == 0 {
            0
        } else {
            u64::from(b.used) * 100 / u64::from(b.size)
        };
        t.add_row([
            b.cidr.to_string(),
            b.used.to_string(),
            b.size.to_string(),
            format!("{pct}%"),
        ]);
    }
    render::text(&t)
}

fn summary(p: &Peer) -> PeerSummary {
    PeerSummary {
        address: p.address,
        name: p.name.clone(),
        kind: p.kind,
        asn: p.asn,
        state: p.state.clone(),
        uptime_secs: p.uptime_secs,
        prefixes_received: p.prefixes_received,
        prefixes_accepted: p.prefixes_accepted,
        prefixes_advertised: p.prefixes_advertised,
    }
}

fn peers_table(peers: &[PeerSummary]) -> String {
    if peers.is_empty() {
        return "no peers\n".to_string();
    }
    let mut t = table(&[
        "peer",
        "name",
        "kind",
        "asn",
        "state",
        "since",
        "received",
        "accepted",
        "advertised",
    ]);
    for p in peers {
        t.add_row([
            p.address.to_string(),
            p.name.clone(),
            serde_label(&p.kind),
            p.asn.to_string(),
            p.state.clone(),
            or_dash(p.uptime_secs.map(duration)),
            p.prefixes_received.to_string(),
            p.prefixes_accepted.to_string(),
            p.prefixes_advertised.to_string(),
        ]);
    }
    render::text(&t)
}

fn peer_text(p: &Peer) -> String {
    let mut out = String::new();
    let rows: [(&str, String); 13] = [
        ("name", p.name.clone()),
        ("kind", serde_label(&p.kind)),
        ("asn", p.asn.to_string()),
        ("state", p.state.clone()),
        ("since", or_dash(p.uptime_secs.map(duration))),
        ("established", format!("{} time(s)", p.established_count)),
        ("router id", or_dash(p.peer_id)),
        ("hostname", or_dash(p.hostname.as_ref())),
        ("hold time", or_dash(p.hold_time.map(|h| format!("{h}s")))),
        ("families", list(&p.families, ", ")),
        (
            "prefixes",
            format!(
                "{} received, {} accepted, {} advertised",
                p.prefixes_received, p.prefixes_accepted, p.prefixes_advertised
            ),
        ),
        (
            "ignored",
            format!(
                "{} prefixes of families not negotiated, {} attributes discarded",
                p.prefixes_ignored, p.attributes_discarded
            ),
        ),
        (
            "graceful restart",
            if p.graceful_restart_stale {
                "routes kept as stale while the peer restarts".to_string()
            } else {
                "-".to_string()
            },
        ),
    ];
    let _ = writeln!(out, "BGP peer {}", p.address);
    for (k, v) in &rows {
        let _ = writeln!(out, "  {k:<18}{v}");
    }
    out.push('\n');
    let mut t = table(&[
        "messages",
        "open",
        "update",
        "notification",
        "keepalive",
        "refresh",
    ]);
    for (dir, c) in [("received", &p.received), ("sent", &p.sent)] {
        t.add_row(counts_row(dir, c));
    }
    out.push_str(&render::text(&t));
    out.push('\n');
    let _ = writeln!(
        out,
        "last notification received: {}",
        or_dash(p.last_notification_received.as_ref())
    );
    let _ = writeln!(
        out,
        "last notification sent:     {}",
        or_dash(p.last_notification_sent.as_ref())
    );
    out
}

fn counts_row(dir: &str, c: &MessageCounts) -> [String; 6] {
    [
        dir.to_string(),
        c.open.to_string(),
        c.update.to_string(),
        c.notification.to_string(),
        c.keepalive.to_string(),
        c.route_refresh.to_string(),
    ]
}

fn routes_text(r: &Routes) -> String {
    let mut out = String::from("RIB (* best, = multipath, s stale, ! not accepted)\n");
    out.push_str(&rib_table(&r.rib));
    out.push_str("\nFIB (kernel routes bgpd wants)\n");
    out.push_str(&fib_table(&r.fib));
    out
}

fn rib_table(rib: &[RibRoute]) -> String {
    if rib.is_empty() {
        return "no routes\n".to_string();
    }
    let mut t = table(&[
        "",
        "prefix",
        "next hop",
        "from",
        "as path",
        "local pref",
        "originator",
        "cluster list",
    ]);
    for r in rib {
        let marks: String = [
            (r.best, '*'),
            (r.multipath && !r.best, '='),
            (r.stale, 's'),
            (!r.accepted, '!'),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, c)| *c)
        .collect();
        let from = match (r.from, r.path_id) {
            (None, _) => "local".to_string(),
            (Some(f), None) => f.to_string(),
            (Some(f), Some(id)) => format!("{f} (path {id})"),
        };
        t.add_row([
            marks,
            r.prefix.to_string(),
            or_dash(r.next_hop),
            from,
            list(&r.as_path, " "),
            or_dash(r.local_pref),
            or_dash(r.originator_id),
            list(&r.cluster_list, " "),
        ]);
    }
    render::text(&t)
}

fn fib_table(fib: &[FibRoute]) -> String {
    if fib.is_empty() {
        return "no routes\n".to_string();
    }
    let mut t = table(&["prefix", "action", "via", "source"]);
    for f in fib {
        let via = match f.action {
            FibAction::Blackhole => "-".to_string(),
            FibAction::Device => match &f.ifname {
                Some(name) => format!("dev {name}"),
                None => format!("dev #{}", or_dash(f.ifindex)),
            },
            FibAction::Via => list(&f.next_hops, ", "),
        };
        t.add_row([
            f.prefix.to_string(),
            serde_label(&f.action),
            via,
            serde_label(&f.source),
        ]);
    }
    render::text(&t)
}

fn ipam_text(v: &IpamView) -> String {
    let mut out = blocks_table(&v.blocks);
    out.push('\n');
    if v.addresses.is_empty() {
        out.push_str("no addresses assigned\n");
        return out;
    }
    let mut t = table(&["address", "handle", "block", "borrowed"]);
    for a in &v.addresses {
        t.add_row([
            a.ip.to_string(),
            a.handle.clone(),
            a.block.to_string(),
            if a.borrowed { "yes" } else { "no" }.to_string(),
        ]);
    }
    out.push_str(&render::text(&t));
    out
}

fn endpoints_table(endpoints: &[Endpoint]) -> String {
    if endpoints.is_empty() {
        return "no endpoints\n".to_string();
    }
    let mut t = table(&[
        "container",
        "ifname",
        "host ifname",
        "addresses",
        "gateways",
        "mac",
        "mtu",
        "labels",
    ]);
    for e in endpoints {
        let addresses: Vec<String> = e
            .ips
            .iter()
            .map(|i| {
                let b = if i.borrowed { " (borrowed)" } else { "" };
                format!("{}{b}", i.address)
            })
            .collect();
        let gateways: Vec<IpAddr> = e.ips.iter().map(|i| i.gateway).collect();
        t.add_row([
            e.container_id.clone(),
            e.ifname.clone(),
            format!("{} (#{})", e.host_ifname, e.host_ifindex),
            list(&addresses, ", "),
            list(&gateways, ", "),
            or_dash(e.mac.as_ref()),
            or_dash(e.mtu),
            labels_text(&e.labels),
        ]);
    }
    render::text(&t)
}

/// `k=v, k=v`, or `-` for none.
fn labels_text(labels: &bgpd_api::Labels) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if pairs.is_empty() {
        "-".to_string()
    } else {
        pairs.join(", ")
    }
}

fn detach_text(container_id: &str, ifname: &str, r: &DetachReport) -> String {
    if !r.removed && r.released.is_empty() {
        return format!("{container_id}/{ifname}: nothing to remove\n");
    }
    format!(
        "{container_id}/{ifname}: removed{}, released {}\n",
        if r.removed {
            ""
        } else {
            " (no interface left)"
        },
        list(&r.released, ", ")
    )
}

/// The JSON name of a unit enum variant (`reflector_client`), as people see it in tables too.
fn serde_label<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".to_string(),
    }
}
