//! [`PlumtreeDelegate`]: where a node hands deliveries and tree changes to the application.

use crate::MessageId;
use crate::proto::Delivery;

/// Receives what a [`PlumtreeMemberlist`](super::PlumtreeMemberlist) delivers.
///
/// # Implementer notes
/// Methods are called from the node's delivery task, one at a time and in order, never while the
/// node holds a lock: they may call back into the node. A slow `on_deliver` slows this node's
/// deliveries (they queue up to a bound, then the protocol task waits), not its forwarding.
pub trait PlumtreeDelegate<I>: Send + Sync + 'static {
    /// A broadcast reached this node (local broadcasts included, with `hops == 0`). Called once
    /// per message id.
    fn on_deliver(&self, delivery: Delivery<I>);

    /// `peer` became an eager (tree) neighbour.
    fn on_promote(&self, peer: &I) {
        let _ = peer;
    }

    /// `peer` became a lazy (announce-only) neighbour.
    fn on_demote(&self, peer: &I) {
        let _ = peer;
    }

    /// This node sent a Graft to `peer`.
    fn on_graft(&self, peer: &I) {
        let _ = peer;
    }

    /// This node sent a Prune to `peer`.
    fn on_prune(&self, peer: &I) {
        let _ = peer;
    }

    /// A payload announced to this node could not be obtained: its grafts went unanswered (no
    /// announcer still cached it) or every announcer left. Unless a copy still in flight
    /// arrives, `on_deliver` will not see `id`; fetch what it carried from the application's
    /// own source. Also logged as a warning and counted
    /// ([`Stats::grafts_given_up`](crate::Stats::grafts_given_up),
    /// `plumtree_payloads_given_up_total`).
    fn on_give_up(&self, id: &MessageId) {
        let _ = id;
    }

    /// Anti-entropy gave up on `count` payloads from `first` on (same origin and incarnation,
    /// consecutive sequence numbers): no neighbour caches them any more. `on_deliver` will most
    /// likely never see them; fetch what they carried from the application's own source. Also
    /// counted ([`Stats::gap_payloads`](crate::Stats::gap_payloads), `plumtree_gaps_total`).
    fn on_gap(&self, first: &MessageId, count: u64) {
        let _ = (first, count);
    }
}

/// A delegate that ignores everything: for nodes that only relay, or that read deliveries from
/// [`PlumtreeMemberlist::deliveries`](super::PlumtreeMemberlist::deliveries).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopDelegate;

impl<I> PlumtreeDelegate<I> for NoopDelegate {
    fn on_deliver(&self, _: Delivery<I>) {}
}
