//! [`History`]: a map of message ids bounded by count, bytes and age, oldest out first.
//!
//! Both the payload cache and the seen set are histories: entries are only ever added at the
//! back and removed from the front, so insertion order is age order and every bound is enforced
//! in O(1) amortized time per insert.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::message::MessageId;

/// What an entry costs towards the byte bound.
pub(crate) trait Weight {
    fn weight(&self) -> usize;
}

/// The seen set stores when each id was first received; it counts nothing towards bytes.
impl Weight for std::time::Instant {
    fn weight(&self) -> usize {
        0
    }
}

/// The limits of one [`History`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub(crate) max_len: usize,
    pub(crate) max_bytes: usize,
    pub(crate) ttl: Duration,
}

#[derive(Debug)]
pub(crate) struct History<V> {
    /// foldhash with a random per-process key: several times faster than SipHash on 24-byte
    /// ids, and still keyed, so peers cannot pick ids that collide.
    entries: HashMap<MessageId, V, foldhash::fast::RandomState>,
    /// Insertion instants and ids, oldest first; exactly the keys of `entries`.
    order: VecDeque<(Instant, MessageId)>,
    bytes: usize,
    bounds: Bounds,
}

impl<V: Weight> History<V> {
    pub(crate) fn new(bounds: Bounds) -> Self {
        Self {
            entries: HashMap::default(),
            order: VecDeque::new(),
            bytes: 0,
            bounds,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn contains(&self, id: &MessageId) -> bool {
        self.entries.contains_key(id)
    }

    pub(crate) fn get(&self, id: &MessageId) -> Option<&V> {
        self.entries.get(id)
    }

    /// Adds `id` unless present, then evicts the oldest entries until every bound holds. An entry
    /// heavier than `max_bytes` on its own is not kept. Returns a copy of the value already
    /// stored if `id` was present (nothing changes then), `None` if it was new.
    pub(crate) fn insert(&mut self, now: Instant, id: MessageId, value: V) -> Option<V>
    where
        V: Clone,
    {
        let weight = value.weight();
        match self.entries.entry(id) {
            Entry::Occupied(present) => return Some(present.get().clone()),
            Entry::Vacant(slot) => slot.insert(value),
        };
        self.bytes += weight;
        self.order.push_back((now, id));
        while self.entries.len() > self.bounds.max_len || self.bytes > self.bounds.max_bytes {
            self.pop_oldest();
        }
        None
    }

    /// Removes every entry older than the ttl.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some(&(at, _)) = self.order.front() {
            if now.saturating_duration_since(at) < self.bounds.ttl {
                break;
            }
            self.pop_oldest();
        }
    }

    /// When the oldest entry expires.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.order.front().map(|&(at, _)| at + self.bounds.ttl)
    }

    fn pop_oldest(&mut self) {
        if let Some((_, id)) = self.order.pop_front() {
            if let Some(value) = self.entries.remove(&id) {
                self.bytes -= value.weight();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weight for () {
        fn weight(&self) -> usize {
            0
        }
    }

    #[derive(Clone)]
    struct Blob(usize);
    impl Weight for Blob {
        fn weight(&self) -> usize {
            self.0
        }
    }

    fn id(seq: u64) -> MessageId {
        MessageId::new(0, 0, seq)
    }

    fn bounds(max_len: usize, max_bytes: usize, ttl_ms: u64) -> Bounds {
        Bounds {
            max_len,
            max_bytes,
            ttl: Duration::from_millis(ttl_ms),
        }
    }

    #[test]
    fn count_bound_evicts_oldest() {
        let now = Instant::now();
        let mut h = History::new(bounds(2, usize::MAX, 1000));
        assert_eq!(h.insert(now, id(1), ()), None);
        assert_eq!(h.insert(now, id(1), ()), Some(()));
        h.insert(now, id(2), ());
        h.insert(now, id(3), ());
        assert_eq!(h.len(), 2);
        assert!(!h.contains(&id(1)) && h.contains(&id(2)) && h.contains(&id(3)));
    }

    #[test]
    fn byte_bound_evicts_oldest_and_rejects_giants() {
        let now = Instant::now();
        let mut h = History::new(bounds(100, 10, 1000));
        h.insert(now, id(1), Blob(6));
        h.insert(now, id(2), Blob(4));
        assert_eq!(h.bytes(), 10);
        h.insert(now, id(3), Blob(1));
        assert!(!h.contains(&id(1)));
        assert_eq!(h.bytes(), 5);
        h.insert(now, id(4), Blob(11));
        assert!(!h.contains(&id(4)));
        assert_eq!((h.len(), h.bytes()), (0, 0));
    }

    #[test]
    fn ttl_expires_from_the_front() {
        let t0 = Instant::now();
        let mut h = History::new(bounds(100, usize::MAX, 100));
        h.insert(t0, id(1), ());
        h.insert(t0 + Duration::from_millis(50), id(2), ());
        assert_eq!(h.next_expiry(), Some(t0 + Duration::from_millis(100)));
        h.expire(t0 + Duration::from_millis(99));
        assert_eq!(h.len(), 2);
        h.expire(t0 + Duration::from_millis(100));
        assert!(!h.contains(&id(1)) && h.contains(&id(2)));
        h.expire(t0 + Duration::from_millis(150));
        assert_eq!((h.len(), h.next_expiry()), (0, None));
    }
}
