//! Runs a BGP speaker in the foreground from a TOML file (see `SpeakerConfig`), so tests and
//! benchmarks can run it inside a network namespace like BIRD. SIGHUP re-reads the file and
//! applies peer and `originate` changes; SIGTERM/SIGINT close every session with a Cease.
//! With `--status FILE` the peer table (and with `--routes` every route) is written there as
//! JSON whenever it changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bgpd_speaker::{PeerSettings, Speaker, SpeakerConfig};
use bgpd_wire::PathAttrs;
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Run a BGP speaker from a TOML configuration")]
struct Args {
    /// The configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// Write peer status (JSON) to this file whenever it changes.
    #[arg(long)]
    status: Option<PathBuf>,
    /// Include every route in the status file.
    #[arg(long)]
    routes: bool,
    /// We restarted with forwarding state kept (graceful restart, RFC 4724 R and F bits).
    #[arg(long)]
    restarting: bool,
}

fn load(path: &Path, restarting: bool) -> anyhow::Result<SpeakerConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let mut config: SpeakerConfig =
        toml::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
    config.graceful_restart.restarting |= restarting;
    // Announce the host name (as FRR does) unless the file names one.
    if config.hostname.is_none() {
        config.hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty() && h.len() <= 255);
    }
    Ok(config)
}

/// Applies the differences between `old` and `new` (peers and originated prefixes).
async fn apply(speaker: &Speaker, old: &SpeakerConfig, new: &SpeakerConfig) -> anyhow::Result<()> {
    let before: HashMap<_, &PeerSettings> = old.peers.iter().map(|p| (p.address, p)).collect();
    let after: HashMap<_, &PeerSettings> = new.peers.iter().map(|p| (p.address, p)).collect();
    for (addr, _) in before.iter().filter(|(a, _)| !after.contains_key(a)) {
        speaker.remove_peer(*addr).await?;
    }
    for (addr, settings) in &after {
        match before.get(addr) {
            None => speaker.add_peer((*settings).clone()).await?,
            Some(old) if old != settings => speaker.reconfigure_peer((*settings).clone()).await?,
            Some(_) => {}
        }
    }
    for prefix in old.originate.iter().filter(|p| !new.originate.contains(p)) {
        speaker.withdraw(*prefix)?;
    }
    for prefix in new.originate.iter().filter(|p| !old.originate.contains(p)) {
        speaker.originate(*prefix, PathAttrs::default())?;
    }
    Ok(())
}

async fn write_status(
    speaker: &Speaker,
    path: &Path,
    routes: bool,
    last: &mut String,
) -> anyhow::Result<()> {
    let mut doc = serde_json::json!({ "peers": speaker.peers().await? });
    if routes {
        doc["routes"] = serde_json::to_value(speaker.routes().await?)?;
    }
    let text = serde_json::to_string_pretty(&doc)?;
    if text != *last {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &text)?;
        std::fs::rename(&tmp, path)?;
        *last = text;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Before the first large allocation: a table's worth of freed buffers goes back to the
    // kernel instead of staying resident.
    bgpd_speaker::malloc::return_large_frees();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut config = load(&args.config, args.restarting)?;
    let speaker = Speaker::start(config.clone())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut last = String::new();
    loop {
        tokio::select! {
            _ = hup.recv() => match load(&args.config, args.restarting) {
                Ok(new) => {
                    if let Err(e) = apply(&speaker, &config, &new).await {
                        tracing::error!("reload: {e:#}");
                    }
                    config = new;
                }
                Err(e) => tracing::error!("reload: {e:#}"),
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => {
                if let Some(path) = &args.status
                    && let Err(e) = write_status(&speaker, path, args.routes, &mut last).await
                {
                    tracing::warn!("status: {e:#}");
                }
            }
        }
    }
    speaker.shutdown().await;
    Ok(())
}
