//! One test per protocol rule, asserting the exact outputs of a single core.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::cycle::link_weight;
use super::{Event, PeerRole, Plumtree, Transmit};
use crate::PlumtreeConfig;
use crate::message::{Announcement, Gossip, Graft, IHave, Message, MessageId};

mod admission;
mod anti_entropy;
#[cfg(feature = "compression")]
mod compression;
mod prune;
mod repair;
#[cfg(feature = "signing")]
mod signing;

const ME: u64 = 0;

/// Anti-entropy off: its timer would interleave with the timers these tests step through; it
/// has tests of its own (anti_entropy.rs).
fn config() -> PlumtreeConfig {
    PlumtreeConfig::default()
        .with_rng_seed(Some(1))
        .with_eager_fanout(2)
        .with_lazy_fanout(2)
        .with_anti_entropy_interval(Duration::ZERO)
}

/// Node 0 with neighbours `eager` and `lazy` in exactly those roles, outputs drained.
fn node_with(config: PlumtreeConfig, eager: &[u64], lazy: &[u64], t: Instant) -> Plumtree<u64> {
    let mut node = Plumtree::new(ME, config).unwrap();
    node.add_peers(t, eager.iter().chain(lazy).copied());
    for &p in eager {
        node.handle_message(t, p, Message::Graft(Graft { id: None }));
    }
    for &p in lazy {
        node.handle_message(t, p, Message::Prune);
    }
    drain(&mut node);
    assert_eq!(node.eager_peers().copied().collect::<Vec<_>>(), eager);
    assert_eq!(node.lazy_peers().copied().collect::<Vec<_>>(), lazy);
    node
}

fn node(t: Instant) -> Plumtree<u64> {
    node_with(config(), &[1, 2], &[3, 4], t)
}

fn drain(node: &mut Plumtree<u64>) -> (Vec<Transmit<u64>>, Vec<Event<u64>>) {
    (
        std::iter::from_fn(|| node.poll_transmit()).collect(),
        std::iter::from_fn(|| node.poll_event()).collect(),
    )
}

fn id(seq: u64) -> MessageId {
    MessageId::new(77, 1, seq)
}

/// A payload after a path heavier than any link, so the cycle rule never prunes on it.
fn gossip(seq: u64, round: u32) -> Message<u64> {
    weighed_gossip(seq, round, u32::MAX)
}

fn weighed_gossip(seq: u64, round: u32, heaviest: u32) -> Message<u64> {
    Message::Gossip(Gossip {
        id: id(seq),
        origin: 77,
        round,
        heaviest,
        payload: Bytes::from_static(b"p"),
        encoding: Default::default(),
        signature: None,
    })
}

fn ihave(seqs: &[(u64, u32)]) -> Message<u64> {
    held_ihave(seqs, 0)
}

/// An IHave whose announcements each waited `held_ms` at the sender.
fn held_ihave(seqs: &[(u64, u32)], held_ms: u32) -> Message<u64> {
    Message::IHave(IHave {
        entries: seqs
            .iter()
            .map(|&(s, round)| Announcement {
                id: id(s),
                round,
                held_ms,
            })
            .collect(),
    })
}

fn sent(transmits: &[Transmit<u64>]) -> Vec<(u64, &'static str)> {
    transmits
        .iter()
        .map(|t| (t.to, t.message.kind().as_str()))
        .collect()
}

/// The payloads pushed, with their addressees.
#[cfg(any(feature = "compression", feature = "signing"))]
fn pushed(transmits: &[Transmit<u64>]) -> Vec<(u64, Gossip<u64>)> {
    transmits
        .iter()
        .filter_map(|t| match &t.message {
            Message::Gossip(g) => Some((t.to, g.clone())),
            _ => None,
        })
        .collect()
}

/// No Graft or Prune among `transmits`: no link changed role.
fn no_link_changes(transmits: &[Transmit<u64>]) -> bool {
    transmits
        .iter()
        .all(|t| !matches!(t.message, Message::Prune | Message::Graft(_)))
}

/// The payloads delivered, as the application gets them.
#[cfg(any(feature = "compression", feature = "signing"))]
fn delivered(events: &[Event<u64>]) -> Vec<Bytes> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Deliver(d) => Some(d.payload.clone()),
            _ => None,
        })
        .collect()
}

fn deliveries(events: &[Event<u64>]) -> Vec<(MessageId, u32, Option<u64>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Deliver(d) => Some((d.id, d.hops, d.from)),
            _ => None,
        })
        .collect()
}

#[test]
fn new_gossip_is_delivered_pushed_to_eager_and_announced_to_lazy() {
    let t = Instant::now();
    let mut n = node(t);
    n.handle_message(t, 3, gossip(1, 4));
    let (tx, ev) = drain(&mut n);
    assert_eq!(
        deliveries(&ev),
        [(id(1), 5, Some(3))],
        "hop count is round + 1"
    );
    assert!(
        ev.contains(&Event::Promoted { peer: 3 }),
        "the sender becomes eager"
    );
    // Peer 3 was lazy, so it pushed before our earlier Prune reached it: graft it so that both
    // ends agree the link is eager. The payload goes to the other eager peers, not back.
    assert_eq!(
        tx[0],
        Transmit {
            to: 3,
            message: Message::Graft(Graft { id: None }),
            urgent: true
        }
    );
    assert_eq!(
        sent(&tx[1..]),
        [(1, "gossip"), (2, "gossip")],
        "not back to the sender"
    );
    let Message::Gossip(g) = &tx[1].message else {
        unreachable!()
    };
    assert_eq!(g.round, 5, "forwarded with our hop count");
    assert!(
        !tx[1].urgent && !tx[2].urgent,
        "pushes may wait behind each other"
    );

    // The announcement to lazy peer 4 waits for the IHave interval.
    assert_eq!(n.poll_timeout(), Some(t + config().ihave_interval));
    n.handle_timeout(t + config().ihave_interval);
    let (tx, _) = drain(&mut n);
    assert_eq!(sent(&tx), [(4, "ihave")]);
    assert_eq!(
        tx[0].message,
        held_ihave(&[(1, 5)], 100),
        "it waited 100 ms"
    );
}

#[test]
fn graft_makes_the_sender_eager_and_returns_the_cached_payload() {
    let t = Instant::now();
    let mut n = node(t);
    n.handle_message(t, 1, gossip(1, 2));
    drain(&mut n);
    n.handle_message(t, 4, Message::Graft(Graft { id: Some(id(1)) }));
    let (tx, ev) = drain(&mut n);
    assert_eq!(ev, [Event::Promoted { peer: 4 }]);
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0].to, 4);
    let Message::Gossip(g) = &tx[0].message else {
        panic!("{tx:?}")
    };
    assert_eq!((g.id, g.round, &g.payload[..]), (id(1), 3, &b"p"[..]));
    assert!(tx[0].urgent, "a repair skips the pushed payloads");

    n.handle_message(t, 3, Message::Graft(Graft { id: Some(id(2)) }));
    let (tx, _) = drain(&mut n);
    assert!(tx.is_empty(), "nothing cached to send");
    assert_eq!(n.stats().grafts_unanswered, 1);
}

#[test]
fn prune_makes_the_sender_lazy() {
    let t = Instant::now();
    let mut n = node(t);
    n.handle_message(t, 1, Message::Prune);
    assert_eq!(drain(&mut n).1, [Event::Demoted { peer: 1 }]);
    assert_eq!(n.eager_peers().copied().collect::<Vec<_>>(), [2]);
}

#[test]
fn local_broadcast_is_delivered_locally_with_hop_zero_and_round_zero_on_the_wire() {
    let t = Instant::now();
    let mut n = node(t);
    let mid = n.broadcast(t, &b"x"[..]).unwrap();
    assert_eq!((mid.origin(), mid.seq()), (ME, 1));
    let (tx, ev) = drain(&mut n);
    assert_eq!(deliveries(&ev), [(mid, 0, None)]);
    assert_eq!(sent(&tx), [(1, "gossip"), (2, "gossip")]);
    let Message::Gossip(g) = &tx[0].message else {
        unreachable!()
    };
    assert_eq!(g.round, 0);
    assert_eq!(n.broadcast(t, &b"y"[..]).unwrap().seq(), 2);
}

#[test]
fn oversize_broadcast_is_refused() {
    let t = Instant::now();
    let mut n = node(t);
    let big = vec![0; config().max_message_size + 1];
    assert!(n.broadcast(t, big).is_err());
    assert!(drain(&mut n).0.is_empty());
}

#[test]
fn optimization_swaps_a_long_path_for_a_short_one() {
    let t = Instant::now();
    let mut n = node_with(config().with_optimization_threshold(3), &[1, 2], &[3, 4], t);
    n.handle_message(t, 4, ihave(&[(5, 2)]));
    n.handle_message(t, 3, ihave(&[(5, 1)])); // the lowest round of those waiting
    n.handle_message(t, 1, gossip(5, 4)); // 4 - 1 >= 3
    let (tx, ev) = drain(&mut n);
    assert!(tx.contains(&Transmit {
        to: 3,
        message: Message::Graft(Graft { id: None }),
        urgent: true
    }));
    assert!(tx.contains(&Transmit {
        to: 1,
        message: Message::Prune,
        urgent: true
    }));
    assert!(ev.contains(&Event::Promoted { peer: 3 }) && ev.contains(&Event::Demoted { peer: 1 }));
    assert!(
        !tx.iter()
            .any(|t| t.to == 4 && matches!(t.message, Message::Graft(_))),
        "only the closest announcer is grafted: {tx:?}"
    );

    n.handle_message(t, 4, ihave(&[(6, 2)]));
    n.handle_message(t, 2, gossip(6, 4)); // 4 - 2 < 3: keep the tree
    let (tx, _) = drain(&mut n);
    assert!(no_link_changes(&tx), "{tx:?}");
}

#[test]
fn optimization_never_swaps_to_an_announcer_that_left() {
    let t = Instant::now();
    let mut n = node_with(config().with_optimization_threshold(3), &[1, 2], &[3, 4], t);
    n.handle_message(t, 3, ihave(&[(5, 1)]));
    assert!(n.remove_peer(t, &3));
    drain(&mut n);
    n.handle_message(t, 1, gossip(5, 4)); // 4 - 1 >= 3, but 3 is gone
    let (tx, _) = drain(&mut n);
    assert!(no_link_changes(&tx), "{tx:?}");
}

#[test]
fn failed_eager_peer_is_replaced_by_a_grafted_lazy_peer() {
    let t = Instant::now();
    let mut n = node_with(config().with_lazy_fanout(3), &[1, 2], &[3, 4], t);
    n.add_peer(t, 5); // becomes the third lazy neighbour
    n.handle_message(t, 1, ihave(&[(9, 0)]));
    drain(&mut n);
    assert!(n.remove_peer(t, &1));
    let (tx, ev) = drain(&mut n);
    assert_eq!(ev[0], Event::NeighbourRemoved { peer: 1 });
    let promoted = match &ev[1] {
        Event::Promoted { peer } => *peer,
        other => panic!("{other:?}"),
    };
    assert!([3, 4, 5].contains(&promoted));
    assert_eq!(
        tx,
        [Transmit {
            to: promoted,
            message: Message::Graft(Graft { id: None }),
            urgent: true
        }]
    );
    assert_eq!(n.eager_peers().count(), 2);
    assert!(!n.remove_peer(t, &1), "already gone");
    // Its announcement went with it: nothing is grafted from a dead peer.
    n.handle_timeout(t + Duration::from_secs(1));
    assert!(drain(&mut n).0.is_empty());
    assert_eq!(n.missing_len(), 0);
    assert_eq!(n.poll_timeout(), None);
}

#[test]
fn losing_the_last_eager_link_grafts_a_lazy_neighbour() {
    let t = Instant::now();
    let mut n = node_with(config(), &[1], &[3, 4], t);
    n.handle_message(t, 1, Message::Prune);
    let (tx, ev) = drain(&mut n);
    assert_eq!(ev[0], Event::Demoted { peer: 1 });
    let Event::Promoted { peer } = ev[1] else {
        panic!("{ev:?}")
    };
    assert!(peer == 3 || peer == 4, "not the peer that just pruned us");
    assert_eq!(
        tx,
        [Transmit {
            to: peer,
            message: Message::Graft(Graft { id: None }),
            urgent: true
        }]
    );
}

#[test]
fn lost_neighbours_are_replaced_from_members_as_lazy() {
    let t = Instant::now();
    let mut n = node(t);
    n.add_peer(t, 9);
    assert_eq!(n.peer_role(&9), None, "neighbour set already full");
    n.remove_peer(t, &3);
    assert_eq!(n.peer_role(&9), Some(PeerRole::Lazy));
}

#[test]
fn full_ihave_batches_leave_at_once() {
    let t = Instant::now();
    let c = config().with_ihave_batch_size(2);
    let mut n = node_with(c, &[1, 2], &[3, 4], t);
    n.handle_message(t, 1, gossip(1, 0));
    assert!(!sent(&drain(&mut n).0).contains(&(3, "ihave")));
    n.handle_message(t, 1, gossip(2, 0));
    let (tx, _) = drain(&mut n);
    assert!(tx.contains(&Transmit {
        to: 3,
        message: ihave(&[(1, 1), (2, 1)]),
        urgent: true
    }));
    assert!(tx.contains(&Transmit {
        to: 4,
        message: ihave(&[(1, 1), (2, 1)]),
        urgent: true
    }));
}

#[test]
fn max_peers_evicts_a_lazy_neighbour_for_an_eager_link() {
    let t = Instant::now();
    let c = config().with_max_peers(Some(4));
    let mut n = node_with(c, &[1, 2], &[3, 4], t);
    n.add_peer(t, 5);
    n.handle_message(t, 5, Message::Graft(Graft { id: None }));
    let (_, ev) = drain(&mut n);
    assert_eq!(n.peer_role(&5), Some(PeerRole::Eager));
    assert_eq!(n.eager_peers().count() + n.lazy_peers().count(), 4);
    assert!(
        matches!(ev[0], Event::NeighbourRemoved { peer: 3 | 4 }),
        "{ev:?}"
    );
}

#[test]
fn messages_from_self_and_non_members_are_ignored() {
    let t = Instant::now();
    let mut n = node(t);
    n.handle_message(t, ME, gossip(1, 0));
    assert_eq!(n.stats().invalid_messages, 1);
    // A payload from a member, so that a graft for it could be answered.
    n.handle_message(t, 1, gossip(1, 0));
    let _ = drain(&mut n);
    for message in [
        gossip(2, 0),
        ihave(&[(3, 0)]),
        Message::Graft(Graft { id: Some(id(1)) }),
        Message::Prune,
    ] {
        n.handle_message(t, 42, message);
    }
    n.handle_timeout(t + Duration::from_secs(5));
    let (tx, ev) = drain(&mut n);
    assert!(
        ev.is_empty(),
        "a stranger's payload is not delivered: {ev:?}"
    );
    // Only the announcements of the member's payload go out (to the lazy peers).
    let relayed_or_answered = tx.iter().any(|t| match &t.message {
        Message::IHave(ihave) => t.to == 42 || ihave.entries.iter().any(|a| a.id != id(1)),
        _ => true,
    });
    assert!(!relayed_or_answered, "{tx:?}");
    assert_eq!(n.stats().from_non_members, 4);
    assert_eq!(n.peer_role(&42), None);
}

#[test]
fn same_seed_same_outputs() {
    let run = || {
        let t = Instant::now();
        let mut n = Plumtree::new(ME, config()).unwrap();
        n.add_peers(t, 1..50);
        n.broadcast(t, &b"x"[..]).unwrap();
        let (tx, ev) = drain(&mut n);
        (tx.into_iter().map(|t| t.to).collect::<Vec<_>>(), ev.len())
    };
    assert_eq!(run(), run());
}

#[test]
fn with_scoring_the_fastest_lazy_neighbour_repairs_a_lost_eager_link() {
    let t = Instant::now();
    let c = config().with_lazy_fanout(3).with_peer_scoring(true);
    let mut n = Plumtree::new(ME, c).unwrap();
    for (peer, ms) in [(1, 50), (2, 50), (3, 90), (4, 5), (5, 40)] {
        n.record_rtt(&peer, Duration::from_millis(ms));
    }
    n.add_peers(t, 1..=5);
    drain(&mut n);
    // Eager slots: the best of the sample, but one slot stays random (a long-range link).
    assert!(
        n.eager_peers().any(|&p| p == 4),
        "the fastest peer is a tree link"
    );
    let eager: Vec<u64> = n.eager_peers().copied().collect();
    let lost = *eager.iter().find(|&&p| p != 4).unwrap();
    n.remove_peer(t, &lost);
    let (_, ev) = drain(&mut n);
    let promoted: Vec<u64> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Promoted { peer } => Some(*peer),
            _ => None,
        })
        .collect();
    let mut lazy_before: Vec<u64> = (1..=5).filter(|p| !eager.contains(p)).collect();
    lazy_before.sort_by_key(|p| [0, 50, 50, 90, 5, 40][*p as usize]);
    assert_eq!(promoted, [lazy_before[0]], "the best scored lazy neighbour");
}

#[test]
fn with_scoring_the_first_graft_goes_to_the_best_announcer_and_silence_costs() {
    let t = Instant::now();
    let c = config().with_peer_scoring(true);
    let mut n = node_with(c.clone(), &[1, 2], &[3, 4], t);
    n.record_rtt(&3, Duration::from_millis(80));
    n.record_rtt(&4, Duration::from_millis(4));
    n.handle_message(t, 3, ihave(&[(1, 0)]));
    n.handle_message(t, 4, ihave(&[(1, 0)]));
    n.handle_timeout(t + c.graft_timeout);
    let (tx, _) = drain(&mut n);
    assert_eq!(
        sent(&tx),
        [(4, "graft")],
        "the fast announcer, though it came second"
    );
    // Node 4 does not answer: the retry goes to 3, and 4's score now carries a penalty.
    n.handle_timeout(t + c.graft_timeout + c.graft_retry_timeout);
    let (tx, _) = drain(&mut n);
    assert_eq!(sent(&tx), [(3, "graft")]);
}

#[test]
fn ring_neighbours_are_always_neighbours_and_survive_eviction() {
    let t = Instant::now();
    let c = config()
        .with_use_hash_ring(true)
        .with_eager_fanout(1)
        .with_lazy_fanout(1)
        .with_max_peers(Some(4));
    let mut n = Plumtree::new(ME, c).unwrap();
    n.add_peers(t, 1..50);
    drain(&mut n);
    let mut members: Vec<u64> = (1..50).collect();
    let mut ring = super::ring::HashRing::new(ME);
    ring.add(&members);
    let protected = ring.neighbours();
    assert_eq!(protected.len(), 2);
    for p in &protected {
        assert!(
            n.peer_role(p).is_some(),
            "ring neighbour {p} is a neighbour"
        );
    }
    // Grafts from many others fill max_peers; eviction must spare the ring neighbours.
    for p in 1..50 {
        n.handle_message(t, p, Message::Graft(Graft { id: None }));
        for q in &protected {
            assert!(
                n.peer_role(q).is_some(),
                "ring neighbour {q} evicted by {p}"
            );
        }
    }
    // A ring neighbour that leaves is replaced by the next one on the ring.
    n.remove_peer(t, &protected[0]);
    members.retain(|m| *m != protected[0]);
    ring.remove(&protected[0], &members);
    for p in ring.neighbours() {
        assert!(n.peer_role(&p).is_some(), "new ring neighbour {p}");
    }
}
