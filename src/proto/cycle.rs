//! Link weights, and the test that finds a link safe to prune the moment a duplicate shows it.
//!
//! Every link gets a weight that both of its ends compute alike from the two node ids. Each
//! payload carries the heaviest weight on the path it has taken ([`Gossip::heaviest`]). When a
//! node receives a payload a second time, the two copies came down two paths of the payload's
//! own dissemination tree, which share their start and then part: with the link of the second
//! copy they close a cycle. If that link outweighs both paths, it is the heaviest link of the
//! cycle.
//!
//! The heaviest link of a cycle is never part of the minimum spanning tree of the links that
//! carried payloads, so pruning only such links cannot disconnect anything, however many nodes
//! prune at the same instant for however many concurrent broadcasts. That is what the paper's
//! rule (prune the link of every duplicate) lacks when several broadcasts are in flight: two
//! nodes can prune two links of one cycle, and the tree falls apart. (Connected links are not
//! quite "every payload arrives by push": a payload that passed a node before both ends of one
//! of its links had made it eager, as when a node broadcasts in the instant it picks its
//! neighbours, is left to the IHave repair, as after a failure.)
//!
//! The test is sufficient, not necessary: when a cycle's heaviest link is not where the copies
//! meet, this rule keeps the cycle, and the delayed rule (`prune_delay`) removes it later.
//!
//! [`Gossip::heaviest`]: crate::message::Gossip::heaviest

/// The weight of the link between the nodes with tags `a` and `b`: the same from either end,
/// spread evenly over `u32` so that equal weights (which never prune) are rare.
pub(crate) fn link_weight(a: u64, b: u64) -> u32 {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    (mix(lo ^ mix(hi ^ 0x9e37_79b9_7f4a_7c15)) >> 32) as u32
}

/// Whether a duplicate that came over a link of weight `link` shows that link to be the
/// heaviest of a cycle: `first` is the heaviest weight on the path of the first copy (its last
/// link included), `second` the one the duplicate carried (the path up to its sender).
pub(crate) fn closes_cycle_as_heaviest(link: u32, first: u32, second: u32) -> bool {
    link > first && link > second
}

/// SplitMix64's finalizer: a bijection on `u64` whose every output bit depends on every input
/// bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_symmetric_and_spread() {
        let mut seen = std::collections::HashSet::new();
        for a in 0..40u64 {
            for b in 0..40u64 {
                assert_eq!(link_weight(a, b), link_weight(b, a));
                if a < b {
                    seen.insert(link_weight(a, b));
                }
            }
        }
        // 780 distinct pairs; a few equal weights would be possible, but not many.
        assert!(seen.len() > 770, "{}", seen.len());
    }

    #[test]
    fn only_a_strictly_heaviest_link_closes_a_cycle() {
        assert!(closes_cycle_as_heaviest(10, 9, 3));
        assert!(!closes_cycle_as_heaviest(10, 10, 3)); // tie: could be the same link
        assert!(!closes_cycle_as_heaviest(10, 3, 11));
        assert!(!closes_cycle_as_heaviest(0, 0, 0));
    }
}
