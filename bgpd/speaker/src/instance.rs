//! The instance: one task that owns every session's FSM and the RIB, so routing state needs no
//! lock. Connection tasks, listeners and connect attempts talk to it through channels; timers
//! are deadlines in one heap ([`Deadlines`]).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bgpd_rib::{FibChange, PeerId, Rib, RouteSource, Signal};
use bgpd_wire::{
    AfiSafi, Cease, ErrorCode, HEADER_LEN, Message, Notification, PathAttrs, Prefix,
    RefreshSubtype, RouteRefresh, SessionContext, UpdateError,
};
use bytes::BytesMut;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::collision::{self, Direction, Loser};
use crate::config::{CONNECT_RETRY_MAX, PeerSettings, SpeakerConfig};
use crate::conn::{self, ConnEvent, ConnHandle, ConnId};
use crate::deadlines::Deadlines;
use crate::fsm::{Action, Event, Fsm, FsmConfig, Outgoing, State, Timer};
use crate::negotiate::SessionParams;
use crate::status::{MessageCounts, PeerStatus, RouteStatus, describe};
use crate::transport;

mod graceful;

/// Requests from the [`crate::Speaker`] handle.
#[derive(Debug)]
pub enum Command {
    /// Add a peer and start its session.
    AddPeer(Box<PeerSettings>, oneshot::Sender<Result<(), String>>),
    /// Stop and forget a peer.
    RemovePeer(IpAddr, oneshot::Sender<Result<(), String>>),
    /// Change a peer; resets its session only when the change needs it.
    ReconfigurePeer(Box<PeerSettings>, oneshot::Sender<Result<(), String>>),
    /// Announce a local route.
    Originate(Prefix, Box<PathAttrs>),
    /// Withdraw a local route.
    Withdraw(Prefix),
    /// Receive best-path changes from now on.
    SubscribeFib(mpsc::UnboundedSender<Vec<FibChange>>),
    /// Per-peer status.
    Peers(oneshot::Sender<Vec<PeerStatus>>),
    /// Every candidate route.
    Routes(oneshot::Sender<Vec<RouteStatus>>),
    /// Close every session with Cease/Administrative Shutdown and stop.
    Shutdown(oneshot::Sender<()>),
}

/// What network tasks report.
#[derive(Debug)]
pub enum NetEvent {
    /// A connection was accepted.
    Accepted(tokio::net::TcpStream, SocketAddr),
    /// An outgoing connection attempt ended.
    ConnectDone {
        /// The peer.
        peer: IpAddr,
        /// Which attempt.
        attempt: u64,
        /// The connection, or why there is none.
        result: Result<tokio::net::TcpStream, String>,
    },
}

/// A timer of the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum TimerKey {
    /// An FSM timer of one session of a peer.
    Fsm(IpAddr, u64, TimerKind),
    /// The peer's restart time ran out while its stale routes wait (RFC 4724 helper).
    Restart(IpAddr),
    /// The peer is back but its End-of-RIB did not come in time: flush its stale routes.
    Stale(IpAddr),
    /// We restarted: stop waiting for this peer's End-of-RIB before sending our table.
    Deferral(IpAddr),
}

/// `Timer` with an order, for the deadline heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum TimerKind {
    ConnectRetry,
    Hold,
    Keepalive,
    IdleHold,
}

impl From<Timer> for TimerKind {
    fn from(t: Timer) -> Self {
        match t {
            Timer::ConnectRetry => TimerKind::ConnectRetry,
            Timer::Hold => TimerKind::Hold,
            Timer::Keepalive => TimerKind::Keepalive,
            Timer::IdleHold => TimerKind::IdleHold,
        }
    }
}

impl From<TimerKind> for Timer {
    fn from(t: TimerKind) -> Self {
        match t {
            TimerKind::ConnectRetry => Timer::ConnectRetry,
            TimerKind::Hold => Timer::Hold,
            TimerKind::Keepalive => Timer::Keepalive,
            TimerKind::IdleHold => Timer::IdleHold,
        }
    }
}

/// One FSM with the connection it follows.
#[derive(Debug)]
struct Session {
    id: u64,
    fsm: Fsm,
    conn: Option<(ConnId, Direction)>,
    send_ctx: SessionContext,
    params: Option<SessionParams>,
}

#[derive(Debug)]
struct Peer {
    settings: PeerSettings,
    rib_id: PeerId,
    main: Session,
    /// A second connection racing the main one (RFC 4271 §6.8).
    colliding: Option<Session>,
    /// The outgoing connection attempt in flight.
    attempt: Option<u64>,
    established_at: Option<Instant>,
    established_count: u32,
    received: MessageCounts,
    sent: MessageCounts,
    last_sent: Option<Notification>,
    last_received: Option<Notification>,
    stale: bool,
    /// Families whose End-of-RIB arrived in this session.
    end_of_rib: HashSet<AfiSafi>,
    holding_initial: bool,
    /// Admitted through a peer range: forgotten when its session ends.
    dynamic: bool,
}

/// The actor.
pub struct Instance {
    config: SpeakerConfig,
    rib: Rib,
    peers: HashMap<IpAddr, Peer>,
    by_rib_id: HashMap<PeerId, IpAddr>,
    conns: HashMap<ConnId, (IpAddr, ConnHandle)>,
    deadlines: Deadlines<TimerKey>,
    listeners: Vec<Arc<TcpListener>>,
    /// The accept loops, stopped with the instance so the ports are freed.
    accept_tasks: Vec<tokio::task::AbortHandle>,
    subscribers: Vec<mpsc::UnboundedSender<Vec<FibChange>>>,
    net_tx: mpsc::Sender<NetEvent>,
    conn_tx: mpsc::Sender<ConnEvent>,
    /// Shared by every connection's reader.
    read_budget: Arc<tokio::sync::Semaphore>,
    next_id: u64,
    /// EoRRs owed (peer, session, family): each is sent after the drain that re-sends the
    /// family, which waits while the peer's writer is full.
    end_of_refresh: Vec<(IpAddr, u64, AfiSafi)>,
}

/// Inputs handled before the RIB is drained: bounds latency and pending state while letting
/// a burst of UPDATEs share one drain (and so one packing pass).
const BATCH: usize = 256;

/// Changed prefixes after which the RIB is drained even within a batch: the drain's snapshots
/// of changed prefixes (32 octets each, 8 MiB here) and the UPDATEs it encodes at once stay
/// bounded however large the burst. Smaller drains cost CPU: the drain walks the table in
/// memory order, and sparser walks miss the cache more (65,536 cost 7% more CPU at 1M).
const DRAIN_AT: usize = 262_144;

impl Instance {
    /// Binds the listeners; the instance runs with [`Instance::run`].
    pub fn new(
        config: SpeakerConfig,
        net_tx: mpsc::Sender<NetEvent>,
        conn_tx: mpsc::Sender<ConnEvent>,
    ) -> std::io::Result<Self> {
        let mut listeners = Vec::new();
        let mut accept_tasks = Vec::new();
        for addr in &config.listen {
            let listener = Arc::new(transport::listen(*addr)?);
            let accept = listener.clone();
            let tx = net_tx.clone();
            let task = tokio::spawn(async move {
                loop {
                    match accept.accept().await {
                        Ok((stream, from)) => {
                            if tx.send(NetEvent::Accepted(stream, from)).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!("accept: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            });
            accept_tasks.push(task.abort_handle());
            listeners.push(listener);
        }
        Ok(Instance {
            rib: Rib::new(config.rib_settings()),
            config,
            peers: HashMap::new(),
            by_rib_id: HashMap::new(),
            conns: HashMap::new(),
            deadlines: Deadlines::default(),
            listeners,
            accept_tasks,
            subscribers: Vec::new(),
            net_tx,
            conn_tx,
            read_budget: conn::read_budget(),
            next_id: 1,
            end_of_refresh: Vec::new(),
        })
    }

    /// Runs until a shutdown command or until every handle is dropped.
    pub async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut net: mpsc::Receiver<NetEvent>,
        mut conns: mpsc::Receiver<ConnEvent>,
    ) {
        for prefix in self.config.originate.clone() {
            self.rib.originate(prefix, PathAttrs::default());
        }
        for p in self.config.peers.clone() {
            if let Err(e) = self.add_peer(p) {
                tracing::error!("{e}");
            }
        }
        self.flush();
        loop {
            let next = self.deadlines.earliest();
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown(done)) => {
                        self.shutdown();
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => self.command(cmd),
                    None => { self.shutdown(); return; }
                },
                Some(ev) = conns.recv() => {
                    self.conn_event(ev);
                    for _ in 0..BATCH {
                        if self.rib.pending_changes() >= DRAIN_AT {
                            break;
                        }
                        match conns.try_recv() {
                            Ok(ev) => self.conn_event(ev),
                            Err(_) => break,
                        }
                    }
                }
                Some(ev) = net.recv() => self.net_event(ev),
                _ = sleep_until(next) => {
                    for key in self.deadlines.expired(Instant::now()) {
                        self.timer_expired(key);
                    }
                }
                // A peer catching up on its backlog gets the next batch at the next drain.
                _ = std::future::ready(()), if self.rib.catching_up() => {}
            }
            self.flush();
        }
    }

    fn shutdown(&mut self) {
        let addrs: Vec<IpAddr> = self.peers.keys().copied().collect();
        for addr in addrs {
            self.stop_sessions(
                addr,
                Notification::shutdown(Cease::AdministrativeShutdown, "speaker shutting down"),
            );
        }
        self.flush();
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::AddPeer(settings, reply) => {
                let _ = reply.send(self.add_peer(*settings));
            }
            Command::RemovePeer(addr, reply) => {
                let _ = reply.send(self.remove_peer(addr));
            }
            Command::ReconfigurePeer(settings, reply) => {
                let _ = reply.send(self.reconfigure_peer(*settings));
            }
            Command::Originate(prefix, attrs) => self.rib.originate(prefix, *attrs),
            Command::Withdraw(prefix) => self.rib.withdraw_local(prefix),
            Command::SubscribeFib(tx) => self.subscribers.push(tx),
            Command::Peers(reply) => {
                let _ = reply.send(self.peer_status());
            }
            Command::Routes(reply) => {
                let routes = self
                    .rib
                    .routes()
                    .iter()
                    .map(|v| {
                        let from = match v.source {
                            RouteSource::Local => None,
                            RouteSource::Peer(id) => self.by_rib_id.get(&id).copied(),
                        };
                        RouteStatus::new(v, from)
                    })
                    .collect();
                let _ = reply.send(routes);
            }
            Command::Shutdown(_) => {}
        }
    }

    fn fsm_config(&self, settings: &PeerSettings) -> FsmConfig {
        FsmConfig {
            local_as: self.config.local_as,
            local_id: self.config.router_id,
            peer_as: settings.remote_as,
            hold_time: settings.hold_time,
            passive: settings.passive,
            connect_retry: Duration::from_secs(settings.connect_retry.max(1)),
            connect_retry_max: CONNECT_RETRY_MAX,
            capabilities: settings.capabilities(&self.config),
        }
    }

    fn new_session(&mut self, fsm: Fsm) -> Session {
        self.next_id += 1;
        Session {
            id: self.next_id,
            fsm,
            conn: None,
            send_ctx: SessionContext::default(),
            params: None,
        }
    }

    fn add_peer(&mut self, settings: PeerSettings) -> Result<(), String> {
        self.insert_peer(settings, false)
    }

    fn insert_peer(&mut self, settings: PeerSettings, dynamic: bool) -> Result<(), String> {
        let addr = settings.address;
        settings.validate().map_err(|e| e.to_string())?;
        if self.peers.contains_key(&addr) {
            return Err(format!("peer {addr} exists"));
        }
        self.set_listener_md5(addr, settings.password.as_deref())?;
        let rib_id = self
            .rib
            .add_peer(settings.rib_config())
            .map_err(|e| e.to_string())?;
        let main = self.new_session(Fsm::new(self.fsm_config(&settings)));
        let sid = main.id;
        self.peers.insert(
            addr,
            Peer {
                settings,
                rib_id,
                main,
                colliding: None,
                attempt: None,
                established_at: None,
                established_count: 0,
                received: MessageCounts::default(),
                sent: MessageCounts::default(),
                last_sent: None,
                last_received: None,
                stale: false,
                end_of_rib: HashSet::new(),
                holding_initial: false,
                dynamic,
            },
        );
        self.by_rib_id.insert(rib_id, addr);
        self.run_fsm(addr, sid, Event::Start);
        Ok(())
    }

    fn set_listener_md5(&self, addr: IpAddr, key: Option<&str>) -> Result<(), String> {
        for l in &self.listeners {
            let family_matches = l
                .local_addr()
                .map(|a| a.is_ipv6() == addr.is_ipv6())
                .unwrap_or(false);
            if family_matches {
                transport::set_md5(l.as_ref(), addr, key)
                    .map_err(|e| format!("TCP-MD5 for {addr}: {e}"))?;
            }
        }
        Ok(())
    }

    fn remove_peer(&mut self, addr: IpAddr) -> Result<(), String> {
        if !self.peers.contains_key(&addr) {
            return Err(format!("no peer {addr}"));
        }
        self.stop_sessions(addr, cease(Cease::PeerDeconfigured));
        let Some(peer) = self.peers.remove(&addr) else {
            return Ok(());
        };
        self.by_rib_id.remove(&peer.rib_id);
        for key in [
            TimerKey::Restart(addr),
            TimerKey::Stale(addr),
            TimerKey::Deferral(addr),
        ] {
            self.deadlines.disarm(&key);
        }
        let _ = self.set_listener_md5(addr, None);
        self.rib.remove_peer(peer.rib_id).map_err(|e| e.to_string())
    }

    fn reconfigure_peer(&mut self, settings: PeerSettings) -> Result<(), String> {
        let addr = settings.address;
        settings.validate().map_err(|e| e.to_string())?;
        let Some(peer) = self.peers.get_mut(&addr) else {
            return Err(format!("no peer {addr}"));
        };
        let reset = peer.settings.needs_reset(&settings);
        let rib_id = peer.rib_id;
        peer.settings = settings.clone();
        self.rib
            .reconfigure_peer(rib_id, settings.rib_config())
            .map_err(|e| e.to_string())?;
        if reset {
            self.set_listener_md5(addr, settings.password.as_deref())?;
            self.reset(addr, cease(Cease::OtherConfigurationChange));
        }
        Ok(())
    }

    /// Closes the peer's sessions with `notification` and starts a fresh one with its current
    /// settings.
    fn reset(&mut self, addr: IpAddr, notification: Notification) {
        self.stop_sessions(addr, notification);
        let Some(settings) = self.peers.get(&addr).map(|p| p.settings.clone()) else {
            return;
        };
        let session = self.new_session(Fsm::new(self.fsm_config(&settings)));
        let sid = session.id;
        if let Some(peer) = self.peers.get_mut(&addr) {
            peer.main = session;
        }
        self.run_fsm(addr, sid, Event::Start);
    }

    fn stop_sessions(&mut self, addr: IpAddr, notification: Notification) {
        let Some(peer) = self.peers.get(&addr) else {
            return;
        };
        let ids: Vec<u64> = std::iter::once(peer.main.id)
            .chain(peer.colliding.as_ref().map(|s| s.id))
            .collect();
        for sid in ids {
            self.run_fsm(addr, sid, Event::Stop(notification.clone()));
        }
        if let Some(peer) = self.peers.get_mut(&addr) {
            peer.colliding = None;
        }
    }

    fn session_mut(&mut self, addr: IpAddr, sid: u64) -> Option<&mut Session> {
        let peer = self.peers.get_mut(&addr)?;
        if peer.main.id == sid {
            return Some(&mut peer.main);
        }
        peer.colliding.as_mut().filter(|s| s.id == sid)
    }

    /// Feeds `event` to one session's FSM and carries out its actions; returns whether the
    /// message was to be delivered.
    fn run_fsm(&mut self, addr: IpAddr, sid: u64, event: Event) -> bool {
        let Some(session) = self.session_mut(addr, sid) else {
            return false;
        };
        let actions = session.fsm.handle(event);
        let mut deliver = false;
        for action in actions {
            match action {
                Action::Deliver => deliver = true,
                other => self.execute(addr, sid, other),
            }
        }
        self.settle(addr);
        deliver
    }

    /// Keeps the peer's sessions tidy after any FSM step: a colliding connection that died is
    /// dropped; one that outlived the main connection becomes the main session; a dynamic peer
    /// whose session ended is forgotten.
    fn settle(&mut self, addr: IpAddr) {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        if peer.colliding.as_ref().is_some_and(|s| s.conn.is_none()) {
            peer.colliding = None;
        } else if peer.main.conn.is_none()
            && let Some(survivor) = peer.colliding.take()
        {
            peer.main = survivor;
        }
        self.forget_if_done(addr);
    }

    /// A dynamic peer whose session has ended is removed with its routes (it may connect again
    /// and becomes a new peer then).
    fn forget_if_done(&mut self, addr: IpAddr) {
        let done = self.peers.get(&addr).is_some_and(|p| {
            p.dynamic && p.main.fsm.state() == State::Idle && p.colliding.is_none()
        });
        if !done {
            return;
        }
        let Some(peer) = self.peers.remove(&addr) else {
            return;
        };
        tracing::info!(peer = %addr, "dynamic peer gone");
        self.by_rib_id.remove(&peer.rib_id);
        for key in [
            TimerKey::Restart(addr),
            TimerKey::Stale(addr),
            TimerKey::Deferral(addr),
        ] {
            self.deadlines.disarm(&key);
        }
        if let Some((conn, _)) = peer.main.conn
            && let Some((_, handle)) = self.conns.remove(&conn)
        {
            handle.close();
        }
        if let Err(e) = self.rib.remove_peer(peer.rib_id) {
            tracing::warn!(peer = %addr, "RIB: {e}");
        }
    }

    /// A connection from an address without a peer: admitted if a peer range covers it.
    fn admit_dynamic(&mut self, addr: IpAddr) -> bool {
        let Some(range) = self.config.peer_ranges.iter().find(|r| r.contains(addr)) else {
            return false;
        };
        match self.insert_peer(range.peer(addr), true) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(peer = %addr, "dynamic peer refused: {e}");
                false
            }
        }
    }

    fn execute(&mut self, addr: IpAddr, sid: u64, action: Action) {
        match action {
            Action::Connect => self.connect(addr),
            Action::Disconnect => {
                let conn = self.session_mut(addr, sid).and_then(|s| {
                    s.params = None;
                    s.conn.take()
                });
                if let Some((id, _)) = conn {
                    if let Some((_, handle)) = self.conns.remove(&id) {
                        handle.close();
                    }
                } else if let Some(peer) = self.peers.get_mut(&addr) {
                    peer.attempt = None;
                }
            }
            Action::Send(out) => {
                let msg = match out {
                    Outgoing::Open(o) => Message::Open(o),
                    Outgoing::Keepalive => Message::Keepalive,
                    Outgoing::Notification(n) => {
                        tracing::info!(peer = %addr, "sending {}", describe(&n));
                        if let Some(p) = self.peers.get_mut(&addr) {
                            p.last_sent = Some(n.clone());
                        }
                        Message::Notification(n)
                    }
                };
                self.send(addr, sid, &msg);
            }
            Action::StartTimer(t, d) => {
                self.deadlines.arm(
                    TimerKey::Fsm(addr, sid, t.into()),
                    Instant::now() + jitter(t, d),
                );
            }
            Action::StopTimer(t) => self.deadlines.disarm(&TimerKey::Fsm(addr, sid, t.into())),
            Action::Deliver => {}
            Action::Up(params) => self.established(addr, sid, *params),
            Action::Down(cause) => self.down(addr, cause),
        }
    }

    fn send(&mut self, addr: IpAddr, sid: u64, msg: &Message) {
        let Some(session) = self.session_mut(addr, sid) else {
            return;
        };
        let Some((conn, _)) = session.conn else {
            return;
        };
        let mut out = BytesMut::new();
        if let Err(e) = msg.encode(&session.send_ctx, &mut out) {
            tracing::error!(peer = %addr, "cannot encode {:?}: {e}", msg.message_type());
            return;
        }
        if let Some((_, handle)) = self.conns.get(&conn) {
            match msg {
                // In order with the UPDATEs they frame or follow.
                Message::Update(_) | Message::RouteRefresh(_) => handle.send(out.freeze()),
                _ => handle.send_control(out.freeze()),
            }
        }
        if let Some(p) = self.peers.get_mut(&addr) {
            p.sent.count(msg);
        }
    }

    fn connect(&mut self, addr: IpAddr) {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        self.next_id += 1;
        let attempt = self.next_id;
        peer.attempt = Some(attempt);
        let target = SocketAddr::new(addr, peer.settings.port);
        let options = peer.settings.socket_options(self.config.local_as);
        let limit = Duration::from_secs(peer.settings.connect_retry.max(1));
        let tx = self.net_tx.clone();
        tokio::spawn(async move {
            let result =
                match tokio::time::timeout(limit, transport::connect(target, &options)).await {
                    Ok(Ok(stream)) => Ok(stream),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("connect timed out".to_string()),
                };
            let _ = tx
                .send(NetEvent::ConnectDone {
                    peer: addr,
                    attempt,
                    result,
                })
                .await;
        });
    }

    fn attach(
        &mut self,
        addr: IpAddr,
        sid: u64,
        stream: tokio::net::TcpStream,
        direction: Direction,
    ) -> bool {
        self.next_id += 1;
        let id = self.next_id;
        let budget = Arc::clone(&self.read_budget);
        let Some(send_hold) = self.peers.get(&addr).map(|p| p.settings.send_hold()) else {
            return false;
        };
        let handle = match conn::spawn(id, stream, self.conn_tx.clone(), budget, send_hold) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(peer = %addr, "connection unusable: {e}");
                return false;
            }
        };
        self.conns.insert(id, (addr, handle));
        match self.session_mut(addr, sid) {
            Some(s) => {
                s.conn = Some((id, direction));
                true
            }
            None => false,
        }
    }

    fn net_event(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Accepted(stream, from) => self.accepted(stream, from),
            NetEvent::ConnectDone {
                peer: addr,
                attempt,
                result,
            } => {
                let Some(peer) = self.peers.get_mut(&addr) else {
                    return;
                };
                if peer.attempt != Some(attempt) {
                    return;
                }
                peer.attempt = None;
                let sid = peer.main.id;
                let connecting = peer.main.fsm.state() == State::Connect;
                match result {
                    Ok(stream) if connecting => {
                        if self.attach(addr, sid, stream, Direction::Outgoing) {
                            self.run_fsm(addr, sid, Event::Connected);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(peer = %addr, "connect: {e}");
                        if connecting {
                            self.run_fsm(addr, sid, Event::ConnectionFailed);
                        }
                    }
                }
            }
        }
    }

    fn accepted(&mut self, stream: tokio::net::TcpStream, from: SocketAddr) {
        let addr = from.ip().to_canonical();
        if !self.peers.contains_key(&addr) && !self.admit_dynamic(addr) {
            tracing::info!("connection from unknown {addr} refused");
            return;
        }
        let Some(peer) = self.peers.get(&addr) else {
            tracing::info!("connection from unknown {addr} refused");
            return;
        };
        if let Err(e) =
            transport::accepted(&stream, &peer.settings.socket_options(self.config.local_as))
        {
            tracing::warn!(peer = %addr, "accepted connection unusable: {e}");
            return;
        }
        let main_sid = peer.main.id;
        match peer.main.fsm.state() {
            State::Idle => tracing::debug!(peer = %addr, "connection refused in Idle"),
            State::Connect | State::Active => {
                // Take the peer's connection; our own attempt, if any, is dropped when it ends.
                if let Some(p) = self.peers.get_mut(&addr) {
                    p.attempt = None;
                }
                if self.attach(addr, main_sid, stream, Direction::Incoming) {
                    self.run_fsm(addr, main_sid, Event::Connected);
                }
            }
            State::OpenSent | State::OpenConfirm => {
                if peer.colliding.is_some() {
                    return;
                }
                let fsm = Fsm::accepting(self.fsm_config(&peer.settings));
                let session = self.new_session(fsm);
                let sid = session.id;
                if let Some(p) = self.peers.get_mut(&addr) {
                    p.colliding = Some(session);
                }
                if self.attach(addr, sid, stream, Direction::Incoming) {
                    self.run_fsm(addr, sid, Event::Connected);
                }
            }
            State::Established => {
                // RFC 4724 §4.2: a restarting peer reconnecting while we still hold the old
                // session means the old one is dead.
                let graceful = peer
                    .main
                    .params
                    .as_ref()
                    .is_some_and(|p| p.wire.peer_graceful_restart.is_some());
                if !graceful {
                    return;
                }
                self.run_fsm(addr, main_sid, Event::ConnectionFailed);
                self.run_fsm(addr, main_sid, Event::Start);
                if let Some(p) = self.peers.get_mut(&addr) {
                    p.attempt = None;
                }
                if self.attach(addr, main_sid, stream, Direction::Incoming) {
                    self.run_fsm(addr, main_sid, Event::Connected);
                }
            }
        }
    }

    fn conn_event(&mut self, ev: ConnEvent) {
        let conn = match &ev {
            ConnEvent::Message(c, _, _)
            | ConnEvent::Malformed(c, _)
            | ConnEvent::Closed(c, _)
            | ConnEvent::Writable(c)
            | ConnEvent::SendHoldExpired(c) => *c,
        };
        let Some((addr, _)) = self.conns.get(&conn) else {
            return;
        };
        let addr = *addr;
        let Some(peer) = self.peers.get(&addr) else {
            return;
        };
        let sid = [Some(&peer.main), peer.colliding.as_ref()]
            .into_iter()
            .flatten()
            .find(|s| s.conn.map(|(c, _)| c) == Some(conn))
            .map(|s| s.id);
        let Some(sid) = sid else { return };
        match ev {
            // The message's read credit is returned once it is handled.
            ConnEvent::Message(_, msg, _credit) => self.message(addr, sid, msg),
            ConnEvent::Malformed(_, err) => {
                tracing::warn!(peer = %addr, "malformed message: {err}");
                self.run_fsm(addr, sid, Event::MessageError(err));
            }
            ConnEvent::SendHoldExpired(_) => {
                tracing::warn!(peer = %addr, "send hold timer expired: closing the session");
                self.run_fsm(addr, sid, Event::SendHoldExpired);
            }
            ConnEvent::Writable(_) => {
                tracing::debug!(peer = %addr, "writer has room: catching up");
                if let Err(e) = self.rib.peer_writable(peer.rib_id) {
                    tracing::warn!(peer = %addr, "RIB: {e}");
                }
            }
            ConnEvent::Closed(_, reason) => {
                tracing::info!(peer = %addr, "connection closed: {reason}");
                self.conns.remove(&conn);
                if let Some(s) = self.session_mut(addr, sid) {
                    s.conn = None;
                }
                self.run_fsm(addr, sid, Event::ConnectionFailed);
            }
        }
    }

    fn message(&mut self, addr: IpAddr, sid: u64, msg: Message) {
        if let Some(p) = self.peers.get_mut(&addr) {
            p.received.count(&msg);
        }
        match msg {
            Message::Open(open) => {
                self.run_fsm(addr, sid, Event::Open(open));
                self.open_accepted(addr, sid);
            }
            Message::Keepalive => {
                self.run_fsm(addr, sid, Event::Keepalive);
            }
            Message::Notification(n) => {
                tracing::info!(peer = %addr, "received {}", describe(&n));
                if let Some(p) = self.peers.get_mut(&addr) {
                    p.last_received = Some(n.clone());
                }
                self.run_fsm(addr, sid, Event::Notification(n));
            }
            Message::Update(update) => {
                if self.run_fsm(addr, sid, Event::Update) {
                    self.update(addr, &update);
                }
            }
            Message::RouteRefresh(rr) => {
                if self.run_fsm(addr, sid, Event::RouteRefresh) {
                    self.route_refresh(addr, &rr);
                }
            }
        }
    }

    /// After an OPEN: hand the reader its context, and resolve a collision (RFC 4271 §6.8).
    fn open_accepted(&mut self, addr: IpAddr, sid: u64) {
        let Some(session) = self.session_mut(addr, sid) else {
            return;
        };
        let Some(params) = session.fsm.negotiated().cloned() else {
            return;
        };
        session.send_ctx = params.wire.send.clone();
        session.params = Some(params.clone());
        if let Some((conn, _)) = session.conn
            && let Some((_, handle)) = self.conns.get_mut(&conn)
            && let Some(tx) = handle.context.take()
        {
            let _ = tx.send(params.wire.receive.clone());
        }
        let Some(peer) = self.peers.get(&addr) else {
            return;
        };
        let (this, other) = if peer.main.id == sid {
            (&peer.main, peer.colliding.as_ref())
        } else {
            (
                peer.colliding.as_ref().unwrap_or(&peer.main),
                Some(&peer.main),
            )
        };
        let (Some(other), Some((_, this_dir))) = (other, this.conn) else {
            return;
        };
        let Some((_, other_dir)) = other.conn else {
            return;
        };
        let other_id = other.id;
        let loser = collision::resolve(
            self.config.router_id,
            params.peer_id,
            (other_dir, other.fsm.state()),
            this_dir,
        );
        let loser_sid = match loser {
            None => return,
            Some(Loser::New) => sid,
            Some(Loser::Existing) => other_id,
        };
        tracing::info!(peer = %addr, "connection collision: closing the {:?} connection", if loser_sid == sid { this_dir } else { other_dir });
        // The loser loses its connection; `settle` then keeps the survivor as the main session.
        self.run_fsm(addr, loser_sid, Event::Stop(collision::notification()));
    }

    fn established(&mut self, addr: IpAddr, sid: u64, params: SessionParams) {
        let hold_initial = self.holds_initial(&params);
        let Some(local) = self
            .session_mut(addr, sid)
            .and_then(|s| s.conn)
            .and_then(|(c, _)| self.conns.get(&c))
            .map(|(_, h)| h.local.ip().to_canonical())
        else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        tracing::info!(peer = %addr, id = %params.peer_id, hold = params.hold_time(), "session established");
        peer.established_at = Some(Instant::now());
        peer.established_count += 1;
        peer.end_of_rib.clear();
        let session = bgpd_rib::Session {
            router_id: params.peer_id,
            local_v4: match local {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => peer.settings.next_hop_v4,
            },
            local_v6: match local {
                IpAddr::V6(a) => Some(a),
                IpAddr::V4(_) => peer.settings.next_hop_v6,
            },
            families: params.wire.families.clone(),
            four_octet_as: params.wire.send.four_octet_as,
            add_path_rx: params.wire.receive.add_path_families.clone(),
            add_path_tx: params.wire.send.add_path_families.clone(),
            extended_message: params.wire.send.max_message_size > bgpd_wire::MAX_MESSAGE_SIZE,
            hold_initial,
        };
        let rib_id = peer.rib_id;
        if let Err(e) = self.rib.peer_up(rib_id, session) {
            tracing::error!(peer = %addr, "RIB refused the session: {e}");
        }
        self.graceful_up(addr, &params);
    }

    fn update(&mut self, addr: IpAddr, update: &bgpd_wire::Update) {
        for e in &update.errors {
            tracing::warn!(peer = %addr, "UPDATE attribute error: {e}");
        }
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        let rib_id = peer.rib_id;
        if let Some(family) = update.end_of_rib_family() {
            self.end_of_rib_received(addr, family);
        }
        // The RIB does not panic on peer input; should it ever, that session pays, not the
        // process: the peer is reset with an UPDATE error and its routes withdrawn.
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.rib.apply_update(rib_id, update)
        }));
        match applied {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(peer = %addr, "RIB: {e}"),
            Err(_) => {
                tracing::error!(peer = %addr, "RIB panicked on an UPDATE; resetting the session");
                self.reset(
                    addr,
                    Notification::new(ErrorCode::Update(UpdateError::Unspecific), Vec::new()),
                );
            }
        }
    }

    /// Re-sends the family to the peer (once its writer has room); with enhanced route refresh
    /// negotiated, framed by BoRR now and EoRR after the drain that re-sends it (RFC 7313 §4).
    /// Refreshes asked for while one is owed merge into it.
    fn route_refresh(&mut self, addr: IpAddr, rr: &RouteRefresh) {
        // BoRR/EoRR from the peer only frame what it re-sends; we take its UPDATEs as they come
        // (its explicit withdrawals keep us in sync). Reserved subtypes are ignored (§5).
        if rr.subtype != RefreshSubtype::Normal {
            return;
        }
        let Some(peer) = self.peers.get(&addr) else {
            return;
        };
        let (rib_id, sid) = (peer.rib_id, peer.main.id);
        let enhanced = peer.main.params.as_ref().is_some_and(|p| {
            // A family not negotiated is not re-sent: no BoRR that no EoRR would follow.
            p.wire.enhanced_route_refresh && p.wire.families.contains(&rr.afi_safi)
        });
        if let Err(e) = self.rib.route_refresh(rib_id, rr.afi_safi) {
            tracing::warn!(peer = %addr, "route refresh: {e}");
            return;
        }
        let owed = self.end_of_refresh.contains(&(addr, sid, rr.afi_safi));
        if enhanced && !owed {
            let borr = RouteRefresh {
                afi_safi: rr.afi_safi,
                subtype: RefreshSubtype::BeginningOfRefresh,
            };
            self.send(addr, sid, &Message::RouteRefresh(borr));
            self.end_of_refresh.push((addr, sid, rr.afi_safi));
        }
    }

    fn timer_expired(&mut self, key: TimerKey) {
        match key {
            TimerKey::Fsm(addr, sid, kind) => {
                self.run_fsm(addr, sid, Event::TimerExpired(kind.into()));
            }
            TimerKey::Restart(addr) | TimerKey::Stale(addr) => self.flush_stale(addr),
            TimerKey::Deferral(addr) => self.release(addr),
        }
    }

    /// Drains the RIB and carries out its effects.
    fn flush(&mut self) {
        let fx = self.rib.drain();
        let mut full = Vec::new();
        for out in fx.outbound {
            let count = count_messages(&out.messages);
            for pid in out.peers {
                let Some(addr) = self.by_rib_id.get(&pid) else {
                    continue;
                };
                let Some(peer) = self.peers.get_mut(addr) else {
                    continue;
                };
                let Some((conn, _)) = peer.main.conn else {
                    continue;
                };
                if peer.main.fsm.state() != State::Established {
                    continue;
                }
                if let Some((_, handle)) = self.conns.get(&conn) {
                    handle.send(out.messages.clone());
                    peer.sent.update += count;
                    if handle.over_high_mark() {
                        full.push(pid);
                    }
                }
            }
        }
        full.dedup();
        for pid in full {
            // Its next changes wait in the RIB's backlog until the writer has room.
            tracing::debug!(peer = ?self.by_rib_id.get(&pid), "writer full: holding back UPDATEs");
            if let Err(e) = self.rib.peer_blocked(pid) {
                tracing::warn!("RIB: {e}");
            }
        }
        if !fx.fib.is_empty() {
            self.subscribers.retain(|s| s.send(fx.fib.clone()).is_ok());
        }
        for (pid, family) in fx.resent {
            let Some(&addr) = self.by_rib_id.get(&pid) else {
                continue;
            };
            let owed = |&(a, _, f): &(IpAddr, u64, AfiSafi)| a == addr && f == family;
            let Some(i) = self.end_of_refresh.iter().position(owed) else {
                continue;
            };
            let (_, sid, _) = self.end_of_refresh.swap_remove(i);
            let eorr = RouteRefresh {
                afi_safi: family,
                subtype: RefreshSubtype::EndOfRefresh,
            };
            self.send(addr, sid, &Message::RouteRefresh(eorr));
        }
        // A session that ended owes nothing.
        let mut owed = std::mem::take(&mut self.end_of_refresh);
        owed.retain(|&(addr, sid, _)| {
            self.session_mut(addr, sid)
                .is_some_and(|s| s.conn.is_some())
        });
        self.end_of_refresh = owed;
        for signal in fx.signals {
            self.signal(signal);
        }
    }

    fn signal(&mut self, signal: Signal) {
        match signal {
            Signal::MaxPrefix {
                peer,
                limit,
                family,
            } => {
                let Some(addr) = self.by_rib_id.get(&peer).copied() else {
                    return;
                };
                let Some(p) = self.peers.get_mut(&addr) else {
                    return;
                };
                let restart = Duration::from_secs(p.settings.max_prefix_restart.max(1));
                tracing::warn!(peer = %addr, limit, %family, restart_secs = restart.as_secs(), "maximum prefixes reached: session down until the restart interval has passed");
                // RFC 4486 §4: AFI, SAFI and the upper bound.
                let mut data = family.afi.0.to_be_bytes().to_vec();
                data.push(family.safi.0);
                data.extend_from_slice(&limit.to_be_bytes());
                let n = Notification::new(ErrorCode::Cease(Cease::MaximumPrefixesReached), data);
                let (main, colliding) = (p.main.id, p.colliding.as_ref().map(|s| s.id));
                if let Some(sid) = colliding {
                    self.run_fsm(addr, sid, Event::Stop(n.clone()));
                }
                if let Some(p) = self.peers.get_mut(&addr) {
                    p.colliding = None;
                }
                self.run_fsm(addr, main, Event::StopFor(n, restart));
            }
            Signal::RefreshNeeded { peer } => {
                let Some(addr) = self.by_rib_id.get(&peer).copied() else {
                    return;
                };
                let Some(p) = self.peers.get(&addr) else {
                    return;
                };
                let sid = p.main.id;
                match p.main.params.as_ref().filter(|s| s.wire.route_refresh) {
                    Some(params) => {
                        for family in params.wire.families.clone() {
                            let msg = Message::RouteRefresh(RouteRefresh {
                                afi_safi: family,
                                subtype: RefreshSubtype::Normal,
                            });
                            self.send(addr, sid, &msg);
                        }
                    }
                    None => self.reset(addr, cease(Cease::OtherConfigurationChange)),
                }
            }
            Signal::FamilyNotNegotiated { peer, family } => {
                if let Some(addr) = self.by_rib_id.get(&peer) {
                    tracing::info!(peer = %addr, %family, "ignoring routes of a family this session did not negotiate (RFC 4760 §6); counted, logged once per session");
                }
            }
            Signal::ResetNeeded { peer } => {
                if let Some(addr) = self.by_rib_id.get(&peer).copied() {
                    self.reset(addr, cease(Cease::OtherConfigurationChange));
                }
            }
            Signal::EncodeFailed { peers, error } => {
                tracing::error!(?peers, "routes not sent: {error}");
            }
        }
    }

    fn peer_status(&self) -> Vec<PeerStatus> {
        let mut out: Vec<PeerStatus> = self
            .peers
            .values()
            .map(|p| {
                let counts = self.rib.peer_counts(p.rib_id).unwrap_or_default();
                let params = p.main.params.as_ref();
                PeerStatus {
                    address: p.settings.address,
                    remote_as: p.settings.remote_as.0,
                    state: p.main.fsm.state().to_string(),
                    uptime_secs: p.established_at.map(|t| t.elapsed().as_secs()),
                    peer_id: params.map(|s| s.peer_id),
                    hostname: params.and_then(|s| s.peer_hostname.clone()),
                    hold_time: params.map(|s| s.hold_time()),
                    families: params
                        .map(|s| s.wire.families.iter().map(|f| f.to_string()).collect())
                        .unwrap_or_default(),
                    prefixes_received: counts.received,
                    prefixes_accepted: counts.accepted,
                    prefixes_advertised: counts.advertised,
                    prefixes_ignored: counts.ignored,
                    attributes_discarded: counts.attributes_discarded,
                    received: p.received,
                    sent: p.sent,
                    established_count: p.established_count,
                    last_notification_sent: p.last_sent.as_ref().map(describe),
                    last_notification_received: p.last_received.as_ref().map(describe),
                    graceful_restart_stale: p.stale,
                }
            })
            .collect();
        out.sort_by_key(|s| s.address);
        out
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        for task in &self.accept_tasks {
            task.abort();
        }
    }
}

fn cease(subcode: Cease) -> Notification {
    Notification::new(ErrorCode::Cease(subcode), Vec::new())
}

/// Messages in a buffer of whole encoded messages, by their length fields.
fn count_messages(mut buf: &[u8]) -> u64 {
    let mut n = 0;
    while buf.len() >= HEADER_LEN {
        let len = usize::from(u16::from_be_bytes([buf[16], buf[17]])).max(HEADER_LEN);
        buf = buf.get(len..).unwrap_or(&[]);
        n += 1;
    }
    n
}

/// RFC 4271 §10: ConnectRetry, keepalive and idle-hold intervals are cut by a random 0–25 % so
/// that peers do not fall into step; the hold timer is exact.
fn jitter(timer: Timer, d: Duration) -> Duration {
    match timer {
        Timer::Hold => d,
        _ => d.mul_f64(rand::random_range(0.75..=1.0)),
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
