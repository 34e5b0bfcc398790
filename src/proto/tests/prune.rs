//! Duplicates and prunes: the delayed rule, the cycle rule, and lazy peers that push.

use super::*;

/// The eager neighbours of `node()`, 1 and 2, lighter link first.
fn light_and_heavy() -> (u64, u64) {
    if link_weight(ME, 1) < link_weight(ME, 2) {
        (1, 2)
    } else {
        (2, 1)
    }
}

#[test]
fn duplicate_gossip_prunes_the_sender_and_is_not_delivered_again() {
    let t = Instant::now();
    let mut n = node_with(
        config().with_prune_delay(Duration::ZERO),
        &[1, 2],
        &[3, 4],
        t,
    );
    n.handle_message(t, 1, gossip(1, 0));
    drain(&mut n);
    n.handle_message(t, 2, gossip(1, 0));
    let (tx, ev) = drain(&mut n);
    assert_eq!(sent(&tx), [(2, "prune")]);
    assert_eq!(
        ev,
        [Event::Demoted { peer: 2 }, Event::PruneSent { peer: 2 }]
    );
    assert_eq!(n.peer_role(&2), Some(PeerRole::Lazy));
    assert_eq!(n.stats().duplicates, 1);
}

#[test]
fn with_prune_delay_an_eager_link_is_pruned_on_a_duplicate_of_a_later_payload() {
    let t = Instant::now();
    let delay = config().prune_delay;
    let mut n = node(t);
    n.handle_message(t, 1, gossip(1, 0));
    n.handle_message(t, 1, gossip(2, 0));
    drain(&mut n);
    n.handle_message(t, 2, gossip(1, 0));
    assert!(
        drain(&mut n).0.is_empty(),
        "the first duplicate only marks the link"
    );
    n.handle_message(t + delay, 2, gossip(2, 0));
    assert!(
        drain(&mut n).0.is_empty(),
        "payload 2 was in flight when the link was marked"
    );
    n.handle_message(t + delay, 1, gossip(3, 0));
    drain(&mut n);
    n.handle_message(t + delay, 2, gossip(3, 0));
    let (tx, ev) = drain(&mut n);
    assert_eq!(
        sent(&tx),
        [(2, "prune")],
        "payload 3 came after the mark: the cycle is real"
    );
    assert_eq!(
        ev,
        [Event::Demoted { peer: 2 }, Event::PruneSent { peer: 2 }]
    );

    // A lazy peer that pushes a duplicate is pruned at once.
    n.handle_message(t + delay, 3, gossip(3, 0));
    assert_eq!(sent(&drain(&mut n).0), [(3, "prune")]);
}

#[test]
fn a_link_that_brings_a_payload_first_is_no_longer_suspect() {
    let t = Instant::now();
    let delay = config().prune_delay;
    let mut n = node(t);
    n.handle_message(t, 1, gossip(1, 0));
    n.handle_message(t, 2, gossip(1, 0)); // marks link 2
    n.handle_message(t, 2, gossip(2, 0)); // but link 2 is in use: it brought payload 2 first
    drain(&mut n);
    n.handle_message(t + delay, 1, gossip(3, 0));
    drain(&mut n);
    n.handle_message(t + delay, 2, gossip(3, 0));
    assert!(
        drain(&mut n).0.is_empty(),
        "a duplicate after the link proved useful marks it again, no more"
    );
    assert_eq!(n.peer_role(&2), Some(PeerRole::Eager));
}

#[test]
fn a_duplicate_over_the_heaviest_link_of_a_cycle_prunes_at_once() {
    let t = Instant::now();
    let w = |p: u64| link_weight(ME, p);
    // Payload 1 arrives first over the lighter of our eager links, then again over the heavier.
    let (light, heavy) = light_and_heavy();
    let mut n = node(t);
    n.handle_message(t, light, weighed_gossip(1, 0, 0));
    drain(&mut n);

    // The second copy's path had a link heavier than ours: not the cycle's heaviest, and with
    // `prune_delay` a first duplicate only marks the link.
    n.handle_message(t, heavy, weighed_gossip(1, 0, w(heavy) + 1));
    assert!(drain(&mut n).0.is_empty());
    assert_eq!(n.stats().cycle_prunes, 0);

    // Payload 2: both paths lighter than the link of the second copy. Pruned without waiting.
    n.handle_message(t, light, weighed_gossip(2, 0, 0));
    drain(&mut n);
    n.handle_message(t, heavy, weighed_gossip(2, 0, w(heavy) - 1));
    let (tx, ev) = drain(&mut n);
    assert_eq!(sent(&tx), [(heavy, "prune")]);
    assert_eq!(
        ev,
        [
            Event::Demoted { peer: heavy },
            Event::PruneSent { peer: heavy }
        ]
    );
    assert_eq!(n.stats().cycle_prunes, 1);

    // The light link never qualifies: the first copy's path includes it.
    n.handle_message(t, heavy, weighed_gossip(3, 0, 0));
    drain(&mut n);
    n.handle_message(t, light, weighed_gossip(3, 0, 0));
    assert_eq!(n.stats().cycle_prunes, 1);
}

#[test]
fn payloads_in_flight_from_a_cut_link_do_not_graft_it_back() {
    let t = Instant::now();
    let grace = config().graft_timeout;
    let mut n = node(t);
    // Whichever eager link is heavier gets cut when a duplicate closes a cycle over it.
    let (first, cut) = light_and_heavy();
    n.handle_message(t, first, weighed_gossip(1, 0, 0));
    n.handle_message(t, cut, weighed_gossip(1, 0, 0));
    drain(&mut n);
    assert_eq!(n.peer_role(&cut), Some(PeerRole::Lazy));

    // A new payload it had sent before our Prune reached it: delivered, the link stays cut.
    n.handle_message(t + grace / 2, cut, gossip(2, 0));
    let (tx, ev) = drain(&mut n);
    assert!(ev.iter().any(|e| matches!(e, Event::Deliver(_))));
    assert!(!sent(&tx).contains(&(cut, "graft")));
    assert_eq!(n.peer_role(&cut), Some(PeerRole::Lazy));

    // Still pushing after `graft_timeout`: it holds us as eager, so the ends must agree again.
    n.handle_message(t + grace, cut, gossip(3, 0));
    assert!(sent(&drain(&mut n).0).contains(&(cut, "graft")));
    assert_eq!(n.peer_role(&cut), Some(PeerRole::Eager));
}
