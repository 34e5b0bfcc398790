//! Neighbour roles: promotions and demotions with their events, and topping the neighbours up
//! from the members.

use super::{Plumtree, queue_ihave};
use crate::NodeId;
use crate::proto::output::{Event, PeerRole};
use crate::proto::peers::RoleChange;

impl<I: NodeId> Plumtree<I> {
    /// Makes a member an eager neighbour, evicting a random lazy neighbour if `max_peers` leaves
    /// no room: a tree link is worth more than an announce-only one. False if it could not.
    pub(super) fn make_eager(&mut self, peer: &I) -> bool {
        match self.set_role(peer, PeerRole::Eager) {
            RoleChange::Refused if self.peers.is_member(peer) && !self.peers.has_room() => {
                let Some(victim) = self.peers.evictable_lazy(&mut self.rng, Some(peer)) else {
                    return false;
                };
                if let Some(evicted) = self.peers.remove_neighbour(&victim) {
                    let mut pending = evicted.pending;
                    // Announcements are pending only after an input, which set `now`.
                    if let Some(now) = self.now.filter(|_| !pending.is_empty()) {
                        let entries = pending.take(now);
                        queue_ihave(
                            &mut self.transmits,
                            &mut self.stats,
                            victim.clone(),
                            entries,
                        );
                    }
                    self.events
                        .push_back(Event::NeighbourRemoved { peer: victim });
                }
                self.set_role(peer, PeerRole::Eager) != RoleChange::Refused
            }
            RoleChange::Refused => false,
            _ => true,
        }
    }

    /// Changes a role and reports the change.
    pub(super) fn set_role(&mut self, peer: &I, role: PeerRole) -> RoleChange {
        // Called for every received payload (usually Unchanged): clone the id only for an event.
        let change = self.peers.set_role(peer, role);
        match change {
            RoleChange::Added => {
                self.events.push_back(Event::NeighbourAdded {
                    peer: peer.clone(),
                    role,
                });
                self.greet(peer.clone());
            }
            RoleChange::Promoted => {
                self.stats.promotions += 1;
                self.events
                    .push_back(Event::Promoted { peer: peer.clone() });
            }
            RoleChange::Demoted => {
                self.stats.demotions += 1;
                self.events.push_back(Event::Demoted { peer: peer.clone() });
                if self.peers.eager_len() == 0 {
                    // Our last tree link is gone: without one we would receive everything
                    // through grafts, late. Repair with the best lazy neighbour.
                    if let Some(lazy) = self.peers.best_lazy(&mut self.rng, Some(peer)) {
                        self.graft(&lazy, None);
                    }
                }
            }
            RoleChange::Unchanged | RoleChange::Refused => {}
        }
        change
    }

    pub(super) fn fill(&mut self) {
        let added = self.peers.fill(
            &mut self.rng,
            self.config.eager_fanout,
            self.config.lazy_fanout,
        );
        for (peer, role) in added {
            if role == PeerRole::Eager {
                // Tell the peer, or it would never push to us: a node that has not broadcast yet
                // (one that just joined) would receive nothing.
                self.graft(&peer, None);
            }
            self.events.push_back(Event::NeighbourAdded {
                peer: peer.clone(),
                role,
            });
            self.greet(peer);
        }
    }

    /// A new neighbour hears at once what this node can supply (anti-entropy), instead of at
    /// the next turn of the digest timer: a link that appears after a partition or a restart
    /// repairs what it missed first.
    fn greet(&mut self, peer: I) {
        if let Some(now) = self.now {
            self.send_digest(now, peer, true);
        }
    }
}
