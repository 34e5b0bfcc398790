//! [`Scores`]: how good a peer is as a tree link, from measured round-trip times and from how
//! its grafts went. Lower is better.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

/// Added to a peer's score per unanswered graft (halved by each answered one), so a peer that
/// stops answering loses its place even while its pings look fine.
const FAILURE_PENALTY_MS: f64 = 100.0;
/// Weight of a new RTT sample in the smoothed value.
const ALPHA: f64 = 0.25;
/// Most peers scored at once: measurements of peers beyond it are ignored until some leave.
const MAX_SCORED: usize = 65_536;

#[derive(Clone, Copy, Debug, Default)]
struct PeerScore {
    /// Smoothed round-trip time in milliseconds; `None` until measured.
    srtt_ms: Option<f64>,
    failures: f64,
}

/// Scores of the members that have been measured. Bounded by the membership: entries are
/// dropped with their member.
#[derive(Debug)]
pub(crate) struct Scores<I> {
    peers: HashMap<I, PeerScore, foldhash::fast::RandomState>,
}

impl<I: Eq + Hash + Clone> Scores<I> {
    pub(crate) fn new() -> Self {
        Self {
            peers: HashMap::default(),
        }
    }

    pub(crate) fn record_rtt(&mut self, peer: &I, rtt: Duration) {
        let sample = rtt.as_secs_f64() * 1000.0;
        if self.peers.len() >= MAX_SCORED && !self.peers.contains_key(peer) {
            return;
        }
        let score = self.peers.entry(peer.clone()).or_default();
        score.srtt_ms = Some(match score.srtt_ms {
            Some(old) => old + ALPHA * (sample - old),
            None => sample,
        });
    }

    pub(crate) fn graft_failed(&mut self, peer: &I) {
        if self.peers.len() >= MAX_SCORED && !self.peers.contains_key(peer) {
            return;
        }
        self.peers.entry(peer.clone()).or_default().failures += 1.0;
    }

    pub(crate) fn graft_answered(&mut self, peer: &I) {
        if let Some(score) = self.peers.get_mut(peer) {
            score.failures /= 2.0;
        }
    }

    /// Peers with a measured round trip.
    pub(crate) fn measured(&self) -> usize {
        self.peers.values().filter(|s| s.srtt_ms.is_some()).count()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub(crate) fn remove(&mut self, peer: &I) {
        self.peers.remove(peer);
    }

    /// The peer's score in milliseconds, or `None` if nothing is known of it.
    pub(crate) fn get(&self, peer: &I) -> Option<f64> {
        let score = self.peers.get(peer)?;
        let penalty = score.failures * FAILURE_PENALTY_MS;
        match score.srtt_ms {
            Some(rtt) => Some(rtt + penalty),
            None if score.failures > 0.0 => Some(penalty),
            None => None,
        }
    }

    /// Sorts `items` best first by the score of `key(item)`; unmeasured peers go last, in their
    /// given (random) order.
    pub(crate) fn sort_by_key<T>(&self, items: &mut [T], key: impl Fn(&T) -> &I) {
        items.sort_by(|a, b| match (self.get(key(a)), self.get(key(b))) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_fast_peers_sort_first_and_failures_cost() {
        let mut scores = Scores::new();
        scores.record_rtt(&1u64, Duration::from_millis(80));
        scores.record_rtt(&2, Duration::from_millis(4));
        scores.record_rtt(&2, Duration::from_millis(4));
        let mut peers = vec![3u64, 1, 2];
        scores.sort_by_key(&mut peers, |p| p);
        assert_eq!(peers, [2, 1, 3]);
        scores.graft_failed(&2);
        assert_eq!(scores.get(&2), Some(104.0));
        let mut peers = vec![2u64, 1];
        scores.sort_by_key(&mut peers, |p| p);
        assert_eq!(peers, [1, 2]);
        scores.graft_answered(&2);
        assert_eq!(scores.get(&2), Some(54.0));
        scores.remove(&2);
        assert_eq!(scores.get(&2), None);
    }
}
