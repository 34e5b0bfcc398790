//! Broadcast admission: how fast a node may take new broadcasts without outrunning the cache
//! that repairs them.
//!
//! A payload that misses a node (a pruned link, a dropped frame, a node cut off from the eager
//! tree for a moment) is repaired by a graft, which comes at the earliest `graft_timeout` after
//! the announcement, and is answered only if the announcer still caches the payload. The cache
//! is bounded by count and bytes, so a cluster that broadcasts faster than the cache can hold
//! for that long loses exactly the payloads that needed repair, and under a saturating sender
//! many need it (docs/history.md has the losses measured without admission). So a node takes a
//! new broadcast only when the cache can keep it, and every payload before it, for the repair
//! horizon; the runtime waits for that instant, and the wait reaches the application as
//! `broadcast().await` taking longer. Every node caches every payload it delivers, so an origin
//! that paces itself by its own cache paces what every cache must hold: with several origins,
//! each sees the others' payloads in its cache.

use std::time::{Duration, Instant};

use super::Plumtree;
use crate::NodeId;
use crate::config::PlumtreeConfig;
use crate::proto::adaptive::Adaptive;

impl<I: NodeId> Plumtree<I> {
    /// When a new broadcast may enter without making the cache drop a payload that a repair
    /// may still ask for; `None` if it may now. Call it again at that instant: the answer may
    /// be a later one if payloads arrived meanwhile.
    ///
    /// The cache keeps payloads for at least the repair horizon (the longest wait of an
    /// announcement, `graft_timeout`, and one `graft_retry_timeout`) only while fewer than
    /// `message_cache_max_size` payloads (and `max_missing`, which bounds what a node cut off
    /// from the tree can track) arrive in that time and their bytes fit
    /// `message_cache_max_bytes`. Past that rate [`broadcast`](Self::broadcast) still works,
    /// but repairs of the payloads it pushes out can fail. `PlumtreeMemberlist` waits for this
    /// instant before it takes a broadcast.
    pub fn broadcast_room_at(&mut self, now: Instant) -> Option<Instant> {
        let now = self.advance(now);
        self.store
            .room_at(now, self.config.max_missing, self.config.max_message_size)
    }
}

/// How long a payload must stay cached for the usual repair to find it: the first graft for it
/// comes when the announcement has waited out its batch or the receiver its graft timer,
/// whichever is later (the timer counts from when we had the payload, `Announcement::held_ms`),
/// and one retry after that.
pub(super) fn repair_horizon(config: &PlumtreeConfig, adaptive: &Adaptive) -> Duration {
    adaptive
        .longest_ihave_delay(config)
        .max(config.graft_timeout)
        + config.graft_retry_timeout
}
