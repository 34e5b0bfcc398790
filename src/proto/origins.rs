//! [`Origins`]: what this node has delivered of each origin's payloads, by sequence number, kept
//! beyond the seen set. Anti-entropy reads it to tell a neighbour what it can supply and to work
//! out what it lacks itself.
//!
//! An origin numbers its payloads in order (per incarnation), so what a node has delivered of
//! one origin is a mark, `next` (every sequence number below it, down to the record's `floor`,
//! delivered or given up), and the few runs delivered above it while a payload below them is
//! still missing. Bounded: at most `max` origins (the one heard from least recently leaves),
//! and at most [`MAX_RUNS`] runs above the mark per origin (past that, the lowest hole is given
//! up and reported).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::message::MessageId;

/// Most runs of delivered ids kept above an origin's mark; each extra hole gives up the lowest.
pub(crate) const MAX_RUNS: usize = 1024;

/// An origin incarnation: the origin's tag and its incarnation.
pub(crate) type Key = (u64, u64);

/// Sequence numbers a node gave up on, reported as one gap: `first` and the `count - 1` after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Gap {
    pub(crate) first: MessageId,
    pub(crate) count: u64,
}

/// What one node has delivered of one origin incarnation.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    /// The lowest sequence number the record covers: the first one this node heard of.
    floor: u64,
    /// Every sequence number in `floor..next` was delivered (or given up).
    next: u64,
    /// Runs delivered above `next`, `start -> end` (exclusive), never touching each other.
    above: BTreeMap<u64, u64>,
    /// Nothing below it is still cached here (found lazily, see `cached_from`).
    cached_from: u64,
    /// When a delivery last moved this record.
    pub(crate) touched: Instant,
    /// When the record was made: what it holds was delivered (or given up) since.
    pub(crate) created: Instant,
    /// Until when a request for this origin is outstanding (no second one before).
    pub(crate) asked_until: Option<Instant>,
    /// Since when this node has known that it lacks some of what lies below the sequence
    /// number given (a digest offered it, or a later payload arrived).
    pub(crate) stale: Option<(Instant, u64)>,
}

impl Record {
    fn new(seq: u64, now: Instant) -> Self {
        Self {
            floor: seq,
            next: seq,
            above: BTreeMap::new(),
            cached_from: seq,
            touched: now,
            created: now,
            asked_until: None,
            stale: None,
        }
    }

    /// Notes that something below `below` is lacking, unless an earlier note still stands.
    pub(crate) fn lacking_since(&mut self, now: Instant, below: u64) {
        if self.stale.is_none() {
            self.stale = Some((now, below));
        }
    }

    /// The lowest sequence number the record covers.
    pub(crate) fn floor(&self) -> u64 {
        self.floor
    }

    /// Every sequence number below it (down to the floor) is delivered or given up.
    pub(crate) fn next(&self) -> u64 {
        self.next
    }

    /// Whether `seq` was delivered (or given up). Below the floor: unknown, so no.
    pub(crate) fn has(&self, seq: u64) -> bool {
        if seq < self.next {
            return seq >= self.floor;
        }
        self.above
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, &end)| seq < end)
    }

    /// Marks `seq` delivered. Returns the run given up if the record had to drop a hole to stay
    /// within [`MAX_RUNS`].
    fn deliver(&mut self, seq: u64) -> Option<(u64, u64)> {
        if seq == self.next {
            // The common case, payloads in order: no run to touch (every run starts above the
            // mark, so `seq` was not delivered).
            self.next += 1;
            self.settle();
            return None;
        }
        if self.has(seq) {
            return None;
        }
        if seq < self.floor {
            // Heard of before the floor (a late copy of an old payload): the record grows down.
            self.lower_floor(seq);
        }
        let mut start = seq;
        let mut end = seq.saturating_add(1);
        if let Some((&s, &e)) = self.above.range(..seq).next_back()
            && e == seq
        {
            self.above.remove(&s);
            start = s;
        }
        if let Some(e) = self.above.remove(&end) {
            end = e;
        }
        self.above.insert(start, end);
        self.settle();
        if self.above.len() > MAX_RUNS {
            let given_up = (
                self.next,
                *self.above.keys().next().expect("over the limit"),
            );
            self.next = given_up.1;
            self.settle();
            return Some(given_up);
        }
        None
    }

    /// Moves the mark over the runs that now start at it.
    fn settle(&mut self) {
        while let Some((&start, &end)) = self.above.first_key_value() {
            if start > self.next {
                break;
            }
            self.above.remove(&start);
            self.next = self.next.max(end);
        }
    }

    /// Extends the record down to `floor`: the sequence numbers between it and the old floor are
    /// now lacking.
    fn lower_floor(&mut self, floor: u64) {
        if self.next > self.floor {
            self.above.insert(self.floor, self.next);
        }
        self.floor = floor;
        self.next = floor;
        self.cached_from = self.cached_from.min(floor);
    }

    /// The runs of `from..to` not delivered here.
    pub(crate) fn lacking(&self, from: u64, to: u64) -> Vec<(u64, u64)> {
        let mut lacking = Vec::new();
        let mut at = from.max(self.next);
        for (&start, &end) in self.above.range(..to) {
            if end <= at {
                continue;
            }
            if start > at {
                lacking.push((at, start.min(to)));
            }
            at = at.max(end);
            if at >= to {
                break;
            }
        }
        if at < to {
            lacking.push((at, to));
        }
        lacking
    }

    /// Gives up everything lacking below `seq`; returns the runs given up.
    pub(crate) fn give_up_below(&mut self, seq: u64) -> Vec<(u64, u64)> {
        let given_up = self.lacking(self.next, seq);
        if seq > self.next {
            self.next = seq;
            // Runs that lay below the new mark, or straddle it, are absorbed.
            let inside: Vec<u64> = self.above.range(..seq).map(|(&s, _)| s).collect();
            for start in inside {
                if let Some(end) = self.above.remove(&start) {
                    self.next = self.next.max(end);
                }
            }
            self.settle();
        }
        given_up
    }

    /// The run this node can supply: from the lowest sequence number still cached (as
    /// `is_cached` says; the search resumes where the last one stopped) up to the mark.
    pub(crate) fn supply(&mut self, is_cached: impl Fn(u64) -> bool) -> Option<(u64, u64)> {
        self.cached_from = self.cached_from.max(self.floor);
        while self.cached_from < self.next && !is_cached(self.cached_from) {
            self.cached_from += 1;
        }
        (self.cached_from < self.next).then_some((self.cached_from, self.next))
    }
}

/// The records of every origin this node tracks.
#[derive(Debug)]
pub(crate) struct Origins {
    /// Ordered, so that digests walk them in the same order on every run (the simulator is
    /// deterministic).
    records: BTreeMap<Key, Record>,
    max: usize,
}

impl Origins {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            records: BTreeMap::new(),
            max,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// Records a delivery; returns a gap if a hole had to be given up. The last sequence number
    /// (`u64::MAX`, which no origin reaches, but a forged id may carry) is not tracked: a record's
    /// mark could not move past it.
    pub(crate) fn deliver(&mut self, id: &MessageId, now: Instant) -> Option<Gap> {
        if id.seq() == u64::MAX {
            return None;
        }
        let key = (id.origin(), id.incarnation());
        let record = self.entry(key, id.seq(), now);
        record.touched = now;
        let given_up = record.deliver(id.seq());
        if record.next() <= id.seq() {
            // Delivered above a hole: what the hole holds is known to be missing.
            record.lacking_since(now, id.seq());
        }
        let (from, to) = given_up?;
        Some(Gap {
            first: MessageId::new(key.0, key.1, from),
            count: to - from,
        })
    }

    /// The record of `key`, created at `seq` if there is none (making room if needed).
    pub(crate) fn entry(&mut self, key: Key, seq: u64, now: Instant) -> &mut Record {
        if !self.records.contains_key(&key) && self.records.len() >= self.max {
            let oldest = self
                .records
                .iter()
                .min_by_key(|(_, r)| r.touched)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                self.records.remove(&oldest);
            }
        }
        self.records
            .entry(key)
            .or_insert_with(|| Record::new(seq, now))
    }

    /// Extends `key`'s record down to `seq` if it starts above it.
    pub(crate) fn reach_down(&mut self, key: Key, seq: u64, now: Instant) -> &mut Record {
        let record = self.entry(key, seq, now);
        if seq < record.floor {
            record.lower_floor(seq);
        }
        record
    }

    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn get(&self, key: &Key) -> Option<&Record> {
        self.records.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &Key) -> Option<&mut Record> {
        self.records.get_mut(key)
    }

    /// Every key, the record a delivery moved most recently first.
    pub(crate) fn by_recency(&self) -> Vec<Key> {
        let mut keys: Vec<(Instant, Key)> =
            self.records.iter().map(|(k, r)| (r.touched, *k)).collect();
        keys.sort_unstable_by(|a, b| b.cmp(a));
        keys.into_iter().map(|(_, k)| k).collect()
    }

    /// Records from `after` on (wrapping around), for digests that take turns over all of them.
    pub(crate) fn iter_from(
        &mut self,
        after: Option<Key>,
    ) -> impl Iterator<Item = (&Key, &mut Record)> {
        let split = after.map_or(Default::default(), |k| (k.0, k.1.saturating_add(1)));
        let (head, tail): (Vec<_>, Vec<_>) =
            self.records.iter_mut().partition(|(k, _)| **k >= split);
        head.into_iter().chain(tail)
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&Key, &mut Record)> {
        self.records.iter_mut()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn record(seqs: &[u64]) -> Record {
        let mut r = Record::new(seqs[0], Instant::now());
        for &s in seqs {
            assert!(r.deliver(s).is_none());
        }
        r
    }

    #[test]
    fn the_mark_follows_contiguous_deliveries_and_runs_hold_the_rest() {
        let r = record(&[10, 11, 13, 14, 17]);
        assert_eq!(r.next(), 12);
        assert!(r.has(11) && r.has(13) && r.has(17));
        assert!(!r.has(12) && !r.has(15) && !r.has(9));
        assert_eq!(r.lacking(0, 20), vec![(12, 13), (15, 17), (18, 20)]);
        assert_eq!(r.lacking(14, 16), vec![(15, 16)]);
    }

    #[test]
    fn a_hole_filled_moves_the_mark_over_the_runs_above_it() {
        let mut r = record(&[0, 2, 3, 5]);
        r.deliver(1);
        assert_eq!(r.next(), 4);
        r.deliver(4);
        assert_eq!(r.next(), 6);
        assert!(r.above.is_empty());
    }

    #[test]
    fn giving_up_moves_the_mark_and_names_what_was_lacking() {
        let mut r = record(&[0, 3, 4, 8]);
        assert_eq!(r.give_up_below(6), vec![(1, 3), (5, 6)]);
        assert_eq!(r.next(), 6);
        assert!(r.has(8) && !r.has(7));
    }

    #[test]
    fn a_lower_floor_makes_the_older_numbers_lacking() {
        let mut origins = Origins::new(8);
        let now = Instant::now();
        for seq in 20..25 {
            origins.deliver(&MessageId::new(1, 1, seq), now);
        }
        let r = origins.reach_down((1, 1), 15, now);
        assert_eq!(r.lacking(15, 25), vec![(15, 20)]);
        for seq in 15..20 {
            origins.deliver(&MessageId::new(1, 1, seq), now);
        }
        assert_eq!(origins.get(&(1, 1)).unwrap().next(), 25);
    }

    #[test]
    fn the_least_recently_heard_origin_leaves_first() {
        let mut origins = Origins::new(2);
        let t = Instant::now();
        origins.deliver(&MessageId::new(1, 1, 0), t);
        origins.deliver(
            &MessageId::new(2, 1, 0),
            t + std::time::Duration::from_secs(1),
        );
        origins.deliver(
            &MessageId::new(1, 1, 1),
            t + std::time::Duration::from_secs(2),
        );
        origins.deliver(
            &MessageId::new(3, 1, 0),
            t + std::time::Duration::from_secs(3),
        );
        assert_eq!(origins.len(), 2);
        assert!(origins.get(&(2, 1)).is_none());
    }

    #[test]
    fn the_last_sequence_number_is_not_tracked() {
        let mut origins = Origins::new(4);
        let now = Instant::now();
        let last = MessageId::new(1, 1, u64::MAX);
        assert_eq!(origins.deliver(&last, now), None);
        assert_eq!(origins.deliver(&last, now), None);
        assert_eq!(origins.len(), 0);
    }

    #[test]
    fn supply_skips_what_is_no_longer_cached() {
        let mut r = record(&[0, 1, 2, 3, 4]);
        assert_eq!(r.supply(|s| s >= 2), Some((2, 5)));
        assert_eq!(r.supply(|_| false), None);
    }

    proptest! {
        /// Whatever the order of deliveries, the record answers `has` as a set would, and holds
        /// no more runs than allowed.
        #[test]
        fn deliveries_in_any_order_are_recorded_exactly(
            seqs in proptest::collection::vec(0u64..300, 1..400),
        ) {
            let mut r = Record::new(seqs[0], Instant::now());
            let mut set = std::collections::BTreeSet::new();
            for &s in &seqs {
                prop_assert!(r.deliver(s).is_none());
                set.insert(s);
            }
            let floor = *set.iter().next().unwrap();
            for s in 0..320 {
                prop_assert_eq!(r.has(s), s >= floor && set.contains(&s), "seq {}", s);
            }
            let lacking: u64 = r.lacking(floor, 320).iter().map(|(a, b)| b - a).sum();
            prop_assert_eq!(lacking, 320 - floor - set.len() as u64);
        }
    }
}
