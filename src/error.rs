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

impl ConfigError {
    /// [`Zero`](Self::Zero) for the first of `counts` and then of `durations` that is zero: the
    /// check every config's `validate` starts with.
    pub(crate) fn first_zero(
        counts: &[(&'static str, usize)],
        durations: &[(&'static str, std::time::Duration)],
    ) -> Result<(), Self> {
        let zero = counts.iter().find(|(_, v)| *v == 0).map(|(f, _)| f);
        let zero = zero.or_else(|| durations.iter().find(|(_, d)| d.is_zero()).map(|(f, _)| f));
        zero.map_or(Ok(()), |field| Err(Self::Zero(field)))
    }
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
    /// The node is not in this topic (it left it).
    #[error("this node is not in {0}")]
    NotJoined(crate::TopicId),
}
