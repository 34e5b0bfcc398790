//! [`RuntimeConfig`]: the knobs of the tokio runtime around the core.

use std::time::Duration;

/// Queue sizes and timing of a [`PlumtreeMemberlist`](super::PlumtreeMemberlist).
///
/// Every queue is bounded; what happens when one is full is stated per field.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeConfig {
    /// Frames per peer and per lane (control, payload) waiting to be sent. Default 1,024.
    /// When a lane is full, new frames for that peer are dropped and counted.
    pub peer_queue_capacity: usize,
    /// A peer's queue that has not moved for this long is stalled: it no longer holds back new
    /// broadcasts (it only drops). Default 1 s.
    pub stall_timeout: Duration,
    /// Bytes of received frames waiting for the protocol task, each frame counted as its length
    /// plus 64. Default 32 MiB (about 29,000 frames of 1 KiB payloads); at most `u32::MAX`.
    /// When full, [`NodeInputs::handle_frame`](super::NodeInputs::handle_frame) waits and
    /// [`try_handle_frame`](super::NodeInputs::try_handle_frame) drops and counts the frame.
    /// A frame larger than the whole budget is taken once the queue is empty.
    pub inbound_bytes: usize,
    /// Broadcasts waiting for the protocol task. Default 256. When full,
    /// [`broadcast`](super::PlumtreeMemberlist::broadcast) waits and
    /// [`try_broadcast`](super::PlumtreeMemberlist::try_broadcast) fails. Room comes back half
    /// the capacity at a time (all of it once the queue is drained), so that a waiting sender
    /// wakes once per batch, not once per broadcast.
    pub broadcast_capacity: usize,
    /// Deliveries waiting for the delegate and the delivery stream. Default 4,096. When full, the
    /// protocol task waits: a slow application slows this node's intake, it loses nothing.
    /// They are handed over a protocol turn at a time (up to 64 received frames), so the bound
    /// is `delivery_capacity / 64` turns: about this many deliveries, plus the neighbour events
    /// of those turns.
    pub delivery_capacity: usize,
    /// Most topics a node joins besides the default one
    /// ([`join_topic`](super::PlumtreeMemberlist::join_topic)), and most topic ids
    /// `MemberlistStack` reads from one member's metadata. Default 16. Each topic has queues
    /// as large as the node's, so a node's memory bound grows by that much per topic.
    pub max_topics: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            peer_queue_capacity: 1024,
            stall_timeout: Duration::from_secs(1),
            inbound_bytes: 32 << 20,
            broadcast_capacity: 256,
            delivery_capacity: 4096,
            max_topics: 16,
        }
    }
}

setters! {
    RuntimeConfig;
    /// Sets [`peer_queue_capacity`](Self::peer_queue_capacity).
    with_peer_queue_capacity: peer_queue_capacity: usize;
    /// Sets [`stall_timeout`](Self::stall_timeout).
    with_stall_timeout: stall_timeout: Duration;
    /// Sets [`inbound_bytes`](Self::inbound_bytes).
    with_inbound_bytes: inbound_bytes: usize;
    /// Sets [`broadcast_capacity`](Self::broadcast_capacity).
    with_broadcast_capacity: broadcast_capacity: usize;
    /// Sets [`delivery_capacity`](Self::delivery_capacity).
    with_delivery_capacity: delivery_capacity: usize;
    /// Sets [`max_topics`](Self::max_topics).
    with_max_topics: max_topics: usize;
}

impl RuntimeConfig {
    pub(crate) fn validate(&self) -> Result<(), crate::ConfigError> {
        crate::ConfigError::first_zero(
            &[
                ("peer_queue_capacity", self.peer_queue_capacity),
                ("inbound_bytes", self.inbound_bytes),
                ("broadcast_capacity", self.broadcast_capacity),
                ("delivery_capacity", self.delivery_capacity),
            ],
            &[("stall_timeout", self.stall_timeout)],
        )?;
        if self.inbound_bytes > u32::MAX as usize {
            return Err(crate::ConfigError::TooLarge {
                field: "inbound_bytes",
                max: u32::MAX as usize,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigError;

    #[test]
    fn zero_sizes_are_rejected() {
        assert_eq!(RuntimeConfig::default().validate(), Ok(()));
        assert_eq!(
            RuntimeConfig::default()
                .with_peer_queue_capacity(0)
                .validate(),
            Err(ConfigError::Zero("peer_queue_capacity"))
        );
        assert_eq!(
            RuntimeConfig::default()
                .with_stall_timeout(Duration::ZERO)
                .validate(),
            Err(ConfigError::Zero("stall_timeout"))
        );
        #[cfg(target_pointer_width = "64")]
        assert_eq!(
            RuntimeConfig::default()
                .with_inbound_bytes(u32::MAX as usize + 1)
                .validate(),
            Err(ConfigError::TooLarge {
                field: "inbound_bytes",
                max: u32::MAX as usize
            })
        );
    }
}
