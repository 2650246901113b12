use peerlab_core::message::AnnounceEvent;
use peerlab_core::pieces::MAX_BLOCK_SIZE;
use peerlab_core::{Bitfield, BlockRef, Message, NodeId};
use proptest::prelude::*;

use super::*;

const PIECES: u32 = 10;

fn limits() -> Limits {
    Limits::new(PIECES)
}

fn bits(len: u32, set: &[u32]) -> Bitfield {
    let mut b = Bitfield::new(len);
    for &p in set {
        b.insert(p);
    }
    b
}

fn payload_for(msg: &Message) -> Option<Vec<u8>> {
    match msg {
        Message::Block(b) | Message::Push(b) => Some((0..b.len).map(|i| (i % 251) as u8).collect()),
        _ => None,
    }
}

fn encoded(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode(msg, payload_for(msg).as_deref(), &mut out).expect("message encodes");
    out
}

fn decode_all<'a>(buf: &'a [u8], limits: &Limits) -> (Frame<'a>, usize) {
    decode(buf, limits)
        .expect("frame decodes")
        .expect("frame is complete")
}

fn decode_err(buf: &[u8], limits: &Limits) -> WireError {
    decode(buf, limits).expect_err("frame is rejected")
}

/// One message of every variant, on a file of [`PIECES`] pieces.
fn every_variant() -> Vec<Message> {
    let b = BlockRef {
        piece: 7,
        offset: 16_384,
        len: 16_384,
    };
    vec![
        Message::Choke,
        Message::Unchoke,
        Message::Interested,
        Message::NotInterested,
        Message::Have { piece: 9 },
        Message::Bitfield(bits(PIECES, &[0, 3, 9])),
        Message::Request(b),
        Message::Block(b),
        Message::Block(BlockRef {
            piece: 0,
            offset: 0,
            len: MAX_BLOCK_SIZE,
        }),
        Message::Cancel(b),
        Message::Push(BlockRef {
            piece: 3,
            offset: 0,
            len: 1024,
        }),
        Message::Ack { piece: 3 },
        Message::RelayFor { dest: NodeId(7) },
        Message::Forwarded { piece: 4 },
        Message::RelayAlive,
    ]
}

/// Encodes `msg`, decodes it back, and checks length, consumption and payload.
fn assert_round_trip(msg: &Message, limits: &Limits) {
    let payload = payload_for(msg);
    let bytes = encoded(msg);
    assert_eq!(bytes.len() as u64, msg.wire_len(), "{msg:?}: size on the wire");
    let (frame, used) = decode_all(&bytes, limits);
    assert_eq!(used, bytes.len(), "{msg:?}: consumed");
    assert_eq!(frame.payload(), payload.as_deref(), "{msg:?}: payload");
    assert_eq!(frame.into_message().as_ref(), Some(msg));
}

#[test]
fn every_variant_round_trips_in_wire_len_bytes() {
    for msg in every_variant() {
        assert_round_trip(&msg, &limits());
    }
}

#[test]
fn a_stream_of_frames_decodes_in_order() {
    let mut stream = Vec::new();
    encode_keep_alive(&mut stream);
    for msg in every_variant() {
        stream.extend(encoded(&msg));
    }
    let mut rest = &stream[..];
    let mut got = Vec::new();
    while let Some((frame, used)) = decode(rest, &limits()).expect("stream decodes") {
        got.push(frame.into_message());
        rest = &rest[used..];
    }
    assert!(rest.is_empty());
    let want: Vec<_> = std::iter::once(None)
        .chain(every_variant().into_iter().map(Some))
        .collect();
    assert_eq!(got, want);
}

// Golden encodings, written out by hand from BEP 3's layout:
// <length prefix u32 BE><message id><payload>.

#[test]
fn golden_keep_alive_and_bodiless_messages() {
    let mut out = Vec::new();
    encode_keep_alive(&mut out);
    assert_eq!(out, [0, 0, 0, 0]);
    assert_eq!(encoded(&Message::Choke), [0, 0, 0, 1, 0]);
    assert_eq!(encoded(&Message::Unchoke), [0, 0, 0, 1, 1]);
    assert_eq!(encoded(&Message::Interested), [0, 0, 0, 1, 2]);
    assert_eq!(encoded(&Message::NotInterested), [0, 0, 0, 1, 3]);
}

#[test]
fn golden_have() {
    assert_eq!(
        encoded(&Message::Have { piece: 0x0102_0304 }),
        [0, 0, 0, 5, 4, 1, 2, 3, 4]
    );
}

#[test]
fn golden_bitfield_puts_piece_zero_in_the_high_bit() {
    // 10 pieces -> 2 bytes; pieces 0, 7, 8 -> 1000_0001 1000_0000.
    let msg = Message::Bitfield(bits(10, &[0, 7, 8]));
    assert_eq!(encoded(&msg), [0, 0, 0, 3, 5, 0b1000_0001, 0b1000_0000]);
}

#[test]
fn golden_request_and_cancel() {
    let b = BlockRef {
        piece: 1,
        offset: 0x4000,
        len: 0x4000,
    };
    #[rustfmt::skip]
    let body = [0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0];
    let mut request = vec![0, 0, 0, 13, 6];
    request.extend(body);
    let mut cancel = vec![0, 0, 0, 13, 8];
    cancel.extend(body);
    assert_eq!(encoded(&Message::Request(b)), request);
    assert_eq!(encoded(&Message::Cancel(b)), cancel);
}

#[test]
fn golden_piece_carries_the_payload() {
    let b = BlockRef {
        piece: 2,
        offset: 0x0100_0000,
        len: 3,
    };
    let mut out = Vec::new();
    encode(&Message::Block(b), Some(b"abc"), &mut out).expect("block encodes");
    #[rustfmt::skip]
    let want = [0, 0, 0, 12, 7, 0, 0, 0, 2, 1, 0, 0, 0, b'a', b'b', b'c'];
    assert_eq!(out, want);
    let (frame, used) = decode_all(&out, &limits());
    assert_eq!(used, want.len());
    assert_eq!(
        frame,
        Frame::Block {
            block: b,
            payload: b"abc"
        }
    );
}

#[test]
fn golden_handshake() {
    let hs = Handshake::new([0xaa; 20], *b"-PL0001-123456789012");
    let mut out = Vec::new();
    encode_handshake(&hs, &mut out);
    let mut want = vec![19];
    want.extend(b"BitTorrent protocol");
    want.extend([0; 8]);
    want.extend([0xaa; 20]);
    want.extend(b"-PL0001-123456789012");
    assert_eq!(out, want);
    assert_eq!(out.len(), HANDSHAKE_LEN);
    assert_eq!(decode_handshake(&out), Ok(Some((hs, HANDSHAKE_LEN))));
}

#[test]
fn handshake_keeps_the_peers_reserved_bits_and_leaves_what_follows() {
    let hs = Handshake {
        reserved: [0, 0, 0, 0, 0, 0x10, 0, 0x05],
        info_hash: [1; 20],
        peer_id: [2; 20],
    };
    let mut out = Vec::new();
    encode_handshake(&hs, &mut out);
    encode(&Message::Interested, None, &mut out).expect("encodes");
    assert_eq!(decode_handshake(&out), Ok(Some((hs, HANDSHAKE_LEN))));
}

// Partial buffers: every proper prefix of a valid encoding is "read more".

#[test]
fn every_prefix_of_a_frame_needs_more_bytes() {
    for msg in every_variant() {
        let bytes = encoded(&msg);
        for end in 0..bytes.len() {
            assert_eq!(decode(&bytes[..end], &limits()), Ok(None), "{msg:?} cut at {end}");
        }
    }
    assert_eq!(decode(&[0, 0, 0], &limits()), Ok(None));
}

#[test]
fn every_prefix_of_a_handshake_needs_more_bytes() {
    let mut out = Vec::new();
    encode_handshake(&Handshake::new([3; 20], [4; 20]), &mut out);
    for end in 0..out.len() {
        assert_eq!(decode_handshake(&out[..end]), Ok(None), "cut at {end}");
    }
}

// Malformed input: each is rejected with the error that names the fault.

#[test]
fn oversized_frame_is_rejected_from_its_length_prefix() {
    let err = decode_err(&[0xff, 0xff, 0xff, 0xff], &limits());
    assert_eq!(
        err,
        WireError::FrameTooLong {
            len: 4_294_967_299,
            limit: 131_085
        }
    );
    assert_eq!(
        err.to_string(),
        "frame of 4294967299 bytes exceeds the 131085-byte limit"
    );
    // One byte over the largest block frame.
    let len = (MAX_BLOCK_SIZE + 10).to_be_bytes();
    assert!(matches!(
        decode_err(&len, &limits()),
        WireError::FrameTooLong { len: 131_086, .. }
    ));
}

#[test]
fn limits_grow_to_fit_a_large_bitfield() {
    let pieces = 2_000_000;
    let limits = Limits::new(pieces);
    assert_eq!(limits.max_frame_len, 5 + 250_000);
    let mut all = Bitfield::full(pieces);
    all.remove(1_999_999);
    assert_round_trip(&Message::Bitfield(all), &limits);
}

#[test]
fn unknown_ids_are_rejected_by_id() {
    // 9: DHT port (BEP 5); 13..=17: Fast extension (BEP 6); 20: extended (BEP 10).
    // 63 and 69 frame the relay's 64..=68.
    for id in [9u8, 13, 14, 17, 20, 63, 69, 255] {
        let err = decode_err(&[0, 0, 0, 3, id, 0x1a, 0xe1], &limits());
        assert_eq!(err, WireError::UnknownMessage { id });
    }
    // Rejected as soon as the id is read, not once the body has arrived.
    assert_eq!(
        decode_err(&[0, 0, 1, 0, 20], &limits()),
        WireError::UnknownMessage { id: 20 }
    );
}

#[test]
fn fixed_size_messages_must_have_their_size() {
    let cases: [(&[u8], &str, u32, u32); 4] = [
        (&[0, 0, 0, 2, 0, 0], "choke", 2, 1),
        (&[0, 0, 0, 4, 4, 0, 0, 0], "have", 4, 5),
        (&[0, 0, 0, 14, 6], "request", 14, 13),
        (&[0, 0, 0, 12, 8], "cancel", 12, 13),
    ];
    for (bytes, message, len, expected) in cases {
        assert_eq!(
            decode_err(bytes, &limits()),
            WireError::LengthMismatch {
                message,
                len,
                expected
            }
        );
    }
    assert_eq!(
        decode_err(&[0, 0, 0, 14, 6], &limits()).to_string(),
        "request message has length 14, expected 13"
    );
}

#[test]
fn bitfield_must_match_the_piece_count() {
    // 10 pieces need 2 bytes; 3 and 1 are rejected from the header alone.
    for (len, got) in [(4u8, 3u32), (2, 1)] {
        assert_eq!(
            decode_err(&[0, 0, 0, len, 5], &limits()),
            WireError::BitfieldLength {
                len: got,
                expected: 2,
                pieces: PIECES
            }
        );
    }
    // Pieces 10..16 do not exist: their bits must be clear.
    assert_eq!(
        decode_err(&[0, 0, 0, 3, 5, 0xff, 0b1110_0000], &limits()),
        WireError::BitfieldSpareBits {
            pieces: PIECES,
            byte: 0b1110_0000
        }
    );
    let (frame, _) = decode_all(&[0, 0, 0, 3, 5, 0xff, 0b1100_0000], &limits());
    assert_eq!(frame, Frame::Message(Message::Bitfield(Bitfield::full(PIECES))));
}

#[test]
fn blocks_must_be_1_to_max_block_size_bytes() {
    let zero = [0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        decode_err(&zero, &limits()),
        WireError::EmptyBlock {
            message: "request",
            piece: 1,
            offset: 0
        }
    );
    let mut huge = vec![0, 0, 0, 13, 8, 0, 0, 0, 1, 0, 0, 0, 0];
    huge.extend((MAX_BLOCK_SIZE + 1).to_be_bytes());
    assert_eq!(
        decode_err(&huge, &limits()),
        WireError::BlockTooLarge {
            message: "cancel",
            len: MAX_BLOCK_SIZE + 1,
            max: MAX_BLOCK_SIZE
        }
    );
    // A piece message whose payload is too large, under a raised frame
    // limit, is rejected from its header without waiting for the payload.
    let roomy = Limits {
        max_frame_len: u32::MAX,
        pieces: PIECES,
    };
    let mut piece = (PIECE_HEADER + MAX_BLOCK_SIZE + 1).to_be_bytes().to_vec();
    piece.push(7);
    assert_eq!(
        decode_err(&piece, &roomy),
        WireError::BlockTooLarge {
            message: "piece",
            len: MAX_BLOCK_SIZE + 1,
            max: MAX_BLOCK_SIZE
        }
    );
    assert_eq!(
        decode_err(&[0, 0, 0, 9, 7, 0, 0, 0, 4, 0, 0, 0, 0], &limits()),
        WireError::EmptyBlock {
            message: "piece",
            piece: 4,
            offset: 0
        }
    );
    assert_eq!(
        decode_err(&[0, 0, 0, 8, 7], &limits()),
        WireError::TruncatedPiece {
            message: "piece",
            len: 8
        }
    );
}

#[test]
fn handshake_from_a_non_bittorrent_peer_is_rejected_early() {
    assert_eq!(
        decode_handshake(b"GET / HTTP/1.1\r\n"),
        Err(WireError::HandshakeProtocolLength { len: b'G' })
    );
    assert_eq!(
        decode_handshake(b"\x13BitTorrent protoco!"),
        Err(WireError::HandshakeProtocolName { at: 19, byte: b'!' })
    );
    assert_eq!(
        decode_handshake(b"\x13bit"),
        Err(WireError::HandshakeProtocolName { at: 1, byte: b'b' })
    );
}

#[test]
fn encode_checks_the_payload_and_leaves_out_untouched_on_error() {
    let b = BlockRef {
        piece: 1,
        offset: 0,
        len: 4,
    };
    let mut out = vec![0xee];
    let cases = [
        (
            Message::Block(b),
            None,
            WireError::MissingPayload {
                piece: 1,
                offset: 0,
                len: 4,
            },
        ),
        (
            Message::Block(b),
            Some(&b"abc"[..]),
            WireError::PayloadLenMismatch {
                expected: 4,
                actual: 3,
            },
        ),
        (
            Message::Have { piece: 1 },
            Some(&b"abcd"[..]),
            WireError::UnexpectedPayload {
                message: "have",
                len: 4,
            },
        ),
        (
            Message::Request(BlockRef { len: 0, ..b }),
            None,
            WireError::EmptyBlock {
                message: "request",
                piece: 1,
                offset: 0,
            },
        ),
        (
            Message::Cancel(BlockRef {
                len: MAX_BLOCK_SIZE + 1,
                ..b
            }),
            None,
            WireError::BlockTooLarge {
                message: "cancel",
                len: MAX_BLOCK_SIZE + 1,
                max: MAX_BLOCK_SIZE,
            },
        ),
    ];
    for (msg, payload, want) in cases {
        assert_eq!(encode(&msg, payload, &mut out), Err(want), "{msg:?}");
        assert_eq!(out, [0xee], "{msg:?} left bytes behind");
    }
}

fn arb_block(max_len: u32) -> impl Strategy<Value = BlockRef> {
    (any::<u32>(), any::<u32>(), 1..=max_len).prop_map(|(piece, offset, len)| BlockRef { piece, offset, len })
}

/// Any message on a file of `pieces` pieces (block payloads kept small).
fn arb_message(pieces: u32) -> impl Strategy<Value = Message> {
    prop_oneof![
        Just(Message::Choke),
        Just(Message::Unchoke),
        Just(Message::Interested),
        Just(Message::NotInterested),
        any::<u32>().prop_map(|piece| Message::Have { piece }),
        proptest::collection::vec(any::<bool>(), pieces as usize).prop_map(move |set| {
            let held: Vec<u32> = (0..pieces).filter(|&p| set[p as usize]).collect();
            Message::Bitfield(bits(pieces, &held))
        }),
        arb_block(MAX_BLOCK_SIZE).prop_map(Message::Request),
        arb_block(MAX_BLOCK_SIZE).prop_map(Message::Cancel),
        arb_block(4096).prop_map(Message::Block),
        arb_block(4096).prop_map(Message::Push),
        any::<u32>().prop_map(|piece| Message::Ack { piece }),
        any::<u32>().prop_map(|dest| Message::RelayFor { dest: NodeId(dest) }),
        any::<u32>().prop_map(|piece| Message::Forwarded { piece }),
        Just(Message::RelayAlive),
    ]
}

fn arb_messages() -> impl Strategy<Value = (u32, Vec<Message>)> {
    (0u32..100).prop_flat_map(|pieces| (Just(pieces), proptest::collection::vec(arb_message(pieces), 1..8)))
}

/// Bytes that often start like a frame, so the fuzzing reaches the bodies.
fn arb_frame_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        (
            0u32..40,
            prop_oneof![0u8..12, 62u8..70],
            proptest::collection::vec(any::<u8>(), 0..60)
        )
            .prop_map(|(len, id, body)| {
                let mut b = len.to_be_bytes().to_vec();
                b.push(id);
                b.extend(body);
                b
            }),
    ]
}

proptest! {
    #[test]
    fn decode_never_panics_or_overreads(bytes in arb_frame_bytes(), pieces in 0u32..100) {
        let limits = Limits::new(pieces);
        if let Ok(Some((frame, used))) = decode(&bytes, &limits) {
            prop_assert!(used <= bytes.len());
            prop_assert!(used >= 4);
            if let Some(msg) = frame.into_message() {
                prop_assert_eq!(msg.wire_len(), used as u64);
            }
        }
    }

    #[test]
    fn decode_handshake_never_panics_or_overreads(
        tail in proptest::collection::vec(any::<u8>(), 0..100),
        genuine in any::<bool>(),
    ) {
        let mut bytes = if genuine { b"\x13BitTorrent protocol".to_vec() } else { Vec::new() };
        bytes.extend(tail);
        if let Ok(Some((_, used))) = decode_handshake(&bytes) {
            prop_assert_eq!(used, HANDSHAKE_LEN);
            prop_assert!(used <= bytes.len());
        }
    }

    #[test]
    fn any_messages_round_trip_as_a_stream((pieces, msgs) in arb_messages()) {
        let limits = Limits::new(pieces);
        let mut stream = Vec::new();
        for msg in &msgs {
            let before = stream.len();
            encode(msg, payload_for(msg).as_deref(), &mut stream).expect("message encodes");
            prop_assert_eq!((stream.len() - before) as u64, msg.wire_len());
        }
        let mut rest = &stream[..];
        for msg in &msgs {
            let (frame, used) = decode_all(rest, &limits);
            prop_assert_eq!(frame.payload().map(<[u8]>::to_vec), payload_for(msg));
            prop_assert_eq!(frame.into_message(), Some(msg.clone()));
            rest = &rest[used..];
        }
        prop_assert!(rest.is_empty());
    }
}

#[test]
fn golden_relay_messages() {
    let push = BlockRef {
        piece: 2,
        offset: 0,
        len: 3,
    };
    let mut out = Vec::new();
    encode(&Message::Push(push), Some(b"abc"), &mut out).expect("push encodes");
    assert_eq!(out, [0, 0, 0, 12, 64, 0, 0, 0, 2, 0, 0, 0, 0, b'a', b'b', b'c']);
    assert_eq!(
        decode_all(&out, &limits()).0,
        Frame::Push {
            block: push,
            payload: b"abc"
        }
    );
    assert_eq!(encoded(&Message::Ack { piece: 5 }), [0, 0, 0, 5, 65, 0, 0, 0, 5]);
    assert_eq!(
        encoded(&Message::RelayFor { dest: NodeId(258) }),
        [0, 0, 0, 5, 66, 0, 0, 1, 2]
    );
    assert_eq!(
        encoded(&Message::Forwarded { piece: 1 }),
        [0, 0, 0, 5, 67, 0, 0, 0, 1]
    );
    assert_eq!(encoded(&Message::RelayAlive), [0, 0, 0, 1, 68]);
    assert_eq!(
        decode_err(&[0, 0, 0, 2, 68, 0], &limits()),
        WireError::LengthMismatch {
            message: "relay-alive",
            len: 2,
            expected: 1
        }
    );
    assert_eq!(
        encode(&Message::Push(push), None, &mut Vec::new()),
        Err(WireError::MissingPayload {
            piece: 2,
            offset: 0,
            len: 3
        })
    );
}

#[test]
fn tracker_announces_are_not_peer_wire_messages() {
    let announce = Message::Announce {
        peer: NodeId(1),
        event: AnnounceEvent::Started,
        left: 10,
        uploaded: 0,
        downloaded: 0,
        numwant: 50,
    };
    let reply = Message::AnnounceReply {
        interval_s: 60,
        peers: vec![NodeId(2)],
    };
    for msg in [announce, reply] {
        let mut out = Vec::new();
        let err = encode(&msg, None, &mut out).expect_err("announces go over HTTP");
        assert!(matches!(err, WireError::Unencodable { .. }), "{err:?}");
        assert!(err.to_string().contains("HTTP"), "{err}");
        assert!(out.is_empty());
    }
}
