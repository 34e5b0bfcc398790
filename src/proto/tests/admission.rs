//! Broadcast admission: a broadcast waits while the cache would have to drop a payload that a
//! repair may still ask for.

use super::*;

/// Default timings: the repair horizon is 800 ms (the IHave interval at its most stretched,
/// longer than the 500 ms graft timer, which counts from when the announcer had the payload)
/// + 250 ms (one retry).
const HORIZON: Duration = Duration::from_millis(1050);

fn broadcasts(n: &mut Plumtree<u64>, t: Instant, count: usize, len: usize) {
    for _ in 0..count {
        n.broadcast(t, vec![0; len]).unwrap();
    }
    drain(n);
}

#[test]
fn a_full_cache_admits_a_broadcast_once_its_oldest_payload_is_past_the_repair_horizon() {
    let c = config().with_message_cache_max_size(3);
    let t = Instant::now();
    let mut n = node_with(c, &[1, 2], &[3, 4], t);
    broadcasts(&mut n, t, 2, 1);
    assert_eq!(n.broadcast_room_at(t), None, "room for a third");
    // A payload relayed through us takes a place in the cache like our own.
    n.handle_message(t + HORIZON / 2, 1, gossip(1, 0));
    assert_eq!(n.broadcast_room_at(t), Some(t + HORIZON));
    assert_eq!(n.broadcast_room_at(t + HORIZON), None);
    broadcasts(&mut n, t + HORIZON, 1, 1);
    // Cached now: t, t, t + H/2, t + H. The second broadcast is exactly H old: it may go.
    assert_eq!(n.broadcast_room_at(t + HORIZON), None);
    broadcasts(&mut n, t + HORIZON, 1, 1);
    assert_eq!(n.broadcast_room_at(t + HORIZON), Some(t + HORIZON * 3 / 2));
}

#[test]
fn bytes_and_the_missing_bound_admit_fewer() {
    let t = Instant::now();
    let c = config()
        .with_max_message_size(10)
        .with_message_cache_max_bytes(25);
    let mut n = node_with(c, &[1, 2], &[3, 4], t);
    broadcasts(&mut n, t, 1, 10);
    assert_eq!(n.broadcast_room_at(t), None, "10 + 10 bytes fit in 25");
    broadcasts(&mut n, t, 1, 10);
    assert_eq!(
        n.broadcast_room_at(t),
        Some(t + HORIZON),
        "a third would not"
    );

    // A node cut off from the tree tracks what it misses in `max_missing` entries: no more
    // payloads per horizon than that, whatever the cache holds.
    let mut n = node_with(config().with_max_missing(2), &[1, 2], &[3, 4], t);
    broadcasts(&mut n, t, 2, 1);
    assert_eq!(n.broadcast_room_at(t), Some(t + HORIZON));
}

#[test]
fn without_adaptive_ihave_the_graft_timer_sets_the_horizon() {
    let t = Instant::now();
    let c = config()
        .with_message_cache_max_size(1)
        .with_adaptive_ihave(false);
    let mut n = node_with(c, &[1, 2], &[3, 4], t);
    broadcasts(&mut n, t, 1, 1);
    // The 100 ms IHave wait counts inside the 500 ms graft timer; then 250 ms for one retry.
    assert_eq!(n.broadcast_room_at(t), Some(t + Duration::from_millis(750)));
}
