//! Prints the ruleset compiled from a policy file, with two example workloads and pools.
//! Usage: cargo run -p bgpd-policy --example dry_run -- <policy.toml>

use bgpd_policy::{Inputs, PolicyFile, Pool, RemoteEndpoint, WorkloadEndpoint, compile};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: dry_run <policy.toml>")?;
    let file = PolicyFile::load(path.as_ref())?;
    let labels = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let workloads = [WorkloadEndpoint {
        interface: "cali-db".try_into()?,
        ips: vec!["10.244.1.2".parse()?],
        labels: labels(&[("role", "db"), ("env", "prod")]),
    }];
    let remote = [RemoteEndpoint {
        ips: vec!["10.244.2.2".parse()?, "fd00:244::2".parse()?],
        labels: labels(&[("role", "web")]),
    }];
    let pools = [Pool {
        name: "default".try_into()?,
        cidr: "10.244.0.0/16".parse()?,
        nat_outgoing: true,
    }];
    let ruleset = compile(&Inputs {
        file: &file,
        workloads: &workloads,
        remote: &remote,
        pools: &pools,
    })?;
    print!("{ruleset}");
    Ok(())
}
