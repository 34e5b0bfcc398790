//! [`Adaptive`]: the IHave flush interval and the cache retention, tuned from what the node sees.
//!
//! - IHave flushes: announcements exist for repair. While this node needs no repair (no graft
//!   for a missing payload sent since the last flush), each flush doubles the interval, up to
//!   [`MAX_IHAVE_SCALE`] times `ihave_interval`: fewer, fuller IHave frames over a healthy tree.
//!   The first such graft brings it back to `ihave_interval` at once. A graft received only
//!   brings the next flush within `ihave_interval` (`Plumtree::flush_within_interval`). (Full batches leave
//!   at once whatever the interval, so under load the frame count follows the rate.)
//! - Cache retention: a payload is only needed while a graft for it can still come. That window
//!   is bounded by the protocol's own timers (the longest IHave delay, the graft timeout and every
//!   retry), doubled for safety, and by twice the oldest payload a graft has asked us for so far.
//!   Payloads leave the cache after that window instead of `message_cache_ttl` (never later).

use std::time::Duration;

use crate::PlumtreeConfig;

/// Largest multiple of `ihave_interval` the adaptive flush interval reaches.
pub(crate) const MAX_IHAVE_SCALE: u32 = 8;

#[derive(Debug)]
pub(crate) struct Adaptive {
    ihave: bool,
    cache: bool,
    scale: u32,
    /// A graft for a missing payload was sent since the last flush.
    repair_seen: bool,
    /// Age of the oldest payload a graft asked us for.
    oldest_grafted: Duration,
}

impl Adaptive {
    pub(crate) fn new(config: &PlumtreeConfig) -> Self {
        Self {
            ihave: config.adaptive_ihave,
            cache: config.adaptive_cache,
            scale: 1,
            repair_seen: false,
            oldest_grafted: Duration::ZERO,
        }
    }

    /// The interval to arm the next IHave flush with.
    pub(crate) fn ihave_interval(&self, config: &PlumtreeConfig) -> Duration {
        config.ihave_interval * self.scale
    }

    /// The longest an announcement may wait for its IHave flush.
    pub(crate) fn longest_ihave_delay(&self, config: &PlumtreeConfig) -> Duration {
        if self.ihave {
            config.ihave_interval * MAX_IHAVE_SCALE
        } else {
            config.ihave_interval
        }
    }

    /// A timed flush happened: stretch the interval if the tree needed no repair since the last.
    pub(crate) fn flushed(&mut self) {
        if self.ihave && !self.repair_seen {
            self.scale = (self.scale * 2).min(MAX_IHAVE_SCALE);
        }
        self.repair_seen = false;
    }

    /// A graft for a missing payload went out: announcements matter again. True if the interval
    /// shrank.
    pub(crate) fn repaired(&mut self) -> bool {
        self.repair_seen = true;
        std::mem::replace(&mut self.scale, 1) != 1
    }

    /// A graft asked for a payload we first saw `age` ago. Returns the new retention if it grew.
    pub(crate) fn grafted_at_age(
        &mut self,
        age: Duration,
        config: &PlumtreeConfig,
    ) -> Option<Duration> {
        if !self.cache || age <= self.oldest_grafted {
            return None;
        }
        let before = self.cache_retention(config);
        self.oldest_grafted = age;
        let after = self.cache_retention(config);
        (after > before).then_some(after)
    }

    /// How long payloads stay cached.
    pub(crate) fn cache_retention(&self, config: &PlumtreeConfig) -> Duration {
        if !self.cache {
            return config.message_cache_ttl;
        }
        let repair_window = self.longest_ihave_delay(config)
            + config.graft_timeout
            + config.graft_retry_timeout * config.graft_max_retries;
        (repair_window * 2)
            .max(self.oldest_grafted * 2)
            .min(config.message_cache_ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_stretches_while_quiet_and_snaps_back_on_repair() {
        let config = PlumtreeConfig::default().with_adaptive_ihave(true);
        let mut a = Adaptive::new(&config);
        let base = config.ihave_interval;
        for expected in [2, 4, 8, 8] {
            a.flushed();
            assert_eq!(a.ihave_interval(&config), base * expected);
        }
        assert!(a.repaired());
        assert_eq!(a.ihave_interval(&config), base);
        a.flushed(); // a repair happened in this period: no stretch
        assert_eq!(a.ihave_interval(&config), base);
        let off = Adaptive::new(&PlumtreeConfig::default().with_adaptive_ihave(false));
        assert_eq!(off.ihave_interval(&config), base);
    }

    #[test]
    fn retention_covers_the_repair_window_and_grows_with_observed_grafts() {
        let config = PlumtreeConfig::default()
            .with_adaptive_ihave(false)
            .with_adaptive_cache(true);
        let mut a = Adaptive::new(&config);
        // 2 x (100 ms + 500 ms + 5 x 250 ms)
        assert_eq!(a.cache_retention(&config), Duration::from_millis(3700));
        assert_eq!(a.grafted_at_age(Duration::from_secs(1), &config), None);
        assert_eq!(
            a.grafted_at_age(Duration::from_secs(3), &config),
            Some(Duration::from_secs(6))
        );
        assert_eq!(
            a.grafted_at_age(Duration::from_secs(100), &config),
            Some(config.message_cache_ttl),
            "never past the ttl"
        );
        let off = Adaptive::new(&PlumtreeConfig::default().with_adaptive_ihave(false));
        assert_eq!(off.cache_retention(&config), config.message_cache_ttl);
    }
}
