//! `bgpbench`: times a BGP route reflector from inside a tester namespace and prints one JSON
//! line per run (`"ok": false` with the reason when the run produced no number).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use bgpd_bench::fanout::Fanout;
use bgpd_bench::propagation::Propagation;
use bgpd_bench::routes::PrefixRange;
use bgpd_bench::{BenchError, Measurement};
use bgpd_wire::Asn;
use clap::{Args, Parser, Subcommand};
use serde_json::json;

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Benchmark a BGP route reflector: propagation and fan-out")]
struct Cli {
    #[command(subcommand)]
    test: Test,
    #[command(flatten)]
    common: Common,
}

/// Options every test shares.
#[derive(Debug, Args)]
struct Common {
    /// The reflector's address and port.
    #[arg(long, global = true, default_value = "10.77.0.1:179")]
    reflector: SocketAddrV4,
    /// AS of the reflector and the clients (iBGP).
    #[arg(long, global = true, default_value_t = 65000)]
    asn: u32,
    /// Hold time the clients offer (seconds).
    #[arg(long, global = true, default_value_t = 90)]
    hold_time: u16,
    /// The reflector's cluster id, expected first in every CLUSTER_LIST (default: the
    /// reflector's address, its usual router id).
    #[arg(long, global = true)]
    cluster_id: Option<Ipv4Addr>,
    /// The reflector's pid, to report its peak RSS and CPU seconds.
    #[arg(long, global = true)]
    pid: Option<u32>,
    /// A name for the reflector, copied into the output.
    #[arg(long, global = true, default_value = "reflector")]
    label: String,
    /// Seconds the sessions may take to come up.
    #[arg(long, global = true, default_value_t = 60.0)]
    connect_within: f64,
    /// Longest wait (seconds) for the reflector's End-of-RIB on each session, when it
    /// announced graceful restart and so sends one.
    #[arg(long, global = true, default_value_t = 30.0)]
    sync_within: f64,
    /// Seconds to wait after all sessions are up (and synced) before the first UPDATE.
    #[arg(long, global = true, default_value_t = 1.0)]
    settle: f64,
    /// Seconds from the first UPDATE after which the run fails.
    #[arg(long, global = true, default_value_t = 300.0)]
    timeout: f64,
}

#[derive(Debug, Subcommand)]
enum Test {
    /// An injector announces N prefixes; a monitor receives them through the reflector.
    Propagation {
        /// How many prefixes.
        #[arg(long, default_value_t = 10_000)]
        prefixes: u32,
        /// Their length.
        #[arg(long, default_value_t = 32)]
        prefix_len: u8,
        /// The first prefix's address.
        #[arg(long, default_value = "100.64.0.0")]
        prefix_base: Ipv4Addr,
        /// The injector's source address.
        #[arg(long, default_value = "10.77.1.1")]
        injector: Ipv4Addr,
        /// The monitor's source address.
        #[arg(long, default_value = "10.77.1.2")]
        monitor: Ipv4Addr,
    },
    /// S clients each announce one prefix; every client must receive all the others.
    Fanout {
        /// How many clients.
        #[arg(long, default_value_t = 200)]
        clients: u32,
        /// The first client's source address; the others follow it.
        #[arg(long, default_value = "10.77.2.1")]
        first_client: Ipv4Addr,
        /// Length of the clients' prefixes.
        #[arg(long, default_value_t = 26)]
        prefix_len: u8,
        /// The first client's prefix.
        #[arg(long, default_value = "100.96.0.0")]
        prefix_base: Ipv4Addr,
        /// Sessions opened at once.
        #[arg(long, default_value_t = 50)]
        connect_parallel: usize,
    },
}

fn seconds(s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("{s} is not a number of seconds"))
}

async fn run(cli: &Cli) -> anyhow::Result<(serde_json::Value, Result<Measurement, BenchError>)> {
    let c = &cli.common;
    let (connect_within, sync_within, settle, timeout) = (
        seconds(c.connect_within)?,
        seconds(c.sync_within)?,
        seconds(c.settle)?,
        seconds(c.timeout)?,
    );
    Ok(match &cli.test {
        Test::Propagation {
            prefixes,
            prefix_len,
            prefix_base,
            injector,
            monitor,
        } => {
            let run = Propagation {
                reflector: c.reflector,
                injector: *injector,
                monitor: *monitor,
                asn: Asn(c.asn),
                hold_time: c.hold_time,
                routes: PrefixRange::new(*prefix_base, *prefix_len, *prefixes)?,
                cluster_id: c.cluster_id.unwrap_or(*c.reflector.ip()),
                reflector_pid: c.pid,
                connect_within,
                sync_within,
                settle,
                timeout,
            };
            let params =
                json!({"test": "propagation", "prefixes": prefixes, "prefix_len": prefix_len});
            (params, run.run().await)
        }
        Test::Fanout {
            clients,
            first_client,
            prefix_len,
            prefix_base,
            connect_parallel,
        } => {
            let first = u32::from(*first_client);
            let sources = (0..*clients)
                .map(|i| first.checked_add(i).map(Ipv4Addr::from))
                .collect::<Option<Vec<_>>>()
                .context("client addresses run past 255.255.255.255")?;
            let run = Fanout {
                reflector: c.reflector,
                clients: sources,
                asn: Asn(c.asn),
                hold_time: c.hold_time,
                prefix_base: *prefix_base,
                prefix_len: *prefix_len,
                cluster_id: c.cluster_id.unwrap_or(*c.reflector.ip()),
                reflector_pid: c.pid,
                connect_within,
                connect_parallel: *connect_parallel,
                sync_within,
                settle,
                timeout,
            };
            (
                json!({"test": "fanout", "clients": clients}),
                run.run().await,
            )
        }
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread: the reflector under test gets the other core, and one clock times it all.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bgpbench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (mut line, outcome) = match runtime.block_on(run(&cli)) {
        Ok(done) => done,
        Err(e) => {
            eprintln!("bgpbench: {e:#}");
            return ExitCode::from(2);
        }
    };
    line["reflector"] = json!(cli.common.label);
    let code = match outcome {
        Ok(m) => {
            line["ok"] = json!(true);
            if let (Some(map), Ok(serde_json::Value::Object(fields))) =
                (line.as_object_mut(), serde_json::to_value(&m))
            {
                map.extend(fields);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            line["ok"] = json!(false);
            line["error"] = json!(e.to_string());
            ExitCode::FAILURE
        }
    };
    println!("{line}");
    code
}
