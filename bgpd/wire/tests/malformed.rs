//! One test per malformed case of RFC 4271 §6.1–6.3 and RFC 7606 §3–7, asserting the action
//! and, for a session reset, the NOTIFICATION (code, subcode) and data.

use std::net::Ipv4Addr;

use bgpd_wire::*;

/// A message of `msg_type` with `body`, length field computed.
fn message(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&u16::try_from(19 + body.len()).unwrap().to_be_bytes());
    m.push(msg_type);
    m.extend_from_slice(body);
    m
}

/// An UPDATE body from its three parts, lengths computed.
fn update_body(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&u16::try_from(withdrawn.len()).unwrap().to_be_bytes());
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&u16::try_from(attrs.len()).unwrap().to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    b
}

/// One attribute (short length form).
fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut a = vec![flags, code, u8::try_from(value.len()).unwrap()];
    a.extend_from_slice(value);
    a
}

const WK: u8 = 0x40;
const OPT: u8 = 0x80;
const OPT_T: u8 = 0xc0;

/// ORIGIN IGP, AS_PATH [65001] (four-octet), NEXT_HOP 192.0.2.1: a clean announcement.
fn mandatory() -> Vec<u8> {
    [
        attr(WK, 1, &[0]),
        attr(WK, 2, &[2, 1, 0, 0, 0xfd, 0xe9]),
        attr(WK, 3, &[192, 0, 2, 1]),
    ]
    .concat()
}

const NLRI: &[u8] = &[24, 10, 0, 1, 16, 10, 2];

fn ctx4() -> SessionContext {
    SessionContext {
        four_octet_as: true,
        ..SessionContext::default()
    }
}

fn decode(bytes: &[u8]) -> Result<Message, SessionError> {
    Message::decode(bytes, &ctx4())
}

fn decode_update(attrs: &[u8], nlri: &[u8]) -> Update {
    match decode(&message(2, &update_body(&[], attrs, nlri))) {
        Ok(Message::Update(u)) => *u,
        other => panic!("expected an UPDATE, got {other:?}"),
    }
}

fn reset(bytes: &[u8]) -> SessionError {
    decode(bytes).expect_err("session reset expected")
}

fn reset_update(attrs: &[u8], nlri: &[u8]) -> SessionError {
    reset(&message(2, &update_body(&[], attrs, nlri)))
}

/// Asserts exactly one attribute error, of `type_code` with `action`, and that the NLRI
/// (the routes to withdraw or keep) were still decoded.
fn assert_attr_error(u: &Update, type_code: u8, action: AttrAction) {
    assert_eq!(u.errors.len(), 1, "errors: {:?}", u.errors);
    assert_eq!(u.errors[0].type_code, type_code, "{:?}", u.errors[0]);
    assert_eq!(u.errors[0].action, action, "{:?}", u.errors[0]);
    assert_eq!(u.treat_as_withdraw(), action == AttrAction::TreatAsWithdraw);
    let got: Vec<String> = u.nlri.iter().map(|n| n.prefix.to_string()).collect();
    assert_eq!(got, ["10.0.1.0/24", "10.2.0.0/16"]);
}

/// With `bad` in place of the attribute of the same type among the mandatory ones (or added).
fn with_attr(bad: Vec<u8>) -> Vec<u8> {
    let code = bad[1];
    let mut attrs: Vec<Vec<u8>> = [
        attr(WK, 1, &[0]),
        attr(WK, 2, &[2, 1, 0, 0, 0xfd, 0xe9]),
        attr(WK, 3, &[192, 0, 2, 1]),
    ]
    .into_iter()
    .filter(|a| a[1] != code)
    .collect();
    attrs.push(bad);
    attrs.concat()
}

// ---- RFC 4271 §6.1 message header errors ----

#[test]
fn marker_not_all_ones_is_connection_not_synchronized() {
    let mut m = message(4, &[]);
    m[3] = 0;
    let e = reset(&m);
    assert_eq!(e.code(), (1, 1));
    assert_eq!(e.reason, Malformed::Marker);
    assert!(e.notification.data.is_empty());
}

#[test]
fn length_below_header_is_bad_message_length_with_length_as_data() {
    let mut m = message(4, &[]);
    m[16..18].copy_from_slice(&18u16.to_be_bytes());
    let e = Header::peek(&m, 4096).expect_err("bad length");
    assert_eq!(e.code(), (1, 2));
    assert_eq!(e.notification.data, vec![0, 18]);
}

#[test]
fn length_above_session_maximum_is_bad_message_length() {
    let mut m = message(2, &update_body(&[], &[], &[]));
    m[16..18].copy_from_slice(&4097u16.to_be_bytes());
    let e = Header::peek(&m, 4096).expect_err("bad length");
    assert_eq!(e.code(), (1, 2));
    assert_eq!(e.notification.data, 4097u16.to_be_bytes().to_vec());
    // The same length is fine once extended messages are negotiated (RFC 8654).
    assert!(Header::peek(&m, 65535).unwrap().is_some());
}

#[test]
fn keepalive_with_a_body_is_bad_message_length() {
    assert_eq!(reset(&message(4, &[0])).code(), (1, 2));
}

#[test]
fn short_open_update_and_notification_are_bad_message_length() {
    assert_eq!(reset(&message(1, &[4, 0, 1])).code(), (1, 2));
    assert_eq!(reset(&message(2, &[0, 0])).code(), (1, 2));
    assert_eq!(reset(&message(3, &[6])).code(), (1, 2));
}

#[test]
fn open_longer_than_4096_is_bad_message_length_even_with_extended_messages() {
    let m = message(1, &vec![0; 5000]);
    let e = Header::peek(&m, 65535).expect_err("OPEN stays within 4096");
    assert_eq!(e.code(), (1, 2));
}

#[test]
fn unknown_type_is_bad_message_type_with_type_as_data() {
    let e = reset(&message(9, &[]));
    assert_eq!(e.code(), (1, 3));
    assert_eq!(e.notification.data, vec![9]);
}

#[test]
fn frame_shorter_than_its_length_field_is_bad_message_length() {
    let m = message(2, &update_body(&[], &[], &[]));
    assert_eq!(reset(&m[..m.len() - 1]).code(), (1, 2));
}

#[test]
fn partial_header_asks_for_more_bytes() {
    assert_eq!(Header::peek(&[0xff; 10], 4096), Ok(None));
}

// ---- RFC 4271 §6.2 OPEN errors ----

fn open_body(version: u8, my_as: u16, hold: u16, id: [u8; 4], params: &[u8]) -> Vec<u8> {
    let mut b = vec![version];
    b.extend_from_slice(&my_as.to_be_bytes());
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&id);
    b.push(u8::try_from(params.len()).unwrap());
    b.extend_from_slice(params);
    b
}

fn open(my_as: u16, hold: u16, id: [u8; 4]) -> Open {
    match decode(&message(1, &open_body(4, my_as, hold, id, &[]))) {
        Ok(Message::Open(o)) => o,
        other => panic!("{other:?}"),
    }
}

#[test]
fn unsupported_version_names_version_4_in_data() {
    let e = reset(&message(1, &open_body(3, 65001, 90, [1, 1, 1, 1], &[])));
    assert_eq!(e.code(), (2, 1));
    assert_eq!(e.notification.data, vec![0, 4]);
}

#[test]
fn bad_peer_as() {
    let o = open(65002, 90, [1, 1, 1, 1]);
    let e = o
        .validate(Some(Asn(65001)), Asn(65000), Ipv4Addr::new(9, 9, 9, 9))
        .expect_err("wrong AS");
    assert_eq!(e.code(), (2, 2));
    assert!(
        o.validate(Some(Asn(65002)), Asn(65000), Ipv4Addr::new(9, 9, 9, 9))
            .is_ok()
    );
    // RFC 7607: AS 0 is never acceptable.
    let zero = open(0, 90, [1, 1, 1, 1]);
    assert_eq!(
        zero.validate(None, Asn(65000), Ipv4Addr::new(9, 9, 9, 9))
            .unwrap_err()
            .code(),
        (2, 2)
    );
}

#[test]
fn peer_as_comes_from_the_four_octet_capability() {
    let cap = [2, 6, 65, 4, 0, 3, 0x0d, 0x40];
    let o = match decode(&message(1, &open_body(4, 23456, 90, [1, 1, 1, 1], &cap))) {
        Ok(Message::Open(o)) => o,
        other => panic!("{other:?}"),
    };
    assert_eq!(o.asn(), Asn(200_000));
    assert!(
        o.validate(Some(Asn(200_000)), Asn(65000), Ipv4Addr::new(9, 9, 9, 9))
            .is_ok()
    );
}

#[test]
fn unacceptable_hold_time() {
    let local = (Asn(65000), Ipv4Addr::new(9, 9, 9, 9));
    for hold in [1, 2] {
        let e = open(65001, hold, [1, 1, 1, 1])
            .validate(None, local.0, local.1)
            .expect_err("hold time");
        assert_eq!(e.code(), (2, 6));
    }
    for hold in [0, 3, 90] {
        assert!(
            open(65001, hold, [1, 1, 1, 1])
                .validate(None, local.0, local.1)
                .is_ok()
        );
    }
}

#[test]
fn bad_bgp_identifier() {
    let e = open(65001, 90, [0, 0, 0, 0])
        .validate(None, Asn(65000), Ipv4Addr::new(9, 9, 9, 9))
        .unwrap_err();
    assert_eq!(e.code(), (2, 3));
    // Same identifier inside one AS (RFC 6286 §2.2).
    let e = open(65000, 90, [9, 9, 9, 9])
        .validate(None, Asn(65000), Ipv4Addr::new(9, 9, 9, 9))
        .unwrap_err();
    assert_eq!(e.code(), (2, 3));
}

#[test]
fn unsupported_optional_parameter() {
    let e = reset(&message(
        1,
        &open_body(4, 65001, 90, [1, 1, 1, 1], &[1, 2, 0, 0]),
    ));
    assert_eq!(e.code(), (2, 4));
}

#[test]
fn optional_parameters_overrunning_their_length_are_unspecific() {
    let mut body = open_body(4, 65001, 90, [1, 1, 1, 1], &[2, 6, 65, 4, 0, 0]);
    body[9] = 3; // parameter length field says 3, six octets follow
    assert_eq!(reset(&message(1, &body)).code(), (2, 0));
    // A capability running past its parameter.
    assert_eq!(
        reset(&message(
            1,
            &open_body(4, 65001, 90, [1, 1, 1, 1], &[2, 3, 65, 4, 0])
        ))
        .code(),
        (2, 0)
    );
}

#[test]
fn extended_optional_parameters_decode() {
    // RFC 9072: 255, type 255, two-octet length, parameters with two-octet lengths.
    let params = [255, 0, 9, 2, 0, 6, 65, 4, 0, 0, 0xfd, 0xe9];
    let mut body = open_body(4, 65001, 90, [1, 1, 1, 1], &[]);
    body.pop();
    body.push(255);
    body.extend_from_slice(&params);
    match decode(&message(1, &body)) {
        Ok(Message::Open(o)) => {
            assert_eq!(o.capabilities, vec![Capability::FourOctetAs(Asn(65001))])
        }
        other => panic!("{other:?}"),
    }
}

// ---- RFC 4271 §6.3 / RFC 7606 UPDATE errors ----

#[test]
fn withdrawn_length_past_the_message_is_malformed_attribute_list() {
    let mut body = update_body(&[], &[], &[]);
    body[0..2].copy_from_slice(&10u16.to_be_bytes());
    let e = reset(&message(2, &body));
    assert_eq!(e.code(), (3, 1));
    assert_eq!(e.reason, Malformed::AttributeList);
}

#[test]
fn attribute_length_past_the_message_is_malformed_attribute_list() {
    let mut body = update_body(&[], &mandatory(), &[]);
    body[2..4].copy_from_slice(&200u16.to_be_bytes());
    assert_eq!(reset(&message(2, &body)).code(), (3, 1));
}

#[test]
fn unrecognized_well_known_attribute_resets_with_the_attribute_as_data() {
    let bad = attr(WK, 99, &[1, 2]);
    let e = reset_update(&[mandatory(), bad.clone()].concat(), NLRI);
    assert_eq!(e.code(), (3, 2));
    assert_eq!(e.notification.data, bad);
}

#[test]
fn missing_well_known_attribute_is_treat_as_withdraw() {
    for missing in [1u8, 2, 3] {
        let attrs: Vec<u8> = [
            attr(WK, 1, &[0]),
            attr(WK, 2, &[]),
            attr(WK, 3, &[192, 0, 2, 1]),
        ]
        .into_iter()
        .filter(|a| a[1] != missing)
        .collect::<Vec<_>>()
        .concat();
        let u = decode_update(&attrs, NLRI);
        assert_attr_error(&u, missing, AttrAction::TreatAsWithdraw);
        assert_eq!(u.errors[0].reason, Malformed::MissingWellKnown(missing));
    }
}

#[test]
fn withdrawal_only_needs_no_mandatory_attributes() {
    let m = message(2, &update_body(&[24, 10, 0, 1], &[], &[]));
    match decode(&m) {
        Ok(Message::Update(u)) => {
            assert!(u.errors.is_empty());
            assert_eq!(u.withdrawn.len(), 1);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn attribute_flags_conflict_is_treat_as_withdraw_for_well_known() {
    // ORIGIN marked optional (RFC 7606 §3 c).
    let u = decode_update(&with_attr(attr(OPT_T, 1, &[0])), NLRI);
    assert_attr_error(&u, 1, AttrAction::TreatAsWithdraw);
    assert!(matches!(
        u.errors[0].reason,
        Malformed::AttributeFlags { type_code: 1, .. }
    ));
}

#[test]
fn attribute_flags_conflict_discards_aggregator() {
    let u = decode_update(
        &with_attr(attr(OPT, 7, &[0, 0, 0xfd, 0xe9, 1, 1, 1, 1])),
        NLRI,
    );
    assert_attr_error(&u, 7, AttrAction::AttributeDiscard);
    assert_eq!(u.attrs.aggregator, None);
}

#[test]
fn attribute_flags_conflict_on_mp_reach_resets() {
    let mp = attr(
        OPT_T,
        14,
        &[
            0, 2, 1, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 32, 0x20, 1,
            0xd, 0xb8,
        ],
    );
    let e = reset_update(&[mandatory(), mp.clone()].concat(), &[]);
    assert_eq!(e.code(), (3, 4));
    assert_eq!(e.notification.data, mp);
}

#[test]
fn invalid_origin_value_is_treat_as_withdraw() {
    let u = decode_update(&with_attr(attr(WK, 1, &[3])), NLRI);
    assert_attr_error(&u, 1, AttrAction::TreatAsWithdraw);
    assert_eq!(u.errors[0].reason, Malformed::Origin(3));
}

#[test]
fn origin_length_error_is_treat_as_withdraw() {
    let u = decode_update(&with_attr(attr(WK, 1, &[0, 0])), NLRI);
    assert_attr_error(&u, 1, AttrAction::TreatAsWithdraw);
}

#[test]
fn next_hop_length_error_is_treat_as_withdraw() {
    let u = decode_update(&with_attr(attr(WK, 3, &[192, 0, 2, 1, 0])), NLRI);
    assert_attr_error(&u, 3, AttrAction::TreatAsWithdraw);
}

#[test]
fn next_hop_that_is_no_host_address_is_treat_as_withdraw() {
    for nh in [[0, 0, 0, 0], [224, 0, 0, 1], [255, 255, 255, 255]] {
        let u = decode_update(&with_attr(attr(WK, 3, &nh)), NLRI);
        assert_attr_error(&u, 3, AttrAction::TreatAsWithdraw);
        assert_eq!(u.errors[0].reason, Malformed::NextHop(Ipv4Addr::from(nh)));
    }
}

#[test]
fn as_path_with_unknown_segment_type_is_treat_as_withdraw() {
    let u = decode_update(&with_attr(attr(WK, 2, &[5, 1, 0, 0, 0xfd, 0xe9])), NLRI);
    assert_attr_error(&u, 2, AttrAction::TreatAsWithdraw);
    assert_eq!(u.errors[0].reason, Malformed::AsPath(2));
}

#[test]
fn as_path_segment_overrun_is_treat_as_withdraw() {
    let u = decode_update(&with_attr(attr(WK, 2, &[2, 2, 0, 0, 0xfd, 0xe9])), NLRI);
    assert_attr_error(&u, 2, AttrAction::TreatAsWithdraw);
}

#[test]
fn as_path_lone_trailing_octet_is_treat_as_withdraw() {
    let u = decode_update(&with_attr(attr(WK, 2, &[2, 1, 0, 0, 0xfd, 0xe9, 2])), NLRI);
    assert_attr_error(&u, 2, AttrAction::TreatAsWithdraw);
}

#[test]
fn as_path_zero_length_segment_is_treat_as_withdraw() {
    let u = decode_update(&with_attr(attr(WK, 2, &[2, 0])), NLRI);
    assert_attr_error(&u, 2, AttrAction::TreatAsWithdraw);
}

#[test]
fn as_path_with_as_zero_is_treat_as_withdraw() {
    // RFC 7607 §2.
    let u = decode_update(&with_attr(attr(WK, 2, &[2, 1, 0, 0, 0, 0])), NLRI);
    assert_attr_error(&u, 2, AttrAction::TreatAsWithdraw);
}

#[test]
fn med_length_error_is_treat_as_withdraw() {
    let u = decode_update(&with_attr(attr(OPT, 4, &[0, 0, 1])), NLRI);
    assert_attr_error(&u, 4, AttrAction::TreatAsWithdraw);
}

#[test]
fn local_pref_length_error_is_treat_as_withdraw() {
    let u = decode_update(&with_attr(attr(WK, 5, &[0, 0, 0, 100, 0])), NLRI);
    assert_attr_error(&u, 5, AttrAction::TreatAsWithdraw);
}

#[test]
fn atomic_aggregate_length_error_is_attribute_discard() {
    let u = decode_update(&with_attr(attr(WK, 6, &[1])), NLRI);
    assert_attr_error(&u, 6, AttrAction::AttributeDiscard);
    assert!(!u.attrs.atomic_aggregate);
}

#[test]
fn aggregator_length_error_is_attribute_discard() {
    let u = decode_update(
        &with_attr(attr(OPT_T, 7, &[0, 0, 0xfd, 0xe9, 1, 1, 1])),
        NLRI,
    );
    assert_attr_error(&u, 7, AttrAction::AttributeDiscard);
    // Six octets are right only on a two-octet session.
    let u = decode_update(&with_attr(attr(OPT_T, 7, &[0xfd, 0xe9, 1, 1, 1, 1])), NLRI);
    assert_attr_error(&u, 7, AttrAction::AttributeDiscard);
}

#[test]
fn communities_length_error_is_treat_as_withdraw() {
    for len in [0usize, 5] {
        let u = decode_update(&with_attr(attr(OPT_T, 8, &vec![1; len])), NLRI);
        assert_attr_error(&u, 8, AttrAction::TreatAsWithdraw);
    }
}

#[test]
fn originator_id_length_error_is_treat_as_withdraw() {
    let u = decode_update(&with_attr(attr(OPT, 9, &[1, 1, 1])), NLRI);
    assert_attr_error(&u, 9, AttrAction::TreatAsWithdraw);
}

#[test]
fn cluster_list_length_error_is_treat_as_withdraw() {
    let u = decode_update(&with_attr(attr(OPT, 10, &[1, 1, 1, 1, 2, 2])), NLRI);
    assert_attr_error(&u, 10, AttrAction::TreatAsWithdraw);
}

#[test]
fn extended_communities_length_error_is_treat_as_withdraw() {
    let u = decode_update(&with_attr(attr(OPT_T, 16, &[0; 12])), NLRI);
    assert_attr_error(&u, 16, AttrAction::TreatAsWithdraw);
}

#[test]
fn large_communities_length_error_is_treat_as_withdraw() {
    let u = decode_update(&with_attr(attr(OPT_T, 32, &[0; 13])), NLRI);
    assert_attr_error(&u, 32, AttrAction::TreatAsWithdraw);
}

fn ctx2() -> SessionContext {
    SessionContext::default()
}

fn decode_update2(attrs: &[u8]) -> Update {
    match Message::decode(&message(2, &update_body(&[], attrs, NLRI)), &ctx2()) {
        Ok(Message::Update(u)) => *u,
        other => panic!("{other:?}"),
    }
}

fn mandatory2() -> Vec<u8> {
    [
        attr(WK, 1, &[0]),
        attr(WK, 2, &[2, 2, 0x5b, 0xa0, 0xfd, 0xe9]),
        attr(WK, 3, &[192, 0, 2, 1]),
    ]
    .concat()
}

#[test]
fn malformed_as4_path_is_attribute_discard() {
    let u = decode_update2(&[mandatory2(), attr(OPT_T, 17, &[2, 3, 0, 3, 0x0d, 0x40])].concat());
    assert_attr_error(&u, 17, AttrAction::AttributeDiscard);
    // AS_PATH stays as received: AS_TRANS, 65001.
    assert_eq!(
        u.attrs.as_path,
        Some(AsPath::sequence([Asn(23456), Asn(65001)]))
    );
}

#[test]
fn as4_path_is_merged_on_two_octet_sessions() {
    let as4 = attr(OPT_T, 17, &[2, 2, 0, 3, 0x0d, 0x40, 0, 0, 0xfd, 0xe9]);
    let u = decode_update2(&[mandatory2(), as4].concat());
    assert!(u.errors.is_empty(), "{:?}", u.errors);
    assert_eq!(
        u.attrs.as_path,
        Some(AsPath::sequence([Asn(200_000), Asn(65001)]))
    );
}

#[test]
fn as4_aggregator_length_error_is_attribute_discard() {
    let u = decode_update2(&[mandatory2(), attr(OPT_T, 18, &[0, 3, 0x0d, 0x40, 1, 1, 1])].concat());
    assert_attr_error(&u, 18, AttrAction::AttributeDiscard);
}

#[test]
fn duplicate_attribute_keeps_the_first() {
    let u = decode_update(&[mandatory(), attr(WK, 1, &[2])].concat(), NLRI);
    assert_attr_error(&u, 1, AttrAction::AttributeDiscard);
    assert_eq!(u.errors[0].reason, Malformed::Duplicate(1));
    assert_eq!(u.attrs.origin, Some(Origin::Igp));
}

const MP_REACH_V6: &[u8] = &[
    0, 2, 1, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 32, 0x20, 1, 0xd, 0xb8,
];

#[test]
fn duplicate_mp_reach_is_malformed_attribute_list() {
    let mp = attr(OPT, 14, MP_REACH_V6);
    let e = reset_update(&[mp.clone(), mandatory(), mp].concat(), &[]);
    assert_eq!(e.code(), (3, 1));
}

#[test]
fn attribute_overrunning_the_section_is_treat_as_withdraw_and_nlri_still_found() {
    let attrs = [mandatory(), vec![OPT_T, 8, 40, 0, 0]].concat();
    let u = decode_update(&attrs, NLRI);
    assert_attr_error(&u, 8, AttrAction::TreatAsWithdraw);
    assert_eq!(u.errors[0].reason, Malformed::AttributeOverrun);
}

#[test]
fn too_few_octets_for_an_attribute_header_is_treat_as_withdraw() {
    let u = decode_update(&[mandatory(), vec![OPT_T, 8]].concat(), NLRI);
    assert_attr_error(&u, 8, AttrAction::TreatAsWithdraw);
    // Extended length needs four octets of header.
    let u = decode_update(&[mandatory(), vec![OPT_T | 0x10, 8, 0]].concat(), NLRI);
    assert_attr_error(&u, 8, AttrAction::TreatAsWithdraw);
}

#[test]
fn nlri_prefix_longer_than_32_is_invalid_network_field() {
    let e = reset_update(&mandatory(), &[33, 10, 0, 0, 0, 0]);
    assert_eq!(e.code(), (3, 10));
}

#[test]
fn nlri_prefix_overrun_is_invalid_network_field() {
    let e = reset_update(&mandatory(), &[24, 10, 0]);
    assert_eq!(e.code(), (3, 10));
}

#[test]
fn withdrawn_prefix_malformed_is_invalid_network_field() {
    let e = reset(&message(2, &update_body(&[40, 1, 2, 3, 4, 5], &[], &[])));
    assert_eq!(e.code(), (3, 10));
}

#[test]
fn mp_reach_with_bad_next_hop_length_is_optional_attribute_error() {
    let mut v = MP_REACH_V6.to_vec();
    v[3] = 15; // next hop length
    let mp = attr(OPT, 14, &v);
    let e = reset_update(&[mp.clone(), mandatory()].concat(), &[]);
    assert_eq!(e.code(), (3, 9));
    assert_eq!(e.notification.data, mp);
}

#[test]
fn mp_reach_truncated_is_optional_attribute_error() {
    let e = reset_update(
        &[attr(OPT, 14, &MP_REACH_V6[..10]), mandatory()].concat(),
        &[],
    );
    assert_eq!(e.code(), (3, 9));
}

#[test]
fn mp_reach_nlri_syntax_error_is_optional_attribute_error() {
    let mut v = MP_REACH_V6.to_vec();
    v[21] = 129; // prefix length
    let e = reset_update(&[attr(OPT, 14, &v), mandatory()].concat(), &[]);
    assert_eq!(e.code(), (3, 9));
}

#[test]
fn mp_unreach_malformed_is_optional_attribute_error() {
    let e = reset_update(&attr(OPT, 15, &[0, 2, 1, 64, 0x20]), &[]);
    assert_eq!(e.code(), (3, 9));
    let e = reset_update(&attr(OPT, 15, &[0, 2]), &[]);
    assert_eq!(e.code(), (3, 9));
}

#[test]
fn treat_as_withdraw_covers_mp_reach_routes() {
    let attrs = [
        attr(OPT, 14, MP_REACH_V6),
        attr(WK, 1, &[7]),
        attr(WK, 2, &[]),
    ]
    .concat();
    let u = decode_update(&attrs, &[]);
    assert!(u.treat_as_withdraw());
    let mp = u.mp_reach.expect("routes to withdraw");
    assert_eq!(mp.nlri[0].prefix.to_string(), "2001:db8::/32");
}

#[test]
fn mp_reach_of_unsupported_family_is_ignored() {
    let mut v = MP_REACH_V6.to_vec();
    v[2] = 128; // SAFI: MPLS VPN
    let u = decode_update(&[attr(OPT, 14, &v), mandatory()].concat(), &[]);
    assert!(u.mp_reach.is_none());
    assert_eq!(u.errors[0].action, AttrAction::AttributeDiscard);
    assert_eq!(u.end_of_rib_family(), None);
}

#[test]
fn strongest_action_wins_when_errors_mix() {
    let attrs = [mandatory(), attr(WK, 6, &[1]), attr(OPT_T, 8, &[1, 2, 3])].concat();
    let u = decode_update(&attrs, NLRI);
    assert_eq!(u.errors.len(), 2);
    assert!(u.treat_as_withdraw());
}

#[test]
fn unknown_optional_attributes_pass_through_byte_exact_with_partial_when_passed_on() {
    let transitive = attr(OPT_T, 99, &[1, 2, 3]);
    let non_transitive = attr(OPT, 98, &[4]);
    let u = decode_update(&[mandatory(), transitive, non_transitive].concat(), NLRI);
    assert!(u.errors.is_empty());
    assert_eq!(
        u.attrs.unknown,
        vec![RawAttr {
            flags: OPT_T,
            type_code: 99,
            value: vec![1, 2, 3]
        }]
    );
    let mut attrs = u.attrs.clone();
    attrs.set_partial_on_unknown();
    let mut out = bytes::BytesMut::new();
    Message::Update(Box::new(Update { attrs, ..u }))
        .encode(&ctx4(), &mut out)
        .unwrap();
    let sent = attr(OPT_T | 0x20, 99, &[1, 2, 3]);
    assert!(
        out.windows(sent.len()).any(|w| w == sent.as_slice()),
        "Partial bit set, value byte-exact"
    );
}

#[test]
fn extended_length_attributes_decode() {
    let mut comm = vec![OPT_T | 0x10, 8, 0, 8];
    comm.extend_from_slice(&[0xfd, 0xe9, 0, 1, 0xfd, 0xe9, 0, 2]);
    let u = decode_update(&[mandatory(), comm].concat(), NLRI);
    assert!(u.errors.is_empty());
    assert_eq!(
        u.attrs.communities[..],
        [Community::new(65001, 1), Community::new(65001, 2)]
    );
}

// ---- ROUTE-REFRESH (RFC 7313 §5) ----

#[test]
fn route_refresh_of_wrong_length_is_invalid_message_length_with_the_message() {
    let m = message(5, &[0, 1, 0, 1, 0]);
    let e = reset(&m);
    assert_eq!(e.code(), (7, 1));
    assert_eq!(e.notification.data, m);
}

#[test]
fn route_refresh_subtypes_decode() {
    for (octet, subtype) in [
        (0, RefreshSubtype::Normal),
        (1, RefreshSubtype::BeginningOfRefresh),
        (2, RefreshSubtype::EndOfRefresh),
        (7, RefreshSubtype::Reserved(7)),
    ] {
        match decode(&message(5, &[0, 2, octet, 1])) {
            Ok(Message::RouteRefresh(r)) => {
                assert_eq!(r.subtype, subtype);
                assert_eq!(r.afi_safi, AfiSafi::IPV6_UNICAST);
            }
            other => panic!("{other:?}"),
        }
    }
}

// ---- NOTIFICATION ----

#[test]
fn notification_codes_map_to_names() {
    let cases = [
        (
            (1, 1),
            ErrorCode::MessageHeader(HeaderError::ConnectionNotSynchronized),
        ),
        ((2, 7), ErrorCode::Open(OpenError::UnsupportedCapability)),
        ((3, 11), ErrorCode::Update(UpdateError::MalformedAsPath)),
        ((4, 0), ErrorCode::HoldTimerExpired),
        ((5, 3), ErrorCode::Fsm(FsmError::UnexpectedInEstablished)),
        ((6, 2), ErrorCode::Cease(Cease::AdministrativeShutdown)),
        ((6, 9), ErrorCode::Cease(Cease::HardReset)),
        (
            (7, 1),
            ErrorCode::RouteRefresh(RouteRefreshError::InvalidMessageLength),
        ),
        ((3, 7), ErrorCode::Update(UpdateError::Unassigned(7))),
        (
            (4, 1),
            ErrorCode::Unassigned {
                code: 4,
                subcode: 1,
            },
        ),
        (
            (8, 0),
            ErrorCode::Unassigned {
                code: 8,
                subcode: 0,
            },
        ),
    ];
    for ((c, s), code) in cases {
        assert_eq!(ErrorCode::from_octets(c, s), code);
        assert_eq!(code.octets(), (c, s));
    }
}

#[test]
fn shutdown_communication_decodes() {
    let mut body = vec![6, 2, 5];
    body.extend_from_slice(b"maint");
    match decode(&message(3, &body)) {
        Ok(Message::Notification(n)) => assert_eq!(n.shutdown_message(), Some("maint")),
        other => panic!("{other:?}"),
    }
    // A length past the data is no shutdown communication, but still a NOTIFICATION.
    match decode(&message(3, &[6, 2, 9, b'x'])) {
        Ok(Message::Notification(n)) => assert_eq!(n.shutdown_message(), None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn decoding_a_non_update_into_an_update_is_bad_message_type() {
    let mut u = Update::default();
    let e = u
        .decode_from(&message(4, &[]), &ctx4())
        .expect_err("not an UPDATE");
    assert_eq!(e.code(), (1, 3));
    assert_eq!(
        u.decode_from(&message(2, &update_body(&[], &[], &[]))[..20], &ctx4())
            .unwrap_err()
            .code(),
        (1, 2)
    );
}
