//! Twenty real cores wired together in memory (through the simulator's virtual network).
#![cfg(feature = "sim")]

use std::time::Duration;

use memberlist_plumtree::sim::{Sim, SimConfig};

#[test]
fn every_broadcast_is_delivered_exactly_once_and_a_single_sender_tree_converges_to_n_minus_1() {
    let n = 20;
    let mut sim = Sim::new(SimConfig::new(n, 42)).unwrap();
    for _ in 0..30 {
        sim.broadcast(0, vec![7; 256]).unwrap();
        sim.run_for(Duration::from_millis(100));
    }
    sim.run_for(Duration::from_secs(3));

    for r in sim.records() {
        assert_eq!(
            r.delivered,
            n as u64 - 1,
            "broadcast {} missed a node",
            r.id
        );
    }
    assert_eq!(sim.duplicate_deliveries(), 0);
    let payloads: Vec<u64> = sim.records().iter().map(|r| r.payload_messages).collect();
    assert!(
        payloads[0] > n as u64 - 1,
        "the first broadcasts take redundant paths: {payloads:?}"
    );
    assert!(
        payloads[10..].iter().all(|&p| p == n as u64 - 1),
        "after a few broadcasts each node gets each payload once: {payloads:?}"
    );
}

#[test]
fn random_senders_are_each_delivered_exactly_once() {
    let n = 20;
    let mut sim = Sim::new(SimConfig::new(n, 9)).unwrap();
    for _ in 0..100 {
        let origin = sim.rng().u64(..n as u64);
        sim.broadcast(origin, vec![1; 64]).unwrap();
        sim.run_for(Duration::from_millis(20));
    }
    sim.run_for(Duration::from_secs(3));
    assert!(sim.records().iter().all(|r| r.delivered == n as u64 - 1));
    assert_eq!(sim.duplicate_deliveries(), 0);
}
