//! [`Missing`]: payloads we have been told about but not received, who offered them, and when to
//! graft.
//!
//! Bounded twice: at most `max_missing` ids and `max_announcers` announcers per id. Each id has
//! exactly one timer, kept in an ordered map so that removing an id cancels its timer and stale
//! timers cannot pile up.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

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

#[derive(Debug)]
pub(crate) struct Missing<I> {
    entries: HashMap<MessageId, Entry<I>, foldhash::fast::RandomState>,
    timers: BTreeMap<(Instant, u64), MessageId>,
    next_timer: u64,
    max_entries: usize,
    max_announcers: usize,
}

impl<I: PartialEq> Missing<I> {
    pub(crate) fn new(max_entries: usize, max_announcers: usize) -> Self {
        Self {
            entries: HashMap::default(),
            timers: BTreeMap::new(),
            next_timer: 0,
            max_entries,
            max_announcers,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
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
            if entry.announcers.len() < self.max_announcers
                && !entry.announcers.iter().any(|a| a.peer == peer)
            {
                entry.announcers.push_back(Announcer { peer, round });
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
            deadline: key,
        };
        self.entries.insert(id, entry);
        Announced::New
    }

    /// Forgets `id` (its payload arrived, or we gave up), cancelling its timer.
    pub(crate) fn remove(&mut self, id: &MessageId) -> Option<Entry<I>> {
        let entry = self.entries.remove(id)?;
        self.timers.remove(&entry.deadline);
        Some(entry)
    }

    /// The earliest timer.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.keys().next().map(|&(at, _)| at)
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

    /// Arms the timer of an entry returned by [`pop_due`](Self::pop_due) again.
    pub(crate) fn rearm(&mut self, id: MessageId, deadline: Instant) {
        let key = self.arm(deadline, id);
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.deadline = key;
        }
    }

    /// Removes `peer` from every announcer list (it went down). Ids left with no announcer keep
    /// their timer, and are given up when it fires.
    pub(crate) fn forget_peer(&mut self, peer: &I) {
        for entry in self.entries.values_mut() {
            entry.announcers.retain(|a| a.peer != *peer);
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
    fn bounds_hold_and_timers_follow_entries() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut m = Missing::new(2, 2);
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
}
