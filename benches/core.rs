//! The protocol core's hot paths: `cargo bench --bench core`.
//!
//! - `new_gossip`: a fresh payload from an eager peer: dedup, cache, delivery event, push to the
//!   other 3 eager neighbours and an announcement queued for each of 6 lazy ones.
//! - `duplicate_gossip`: a payload already delivered: dedup hit and a Prune.
//! - `codec_1k`: encode and decode one Gossip envelope with a 1 KiB payload.
//! - `broadcast_{plain,signed}_256`: a local broadcast of 256 bytes, without and with origin
//!   keys (signing it).
//! - `new_gossip_signed_{256,4096}`: `new_gossip` for a payload signed by its origin, checked
//!   before it is delivered and passed on (the signing origin's work is not timed).

use std::hint::black_box;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, criterion_group, criterion_main};
use memberlist_plumtree::message::{Gossip, Graft};
use memberlist_plumtree::{Envelope, Message, MessageId, Plumtree, PlumtreeConfig};

/// Node 0 with eager neighbours 1..=4 and lazy neighbours 5..=10.
fn node(now: Instant) -> Plumtree<u64> {
    let config = PlumtreeConfig::default()
        .with_rng_seed(Some(1))
        .with_eager_fanout(4)
        .with_lazy_fanout(6);
    let mut node = Plumtree::new(0u64, config).unwrap();
    node.add_peers(now, 1..=10);
    for p in 1..=10 {
        let message = if p <= 4 {
            Message::Graft(Graft { id: None })
        } else {
            Message::Prune
        };
        node.handle_message(now, p, message);
    }
    while node.poll_transmit().is_some() {}
    while node.poll_event().is_some() {}
    assert_eq!(node.eager_peers().count(), 4);
    node
}

fn gossip(seq: u64, payload: &Bytes) -> Message<u64> {
    Message::Gossip(Gossip {
        id: MessageId::new(99, 1, seq),
        origin: 99,
        round: 2,
        heaviest: 0,
        payload: payload.clone(),
        encoding: Default::default(),
        signature: None,
    })
}

fn bench_core(c: &mut Criterion) {
    let now = Instant::now();
    let payload = Bytes::from(vec![7u8; 256]);

    let mut n = node(now);
    let mut seq = 0;
    c.bench_function("new_gossip", |b| {
        b.iter(|| {
            seq += 1;
            n.handle_message(now, 1, gossip(seq, &payload));
            drain(&mut n);
        })
    });

    let mut n = node(now);
    n.handle_message(now, 1, gossip(1, &payload));
    while n.poll_transmit().is_some() {}
    while n.poll_event().is_some() {}
    c.bench_function("duplicate_gossip", |b| {
        b.iter(|| {
            n.handle_message(now, 2, gossip(1, &payload));
            drain(&mut n);
        })
    });

    #[cfg(feature = "signing")]
    signed(c, now);

    let limits = PlumtreeConfig::default().decode_limits();
    let env = Envelope {
        sender: 7u64,
        message: gossip(1, &Bytes::from(vec![1u8; 1024])),
    };
    let mut buf = BytesMut::with_capacity(2048);
    c.bench_function("codec_1k", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&env).encode(&mut buf);
            let frame = buf.split().freeze();
            black_box(Envelope::<u64>::decode(&frame, &limits).unwrap())
        })
    });
}

/// Drops every output of `node`.
fn drain(node: &mut Plumtree<u64>) {
    while let Some(t) = node.poll_transmit() {
        let _ = black_box(t);
    }
    while let Some(e) = node.poll_event() {
        black_box(e);
    }
}

#[cfg(feature = "signing")]
fn signed(c: &mut Criterion, now: Instant) {
    use criterion::BatchSize;
    use memberlist_plumtree::OriginKeys;

    let secret = |id: u64| [id as u8; 32];
    let keys = |id: u64| {
        let origin = OriginKeys::new(99u64, secret(99)).public_key();
        OriginKeys::new(id, secret(id))
            .with_origin(99, origin)
            .unwrap()
    };
    let payload = Bytes::from(vec![7u8; 256]);
    for (name, signing) in [
        ("broadcast_plain_256", false),
        ("broadcast_signed_256", true),
    ] {
        let mut n = node(now);
        if signing {
            n = n.with_origin_keys(keys(0)).unwrap();
        }
        c.bench_function(name, |b| {
            b.iter(|| {
                n.broadcast(now, payload.clone()).unwrap();
                drain(&mut n);
            })
        });
    }
    for len in [256, 4096] {
        let payload = Bytes::from(vec![7u8; len]);
        // The origin signs in the untimed setup: node 99, eager towards node 0.
        let mut origin = Plumtree::new(99u64, PlumtreeConfig::default())
            .and_then(|n| n.with_origin_keys(keys(99)))
            .unwrap();
        origin.add_peers(now, [0u64]);
        let mut n = node(now).with_origin_keys(keys(0)).unwrap();
        c.bench_function(&format!("new_gossip_signed_{len}"), |b| {
            b.iter_batched(
                || {
                    origin.broadcast(now, payload.clone()).unwrap();
                    let pushed = std::iter::from_fn(|| origin.poll_transmit())
                        .find_map(|t| matches!(t.message, Message::Gossip(_)).then_some(t.message));
                    while origin.poll_event().is_some() {}
                    pushed.expect("node 0 is the origin's eager neighbour")
                },
                |gossip| {
                    n.handle_message(now, 1, gossip);
                    drain(&mut n);
                },
                BatchSize::SmallInput,
            )
        });
        assert_eq!(n.stats().bad_signatures, 0, "every signature held");
    }
}

criterion_group!(benches, bench_core);
criterion_main!(benches);
