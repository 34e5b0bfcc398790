//! How a congested node takes work, so that congestion travels back to the origins instead of
//! overflowing queues further down the tree.
//!
//! A node is congested while a neighbour's push queue is more than half full (and moving:
//! `Outbox::has_room`). Congested, it takes no broadcast, and takes received frames only one turn
//! per `PACE`: its inbound queue fills, the neighbours feeding it slow down, and so on back to
//! the origins. Slowed, never stopped: with several origins payloads cross a link both ways, and
//! two congested nodes that stopped reading would wait on each other. Its timers (grafts, IHave
//! flushes) wait while received frames wait, since an announced payload is then most likely in
//! its own inbound queue and grafting it would only add to the congestion; but not for longer
//! than `stall_timeout`: congestion that lasts is not a passing burst, and a node behind a slow
//! neighbour must still repair and announce.

use std::time::Duration;

use tokio::time::Instant;

/// How often a congested node takes one turn of received frames.
pub(crate) const PACE: Duration = Duration::from_millis(10);

/// What the protocol task may take in this turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Allowed {
    /// New broadcasts (admission aside).
    pub(crate) broadcasts: bool,
    /// Received frames.
    pub(crate) frames: bool,
    /// Timers.
    pub(crate) timers: bool,
}

/// The congestion state of one protocol task.
#[derive(Debug)]
pub(crate) struct Pacing {
    stall_timeout: Duration,
    /// When the node became congested, and when it took its last paced turn since.
    congested_since: Option<Instant>,
    paced_since: Option<Instant>,
}

impl Pacing {
    pub(crate) fn new(stall_timeout: Duration) -> Self {
        Self {
            stall_timeout,
            congested_since: None,
            paced_since: None,
        }
    }

    /// What may be taken now, given whether the queues have `room` and whether received frames
    /// are `waiting`. Reads the clock only while congested.
    pub(crate) fn allowed(&mut self, room: bool, waiting: bool) -> Allowed {
        if room {
            self.congested_since = None;
            self.paced_since = None;
            return Allowed {
                broadcasts: true,
                frames: true,
                timers: true,
            };
        }
        let now = Instant::now();
        let congested_since = *self.congested_since.get_or_insert(now);
        let paced_since = *self.paced_since.get_or_insert(now);
        Allowed {
            broadcasts: false,
            frames: now - paced_since >= PACE,
            timers: !waiting || now - congested_since >= self.stall_timeout,
        }
    }

    /// Received frames were taken; if congested, the next paced turn is a `PACE` away.
    pub(crate) fn took_frames(&mut self) {
        if self.paced_since.is_some() {
            self.paced_since = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_millis(300);

    #[tokio::test(start_paused = true)]
    async fn with_room_everything_goes() {
        let mut pacing = Pacing::new(STALL);
        let all = Allowed {
            broadcasts: true,
            frames: true,
            timers: true,
        };
        assert_eq!(pacing.allowed(true, true), all);
        pacing.took_frames();
        assert_eq!(pacing.allowed(true, true), all);
    }

    #[tokio::test(start_paused = true)]
    async fn congested_it_takes_one_turn_of_frames_per_pace_and_no_broadcast() {
        let mut pacing = Pacing::new(STALL);
        let first = pacing.allowed(false, true);
        assert!(
            !first.broadcasts && !first.frames,
            "the first turn waits a pace"
        );
        tokio::time::advance(PACE).await;
        assert!(pacing.allowed(false, true).frames);
        pacing.took_frames();
        assert!(!pacing.allowed(false, true).frames, "one turn per pace");
        tokio::time::advance(PACE).await;
        assert!(pacing.allowed(false, true).frames);
        // Room again, then congested again: the pace starts over.
        assert!(pacing.allowed(true, true).frames);
        assert!(!pacing.allowed(false, true).frames);
    }

    #[tokio::test(start_paused = true)]
    async fn timers_wait_for_waiting_frames_but_not_past_the_stall_timeout() {
        let mut pacing = Pacing::new(STALL);
        assert!(!pacing.allowed(false, true).timers, "frames are waiting");
        assert!(pacing.allowed(false, false).timers, "nothing waiting");
        tokio::time::advance(STALL).await;
        assert!(
            pacing.allowed(false, true).timers,
            "congested for stall_timeout"
        );
    }
}
