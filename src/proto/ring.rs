//! [`HashRing`]: this node's two neighbours on a ring of all members ordered by a hash of their
//! id, so that every node agrees on each one's ring neighbours. Keeping those two as neighbours
//! makes the overlay a ring plus random chords: connected by construction, whatever fails, once
//! membership has caught up.
//!
//! Only the two neighbours are stored, not the ring: a member list is already kept, and a
//! simulator with 10,000 nodes holds 10,000 of them.

use crate::NodeId;

/// Ring position of an id: its tag, mixed (splitmix64's finalizer) so that consecutive integer
/// ids land far apart.
fn position<I: NodeId>(id: &I) -> u64 {
    let mut z = id.tag().wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The local node's predecessor and successor on the ring.
#[derive(Debug)]
pub(crate) struct HashRing<I> {
    local: I,
    at: u64,
    /// Closest member going backwards (the distance is `at - position`, wrapping), and forwards.
    before: Option<(u64, I)>,
    after: Option<(u64, I)>,
}

impl<I: NodeId> HashRing<I> {
    pub(crate) fn new(local: I) -> Self {
        Self {
            at: position(&local),
            local,
            before: None,
            after: None,
        }
    }

    /// Considers `members` as ring neighbours (the local id is skipped). O(members).
    pub(crate) fn add<'a>(&mut self, members: impl IntoIterator<Item = &'a I>)
    where
        I: 'a,
    {
        for member in members {
            if *member == self.local {
                continue;
            }
            let pos = position(member);
            // Distances are never 0 for another id unless two tags collide; ids break ties.
            let back = (self.at.wrapping_sub(pos), member);
            let ahead = (pos.wrapping_sub(self.at), member);
            if self.before.as_ref().is_none_or(|(d, id)| back < (*d, id)) {
                self.before = Some((back.0, member.clone()));
            }
            if self.after.as_ref().is_none_or(|(d, id)| ahead < (*d, id)) {
                self.after = Some((ahead.0, member.clone()));
            }
        }
    }

    /// `gone` left; if it was a ring neighbour, the new one is found among `members` (which no
    /// longer hold `gone`). Only the two nodes next to a departed one pay the O(members) scan.
    pub(crate) fn remove<'a>(&mut self, gone: &I, members: impl IntoIterator<Item = &'a I>)
    where
        I: 'a,
    {
        let was = |side: &Option<(u64, I)>| side.as_ref().is_some_and(|(_, id)| id == gone);
        if was(&self.before) || was(&self.after) {
            self.before = None;
            self.after = None;
            self.add(members);
        }
    }

    /// The ring neighbours: two, one when only two nodes are known, none when alone.
    pub(crate) fn neighbours(&self) -> Vec<I> {
        let mut out = Vec::with_capacity(2);
        for (_, id) in self.before.iter().chain(&self.after) {
            if !out.contains(id) {
                out.push(id.clone());
            }
        }
        out
    }

    pub(crate) fn contains_neighbour(&self, peer: &I) -> bool {
        [&self.before, &self.after]
            .into_iter()
            .any(|side| side.as_ref().is_some_and(|(_, id)| id == peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(local: u64, members: &[u64]) -> HashRing<u64> {
        let mut ring = HashRing::new(local);
        ring.add(members);
        ring
    }

    #[test]
    fn every_node_agrees_on_its_neighbours_and_the_ring_closes() {
        let members: Vec<u64> = (0..10).collect();
        let rings: Vec<HashRing<u64>> = (0..10).map(|i| ring(i, &members)).collect();
        // Follow successors from node 0: the walk visits all ten nodes before coming back.
        let mut at = 0u64;
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..10 {
            seen.insert(at);
            let next = rings[at as usize].after.as_ref().unwrap().1;
            assert_eq!(
                rings[next as usize].before.as_ref().unwrap().1,
                at,
                "symmetric"
            );
            at = next;
        }
        assert_eq!(at, 0);
        assert_eq!(seen.len(), 10);
    }

    #[test]
    fn removal_finds_the_next_neighbour() {
        let mut members: Vec<u64> = (1..50).collect();
        let mut r = ring(0, &members);
        let after = r.after.as_ref().unwrap().1;
        members.retain(|&m| m != after);
        r.remove(&after, &members);
        assert!(!r.contains_neighbour(&after));
        assert_eq!(r.neighbours(), ring(0, &members).neighbours());
        let mut pair = ring(0, &[1]);
        assert_eq!(pair.neighbours(), vec![1]);
        pair.remove(&1, &[]);
        assert!(pair.neighbours().is_empty());
    }
}
