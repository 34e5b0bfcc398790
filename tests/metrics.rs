//! The runtime's metrics reach the installed `metrics` recorder, labelled per node.
#![cfg(all(feature = "tokio", feature = "metrics"))]

use std::time::Duration;

use memberlist_plumtree::{LocalNetwork, NoopDelegate, PlumtreeConfig, PlumtreeMemberlist};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_gauges_are_recorded_per_node() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder in this test binary");

    let network = LocalNetwork::new();
    let nodes: Vec<_> = (0..3u64)
        .map(|id| {
            PlumtreeMemberlist::new(
                id,
                PlumtreeConfig::lan().with_rng_seed(Some(id)),
                NoopDelegate,
            )
            .unwrap()
        })
        .collect();
    for node in &nodes {
        node.start(network.join(node)).unwrap();
        node.inputs().add_peers(0..3);
    }
    for _ in 0..10 {
        nodes[0].broadcast(vec![0u8; 100]).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    nodes[0].broadcast(vec![0u8; 100]).await.unwrap(); // a flush after the publish interval
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut deliveries = 0;
    let mut gossip_sent = 0;
    let mut eager_gauges = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let label = |name: &str| {
            key.labels()
                .find(|l| l.key() == name)
                .map(|l| l.value().to_owned())
        };
        assert!(label("node").is_some(), "{} has no node label", key.name());
        match (key.name(), value) {
            ("plumtree_deliveries_total", DebugValue::Counter(n)) => deliveries += n,
            ("plumtree_messages_sent_total", DebugValue::Counter(n))
                if label("type").as_deref() == Some("gossip") =>
            {
                gossip_sent += n
            }
            ("plumtree_eager_peers", DebugValue::Gauge(_)) => eager_gauges += 1,
            _ => {}
        }
    }
    assert_eq!(deliveries, 33, "11 broadcasts delivered at 3 nodes");
    assert!(
        gossip_sent >= 22,
        "every broadcast was pushed to the two other nodes at least"
    );
    assert_eq!(eager_gauges, 3, "one gauge per node");
    for node in &nodes {
        node.shutdown().await;
    }
}
