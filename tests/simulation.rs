//! Every simulator scenario on a cluster small enough for CI, asserting what the protocol
//! promises. The 1,000-node figures of docs/simulation.md come from the `#[ignore]` test at the
//! bottom (`cargo test --release --features sim --test simulation -- --ignored`).
#![cfg(feature = "sim")]

use memberlist_plumtree::sim::{Report, Scenario, SimConfig, Workload, scenario};

fn run(scenario: Scenario, nodes: usize, seed: u64) -> Report {
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(seed);
    let (report, sim) =
        scenario::run(scenario, SimConfig::new(nodes, seed), &Workload::default()).unwrap();
    assert_eq!(
        report.duplicate_deliveries, 0,
        "{scenario}: a payload was delivered twice"
    );
    let shape = sim.tree_shape();
    assert_eq!(
        shape.components, 1,
        "{scenario}: the eager links do not connect the cluster: {shape:?}"
    );
    report
}

fn extra(report: &Report, name: &str) -> f64 {
    report
        .extra
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .expect(name)
}

#[test]
fn single_sender_converges_to_a_tree() {
    let r = run(Scenario::SingleSender, 150, 1);
    assert_eq!(r.reliability_min, 1.0);
    assert!(r.rmr_steady <= 0.01, "steady RMR {}", r.rmr_steady);
}

#[test]
fn random_senders_all_deliver_and_redundancy_falls() {
    let r = run(Scenario::RandomSender, 150, 1);
    assert_eq!(r.reliability_min, 1.0);
    assert!(r.rmr_steady <= 0.3, "steady RMR {}", r.rmr_steady);
}

#[test]
fn burst_delivers_everything() {
    let r = run(Scenario::Burst, 100, 1);
    assert_eq!(r.messages, 300);
    assert_eq!(r.reliability_min, 1.0);
}

#[test]
fn failures_lose_nothing() {
    let r = run(Scenario::Failure, 150, 1);
    assert_eq!(r.reliability_min, 1.0, "every live node gets every message");
    assert_eq!(extra(&r, "after_detection_reliability_min"), 1.0);
    assert_eq!(extra(&r, "window_reliability_min"), 1.0);
    assert!(
        extra(&r, "window_last_delivery_ms") <= 3000.0,
        "repair inside the detection window took too long"
    );
}

#[test]
fn churn_reaches_every_member_including_new_ones() {
    let r = run(Scenario::Churn, 150, 1);
    assert_eq!(r.reliability_min, 1.0);
}

#[test]
fn partition_heals() {
    let r = run(Scenario::Partition, 150, 1);
    assert_eq!(
        extra(&r, "after_heal_reliability_min"),
        1.0,
        "the tree must reconnect after the heal"
    );
    assert!(
        r.reliability_min >= 0.45,
        "each side keeps delivering during the cut"
    );
}

/// The 1,000-node targets (docs/simulation.md). Slow in debug builds: run with --release.
#[test]
#[ignore]
fn thousand_nodes_meet_the_targets() {
    let r = run(Scenario::SingleSender, 1000, 1);
    assert_eq!(r.reliability_min, 1.0);
    assert!(
        r.rmr_steady <= 0.01,
        "single-sender steady RMR {}",
        r.rmr_steady
    );

    let r = run(Scenario::RandomSender, 1000, 1);
    assert_eq!(r.reliability_min, 1.0);
    assert!(r.rmr_mean <= 0.3, "random-sender RMR {}", r.rmr_mean);

    let r = run(Scenario::Failure, 1000, 1);
    assert_eq!(r.reliability_min, 1.0);
    assert!(extra(&r, "window_last_delivery_ms") <= 3000.0);

    let r = run(Scenario::Churn, 1000, 1);
    assert_eq!(r.reliability_min, 1.0);
}
