//! What the core asks of its caller: messages to send, events to report, counters.

use bytes::Bytes;

use crate::message::{Message, MessageId};

/// A message the caller must send to one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a transmit that is not sent is a lost protocol message"]
pub struct Transmit<I> {
    /// The peer to send it to.
    pub to: I,
    /// The message; wrap it in an [`Envelope`](crate::Envelope) naming the local node.
    pub message: Message<I>,
    /// Whether it must not wait behind payloads pushed down the tree: true for everything but
    /// a pushed payload (announcements, grafts, prunes, and the payload that answers a graft,
    /// which is a repair for a peer whose push queue may be full because it is behind).
    pub urgent: bool,
}

/// A payload handed to the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery<I> {
    /// The broadcast's id.
    pub id: MessageId,
    /// The node that broadcast it.
    pub origin: I,
    /// The application's bytes.
    pub payload: Bytes,
    /// Hops from the origin: 0 for a local broadcast, 1 for a payload straight from its origin.
    pub hops: u32,
    /// The peer it arrived from; `None` for a local broadcast.
    pub from: Option<I>,
}

/// How a neighbour is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum PeerRole {
    /// Payloads are pushed to it at once: a link of the broadcast tree.
    Eager,
    /// Only announcements (IHave) go to it; it repairs the tree when needed.
    Lazy,
}

/// Something the application or the runtime may want to know about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<I> {
    /// A broadcast to hand to the application; each id is delivered once.
    Deliver(Delivery<I>),
    /// A member became a neighbour.
    NeighbourAdded {
        /// The peer.
        peer: I,
        /// Its role.
        role: PeerRole,
    },
    /// A neighbour left the neighbour set (it went down, or made room for another).
    NeighbourRemoved {
        /// The peer.
        peer: I,
    },
    /// A lazy neighbour became eager (a Graft was sent or received, or a failure was repaired).
    Promoted {
        /// The peer.
        peer: I,
    },
    /// An eager neighbour became lazy (a Prune was sent or received).
    Demoted {
        /// The peer.
        peer: I,
    },
    /// This node sent a Graft to `peer` (asking for a payload, or for the link alone).
    GraftSent {
        /// The peer.
        peer: I,
    },
    /// This node sent a Prune to `peer`.
    PruneSent {
        /// The peer.
        peer: I,
    },
    /// A payload announced to this node did not come: `graft_max_retries` grafts went
    /// unanswered, or every peer that announced it left. The node stops asking for it, so
    /// unless a copy still in flight arrives (it is then delivered as usual) the application
    /// never sees it and should fetch it from its own source of truth. Counted in
    /// [`Stats::grafts_given_up`].
    GaveUp {
        /// The payload's id (its origin's tag and sequence number name the gap).
        id: MessageId,
    },
    /// Anti-entropy gave up on payloads this node never received: no neighbour caches them any
    /// more (or more were missing at once than a node tracks). `first` and the `count - 1` ids
    /// after it (same origin and incarnation, the next sequence numbers); some of them may have
    /// been delivered after all. The application should fetch them from its own source of
    /// truth. Counted in [`Stats::gap_payloads`].
    Gap {
        /// The first id given up.
        first: MessageId,
        /// How many consecutive ids, from `first`.
        count: u64,
    },
}

/// Counters of what the core has done since it was created. They only grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Local broadcasts accepted.
    pub broadcasts: u64,
    /// Payloads delivered to the application, local ones included.
    pub delivered: u64,
    /// Gossip messages received.
    pub gossip_received: u64,
    /// Gossip messages received for an id already delivered.
    pub duplicates: u64,
    /// IHave messages received.
    pub ihave_received: u64,
    /// Announcements received, over all IHaves.
    pub announcements_received: u64,
    /// Announcements not tracked because `max_missing` payloads were already missing.
    pub announcements_dropped: u64,
    /// Grafts sent.
    pub grafts_sent: u64,
    /// Grafts received.
    pub grafts_received: u64,
    /// Grafts received for a payload no longer (or never) in the cache.
    pub grafts_unanswered: u64,
    /// Missing payloads given up after `graft_max_retries` grafts, or with no announcer left.
    pub grafts_given_up: u64,
    /// Prunes sent.
    pub prunes_sent: u64,
    /// Of those, prunes of a link found to be the heaviest of a cycle (sent at once, without
    /// waiting for `prune_delay`).
    pub cycle_prunes: u64,
    /// Prunes received.
    pub prunes_received: u64,
    /// IHave frames sent.
    pub ihave_sent: u64,
    /// Lazy neighbours made eager (grafts sent or received, repairs).
    pub promotions: u64,
    /// Eager neighbours made lazy (prunes sent or received).
    pub demotions: u64,
    /// Announcements the runtime handed back as undelivered (payloads count one each), to be
    /// announced again ([`Plumtree::handle_undelivered`](crate::Plumtree::handle_undelivered)).
    pub requeued: u64,
    /// Of those, dropped because too many were waiting for one peer.
    pub requeue_dropped: u64,
    /// Messages ignored as invalid: an oversize payload, a compressed payload that does not
    /// decompress to its declared length, or a frame claiming to come from us.
    pub invalid_messages: u64,
    /// Payloads dropped because their origin's signature did not hold (or was missing) while
    /// this node checks signatures (`Plumtree::with_origin_keys`).
    pub bad_signatures: u64,
    /// Messages ignored because their sender is not a member (not a peer this node was told
    /// about): never delivered, relayed or answered.
    pub from_non_members: u64,
    /// Anti-entropy digests sent and received.
    pub digests_sent: u64,
    /// See [`digests_sent`](Self::digests_sent).
    pub digests_received: u64,
    /// Requests (Want) sent, after a digest offered what this node lacks, and received.
    pub wants_sent: u64,
    /// See [`wants_sent`](Self::wants_sent).
    pub wants_received: u64,
    /// Requests not answered: the same neighbour asked again within half an interval.
    pub wants_refused: u64,
    /// Payloads sent in answer to requests, and received so.
    pub repairs_sent: u64,
    /// See [`repairs_sent`](Self::repairs_sent).
    pub repairs_received: u64,
    /// Repairs received for payloads already delivered (two answers crossing).
    pub repair_duplicates: u64,
    /// Payloads given up by anti-entropy and reported as [`Event::Gap`].
    pub gap_payloads: u64,
}
