//! Decode → encode → decode agrees, and nothing panics.
//!
//! Input: one octet choosing the session context (bit 0: four-octet AS, bit 1: ADD-PATH for
//! IPv4 unicast, bit 2: for IPv6 unicast, bit 3: extended messages), then a byte stream that is
//! framed and decoded message by message, as a session would.

#![no_main]

use bgpd_wire::{AfiSafi, EncodeError, Header, Message, SessionContext, Update};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fn context(flags: u8) -> SessionContext {
    let mut add_path_families = Vec::new();
    if flags & 2 != 0 {
        add_path_families.push(AfiSafi::IPV4_UNICAST);
    }
    if flags & 4 != 0 {
        add_path_families.push(AfiSafi::IPV6_UNICAST);
    }
    SessionContext {
        four_octet_as: flags & 1 != 0,
        add_path_families,
        max_message_size: if flags & 8 != 0 { 65535 } else { 4096 },
    }
}

/// The message without the RFC 7606 error list, which describes the received bytes only.
fn comparable(msg: Message) -> Message {
    match msg {
        Message::Update(mut u) => {
            u.errors.clear();
            Message::Update(u)
        }
        other => other,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut stream)) = data.split_first() else { return };
    let ctx = context(flags);
    // Every UPDATE is also decoded into one reused `Update`, which must agree with a fresh one.
    let mut reused = Update::default();
    while let Ok(Some(header)) = Header::peek(stream, ctx.max_message_size) {
        let Some(frame) = stream.get(..header.len) else { return };
        stream = &stream[header.len..];
        let fresh = Message::decode(frame, &ctx);
        if let Ok(Message::Update(u)) = &fresh {
            reused.decode_from(frame, &ctx).expect("decodes as fresh did");
            assert_eq!(&reused, &**u);
        }
        let Ok(first) = fresh else { continue };
        let mut out = BytesMut::new();
        match first.encode(&ctx, &mut out) {
            Ok(()) => {}
            // Canonical form may be larger than what arrived (e.g. capabilities one per parameter).
            Err(EncodeError::TooLarge { .. }) => continue,
            Err(e) => panic!("decoded message does not encode: {e}: {first:?}"),
        }
        let second = Message::decode(&out, &ctx).expect("our own encoding decodes");
        assert_eq!(comparable(first), comparable(second.clone()));
        let mut again = BytesMut::new();
        second.encode(&ctx, &mut again).expect("re-encodes");
        assert_eq!(out, again, "encoding is canonical");
    }
});
