//! [`HashRing`]: members ordered by a hash of their id, so that every node agrees on each one's
//! two ring neighbours. Keeping those two as neighbours makes the overlay a ring plus random
//! chords: connected by construction, whatever fails, once membership has caught up.

use crate::NodeId;

/// Ring position of an id: its tag, mixed (splitmix64's finalizer) so that consecutive integer
/// ids land far apart.
fn position<I: NodeId>(id: &I) -> u64 {
    let mut z = id.tag().wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Every member (the local node included), sorted by ring position.
#[derive(Debug)]
pub(crate) struct HashRing<I> {
    ring: Vec<(u64, I)>,
}

impl<I: NodeId> HashRing<I> {
    pub(crate) fn new(local: I) -> Self {
        Self {
            ring: vec![(position(&local), local)],
        }
    }

    /// Adds members (known ones are ignored). O(m log m) per call, like the member list.
    pub(crate) fn insert(&mut self, members: impl IntoIterator<Item = I>) {
        self.ring
            .extend(members.into_iter().map(|m| (position(&m), m)));
        self.ring.sort_unstable();
        self.ring.dedup();
    }

    pub(crate) fn remove(&mut self, member: &I) {
        if let Ok(at) = self.ring.binary_search(&(position(member), member.clone())) {
            self.ring.remove(at);
        }
    }

    /// `local`'s predecessor and successor on the ring (one id when only two nodes are left,
    /// none when alone).
    pub(crate) fn neighbours(&self, local: &I) -> Vec<I> {
        let n = self.ring.len();
        if n < 2 {
            return Vec::new();
        }
        let Ok(at) = self.ring.binary_search(&(position(local), local.clone())) else {
            return Vec::new();
        };
        let before = &self.ring[(at + n - 1) % n].1;
        let after = &self.ring[(at + 1) % n].1;
        if before == after {
            vec![after.clone()]
        } else {
            vec![before.clone(), after.clone()]
        }
    }

    pub(crate) fn contains_neighbour(&self, local: &I, peer: &I) -> bool {
        self.neighbours(local).contains(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_agrees_on_its_neighbours_and_the_ring_closes() {
        let mut rings: Vec<HashRing<u64>> = (0..10).map(HashRing::new).collect();
        for ring in &mut rings {
            ring.insert(0..10);
        }
        // Follow successors from node 0: the walk visits all ten nodes before coming back.
        let mut at = 0u64;
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..10 {
            seen.insert(at);
            let next = rings[at as usize].neighbours(&at)[1];
            assert!(
                rings[next as usize].neighbours(&next).contains(&at),
                "symmetric"
            );
            at = next;
        }
        assert_eq!(at, 0);
        assert_eq!(seen.len(), 10);
    }

    #[test]
    fn removal_closes_the_gap() {
        let mut ring = HashRing::new(0u64);
        ring.insert(0..5);
        let [before, after] = ring.neighbours(&0)[..] else {
            panic!()
        };
        ring.remove(&after);
        assert!(ring.neighbours(&0).contains(&before));
        assert!(!ring.neighbours(&0).contains(&after));
        let mut pair = HashRing::new(0u64);
        pair.insert([1]);
        assert_eq!(pair.neighbours(&0), vec![1]);
        pair.remove(&1);
        assert!(pair.neighbours(&0).is_empty());
    }
}
