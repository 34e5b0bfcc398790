//! [`Missing`]: payloads we have been told about but not received, who offered them, and when to
//! graft.
//!
//! An announcement first waits (unless peer scoring is on: it needs every announcer at once),
//! in arrival order, until its graft timer would fire: most
//! announcements are for payloads already on their way over the tree, and this way one that
//! arrives before its payload costs a push and a pop instead of a table entry, a timer and an
//! announcer list that the payload then removes (a third of the core's time under load). Only
//! an announcement still unanswered when it is due becomes an entry, and is grafted at once.
//! The waiting queue is bounded by `max_missing * max_announcers` announcements, and its due
//! times only grow, because time never goes back and the wait is a fixed `graft_timeout`. It
//! holds announcements as they arrive, in runs (one peer's announcements of the next sequence
//! numbers of one origin, at one round and due at one instant: what an IHave run carries), so
//! that a batch of 16 is one entry to write instead of 16. The optimization needs, when a
//! payload arrives, only the announcer with the lowest round among those that announced it:
//! with it on, a table keeps that one announcer per id with announcements waiting (one entry
//! per id, no timer, no list), and forgets it when the last of them leaves the queue.
//!
//! Entries are bounded twice: at most `max_missing` ids and `max_announcers` announcers per id.
//! Each id has exactly one timer, kept in an ordered map so that removing an id cancels its
//! timer and stale timers cannot pile up.

use std::collections::{BTreeMap, HashMap, VecDeque, hash_map};
use std::time::{Duration, Instant};

use crate::message::MessageId;

/// A peer that announced a payload, and its hop count for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Announcer<I> {
    pub(crate) peer: I,
    pub(crate) round: u32,
}

#[derive(Debug)]
pub(crate) struct Entry<I> {
    /// Announcers in the order they are to be grafted; a grafted one moves to the back.
    pub(crate) announcers: VecDeque<Announcer<I>>,
    /// Grafts sent for this id so far.
    pub(crate) grafts: u32,
    /// Grafts for this id that never left (the queue to the announcer was full).
    unsent: u32,
    deadline: (Instant, u64),
}

/// What [`Missing::announce`] did with an announcement.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Announced {
    /// First announcement of this id: its timer is armed.
    New,
    /// Another announcer for an id already missing (or one already known, or over the cap).
    Added,
    /// The table is full; the announcement was dropped.
    Full,
}

/// An announcement waiting for its graft timer.
#[derive(Debug)]
pub(crate) struct Waiting<I> {
    pub(crate) id: MessageId,
    pub(crate) announcer: Announcer<I>,
}

/// Waiting announcements of `first` and the `more` ids that follow it, from one announcer.
#[derive(Debug)]
struct WaitingRun<I> {
    due: Instant,
    first: MessageId,
    more: u64,
    announcer: Announcer<I>,
}

impl<I: PartialEq> WaitingRun<I> {
    /// Whether `id`, announced by `announcer` and due at `due`, extends this run.
    fn continues(&self, due: Instant, id: &MessageId, announcer: &Announcer<I>) -> bool {
        self.due == due
            && self.first.after(self.more + 1) == Some(*id)
            && self.announcer == *announcer
    }
}

#[derive(Debug)]
pub(crate) struct Missing<I> {
    /// Announcements of ids without an entry, oldest (and so first due) first.
    waiting: VecDeque<WaitingRun<I>>,
    /// Announcements in `waiting`.
    waiting_len: usize,
    entries: HashMap<MessageId, Entry<I>, foldhash::fast::RandomState>,
    timers: BTreeMap<(Instant, u64), MessageId>,
    next_timer: u64,
    max_entries: usize,
    max_announcers: usize,
    /// With the optimization on: for each id with announcements waiting, the announcer with the
    /// lowest round and how many of its announcements wait. At most one per waiting
    /// announcement, so bounded like the queue.
    lowest: Option<HashMap<MessageId, (Announcer<I>, u32), foldhash::fast::RandomState>>,
}

impl<I: Clone + PartialEq> Missing<I> {
    /// `lowest`: keep the lowest-round announcer of each waiting id
    /// ([`take_lowest`](Self::take_lowest)), which the optimization compares with a payload's
    /// sender.
    pub(crate) fn new(max_entries: usize, max_announcers: usize, lowest: bool) -> Self {
        Self {
            waiting: VecDeque::new(),
            waiting_len: 0,
            entries: HashMap::default(),
            timers: BTreeMap::new(),
            next_timer: 0,
            max_entries,
            max_announcers,
            lowest: lowest.then(HashMap::default),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn contains(&self, id: &MessageId) -> bool {
        self.entries.contains_key(id)
    }

    /// Whether an announcement due at `due` may wait: no announcement already waiting is due
    /// later.
    pub(crate) fn can_wait(&self, due: Instant) -> bool {
        self.waiting.back().is_none_or(|w| w.due <= due)
    }

    /// Keeps an announcement of an id without an entry until `due`, which must not be earlier
    /// than that of any announcement already waiting ([`can_wait`](Self::can_wait)). False if
    /// the queue is full (the announcement is dropped).
    pub(crate) fn wait(&mut self, due: Instant, id: MessageId, announcer: Announcer<I>) -> bool {
        if self.waiting_len >= self.max_entries.saturating_mul(self.max_announcers) {
            return false;
        }
        debug_assert!(self.waiting.back().is_none_or(|w| w.due <= due));
        self.waiting_len += 1;
        if let Some(lowest) = &mut self.lowest {
            match lowest.entry(id) {
                hash_map::Entry::Occupied(mut slot) => {
                    let (best, waiting) = slot.get_mut();
                    if announcer.round < best.round {
                        *best = announcer.clone();
                    }
                    *waiting += 1;
                }
                hash_map::Entry::Vacant(slot) => {
                    slot.insert((announcer.clone(), 1));
                }
            }
        }
        match self.waiting.back_mut() {
            Some(run) if run.continues(due, &id, &announcer) => run.more += 1,
            _ => self.waiting.push_back(WaitingRun {
                due,
                first: id,
                more: 0,
                announcer,
            }),
        }
        true
    }

    /// Takes the oldest waiting announcement if it is due at `now`.
    pub(crate) fn pop_waiting(&mut self, now: Instant) -> Option<Waiting<I>> {
        let run = self.waiting.front_mut()?;
        if run.due > now {
            return None;
        }
        self.waiting_len -= 1;
        let id = run.first;
        if let Some(lowest) = &mut self.lowest
            && let hash_map::Entry::Occupied(mut slot) = lowest.entry(id)
        {
            slot.get_mut().1 -= 1;
            if slot.get().1 == 0 {
                slot.remove();
            }
        }
        match id.after(1).filter(|_| run.more > 0) {
            Some(next) => {
                run.first = next;
                run.more -= 1;
                Some(Waiting {
                    id,
                    announcer: run.announcer.clone(),
                })
            }
            None => self.waiting.pop_front().map(|run| Waiting {
                id,
                announcer: run.announcer,
            }),
        }
    }

    /// Records that `peer` offers `id`; a new id's timer fires at `deadline`.
    pub(crate) fn announce(
        &mut self,
        id: MessageId,
        peer: I,
        round: u32,
        deadline: Instant,
    ) -> Announced {
        if let Some(entry) = self.entries.get_mut(&id) {
            let known = entry.announcers.iter().any(|a| a.peer == peer);
            if known {
                // A peer announces an id again only when a frame to us that carried it was
                // dropped (`Plumtree::handle_undelivered`): most likely the answer to one of our
                // grafts. That graft does not count towards giving up; without the refund, an
                // entry that had used its retries took the announcement in and then gave up,
                // and nothing announced the payload again: lost (seen in repair storms).
                entry.grafts = entry.grafts.saturating_sub(1);
            } else if entry.announcers.len() < self.max_announcers {
                // The last one grafted stays at the back, so the next graft tries the newcomer
                // before it returns to the ones already tried.
                let at = entry
                    .announcers
                    .len()
                    .saturating_sub(usize::from(entry.grafts > 0));
                entry.announcers.insert(at, Announcer { peer, round });
            }
            return Announced::Added;
        }
        if self.entries.len() >= self.max_entries {
            return Announced::Full;
        }
        let key = self.arm(deadline, id);
        let entry = Entry {
            announcers: VecDeque::from([Announcer { peer, round }]),
            grafts: 0,
            unsent: 0,
            deadline: key,
        };
        self.entries.insert(id, entry);
        Announced::New
    }

    /// The lowest-round announcer of `id` among its announcements still waiting, forgotten
    /// (its payload arrived). Always `None` unless built to keep them.
    pub(crate) fn take_lowest(&mut self, id: &MessageId) -> Option<Announcer<I>> {
        let (best, _) = self.lowest.as_mut()?.remove(id)?;
        Some(best)
    }

    /// Forgets `id` (its payload arrived, or we gave up), cancelling its timer.
    pub(crate) fn remove(&mut self, id: &MessageId) -> Option<Entry<I>> {
        let entry = self.entries.remove(id)?;
        self.timers.remove(&entry.deadline);
        Some(entry)
    }

    /// The earliest timer or waiting announcement.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.keys().next().map(|&(at, _)| at);
        let waiting = self.waiting.front().map(|w| w.due);
        timer.into_iter().chain(waiting).min()
    }

    /// Takes the next id whose timer is due at `now`; the caller grafts and then calls
    /// [`rearm`](Self::rearm) or [`remove`](Self::remove).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(MessageId, &mut Entry<I>)> {
        let (&key, _) = self
            .timers
            .first_key_value()
            .filter(|((at, _), _)| *at <= now)?;
        let id = self.timers.remove(&key).expect("key just seen");
        let entry = self.entries.get_mut(&id).expect("every timer has an entry");
        Some((id, entry))
    }

    /// A graft for `id` never left this node (the runtime could not queue it): it does not
    /// count towards giving up, and the next one waits `retry` doubled for every graft of this
    /// id that never left (up to 16 times). The queues to the announcers are full: grafting
    /// again at the usual pace only refills them, and in repair storms thousands of missing
    /// ids retrying every `graft_retry_timeout` kept the control lanes full of grafts.
    pub(crate) fn refund_graft(&mut self, id: &MessageId, now: Instant, retry: Duration) {
        let Some(entry) = self.entries.get_mut(id) else {
            return;
        };
        entry.grafts = entry.grafts.saturating_sub(1);
        entry.unsent = entry.unsent.saturating_add(1);
        let wait = retry.saturating_mul(1 << entry.unsent.min(4));
        let old = entry.deadline;
        if self.timers.remove(&old).is_some() {
            self.rearm(*id, now + wait);
        }
    }

    /// Arms the timer of an entry returned by [`pop_due`](Self::pop_due) again.
    pub(crate) fn rearm(&mut self, id: MessageId, deadline: Instant) {
        let key = self.arm(deadline, id);
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.deadline = key;
        }
    }

    /// Removes `peer` from every announcer list and the lowest-announcer table (it went down).
    /// Ids left with no announcer keep their timer, and are given up when it fires.
    pub(crate) fn forget_peer(&mut self, peer: &I) {
        for entry in self.entries.values_mut() {
            entry.announcers.retain(|a| a.peer != *peer);
        }
        // A swap towards it would prune the sender for a link that cannot be made.
        if let Some(lowest) = &mut self.lowest {
            lowest.retain(|_, (best, _)| best.peer != *peer);
        }
    }

    fn arm(&mut self, at: Instant, id: MessageId) -> (Instant, u64) {
        let key = (at, self.next_timer);
        self.next_timer += 1;
        self.timers.insert(key, id);
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn id(seq: u64) -> MessageId {
        MessageId::new(0, 0, seq)
    }

    #[test]
    fn an_announcement_due_sooner_than_the_last_one_waiting_cannot_wait() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut m = Missing::new(8, 2, false);
        assert!(m.can_wait(t0), "empty queue");
        assert!(m.wait(
            t0 + ms(100),
            id(1),
            Announcer {
                peer: 1u64,
                round: 0
            }
        ));
        assert!(m.can_wait(t0 + ms(100)));
        assert!(!m.can_wait(t0 + ms(99)));
    }

    #[test]
    fn bounds_hold_and_timers_follow_entries() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut m = Missing::new(2, 2, false);
        assert_eq!(m.announce(id(1), 'a', 1, t0 + ms(10)), Announced::New);
        assert_eq!(m.announce(id(1), 'a', 1, t0 + ms(99)), Announced::Added);
        assert_eq!(m.announce(id(1), 'b', 2, t0 + ms(99)), Announced::Added);
        assert_eq!(m.announce(id(1), 'c', 3, t0 + ms(99)), Announced::Added);
        assert_eq!(m.announce(id(2), 'a', 1, t0 + ms(5)), Announced::New);
        assert_eq!(m.announce(id(3), 'a', 1, t0 + ms(5)), Announced::Full);
        assert_eq!(m.len(), 2);
        assert_eq!(m.next_deadline(), Some(t0 + ms(5)));

        assert!(m.remove(&id(2)).is_some());
        assert_eq!(m.next_deadline(), Some(t0 + ms(10)));
        assert!(m.pop_due(t0 + ms(9)).is_none());
        let (due, entry) = m.pop_due(t0 + ms(10)).unwrap();
        assert_eq!(due, id(1));
        let peers: Vec<char> = entry.announcers.iter().map(|a| a.peer).collect();
        assert_eq!(peers, ['a', 'b'], "capped at max_announcers, no repeats");
        assert_eq!(m.next_deadline(), None);
        m.rearm(id(1), t0 + ms(20));
        m.forget_peer(&'a');
        assert_eq!(m.pop_due(t0 + ms(20)).unwrap().1.announcers.len(), 1);
    }

    #[test]
    fn waiting_announcements_leave_in_order_when_due_and_are_bounded() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let a = |peer| Announcer { peer, round: 0 };
        let mut m = Missing::new(2, 2, false); // room for 4 waiting announcements
        for (i, peer) in ['a', 'b', 'c', 'd'].into_iter().enumerate() {
            assert!(m.wait(t0 + ms(i as u64), id(i as u64), a(peer)));
        }
        assert!(!m.wait(t0 + ms(9), id(9), a('e')), "full: dropped");
        assert_eq!(m.next_deadline(), Some(t0));
        assert_eq!(m.pop_waiting(t0 + ms(1)).map(|w| w.id), Some(id(0)));
        assert_eq!(m.pop_waiting(t0 + ms(1)).map(|w| w.id), Some(id(1)));
        assert!(m.pop_waiting(t0 + ms(1)).is_none(), "the next is not due");
        assert_eq!(m.next_deadline(), Some(t0 + ms(2)));
        assert_eq!(m.len(), 0, "waiting announcements are not entries");
    }

    #[test]
    fn the_lowest_round_announcer_of_a_waiting_id_is_kept_until_its_last_announcement_leaves() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let a = |peer, round| Announcer { peer, round };
        let mut m = Missing::new(4, 2, true);
        assert!(m.wait(t0, id(1), a('a', 9)));
        assert!(m.wait(t0 + ms(1), id(1), a('b', 4)));
        assert!(
            m.wait(t0 + ms(2), id(1), a('c', 4)),
            "a tie keeps the first"
        );
        assert!(m.wait(t0 + ms(2), id(2), a('c', 7)));
        assert_eq!(m.take_lowest(&id(2)), Some(a('c', 7)), "its payload came");
        assert_eq!(m.take_lowest(&id(2)), None, "forgotten");
        assert!(m.pop_waiting(t0 + ms(1)).is_some());
        assert!(m.pop_waiting(t0 + ms(1)).is_some());
        assert_eq!(m.lowest.as_ref().unwrap()[&id(1)], (a('b', 4), 1));
        while m.pop_waiting(t0 + ms(2)).is_some() {}
        assert!(
            m.lowest.as_ref().unwrap().is_empty(),
            "nothing waits: nothing kept"
        );
        assert_eq!(m.take_lowest(&id(1)), None);

        let mut off = Missing::new(4, 2, false);
        assert!(off.wait(t0, id(1), a('a', 1)));
        assert_eq!(off.take_lowest(&id(1)), None, "not kept unless asked");
    }

    #[test]
    fn waiting_announcements_are_kept_in_runs_and_given_back_one_by_one() {
        let t0 = Instant::now();
        let a = |peer, round| Announcer { peer, round };
        let mut m = Missing::new(4, 2, false); // room for 8 waiting announcements
        let arrivals = [
            (t0, id(1), a('a', 0)),
            (t0, id(2), a('a', 0)), // continues the first run
            (t0, id(3), a('a', 0)),
            (t0, id(5), a('a', 0)),                            // a gap
            (t0, id(6), a('b', 0)),                            // another peer
            (t0, id(7), a('b', 1)),                            // another round
            (t0 + Duration::from_millis(1), id(8), a('b', 1)), // due later
            (
                t0 + Duration::from_millis(1),
                MessageId::new(9, 0, 9),
                a('b', 1),
            ), // another origin
        ];
        for (due, id, announcer) in arrivals.clone() {
            assert!(m.wait(due, id, announcer));
        }
        assert_eq!(m.waiting.len(), 6, "ids 1 to 3 in one run");
        assert!(
            !m.wait(t0 + Duration::from_millis(1), id(9), a('b', 1)),
            "8 announcements: full"
        );
        let mut popped = Vec::new();
        while let Some(w) = m.pop_waiting(t0 + Duration::from_millis(1)) {
            popped.push((w.id, w.announcer));
        }
        let expected: Vec<_> = arrivals.into_iter().map(|(_, id, a)| (id, a)).collect();
        assert_eq!(popped, expected, "each announcement back, in arrival order");
        assert!(
            m.wait(t0 + Duration::from_millis(2), id(10), a('a', 0)),
            "room again"
        );
    }
}
