//! BGP speaker: per-peer sessions (the RFC 4271 state machine), transport (TCP-MD5, GTSM,
//! multihop), graceful restart, and the instance actor that owns the sessions and the RIB.
//!
//! Start one with [`Speaker::start`] from a [`SpeakerConfig`]; the returned handle adds and
//! removes peers, originates routes, streams best-path changes for the kernel and reports
//! per-peer status. See `README.md` for the task diagram.

pub mod collision;
pub mod config;
pub mod conn;
pub mod deadlines;
pub mod fsm;
pub mod instance;
pub mod malloc;
pub mod negotiate;
pub mod status;
pub mod transport;

use std::net::IpAddr;

use bgpd_rib::FibChange;
use bgpd_wire::{PathAttrs, Prefix};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use config::{
    AddPath, ConfigError, Family, GracefulRestartConfig, PeerSettings, SpeakerConfig,
};
pub use status::{MessageCounts, PeerStatus, RouteStatus};

use instance::{Command, Instance};

/// Why a request to the speaker failed.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    /// The configuration is unworkable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listening socket could not be opened.
    #[error("listen: {0}")]
    Listen(#[from] std::io::Error),
    /// The request was refused (unknown or duplicate peer, bad TCP-MD5 key, ...).
    #[error("{0}")]
    Refused(String),
    /// The instance task has stopped.
    #[error("the speaker has stopped")]
    Stopped,
}

/// A running speaker. Dropping it stops the instance (sessions are closed with a Cease).
#[derive(Debug)]
pub struct Speaker {
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
}

/// Bound of the queues from network tasks: a reader waits (and TCP pushes back on the peer)
/// when the instance falls behind.
const NET_QUEUE: usize = 4096;

impl Speaker {
    /// Checks the configuration, binds the listeners and starts the instance with the
    /// configured peers. Must be called within a tokio runtime.
    pub fn start(config: SpeakerConfig) -> Result<Speaker, SpeakerError> {
        config.validate()?;
        let (net_tx, net_rx) = mpsc::channel(NET_QUEUE);
        let (conn_tx, conn_rx) = mpsc::channel(NET_QUEUE);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let instance = Instance::new(config, net_tx, conn_tx)?;
        let task = tokio::spawn(instance.run(commands_rx, net_rx, conn_rx));
        Ok(Speaker { commands, task })
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .map_err(|_| SpeakerError::Stopped)?;
        rx.await.map_err(|_| SpeakerError::Stopped)
    }

    /// Adds a peer and starts its session.
    pub async fn add_peer(&self, settings: PeerSettings) -> Result<(), SpeakerError> {
        self.ask(|tx| Command::AddPeer(Box::new(settings), tx))
            .await?
            .map_err(SpeakerError::Refused)
    }

    /// Closes the peer's session (Cease/Peer De-configured) and withdraws its routes.
    pub async fn remove_peer(&self, address: IpAddr) -> Result<(), SpeakerError> {
        self.ask(|tx| Command::RemovePeer(address, tx))
            .await?
            .map_err(SpeakerError::Refused)
    }

    /// Replaces a peer's settings; only a change the session depends on resets it.
    pub async fn reconfigure_peer(&self, settings: PeerSettings) -> Result<(), SpeakerError> {
        self.ask(|tx| Command::ReconfigurePeer(Box::new(settings), tx))
            .await?
            .map_err(SpeakerError::Refused)
    }

    /// Announces a local route (ORIGIN, AS_PATH and next hop may be left empty: IGP, empty,
    /// ourselves).
    pub fn originate(&self, prefix: Prefix, attrs: PathAttrs) -> Result<(), SpeakerError> {
        self.commands
            .send(Command::Originate(prefix, Box::new(attrs)))
            .map_err(|_| SpeakerError::Stopped)
    }

    /// Withdraws a local route.
    pub fn withdraw(&self, prefix: Prefix) -> Result<(), SpeakerError> {
        self.commands
            .send(Command::Withdraw(prefix))
            .map_err(|_| SpeakerError::Stopped)
    }

    /// Best-path changes (prefix → next hops; no next hops: remove) from now on, in batches.
    pub fn subscribe_fib(&self) -> Result<mpsc::UnboundedReceiver<Vec<FibChange>>, SpeakerError> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.commands
            .send(Command::SubscribeFib(tx))
            .map_err(|_| SpeakerError::Stopped)?;
        Ok(rx)
    }

    /// Status of every peer, sorted by address.
    pub async fn peers(&self) -> Result<Vec<PeerStatus>, SpeakerError> {
        self.ask(Command::Peers).await
    }

    /// Every candidate route with its best/multipath/stale flags.
    pub async fn routes(&self) -> Result<Vec<RouteStatus>, SpeakerError> {
        self.ask(Command::Routes).await
    }

    /// Closes every session with Cease/Administrative Shutdown and stops the instance.
    pub async fn shutdown(self) {
        let _ = self.ask(Command::Shutdown).await;
        let _ = self.task.await;
    }
}
