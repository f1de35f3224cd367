//! Structured logs with tracing: text or JSON per `[log]`; no ANSI colours unless stderr is a
//! terminal, so journald gets clean lines.

use std::io::IsTerminal;

use bgpd_config::{LogConfig, LogFormat, LogLevel};
use tracing_subscriber::EnvFilter;

fn level(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    }
}

/// The crates whose logs follow `log.level`.
const OUR_CRATES: [&str; 8] = [
    "bgpd",
    "bgpd_speaker",
    "bgpd_rib",
    "bgpd_kernel",
    "bgpd_endpoint",
    "bgpd_policy",
    "bgpd_wire",
    "ipam",
];

/// Installs the global subscriber; `RUST_LOG` overrides the configured level.
pub fn init(config: &LogConfig) {
    // The configured level is for the fabric's own crates; libraries (h2, tonic, hyper) log
    // their warnings only, or debug logs drown in HTTP/2 frames.
    let level = level(config.level);
    let ours: String = OUR_CRATES.iter().map(|c| format!(",{c}={level}")).collect();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("warn{ours}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
