//! Graceful restart (RFC 4724) in the instance: as helper, a peer's routes stay (stale)
//! while it restarts and go after its End-of-RIB or our timers; as restarting speaker, our
//! table waits for each peer's End-of-RIB (or the deferral timer) before it is sent.

use std::net::IpAddr;
use std::time::Duration;

use bgpd_rib::Down;
use bgpd_wire::AfiSafi;
use tokio::time::Instant;

use super::{Instance, TimerKey};
use crate::fsm::DownCause;
use crate::negotiate::SessionParams;

impl Instance {
    /// Whether we hold our initial table for this new session (we restarted, the peer helps).
    pub(super) fn holds_initial(&self, params: &SessionParams) -> bool {
        let gr = &self.config.graceful_restart;
        gr.enabled && gr.restarting && params.wire.peer_graceful_restart.is_some()
    }

    /// After `peer_up`: start the deferral timer if we hold our table, and if the peer's routes
    /// were kept through its restart, flush the families it no longer preserves and wait for
    /// its End-of-RIB at most `stale_time`.
    pub(super) fn graceful_up(&mut self, addr: IpAddr, params: &SessionParams) {
        let gr = self.config.graceful_restart.clone();
        let hold_initial = self.holds_initial(params);
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        peer.holding_initial = hold_initial;
        let (rib_id, stale) = (peer.rib_id, peer.stale);
        if hold_initial {
            let at = Instant::now() + Duration::from_secs(gr.restart_time.into());
            self.deadlines.arm(TimerKey::Deferral(addr), at);
        }
        if !stale {
            return;
        }
        self.deadlines.disarm(&TimerKey::Restart(addr));
        // RFC 4724 §4.2: families the peer no longer preserves lose their stale routes now.
        let peer_gr = params.wire.peer_graceful_restart.as_ref();
        for family in &params.wire.families {
            let preserved = peer_gr.is_some_and(|g| {
                g.families
                    .iter()
                    .any(|f| f.afi_safi == *family && f.forwarding_preserved)
            });
            if !preserved && let Err(e) = self.rib.end_of_rib(rib_id, *family) {
                tracing::warn!(peer = %addr, "RIB: {e}");
            }
        }
        let at = Instant::now() + Duration::from_secs(gr.stale_time.into());
        self.deadlines.arm(TimerKey::Stale(addr), at);
    }

    /// An End-of-RIB from the peer: its stale routes end once every family has sent one, and
    /// a restarting speaker may then send its table (RFC 4724 §4.1).
    pub(super) fn end_of_rib_received(&mut self, addr: IpAddr, family: AfiSafi) {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        peer.end_of_rib.insert(family);
        let families = peer
            .main
            .params
            .as_ref()
            .map(|p| p.wire.families.clone())
            .unwrap_or_default();
        if !families.iter().all(|f| peer.end_of_rib.contains(f)) {
            return;
        }
        if std::mem::take(&mut peer.stale) {
            self.deadlines.disarm(&TimerKey::Stale(addr));
        }
        self.release(addr);
    }

    /// The restart or stale timer ran out: the peer's stale routes go.
    pub(super) fn flush_stale(&mut self, addr: IpAddr) {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        peer.stale = false;
        tracing::info!(peer = %addr, "graceful restart: flushing stale routes");
        if let Err(e) = self.rib.stale_timer_expired(peer.rib_id) {
            tracing::warn!(peer = %addr, "RIB: {e}");
        }
    }

    /// The session went down: keep the routes as stale if the peer restarts gracefully
    /// (the connection broke and it announced graceful restart), else withdraw them.
    pub(super) fn down(&mut self, addr: IpAddr, cause: DownCause) {
        let gr_enabled = self.config.graceful_restart.enabled;
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        let restart_time = peer
            .main
            .params
            .as_ref()
            .or(peer.colliding.as_ref().and_then(|s| s.params.as_ref()))
            .and_then(|p| p.wire.peer_graceful_restart.as_ref())
            .filter(|g| !g.families.is_empty())
            .map(|g| g.restart_time);
        let graceful = gr_enabled
            && matches!(cause, DownCause::ConnectionLost)
            && restart_time.is_some_and(|t| t > 0);
        tracing::info!(peer = %addr, graceful, "session down: {cause:?}");
        peer.established_at = None;
        peer.holding_initial = false;
        peer.stale = graceful;
        let rib_id = peer.rib_id;
        for key in [
            TimerKey::Stale(addr),
            TimerKey::Deferral(addr),
            TimerKey::Restart(addr),
        ] {
            self.deadlines.disarm(&key);
        }
        let down = if graceful { Down::Graceful } else { Down::Hard };
        if let Err(e) = self.rib.peer_down(rib_id, down) {
            tracing::error!(peer = %addr, "RIB: {e}");
        }
        if let (true, Some(t)) = (graceful, restart_time) {
            self.deadlines.arm(
                TimerKey::Restart(addr),
                Instant::now() + Duration::from_secs(t.into()),
            );
        }
    }

    /// Sends our held table to the peer (RFC 4724 §4.1) and stops announcing the R bit.
    pub(super) fn release(&mut self, addr: IpAddr) {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        if !std::mem::take(&mut peer.holding_initial) {
            return;
        }
        self.deadlines.disarm(&TimerKey::Deferral(addr));
        if let Err(e) = self.rib.release_initial(peer.rib_id) {
            tracing::warn!(peer = %addr, "RIB: {e}");
        }
        // The R and F bits describe this restart only: later sessions to the peer are normal.
        let mut settled = self.config.clone();
        settled.graceful_restart.restarting = false;
        let caps = peer.settings.capabilities(&settled);
        peer.main.fsm.set_capabilities(caps);
    }
}
