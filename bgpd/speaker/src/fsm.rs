//! The session state machine of RFC 4271 §8 without I/O: [`Fsm::handle`] takes an [`Event`] and
//! returns the [`Action`]s the transport must carry out. Timers are named, not run: the FSM asks
//! for them to be started or stopped and ignores expiries of timers it has not started, so a
//! late expiry racing a state change does nothing.
//!
//! The FSM follows one TCP connection at a time. A second, colliding connection gets its own
//! `Fsm`; [`crate::collision`] decides which of the two survives (RFC 4271 §6.8).

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use bgpd_wire::{Asn, Capability, Cease, ErrorCode, FsmError, Notification, Open, SessionError};

use crate::negotiate::SessionParams;

/// The six states of RFC 4271 §8.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Refuses connections; waits for a start (or the idle-hold timer after an error).
    Idle,
    /// Waiting for an outgoing TCP connection to complete.
    Connect,
    /// Waiting for the peer to connect (or for ConnectRetry to try again).
    Active,
    /// Our OPEN is sent; waiting for the peer's.
    OpenSent,
    /// OPENs exchanged; waiting for the first KEEPALIVE.
    OpenConfirm,
    /// The session is up: UPDATEs flow.
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The timers of the FSM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Retries an outgoing connection (RFC 4271 §10).
    ConnectRetry,
    /// Declares the peer dead when nothing arrives for the hold time.
    Hold,
    /// Paces our KEEPALIVEs.
    Keepalive,
    /// Delays an automatic restart after an error, with backoff (RFC 4271 §8.1.1,
    /// IdleHoldTimer of DampPeerOscillations).
    IdleHold,
}

const TIMERS: [Timer; 4] = [
    Timer::ConnectRetry,
    Timer::Hold,
    Timer::Keepalive,
    Timer::IdleHold,
];

/// What can happen to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start the session (ManualStart or AutomaticStart; active or passive per configuration).
    Start,
    /// Stop the session, sending this Cease when a connection is open (ManualStop).
    Stop(Notification),
    /// Stop the session like [`Event::Stop`], then start it again after this long (Idle
    /// refuses connections until then): the restart after a max-prefix Cease.
    StopFor(Notification, Duration),
    /// A timer expired.
    TimerExpired(Timer),
    /// A TCP connection to the peer is up (ours completed, or theirs accepted).
    Connected,
    /// The TCP connection failed or closed.
    ConnectionFailed,
    /// An OPEN arrived.
    Open(Open),
    /// A KEEPALIVE arrived.
    Keepalive,
    /// An UPDATE arrived (decoded without a session-ending error).
    Update,
    /// A ROUTE-REFRESH arrived.
    RouteRefresh,
    /// A NOTIFICATION arrived.
    Notification(Notification),
    /// A message could not be decoded: its NOTIFICATION must be sent (RFC 4271 §6).
    MessageError(SessionError),
    /// Nothing could be written to the peer for the send hold time (RFC 9687
    /// SendHoldTimer_Expires): NOTIFICATION 8/0, close, and restart later.
    SendHoldExpired,
}

/// A message the FSM itself sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// Our OPEN.
    Open(Open),
    /// A KEEPALIVE.
    Keepalive,
    /// A NOTIFICATION, after which the connection is closed.
    Notification(Notification),
}

/// Why an established session went down; graceful restart decides on it (RFC 4724, RFC 8538).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownCause {
    /// The TCP connection broke without a NOTIFICATION.
    ConnectionLost,
    /// We sent this NOTIFICATION (hold timer expiry, errors, stops).
    NotificationSent(Notification),
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
}

/// What the transport must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open an outgoing TCP connection.
    Connect,
    /// Close the TCP connection (after sending anything queued before this action).
    Disconnect,
    /// Send a message.
    Send(Outgoing),
    /// (Re)start a timer.
    StartTimer(Timer, Duration),
    /// Stop a timer.
    StopTimer(Timer),
    /// The message just handled is valid here: process its content (UPDATE, ROUTE-REFRESH).
    Deliver,
    /// The session is established with these parameters.
    Up(Box<SessionParams>),
    /// The established session went down.
    Down(DownCause),
}

/// Per-session settings the FSM needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsmConfig {
    /// Our AS.
    pub local_as: Asn,
    /// Our BGP identifier.
    pub local_id: Ipv4Addr,
    /// The AS the peer must announce.
    pub peer_as: Asn,
    /// The hold time we propose (0, or at least 3).
    pub hold_time: u16,
    /// Wait only for the peer to connect.
    pub passive: bool,
    /// First ConnectRetry / idle-hold interval; doubled after each failure.
    pub connect_retry: Duration,
    /// Ceiling of the backoff.
    pub connect_retry_max: Duration,
    /// Capabilities of our OPEN.
    pub capabilities: Vec<Capability>,
}

/// The hold timer while waiting for the peer's OPEN (RFC 4271 §8.2.2 suggests 4 minutes).
pub const OPEN_HOLD: Duration = Duration::from_secs(240);
/// NOTIFICATION error code 8, Send Hold Timer Expired (RFC 9687 §4), subcode 0.
pub fn send_hold_expired() -> Notification {
    Notification::new(
        ErrorCode::Unassigned {
            code: 8,
            subcode: 0,
        },
        Vec::new(),
    )
}

/// Doublings of the backoff before it stops growing before the ceiling anyway.
const MAX_DOUBLINGS: u32 = 10;

/// One session's state machine.
#[derive(Debug, Clone)]
pub struct Fsm {
    config: FsmConfig,
    state: State,
    /// ConnectRetryCounter: consecutive failures, drives the backoff.
    failures: u32,
    running: Vec<Timer>,
    negotiated: Option<SessionParams>,
}

impl Fsm {
    /// A session in Idle.
    pub fn new(config: FsmConfig) -> Self {
        Fsm {
            config,
            state: State::Idle,
            failures: 0,
            running: Vec::new(),
            negotiated: None,
        }
    }

    /// A session for a connection the peer opened while another one is in progress: it starts
    /// in Active, as if started passively, so that `Connected` sends the OPEN.
    pub fn accepting(config: FsmConfig) -> Self {
        Fsm {
            state: State::Active,
            ..Fsm::new(config)
        }
    }

    /// Replaces the capabilities of our OPEN from the next connection on.
    pub fn set_capabilities(&mut self, capabilities: Vec<Capability>) {
        self.config.capabilities = capabilities;
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The session's parameters once OPENs were exchanged (OpenConfirm and Established).
    pub fn negotiated(&self) -> Option<&SessionParams> {
        self.negotiated.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &FsmConfig {
        &self.config
    }

    /// Consecutive failures since the last establishment (ConnectRetryCounter).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether `timer` is running.
    pub fn timer_running(&self, timer: Timer) -> bool {
        self.running.contains(&timer)
    }

    /// The backoff after `failures` consecutive failures: the base doubled per failure, capped.
    pub fn backoff(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(MAX_DOUBLINGS);
        self.config
            .connect_retry
            .saturating_mul(1 << doublings)
            .min(self.config.connect_retry_max)
    }

    /// Handles one event; returns what to do.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Actions::new();
        if let Event::TimerExpired(t) = event {
            if !self.running.contains(&t) {
                return Vec::new();
            }
            self.running.retain(|r| *r != t);
        }
        self.step(event, &mut out);
        for action in &out {
            match action {
                Action::StartTimer(t, _) if !self.running.contains(t) => self.running.push(*t),
                Action::StopTimer(t) => self.running.retain(|r| r != t),
                _ => {}
            }
        }
        out
    }

    fn step(&mut self, event: Event, out: &mut Actions) {
        use Event as E;
        match (self.state, event) {
            (_, E::Stop(notification)) => self.stop(notification, out),
            (_, E::StopFor(notification, after)) => {
                self.stop(notification, out);
                out.push(Action::StartTimer(Timer::IdleHold, after));
            }
            (State::Idle, E::Start | E::TimerExpired(Timer::IdleHold)) => {
                out.push(Action::StopTimer(Timer::IdleHold));
                self.start_connecting(out);
            }
            // Idle refuses connections (RFC 4271 §8.2.2).
            (State::Idle, E::Connected) => out.push(Action::Disconnect),
            (State::Idle, _) => {}

            (State::Connect | State::Active, E::Start) => {}
            (State::Connect | State::Active, E::TimerExpired(Timer::ConnectRetry)) => {
                if self.state == State::Connect {
                    out.push(Action::Disconnect);
                }
                self.state = State::Connect;
                out.push(Action::Connect);
                out.push(Action::StartTimer(Timer::ConnectRetry, self.backoff()));
            }
            (State::Connect | State::Active, E::Connected) => {
                out.push(Action::StopTimer(Timer::ConnectRetry));
                out.push(Action::Send(Outgoing::Open(self.our_open())));
                out.push(Action::StartTimer(Timer::Hold, OPEN_HOLD));
                self.state = State::OpenSent;
            }
            (State::Connect | State::Active, E::ConnectionFailed) => {
                self.failures = self.failures.saturating_add(1);
                self.retry_later(out);
            }
            (State::Connect | State::Active, E::Notification(_)) => self.fail(out),
            // A connection this FSM no longer follows.
            (State::Connect | State::Active, E::SendHoldExpired) => {}
            (State::Connect | State::Active, _) => self.fail_with(None, out),

            (State::OpenSent, E::Open(open)) => self.open_received(open, out),
            (State::OpenSent, E::ConnectionFailed) => {
                self.failures = self.failures.saturating_add(1);
                out.push(Action::StopTimer(Timer::Hold));
                self.retry_later(out);
            }

            (State::OpenConfirm, E::Keepalive) => {
                let Some(negotiated) = self.negotiated.clone() else {
                    return self.fail_with(Some(fsm_error(State::OpenConfirm, 4)), out);
                };
                self.failures = 0;
                self.state = State::Established;
                self.restart_hold(out);
                out.push(Action::Up(Box::new(negotiated)));
            }

            (State::Established, E::Keepalive) => self.restart_hold(out),
            (State::Established, E::Update | E::RouteRefresh) => {
                self.restart_hold(out);
                out.push(Action::Deliver);
            }

            (State::OpenConfirm | State::Established, E::TimerExpired(Timer::Keepalive)) => {
                out.push(Action::Send(Outgoing::Keepalive));
                self.start_keepalive(out);
            }
            (
                State::OpenSent | State::OpenConfirm | State::Established,
                E::TimerExpired(Timer::Hold),
            ) => self.fail_with(
                Some(Notification::new(ErrorCode::HoldTimerExpired, Vec::new())),
                out,
            ),
            (State::OpenSent | State::OpenConfirm | State::Established, E::SendHoldExpired) => {
                self.fail_with(Some(send_hold_expired()), out)
            }
            (State::OpenSent | State::OpenConfirm | State::Established, E::MessageError(err)) => {
                self.fail_with(Some(err.notification), out)
            }
            (State::OpenSent | State::OpenConfirm | State::Established, E::Notification(n)) => {
                if self.state == State::Established {
                    out.push(Action::Down(DownCause::NotificationReceived(n)));
                }
                self.fail(out)
            }
            (State::OpenConfirm | State::Established, E::ConnectionFailed) => {
                if self.state == State::Established {
                    out.push(Action::Down(DownCause::ConnectionLost));
                }
                self.fail(out)
            }
            // A colliding connection is another FSM's business; starting twice changes nothing.
            (
                State::OpenSent | State::OpenConfirm | State::Established,
                E::Connected | E::Start,
            ) => {}
            (
                state @ (State::OpenSent | State::OpenConfirm | State::Established),
                event @ (E::Open(_)
                | E::Keepalive
                | E::Update
                | E::RouteRefresh
                | E::TimerExpired(_)),
            ) => {
                let msg_type = match event {
                    E::Open(_) => 1,
                    E::Update => 2,
                    E::Keepalive => 4,
                    E::RouteRefresh => 5,
                    _ => 0,
                };
                self.fail_with(Some(fsm_error(state, msg_type)), out)
            }
        }
    }

    /// The OPEN we send.
    pub fn our_open(&self) -> Open {
        Open::new(
            self.config.local_as,
            self.config.hold_time,
            self.config.local_id,
            self.config.capabilities.clone(),
        )
    }

    fn start_connecting(&mut self, out: &mut Actions) {
        if self.config.passive {
            self.state = State::Active;
        } else {
            self.state = State::Connect;
            out.push(Action::Connect);
            out.push(Action::StartTimer(Timer::ConnectRetry, self.backoff()));
        }
    }

    /// After a failed connection: wait in Active, and an active peer retries after the backoff.
    fn retry_later(&mut self, out: &mut Actions) {
        self.state = State::Active;
        self.negotiated = None;
        if !self.config.passive {
            out.push(Action::StartTimer(Timer::ConnectRetry, self.backoff()));
        }
    }

    fn open_received(&mut self, open: Open, out: &mut Actions) {
        let config = &self.config;
        if let Err(e) = open.validate(Some(config.peer_as), config.local_as, config.local_id) {
            return self.fail_with(Some(e.notification), out);
        }
        match SessionParams::new(&self.our_open(), &open) {
            Err(notification) => self.fail_with(Some(notification), out),
            Ok(negotiated) => {
                out.push(Action::Send(Outgoing::Keepalive));
                self.state = State::OpenConfirm;
                self.negotiated = Some(negotiated);
                self.restart_hold(out);
                self.start_keepalive(out);
            }
        }
    }

    fn restart_hold(&self, out: &mut Actions) {
        match self.negotiated.as_ref().map(|n| n.hold_time()) {
            Some(0) => out.push(Action::StopTimer(Timer::Hold)),
            Some(hold) => out.push(Action::StartTimer(
                Timer::Hold,
                Duration::from_secs(hold.into()),
            )),
            None => {}
        }
    }

    fn start_keepalive(&self, out: &mut Actions) {
        match self.negotiated.as_ref().map(|n| n.keepalive) {
            Some(ka) if ka > 0 => out.push(Action::StartTimer(
                Timer::Keepalive,
                Duration::from_secs(ka.into()),
            )),
            _ => out.push(Action::StopTimer(Timer::Keepalive)),
        }
    }

    /// Sends `notification` (if any), closes, and goes to Idle with an automatic restart after
    /// the backoff.
    fn fail_with(&mut self, notification: Option<Notification>, out: &mut Actions) {
        if let Some(n) = notification {
            if self.state == State::Established {
                out.push(Action::Down(DownCause::NotificationSent(n.clone())));
            }
            out.push(Action::Send(Outgoing::Notification(n)));
        } else if self.state == State::Established {
            out.push(Action::Down(DownCause::ConnectionLost));
        }
        self.fail(out);
    }

    fn fail(&mut self, out: &mut Actions) {
        self.failures = self.failures.saturating_add(1);
        self.enter_idle(out);
        out.push(Action::StartTimer(Timer::IdleHold, self.backoff()));
    }

    fn stop(&mut self, notification: Notification, out: &mut Actions) {
        if matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            if self.state == State::Established {
                out.push(Action::Down(DownCause::NotificationSent(
                    notification.clone(),
                )));
            }
            out.push(Action::Send(Outgoing::Notification(notification)));
        }
        self.failures = 0;
        self.enter_idle(out);
    }

    fn enter_idle(&mut self, out: &mut Actions) {
        if self.state != State::Idle {
            out.push(Action::Disconnect);
        }
        for t in TIMERS {
            if self.running.contains(&t) {
                out.push(Action::StopTimer(t));
            }
        }
        self.state = State::Idle;
        self.negotiated = None;
    }
}

/// The FSM error of RFC 6608 for an unexpected message of type `msg_type` in `state`.
fn fsm_error(state: State, msg_type: u8) -> Notification {
    let sub = match state {
        State::OpenSent => FsmError::UnexpectedInOpenSent,
        State::OpenConfirm => FsmError::UnexpectedInOpenConfirm,
        State::Established => FsmError::UnexpectedInEstablished,
        _ => FsmError::Unspecified,
    };
    let data = if msg_type == 0 {
        Vec::new()
    } else {
        vec![msg_type]
    };
    Notification::new(ErrorCode::Fsm(sub), data)
}

/// The Cease a manual stop sends (RFC 4486 Administrative Shutdown).
pub fn admin_shutdown(message: &str) -> Notification {
    Notification::shutdown(Cease::AdministrativeShutdown, message)
}

type Actions = Vec<Action>;

#[cfg(test)]
mod tests;
