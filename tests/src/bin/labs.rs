//! `labs demo|rr|bird`: brings up a fabric in network namespaces, shows it, pings all pairs of
//! containers and tears it down. Run through `labs/run.sh`, which builds the binaries first.
//!
//! - `demo`: etcd, three bgpd hosts in an iBGP full mesh, two containers on each.
//! - `rr`: etcd, one bgpd route reflector and three hosts peering only with it.
//! - `bird`: etcd, BIRD as route reflector and three hosts with it as their configured peer.
//! - `configs <dir>`: writes the nodes' bgpd configuration files (what the containerlab
//!   topologies in `labs/` mount) into `<dir>`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use testkit::fabric::ping::Reach;
use testkit::fabric::{Container, Fabric, Role, lab_configs};

const HOSTS: usize = 3;
const CONTAINERS_PER_HOST: usize = 2;

/// How the hosts learn each other's blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topology {
    /// iBGP full mesh from the etcd node registry.
    Mesh,
    /// A bgpd route reflector, found by the hosts in etcd.
    Reflector,
    /// BIRD as route reflector, configured on each host.
    Bird,
}

fn main() -> ExitCode {
    let topology = std::env::args().nth(1).unwrap_or_else(|| "demo".into());
    let topology = match topology.as_str() {
        "demo" | "mesh" => Topology::Mesh,
        "rr" => Topology::Reflector,
        "bird" => Topology::Bird,
        "configs" => return write_configs(std::env::args().nth(2)),
        other => {
            eprintln!(
                "labs: unknown command {other:?}; use demo (3-host mesh), rr (bgpd reflector), bird (BIRD reflector) or configs <dir>"
            );
            return ExitCode::from(2);
        }
    };
    match run(topology) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("labs: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the containerlab topologies' bgpd configuration files into `dir`.
fn write_configs(dir: Option<String>) -> ExitCode {
    let Some(dir) = dir else {
        eprintln!("labs configs: name the directory to write to");
        return ExitCode::from(2);
    };
    for config in lab_configs() {
        let path = std::path::Path::new(&dir).join(format!("{}.toml", config.name));
        if let Err(e) = std::fs::write(&path, config.render()) {
            eprintln!("labs: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}

/// Brings the fabric up, prints it and returns whether every ping was answered. The fabric is
/// torn down when it drops, on every path out of here.
fn run(topology: Topology) -> std::io::Result<bool> {
    let started = Instant::now();
    println!("== starting etcd and the underlay switch");
    let mut fabric = Fabric::new()?;
    if topology == Topology::Reflector {
        fabric.add_host(Role::Reflector)?;
    }
    let bird = match topology {
        Topology::Bird => {
            println!("== starting BIRD as route reflector");
            Some(
                fabric
                    .start_bird_reflector(HOSTS)
                    .map_err(std::io::Error::other)?,
            )
        }
        _ => None,
    };
    let first = fabric.hosts.len();
    for _ in 0..HOSTS {
        let config = match topology {
            Topology::Bird => fabric.bird_client_config(),
            _ => fabric.next_host_config(Role::Host),
        };
        fabric.add_host_with(config)?;
    }
    let sessions = |i: usize| -> usize {
        match (topology, i < first) {
            (Topology::Mesh, _) => HOSTS - 1,
            (Topology::Reflector, true) => HOSTS,
            (Topology::Reflector | Topology::Bird, false) => 1,
            (Topology::Bird, true) => 0,
        }
    };
    println!("== waiting for BGP sessions");
    for i in 0..fabric.hosts.len() {
        fabric.wait_established(i, sessions(i), Duration::from_secs(60))?;
    }
    println!("== attaching {CONTAINERS_PER_HOST} containers per host");
    for host in first..fabric.hosts.len() {
        for _ in 0..CONTAINERS_PER_HOST {
            fabric.add_container(host)?;
        }
    }
    fabric.wait_converged(first, false, Duration::from_secs(30))?;
    // IPv6 is shown as it is; a fabric that does not route it fails the matrix below.
    if let Err(e) = fabric.wait_converged(first, true, Duration::from_secs(10)) {
        println!(
            "== IPv6 blocks are not routed everywhere: {}",
            e.to_string().lines().next().unwrap_or_default()
        );
    }
    println!("\n{}\n", fabric.describe());
    for i in 0..fabric.hosts.len() {
        let name = &fabric.hosts[i].config.name;
        println!("== {name}: routectl status");
        println!("{}", fabric.routectl(i, &["status"])?);
        println!("== {name}: routectl routes");
        println!("{}", fabric.routectl(i, &["routes"])?);
    }
    if let Some(bird) = &bird {
        println!("== BIRD: show protocols");
        println!(
            "{}",
            bird.birdc(&["show", "protocols"])
                .unwrap_or_else(|e| e.to_string())
        );
    }
    let mut all_ok = true;
    for (family, pick) in [
        ("IPv4", Container::ipv4 as fn(&Container) -> _),
        ("IPv6", Container::ipv6),
    ] {
        let cells = fabric.ping_matrix(pick);
        if cells.is_empty() {
            println!("== {family}: the containers have no {family} addresses");
            continue;
        }
        let ok = cells.iter().filter(|c| c.ok).count();
        println!(
            "== {family} ping matrix ({ok}/{} pairs answer)",
            cells.len()
        );
        println!("{}", fabric.matrix_table(&cells));
        all_ok &= cells.iter().all(|c: &Reach| c.ok);
    }
    println!(
        "== {} after {:.1}s; tearing down",
        if all_ok {
            "all pairs reach each other"
        } else {
            "SOME PAIRS FAILED"
        },
        started.elapsed().as_secs_f64()
    );
    if !all_ok {
        println!("{}", fabric.logs());
    }
    Ok(all_ok)
}
