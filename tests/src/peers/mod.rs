//! Real BGP daemons as test peers: BIRD 2, FRR bgpd, GoBGP and ExaBGP (Debian packages).
//!
//! Each launcher renders its daemon's configuration from one [`PeerConfig`], runs the daemon
//! inside a [`Netns`](crate::netns::Netns) with a temp dir of its own (config, control socket,
//! pid file, logs), and answers queries with parsed values ([`Session`], [`RibRoute`]). Tests
//! program against [`BgpPeer`]; the daemon is killed and its dir removed on drop.
//!
//! ```no_run
//! # use std::time::Duration;
//! # use testkit::netns::{Netns, link};
//! # use testkit::peers::{BgpPeer, Neighbor, PeerConfig, Route, bird::Bird, gobgp::Gobgp};
//! let (a, b) = (Netns::new("a")?, Netns::new("b")?);
//! link(&a, "va", &["10.0.0.1/24"], &b, "vb", &["10.0.0.2/24"])?;
//! let bird = Bird::start(&a, PeerConfig::new(65001, "10.0.0.1".parse()?)
//!     .neighbor(Neighbor::new("10.0.0.2".parse()?, 65002))
//!     .route(Route::parse("10.1.0.0/24")?.med(5)))?;
//! let gobgp = Gobgp::start(&b, PeerConfig::new(65002, "10.0.0.2".parse()?)
//!     .neighbor(Neighbor::new("10.0.0.1".parse()?, 65001)))?;
//! bird.wait_established("10.0.0.2".parse()?, Duration::from_secs(30))?;
//! let got = gobgp.wait_route("10.1.0.0/24".parse()?, Duration::from_secs(10))?;
//! assert_eq!(got.med, Some(5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod bird;
mod config;
mod daemon;
pub mod exabgp;
pub mod frr;
pub mod gobgp;
mod state;

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use ipnetwork::IpNetwork;

pub use config::{
    AddPath, Community, Family, GracefulRestart, LargeCommunity, Neighbor, PeerConfig, Route,
};
pub use daemon::Daemon;
pub use state::{RibRoute, Session, SessionState};

use crate::process::wait_until;

/// What can go wrong driving a peer daemon.
#[derive(thiserror::Error)]
pub enum PeerError {
    /// Starting, signalling or querying the daemon failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A query's output was not what the parser expects.
    #[error("{daemon}: cannot parse the output of `{query}`: {reason}")]
    Parse {
        /// Which daemon.
        daemon: &'static str,
        /// The query that was run.
        query: String,
        /// What was wrong.
        reason: String,
    },
    /// The daemon did not reach the awaited state in time.
    #[error("{daemon}: timed out after {after:?} waiting for {what}\n{logs}")]
    Timeout {
        /// Which daemon.
        daemon: &'static str,
        /// What was awaited.
        what: String,
        /// How long we waited.
        after: Duration,
        /// The daemon's logs, to see why.
        logs: String,
    },
    /// The daemon cannot do what was asked (e.g. an option it lacks).
    #[error("{daemon}: {what} is not supported")]
    Unsupported {
        /// Which daemon.
        daemon: &'static str,
        /// What it cannot do.
        what: String,
    },
}

/// `Debug` is `Display`, so a test's `unwrap()` prints the daemon's logs line by line.
impl std::fmt::Debug for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Result of a peer operation.
pub type Result<T> = std::result::Result<T, PeerError>;

/// A running BGP daemon that tests drive: query, change routes, freeze, crash and restart.
pub trait BgpPeer {
    /// The daemon process, its config and its dir.
    fn daemon(&self) -> &Daemon;

    /// The daemon process, its config and its dir, mutably.
    fn daemon_mut(&mut self) -> &mut Daemon;

    /// Short daemon name for messages (`"bird"`, `"gobgp"` …).
    fn name(&self) -> &'static str {
        self.daemon().what()
    }

    /// The config it runs (routes included as changed by `announce`/`withdraw`).
    fn config(&self) -> &PeerConfig {
        self.daemon().config()
    }

    /// The state of every configured neighbour's session.
    fn sessions(&self) -> Result<Vec<Session>>;

    /// Every path of `family` in the daemon's RIB (learned and originated).
    fn routes(&self, family: Family) -> Result<Vec<RibRoute>>;

    /// Originates `route` now (replacing an earlier route for the same prefix).
    fn announce(&mut self, route: Route) -> Result<()>;

    /// Stops originating `prefix` now.
    fn withdraw(&mut self, prefix: IpNetwork) -> Result<()>;

    /// Starts the daemon again (after [`kill`](Self::kill) or while running, which kills it
    /// first) with the same config and routes; as a graceful restart where the config has it
    /// enabled.
    fn restart(&mut self) -> Result<()>;

    /// Shuts the session to `neighbor` down (a Cease NOTIFICATION, with `message` as the
    /// RFC 8203 shutdown communication where the daemon sends one) or brings it back.
    fn set_session_enabled(
        &mut self,
        neighbor: IpAddr,
        enabled: bool,
        message: Option<&str>,
    ) -> Result<()>;

    /// The session to `neighbor`, if configured.
    fn session(&self, neighbor: IpAddr) -> Result<Option<Session>> {
        Ok(self
            .sessions()?
            .into_iter()
            .find(|s| s.neighbor == neighbor))
    }

    /// Whether the session to `neighbor` is Established.
    fn is_established(&self, neighbor: IpAddr) -> Result<bool> {
        Ok(self
            .session(neighbor)?
            .is_some_and(|s| s.state == SessionState::Established))
    }

    /// Waits until the session to `neighbor` is Established.
    fn wait_established(&self, neighbor: IpAddr, timeout: Duration) -> Result<()> {
        self.wait_for(
            &format!("session to {neighbor} Established"),
            timeout,
            &|| self.is_established(neighbor),
        )
    }

    /// Waits until `ready` returns `Ok(true)`; a query error counts as not yet.
    fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        ready: &dyn Fn() -> Result<bool>,
    ) -> Result<()> {
        if wait_until(timeout, || ready().unwrap_or(false)) {
            Ok(())
        } else {
            Err(self.timeout(what, timeout))
        }
    }

    /// The paths for exactly `prefix`.
    fn paths(&self, prefix: IpNetwork) -> Result<Vec<RibRoute>> {
        let mut routes = self.routes(Family::of(prefix.ip()))?;
        routes.retain(|r| r.prefix == prefix);
        Ok(routes)
    }

    /// Waits until `prefix` is in the RIB learned from a neighbour; returns its best path (or
    /// its first, if the daemon marks none best).
    fn wait_route(&self, prefix: IpNetwork, timeout: Duration) -> Result<RibRoute> {
        self.wait_for(&format!("a learned route for {prefix}"), timeout, &|| {
            Ok(self.paths(prefix)?.iter().any(|r| r.from.is_some()))
        })?;
        let mut learned: Vec<RibRoute> = self
            .paths(prefix)?
            .into_iter()
            .filter(|r| r.from.is_some())
            .collect();
        learned.sort_by_key(|r| !r.best);
        learned
            .into_iter()
            .next()
            .ok_or_else(|| self.timeout(&format!("{prefix} to stay"), timeout))
    }

    /// Waits until no learned path for `prefix` is left.
    fn wait_route_gone(&self, prefix: IpNetwork, timeout: Duration) -> Result<()> {
        self.wait_for(&format!("{prefix} withdrawn"), timeout, &|| {
            Ok(self.paths(prefix)?.iter().all(|r| r.from.is_none()))
        })
    }

    /// SIGSTOP: the daemon stops sending keepalives but keeps its sockets open.
    fn freeze(&self) -> Result<()> {
        Ok(self.daemon().signal(libc::SIGSTOP)?)
    }

    /// SIGCONT after [`freeze`](Self::freeze).
    fn thaw(&self) -> Result<()> {
        Ok(self.daemon().signal(libc::SIGCONT)?)
    }

    /// SIGKILL, as a crash; [`restart`](Self::restart) brings it back.
    fn kill(&mut self) {
        self.daemon_mut().kill();
    }

    /// A timeout error carrying the daemon's logs.
    fn timeout(&self, what: &str, after: Duration) -> PeerError {
        PeerError::Timeout {
            daemon: self.name(),
            what: what.to_string(),
            after,
            logs: self.daemon().logs(),
        }
    }
}

/// How long a freshly started daemon may take to open its control socket (a daemon that exits
/// fails at once, not after this).
pub(crate) const STARTUP: Duration = Duration::from_secs(30);

/// Seconds between connection attempts: short, so tests do not wait minutes after a reset.
pub(crate) const CONNECT_RETRY: u16 = 2;
