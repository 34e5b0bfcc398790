//! Property tests: the codec round-trips and never panics; the core keeps its invariants and
//! bounds under arbitrary input.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use memberlist_plumtree::message::{
    Announcement, Digest, Gossip, Graft, IHave, IdRun, IdRuns, Offer, Signature,
};
use memberlist_plumtree::{
    DecodeLimits, Encoding, Envelope, Event, Message, MessageId, Plumtree, PlumtreeConfig,
};
use proptest::prelude::*;

const LIMITS: DecodeLimits = DecodeLimits {
    max_payload: 4096,
    max_announcements: 16,
    max_runs: 8,
};

fn message_id() -> impl Strategy<Value = MessageId> {
    (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(o, i, s)| MessageId::new(o, i, s))
}

fn message<I: Arbitrary + Clone + std::fmt::Debug + 'static>() -> impl Strategy<Value = Message<I>>
{
    prop_oneof![
        (
            message_id(),
            any::<I>(),
            (any::<u32>(), any::<u32>()),
            prop::collection::vec(any::<u8>(), 0..4096),
            prop::option::of(any::<prop::sample::Index>()),
            prop::option::of((any::<[u8; 32]>(), any::<[u8; 32]>()))
        )
            .prop_map(
                |(id, origin, (round, heaviest), payload, compressed, signed)| {
                    // A compressed payload (as the wire has it) is shorter than its plain
                    // length, which is at most the limit.
                    let encoding = match compressed {
                        Some(plain) if cfg!(feature = "compression") => {
                            let room = LIMITS.max_payload - payload.len();
                            let len = payload.len() + 1 + plain.index(room);
                            Encoding::Lz4 { len: len as u32 }
                        }
                        _ => Encoding::Plain,
                    };
                    Message::Gossip(Gossip {
                        id,
                        origin,
                        round,
                        heaviest,
                        payload: payload.into(),
                        encoding,
                        signature: signed.map(|(a, b)| {
                            let mut bytes = [0; Signature::LEN];
                            bytes[..32].copy_from_slice(&a);
                            bytes[32..].copy_from_slice(&b);
                            Signature::from_bytes(bytes)
                        }),
                    })
                }
            ),
        prop::collection::vec((message_id(), any::<u32>(), any::<u32>()), 0..=16).prop_map(|e| {
            Message::IHave(IHave {
                entries: e
                    .into_iter()
                    .map(|(id, round, held_ms)| Announcement { id, round, held_ms })
                    .collect(),
            })
        }),
        // Announcements as a node sends them: mostly the next sequence number of one origin, so
        // that the wire's runs form and break on a gap or another round.
        (
            message_id(),
            prop::collection::vec((0u64..3, 0u32..2, 0u32..3), 0..=16)
        )
            .prop_map(|(first, steps)| {
                let mut seq = first.seq();
                let entries = steps
                    .into_iter()
                    .map(|(step, round, held_ms)| {
                        seq = seq.wrapping_add(step);
                        Announcement {
                            id: MessageId::new(first.origin(), first.incarnation(), seq),
                            round,
                            held_ms,
                        }
                    })
                    .collect();
                Message::IHave(IHave { entries })
            }),
        prop::option::of(message_id()).prop_map(|id| Message::Graft(Graft { id })),
        Just(Message::Prune),
        (runs(), any::<bool>(), any::<u64>()).prop_map(|(runs, digest, age_ms)| if digest {
            Message::Digest(as_digest(runs, age_ms))
        } else {
            Message::Want(runs)
        }),
        (
            message_id(),
            any::<I>(),
            prop::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(id, origin, payload)| Message::Repair(Gossip {
                id,
                origin,
                round: 1,
                heaviest: 0,
                payload: payload.into(),
                encoding: Default::default(),
                signature: None,
            })),
    ]
}

/// `runs` offered in a digest, each `age_ms` old, from a sender as old as the first.
fn as_digest(runs: IdRuns, age_ms: u64) -> Digest {
    Digest {
        uptime_ms: age_ms,
        offers: runs
            .runs
            .into_iter()
            .map(|run| Offer {
                run,
                age_ms,
                uncached: age_ms % 7,
            })
            .collect(),
    }
}

/// Runs of ids, any length that does not pass the last sequence number.
fn runs() -> impl Strategy<Value = IdRuns> {
    prop::collection::vec((message_id(), 1u64..1_000_000), 0..=8).prop_map(|runs| IdRuns {
        runs: runs
            .into_iter()
            .map(|(first, len)| IdRun {
                first: MessageId::new(first.origin(), first.incarnation(), first.seq() / 2),
                len,
            })
            .collect(),
    })
}

proptest! {
    #[test]
    fn envelopes_round_trip_u64(sender in any::<u64>(), message in message::<u64>()) {
        let env = Envelope { sender, message };
        let bytes = env.to_bytes();
        prop_assert_eq!(bytes.len(), env.encoded_len());
        prop_assert_eq!(Envelope::decode(&bytes, &LIMITS), Ok(env));
    }

    #[test]
    fn envelopes_round_trip_string(sender in "[a-z0-9.-]{0,40}", message in message::<u32>()) {
        let env = Envelope { sender, message: message_with_string_origin(message) };
        prop_assert_eq!(Envelope::decode(&env.to_bytes(), &LIMITS), Ok(env));
    }

    #[test]
    fn decoding_random_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let frame = Bytes::from(bytes);
        let _ = Envelope::<u64>::decode(&frame, &LIMITS);
        let _ = Envelope::<String>::decode(&frame, &LIMITS);
        let _ = Envelope::<std::net::SocketAddr>::decode(&frame, &LIMITS);
    }

    #[test]
    fn decoding_mutated_frames_never_panics(
        message in message::<u64>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = BytesMut::new();
        Envelope { sender: 1u64, message }.encode(&mut bytes);
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let len = cut.index(bytes.len() + 1);
        let _ = Envelope::<u64>::decode(&bytes.freeze().slice(..len), &LIMITS);
    }
}

fn message_with_string_origin(m: Message<u32>) -> Message<String> {
    match m {
        Message::Gossip(g) => Message::Gossip(Gossip {
            id: g.id,
            origin: format!("node-{}", g.origin),
            round: g.round,
            heaviest: g.heaviest,
            payload: g.payload,
            encoding: g.encoding,
            signature: g.signature,
        }),
        Message::IHave(i) => Message::IHave(i),
        Message::Graft(g) => Message::Graft(g),
        Message::Prune => Message::Prune,
        Message::Digest(d) => Message::Digest(d),
        Message::Want(w) => Message::Want(w),
        Message::Repair(g) => Message::Repair(Gossip {
            id: g.id,
            origin: format!("node-{}", g.origin),
            round: g.round,
            heaviest: g.heaviest,
            payload: g.payload,
            encoding: Default::default(),
            signature: None,
        }),
    }
}

/// One input to a core under test. Peers are 1..=12; ids come from a small space so that
/// duplicates, known and unknown ids all occur.
#[derive(Clone, Debug)]
enum Op {
    Add(u64),
    Remove(u64),
    Broadcast(usize),
    Receive(u64, Message<u64>),
    Advance(u64),
}

fn small_id() -> impl Strategy<Value = MessageId> {
    (0u64..3, 0u64..40).prop_map(|(o, s)| MessageId::new(o, 0, s))
}

fn op() -> impl Strategy<Value = Op> {
    let peer = 0u64..=12; // 0 is the local node: it must be ignored
    prop_oneof![
        peer.clone().prop_map(Op::Add),
        peer.clone().prop_map(Op::Remove),
        (0usize..300).prop_map(Op::Broadcast),
        (
            peer.clone(),
            small_id(),
            0u32..10,
            any::<u32>(),
            0usize..300
        )
            .prop_map(|(p, id, round, heaviest, len)| {
                Op::Receive(
                    p,
                    Message::Gossip(Gossip {
                        id,
                        origin: 99,
                        round,
                        heaviest,
                        payload: vec![0; len].into(),
                        encoding: Default::default(),
                        signature: None,
                    }),
                )
            }),
        (
            peer.clone(),
            prop::collection::vec((small_id(), 0u32..10, 0u32..2_000), 0..6)
        )
            .prop_map(|(p, e)| Op::Receive(
                p,
                Message::IHave(IHave {
                    entries: e
                        .into_iter()
                        .map(|(id, round, held_ms)| Announcement { id, round, held_ms })
                        .collect()
                })
            )),
        (peer.clone(), prop::option::of(small_id()))
            .prop_map(|(p, id)| Op::Receive(p, Message::Graft(Graft { id }))),
        peer.clone().prop_map(|p| Op::Receive(p, Message::Prune)),
        // Forged anti-entropy: runs of any length over the small id space and far beyond it.
        (peer.clone(), small_runs(), any::<bool>(), 0u64..5000).prop_map(
            |(p, runs, digest, age)| Op::Receive(
                p,
                if digest {
                    Message::Digest(as_digest(runs, age))
                } else {
                    Message::Want(runs)
                }
            )
        ),
        (peer, small_id(), 0usize..300).prop_map(|(p, id, len)| Op::Receive(
            p,
            Message::Repair(Gossip {
                id,
                origin: 99,
                round: 2,
                heaviest: 0,
                payload: vec![0; len].into(),
                encoding: Default::default(),
                signature: None,
            })
        )),
        (0u64..2000).prop_map(Op::Advance),
    ]
}

fn small_runs() -> impl Strategy<Value = IdRuns> {
    prop::collection::vec((small_id(), 1u64..100_000), 0..6).prop_map(|runs| IdRuns {
        runs: runs
            .into_iter()
            .map(|(first, len)| IdRun { first, len })
            .collect(),
    })
}

fn small_config() -> PlumtreeConfig {
    PlumtreeConfig::default()
        .with_rng_seed(Some(3))
        .with_eager_fanout(2)
        .with_lazy_fanout(3)
        .with_max_peers(Some(6))
        .with_ihave_batch_size(4)
        .with_message_cache_max_size(8)
        .with_message_cache_max_bytes(1000)
        .with_seen_max_size(30)
        .with_max_missing(5)
        .with_max_announcers(2)
        .with_message_cache_ttl(Duration::from_secs(2))
        .with_seen_ttl(Duration::from_secs(3))
        .with_anti_entropy_max_runs(4)
        .with_anti_entropy_batch(5)
        .with_anti_entropy_max_origins(3)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn core_invariants_hold_under_any_input(ops in prop::collection::vec(op(), 1..200)) {
        let config = small_config();
        let mut node = Plumtree::new(0u64, config.clone()).unwrap();
        let mut now = Instant::now();
        for op in ops {
            match op {
                Op::Add(p) => { node.add_peer(now, p); }
                Op::Remove(p) => { node.remove_peer(now, &p); }
                Op::Broadcast(len) => { let _ = node.broadcast(now, vec![1; len]); }
                Op::Receive(p, m) => node.handle_message(now, p, m),
                Op::Advance(ms) => {
                    now += Duration::from_millis(ms);
                    node.handle_timeout(now);
                }
            }
            let mut repairs = 0;
            while let Some(t) = node.poll_transmit() {
                prop_assert_ne!(t.to, 0, "never sends to itself");
                // The runtime spawns a send task per addressee: only members may be one.
                prop_assert!(node.is_member(&t.to), "{:?} is not a member", t.to);
                match &t.message {
                    Message::Repair(_) => repairs += 1,
                    Message::Digest(digest) => {
                        prop_assert!(digest.offers.len() <= config.anti_entropy_max_runs);
                    }
                    Message::Want(runs) => {
                        prop_assert!(runs.runs.len() <= config.anti_entropy_max_runs);
                        let ids: u64 = runs.runs.iter().map(|r| r.len).sum();
                        prop_assert!(ids <= config.anti_entropy_batch as u64);
                    }
                    _ => {}
                }
            }
            // A forged request makes a node send at most one batch.
            prop_assert!(repairs <= config.anti_entropy_batch);
            while node.poll_event().is_some() {}
            let eager: HashSet<u64> = node.eager_peers().copied().collect();
            let lazy: HashSet<u64> = node.lazy_peers().copied().collect();
            let members: HashSet<u64> = node.members().copied().collect();
            prop_assert!(eager.is_disjoint(&lazy));
            prop_assert!(!eager.contains(&0) && !lazy.contains(&0) && !members.contains(&0));
            prop_assert!(eager.is_subset(&members) && lazy.is_subset(&members));
            prop_assert!(eager.len() + lazy.len() <= 6);
            let (cached, bytes) = node.cache_usage();
            prop_assert!(cached <= config.message_cache_max_size);
            prop_assert!(bytes <= config.message_cache_max_bytes);
            prop_assert!(node.seen_len() <= config.seen_max_size);
            prop_assert!(node.missing_len() <= config.max_missing);
            prop_assert!(node.origins_len() <= config.anti_entropy_max_origins);
        }
    }

    #[test]
    fn each_id_is_delivered_at_most_once_while_remembered(
        copies in prop::collection::vec((1u64..6, 0u64..20), 1..300)
    ) {
        let mut node = Plumtree::new(0u64, PlumtreeConfig::default().with_rng_seed(Some(1))).unwrap();
        let now = Instant::now();
        node.add_peers(now, 1..6);
        let mut delivered = HashSet::new();
        for (peer, seq) in copies {
            let id = MessageId::new(9, 9, seq);
            node.handle_message(now, peer, Message::Gossip(Gossip { id, origin: 9, round: 0, heaviest: 0, payload: Bytes::new(), encoding: Default::default(), signature: None }));
            while node.poll_transmit().is_some() {}
            while let Some(e) = node.poll_event() {
                if let Event::Deliver(d) = e {
                    prop_assert!(delivered.insert(d.id), "{} delivered twice", d.id);
                }
            }
        }
    }
}

/// A single peer floods unique ids: memory stays within the configured bounds.
#[test]
fn floods_from_one_peer_stay_within_bounds() {
    let config = small_config();
    let mut node = Plumtree::new(0u64, config.clone()).unwrap();
    let mut now = Instant::now();
    node.add_peers(now, 1..6);
    for seq in 0..20_000u64 {
        let id = MessageId::new(5, 5, seq);
        let ihave = IHave {
            entries: vec![Announcement {
                id: MessageId::new(6, 6, seq),
                round: 0,
                held_ms: 0,
            }],
        };
        node.handle_message(now, 1, Message::IHave(ihave));
        node.handle_message(
            now,
            1,
            Message::Gossip(Gossip {
                id,
                origin: 5,
                round: 0,
                heaviest: 0,
                payload: vec![0; 100].into(),
                encoding: Default::default(),
                signature: None,
            }),
        );
        node.handle_message(
            now,
            1,
            Message::Graft(Graft {
                id: Some(MessageId::new(7, 7, seq)),
            }),
        );
        if seq % 1000 == 0 {
            now += Duration::from_millis(10);
            node.handle_timeout(now);
        }
        while node.poll_transmit().is_some() {}
        while node.poll_event().is_some() {}
    }
    let (cached, bytes) = node.cache_usage();
    assert!(cached <= config.message_cache_max_size && bytes <= config.message_cache_max_bytes);
    assert!(node.seen_len() <= config.seen_max_size);
    // Announcements wait for their graft timer in a queue of max_missing * max_announcers;
    // everything past that was dropped.
    let waiting = (config.max_missing * config.max_announcers) as u64;
    assert_eq!(node.stats().announcements_dropped, 20_000 - waiting);
    // Once due, the unanswered ones become missing entries, up to max_missing.
    node.handle_timeout(now + config.graft_timeout);
    assert_eq!(node.missing_len(), config.max_missing);
    assert_eq!(
        node.stats().announcements_dropped,
        20_000 - config.max_missing as u64
    );
}

#[cfg(feature = "memberlist")]
mod node_meta {
    use bytes::Bytes;
    use memberlist_plumtree::NodeMeta;
    use proptest::prelude::*;

    proptest! {
        /// Metadata comes from other nodes: any bytes decode or fail, never panic.
        #[test]
        fn decoding_random_metadata_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = NodeMeta::decode(&bytes);
        }

        #[test]
        fn metadata_round_trips(
            addr in proptest::option::of(any::<std::net::SocketAddr>()),
            topics in prop::collection::vec(1u64.., 0..20),
            app in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let topics = topics.into_iter().map(memberlist_plumtree::TopicId::new).collect();
            let meta = NodeMeta { transport_addr: addr, topics, app: Bytes::from(app) };
            // IPv6 flow labels and scope ids mean nothing on another host: not published.
            let published = addr.map(|a| std::net::SocketAddr::new(a.ip(), a.port()));
            let expected = NodeMeta { transport_addr: published, ..meta.clone() };
            prop_assert_eq!(NodeMeta::decode(&meta.encode()), Ok(expected));
        }
    }
}
