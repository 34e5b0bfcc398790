//! Compressed payloads: compressed once by the origin, forwarded and cached as they came,
//! delivered decompressed, and dropped (not forwarded) when they do not decompress.

use super::*;
use crate::message::Encoding;

fn text(len: usize) -> Bytes {
    let line = b"{\"node\":\"node-7\",\"level\":\"info\",\"msg\":\"lease renewed\"}\n";
    line.iter().copied().cycle().take(len).collect()
}

/// `node(t)` compressing what it broadcasts from 256 bytes on.
fn compressing_node(t: Instant) -> Plumtree<u64> {
    node_with(
        config().with_compress_min_size(Some(256)),
        &[1, 2],
        &[3, 4],
        t,
    )
}

#[test]
fn a_compressed_broadcast_travels_compressed_and_is_delivered_plain() {
    let t = Instant::now();
    let mut origin = compressing_node(t);
    let id = origin.broadcast(t, text(4096)).unwrap();
    let (tx, ev) = drain(&mut origin);
    assert_eq!(
        delivered(&ev),
        [text(4096)],
        "the origin delivers its own bytes"
    );
    let out = pushed(&tx);
    assert_eq!(out.len(), 2);
    let wire = out[0].1.clone();
    assert_eq!(wire.encoding, Encoding::Lz4 { len: 4096 });
    assert!(wire.payload.len() < 1024, "{} bytes", wire.payload.len());
    assert_eq!(
        origin.cache_usage(),
        (1, wire.payload.len()),
        "cached compressed"
    );

    // A relay without compression configured delivers the plain bytes and forwards, caches
    // and answers grafts with the compressed ones.
    let mut relay = node(t);
    relay.handle_message(t, 1, Message::Gossip(wire.clone()));
    let (tx, ev) = drain(&mut relay);
    assert_eq!(delivered(&ev), [text(4096)]);
    let forwarded = pushed(&tx);
    assert_eq!(forwarded.len(), 1, "to the other eager neighbour");
    assert_eq!(forwarded[0].1.encoding, wire.encoding);
    assert_eq!(forwarded[0].1.payload, wire.payload);
    assert_eq!(relay.cache_usage(), (1, wire.payload.len()));
    relay.handle_message(t, 3, Message::Graft(Graft { id: Some(id) }));
    let (tx, _) = drain(&mut relay);
    let answer = pushed(&tx);
    assert_eq!(answer.len(), 1);
    assert_eq!(
        (answer[0].1.encoding, &answer[0].1.payload),
        (wire.encoding, &wire.payload)
    );
}

#[test]
fn short_or_incompressible_payloads_leave_as_they_are() {
    let t = Instant::now();
    let mut origin = compressing_node(t);
    let mut rng = fastrand::Rng::with_seed(3);
    let noise: Bytes = std::iter::repeat_with(|| rng.u8(..)).take(4096).collect();
    for payload in [text(255), noise] {
        origin.broadcast(t, payload.clone()).unwrap();
        let (tx, _) = drain(&mut origin);
        assert!(!pushed(&tx).is_empty(), "pushed to the eager neighbours");
        for (_, g) in pushed(&tx) {
            assert_eq!((g.encoding, &g.payload), (Encoding::Plain, &payload));
        }
    }
}

#[test]
fn a_payload_that_does_not_decompress_is_dropped_and_a_good_copy_still_delivers() {
    let t = Instant::now();
    let mut n = node(t);
    let bad = |payload: &'static [u8], len| {
        Message::Gossip(Gossip {
            id: id(1),
            origin: 77,
            round: 0,
            heaviest: u32::MAX,
            payload: Bytes::from_static(payload),
            encoding: Encoding::Lz4 { len },
            signature: None,
        })
    };
    // Junk, then a bomb: a few bytes that claim a gigabyte (refused by length, unallocated).
    n.handle_message(t, 1, bad(&[0xff; 16], 4096));
    n.handle_message(t, 2, bad(&[0x1f; 16], 1 << 30));
    let (tx, ev) = drain(&mut n);
    assert!(
        delivered(&ev).is_empty() && pushed(&tx).is_empty(),
        "nothing passed on"
    );
    assert_eq!(n.stats().invalid_messages, 2);
    assert_eq!(n.seen_len(), 0, "not marked seen");

    let mut origin = compressing_node(t);
    origin.broadcast(t, text(4096)).unwrap();
    let (tx, _) = drain(&mut origin);
    let mut good = pushed(&tx).remove(0).1;
    good.id = id(1);
    n.handle_message(t, 1, Message::Gossip(good));
    let (_, ev) = drain(&mut n);
    assert_eq!(delivered(&ev), [text(4096)]);
}
