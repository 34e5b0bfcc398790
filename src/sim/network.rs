//! The virtual network: per-link latency, loss and partitions.

use std::ops::Range;
use std::time::Duration;

/// How frames travel between simulated nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    /// One-way latency of a link is drawn uniformly from this range, once per link (fixed by the
    /// seed), so a link never reorders. Default 10..50 ms.
    pub latency: Range<Duration>,
    /// Probability that a frame is lost, 0.0 to 1.0. Default 0.
    pub loss: f64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(10)..Duration::from_millis(50),
            loss: 0.0,
        }
    }
}

/// Latency of the link between `a` and `b` (the same both ways), a pure function of the seed.
pub(crate) fn link_latency(config: &NetworkConfig, seed: u64, a: u64, b: u64) -> Duration {
    let (lo, hi) = (a.min(b), a.max(b));
    let min = config.latency.start.as_micros() as u64;
    let max = (config.latency.end.as_micros() as u64).max(min + 1);
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
        let c = NetworkConfig::default();
        let l = link_latency(&c, 7, 3, 9);
        assert_eq!(l, link_latency(&c, 7, 9, 3));
        assert_eq!(l, link_latency(&c, 7, 3, 9));
        assert!(c.latency.contains(&l));
        let distinct: std::collections::BTreeSet<_> =
            (0..50).map(|b| link_latency(&c, 7, 0, b)).collect();
        assert!(distinct.len() > 40, "links draw independently");
    }
}
