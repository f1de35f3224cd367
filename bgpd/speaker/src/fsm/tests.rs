//! Table tests of RFC 4271 §8 transitions and properties over random event sequences.

use super::*;
use bgpd_wire::{AfiSafi, OpenError};
use proptest::prelude::*;

const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn config(passive: bool) -> FsmConfig {
    FsmConfig {
        local_as: Asn(65000),
        local_id: LOCAL_ID,
        peer_as: Asn(65001),
        hold_time: 9,
        passive,
        connect_retry: Duration::from_secs(1),
        connect_retry_max: Duration::from_secs(30),
        capabilities: vec![Capability::Multiprotocol(AfiSafi::IPV4_UNICAST)],
    }
}

fn peer_open(asn: u32, hold: u16) -> Open {
    Open::new(
        Asn(asn),
        hold,
        PEER_ID,
        vec![Capability::Multiprotocol(AfiSafi::IPV4_UNICAST)],
    )
}

fn sent_notification(actions: &[Action]) -> Option<(u8, u8)> {
    actions.iter().find_map(|a| match a {
        Action::Send(Outgoing::Notification(n)) => Some(n.code.octets()),
        _ => None,
    })
}

/// Drives a fresh active FSM to `target` along the normal path.
fn fsm_in(target: State) -> Fsm {
    let mut fsm = Fsm::new(config(false));
    let path = [
        (State::Connect, Event::Start),
        (State::OpenSent, Event::Connected),
        (State::OpenConfirm, Event::Open(peer_open(65001, 90))),
        (State::Established, Event::Keepalive),
    ];
    for (state, event) in path {
        if fsm.state() == target {
            break;
        }
        fsm.handle(event);
        assert_eq!(fsm.state(), state);
    }
    assert_eq!(fsm.state(), target);
    fsm
}

#[test]
fn active_peer_reaches_established_and_negotiates_timers() {
    let mut fsm = Fsm::new(config(false));
    let a = fsm.handle(Event::Start);
    assert_eq!(
        a,
        vec![
            Action::StopTimer(Timer::IdleHold),
            Action::Connect,
            Action::StartTimer(Timer::ConnectRetry, Duration::from_secs(1))
        ]
    );
    let a = fsm.handle(Event::Connected);
    assert!(
        matches!(a[1], Action::Send(Outgoing::Open(ref o)) if o.hold_time == 9 && o.asn() == Asn(65000))
    );
    assert!(a.contains(&Action::StartTimer(Timer::Hold, OPEN_HOLD)));
    let a = fsm.handle(Event::Open(peer_open(65001, 90)));
    assert_eq!(
        a,
        vec![
            Action::Send(Outgoing::Keepalive),
            Action::StartTimer(Timer::Hold, Duration::from_secs(9)),
            Action::StartTimer(Timer::Keepalive, Duration::from_secs(3)),
        ]
    );
    let a = fsm.handle(Event::Keepalive);
    assert_eq!(fsm.state(), State::Established);
    assert!(matches!(a.last(), Some(Action::Up(n)) if n.hold_time() == 9 && n.peer_id == PEER_ID));
}

#[test]
fn passive_peer_waits_in_active_without_connecting() {
    let mut fsm = Fsm::new(config(true));
    let a = fsm.handle(Event::Start);
    assert_eq!(fsm.state(), State::Active);
    assert!(!a.contains(&Action::Connect));
    fsm.handle(Event::Connected);
    assert_eq!(fsm.state(), State::OpenSent);
    let a = fsm.handle(Event::ConnectionFailed);
    assert_eq!(fsm.state(), State::Active);
    assert!(!a.iter().any(|a| matches!(
        a,
        Action::Connect | Action::StartTimer(Timer::ConnectRetry, _)
    )));
}

#[test]
fn idle_refuses_connections() {
    let mut fsm = Fsm::new(config(true));
    assert_eq!(fsm.handle(Event::Connected), vec![Action::Disconnect]);
    assert_eq!(fsm.state(), State::Idle);
}

#[test]
fn wrong_peer_as_is_open_error_bad_peer_as() {
    let mut fsm = fsm_in(State::OpenSent);
    let a = fsm.handle(Event::Open(peer_open(65099, 90)));
    assert_eq!(sent_notification(&a), Some((2, 2)));
    assert_eq!(fsm.state(), State::Idle);
    assert!(a.contains(&Action::Disconnect));
}

#[test]
fn hold_time_of_one_or_two_is_unacceptable() {
    for hold in [1, 2] {
        let mut fsm = fsm_in(State::OpenSent);
        let a = fsm.handle(Event::Open(peer_open(65001, hold)));
        assert_eq!(
            sent_notification(&a),
            Some((2, u8::from(OpenError::UnacceptableHoldTime)))
        );
    }
}

#[test]
fn zero_hold_time_disables_keepalives_and_hold_timer() {
    let mut fsm = fsm_in(State::OpenSent);
    let a = fsm.handle(Event::Open(peer_open(65001, 0)));
    assert!(a.contains(&Action::StopTimer(Timer::Hold)));
    assert!(a.contains(&Action::StopTimer(Timer::Keepalive)));
    assert!(!fsm.timer_running(Timer::Hold));
}

#[test]
fn hold_timer_expiry_sends_4_0_and_reports_down() {
    let mut fsm = fsm_in(State::Established);
    let a = fsm.handle(Event::TimerExpired(Timer::Hold));
    assert_eq!(sent_notification(&a), Some((4, 0)));
    assert!(
        matches!(a[0], Action::Down(DownCause::NotificationSent(ref n)) if n.code == ErrorCode::HoldTimerExpired)
    );
    assert_eq!(fsm.state(), State::Idle);
    assert!(fsm.timer_running(Timer::IdleHold));
}

#[test]
fn send_hold_expiry_sends_8_0_reports_down_and_restarts_later() {
    for state in [State::OpenSent, State::OpenConfirm, State::Established] {
        let mut fsm = fsm_in(state);
        let a = fsm.handle(Event::SendHoldExpired);
        assert_eq!(sent_notification(&a), Some((8, 0)), "in {state}");
        assert_eq!(
            matches!(a[0], Action::Down(DownCause::NotificationSent(_))),
            state == State::Established
        );
        assert!(a.contains(&Action::Disconnect), "in {state}");
        assert_eq!(fsm.state(), State::Idle);
        assert!(fsm.timer_running(Timer::IdleHold));
    }
    // A late report about a connection already given up changes nothing.
    let mut fsm = fsm_in(State::Connect);
    assert!(fsm.handle(Event::SendHoldExpired).is_empty());
    assert_eq!(fsm.state(), State::Connect);
}

#[test]
fn unexpected_messages_are_fsm_errors_with_the_state_subcode() {
    let table = [
        (State::OpenSent, Event::Keepalive, (5, 1), vec![4]),
        (State::OpenSent, Event::Update, (5, 1), vec![2]),
        (State::OpenConfirm, Event::Update, (5, 2), vec![2]),
        (
            State::OpenConfirm,
            Event::Open(peer_open(65001, 90)),
            (5, 2),
            vec![1],
        ),
        (
            State::Established,
            Event::Open(peer_open(65001, 90)),
            (5, 3),
            vec![1],
        ),
    ];
    for (state, event, code, data) in table {
        let mut fsm = fsm_in(state);
        let a = fsm.handle(event.clone());
        let n = a.iter().find_map(|a| match a {
            Action::Send(Outgoing::Notification(n)) => Some(n.clone()),
            _ => None,
        });
        let n = n.unwrap_or_else(|| panic!("{state} {event:?}: no notification in {a:?}"));
        assert_eq!((n.code.octets(), n.data), (code, data), "{state} {event:?}");
        assert_eq!(fsm.state(), State::Idle);
    }
}

#[test]
fn updates_are_delivered_only_when_established() {
    let mut fsm = fsm_in(State::Established);
    let a = fsm.handle(Event::Update);
    assert_eq!(
        a,
        vec![
            Action::StartTimer(Timer::Hold, Duration::from_secs(9)),
            Action::Deliver
        ]
    );
}

#[test]
fn keepalive_timer_sends_keepalive_and_rearms() {
    let mut fsm = fsm_in(State::Established);
    let a = fsm.handle(Event::TimerExpired(Timer::Keepalive));
    assert_eq!(
        a,
        vec![
            Action::Send(Outgoing::Keepalive),
            Action::StartTimer(Timer::Keepalive, Duration::from_secs(3))
        ]
    );
}

#[test]
fn stale_timer_expiry_is_ignored() {
    let mut fsm = fsm_in(State::Established);
    assert!(
        fsm.handle(Event::TimerExpired(Timer::ConnectRetry))
            .is_empty()
    );
    assert_eq!(fsm.state(), State::Established);
}

#[test]
fn notification_from_peer_in_established_reports_it() {
    let mut fsm = fsm_in(State::Established);
    let n = Notification::new(ErrorCode::Cease(Cease::AdministrativeReset), Vec::new());
    let a = fsm.handle(Event::Notification(n.clone()));
    assert_eq!(a[0], Action::Down(DownCause::NotificationReceived(n)));
    assert_eq!(sent_notification(&a), None);
    assert_eq!(fsm.state(), State::Idle);
}

#[test]
fn decode_errors_send_the_codec_notification() {
    let mut fsm = fsm_in(State::Established);
    let bytes = [0u8; 19];
    let err = bgpd_wire::Header::peek(&bytes, 4096).unwrap_err();
    let a = fsm.handle(Event::MessageError(err));
    assert_eq!(sent_notification(&a), Some((1, 1)));
}

#[test]
fn stop_sends_cease_and_does_not_restart() {
    let mut fsm = fsm_in(State::Established);
    let a = fsm.handle(Event::Stop(admin_shutdown("maintenance")));
    assert_eq!(sent_notification(&a), Some((6, 2)));
    assert_eq!(fsm.state(), State::Idle);
    assert!(!fsm.timer_running(Timer::IdleHold));
    let mut fsm = fsm_in(State::Connect);
    let a = fsm.handle(Event::Stop(admin_shutdown("")));
    assert_eq!(sent_notification(&a), None);
    assert!(a.contains(&Action::Disconnect));
}

#[test]
fn stop_for_sends_cease_stays_idle_and_restarts_after_the_interval() {
    for passive in [false, true] {
        let mut fsm = Fsm::new(config(passive));
        for event in [
            Event::Start,
            Event::Connected,
            Event::Open(peer_open(65001, 90)),
            Event::Keepalive,
        ] {
            fsm.handle(event);
        }
        assert_eq!(fsm.state(), State::Established);
        let cease = Notification::new(ErrorCode::Cease(Cease::MaximumPrefixesReached), vec![]);
        let a = fsm.handle(Event::StopFor(cease, Duration::from_secs(300)));
        assert_eq!(sent_notification(&a), Some((6, 1)));
        assert!(a.contains(&Action::StartTimer(
            Timer::IdleHold,
            Duration::from_secs(300)
        )));
        assert_eq!(fsm.state(), State::Idle);
        assert_eq!(fsm.handle(Event::Connected), vec![Action::Disconnect]);
        fsm.handle(Event::TimerExpired(Timer::IdleHold));
        let expected = if passive {
            State::Active
        } else {
            State::Connect
        };
        assert_eq!(fsm.state(), expected);
    }
}

#[test]
fn connect_retry_backs_off_to_the_ceiling() {
    let mut fsm = fsm_in(State::Connect);
    let mut seen = Vec::new();
    for _ in 0..8 {
        let a = fsm.handle(Event::ConnectionFailed);
        assert_eq!(fsm.state(), State::Active);
        let Some(Action::StartTimer(Timer::ConnectRetry, d)) = a.last() else {
            panic!("{a:?}")
        };
        seen.push(d.as_secs());
        fsm.handle(Event::TimerExpired(Timer::ConnectRetry));
        assert_eq!(fsm.state(), State::Connect);
    }
    assert_eq!(seen, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    fsm.handle(Event::Connected);
    fsm.handle(Event::Open(peer_open(65001, 90)));
    fsm.handle(Event::Keepalive);
    assert_eq!(fsm.failures(), 0);
}

#[test]
fn idle_hold_restarts_after_an_error() {
    let mut fsm = fsm_in(State::Established);
    fsm.handle(Event::ConnectionFailed);
    assert_eq!(fsm.state(), State::Idle);
    let a = fsm.handle(Event::TimerExpired(Timer::IdleHold));
    assert_eq!(fsm.state(), State::Connect);
    assert!(a.contains(&Action::Connect));
}

fn any_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::Start),
        Just(Event::Stop(admin_shutdown("x"))),
        Just(Event::StopFor(admin_shutdown("x"), Duration::from_secs(60))),
        prop_oneof![
            Just(Timer::ConnectRetry),
            Just(Timer::Hold),
            Just(Timer::Keepalive),
            Just(Timer::IdleHold)
        ]
        .prop_map(Event::TimerExpired),
        Just(Event::Connected),
        Just(Event::ConnectionFailed),
        (prop_oneof![Just(65001u32), Just(65002)], 0u16..200)
            .prop_map(|(a, h)| Event::Open(peer_open(a, h))),
        Just(Event::Keepalive),
        Just(Event::Update),
        Just(Event::RouteRefresh),
        Just(Event::SendHoldExpired),
        Just(Event::Notification(Notification::new(
            ErrorCode::Cease(Cease::PeerDeconfigured),
            vec![]
        ))),
    ]
}

proptest! {
    /// Invariants over any event sequence: Up and Down alternate (a Down only after an Up),
    /// Established is entered only through Up, updates are delivered only in Established,
    /// and a NOTIFICATION is always followed by closing the connection.
    #[test]
    fn invariants_hold_for_any_event_sequence(passive: bool, events in proptest::collection::vec(any_event(), 0..60)) {
        let mut fsm = Fsm::new(config(passive));
        let mut up = false;
        for event in events {
            let before = fsm.state();
            let actions = fsm.handle(event);
            for (i, a) in actions.iter().enumerate() {
                match a {
                    Action::Up(_) => { prop_assert!(!up); up = true; }
                    Action::Down(_) => { prop_assert!(up); up = false; }
                    Action::Deliver => prop_assert_eq!(before, State::Established),
                    Action::Send(Outgoing::Notification(_)) => {
                        prop_assert!(actions[i..].contains(&Action::Disconnect));
                    }
                    Action::Connect => prop_assert!(!passive),
                    _ => {}
                }
            }
            prop_assert_eq!(up, fsm.state() == State::Established);
            prop_assert_eq!(fsm.negotiated().is_some(), matches!(fsm.state(), State::OpenConfirm | State::Established));
            if fsm.state() == State::Idle {
                prop_assert!(!fsm.timer_running(Timer::Hold) && !fsm.timer_running(Timer::Keepalive));
            }
        }
    }
}
