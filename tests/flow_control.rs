//! Flow control: congestion slows nodes down (relays included) instead of dropping frames, and a
//! peer that stops reading holds its neighbours back only for `stall_timeout`.
#![cfg(feature = "tokio")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Recorder, all_deliver};
use memberlist_plumtree::{
    ChannelTransport, LocalNetwork, PlumtreeConfig, PlumtreeMemberlist, RuntimeConfig,
};
use tokio::task::JoinSet;

/// Queues small enough that an unpaced sender fills them within a few broadcasts.
fn tight() -> RuntimeConfig {
    RuntimeConfig::default()
        .with_peer_queue_capacity(32)
        .with_inbound_bytes(64 * 320) // about 64 frames of these tests' payloads
        .with_stall_timeout(Duration::from_millis(300))
}

/// `n` nodes with `tight()` queues, not started, and their recorders.
fn tight_nodes(n: u64) -> (Vec<Arc<PlumtreeMemberlist<u64, Recorder>>>, Vec<Recorder>) {
    let recorders: Vec<Recorder> = (0..n).map(|_| Recorder::default()).collect();
    let nodes = (0..n)
        .map(|id| {
            let config = PlumtreeConfig::lan().with_rng_seed(Some(id));
            let recorder = recorders[id as usize].clone();
            Arc::new(
                PlumtreeMemberlist::with_runtime_config(id, config, tight(), recorder).unwrap(),
            )
        })
        .collect();
    (nodes, recorders)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_before_a_slow_link_slows_the_origin_instead_of_dropping() {
    // A chain 0 - 1 - 2 whose second link carries at most 32 frames a millisecond, slower than
    // node 0 can broadcast. Without flow control at the relay, node 1 takes all that node 0
    // sends and overflows its queue to node 2; with it, node 1 takes frames only one turn per
    // 10 ms while that queue is congested, node 0's queue to it fills, and node 0 stops taking
    // broadcasts.
    let recorders: Vec<Recorder> = (0..3).map(|_| Recorder::default()).collect();
    let runtime = RuntimeConfig::default()
        .with_peer_queue_capacity(4096)
        .with_inbound_bytes(256 * 220) // about 256 frames of 100-byte payloads
        .with_stall_timeout(Duration::from_secs(10));
    let nodes: Vec<_> = (0..3u64)
        .map(|id| {
            let config = PlumtreeConfig::lan().with_rng_seed(Some(id));
            PlumtreeMemberlist::with_runtime_config(
                id,
                config,
                runtime.clone(),
                recorders[id as usize].clone(),
            )
            .unwrap()
        })
        .collect();
    let network = LocalNetwork::new();
    nodes[0].start(network.join(&nodes[0])).unwrap();
    nodes[2].start(network.join(&nodes[2])).unwrap();
    let (relay, mut frames) = ChannelTransport::bounded(1);
    let _ = network.join(&nodes[1]); // so that nodes 0 and 2 reach node 1
    nodes[1].start(relay).unwrap();
    let (to_origin, to_leaf) = (nodes[0].inputs(), nodes[2].inputs());
    tokio::spawn(async move {
        let mut budget = 32;
        while let Some((to, frame)) = frames.recv().await {
            if to == 2 {
                if budget == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    budget = 32;
                }
                budget -= 1;
                let _ = to_leaf.handle_frame(frame).await;
            } else {
                let _ = to_origin.handle_frame(frame).await;
            }
        }
    });
    nodes[0].inputs().add_peer(1);
    nodes[1].inputs().add_peers([0, 2]);
    nodes[2].inputs().add_peer(1);
    let mut ids = Vec::new();
    for _ in 0..20_000 {
        ids.push(nodes[0].broadcast(vec![1u8; 100]).await.unwrap());
    }
    assert!(
        all_deliver(&recorders, &ids, Duration::from_secs(30)).await,
        "a broadcast was not delivered everywhere"
    );
    let relay = nodes[1].stats().await.unwrap();
    assert_eq!(relay.outbound_dropped, 0, "the relay dropped frames");
    for node in &nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn congested_nodes_that_feed_each_other_still_progress() {
    // Tiny queues and every node an unpaced origin: payloads cross every link both ways, so
    // congested nodes wait on each other. Paced turns keep them moving (some frames are
    // dropped and repaired); without them this did not finish in 30 s.
    const N: u64 = 8;
    let network = LocalNetwork::new();
    let (nodes, recorders) = tight_nodes(N);
    for node in &nodes {
        node.start(network.join(node)).unwrap();
        node.inputs().add_peers(0..N);
    }
    let mut senders = JoinSet::new();
    for node in &nodes {
        let node = Arc::clone(node);
        senders.spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..400 {
                ids.push(node.broadcast(vec![3u8; 200]).await.unwrap());
            }
            ids
        });
    }
    let ids: Vec<_> = senders.join_all().await.concat();
    assert!(
        all_deliver(&recorders, &ids, Duration::from_secs(20)).await,
        "a broadcast was not delivered everywhere"
    );
    for node in &nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_holds_the_others_back_only_for_stall_timeout() {
    const N: u64 = 6;
    let network = LocalNetwork::new();
    let (nodes, recorders) = tight_nodes(N);
    // Node 5 is reachable but never started: frames to it wait in its inbound queue forever,
    // so every send task towards it blocks once that queue is full.
    let _ = network.join(&nodes[5]);
    for node in &nodes[..5] {
        node.start(network.join(node)).unwrap();
        node.inputs().add_peers(0..N);
    }
    let mut ids = Vec::new();
    for i in 0..1_000 {
        ids.push(nodes[i % 2].broadcast(vec![5u8; 200]).await.unwrap());
    }
    assert!(
        all_deliver(&recorders[..5], &ids, Duration::from_secs(30)).await,
        "a node stuck behind the silent peer"
    );
    for node in &nodes[..5] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturating_sender_with_fanouts_3_6_loses_nothing() {
    // Ten nodes, one unpaced origin, eager/lazy fanouts 3/6, and a cache smaller than what
    // the origin could broadcast in one repair horizon: payloads that need repair must not be
    // evicted before the grafts for them come. The origin waits for the cache, so the
    // broadcasts take at least one horizon per cache-full, and every node delivers every
    // broadcast exactly once.
    const N: u64 = 10;
    const BROADCASTS: usize = 6_000;
    const CACHE: usize = 1_000;
    let network = LocalNetwork::new();
    let recorders: Vec<Recorder> = (0..N).map(|_| Recorder::default()).collect();
    let nodes: Vec<_> = (0..N)
        .map(|id| {
            let config = PlumtreeConfig::lan()
                .with_rng_seed(Some(id))
                .with_eager_fanout(3)
                .with_lazy_fanout(6)
                .with_message_cache_max_size(CACHE);
            PlumtreeMemberlist::new(id, config, recorders[id as usize].clone()).unwrap()
        })
        .collect();
    for node in &nodes {
        node.start(network.join(node)).unwrap();
        node.inputs().add_peers(0..N);
    }
    let start = tokio::time::Instant::now();
    let mut ids = Vec::with_capacity(BROADCASTS);
    for _ in 0..BROADCASTS {
        ids.push(nodes[0].broadcast(vec![9u8; 256]).await.unwrap());
    }
    // lan(): the IHave wait stretched to 400 ms (longer than the 200 ms graft timer, which
    // counts from when the announcer had the payload) + 100 ms retry. A lower bound, so a slow
    // machine cannot fail it: only a sender that outran its cache can.
    let horizon = Duration::from_millis(500);
    assert!(
        start.elapsed() >= horizon * (BROADCASTS / CACHE - 1) as u32,
        "the origin did not wait for its cache"
    );
    assert!(
        all_deliver(&recorders, &ids, Duration::from_secs(60)).await,
        "a broadcast was not delivered everywhere"
    );
    for (node, recorder) in nodes.iter().zip(&recorders) {
        assert_eq!(*recorder.twice.lock().unwrap(), 0, "delivered twice");
        let stats = node.stats().await.unwrap();
        assert_eq!(stats.protocol.grafts_given_up, 0);
        node.shutdown().await;
    }
}
