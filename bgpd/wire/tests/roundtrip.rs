//! Property tests for every message type: encode → decode is the identity, and canonical bytes
//! → decode → encode gives the same bytes.

mod arb;

use bgpd_wire::*;
use bytes::BytesMut;
use proptest::prelude::*;

fn encode(msg: &Message, ctx: &SessionContext) -> BytesMut {
    let mut out = BytesMut::new();
    msg.encode(ctx, &mut out).expect("encodes");
    out
}

/// Both properties for one message.
fn check(msg: Message, ctx: &SessionContext) -> Result<(), TestCaseError> {
    let bytes = encode(&msg, ctx);
    let header = Header::peek(&bytes, ctx.max_message_size)
        .expect("valid header")
        .expect("complete");
    prop_assert_eq!(header.len, bytes.len());
    let decoded = Message::decode(&bytes, ctx).expect("decodes");
    prop_assert_eq!(&decoded, &msg);
    prop_assert_eq!(encode(&decoded, ctx), bytes);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn open_roundtrips(open in arb::open()) {
        check(Message::Open(open), &SessionContext::default())?;
    }

    #[test]
    fn update_roundtrips((ctx, update) in arb::ctx().prop_flat_map(|c| { let u = arb::update(&c); (Just(c), u) })) {
        check(Message::Update(Box::new(update)), &ctx)?;
    }

    #[test]
    fn decoding_into_a_used_update_equals_a_fresh_decode(
        (ctx, first, second) in arb::ctx().prop_flat_map(|c| {
            let (a, b) = (arb::update(&c), arb::update(&c));
            (Just(c), a, b)
        })
    ) {
        let mut reused = Update::default();
        for u in [first, second] {
            let bytes = encode(&Message::Update(Box::new(u.clone())), &ctx);
            reused.decode_from(&bytes, &ctx).expect("decodes");
            prop_assert_eq!(&reused, &u);
        }
    }

    #[test]
    fn notification_roundtrips(n in arb::notification()) {
        check(Message::Notification(n), &SessionContext::default())?;
    }

    #[test]
    fn route_refresh_roundtrips(r in arb::route_refresh()) {
        check(Message::RouteRefresh(r), &SessionContext::default())?;
    }

    #[test]
    fn end_of_rib_roundtrips(afi in any::<u16>(), safi in 1u8..=2) {
        let family = AfiSafi::new(Afi(afi % 2 + 1), Safi(safi));
        let eor = Update::end_of_rib(family);
        prop_assert_eq!(eor.end_of_rib_family(), Some(family));
        check(Message::Update(Box::new(eor)), &SessionContext::default())?;
    }

    #[test]
    fn shutdown_message_roundtrips(text in "\\PC{0,300}") {
        let n = Notification::shutdown(Cease::AdministrativeShutdown, &text);
        let got = n.shutdown_message().expect("well-formed").to_owned();
        prop_assert!(text.starts_with(&got));
        prop_assert!(got.len() <= MAX_SHUTDOWN_MESSAGE);
        check(Message::Notification(n), &SessionContext::default())?;
    }
}

#[test]
fn keepalive_roundtrips() {
    let ctx = SessionContext::default();
    let bytes = encode(&Message::Keepalive, &ctx);
    let mut expected = vec![0xff; 16];
    expected.extend_from_slice(&[0, 19, 4]);
    assert_eq!(&bytes[..], &expected[..]);
    assert_eq!(Message::decode(&bytes, &ctx), Ok(Message::Keepalive));
}
