//! Helpers shared by the integration tests that run live nodes.
#![allow(dead_code)] // each test crate uses a different subset

#[cfg(feature = "memberlist")]
pub mod host;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use memberlist_plumtree::{Delivery, MessageId, PlumtreeDelegate};

/// Loopback SWIM: probes every 100 ms, so a silent crash is noticed in well under 2 s.
#[cfg(feature = "memberlist")]
pub fn fast_swim() -> memberlist_plumtree::memberlist::Options {
    memberlist_plumtree::memberlist::Options::lan()
        .with_timeout(Duration::from_secs(1))
        .with_probe_interval(Duration::from_millis(100))
        .with_probe_timeout(Duration::from_millis(50))
        .with_gossip_interval(Duration::from_millis(30))
        .with_suspicion_mult(2)
        .with_push_pull_interval(Duration::from_secs(2))
        .with_dead_node_reclaim_time(Duration::from_millis(100))
}

/// Records every delivered id, and whether any came twice.
#[derive(Clone, Default)]
pub struct Recorder {
    pub seen: Arc<Mutex<HashSet<MessageId>>>,
    pub twice: Arc<Mutex<u64>>,
}

impl Recorder {
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn has_all(&self, ids: &[MessageId]) -> bool {
        let seen = self.seen.lock().unwrap();
        ids.iter().all(|id| seen.contains(id))
    }
}

impl PlumtreeDelegate<u64> for Recorder {
    fn on_deliver(&self, delivery: Delivery<u64>) {
        if !self.seen.lock().unwrap().insert(delivery.id) {
            *self.twice.lock().unwrap() += 1;
        }
    }
}

/// Polls `done` every 20 ms for at most `limit`; its last answer.
pub async fn wait_for(mut done: impl FnMut() -> bool, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// Waits at most `limit` until every recorder has delivered every id in `ids`.
pub async fn all_deliver(recorders: &[Recorder], ids: &[MessageId], limit: Duration) -> bool {
    wait_for(|| recorders.iter().all(|r| r.has_all(ids)), limit).await
}

/// `PlumtreeConfig::lan()` with a seeded RNG.
pub fn lan(seed: u64) -> memberlist_plumtree::PlumtreeConfig {
    memberlist_plumtree::PlumtreeConfig::lan().with_rng_seed(Some(seed))
}

/// `n` started nodes on `network` that all know each other, and their recorders.
#[cfg(feature = "tokio")]
pub fn local_cluster(
    n: u64,
    network: &memberlist_plumtree::LocalNetwork<u64>,
) -> (
    Vec<memberlist_plumtree::PlumtreeMemberlist<u64, Recorder>>,
    Vec<Recorder>,
) {
    let recorders: Vec<Recorder> = (0..n).map(|_| Recorder::default()).collect();
    let nodes: Vec<_> = (0..n)
        .map(|id| {
            memberlist_plumtree::PlumtreeMemberlist::new(
                id,
                lan(id),
                recorders[id as usize].clone(),
            )
            .expect("valid config")
        })
        .collect();
    for node in &nodes {
        node.start(network.join(node)).expect("started once");
        node.inputs().add_peers(0..n);
    }
    (nodes, recorders)
}
