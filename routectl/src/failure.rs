//! Why a command failed, and the exit code each reason maps to.

use std::process::ExitCode;

use bgpd_api::ClientError;
use ipam::IpamError;

/// A failed command; its message is what the operator reads on stderr.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The daemon could not be asked (not running, socket not ours) or refused.
    #[error("{0}")]
    Daemon(#[from] ClientError),
    /// etcd did not answer.
    #[error("etcd at {endpoints} unreachable: {reason}")]
    EtcdUnreachable {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// What the client said.
        reason: String,
    },
    /// An IPAM operation was refused (not found, in use, invalid…).
    #[error("{0}")]
    Ipam(IpamError),
    /// The configuration file exists but does not load.
    #[error("{0}")]
    Config(#[from] bgpd_config::ConfigError),
    /// The policy file does not load, compile or apply.
    #[error("{0}")]
    Policy(String),
    /// `ipam check` found inconsistencies.
    #[error("{0} problem(s) found")]
    Findings(usize),
    /// Something else the operator asked for is not possible.
    #[error("{0}")]
    Usage(String),
}

impl Failure {
    /// The process exit code: 1 failed, 3 bgpd unreachable, 4 etcd unreachable, 5 check found
    /// problems (2 is clap's usage error).
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Failure::Daemon(
                ClientError::NotRunning { .. } | ClientError::PermissionDenied { .. },
            ) => 3,
            Failure::EtcdUnreachable { .. } => 4,
            Failure::Findings(_) => 5,
            _ => 1,
        })
    }

    /// Maps an IPAM error, telling an unreachable etcd apart from a refused operation.
    pub fn from_ipam(endpoints: &[String], e: IpamError) -> Failure {
        match e {
            IpamError::DatastoreUnavailable(reason) => Failure::EtcdUnreachable {
                endpoints: endpoints.join(","),
                reason,
            },
            other => Failure::Ipam(other),
        }
    }
}
