//! Anti-entropy between cores wired by hand: what a partition cost is repaired after it heals,
//! without touching the tree; what no one caches any more is reported as a gap.

use std::time::{Duration, Instant};

use super::*;
use crate::message::{IdRun, IdRuns};

const A: u64 = 1;
const B: u64 = 2;

fn ae_config() -> PlumtreeConfig {
    PlumtreeConfig::default()
        .with_rng_seed(Some(4))
        .with_anti_entropy_interval(Duration::from_secs(1))
}

/// Two cores that know each other, their first exchanges carried.
fn pair(config: PlumtreeConfig, t: Instant) -> (Plumtree<u64>, Plumtree<u64>) {
    let mut a = Plumtree::new(A, config.clone()).unwrap();
    let mut b = Plumtree::new(B, config).unwrap();
    a.add_peer(t, B);
    b.add_peer(t, A);
    carry(&mut a, &mut b, t, true);
    (a, b)
}

/// Carries every transmit between the two (or drops them: a partition) until both are quiet;
/// returns what each delivered.
fn carry(
    a: &mut Plumtree<u64>,
    b: &mut Plumtree<u64>,
    t: Instant,
    connected: bool,
) -> (Vec<Event<u64>>, Vec<Event<u64>>) {
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    loop {
        let mut quiet = true;
        while let Some(tx) = a.poll_transmit() {
            quiet = false;
            if connected {
                b.handle_message(t, A, tx.message);
            }
        }
        while let Some(tx) = b.poll_transmit() {
            quiet = false;
            if connected {
                a.handle_message(t, B, tx.message);
            }
        }
        ea.extend(std::iter::from_fn(|| a.poll_event()));
        eb.extend(std::iter::from_fn(|| b.poll_event()));
        if quiet {
            return (ea, eb);
        }
    }
}

fn delivered(events: &[Event<u64>]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Deliver(d) => Some(d.id.seq()),
            _ => None,
        })
        .collect()
}

/// The gaps reported: (first sequence number, count).
fn gaps(events: &[Event<u64>]) -> Vec<(u64, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Gap { first, count } => Some((first.seq(), *count)),
            _ => None,
        })
        .collect()
}

/// Runs both nodes' timers once a second for `secs` seconds from `now`, carrying every frame;
/// returns their events and the instant reached.
fn run_seconds(
    a: &mut Plumtree<u64>,
    b: &mut Plumtree<u64>,
    mut now: Instant,
    secs: u32,
) -> (Vec<Event<u64>>, Instant) {
    let mut events = Vec::new();
    for _ in 0..secs {
        now += Duration::from_secs(1);
        a.handle_timeout(now);
        b.handle_timeout(now);
        events.extend(carry(a, b, now, true).1);
    }
    (events, now)
}

#[test]
fn what_a_partition_cost_is_repaired_after_it_heals_without_touching_the_tree() {
    let t = Instant::now();
    let (mut a, mut b) = pair(ae_config(), t);
    let role_before = b.peer_role(&A);
    let mut sent = Vec::new();
    for i in 0..5u8 {
        sent.push(a.broadcast(t, vec![i; 10]).unwrap().seq());
    }
    // The partition: every frame from A is lost, and timers run out while it lasts.
    let mut now = t;
    for _ in 0..3 {
        now += Duration::from_millis(700);
        a.handle_timeout(now);
        b.handle_timeout(now);
        carry(&mut a, &mut b, now, false);
    }
    assert_eq!(b.stats().delivered, 0);
    // Healed: within a few digest intervals B has every payload, once.
    let mut got = Vec::new();
    for _ in 0..4 {
        now += Duration::from_secs(1);
        a.handle_timeout(now);
        b.handle_timeout(now);
        got.extend(delivered(&carry(&mut a, &mut b, now, true).1));
    }
    got.sort_unstable();
    assert_eq!(got, sent);
    assert_eq!(b.stats().repairs_received, 5);
    assert_eq!(b.stats().repair_duplicates, 0);
    assert_eq!(b.peer_role(&A), role_before, "a repair changes no role");
    // Nothing more is asked once B has everything.
    let wants = b.stats().wants_sent;
    now += Duration::from_secs(3);
    for _ in 0..3 {
        a.handle_timeout(now);
        b.handle_timeout(now);
        carry(&mut a, &mut b, now, true);
        now += Duration::from_secs(1);
    }
    assert_eq!(b.stats().wants_sent, wants);
}

#[test]
fn what_no_neighbour_caches_any_more_is_reported_as_a_gap() {
    let t = Instant::now();
    let config = ae_config()
        .with_message_cache_max_size(2)
        .with_seen_max_size(2)
        .with_gap_timeout(Duration::from_secs(3));
    let (mut a, mut b) = pair(config, t);
    // B gets the first payload, then misses four, of which A caches only the last two.
    let first = a.broadcast(t, vec![0; 4]).unwrap();
    carry(&mut a, &mut b, t, true);
    for i in 1..5u8 {
        a.broadcast(t, vec![i; 4]).unwrap();
    }
    carry(&mut a, &mut b, t, false);
    let (events, _) = run_seconds(&mut a, &mut b, t, 8);
    let mut got = delivered(&events);
    got.sort_unstable();
    assert_eq!(
        got,
        [first.seq() + 3, first.seq() + 4],
        "the two still cached"
    );
    let gaps = gaps(&events);
    assert_eq!(
        gaps,
        [(first.seq() + 1, 2)],
        "the two no one caches, reported once"
    );
    assert_eq!(b.stats().gap_payloads, 2);
}

/// B never heard of an origin whose first payloads its neighbour no longer caches: the digest
/// names them as uncached, so B reports them instead of never knowing they existed.
#[test]
fn what_a_node_never_heard_of_and_no_one_caches_is_reported_too() {
    let t = Instant::now();
    let config = ae_config()
        .with_message_cache_max_size(2)
        .with_seen_max_size(8)
        .with_gap_timeout(Duration::from_secs(3));
    let (mut a, mut b) = pair(config, t);
    // Five payloads B never hears of, of which A caches only the last two.
    let mut ids = Vec::new();
    for i in 0..5u8 {
        ids.push(a.broadcast(t, vec![i; 4]).unwrap());
    }
    carry(&mut a, &mut b, t, false);
    let (events, _) = run_seconds(&mut a, &mut b, t, 8);
    let mut got = delivered(&events);
    got.sort_unstable();
    assert_eq!(got, [ids[3].seq(), ids[4].seq()], "the two still cached");
    let gaps = gaps(&events);
    assert_eq!(gaps, [(ids[0].seq(), 3)], "the three no one caches");
}

#[test]
fn a_neighbour_is_answered_one_batch_per_half_interval() {
    let t = Instant::now();
    let config = ae_config().with_anti_entropy_batch(3);
    let (mut a, _b) = pair(config, t);
    let first = a.broadcast(t, vec![1; 4]).unwrap();
    for _ in 0..9 {
        a.broadcast(t, vec![1; 4]).unwrap();
    }
    while a.poll_transmit().is_some() {}
    let want = || {
        Message::Want(IdRuns {
            runs: vec![IdRun { first, len: 10 }],
        })
    };
    let repairs = |a: &mut Plumtree<u64>| {
        std::iter::from_fn(|| a.poll_transmit())
            .filter(|tx| matches!(tx.message, Message::Repair(_)))
            .count()
    };
    a.handle_message(t, B, want());
    assert_eq!(repairs(&mut a), 3, "one batch");
    a.handle_message(t + Duration::from_millis(100), B, want());
    assert_eq!(repairs(&mut a), 0, "too soon");
    assert_eq!(a.stats().wants_refused, 1);
    a.handle_message(t + Duration::from_millis(600), B, want());
    assert_eq!(repairs(&mut a), 3);
    // A stranger is not answered.
    a.handle_message(t + Duration::from_secs(5), 9, want());
    assert_eq!(repairs(&mut a), 0);
}

#[test]
fn a_repair_of_a_payload_already_delivered_is_dropped() {
    let t = Instant::now();
    let (mut a, mut b) = pair(ae_config(), t);
    let id = a.broadcast(t, vec![5; 4]).unwrap();
    let (_, events) = carry(&mut a, &mut b, t, true);
    assert_eq!(delivered(&events), [id.seq()]);
    b.handle_message(
        t,
        A,
        Message::Repair(Gossip {
            id,
            origin: A,
            round: 0,
            heaviest: 0,
            payload: vec![5; 4].into(),
            encoding: Default::default(),
            signature: None,
        }),
    );
    assert!(std::iter::from_fn(|| b.poll_event()).next().is_none());
    assert_eq!(b.stats().repair_duplicates, 1);
}

/// A has broadcast five payloads (its neighbour B never got them) and still caches them; B
/// starts ten seconds later. Returns A, B and B's start.
fn history_then_a_later_start() -> (Plumtree<u64>, Plumtree<u64>, Instant) {
    let t = Instant::now();
    let mut a = Plumtree::new(A, ae_config()).unwrap();
    a.add_peer(t, B);
    for i in 0..5u8 {
        a.broadcast(t, vec![i; 4]).unwrap();
    }
    while a.poll_transmit().is_some() {}
    let later = t + Duration::from_secs(10);
    let mut b = Plumtree::new(B, ae_config()).unwrap();
    b.add_peer(later, A);
    (a, b, later)
}

#[test]
fn a_node_that_starts_later_is_not_sent_the_history() {
    let (mut a, mut b, later) = history_then_a_later_start();
    let (events, now) = run_seconds(&mut a, &mut b, later, 5);
    assert!(delivered(&events).is_empty(), "history fetched: {events:?}");
    assert!(b.stats().digests_received > 0, "B heard what A offers");
    assert_eq!(b.stats().wants_sent, 0);
    // What A broadcasts from then on reaches B as usual.
    let id = a.broadcast(now, vec![9; 4]).unwrap();
    assert_eq!(delivered(&carry(&mut a, &mut b, now, true).1), [id.seq()]);
}

/// B starts while A caches history; the first payload A sends after that is lost on the way and
/// the next arrives, so B's own record of A begins above the lost one. A knows when B started
/// (B's greeting says), offers B a run that begins then, and B fetches the lost payload, and no
/// history.
#[test]
fn a_node_that_starts_later_fetches_what_it_lost_since_it_started() {
    let (mut a, mut b, later) = history_then_a_later_start();
    assert!(delivered(&carry(&mut a, &mut b, later, true).1).is_empty());
    let lost = a.broadcast(later, vec![5; 4]).unwrap();
    carry(&mut a, &mut b, later, false);
    let next = a.broadcast(later, vec![6; 4]).unwrap();
    assert_eq!(
        delivered(&carry(&mut a, &mut b, later, true).1),
        [next.seq()]
    );
    let (events, _) = run_seconds(&mut a, &mut b, later, 5);
    assert_eq!(delivered(&events), [lost.seq()], "{events:?}");
}

/// Recovery slower than `gap_timeout` (small batches) gives up nothing: what is known missing
/// is what was asked for last, and each answer clears it.
#[test]
fn nothing_is_given_up_while_repairs_keep_coming() {
    let t = Instant::now();
    let config = ae_config()
        .with_anti_entropy_batch(4)
        .with_gap_timeout(Duration::from_secs(3));
    let (mut a, mut b) = pair(config, t);
    for i in 0..40u8 {
        a.broadcast(t, vec![i; 4]).unwrap();
    }
    carry(&mut a, &mut b, t, false);
    let mut now = t;
    let mut events = Vec::new();
    for _ in 0..60 {
        now += Duration::from_millis(500);
        a.handle_timeout(now);
        b.handle_timeout(now);
        events.extend(carry(&mut a, &mut b, now, true).1);
    }
    assert_eq!(delivered(&events).len(), 40, "{:?}", b.stats());
    assert!(!events.iter().any(|e| matches!(e, Event::Gap { .. })));
}
