//! Lazy push and repair: announcements (IHave) out and in, graft timers for announced payloads
//! that do not arrive, and frames the runtime could not send.

use std::time::{Duration, Instant};

use super::{Plumtree, queue_ihave};
use crate::NodeId;
use crate::message::{Announcement, IHave};
use crate::proto::missing::{Announced, Announcer};
use crate::proto::output::Event;

impl<I: NodeId> Plumtree<I> {
    /// Announces `entries` to `peer` again at the next IHave flush, because the frame that
    /// carried them (or their payload) was not sent. At most `message_cache_max_size` wait per
    /// peer (older ones name payloads no longer cached); beyond that the oldest are dropped and
    /// counted.
    pub(super) fn requeue(&mut self, now: Instant, peer: &I, entries: Vec<Announcement>) {
        let Some(neighbour) = self.peers.neighbour_mut(peer) else {
            return; // no longer a neighbour: nothing to repair towards it
        };
        self.stats.requeued += entries.len() as u64;
        for entry in entries {
            neighbour.pending.push(now, entry);
        }
        let cap = self.config.message_cache_max_size;
        if neighbour.pending.len() > cap {
            let excess = neighbour.pending.len() - cap;
            neighbour.pending.drop_oldest(excess);
            self.stats.requeue_dropped += excess as u64;
        }
        // Only the timer sends these: a size-triggered IHave would be retried at once, into the
        // same full queue.
        self.arm_ihave_flush(now);
    }

    pub(super) fn on_ihave(&mut self, now: Instant, from: I, ihave: IHave) {
        self.stats.ihave_received += 1;
        self.stats.announcements_received += ihave.entries.len() as u64;
        if ihave.entries.len() > self.config.ihave_batch_size {
            self.stats.invalid_messages += 1;
            return;
        }
        // Peer scoring needs every announcer as soon as it announces, so with it on, announcers
        // are recorded at once (the slower way): it grafts the best of them first (deferred,
        // only the first would be known by then: with `wan()` in the simulator, redundancy rose
        // by a quarter).
        let defer = !self.config.peer_scoring;
        for Announcement { id, round, held_ms } in ihave.entries {
            if self.store.contains(&id) {
                continue;
            }
            // The eager path has had `graft_timeout` since the announcer had the payload, not
            // since the announcement arrived: what waited for a batch is that much later already.
            let held = Duration::from_millis(held_ms.into());
            let due = now + self.config.graft_timeout.saturating_sub(held);
            let announcer = Announcer {
                peer: from.clone(),
                round,
            };
            // The waiting queue is in due order; one due sooner gets its own timer.
            let kept = if defer && !self.missing.contains(&id) && self.missing.can_wait(due) {
                self.missing.wait(due, id, announcer)
            } else {
                self.missing.announce(id, announcer.peer, round, due) != Announced::Full
            };
            if !kept {
                self.stats.announcements_dropped += 1;
            }
        }
    }

    /// Announcements whose graft timer is due: those whose payload has not come (from a peer
    /// still a member) become missing entries, due at once.
    fn on_waiting_announcements(&mut self, now: Instant) {
        while let Some(waiting) = self.missing.pop_waiting(now) {
            let Announcer { peer, round } = waiting.announcer;
            if self.store.contains(&waiting.id) || !self.peers.is_member(&peer) {
                continue;
            }
            if self.missing.announce(waiting.id, peer, round, now) == Announced::Full {
                self.stats.announcements_dropped += 1;
            }
        }
    }

    /// Grafts for missing payloads whose timers are due, one announcer per timer, in turn.
    pub(super) fn on_missing_timers(&mut self, now: Instant) {
        self.on_waiting_announcements(now);
        let max = self.config.graft_max_retries;
        let mut repairs = false;
        while let Some((id, entry)) = self.missing.pop_due(now) {
            if entry.grafts >= max || entry.announcers.is_empty() {
                self.missing.remove(&id);
                self.stats.grafts_given_up += 1;
                self.events.push_back(Event::GaveUp { id });
                continue;
            }
            if entry.grafts == 0 {
                // The first graft goes to the best announcer, the next ones down the list.
                self.peers
                    .sort_by_score(entry.announcers.make_contiguous(), |a| &a.peer);
            } else if let Some(last) = entry.announcers.back() {
                // The timer fired again: the last grafted announcer did not answer in time.
                self.peers.graft_outcome(&last.peer, false);
            }
            entry.grafts += 1;
            repairs = true;
            entry.announcers.rotate_left(1);
            let peer = entry.announcers.back().expect("not empty").peer.clone();
            // Each round over all announcers waits twice as long as the one before (up to 16x):
            // an answer that is slow because the cluster is overloaded still arrives before we
            // give up, while the next announcer is still tried promptly when one fails.
            let round = (entry.grafts - 1) as usize / entry.announcers.len();
            let wait = self
                .config
                .graft_retry_timeout
                .saturating_mul(1 << round.min(4));
            self.missing.rearm(id, now + wait);
            self.graft(&peer, Some(id));
        }
        if repairs {
            self.repaired(now);
        }
    }

    /// A payload needed repair: announcements must go out promptly again.
    pub(super) fn repaired(&mut self, now: Instant) {
        if self.adaptive.repaired() {
            self.flush_within_interval(now);
        }
    }

    /// Brings a flush armed later than `ihave_interval` from now forward to then (only a
    /// stretched interval arms one that late). A graft received calls this alone: a neighbour
    /// is repairing, and what this node announces may be what it or its neighbours lack, but
    /// this node's own tree needs no repair, so its stretch stays; resetting it too cost random
    /// senders about 10% more control messages at 1,000 nodes for no faster repair
    /// (docs/adaptive-features.md).
    pub(super) fn flush_within_interval(&mut self, now: Instant) {
        let soon = now + self.config.ihave_interval;
        if self.ihave_deadline.is_some_and(|at| at > soon) {
            self.ihave_deadline = Some(soon);
        }
    }

    pub(super) fn flush_ihaves(&mut self, now: Instant) {
        self.ihave_deadline = None;
        self.adaptive.flushed();
        let batch = self.config.ihave_batch_size;
        for (peer, neighbour) in self.peers.neighbours_mut() {
            // Requeued announcements can exceed one batch (the batch size is also the
            // receiver's decode limit).
            for entries in neighbour.pending.take_batches(now, batch) {
                queue_ihave(&mut self.transmits, &mut self.stats, peer.clone(), entries);
            }
        }
    }
}
