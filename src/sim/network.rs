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
    /// Nodes in regions (node `i` in region `i % count`), with one latency inside a region and
    /// another between regions; replaces `latency` when set. Default `None`.
    pub regions: Option<Regions>,
}

/// A latency model where links differ: fast inside a region, slow between regions.
#[derive(Clone, Debug, PartialEq)]
pub struct Regions {
    /// Number of regions.
    pub count: u64,
    /// One-way latency between two nodes of one region.
    pub inside: Duration,
    /// One-way latency between nodes of different regions.
    pub between: Duration,
}

impl Regions {
    /// `count` regions, 2 ms one way inside a region, 80 ms between regions.
    pub fn new(count: u64) -> Self {
        Self {
            count: count.max(1),
            inside: Duration::from_millis(2),
            between: Duration::from_millis(80),
        }
    }
}

impl NetworkConfig {
    /// One-way latency between nodes `a` and `b`.
    pub(crate) fn latency(&self, seed: u64, a: u64, b: u64) -> Duration {
        match &self.regions {
            Some(r) if a % r.count == b % r.count => r.inside,
            Some(r) => r.between,
            None => crate::latency::link_latency(&self.latency, seed, a, b),
        }
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(10)..Duration::from_millis(50),
            loss: 0.0,
            regions: None,
        }
    }
}
