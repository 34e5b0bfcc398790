//! [`Peers`]: the known members, and the few of them that are neighbours (eager or lazy).
//!
//! Invariants (checked by the property tests): neighbours are members, never the local node;
//! each neighbour has exactly one role, so the eager and lazy sets are disjoint; the neighbour
//! count never exceeds `max_peers`. Ordered maps keep iteration, and so the protocol's outputs,
//! a function of the RNG seed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::cycle::link_weight;
use super::members::Members;
use super::output::PeerRole;
use super::pending::Pending;
use super::ring::HashRing;
use super::score::Scores;
use crate::NodeId;

#[derive(Debug)]
pub(crate) struct Neighbour {
    pub(crate) role: PeerRole,
    /// Announcements waiting for the next IHave to this peer.
    pub(crate) pending: Pending,
    /// When this eager link last delivered a duplicate that did not prune it yet.
    pub(crate) suspect_since: Option<Instant>,
    /// When we last pruned this link as the heaviest of a cycle.
    pub(crate) cut_at: Option<Instant>,
    /// The link's weight ([`link_weight`]), kept because every payload received needs it.
    pub(crate) weight: u32,
    /// When we last answered this peer's anti-entropy request.
    pub(crate) answered_at: Option<Instant>,
    /// When this peer started, by the uptime in its last digest: what it delivered before is
    /// not offered to it.
    pub(crate) born: Option<Instant>,
}

/// What [`Peers::set_role`] changed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RoleChange {
    Unchanged,
    Added,
    Promoted,
    Demoted,
    /// Not a member, or no room under `max_peers`: nothing changed.
    Refused,
}

/// Most members remembered as recent senders that are not neighbours.
const RECENT_SENDERS: usize = 16;

#[derive(Debug)]
pub(crate) struct Peers<I> {
    local: I,
    local_tag: u64,
    /// A sorted list, not a tree: every node of a large cluster holds the whole membership,
    /// and this costs 8 bytes per `u64` member instead of about 16.
    members: Members<I>,
    neighbours: BTreeMap<I, Neighbour>,
    /// Members, not neighbours, that sent to this node lately (see [`admits`](Self::admits)):
    /// at most [`RECENT_SENDERS`], each a member.
    senders: Vec<I>,
    /// The entry of `senders` to replace next once it is full.
    next_sender: usize,
    eager: usize,
    max_peers: usize,
    /// With `use_hash_ring`: every member by ring position; our two ring neighbours are always
    /// neighbours and never evicted.
    ring: Option<HashRing<I>>,
    /// With `peer_scoring`: measured peers, best first when choosing tree links.
    scores: Option<Scores<I>>,
}

/// How a [`Peers`] chooses and protects neighbours.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Topology {
    pub(crate) max_peers: Option<usize>,
    pub(crate) hash_ring: bool,
    pub(crate) scoring: bool,
}

impl<I: NodeId> Peers<I> {
    pub(crate) fn new(local: I, topology: Topology) -> Self {
        Self {
            ring: topology.hash_ring.then(|| HashRing::new(local.clone())),
            scores: topology.scoring.then(Scores::new),
            local_tag: local.tag(),
            local,
            members: Members::new(),
            neighbours: BTreeMap::new(),
            senders: Vec::new(),
            next_sender: 0,
            eager: 0,
            max_peers: topology.max_peers.unwrap_or(usize::MAX),
        }
    }

    pub(crate) fn members(&self) -> &Members<I> {
        &self.members
    }

    pub(crate) fn is_member(&self, peer: &I) -> bool {
        self.members.contains(peer)
    }

    /// [`is_member`](Self::is_member) for the sender of each received message. Senders are
    /// few: neighbours, and members that chose this node as a neighbour without being chosen
    /// back (they announce to it). Those are checked first, in small hot tables: the binary
    /// search of the member list touches a cold cache line per step, which in the simulator,
    /// where a thousand such lists share the cache, costs as much as all the rest.
    pub(crate) fn admits(&mut self, peer: &I) -> bool {
        if self.neighbours.contains_key(peer) || self.senders.contains(peer) {
            return true;
        }
        if !self.is_member(peer) {
            return false;
        }
        if self.senders.len() < RECENT_SENDERS {
            self.senders.push(peer.clone());
        } else {
            self.senders[self.next_sender] = peer.clone();
            self.next_sender = (self.next_sender + 1) % RECENT_SENDERS;
        }
        true
    }

    pub(crate) fn role(&self, peer: &I) -> Option<PeerRole> {
        self.neighbours.get(peer).map(|n| n.role)
    }

    pub(crate) fn eager_len(&self) -> usize {
        self.eager
    }

    pub(crate) fn with_role(&self, role: PeerRole) -> impl Iterator<Item = &I> {
        self.neighbours
            .iter()
            .filter(move |(_, n)| n.role == role)
            .map(|(p, _)| p)
    }

    pub(crate) fn neighbours_mut(&mut self) -> impl Iterator<Item = (&I, &mut Neighbour)> {
        self.neighbours.iter_mut()
    }

    pub(crate) fn neighbour_mut(&mut self, peer: &I) -> Option<&mut Neighbour> {
        self.neighbours.get_mut(peer)
    }

    /// `peer` brought us a payload first: its link is in use, whatever duplicates it also
    /// brought, so any suspicion is lifted. Returns its role (if a neighbour) and the link's
    /// weight, in one lookup on the path every new payload takes.
    pub(crate) fn delivered_first(&mut self, peer: &I) -> (Option<PeerRole>, u32) {
        match self.neighbours.get_mut(peer) {
            Some(n) => {
                n.suspect_since = None;
                (Some(n.role), n.weight)
            }
            None => (None, link_weight(self.local_tag, peer.tag())),
        }
    }

    /// The weight of our link to `peer`, neighbour or not.
    pub(crate) fn link_weight(&self, peer: &I) -> u32 {
        match self.neighbours.get(peer) {
            Some(n) => n.weight,
            None => link_weight(self.local_tag, peer.tag()),
        }
    }

    /// Adds members, ignoring the local node and known ones; returns how many were new.
    /// O(m log m) for m members in all, however many arrive at once.
    pub(crate) fn add_members(&mut self, peers: impl IntoIterator<Item = I>) -> usize {
        let ring = &mut self.ring;
        self.members.add(&self.local, peers, |arrived| {
            // Only the arrivals can be closer on the ring than the current neighbours.
            if let Some(ring) = ring {
                ring.add(arrived);
            }
        })
    }

    /// [`add_members`](Self::add_members) for a whole sorted list, shared rather than copied
    /// when no member is known yet (see [`Members::share`]).
    #[cfg(feature = "sim")]
    pub(crate) fn share_members(&mut self, list: std::sync::Arc<Vec<I>>) -> usize {
        if let Some(ring) = &mut self.ring {
            ring.add(list.iter());
        }
        self.members.share(&self.local, list)
    }

    /// Removes a member; returns its neighbour state if it was a neighbour.
    pub(crate) fn remove_member(&mut self, peer: &I) -> Option<Neighbour> {
        self.members.remove(peer);
        // Once not full, the table fills by pushing again, so `next_sender` stays in range.
        self.senders.retain(|sender| sender != peer);
        if let Some(ring) = &mut self.ring {
            ring.remove(peer, self.members.iter());
        }
        if let Some(scores) = &mut self.scores {
            scores.remove(peer);
        }
        self.remove_neighbour(peer)
    }

    /// Drops `peer` from the neighbours (it stays a member).
    pub(crate) fn remove_neighbour(&mut self, peer: &I) -> Option<Neighbour> {
        let n = self.neighbours.remove(peer)?;
        if n.role == PeerRole::Eager {
            self.eager -= 1;
        }
        Some(n)
    }

    /// Gives `peer` the role `role`, adding it as a neighbour if there is room.
    pub(crate) fn set_role(&mut self, peer: &I, role: PeerRole) -> RoleChange {
        if let Some(n) = self.neighbours.get_mut(peer) {
            if n.role == role {
                return RoleChange::Unchanged;
            }
            n.role = role;
            return match role {
                PeerRole::Eager => {
                    self.eager += 1;
                    RoleChange::Promoted
                }
                PeerRole::Lazy => {
                    self.eager -= 1;
                    RoleChange::Demoted
                }
            };
        }
        if !self.is_member(peer) || self.neighbours.len() >= self.max_peers {
            return RoleChange::Refused;
        }
        self.neighbours.insert(
            peer.clone(),
            Neighbour {
                role,
                pending: Pending::default(),
                suspect_since: None,
                cut_at: None,
                weight: link_weight(self.local_tag, peer.tag()),
                answered_at: None,
                born: None,
            },
        );
        if role == PeerRole::Eager {
            self.eager += 1;
        }
        RoleChange::Added
    }

    /// Whether a new neighbour could be added without evicting one.
    pub(crate) fn has_room(&self) -> bool {
        self.neighbours.len() < self.max_peers
    }

    pub(crate) fn peers_with_rtt(&self) -> usize {
        self.scores.as_ref().map_or(0, Scores::measured)
    }

    /// Records a measured round trip to `peer` (ignored without scoring).
    pub(crate) fn record_rtt(&mut self, peer: &I, rtt: Duration) {
        if let Some(scores) = &mut self.scores {
            scores.record_rtt(peer, rtt);
        }
    }

    /// A graft to `peer` went unanswered, or was answered (ignored without scoring).
    pub(crate) fn graft_outcome(&mut self, peer: &I, answered: bool) {
        if let Some(scores) = &mut self.scores {
            if answered {
                scores.graft_answered(peer);
            } else {
                scores.graft_failed(peer);
            }
        }
    }

    /// Sorts `items` best first by the score of `key(item)`; leaves them as they are without
    /// scoring.
    pub(crate) fn sort_by_score<T>(&self, items: &mut [T], key: impl Fn(&T) -> &I) {
        if let Some(scores) = &self.scores {
            scores.sort_by_key(items, key);
        }
    }

    /// Whether `peer` is one of our ring neighbours (always false without the hash ring).
    pub(crate) fn is_protected(&self, peer: &I) -> bool {
        self.ring
            .as_ref()
            .is_some_and(|ring| ring.contains_neighbour(peer))
    }

    /// The lazy neighbour to promote when the tree needs repair: the best scored one, or a
    /// uniformly random one when none is measured (or scoring is off).
    pub(crate) fn best_lazy(&self, rng: &mut fastrand::Rng, except: Option<&I>) -> Option<I> {
        let lazy: Vec<&I> = self
            .with_role(PeerRole::Lazy)
            .filter(|p| Some(*p) != except)
            .collect();
        if let Some(scores) = &self.scores {
            let best = lazy
                .iter()
                .filter_map(|p| scores.get(*p).map(|s| (s, *p)))
                .min_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((_, peer)) = best {
                return Some(peer.clone());
            }
        }
        (!lazy.is_empty()).then(|| lazy[rng.usize(..lazy.len())].clone())
    }

    /// A uniformly random lazy neighbour other than `except` that may be evicted: never a ring
    /// neighbour.
    pub(crate) fn evictable_lazy(&self, rng: &mut fastrand::Rng, except: Option<&I>) -> Option<I> {
        let lazy: Vec<&I> = self
            .with_role(PeerRole::Lazy)
            .filter(|p| Some(*p) != except && !self.is_protected(p))
            .collect();
        (!lazy.is_empty()).then(|| lazy[rng.usize(..lazy.len())].clone())
    }

    /// Chooses members as new neighbours until there are `eager_fanout + lazy_fanout` of them
    /// (or no member is left). A new neighbour is eager while fewer than `eager_fanout`
    /// neighbours exist: only a node's first choices are eager, so replacing a lost neighbour
    /// never undoes the prunes that shaped the tree.
    ///
    /// With the hash ring, the two ring neighbours come first and are added even past the
    /// target. With scoring and measured peers, eager slots go to the best of a random sample
    /// four times larger, except one that stays random (a long-range link); lazy ones stay random.
    pub(crate) fn fill(
        &mut self,
        rng: &mut fastrand::Rng,
        eager_fanout: usize,
        lazy_fanout: usize,
    ) -> Vec<(I, PeerRole)> {
        let mut added = Vec::new();
        if let Some(ring) = &self.ring {
            for peer in ring.neighbours() {
                let role = if self.neighbours.len() < eager_fanout {
                    PeerRole::Eager
                } else {
                    PeerRole::Lazy
                };
                if !self.neighbours.contains_key(&peer)
                    && self.set_role(&peer, role) == RoleChange::Added
                {
                    added.push((peer, role));
                }
            }
        }
        let target = (eager_fanout + lazy_fanout).min(self.max_peers);
        if self.neighbours.len() >= target || self.members.len() <= self.neighbours.len() {
            return added;
        }
        let mut spare: Vec<&I> = self
            .members
            .iter()
            .filter(|m| !self.neighbours.contains_key(*m))
            .collect();
        let wanted = (target - self.neighbours.len()).min(spare.len());
        let eager_slots = eager_fanout
            .saturating_sub(self.neighbours.len())
            .min(wanted);
        let scored = self.scores.as_ref().is_some_and(|s| !s.is_empty()) && eager_slots > 0;
        let sample = if scored {
            (wanted * 4).min(spare.len())
        } else {
            wanted
        };
        // Partial Fisher-Yates: the first `sample` slots become a uniform sample.
        for i in 0..sample {
            let j = rng.usize(i..spare.len());
            spare.swap(i, j);
        }
        let mut chosen: Vec<I> = spare[..sample].iter().map(|p| (*p).clone()).collect();
        if scored {
            // The best for the eager slots but one; the rest of the sample stays in random order.
            let best = eager_slots - usize::from(eager_slots >= 2);
            self.sort_by_score(&mut chosen, |p| p);
            rng.shuffle(&mut chosen[best..]);
            chosen.truncate(wanted);
        }
        for peer in chosen {
            let role = if self.neighbours.len() < eager_fanout {
                PeerRole::Eager
            } else {
                PeerRole::Lazy
            };
            let change = self.set_role(&peer, role);
            debug_assert_eq!(change, RoleChange::Added);
            added.push((peer, role));
        }
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_picks_fanout_eager_then_lazy_and_never_self() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut peers = Peers::new(0u64, Topology::default());
        assert_eq!(peers.add_members([0]), 0);
        assert_eq!(peers.add_members((1..=20).rev()), 20);
        assert_eq!(peers.add_members([3, 21]), 1);
        assert!(peers.members().iter().copied().eq(1..=21));
        let added = peers.fill(&mut rng, 3, 6);
        assert_eq!(added.len(), 9);
        assert_eq!(
            added.iter().filter(|(_, r)| *r == PeerRole::Eager).count(),
            3
        );
        assert_eq!(peers.eager_len(), 3);
        assert!(peers.fill(&mut rng, 3, 6).is_empty(), "already full");
    }

    #[test]
    fn set_role_respects_membership_and_cap() {
        let mut peers = Peers::new(
            0u64,
            Topology {
                max_peers: Some(2),
                ..Topology::default()
            },
        );
        peers.add_members(1..=3);
        assert_eq!(
            peers.set_role(&9, PeerRole::Eager),
            RoleChange::Refused,
            "not a member"
        );
        assert_eq!(peers.set_role(&1, PeerRole::Eager), RoleChange::Added);
        assert_eq!(peers.set_role(&1, PeerRole::Eager), RoleChange::Unchanged);
        assert_eq!(peers.set_role(&2, PeerRole::Lazy), RoleChange::Added);
        assert_eq!(
            peers.set_role(&3, PeerRole::Lazy),
            RoleChange::Refused,
            "max_peers"
        );
        assert_eq!(peers.set_role(&1, PeerRole::Lazy), RoleChange::Demoted);
        assert_eq!(peers.set_role(&2, PeerRole::Eager), RoleChange::Promoted);
        assert_eq!(peers.eager_len(), 1);
        assert!(peers.remove_member(&2).is_some());
        assert_eq!(peers.eager_len(), 0);
        assert!(!peers.is_member(&2));
    }

    #[test]
    fn senders_are_admitted_while_members_and_the_table_stays_bounded() {
        let mut peers = Peers::new(0u64, Topology::default());
        peers.add_members(1..=100);
        assert!(!peers.admits(&101), "a stranger");
        for sender in 1..=100 {
            assert!(peers.admits(&sender));
            assert!(peers.admits(&sender), "again, from the table");
        }
        assert_eq!(peers.senders.len(), RECENT_SENDERS);
        assert!(peers.senders.iter().all(|s| peers.is_member(s)));
        let remembered = peers.senders[0];
        peers.remove_member(&remembered);
        assert!(!peers.admits(&remembered), "forgotten with its membership");
        assert!(peers.senders.len() < RECENT_SENDERS);
        assert!(peers.admits(&1) && peers.senders.len() <= RECENT_SENDERS);
    }
}
