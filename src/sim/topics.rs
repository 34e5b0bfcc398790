//! The topics measurement: several overlapping groups inside one cluster, each with random
//! senders among its members, against a single group of the same size.
//!
//! A node runs one independent protocol core per topic (src/runtime/topics.rs); cores of
//! different topics share only the node's links, which the simulator gives no bandwidth limit.
//! So each topic runs as its own simulation over the cluster's node slots (the same per-link
//! latencies), in which only the topic's members run: every frame that reaches another slot,
//! a node outside the topic, is counted.

use super::scenario::{self, Report, Scenario, Workload};
use super::{NodeIndex, Sim, SimConfig};
use crate::ConfigError;

/// What to measure.
#[derive(Clone, Debug)]
pub struct TopicsConfig {
    /// The cluster: node slots, seed, protocol config and network, shared by every topic.
    pub cluster: SimConfig,
    /// Number of topics. Default 10.
    pub topics: usize,
    /// Members per topic, drawn uniformly from this range (inclusive). Default 100 to 300.
    pub members: (usize, usize),
    /// Each topic's random-sender workload.
    pub workload: Workload,
}

impl TopicsConfig {
    /// Ten topics of 100 to 300 members among `nodes` nodes.
    pub fn new(nodes: usize, seed: u64) -> Self {
        Self {
            cluster: SimConfig::new(nodes, seed),
            topics: 10,
            members: (100, 300),
            workload: Workload::default(),
        }
    }
}

/// One topic's outcome.
#[derive(Clone, Debug)]
pub struct TopicReport {
    /// The topic's members.
    pub members: usize,
    /// The topic's run (reliability over its members, RMR, LDH, traffic).
    pub report: Report,
    /// The same workload on a cluster of just `members` nodes: the single-topic reference.
    pub alone: Report,
    /// Frames, and payloads among them, that reached nodes outside the topic (the protocol
    /// promises 0 of either).
    pub to_outsiders: (u64, u64),
}

/// Runs every topic and its single-group reference.
///
/// # Errors
/// [`ConfigError`] if the protocol config is invalid.
pub fn run(config: &TopicsConfig) -> Result<Vec<TopicReport>, ConfigError> {
    let n = config.cluster.nodes;
    let (low, high) = config.members;
    let mut rng = fastrand::Rng::with_seed(config.cluster.seed ^ 0x7091_c5ee_d00d_f00d);
    let mut reports = Vec::with_capacity(config.topics);
    for _ in 0..config.topics {
        let size = rng.usize(low.min(n)..=high.min(n));
        let mut slots: Vec<NodeIndex> = (0..n as NodeIndex).collect();
        rng.shuffle(&mut slots);
        slots.truncate(size);
        // The cluster's seed fixes its links' latencies: the same for every topic.
        let cluster = config.cluster.clone();
        let sim = Sim::with_members(cluster.clone(), &slots)?;
        let (report, sim) = scenario::run_on(Scenario::RandomSender, sim, &config.workload)?;
        let alone = SimConfig {
            nodes: size,
            ..cluster
        };
        let (alone, _) = scenario::run(Scenario::RandomSender, alone, &config.workload)?;
        reports.push(TopicReport {
            members: size,
            to_outsiders: sim.to_outsiders(),
            report,
            alone,
        });
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    #[test]
    fn topics_reach_all_their_members_and_no_one_else() {
        let mut config = TopicsConfig::new(120, 3);
        config.topics = 3;
        config.members = (15, 40);
        config.workload.messages = 30;
        let reports = run(&config).unwrap();
        assert_eq!(reports.len(), 3);
        for topic in &reports {
            assert!((15..=40).contains(&topic.members));
            assert_eq!(topic.report.reliability_min, 1.0);
            assert_eq!(topic.report.duplicate_deliveries, 0);
            assert_eq!(topic.to_outsiders, (0, 0));
            assert_eq!(topic.alone.nodes, topic.members);
        }
    }

    #[test]
    fn frames_to_a_node_outside_the_group_are_counted() {
        // Node 2 is outside; node 0 is told it is a peer (as a stale membership would).
        let mut sim = Sim::with_members(SimConfig::new(3, 1), &[0, 1]).unwrap();
        let now = sim.now;
        sim.nodes[0].core.as_mut().unwrap().add_peers(now, [2]);
        sim.drain(0);
        sim.broadcast(0, vec![1; 8]);
        sim.run_for(Duration::from_secs(2));
        let (frames, payloads) = sim.to_outsiders();
        assert!(frames > 0);
        assert!(payloads <= frames);
        assert!(!sim.is_live(2));
    }
}
