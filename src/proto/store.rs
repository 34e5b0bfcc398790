//! [`MessageStore`]: the ids we have delivered (the seen set) and the payloads we keep to answer
//! Grafts (the cache), in one table.
//!
//! Both are bounded and forget their oldest entries first. One queue holds every id in arrival
//! order (which is age order); the seen set forgets from its front, and the cache drops payloads
//! at a cursor that walks it from the front too, so every bound is enforced in O(1) amortized
//! time per insert. One table serves both because a new payload is checked, marked seen and
//! cached in a single hash probe, and one queue because both age from the same instant: each
//! insert writes one queue entry instead of two (on the hot path, those writes to fresh memory
//! cost about as much as the table probe).
//!
//! The cache is a subset of the seen set: both record an id at the same instant and the config
//! requires the seen set to be at least as large and as long-lived, so the seen set never
//! forgets an id the cache still holds (the code copes if it did).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::seq_windows::SeqWindows;
use crate::message::{Encoding, Gossip, MessageId, Signature};

/// A payload kept to answer Grafts.
#[derive(Clone, Debug)]
pub(crate) struct Cached<I> {
    pub(crate) origin: I,
    /// Our hop count for it: the round we forward it with.
    pub(crate) hops: u32,
    /// As it travels (compressed or not): what a Graft or a Want is answered with.
    pub(crate) payload: Bytes,
    pub(crate) encoding: Encoding,
    pub(crate) signature: Option<Signature>,
}

impl<I: Clone> Cached<I> {
    /// The payload sent again as it came (a Graft's or a Want's answer), after a path whose
    /// heaviest link weighed `heaviest`.
    pub(crate) fn gossip(&self, id: MessageId, heaviest: u32) -> Gossip<I> {
        Gossip {
            id,
            origin: self.origin.clone(),
            round: self.hops,
            heaviest,
            payload: self.payload.clone(),
            encoding: self.encoding,
            signature: self.signature.clone(),
        }
    }
}

/// What the store remembers of a payload it has seen, cached or not.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seen {
    /// When it first arrived (or was broadcast here).
    pub(crate) at: Instant,
    /// The heaviest link weight on the path of that first copy, its last link included.
    pub(crate) heaviest: u32,
}

#[derive(Debug)]
struct Record<I> {
    seen: Seen,
    cached: Option<Cached<I>>,
}

/// The limits of a [`MessageStore`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) seen_len: usize,
    pub(crate) seen_ttl: Duration,
    pub(crate) cache_len: usize,
    pub(crate) cache_bytes: usize,
    pub(crate) cache_ttl: Duration,
    /// How long a payload must stay cached for a repair to find it (`room_at`).
    pub(crate) horizon: Duration,
}

#[derive(Debug)]
pub(crate) struct MessageStore<I> {
    /// foldhash with a random per-process key: several times faster than SipHash on 24-byte
    /// ids, and still keyed, so peers cannot choose ids that collide.
    records: HashMap<MessageId, Record<I>, foldhash::fast::RandomState>,
    /// Answers most "seen?" questions without touching `records`.
    windows: SeqWindows,
    /// Every id in `records` with the instant it was first seen, oldest first.
    order: VecDeque<(Instant, MessageId)>,
    /// How many entries at the front of `order` the cache has passed: their payloads are gone.
    /// Every payload still cached belongs to an entry at or after this index.
    uncached: usize,
    /// Payloads cached, and their bytes.
    cache_len: usize,
    cache_bytes: usize,
    limits: Limits,
    /// How long a payload stays cached: `cache_ttl`, or less (adaptive cache retention).
    retention: Duration,
    /// Index in `order` of the first entry seen less than `horizon` ago, as of the last
    /// `room_at`: entries age past it in order.
    young: usize,
    /// Bytes of the payloads still cached at or after `young`.
    young_bytes: usize,
}

impl<I> MessageStore<I> {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            records: HashMap::default(),
            windows: SeqWindows::default(),
            order: VecDeque::new(),
            uncached: 0,
            cache_len: 0,
            cache_bytes: 0,
            retention: limits.cache_ttl,
            limits,
            young: 0,
            young_bytes: 0,
        }
    }

    /// Keeps payloads for `retention` after they were first seen (at most `cache_ttl`).
    pub(crate) fn set_retention(&mut self, retention: Duration) {
        self.retention = retention.min(self.limits.cache_ttl);
    }

    /// Ids remembered as seen.
    pub(crate) fn seen_len(&self) -> usize {
        self.records.len()
    }

    /// Payloads cached, and their total size in bytes.
    pub(crate) fn cache_usage(&self) -> (usize, usize) {
        (self.cache_len, self.cache_bytes)
    }

    pub(crate) fn contains(&self, id: &MessageId) -> bool {
        self.windows
            .get(id)
            .unwrap_or_else(|| self.records.contains_key(id))
    }

    /// How `id` was first seen, if it is remembered.
    pub(crate) fn seen(&self, id: &MessageId) -> Option<Seen> {
        if self.windows.get(id) == Some(false) {
            return None; // a new payload: no probe into `records`
        }
        self.records.get(id).map(|r| r.seen)
    }

    pub(crate) fn cached(&self, id: &MessageId) -> Option<&Cached<I>> {
        self.records.get(id)?.cached.as_ref()
    }

    /// Marks `id` seen and caches its payload, unless it was seen before: then nothing changes
    /// and the first sighting is returned.
    pub(crate) fn insert(&mut self, seen: Seen, id: MessageId, payload: Cached<I>) -> Option<Seen> {
        let now = seen.at;
        let weight = payload.payload.len();
        // A payload over the whole byte budget is remembered as seen but not cached.
        let cached = (weight <= self.limits.cache_bytes).then_some(payload);
        let keep = cached.is_some();
        match self.records.entry(id) {
            Entry::Occupied(record) => return Some(record.get().seen),
            Entry::Vacant(slot) => slot.insert(Record { seen, cached }),
        };
        self.windows.insert(&id);
        self.order.push_back((now, id));
        if keep {
            self.cache_len += 1;
            self.cache_bytes += weight;
            self.young_bytes += weight;
        }
        while (self.cache_len > self.limits.cache_len || self.cache_bytes > self.limits.cache_bytes)
            && self.uncache_next()
        {}
        while self.order.len() > self.limits.seen_len {
            self.forget_oldest();
        }
        None
    }

    /// When one more id may enter without pushing out of the cache a payload first seen less
    /// than the horizon ago, counting a payload of up to `room` bytes, and with at most `count`
    /// ids seen per horizon (a bound of its own when smaller than the cache's); `None` if it may
    /// now. The instant is the next at which the answer can change unless the store does.
    pub(crate) fn room_at(&mut self, now: Instant, count: usize, room: usize) -> Option<Instant> {
        let horizon = self.limits.horizon;
        while let Some(&(at, id)) = self.order.get(self.young) {
            if at + horizon > now {
                break;
            }
            if self.young >= self.uncached {
                if let Some(cached) = self.records.get(&id).and_then(|r| r.cached.as_ref()) {
                    self.young_bytes -= cached.payload.len();
                }
            }
            self.young += 1;
        }
        // The id a new one pushes out of the last `count` seen: with `count` the cache's bound,
        // the payload the cache would drop.
        let count = count.min(self.limits.cache_len);
        let by_count = (self.order.len())
            .checked_sub(count)
            .and_then(|i| self.order.get(i))
            .map(|&(at, _)| at + horizon)
            .filter(|&at| at > now);
        // Eviction goes oldest first, so only the young payloads must fit beside the new one
        // (which, over the whole budget, would not be cached at all). Over it, the next change
        // is when the oldest young entry ages out.
        let room = room.min(self.limits.cache_bytes);
        let by_bytes = if self.young_bytes + room > self.limits.cache_bytes {
            self.order.get(self.young).map(|&(at, _)| at + horizon)
        } else {
            None
        };
        by_count.into_iter().chain(by_bytes).max()
    }

    /// Drops what has outlived its ttl.
    pub(crate) fn expire(&mut self, now: Instant) {
        while self.next_uncache().is_some_and(|at| at <= now) {
            self.uncache_next();
        }
        while self.next_forget().is_some_and(|at| at <= now) {
            self.forget_oldest();
        }
    }

    /// When the next entry expires.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.next_uncache()
            .into_iter()
            .chain(self.next_forget())
            .min()
    }

    /// When the cache passes its next entry (which may hold no payload: one too large to cache).
    fn next_uncache(&self) -> Option<Instant> {
        let &(at, _) = self.order.get(self.uncached)?;
        Some(at + self.retention)
    }

    fn next_forget(&self) -> Option<Instant> {
        let &(at, _) = self.order.front()?;
        Some(at + self.limits.seen_ttl)
    }

    /// Passes the cache over its next entry, dropping the payload it holds; false at the end.
    fn uncache_next(&mut self) -> bool {
        let Some(&(_, id)) = self.order.get(self.uncached) else {
            return false;
        };
        let young = self.uncached >= self.young;
        self.uncached += 1;
        if let Some(cached) = self.records.get_mut(&id).and_then(|r| r.cached.take()) {
            self.cache_len -= 1;
            self.cache_bytes -= cached.payload.len();
            if young {
                self.young_bytes -= cached.payload.len();
            }
        }
        true
    }

    fn forget_oldest(&mut self) {
        let Some((_, id)) = self.order.pop_front() else {
            return;
        };
        let record = self.records.remove(&id);
        if record.is_some() {
            self.windows.remove(&id);
        }
        let young = self.young == 0;
        self.young = self.young.saturating_sub(1);
        if self.uncached > 0 {
            self.uncached -= 1;
        } else if let Some(Record {
            cached: Some(cached),
            ..
        }) = record
        {
            // Only with limits the config forbids (a seen set smaller than the cache).
            self.cache_len -= 1;
            self.cache_bytes -= cached.payload.len();
            if young {
                self.young_bytes -= cached.payload.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(seq: u64) -> MessageId {
        MessageId::new(0, 0, seq)
    }

    fn at(t: Instant) -> Seen {
        Seen { at: t, heaviest: 0 }
    }

    fn payload(len: usize) -> Cached<u64> {
        Cached {
            origin: 1,
            hops: 0,
            payload: Bytes::from(vec![0; len]),
            encoding: Encoding::Plain,
            signature: None,
        }
    }

    fn limits(seen_len: usize, cache_len: usize, cache_bytes: usize) -> Limits {
        Limits {
            seen_len,
            seen_ttl: Duration::from_millis(200),
            cache_len,
            cache_bytes,
            cache_ttl: Duration::from_millis(100),
            horizon: Duration::from_millis(50),
        }
    }

    #[test]
    fn insert_reports_the_first_sighting() {
        let t = Instant::now();
        let mut s = MessageStore::new(limits(10, 10, 100));
        let first = Seen { at: t, heaviest: 7 };
        assert!(s.insert(first, id(1), payload(1)).is_none());
        let again = s.insert(at(t + Duration::from_millis(5)), id(1), payload(1));
        assert!(again.is_some_and(|seen| seen.at == t && seen.heaviest == 7));
        assert_eq!(s.seen_len(), 1);
        assert_eq!(s.cache_usage(), (1, 1));
    }

    #[test]
    fn count_and_byte_bounds_evict_the_oldest() {
        let t = Instant::now();
        let mut s = MessageStore::new(limits(3, 2, 10));
        s.insert(at(t), id(1), payload(6));
        s.insert(at(t), id(2), payload(4));
        s.insert(at(t), id(3), payload(1)); // cache: over 2 entries and 10 bytes -> 1 goes
        assert!(s.cached(&id(1)).is_none() && s.contains(&id(1)));
        assert_eq!(s.cache_usage(), (2, 5));
        s.insert(at(t), id(4), payload(11)); // over the byte budget on its own: seen, not cached
        assert!(s.cached(&id(4)).is_none() && s.contains(&id(4)));
        assert!(!s.contains(&id(1)), "seen bound of 3");
        assert_eq!(s.seen_len(), 3);
    }

    #[test]
    fn ttls_expire_cache_then_seen() {
        let t = Instant::now();
        let mut s = MessageStore::new(limits(10, 10, 100));
        s.insert(at(t), id(1), payload(1));
        assert_eq!(s.next_expiry(), Some(t + Duration::from_millis(100)));
        s.expire(t + Duration::from_millis(100));
        assert!(s.cached(&id(1)).is_none() && s.contains(&id(1)));
        assert_eq!(s.next_expiry(), Some(t + Duration::from_millis(200)));
        s.expire(t + Duration::from_millis(200));
        assert_eq!((s.seen_len(), s.next_expiry()), (0, None));
    }

    proptest::proptest! {
        /// With the windows in front, `contains` and `seen` answer as the table alone would:
        /// ids in dense runs from a few origins, far jumps (a restart, a forged id), and now
        /// and then one of a hundred origins (more than there are windows), under the count
        /// bound and expiry.
        #[test]
        fn windows_agree_with_the_table(
            steps in proptest::collection::vec((0u64..100, 0u64..400, 0u8..8, 0u64..3), 1..400),
        ) {
            let t = Instant::now();
            let mut s = MessageStore::new(limits(150, 100, 1 << 20));
            let mut clock = Duration::ZERO;
            for (origin, seq, kind, wait) in steps {
                let seq = if kind == 0 { seq * 1_000_003 } else { seq };
                let origin = if kind == 1 { origin } else { origin % 3 };
                clock += Duration::from_millis(wait * 3);
                s.expire(t + clock);
                s.insert(at(t + clock), MessageId::new(origin, 0, seq), payload(1));
                for o in [0, 1, 2, origin] {
                    for probe in [seq, seq + 1, seq.saturating_sub(70)] {
                        let probe = MessageId::new(o, 0, probe);
                        let truth = s.records.contains_key(&probe);
                        proptest::prop_assert_eq!(s.contains(&probe), truth);
                        proptest::prop_assert_eq!(s.seen(&probe).is_some(), truth);
                    }
                }
            }
        }
    }

    proptest::proptest! {
        /// Under inserts of any size (some over the byte budget), waits and retention changes,
        /// the cache's counts match the payloads its records hold, every bound holds, the newest
        /// payload is cached if it fits, and nothing outlives its ttl after `expire`.
        #[test]
        fn cache_bookkeeping_matches_the_records(
            steps in proptest::collection::vec((0usize..60, 0u64..40, 0u8..10), 1..300),
        ) {
            let t = Instant::now();
            let mut s = MessageStore::new(limits(20, 8, 100));
            let mut clock = Duration::ZERO;
            for (seq, (len, wait, knob)) in (0u64..).zip(steps) {
                clock += Duration::from_millis(wait);
                let now = t + clock;
                if knob == 0 {
                    s.set_retention(Duration::from_millis(u64::from(len as u8) * 2));
                }
                s.expire(now);
                for (id, record) in &s.records {
                    let at = record.seen.at;
                    proptest::prop_assert!(at + s.limits.seen_ttl > now, "{id:?} outlived the seen ttl");
                    proptest::prop_assert!(record.cached.is_none() || at + s.retention > now);
                }
                s.insert(at(now), id(seq), payload(len));
                let held: Vec<usize> = s
                    .records
                    .values()
                    .filter_map(|r| r.cached.as_ref().map(|c| c.payload.len()))
                    .collect();
                proptest::prop_assert_eq!(s.cache_usage(), (held.len(), held.iter().sum()));
                proptest::prop_assert!(held.len() <= 8 && s.cache_usage().1 <= 100);
                proptest::prop_assert!(s.seen_len() <= 20 && s.seen_len() == s.order.len());
                proptest::prop_assert_eq!(s.cached(&id(seq)).is_some(), len <= 100);
            }
        }
    }

    proptest::proptest! {
        /// A caller that inserts only when `room_at` allows (and otherwise waits until its
        /// instant) never makes the cache drop a payload younger than the horizon by count or
        /// bytes, and `room_at` never names an instant that has passed.
        #[test]
        fn admitted_inserts_never_push_out_a_young_payload(
            steps in proptest::collection::vec((1usize..40, 0u64..30, proptest::bool::ANY), 1..300),
            count in 1usize..12,
        ) {
            let t = Instant::now();
            let mut s = MessageStore::new(Limits {
                cache_ttl: Duration::from_secs(1),
                ..limits(40, 8, 100)
            });
            let mut now = t;
            for (seq, (len, wait, relayed)) in (0u64..).zip(steps) {
                now += Duration::from_millis(wait);
                s.expire(now);
                // Relayed payloads arrive whatever the admission says; broadcasts wait for it.
                if !relayed {
                    // Each wait reaches an instant where the answer may change: wait again
                    // until there is room (entries only age, so it comes).
                    while let Some(at) = s.room_at(now, count, 40) {
                        proptest::prop_assert!(at > now);
                        now = at;
                        s.expire(now);
                    }
                }
                let young_before: Vec<MessageId> = s
                    .records
                    .iter()
                    .filter(|(_, r)| r.cached.is_some() && r.seen.at + s.limits.horizon > now)
                    .map(|(id, _)| *id)
                    .collect();
                s.insert(at(now), id(seq), payload(len));
                s.room_at(now, count, 40);
                let young_bytes: usize = s.order.range(s.young..)
                    .filter_map(|(_, id)| s.cached(id).map(|c| c.payload.len()))
                    .sum();
                proptest::prop_assert_eq!(s.young_bytes, young_bytes);
                if !relayed {
                    for young in young_before {
                        proptest::prop_assert!(s.cached(&young).is_some(), "{young:?} dropped young");
                    }
                }
            }
        }
    }

    #[test]
    fn forgetting_a_cached_id_keeps_the_cache_consistent() {
        let t = Instant::now();
        let mut s = MessageStore::new(limits(1, 5, 100)); // seen smaller than cache: forbidden by config
        s.insert(at(t), id(1), payload(3));
        s.insert(at(t), id(2), payload(4));
        assert_eq!(s.cache_usage(), (1, 4));
        assert!(s.cached(&id(2)).is_some());
    }
}
