//! [`Pending`]: announcements waiting for the next IHave to one lazy neighbour, each with the
//! instant it was queued.
//!
//! An announcement says how long it waited here (`Announcement::held_ms`), so that the receiver
//! starts its graft timer from when we had the payload rather than from when the IHave arrived:
//! a batch that waited for a stretched flush interval (`adaptive_ihave`) does not also make the
//! receiver wait a whole `graft_timeout` for a payload that is already that late.

use std::time::{Duration, Instant};

use crate::message::Announcement;

#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Oldest first, with the instant each became pending here.
    entries: Vec<(Announcement, Instant)>,
}

impl Pending {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Queues `announcement`, which has already waited `held_ms` elsewhere (a requeued one).
    pub(crate) fn push(&mut self, now: Instant, announcement: Announcement) {
        // Every announcement but a requeued one is fresh: skip the clock arithmetic for it.
        let since = match announcement.held_ms {
            0 => now,
            held => now
                .checked_sub(Duration::from_millis(held.into()))
                .unwrap_or(now),
        };
        self.entries.push((announcement, since));
    }

    /// Drops the `count` oldest announcements.
    pub(crate) fn drop_oldest(&mut self, count: usize) {
        self.entries.drain(..count.min(self.entries.len()));
    }

    /// Takes every pending announcement, stamped with how long it waited as of `now`. The
    /// queue keeps its allocation for the next batch (one allocation per IHave, not a regrowth).
    pub(crate) fn take(&mut self, now: Instant) -> Vec<Announcement> {
        let mut out = Vec::with_capacity(self.entries.len());
        out.extend(
            (self.entries.drain(..)).map(|(announcement, since)| stamped(announcement, since, now)),
        );
        out
    }

    /// Takes the pending announcements in chunks of at most `batch`, each stamped as of `now`.
    pub(crate) fn take_batches(&mut self, now: Instant, batch: usize) -> Vec<Vec<Announcement>> {
        let batches = self
            .entries
            .chunks(batch.max(1))
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|&(announcement, since)| stamped(announcement, since, now))
                    .collect()
            })
            .collect();
        self.entries.clear();
        // A requeued backlog can be thousands long; keep only what one batch needs.
        self.entries.shrink_to(batch);
        batches
    }
}

fn stamped(announcement: Announcement, since: Instant, now: Instant) -> Announcement {
    let held = now.saturating_duration_since(since);
    // In 64-bit arithmetic: `as_millis` divides 128-bit numbers, per announcement.
    let ms = (held.as_secs().saturating_mul(1000)).saturating_add(held.subsec_millis().into());
    Announcement {
        held_ms: u32::try_from(ms).unwrap_or(u32::MAX),
        ..announcement
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageId;

    fn announcement(seq: u64, held_ms: u32) -> Announcement {
        Announcement {
            id: MessageId::new(1, 1, seq),
            round: 0,
            held_ms,
        }
    }

    #[test]
    fn announcements_carry_how_long_they_waited_including_before_a_requeue() {
        let t0 = Instant::now();
        let mut pending = Pending::default();
        pending.push(t0, announcement(1, 0));
        pending.push(t0 + Duration::from_millis(300), announcement(2, 0));
        // Requeued after a frame could not leave: it had already waited 250 ms.
        pending.push(t0 + Duration::from_millis(300), announcement(3, 250));
        let taken = pending.take(t0 + Duration::from_millis(800));
        let held: Vec<u32> = taken.iter().map(|a| a.held_ms).collect();
        assert_eq!(held, [800, 500, 750]);
        assert!(pending.is_empty());
    }

    #[test]
    fn batches_split_in_order_and_oldest_are_dropped_first() {
        let t0 = Instant::now();
        let mut pending = Pending::default();
        for seq in 1..=5 {
            pending.push(t0, announcement(seq, 0));
        }
        pending.drop_oldest(1);
        let batches = pending.take_batches(t0, 3);
        let seqs: Vec<Vec<u64>> = batches
            .iter()
            .map(|b| b.iter().map(|a| a.id.seq()).collect())
            .collect();
        assert_eq!(seqs, [vec![2, 3, 4], vec![5]]);
    }
}
