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
