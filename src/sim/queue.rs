//! [`EventQueue`]: the simulator's pending events, in (instant, sequence) order.
//!
//! A calendar queue: events fall into 1 ms buckets kept in an ordered map, and only the bucket
//! being run is sorted. Almost every event is a frame 10 to 50 ms ahead, so a push is an append
//! and a pop is a step through a sorted vector; a binary heap spent a quarter of the simulator's
//! instructions comparing instants. Events pushed into the bucket being run (timers due now, which
//! a burst of simultaneous broadcasts produces by the thousand) go to a small heap beside it:
//! inserting them into the sorted vector made the burst scenario quadratic.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::time::Instant;

/// An event ordered by (instant, sequence) only.
#[derive(Debug)]
struct Late<T>(Instant, u64, T);

impl<T> PartialEq for Late<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.0, self.1) == (other.0, other.1)
    }
}
impl<T> Eq for Late<T> {}
impl<T> PartialOrd for Late<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Late<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(other.0, other.1))
    }
}

#[derive(Debug)]
pub(crate) struct EventQueue<T> {
    start: Instant,
    /// Future buckets by index (whole milliseconds since `start`), unsorted inside.
    buckets: BTreeMap<u64, Vec<(Instant, u64, T)>>,
    /// The bucket being run, sorted.
    current: VecDeque<(Instant, u64, T)>,
    /// Events pushed for the bucket being run (or earlier) after it was sorted.
    late: BinaryHeap<Reverse<Late<T>>>,
    current_index: Option<u64>,
    seq: u64,
}

impl<T> EventQueue<T> {
    pub(crate) fn new(start: Instant) -> Self {
        Self {
            start,
            buckets: BTreeMap::new(),
            current: VecDeque::new(),
            late: BinaryHeap::new(),
            current_index: None,
            seq: 0,
        }
    }

    /// Whole milliseconds since the start (without 128-bit arithmetic: this runs per event).
    fn bucket_of(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.start);
        since.as_secs() * 1000 + u64::from(since.subsec_millis())
    }

    /// Adds an event; events at the same instant pop in the order they were pushed.
    pub(crate) fn push(&mut self, at: Instant, item: T) {
        self.seq += 1;
        let bucket = self.bucket_of(at);
        if self.current_index.is_some_and(|current| bucket <= current) {
            // An event for the bucket being run (a timer due now).
            self.late.push(Reverse(Late(at, self.seq, item)));
        } else {
            self.buckets
                .entry(bucket)
                .or_default()
                .push((at, self.seq, item));
        }
    }

    /// Removes and returns the earliest event if it is due at or before `until`.
    pub(crate) fn pop_until(&mut self, until: Instant) -> Option<(Instant, T)> {
        if self.current.is_empty() && self.late.is_empty() {
            let (&index, _) = self.buckets.first_key_value()?;
            let mut events = self.buckets.remove(&index).expect("first key");
            events.sort_unstable_by_key(|&(at, seq, _)| (at, seq));
            self.current = events.into();
            self.current_index = Some(index);
        }
        let sorted = self.current.front().map(|&(at, seq, _)| (at, seq));
        let late = self
            .late
            .peek()
            .map(|Reverse(Late(at, seq, _))| (*at, *seq));
        let take_late = match (sorted, late) {
            (Some(s), Some(l)) => l < s,
            (None, Some(_)) => true,
            (_, None) => false,
        };
        let at = if take_late { late?.0 } else { sorted?.0 };
        if at > until {
            return None;
        }
        if take_late {
            let Reverse(Late(at, _, item)) = self.late.pop().expect("peeked");
            Some((at, item))
        } else {
            let (at, _, item) = self.current.pop_front().expect("front exists");
            Some((at, item))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_time_then_push_order_and_respects_the_limit() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_micros(n * 100);
        let mut q = EventQueue::new(t0);
        for (at, tag) in [(35, 'a'), (5, 'b'), (35, 'c'), (12, 'd'), (5, 'e')] {
            q.push(ms(at), tag);
        }
        assert_eq!(q.pop_until(ms(5)), Some((ms(5), 'b')));
        q.push(ms(6), 'f'); // into the bucket being run
        q.push(ms(5), 'g'); // same instant as 'e', pushed later
        let mut order = Vec::new();
        while let Some((_, tag)) = q.pop_until(ms(100)) {
            order.push(tag);
        }
        assert_eq!(order, ['e', 'g', 'f', 'd', 'a', 'c']);
        q.push(ms(50), 'h');
        assert_eq!(q.pop_until(ms(49)), None);
        assert_eq!(q.pop_until(ms(50)), Some((ms(50), 'h')));
    }
}
