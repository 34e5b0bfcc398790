//! Per-link latency for simulated networks (the simulator and `LocalNetwork`).

use std::ops::Range;
use std::time::Duration;

/// One-way latency of the link between nodes tagged `a` and `b`: drawn uniformly from `range`,
/// the same both ways, and a pure function of `seed`, so a link keeps its latency (and never
/// reorders) for a whole run. An empty range gives its start.
pub(crate) fn link_latency(range: &Range<Duration>, seed: u64, a: u64, b: u64) -> Duration {
    let min = range.start.as_micros() as u64;
    let max = range.end.as_micros() as u64;
    if max <= min {
        return range.start;
    }
    let (lo, hi) = (a.min(b), a.max(b));
    // Mix the link's endpoints into the seed so every link gets an independent draw.
    let mut rng = fastrand::Rng::with_seed(
        seed ^ lo.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ hi.rotate_left(29),
    );
    Duration::from_micros(rng.u64(min..max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_symmetric_fixed_and_in_range() {
        let range = Duration::from_millis(10)..Duration::from_millis(50);
        let l = link_latency(&range, 7, 3, 9);
        assert_eq!(l, link_latency(&range, 7, 9, 3));
        assert_eq!(l, link_latency(&range, 7, 3, 9));
        assert!(range.contains(&l));
        let distinct: std::collections::BTreeSet<_> =
            (0..50).map(|b| link_latency(&range, 7, 0, b)).collect();
        assert!(distinct.len() > 40, "links draw independently");
        assert_eq!(
            link_latency(&(range.start..range.start), 7, 0, 1),
            range.start
        );
    }
}
