//! [`NodeStats`]: a snapshot of a running node, and the counters kept outside its protocol task.

use std::sync::atomic::AtomicU64;

use crate::proto::Stats;

/// A snapshot of a node's state, from [`PlumtreeMemberlist::stats`](super::PlumtreeMemberlist::stats).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats<I> {
    /// The core's counters.
    pub protocol: Stats,
    /// Eager neighbours.
    pub eager: Vec<I>,
    /// Lazy neighbours.
    pub lazy: Vec<I>,
    /// Known members.
    pub members: usize,
    /// Cached payloads and their bytes.
    pub cache: (usize, usize),
    /// Ids remembered as delivered.
    pub seen: usize,
    /// Peers with a measured round-trip time (graft outcomes alone do not count); 0 without
    /// [`peer_scoring`](crate::PlumtreeConfig::peer_scoring).
    pub peers_with_rtt: usize,
    /// Frames waiting in the per-peer send queues.
    pub queued_frames: usize,
    /// Frames dropped because a peer's send queue was full.
    pub outbound_dropped: u64,
    /// Received frames dropped because the inbound queue was full.
    pub inbound_dropped: u64,
    /// Received frames that did not decode.
    pub decode_errors: u64,
    /// Received frames of topics this node is not in, dropped (for the whole node, whichever
    /// topic's stats say it).
    pub unrouted_frames: u64,
}

/// Counters updated outside the protocol task (the inbound queue's senders).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) inbound_dropped: AtomicU64,
}
