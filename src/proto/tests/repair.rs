//! Announcements, graft timers and retries, and frames the runtime could not send.

use super::*;

#[test]
fn grafts_back_off_once_every_announcer_has_been_tried() {
    let t = Instant::now();
    let c = config();
    let mut n = node(t);
    n.handle_message(t, 3, ihave(&[(9, 0)]));
    let mut at = t + c.graft_timeout;
    n.handle_timeout(at);
    assert_eq!(sent(&drain(&mut n).0), [(3, "graft")]);
    // One announcer: every retry is a new round, each waiting twice as long.
    for factor in [1, 2, 4] {
        let next = at + c.graft_retry_timeout * factor;
        assert_eq!(n.poll_timeout(), Some(next));
        n.handle_timeout(next);
        assert_eq!(sent(&drain(&mut n).0), [(3, "graft")]);
        at = next;
    }
}

#[test]
fn ihave_for_unknown_id_grafts_only_when_the_timer_fires_then_tries_the_next_announcer() {
    let t = Instant::now();
    let c = config();
    let mut n = node(t);
    n.handle_message(t, 3, ihave(&[(9, 2)]));
    n.handle_message(t + Duration::from_millis(10), 4, ihave(&[(9, 1)]));
    assert!(drain(&mut n).0.is_empty(), "no graft on IHave");
    assert_eq!(n.poll_timeout(), Some(t + c.graft_timeout));

    n.handle_timeout(t + c.graft_timeout - Duration::from_millis(1));
    assert!(drain(&mut n).0.is_empty());
    n.handle_timeout(t + c.graft_timeout);
    let (tx, ev) = drain(&mut n);
    assert_eq!(
        tx,
        [Transmit {
            to: 3,
            message: Message::Graft(Graft { id: Some(id(9)) }),
            urgent: true
        }]
    );
    assert_eq!(
        ev,
        [Event::Promoted { peer: 3 }, Event::GraftSent { peer: 3 }]
    );

    // The second announcement joins the missing entry when its own timer is due.
    let second = t + Duration::from_millis(10) + c.graft_timeout;
    assert_eq!(n.poll_timeout(), Some(second));
    n.handle_timeout(second);
    assert!(drain(&mut n).0.is_empty());
    let retry = t + c.graft_timeout + c.graft_retry_timeout;
    assert_eq!(n.poll_timeout(), Some(retry));
    n.handle_timeout(retry);
    let (tx, _) = drain(&mut n);
    assert_eq!(
        tx,
        [Transmit {
            to: 4,
            message: Message::Graft(Graft { id: Some(id(9)) }),
            urgent: true
        }]
    );
}

#[test]
fn the_graft_timer_counts_from_when_the_announcer_had_the_payload() {
    let t = Instant::now();
    let c = config();
    let mut n = node(t);
    let ms = Duration::from_millis;
    // Fresh: the whole timeout. Held 300 ms: 200 ms more, though it came after the fresh one.
    // Held past the timeout: at once.
    n.handle_message(t, 3, held_ihave(&[(9, 0)], 0));
    n.handle_message(t, 4, held_ihave(&[(20, 0)], 300));
    n.handle_message(t + ms(10), 1, held_ihave(&[(30, 0)], 2_000));
    assert!(drain(&mut n).0.is_empty(), "no graft on IHave");
    assert_eq!(n.poll_timeout(), Some(t + ms(10)));
    n.handle_timeout(t + ms(10));
    assert_eq!(sent(&drain(&mut n).0), [(1, "graft")]);
    let after_300 = t + c.graft_timeout - ms(300);
    assert_eq!(n.poll_timeout(), Some(after_300));
    n.handle_timeout(after_300);
    assert_eq!(sent(&drain(&mut n).0), [(4, "graft")]);
    // (Retries to 1 and 4 follow; the fresh announcement's graft to 3 waits its full time.)
    n.handle_timeout(t + c.graft_timeout - ms(1));
    assert!(!sent(&drain(&mut n).0).contains(&(3, "graft")));
    n.handle_timeout(t + c.graft_timeout);
    assert_eq!(sent(&drain(&mut n).0), [(3, "graft")]);
}

/// A node with eager 1, 2 and lazy 3, 4 that lazy 3 has told of payload 9, and the instant its
/// first graft for it is due.
fn announced_by_3(c: &PlumtreeConfig) -> (Plumtree<u64>, Instant) {
    let t = Instant::now();
    let mut n = node_with(c.clone(), &[1, 2], &[3, 4], t);
    n.handle_message(t, 3, ihave(&[(9, 0)]));
    (n, t + c.graft_timeout)
}

#[test]
fn grafting_gives_up_after_max_retries() {
    let c = config().with_graft_max_retries(2);
    let (mut n, mut at) = announced_by_3(&c);
    let (mut grafts, mut gave_up) = (0, vec![]);
    for _ in 0..5 {
        n.handle_timeout(at);
        let (transmits, events) = drain(&mut n);
        grafts += transmits.len();
        gave_up.extend(events.into_iter().filter_map(|e| match e {
            Event::GaveUp { id } => Some(id),
            _ => None,
        }));
        at += c.graft_retry_timeout;
    }
    assert_eq!(grafts, 2);
    assert_eq!((n.missing_len(), n.stats().grafts_given_up), (0, 1));
    assert_eq!(gave_up, [id(9)], "the application is told which payload");
}

#[test]
fn a_graft_that_never_left_is_retried_later_than_usual() {
    let c = config();
    let (mut n, at) = announced_by_3(&c);
    n.handle_timeout(at);
    for transmit in drain(&mut n).0 {
        n.handle_undelivered(at, &transmit.to, transmit.message);
    }
    n.handle_timeout(at + c.graft_retry_timeout);
    assert!(
        drain(&mut n).0.is_empty(),
        "the queue was full: not at the usual pace"
    );
    n.handle_timeout(at + c.graft_retry_timeout * 2);
    assert_eq!(sent(&drain(&mut n).0), [(3, "graft")]);
}

#[test]
fn an_announcement_repeated_after_a_lost_answer_refunds_a_graft() {
    let c = config().with_graft_max_retries(2);
    let (mut n, mut at) = announced_by_3(&c);
    for _ in 0..6 {
        n.handle_timeout(at);
        if !drain(&mut n).0.is_empty() {
            // Node 3 answered, the answer was dropped on its way, and node 3 announces again.
            n.handle_message(at, 3, ihave(&[(9, 0)]));
        }
        at += c.graft_retry_timeout;
    }
    assert_eq!(
        (n.missing_len(), n.stats().grafts_given_up),
        (1, 0),
        "still asking"
    );
    n.handle_message(at, 1, gossip(9, 0));
    assert_eq!(n.missing_len(), 0);
}

#[test]
fn grafts_that_never_left_do_not_count_towards_giving_up() {
    let c = config().with_graft_max_retries(2);
    let (mut n, mut at) = announced_by_3(&c);
    for _ in 0..6 {
        n.handle_timeout(at);
        // The runtime hands every graft back: the queue to the announcer is full.
        for transmit in drain(&mut n).0 {
            n.handle_undelivered(at, &transmit.to, transmit.message);
        }
        at += c.graft_retry_timeout * 16;
    }
    assert_eq!((n.missing_len(), n.stats().grafts_given_up), (1, 0));
    n.handle_timeout(at);
    assert_eq!(sent(&drain(&mut n).0), [(3, "graft")], "still asking");
}

#[test]
fn gossip_arrival_cancels_the_missing_timer() {
    let t = Instant::now();
    let mut n = node(t);
    n.handle_message(t, 3, ihave(&[(9, 0)]));
    n.handle_message(t, 1, gossip(9, 0));
    drain(&mut n);
    n.handle_timeout(t + Duration::from_secs(5));
    let (tx, _) = drain(&mut n);
    assert!(
        tx.iter().all(|t| t.message.kind().as_str() != "graft"),
        "{tx:?}"
    );
    assert_eq!(n.missing_len(), 0);
}

#[test]
fn ihave_for_a_delivered_id_is_ignored() {
    let t = Instant::now();
    let mut n = node(t);
    n.handle_message(t, 1, gossip(1, 0));
    n.handle_message(t, 3, ihave(&[(1, 0)]));
    assert_eq!(n.missing_len(), 0);
}

#[test]
fn undelivered_payloads_and_announcements_are_announced_again_at_the_next_flush() {
    let t = Instant::now();
    let c = config().with_ihave_batch_size(2);
    let mut n = node_with(c.clone(), &[1, 2], &[3, 4], t);
    // The runtime could not queue a payload for eager peer 2, nor an IHave for lazy peer 3.
    n.handle_undelivered(t, &2, gossip(5, 3));
    n.handle_undelivered(t, &3, ihave(&[(6, 1), (7, 1)]));
    assert!(
        drain(&mut n).0.is_empty(),
        "nothing leaves before the flush timer"
    );
    let flush = n.poll_timeout().expect("a flush is armed");
    assert_eq!(flush, t + c.ihave_interval);
    n.handle_timeout(flush);
    let (tx, _) = drain(&mut n);
    assert!(tx.contains(&Transmit {
        to: 2,
        message: held_ihave(&[(5, 3)], 100),
        urgent: true
    }));
    assert!(tx.contains(&Transmit {
        to: 3,
        message: held_ihave(&[(6, 1), (7, 1)], 100),
        urgent: true
    }));
    assert_eq!(n.stats().requeued, 3);
    // Grafts and prunes are not requeued; strangers are ignored.
    n.handle_undelivered(t, &1, Message::Prune);
    n.handle_undelivered(t, &99, gossip(8, 0));
    assert_eq!(n.stats().requeued, 3);
}

#[test]
fn requeued_announcements_leave_in_batches_and_are_capped() {
    let t = Instant::now();
    let c = config()
        .with_ihave_batch_size(2)
        .with_message_cache_max_size(4)
        .with_seen_max_size(8);
    let mut n = node_with(c, &[1, 2], &[3, 4], t);
    let many: Vec<(u64, u32)> = (10..16).map(|s| (s, 1)).collect();
    n.handle_undelivered(t, &3, ihave(&many));
    assert_eq!(n.stats().requeue_dropped, 2, "six waiting, four allowed");
    n.handle_timeout(n.poll_timeout().unwrap());
    let (tx, _) = drain(&mut n);
    let to_3: Vec<&Transmit<u64>> = tx.iter().filter(|t| t.to == 3).collect();
    assert_eq!(
        to_3.iter().map(|t| &t.message).collect::<Vec<_>>(),
        [
            &held_ihave(&[(12, 1), (13, 1)], 100),
            &held_ihave(&[(14, 1), (15, 1)], 100)
        ],
        "the newest four, two per IHave"
    );
}

#[test]
fn a_graft_received_brings_the_next_flush_forward_but_keeps_the_stretched_interval() {
    let t = Instant::now();
    let c = config();
    let mut n = node(t);
    let mut now = t;
    // Flushes with no repair in between stretch the interval: 2x, 4x, then 8x.
    for seq in 1..=4 {
        n.handle_message(now, 1, gossip(seq, 0));
        let flush = n.poll_timeout().expect("a flush is armed");
        n.handle_timeout(flush);
        drain(&mut n);
        now = flush;
    }
    n.handle_message(now, 1, gossip(5, 0));
    assert_eq!(n.poll_timeout(), Some(now + c.ihave_interval * 8));

    n.handle_message(now, 3, Message::Graft(Graft { id: Some(id(1)) }));
    assert_eq!(
        n.poll_timeout(),
        Some(now + c.ihave_interval),
        "brought forward"
    );
    now += c.ihave_interval;
    n.handle_timeout(now);
    assert!(sent(&drain(&mut n).0).contains(&(4, "ihave")));
    n.handle_message(now, 1, gossip(6, 0));
    assert_eq!(
        n.poll_timeout(),
        Some(now + c.ihave_interval * 8),
        "still stretched: only a graft this node sends resets it"
    );
}
