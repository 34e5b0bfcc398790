//! Pruning: which duplicate removes which eager link, and when a lazy peer that pushes to us is
//! taken back.
//!
//! Two rules decide, both departures from the paper (docs/architecture.md):
//! - a duplicate over the heaviest link of a cycle prunes it at once (`proto/cycle.rs` says why
//!   that is always safe);
//! - any other duplicate prunes only if it confirms an earlier one, `prune_delay` later.

use std::time::Instant;

use super::Plumtree;
use crate::NodeId;
use crate::message::Message;
use crate::proto::cycle::closes_cycle_as_heaviest;
use crate::proto::output::{Event, PeerRole};
use crate::proto::store::Seen;

impl<I: NodeId> Plumtree<I> {
    /// A payload we had already seen arrived again from `from`, over a link of weight `weight`,
    /// after a path whose heaviest link weighed `heaviest`.
    pub(super) fn on_duplicate(
        &mut self,
        now: Instant,
        from: I,
        weight: u32,
        heaviest: u32,
        first: Seen,
    ) {
        self.stats.duplicates += 1;
        if closes_cycle_as_heaviest(weight, first.heaviest, heaviest) {
            if let Some(neighbour) = self.peers.neighbour_mut(&from) {
                neighbour.cut_at = Some(now);
            }
            self.stats.cycle_prunes += 1;
            self.prune(from);
        } else if self.confirm_redundant(now, &from, first.at) {
            self.prune(from);
        }
    }

    /// Decides whether a duplicate from `peer`, which is not the heaviest link of a cycle we can
    /// see, shows its eager link to be redundant.
    ///
    /// The paper prunes on every duplicate. With many broadcasts in flight that cuts the tree
    /// apart: a duplicate can travel a path that another node has already broken, and two such
    /// cuts on one cycle split the tree in two. So the first duplicate only marks the link as
    /// suspect; it is pruned on a later duplicate of a payload we first received at least
    /// `prune_delay` after that mark. Such a payload was sent after the paths of the first one
    /// had settled, so its duplicate shows a cycle that still exists. A peer we hold as lazy (or
    /// not at all) is pruned at once: it pushes to us by mistake.
    fn confirm_redundant(&mut self, now: Instant, peer: &I, first_seen: Instant) -> bool {
        let delay = self.config.prune_delay;
        let Some(neighbour) = self.peers.neighbour_mut(peer) else {
            return true;
        };
        if neighbour.role != PeerRole::Eager || delay.is_zero() {
            return true;
        }
        match neighbour.suspect_since {
            Some(since) if first_seen >= since + delay => {
                neighbour.suspect_since = None;
                true
            }
            Some(_) => false,
            None => {
                neighbour.suspect_since = Some(now);
                false
            }
        }
    }

    /// A peer we hold as lazy pushed a payload that is new to us.
    ///
    /// Usually it sent the payload before our Prune reached it, and has since dropped us to
    /// lazy; a silent promotion would leave the link eager on our side only, so we graft it
    /// and both ends agree again. Not so within `graft_timeout` of pruning it as the heaviest
    /// link of a cycle: with many broadcasts in flight, payloads it had already sent would
    /// undo the cut at once (in the simulator's burst scenario they undid nearly all of them).
    /// Such a cut never disconnects anything, so its payloads in flight need no graft.
    pub(super) fn pushed_by_lazy(&mut self, now: Instant, from: &I) {
        let grace = self.config.graft_timeout;
        let cut_recently = self
            .peers
            .neighbour_mut(from)
            .and_then(|n| n.cut_at)
            .is_some_and(|at| now < at + grace);
        if !cut_recently {
            self.graft(from, None);
        }
    }

    /// Makes `peer` lazy and tells it to stop pushing to us.
    pub(super) fn prune(&mut self, peer: I) {
        self.set_role(&peer, PeerRole::Lazy);
        self.events
            .push_back(Event::PruneSent { peer: peer.clone() });
        self.send(peer, Message::Prune);
        self.stats.prunes_sent += 1;
    }
}
