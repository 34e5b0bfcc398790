//! Signed origins: the origin signs, every node with origin keys checks before it delivers or
//! passes a payload on, nodes without keys relay the signature as it came.

use super::*;
use crate::message::{Encoding, Envelope};
use crate::proto::signing::OriginKeys;

/// Keys of node `id`, knowing the public keys of nodes 0 to 9 and of origin 77.
fn keys(id: u64) -> OriginKeys<u64> {
    let secret = |n: u64| [n as u8 + 1; 32];
    (0..10)
        .chain([77])
        .fold(OriginKeys::new(id, secret(id)), |keys, n| {
            let public = OriginKeys::new(n, secret(n)).public_key();
            keys.with_origin(n, public).expect("a valid key")
        })
}

/// Node `id` with keys, members 0 to 4, 0 and 1 among its eager neighbours.
fn checking_node(id: u64, t: Instant) -> Plumtree<u64> {
    let mut n = Plumtree::new(id, config())
        .and_then(|n| n.with_origin_keys(keys(id)))
        .unwrap();
    n.add_peers(t, 0..5);
    for p in [0, 1] {
        n.handle_message(t, p, Message::Graft(Graft { id: None }));
    }
    drain(&mut n);
    n
}

/// A signed broadcast of node 0, as it leaves, after a trip through the codec.
fn signed_broadcast(t: Instant) -> Gossip<u64> {
    let mut origin = node_with(config(), &[1, 2], &[3, 4], t)
        .with_origin_keys(keys(ME))
        .unwrap();
    origin.broadcast(t, &b"hello"[..]).unwrap();
    let (tx, _) = drain(&mut origin);
    let gossip = pushed(&tx).remove(0).1;
    assert!(gossip.signature.is_some(), "signed by its origin");
    let frame = Envelope {
        sender: ME,
        message: Message::Gossip(gossip.clone()),
    }
    .to_bytes();
    let limits = PlumtreeConfig::default().decode_limits();
    assert_eq!(
        Envelope::decode(&frame, &limits).map(|e| e.message),
        Ok(Message::Gossip(gossip.clone())),
        "the signature travels"
    );
    gossip
}

#[test]
fn an_altered_or_misattributed_payload_is_dropped_and_the_genuine_one_delivered() {
    let t = Instant::now();
    let genuine = signed_broadcast(t);
    let mut n = checking_node(9, t);
    let forged = [
        Gossip {
            payload: Bytes::from_static(b"hellO"),
            ..genuine.clone()
        },
        Gossip {
            origin: 1,
            ..genuine.clone()
        },
        Gossip {
            encoding: Encoding::Lz4 { len: 9 },
            ..genuine.clone()
        },
        Gossip {
            signature: None,
            ..genuine.clone()
        },
    ];
    for gossip in forged {
        n.handle_message(t, 1, Message::Gossip(gossip));
    }
    let (tx, ev) = drain(&mut n);
    assert!(
        delivered(&ev).is_empty() && pushed(&tx).is_empty(),
        "nothing passed on"
    );
    assert_eq!(n.stats().bad_signatures, 4);
    assert_eq!(
        n.seen_len(),
        0,
        "not marked seen: the genuine copy still gets in"
    );

    n.handle_message(t, ME, Message::Gossip(genuine.clone()));
    let (tx, ev) = drain(&mut n);
    assert_eq!(delivered(&ev), [Bytes::from_static(b"hello")]);
    let on: Vec<_> = pushed(&tx).into_iter().map(|(_, g)| g).collect();
    assert!(!on.is_empty(), "pushed to the other eager neighbours");
    assert!(
        on.iter().all(|g| g.signature == genuine.signature),
        "passed on with its signature"
    );

    // A replay is a duplicate, not a new delivery.
    n.handle_message(t, 1, Message::Gossip(genuine));
    let (_, ev) = drain(&mut n);
    assert!(delivered(&ev).is_empty());
    assert_eq!(n.stats().duplicates, 1);
}

#[test]
fn a_node_without_keys_relays_the_signature_and_answers_grafts_with_it() {
    let t = Instant::now();
    let genuine = signed_broadcast(t);
    let mut relay = node(t);
    relay.handle_message(t, 1, Message::Gossip(genuine.clone()));
    let (tx, ev) = drain(&mut relay);
    assert_eq!(delivered(&ev).len(), 1, "it does not check");
    assert_eq!(pushed(&tx)[0].1.signature, genuine.signature);
    relay.handle_message(
        t,
        3,
        Message::Graft(Graft {
            id: Some(genuine.id),
        }),
    );
    let (tx, _) = drain(&mut relay);
    assert_eq!(pushed(&tx)[0].1.signature, genuine.signature);

    // The next checking node accepts what the relay passed on.
    let mut n = checking_node(9, t);
    n.handle_message(t, 1, Message::Gossip(pushed(&tx).remove(0).1));
    assert_eq!(delivered(&drain(&mut n).1).len(), 1);
}

#[test]
fn keys_of_another_node_are_refused() {
    let core = Plumtree::new(ME, config()).unwrap();
    assert!(matches!(
        core.with_origin_keys(keys(5)),
        Err(crate::ConfigError::Inconsistent(_))
    ));
}
