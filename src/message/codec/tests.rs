//! Round trips, limits and refusals of the wire format.

use super::*;
use crate::message::{Digest, IdRun, IdRuns, Offer};

const LIMITS: DecodeLimits = DecodeLimits {
    max_payload: 1024,
    max_announcements: 4,
    max_runs: 4,
};

fn id(seq: u64) -> MessageId {
    MessageId::new(1, 2, seq)
}

#[test]
fn no_frame_is_longer_than_max_frame_len() {
    let long = "n".repeat(crate::MAX_NODE_ID_LEN);
    let limits = DecodeLimits {
        max_payload: 5000,
        max_announcements: 300,
        max_runs: 4,
    };
    let far = |i: u64| MessageId::new(u64::MAX - i, u64::MAX, u64::MAX - 2 * i);
    let gossip = Message::Gossip(Gossip {
        id: far(0),
        origin: long.clone(),
        round: u32::MAX,
        heaviest: u32::MAX,
        payload: Bytes::from(vec![0; limits.max_payload]),
        encoding: Default::default(),
        signature: None,
    });
    // Signed and compressed, at the largest plain length: the longest header.
    let signed = match &gossip {
        Message::Gossip(g) => Message::Gossip(Gossip {
            payload: Bytes::from(vec![0; limits.max_payload - 1]),
            encoding: Encoding::Lz4 {
                len: limits.max_payload as u32,
            },
            signature: Some(Signature::from_bytes([0xff; Signature::LEN])),
            ..g.clone()
        }),
        _ => unreachable!(),
    };
    // Every other sequence number: no two announcements form a run.
    let entries = (0..limits.max_announcements as u64)
        .map(|i| Announcement {
            id: far(i),
            round: u32::MAX,
            held_ms: u32::MAX,
        })
        .collect();
    // The payloads' bound checked on its own: with few announcements it is the longest kind.
    let payloads_only = DecodeLimits {
        max_announcements: 1,
        max_runs: 1,
        ..limits
    };
    for (message, limits) in [
        (gossip, payloads_only),
        (signed, payloads_only),
        (Message::IHave(IHave { entries }), limits),
    ] {
        let envelope = Envelope {
            sender: long.clone(),
            message,
        };
        assert!(
            envelope.encoded_len() <= limits.max_frame_len(),
            "{} > {}",
            envelope.encoded_len(),
            limits.max_frame_len()
        );
    }
}

fn samples() -> Vec<Envelope<u64>> {
    let gossip = Gossip {
        id: id(1),
        origin: 9,
        round: 300,
        heaviest: 0xdead_beef,
        payload: Bytes::from_static(b"hi"),
        encoding: Default::default(),
        signature: None,
    };
    let entries = (0..4)
        .map(|i| Announcement {
            id: id(i),
            round: i as u32,
            held_ms: [0, 127, 128, u32::MAX][i as usize],
        })
        .collect();
    [
        Message::Gossip(gossip),
        Message::IHave(IHave { entries }),
        Message::IHave(IHave::default()),
        Message::Graft(Graft { id: Some(id(3)) }),
        Message::Graft(Graft { id: None }),
        Message::Prune,
        Message::Digest(Digest {
            uptime_ms: 90_000,
            offers: vec![Offer {
                run: IdRun {
                    first: id(4),
                    len: 300,
                },
                age_ms: 1500,
                uncached: 20,
            }],
        }),
        Message::Want(IdRuns::default()),
        Message::Repair(Gossip {
            id: id(2),
            origin: 9,
            round: 3,
            heaviest: 1,
            payload: Bytes::from_static(b"again"),
            encoding: Default::default(),
            signature: None,
        }),
    ]
    .into_iter()
    .map(|message| Envelope { sender: 5, message })
    .collect()
}

#[test]
fn every_message_round_trips_with_exact_length() {
    for env in samples() {
        let bytes = env.to_bytes();
        assert_eq!(bytes.len(), env.encoded_len(), "{env:?}");
        assert_eq!(Envelope::decode(&bytes, &LIMITS).unwrap(), env);
    }
}

#[test]
fn gossip_layout_is_as_documented() {
    let env = Envelope {
        sender: 5u64,
        message: Message::Gossip(Gossip {
            id: id(1),
            origin: 9u64,
            round: 1,
            heaviest: 0x0102_0304,
            payload: Bytes::from_static(b"x"),
            encoding: Default::default(),
            signature: None,
        }),
    };
    let bytes = env.to_bytes();
    assert_eq!(bytes[0], PLUMTREE_VERSION);
    assert_eq!(&bytes[1..9], &5u64.to_be_bytes());
    assert_eq!(bytes[9], KIND_GOSSIP);
    assert_eq!(&bytes[10..34], &id(1).to_bytes());
    assert_eq!(&bytes[34..42], &9u64.to_be_bytes());
    assert_eq!(&bytes[42..], &[1, 1, 2, 3, 4, 1, b'x']);
}

#[test]
fn ihave_runs_are_as_documented() {
    let at = |seq, round, held_ms| Announcement {
        id: id(seq),
        round,
        held_ms,
    };
    let env = Envelope {
        sender: 5u64,
        message: Message::IHave(IHave {
            entries: vec![
                at(1, 0, 300),
                at(2, 0, 200),
                at(3, 0, 100),
                at(7, 0, 0),
                at(8, 1, 5),
                at(9, 1, 5),
            ],
        }),
    };
    let bytes = env.to_bytes();
    let mut expected = vec![HELD_VERSION];
    expected.extend(5u64.to_be_bytes());
    expected.extend([KIND_IHAVE, 3]);
    // count = 2 * more + same: three held times, then one for a run of one, then one for two.
    let held: [&[u8]; 3] = [&[0xac, 0x02, 0xc8, 0x01, 0x64], &[0], &[5]];
    for ((seq, round, count), held) in [(1, 0, 4), (7, 0, 1), (8, 1, 3)].into_iter().zip(held) {
        expected.extend(id(seq).to_bytes());
        expected.extend([round, count]);
        expected.extend(held);
    }
    assert_eq!(&bytes[..], &expected[..]);
    let limits = DecodeLimits {
        max_announcements: 6,
        ..LIMITS
    };
    assert_eq!(Envelope::decode(&bytes, &limits), Ok(env));
}

#[test]
fn ihaves_of_earlier_versions_read_with_nothing_held() {
    // A version-3 IHave (from a node of an earlier release): runs without held times.
    let mut frame = vec![PLUMTREE_VERSION];
    frame.extend(5u64.to_be_bytes());
    frame.extend([KIND_IHAVE, 1]);
    frame.extend(id(1).to_bytes());
    frame.extend([0, 1]);
    let decoded = Envelope::<u64>::decode(&Bytes::from(frame.clone()), &LIMITS);
    let at = |seq| Announcement {
        id: id(seq),
        round: 0,
        held_ms: 0,
    };
    let expected = Message::IHave(IHave {
        entries: vec![at(1), at(2)],
    });
    assert_eq!(decoded.map(|e| e.message), Ok(expected));
    // The same bytes as version 5 lack the held times.
    frame[0] = HELD_VERSION;
    assert_eq!(
        Envelope::<u64>::decode(&Bytes::from(frame), &LIMITS),
        Err(DecodeError::Truncated)
    );
}

#[test]
fn rejects_what_the_encoder_never_writes() {
    let prune = Envelope::<u64> {
        sender: 5,
        message: Message::Prune,
    }
    .to_bytes();
    let mut bad = prune.to_vec();
    bad[0] = WIRE_VERSION + 1;
    assert_eq!(
        Envelope::<u64>::decode(&bad.into(), &LIMITS),
        Err(DecodeError::UnsupportedVersion(WIRE_VERSION + 1))
    );
    let mut bad = prune.to_vec();
    bad[0] = WIRE_VERSION;
    assert_eq!(
        Envelope::<u64>::decode(&bad.into(), &LIMITS),
        Err(DecodeError::TopicPrefix)
    );
    let mut bad = prune.to_vec();
    bad[9] = 77;
    assert_eq!(
        Envelope::<u64>::decode(&bad.into(), &LIMITS),
        Err(DecodeError::UnknownKind(77))
    );
    let mut bad = prune.to_vec();
    bad.push(0);
    assert_eq!(
        Envelope::<u64>::decode(&bad.into(), &LIMITS),
        Err(DecodeError::TrailingBytes(1))
    );

    let big = Envelope {
        sender: 5u64,
        message: Message::Gossip(Gossip {
            id: id(1),
            origin: 5,
            round: 0,
            heaviest: 0,
            payload: Bytes::from(vec![0; 1025]),
            encoding: Default::default(),
            signature: None,
        }),
    };
    assert_eq!(
        Envelope::<u64>::decode(&big.to_bytes(), &LIMITS),
        Err(DecodeError::PayloadTooLarge {
            len: 1025,
            max: 1024
        })
    );

    let entries = (0..5)
        .map(|i| Announcement {
            id: id(i),
            round: 0,
            held_ms: 0,
        })
        .collect();
    let many = Envelope::<u64> {
        sender: 5,
        message: Message::IHave(IHave { entries }),
    };
    assert_eq!(
        Envelope::<u64>::decode(&many.to_bytes(), &LIMITS),
        Err(DecodeError::TooManyAnnouncements { count: 5, max: 4 })
    );

    // One run of three from the last sequence number would wrap around.
    let run = |seq: u64, more: u8| {
        let mut frame = vec![HELD_VERSION];
        frame.extend(5u64.to_be_bytes());
        frame.extend([KIND_IHAVE, 1]);
        frame.extend(MessageId::new(1, 2, seq).to_bytes());
        frame.extend([0, more << 1 | 1, 0]); // one held time for the whole run
        Bytes::from(frame)
    };
    assert_eq!(
        Envelope::<u64>::decode(&run(u64::MAX - 1, 2), &LIMITS),
        Err(DecodeError::RunOverflow)
    );
    assert_eq!(
        Envelope::<u64>::decode(&run(1, 9), &LIMITS),
        Err(DecodeError::TooManyAnnouncements { count: 10, max: 4 })
    );
    assert!(Envelope::<u64>::decode(&run(u64::MAX - 1, 1), &LIMITS).is_ok());

    let graft = Envelope::<u64> {
        sender: 5,
        message: Message::Graft(Graft { id: None }),
    };
    let mut bad = graft.to_bytes().to_vec();
    bad[10] = 2;
    assert_eq!(
        Envelope::<u64>::decode(&bad.into(), &LIMITS),
        Err(DecodeError::InvalidFlag(2))
    );
}

#[test]
fn every_truncation_is_an_error() {
    for env in samples() {
        let bytes = env.to_bytes();
        for cut in 0..bytes.len() {
            assert!(
                Envelope::<u64>::decode(&bytes.slice(..cut), &LIMITS).is_err(),
                "cut {cut} of {env:?}"
            );
        }
    }
}

#[test]
fn huge_declared_ihave_count_does_not_allocate() {
    // A count within the limit but far beyond the bytes present fails before reserving.
    let limits = DecodeLimits {
        max_payload: 16,
        max_announcements: usize::MAX,
        max_runs: 4,
    };
    let mut buf = BytesMut::new();
    buf.put_u8(HELD_VERSION);
    5u64.encode(&mut buf);
    buf.put_u8(KIND_IHAVE);
    varint::put(&mut buf, crate::MAX_IHAVE_BATCH_SIZE as u64);
    assert_eq!(
        Envelope::<u64>::decode(&buf.freeze(), &limits),
        Err(DecodeError::Truncated)
    );

    // One run of 2^40 ids in 37 bytes: refused before expanding, whatever the limits say.
    let mut buf = BytesMut::new();
    buf.put_u8(HELD_VERSION);
    5u64.encode(&mut buf);
    buf.put_u8(KIND_IHAVE);
    varint::put(&mut buf, 1);
    buf.put_slice(&id(1).to_bytes());
    varint::put(&mut buf, 0);
    varint::put(&mut buf, 1 << 41); // 2^40 more, each with its own held time
    assert_eq!(
        Envelope::<u64>::decode(&buf.freeze(), &limits),
        Err(DecodeError::TooManyAnnouncements {
            count: (1 << 40) + 1,
            max: crate::MAX_IHAVE_BATCH_SIZE
        })
    );
}

#[test]
fn each_kind_is_written_in_the_oldest_version_that_has_its_form() {
    for env in samples() {
        let bytes = env.to_bytes();
        let version = match env.message {
            Message::Gossip(Gossip {
                encoding: Encoding::Lz4 { .. },
                ..
            })
            | Message::Repair(Gossip {
                encoding: Encoding::Lz4 { .. },
                ..
            }) => COMPRESSED_VERSION,
            Message::IHave(_) => HELD_VERSION,
            Message::Digest(_) | Message::Want(_) | Message::Repair(_) => ANTI_ENTROPY_VERSION,
            _ => PLUMTREE_VERSION,
        };
        assert_eq!(bytes[0], version, "{env:?}");
    }
    // An anti-entropy kind under version 3 is not a version-3 message.
    let mut digest = Envelope::<u64> {
        sender: 5,
        message: Message::Digest(Digest::default()),
    }
    .to_bytes()
    .to_vec();
    digest[0] = PLUMTREE_VERSION;
    assert_eq!(
        Envelope::<u64>::decode(&digest.into(), &LIMITS),
        Err(DecodeError::UnknownKind(KIND_DIGEST))
    );
}

#[test]
fn a_repair_is_a_two_part_frame_like_a_gossip() {
    let env = Envelope {
        sender: 5u64,
        message: Message::Repair(Gossip {
            id: id(1),
            origin: 9,
            round: 0,
            heaviest: 0,
            payload: Bytes::from(vec![7; 100]),
            encoding: Default::default(),
            signature: None,
        }),
    };
    let frame = env.encode_frame(&mut BytesMut::new());
    let (head, payload) = frame.clone().into_parts();
    assert_eq!(payload.len(), 100);
    assert_eq!(head.len() + 100, env.encoded_len());
    assert_eq!(Envelope::decode_frame(&frame, &LIMITS), Ok(env));
}

fn compressed(
    kind: fn(Gossip<u64>) -> Message<u64>,
    plain: u32,
    payload: &'static [u8],
) -> Envelope<u64> {
    Envelope {
        sender: 5,
        message: kind(Gossip {
            id: id(1),
            origin: 9,
            round: 1,
            heaviest: 0x0102_0304,
            payload: Bytes::from_static(payload),
            encoding: Encoding::Lz4 { len: plain },
            signature: None,
        }),
    }
}

#[test]
#[cfg(feature = "compression")]
fn a_compressed_payload_is_version_6_with_its_plain_length() {
    for (kind, byte) in [
        (Message::Gossip as fn(_) -> _, KIND_GOSSIP),
        (Message::Repair, KIND_REPAIR),
    ] {
        let env = compressed(kind, 300, b"xyz");
        let bytes = env.to_bytes();
        assert_eq!(bytes.len(), env.encoded_len());
        assert_eq!(bytes[0], COMPRESSED_VERSION);
        assert_eq!(bytes[9], byte);
        // round, heaviest, plain length 300 as a varint, then the three compressed bytes
        assert_eq!(
            &bytes[42..],
            &[1, 1, 2, 3, 4, 0xac, 0x02, 3, b'x', b'y', b'z']
        );
        let frame = env.encode_frame(&mut BytesMut::new());
        assert_eq!(frame.to_bytes(), bytes, "head and payload in two parts");
        assert_eq!(Envelope::decode_frame(&frame, &LIMITS), Ok(env.clone()));
        assert_eq!(Envelope::decode(&bytes, &LIMITS), Ok(env));
    }
}

#[test]
#[cfg(feature = "compression")]
fn a_small_frame_claiming_a_huge_payload_is_refused_by_length() {
    // 1 KiB of compressed bytes that claims to become 1 GiB.
    let bomb: &'static [u8] = Box::leak(vec![0x1f; 1024].into_boxed_slice());
    let limits = DecodeLimits {
        max_payload: 64 * 1024,
        ..LIMITS
    };
    let frame = compressed(Message::Gossip, 1 << 30, bomb).to_bytes();
    assert_eq!(
        Envelope::<u64>::decode(&frame, &limits),
        Err(DecodeError::PayloadTooLarge {
            len: 1 << 30,
            max: 64 * 1024
        })
    );
    // A compressed payload no shorter than its plain length is never written.
    let frame = compressed(Message::Gossip, 3, b"xyz").to_bytes();
    assert_eq!(
        Envelope::<u64>::decode(&frame, &LIMITS),
        Err(DecodeError::CompressedTooLong { len: 3, plain: 3 })
    );
}

#[test]
#[cfg(not(feature = "compression"))]
fn without_the_feature_a_compressed_payload_is_an_unsupported_version() {
    let frame = compressed(Message::Gossip, 300, b"xyz").to_bytes();
    assert_eq!(
        Envelope::<u64>::decode(&frame, &LIMITS),
        Err(DecodeError::UnsupportedVersion(COMPRESSED_VERSION))
    );
}
