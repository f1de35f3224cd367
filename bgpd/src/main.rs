//! `bgpd --config /etc/bgpd/bgpd.toml`: the fabric daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

/// BGP direct-routing fabric daemon for container hosts.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The configuration file.
    #[arg(short, long, default_value = "/etc/bgpd/bgpd.toml")]
    config: PathBuf,
    /// Check the configuration file and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    // Before the first large allocation, as `bgp-speaker` does: otherwise glibc keeps a
    // table's worth of freed UPDATE buffers and drain snapshots resident.
    bgpd_speaker::malloc::return_large_frees();
    let args = Args::parse();
    // A bad file is reported before anything on the host is touched.
    let config = match bgpd_config::Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bgpd: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!("{}: ok", args.config.display());
        return ExitCode::SUCCESS;
    }
    bgpd::logging::init(&config.log);
    match serve(args.config, config) {
        // Exit at once: closing sessions with a Cease would end graceful restart for peers.
        Ok(()) => std::process::exit(0),
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("bgpd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(path: PathBuf, config: bgpd_config::Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(bgpd::run::run(path, config))?;
    Ok(())
}
