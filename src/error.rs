//! Error types, one per operation that can fail.

/// A [`PlumtreeConfig`](crate::PlumtreeConfig) that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A count or duration that must be positive is zero.
    #[error("`{0}` must be greater than zero")]
    Zero(&'static str),
    /// A field exceeds its hard limit.
    #[error("`{field}` must be at most {max}")]
    TooLarge {
        /// The field's name.
        field: &'static str,
        /// Its largest allowed value.
        max: usize,
    },
    /// `max_peers` leaves no room for the neighbours the fanouts ask for.
    #[error("max_peers ({max_peers}) is below eager_fanout + lazy_fanout ({fanout})")]
    MaxPeersBelowFanout {
        /// The configured cap.
        max_peers: usize,
        /// `eager_fanout + lazy_fanout`.
        fanout: usize,
    },
    /// Two fields contradict each other.
    #[error("inconsistent config: {0}")]
    Inconsistent(&'static str),
}

/// Why [`Plumtree::broadcast`](crate::Plumtree::broadcast) refused a payload. Nothing was sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BroadcastError {
    /// The payload is larger than `max_message_size`.
    #[error("payload of {size} bytes exceeds max_message_size ({max})")]
    PayloadTooLarge {
        /// The payload's size.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The node's send queues are full and the caller asked not to wait
    /// (`PlumtreeMemberlist::try_broadcast`). Nothing was sent; try again later.
    #[error("the node is congested; try again later")]
    Backpressure,
    /// The node is not running (not started, or shut down).
    #[error("the node is not running")]
    Closed,
}
