//! `MemberlistStack` with real memberlist (UDP+TCP) on 127.0.0.1: joins, broadcasts, failures,
//! leaves and restarts. SWIM intervals are shortened so that the suite stays fast.
#![cfg(feature = "memberlist")]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fast_swim as swim;
use memberlist_plumtree::memberlist::Options;
use memberlist_plumtree::{
    BridgeConfig, Delivery, MemberlistStack, MessageId, PlumtreeConfig, PlumtreeDelegate, TcpStack,
    TopicId,
};

/// Counts deliveries per message id, so that duplicates show.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<HashMap<MessageId, usize>>>);

impl PlumtreeDelegate<u64> for Recorder {
    fn on_deliver(&self, delivery: Delivery<u64>) {
        *self.0.lock().unwrap().entry(delivery.id).or_default() += 1;
    }
}

impl Recorder {
    fn has_all(&self, ids: &[MessageId]) -> bool {
        let seen = self.0.lock().unwrap();
        ids.iter().all(|id| seen.contains_key(id))
    }

    fn duplicates(&self) -> usize {
        self.0.lock().unwrap().values().filter(|&&n| n > 1).count()
    }
}

type Node = TcpStack<u64, Recorder>;

/// SWIM that takes many seconds to notice a silent node, so that only a leave message can
/// explain a quick removal.
fn slow_detection() -> Options {
    swim()
        .with_probe_interval(Duration::from_secs(10))
        .with_probe_timeout(Duration::from_secs(5))
}

async fn start(id: u64, bind: SocketAddr, seeds: &[SocketAddr], swim: Options) -> (Node, Recorder) {
    try_start(id, bind, seeds, swim)
        .await
        .unwrap_or_else(|e| panic!("node {id} did not start: {e}"))
}

async fn try_start(
    id: u64,
    bind: SocketAddr,
    seeds: &[SocketAddr],
    swim: Options,
) -> Result<(Node, Recorder), memberlist_plumtree::StackError> {
    let recorder = Recorder::default();
    let node = MemberlistStack::builder(id)
        .bind(bind)
        .seeds(seeds.iter().copied())
        .config(
            PlumtreeConfig::lan()
                .with_rng_seed(Some(id))
                .with_peer_scoring(true),
        )
        .memberlist_options(swim)
        // Departed members are tried again quickly, so that re-merging shows within the test.
        .bridge(BridgeConfig::default().with_reconnect_interval(Duration::from_millis(300)))
        .build(recorder.clone())
        .await?;
    Ok((node, recorder))
}

/// Starts node `id` again on the address it had. Like a restarted process, it retries briefly:
/// the old sockets may take a moment to be released, and a seed to accept the id back.
async fn restart(
    id: u64,
    bind: SocketAddr,
    seeds: &[SocketAddr],
    swim: Options,
) -> (Node, Recorder) {
    for attempt in 1.. {
        match try_start(id, bind, seeds, swim.clone()).await {
            Ok(node) => return node,
            Err(e) if attempt < 6 => {
                eprintln!("restart attempt {attempt} failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("node {id} did not restart: {e}"),
        }
    }
    unreachable!("the loop returns or panics")
}

fn address(node: &Node) -> SocketAddr {
    *node.memberlist().advertise_address()
}

/// Polls `done` every 20 ms until it holds, failing the test after `limit`.
async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let give_up = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` nodes, all joined through node 0, each knowing the other `n - 1`.
async fn cluster(n: u64, swim: Options) -> Vec<(Node, Recorder)> {
    let first = start(0, "127.0.0.1:0".parse().unwrap(), &[], swim.clone()).await;
    let seed = address(&first.0);
    let mut nodes = vec![first];
    for id in 1..n {
        nodes.push(start(id, "127.0.0.1:0".parse().unwrap(), &[seed], swim.clone()).await);
    }
    wait_for("full membership", Duration::from_secs(20), || {
        nodes
            .iter()
            .all(|(node, _)| node.members().len() == n as usize - 1)
    })
    .await;
    nodes
}

/// Broadcasts `count` messages, each from a node picked by a seeded RNG, then waits until every
/// node has delivered all of them, and checks that none was delivered twice.
async fn broadcast_and_check(nodes: &[(Node, Recorder)], count: usize) -> Vec<MessageId> {
    let mut rng = fastrand::Rng::with_seed(42);
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let (from, _) = &nodes[rng.usize(..nodes.len())];
        let id = from
            .broadcast(format!("message {i}").into_bytes())
            .await
            .expect("broadcast accepted");
        ids.push(id);
    }
    wait_for(
        "every delivery at every node",
        Duration::from_secs(30),
        || nodes.iter().all(|(_, r)| r.has_all(&ids)),
    )
    .await;
    for (node, recorder) in nodes {
        let id = node.plumtree().local_id();
        assert_eq!(recorder.duplicates(), 0, "node {id}");
    }
    ids
}

async fn shutdown_all(nodes: Vec<(Node, Recorder)>) {
    for (node, _) in nodes {
        node.shutdown().await.expect("clean shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_nodes_deliver_every_broadcast_exactly_once() {
    let nodes = cluster(10, swim()).await;
    broadcast_and_check(&nodes, 200).await;
    for (_, recorder) in &nodes {
        assert_eq!(recorder.0.lock().unwrap().len(), 200);
    }
    // The peer book carries ping round-trip times for scoring.
    wait_for("a ping round-trip time", Duration::from_secs(5), || {
        nodes[0]
            .0
            .members()
            .iter()
            .any(|p| nodes[0].0.peer(p).and_then(|i| i.rtt).is_some())
    })
    .await;
    // ... and the same pings reach the core, which scores the peers.
    let give_up = tokio::time::Instant::now() + Duration::from_secs(5);
    while nodes[0].0.plumtree().stats().await.unwrap().peers_with_rtt == 0 {
        assert!(
            tokio::time::Instant::now() < give_up,
            "no ping reached the core"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_node_is_removed_and_survivors_still_get_everything() {
    let mut nodes = cluster(6, swim()).await;
    let (crashed, _) = nodes.remove(3);
    crashed.shutdown().await.expect("shutdown");
    wait_for("failure detection", Duration::from_secs(10), || {
        nodes.iter().all(|(node, _)| !node.members().contains(&3))
    })
    .await;
    broadcast_and_check(&nodes, 30).await;
    shutdown_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_leave_is_seen_without_failure_detection() {
    let mut nodes = cluster(5, slow_detection()).await;
    let (leaving, _) = nodes.remove(2);
    let started = tokio::time::Instant::now();
    leaving
        .leave(Duration::from_secs(2))
        .await
        .expect("leave announced");
    let announced = started.elapsed();
    // A leave travels by gossip (every 30 ms here) and push-pull (every 2 s); probes every 10 s,
    // each waiting 5 s, could not get a silent node declared dead within the 8 s allowed.
    wait_for("leave seen", Duration::from_secs(8), || {
        nodes.iter().all(|(node, _)| !node.members().contains(&2))
    })
    .await;
    let took = started.elapsed();
    leaving.shutdown().await.expect("shutdown");
    eprintln!("leave announced after {announced:?}, seen by all survivors after {took:?}");
    shutdown_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_rejoins_and_receives_new_broadcasts() {
    let mut nodes = cluster(5, swim()).await;
    let seed = address(&nodes[0].0);
    let (old, _) = nodes.remove(4);
    let bind = address(&old);
    old.shutdown().await.expect("shutdown");
    wait_for("failure detection", Duration::from_secs(10), || {
        nodes.iter().all(|(node, _)| !node.members().contains(&4))
    })
    .await;
    // Same id, same address, fresh state.
    let restarted = restart(4, bind, &[seed], swim()).await;
    nodes.push(restarted);
    wait_for("rejoin", Duration::from_secs(10), || {
        nodes.iter().all(|(node, _)| node.members().len() == 4)
    })
    .await;
    broadcast_and_check(&nodes, 30).await;
    shutdown_all(nodes).await;
}

/// A node that comes back without seeds (a restarted process with an empty seed list, or one
/// side of a healed split that never contacts the other) is found again by the members that saw
/// it fail: they try departed members' addresses every `reconnect_interval`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivors_join_a_failed_member_again_when_it_comes_back() {
    // memberlist itself keeps gossiping to a dead member for `gossip_to_the_dead_time`, which
    // would find the node by itself; past that, only the reconnect attempts do.
    let swim = || swim().with_gossip_to_the_dead_time(Duration::from_millis(300));
    let mut nodes = cluster(4, swim()).await;
    let (old, _) = nodes.remove(3);
    let bind = address(&old);
    old.shutdown().await.expect("shutdown");
    wait_for("failure detection", Duration::from_secs(10), || {
        nodes.iter().all(|(node, _)| !node.members().contains(&3))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Same id, same address, and no seeds: it contacts no one.
    let back = restart(3, bind, &[], swim()).await;
    nodes.push(back);
    wait_for(
        "the survivors to join it again",
        Duration::from_secs(10),
        || nodes.iter().all(|(node, _)| node.members().len() == 3),
    )
    .await;
    broadcast_and_check(&nodes, 20).await;
    shutdown_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_without_plumtree_metadata_are_not_peers() {
    use memberlist_plumtree::TcpTransport;
    use memberlist_plumtree::memberlist::Memberlist;
    use memberlist_plumtree::memberlist::net::NetTransportOptions;
    use memberlist_plumtree::memberlist::proto::MaybeResolvedAddress;

    let nodes = cluster(2, swim()).await;
    // A plain memberlist member (another service sharing the cluster), id 99.
    let mut transport = NetTransportOptions::new(99u64);
    transport.add_bind_address("127.0.0.1:0".parse().unwrap());
    let other = Memberlist::<TcpTransport<u64>>::new(transport, swim())
        .await
        .expect("plain memberlist starts");
    other
        .join(MaybeResolvedAddress::Resolved(address(&nodes[0].0)))
        .await
        .expect("joins");
    let (seen_by, _) = &nodes[1];
    let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen_by.memberlist().num_online_members().await < 3 {
        assert!(
            tokio::time::Instant::now() < give_up,
            "member 99 never seen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen_by.members(), [0]);
    assert_eq!(nodes[0].0.members(), [1]);
    other.shutdown().await.expect("shutdown");
    shutdown_all(nodes).await;
}

#[cfg(feature = "quic")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plumtree_frames_ride_on_quic_while_memberlist_keeps_membership() {
    use memberlist_plumtree::{ClusterCa, QuicConfig, QuicTransport};

    let ca = ClusterCa::generate().unwrap();
    let mut nodes = Vec::new();
    let mut transports = Vec::new();
    let mut seed = None;
    for id in 0..5u64 {
        let tls = ca.node_tls(&id).unwrap();
        let quic = QuicTransport::bind(id, "127.0.0.1:0".parse().unwrap(), QuicConfig::lan(), &tls)
            .unwrap();
        transports.push(quic.clone());
        let recorder = Recorder::default();
        let node = MemberlistStack::builder(id)
            .seeds(seed)
            .config(PlumtreeConfig::lan().with_rng_seed(Some(id)))
            .memberlist_options(swim())
            .quic(quic)
            .build(recorder.clone())
            .await
            .expect("node starts");
        seed.get_or_insert(address(&node));
        nodes.push((node, recorder));
    }
    wait_for("full membership", Duration::from_secs(20), || {
        nodes.iter().all(|(node, _)| node.members().len() == 4)
    })
    .await;
    let published = nodes[0].0.peer(&3).unwrap().meta.transport_addr;
    assert_eq!(published, Some(transports[3].local_addr()));

    broadcast_and_check(&nodes, 200).await;
    // Every node delivered 200 payloads, all but its own broadcasts from the network: the
    // frames came over QUIC, not memberlist.
    let received: u64 = transports.iter().map(|q| q.stats().frames_received).sum();
    assert!(received >= 200 * 4, "only {received} frames over QUIC");
    shutdown_all(nodes).await;
    for quic in transports {
        tokio::time::timeout(Duration::from_secs(1), quic.close())
            .await
            .unwrap();
    }
}

#[cfg(feature = "quic")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memberlist_over_quic_authenticates_members_and_carries_broadcasts() {
    use memberlist_plumtree::{ClusterCa, QuicConfig, StackError};

    let ca = ClusterCa::generate().unwrap();
    let config = QuicConfig::lan();
    let mut nodes = Vec::new();
    let mut seed = None;
    for id in 0..4u64 {
        let recorder = Recorder::default();
        let node = MemberlistStack::builder(id)
            .seeds(seed)
            .config(PlumtreeConfig::lan().with_rng_seed(Some(id)))
            .memberlist_options(swim())
            .build_quic(recorder.clone(), &ca.node_tls(&id).unwrap(), &config)
            .await
            .expect("node starts");
        seed.get_or_insert(*node.memberlist().advertise_address());
        nodes.push((node, recorder));
    }
    wait_for("full membership", Duration::from_secs(20), || {
        nodes.iter().all(|(node, _)| node.members().len() == 3)
    })
    .await;

    // Frames ride on memberlist's QUIC messages here (no QuicTransport given).
    let mut ids = Vec::new();
    for i in 0..100 {
        let (from, _) = &nodes[i % nodes.len()];
        ids.push(from.broadcast(format!("over quic {i}")).await.unwrap());
    }
    wait_for("every delivery", Duration::from_secs(20), || {
        nodes.iter().all(|(_, r)| r.has_all(&ids))
    })
    .await;
    assert!(nodes.iter().all(|(_, r)| r.duplicates() == 0));

    // A node whose certificate comes from another CA cannot join.
    let other = ClusterCa::generate().unwrap();
    let intruder = MemberlistStack::builder(9u64)
        .seeds(seed)
        .memberlist_options(swim())
        .build_quic(
            Recorder::default(),
            &other.node_tls(&9u64).unwrap(),
            &config,
        )
        .await;
    assert!(
        matches!(intruder, Err(StackError::Join { .. })),
        "{intruder:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(nodes.iter().all(|(node, _)| node.members().len() == 3));

    for (node, _) in nodes {
        node.shutdown().await.expect("clean shutdown");
    }
}

/// Frames riding on memberlist are grouped into user messages that the receiver's stream guard
/// accepts: 64 payloads of 15 KiB sent at once would make one message of almost 1 MiB, ten times
/// the 96 KiB limit set here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_batches_fit_the_receivers_stream_guard() {
    let guard = memberlist_plumtree::StreamGuard::default()
        .with_max_message_size(96 * 1024)
        .with_max_inflight_bytes(1 << 20);
    let mut nodes = Vec::new();
    let mut seeds = Vec::new();
    for id in 0..2u64 {
        let recorder = Recorder::default();
        let node = MemberlistStack::builder(id)
            .seeds(seeds.clone())
            .config(
                PlumtreeConfig::lan()
                    .with_rng_seed(Some(id))
                    .with_max_message_size(16 * 1024),
            )
            .stream_guard(guard.clone())
            .memberlist_options(swim())
            .build(recorder.clone())
            .await
            .expect("starts");
        seeds.push(address(&node));
        nodes.push((node, recorder));
    }
    wait_for("membership", Duration::from_secs(10), || {
        nodes.iter().all(|(node, _)| node.members().len() == 1)
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..64u8 {
        ids.push(nodes[0].0.broadcast(vec![i; 15 * 1024]).await.unwrap());
    }
    wait_for("every delivery", Duration::from_secs(20), || {
        nodes[1].1.has_all(&ids)
    })
    .await;
    let refused = nodes[1].0.guard_stats().expect("guarded");
    assert_eq!(refused.oversize, 0, "{refused:?}");
    shutdown_all(nodes).await;
}

#[tokio::test]
async fn a_stream_guard_too_small_for_the_frames_is_a_config_error() {
    let built = MemberlistStack::builder(1u64)
        .config(PlumtreeConfig::lan().with_max_message_size(1 << 20))
        .stream_guard(memberlist_plumtree::StreamGuard::default().with_max_message_size(1 << 20))
        .build(Recorder::default())
        .await;
    assert!(
        matches!(built, Err(memberlist_plumtree::StackError::Config(_))),
        "{built:?}"
    );
    // A topic is held to the same bound.
    let node = MemberlistStack::builder(1u64)
        .build(Recorder::default())
        .await
        .unwrap();
    let too_large = PlumtreeConfig::lan().with_max_message_size(8 << 20);
    let joined = node
        .join_topic(
            TopicId::new(1),
            too_large,
            Recorder::default(),
            Duration::ZERO,
        )
        .await;
    assert!(
        matches!(joined, Err(memberlist_plumtree::StackError::Config(_))),
        "{joined:?}"
    );
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_membership_spreads_in_metadata_and_reaches_members_only() {
    let chat = TopicId::named("chat");
    let nodes = cluster(4, swim()).await;
    let timeout = Duration::from_secs(2);
    let mut topics = Vec::new();
    for (node, _) in &nodes[..3] {
        let recorder = Recorder::default();
        let joined = node
            .join_topic(chat, PlumtreeConfig::lan(), recorder.clone(), timeout)
            .await
            .expect("joined");
        topics.push((joined, recorder));
    }
    // Every member of the topic learns the other two from their metadata.
    let give_up = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut all = true;
        for (topic, _) in &topics {
            all &= topic.stats().await.unwrap().members == 2;
        }
        if all {
            break;
        }
        assert!(tokio::time::Instant::now() < give_up, "topic peers");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        nodes[1].0.peer(&0).unwrap().meta.topics,
        vec![chat],
        "node 0 publishes its topic"
    );

    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(topics[i % 3].0.broadcast(vec![i as u8; 32]).await.unwrap());
    }
    wait_for("topic deliveries", Duration::from_secs(20), || {
        topics.iter().all(|(_, r)| r.has_all(&ids))
    })
    .await;
    for (_, recorder) in &topics {
        assert_eq!(recorder.duplicates(), 0);
    }
    // Node 3 is not in the topic: none of it reached it, not even as a frame.
    assert!(nodes[3].1.0.lock().unwrap().is_empty());
    assert_eq!(
        nodes[3].0.plumtree().stats().await.unwrap().unrouted_frames,
        0
    );

    // Node 2 leaves: the others drop it from the topic, its handle refuses broadcasts.
    assert!(nodes[2].0.leave_topic(chat, timeout).await);
    assert_eq!(
        topics[2].0.broadcast(vec![0u8; 8]).await,
        Err(memberlist_plumtree::BroadcastError::NotJoined(chat))
    );
    let give_up = tokio::time::Instant::now() + Duration::from_secs(20);
    while topics[0].0.stats().await.unwrap().members != 1 {
        assert!(tokio::time::Instant::now() < give_up, "leave seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let late = topics[0].0.broadcast(vec![9u8; 8]).await.unwrap();
    wait_for("delivery after the leave", Duration::from_secs(20), || {
        topics[1].1.has_all(&[late])
    })
    .await;
    assert!(!topics[2].1.has_all(&[late]));
    shutdown_all(nodes).await;
}
