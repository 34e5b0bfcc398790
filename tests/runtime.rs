//! The tokio runtime: many nodes in one process over the in-process network.
#![cfg(feature = "tokio")]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Recorder, all_deliver, lan, local_cluster, wait_for};
use memberlist_plumtree::message::{Gossip, Graft};
use memberlist_plumtree::{
    BroadcastError, Envelope, LocalNetwork, Message, MessageId, NoopDelegate, PlumtreeMemberlist,
};

/// `count` broadcasts of 64 bytes, taking the origins from `origins` in turn, `pause` apart.
async fn broadcast_from(
    nodes: &[PlumtreeMemberlist<u64, Recorder>],
    origins: &[usize],
    count: usize,
    pause: Duration,
) -> Vec<MessageId> {
    let mut ids = Vec::with_capacity(count);
    for &origin in origins.iter().cycle().take(count) {
        ids.push(nodes[origin].broadcast(vec![0u8; 64]).await.unwrap());
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_nodes_deliver_a_thousand_random_broadcasts_exactly_once() {
    let network = LocalNetwork::new();
    let (nodes, recorders) = local_cluster(50, &network);
    let mut rng = fastrand::Rng::with_seed(7);
    let mut ids = Vec::new();
    for _ in 0..1000 {
        let origin = rng.usize(..nodes.len());
        ids.push(nodes[origin].broadcast(vec![1u8; 128]).await.unwrap());
    }
    assert!(
        all_deliver(&recorders, &ids, Duration::from_secs(30)).await,
        "not every node got every broadcast"
    );
    assert!(
        recorders.iter().all(|r| *r.twice.lock().unwrap() == 0),
        "a broadcast was delivered twice"
    );
    for node in &nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_does_not_stop_delivery_once_removed() {
    let network = LocalNetwork::new();
    let (nodes, recorders) = local_cluster(12, &network);
    let all: Vec<usize> = (0..12).collect();
    broadcast_from(&nodes, &all, 50, Duration::ZERO).await;
    // Kill node 5 without telling anyone, keep broadcasting, then let "membership" remove it.
    nodes[5].shutdown().await;
    network.leave(&5);
    let mut later = broadcast_from(&nodes, &all[..5], 20, Duration::ZERO).await;
    for (i, node) in nodes.iter().enumerate() {
        if i != 5 {
            node.inputs().remove_peer(5);
        }
    }
    later.extend(broadcast_from(&nodes, &all[6..], 20, Duration::ZERO).await);
    let done = || {
        (0..12)
            .filter(|&i| i != 5)
            .all(|i| recorders[i].has_all(&later))
    };
    assert!(
        wait_for(done, Duration::from_secs(20)).await,
        "a live node missed a broadcast"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_quick_and_leaves_no_task_behind() {
    let handle = tokio::runtime::Handle::current();
    let before = handle.metrics().num_alive_tasks();
    let network = LocalNetwork::new();
    let (nodes, _) = local_cluster(8, &network);
    broadcast_from(&nodes, &[0, 1, 2, 3, 4, 5, 6, 7], 100, Duration::ZERO).await;
    assert!(handle.metrics().num_alive_tasks() > before);
    let started = std::time::Instant::now();
    for node in &nodes {
        node.shutdown().await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(
        wait_for(
            || handle.metrics().num_alive_tasks() == before,
            Duration::from_secs(1)
        )
        .await,
        "{} tasks outlived their nodes",
        handle.metrics().num_alive_tasks() - before
    );
    assert!(
        nodes[0].broadcast(vec![1]).await.is_err(),
        "a stopped node refuses broadcasts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_that_returned_ok_is_delivered_even_across_shutdown() {
    // `broadcast` returns once the payload is queued, before the protocol task takes it; a
    // shutdown right after must still deliver what was accepted.
    let recorder = Recorder::default();
    let node = PlumtreeMemberlist::new(0u64, lan(0), recorder.clone()).unwrap();
    let not_started = node.broadcast(vec![1]).await;
    assert_eq!(not_started, Err(BroadcastError::Closed));
    node.start(LocalNetwork::new().join(&node)).unwrap();
    let too_big = vec![0u8; lan(0).max_message_size + 1];
    assert!(matches!(
        node.broadcast(too_big).await,
        Err(BroadcastError::PayloadTooLarge { .. })
    ));
    // No await in between: most are still queued when the shutdown is asked for.
    let ids: Vec<MessageId> = (0..200)
        .map(|_| node.try_broadcast(vec![2u8; 8]).unwrap())
        .collect();
    node.shutdown().await;
    assert!(
        recorder.has_all(&ids),
        "{} of 200 delivered",
        recorder.count()
    );
    assert_eq!(node.try_broadcast(vec![3]), Err(BroadcastError::Closed));
}

#[tokio::test]
async fn dropping_a_node_stops_its_tasks() {
    let handle = tokio::runtime::Handle::current();
    let before = handle.metrics().num_alive_tasks();
    {
        let network = LocalNetwork::new();
        let (nodes, _) = local_cluster(3, &network);
        nodes[0].broadcast(vec![1]).await.unwrap();
    }
    assert!(
        wait_for(
            || handle.metrics().num_alive_tasks() == before,
            Duration::from_secs(1)
        )
        .await
    );
}

#[tokio::test]
async fn the_delivery_stream_sees_every_delivery() {
    let network = LocalNetwork::new();
    let nodes: Vec<_> = (0..3u64)
        .map(|id| PlumtreeMemberlist::new(id, lan(id), NoopDelegate).unwrap())
        .collect();
    let mut stream = nodes[1].deliveries().unwrap();
    assert!(nodes[1].deliveries().is_none(), "only one stream");
    for node in &nodes {
        node.start(network.join(node)).unwrap();
        node.inputs().add_peers(0..3);
    }
    assert!(
        nodes[0].start(network.join(&nodes[0])).is_err(),
        "started twice"
    );
    let id = nodes[2].broadcast(&b"x"[..]).await.unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(5), stream.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (delivery.id, delivery.origin, &delivery.payload[..]),
        (id, 2, &b"x"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_and_loss_are_repaired() {
    let network =
        LocalNetwork::with_conditions(Duration::from_millis(1)..Duration::from_millis(5), 0.02, 3);
    let (nodes, recorders) = local_cluster(10, &network);
    let origins: Vec<usize> = (0..10).collect();
    let ids = broadcast_from(&nodes, &origins, 100, Duration::from_millis(2)).await;
    assert!(
        all_deliver(&recorders, &ids, Duration::from_secs(20)).await,
        "a lost frame was never repaired"
    );
    assert!(recorders.iter().all(|r| *r.twice.lock().unwrap() == 0));
    for node in &nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_from_non_members_are_dropped_and_counted() {
    let handle = tokio::runtime::Handle::current();
    let network = LocalNetwork::new();
    let (nodes, recorders) = local_cluster(2, &network);
    let id = nodes[0].broadcast(vec![1u8; 16]).await.unwrap();
    assert!(all_deliver(&recorders, &[id], Duration::from_secs(5)).await);
    let tasks = handle.metrics().num_alive_tasks();
    // From 100 ids nobody knows: grafts for a cached payload (each would be answered) and
    // payloads of their own (each would be delivered and relayed).
    for stranger in 1000..1100u64 {
        let graft = Envelope {
            sender: stranger,
            message: Message::Graft(Graft { id: Some(id) }),
        };
        nodes[0]
            .inputs()
            .try_handle_frame(graft.to_bytes())
            .unwrap();
        let forged = Envelope {
            sender: stranger,
            message: Message::Gossip(Gossip {
                id: MessageId::new(stranger, 0, 0),
                origin: stranger,
                round: 0,
                heaviest: 0,
                payload: Bytes::from_static(b"forged"),
                encoding: Default::default(),
                signature: None,
            }),
        };
        nodes[0]
            .inputs()
            .try_handle_frame(forged.to_bytes())
            .unwrap();
    }
    let refused = || async { nodes[0].stats().await.unwrap().protocol.from_non_members };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while refused().await < 200 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(refused().await, 200, "every stranger's frame is counted");
    let stats = nodes[0].stats().await.unwrap();
    assert_eq!(
        stats.outbound_dropped, 0,
        "nothing was even produced for them"
    );
    assert_eq!(stats.protocol.delivered, 1, "no forged payload delivered");
    assert_eq!(recorders[1].count(), 1, "nor relayed");
    assert_eq!(
        handle.metrics().num_alive_tasks(),
        tasks,
        "no task was spawned for a stranger"
    );
}

#[tokio::test]
async fn a_message_for_several_peers_is_encoded_once() {
    // Node 0 alone, its frames caught: 2 eager peers get each payload, 3 lazy ones the same
    // IHave batches. Each of those is one frame (one head) shared by its receivers, and a
    // payload is never copied.
    let (transport, mut frames) = memberlist_plumtree::ChannelTransport::unbounded();
    let node = PlumtreeMemberlist::new(0u64, lan(0), NoopDelegate).unwrap();
    node.start(transport).unwrap();
    node.inputs().add_peers(1..=5);
    let mut payloads = Vec::new();
    for _ in 0..32 {
        let payload = bytes::Bytes::from(vec![7u8; 64]);
        let at = payload.as_ptr();
        payloads.push((node.broadcast(payload).await.unwrap(), at));
    }
    // Every batch has left (full, or at the IHave interval).
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.shutdown().await;
    let mut sent: Vec<(Message<u64>, usize, u64)> = Vec::new();
    while let Ok(Some((to, frame))) =
        tokio::time::timeout(Duration::from_millis(10), frames.recv()).await
    {
        let envelope = Envelope::<u64>::decode(&frame.to_bytes(), &lan(0).decode_limits()).unwrap();
        let (head, payload) = frame.into_parts();
        if let Message::Gossip(g) = &envelope.message {
            assert_eq!(
                payload.len(),
                g.payload.len(),
                "the payload is the second part"
            );
            assert!(payloads.contains(&(g.id, payload.as_ptr())), "not a copy");
        }
        sent.push((envelope.message, head.as_ptr() as usize, to));
    }
    let ihaves = sent
        .iter()
        .filter(|(m, _, _)| matches!(m, Message::IHave(_)))
        .count();
    assert!(ihaves >= 3, "{ihaves} IHave frames");
    for (message, at, to) in &sent {
        if matches!(message, Message::Gossip(_) | Message::IHave(_)) {
            let copies: Vec<_> = sent.iter().filter(|(m, _, _)| m == message).collect();
            assert!(copies.len() > 1, "{message:?} went to one peer only ({to})");
            assert!(
                copies.iter().all(|(_, other, _)| other == at),
                "{message:?} was encoded more than once"
            );
        }
    }
}

/// Records the ids it is told were given up.
#[derive(Clone, Default)]
struct GiveUps(std::sync::Arc<std::sync::Mutex<Vec<MessageId>>>);

impl memberlist_plumtree::PlumtreeDelegate<u64> for GiveUps {
    fn on_deliver(&self, _: memberlist_plumtree::Delivery<u64>) {}

    fn on_give_up(&self, id: &MessageId) {
        self.0.lock().unwrap().push(*id);
    }
}

#[tokio::test]
async fn a_payload_no_announcer_supplies_is_reported_to_the_delegate() {
    // Node 0's only peer announces a payload and never answers the grafts for it (its frames
    // go nowhere): after `graft_max_retries` grafts node 0 tells the delegate which one.
    let (transport, _frames) = memberlist_plumtree::ChannelTransport::unbounded();
    let gave_up = GiveUps::default();
    let config = lan(0).with_graft_max_retries(2);
    let node = PlumtreeMemberlist::new(0u64, config, gave_up.clone()).unwrap();
    node.start(transport).unwrap();
    node.inputs().add_peer(1);
    let id = MessageId::new(1, 0, 42);
    let ihave = Envelope {
        sender: 1u64,
        message: Message::IHave(memberlist_plumtree::message::IHave {
            entries: vec![memberlist_plumtree::message::Announcement {
                id,
                round: 0,
                held_ms: 0,
            }],
        }),
    };
    node.inputs().try_handle_frame(ihave.to_bytes()).unwrap();
    // 200 ms graft timer, then 100 and 200 ms retry waits (lan()).
    assert!(
        wait_for(
            || !gave_up.0.lock().unwrap().is_empty(),
            Duration::from_secs(10)
        )
        .await
    );
    assert_eq!(*gave_up.0.lock().unwrap(), [id]);
    let stats = node.stats().await.unwrap();
    assert_eq!(stats.protocol.grafts_given_up, 1);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_partition_heals_every_node_delivers_every_broadcast_once() {
    let network = LocalNetwork::new();
    let n = 10u64;
    let recorders: Vec<Recorder> = (0..n).map(|_| Recorder::default()).collect();
    // Digests every 200 ms, so that the test takes seconds, not tens of them.
    let nodes: Vec<_> = (0..n)
        .map(|id| {
            let config = lan(id).with_anti_entropy_interval(Duration::from_millis(200));
            PlumtreeMemberlist::new(id, config, recorders[id as usize].clone()).unwrap()
        })
        .collect();
    for node in &nodes {
        node.start(network.join(node)).unwrap();
        node.inputs().add_peers(0..n);
    }
    let mut ids = broadcast_from(&nodes, &[0, 7], 10, Duration::from_millis(5)).await;
    assert!(all_deliver(&recorders, &ids, Duration::from_secs(10)).await);

    // Cut into 0..5 and 5..10, broadcast on both sides, and wait long enough for every graft
    // across the cut to give up: only anti-entropy can repair what the cut held back.
    network.partition(move |id| u8::from(*id >= n / 2));
    ids.extend(broadcast_from(&nodes, &[1, 2, 6, 9], 40, Duration::from_millis(10)).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        recorders[0].count() < ids.len(),
        "the cut held something back"
    );
    network.heal();
    assert!(
        all_deliver(&recorders, &ids, Duration::from_secs(30)).await,
        "not every node got every broadcast after the heal"
    );
    assert!(
        recorders.iter().all(|r| *r.twice.lock().unwrap() == 0),
        "a broadcast was delivered twice"
    );
    let stats = nodes[0].stats().await.unwrap();
    assert!(
        stats.protocol.repairs_received > 0,
        "repaired by anti-entropy"
    );
    for node in &nodes {
        node.shutdown().await;
    }
}

/// Signed origins through the runtime: every node signs and checks; an origin whose key no
/// one else holds is not delivered anywhere but at itself.
#[cfg(feature = "signing")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_broadcasts_are_delivered_and_an_unknown_signer_is_dropped() {
    use memberlist_plumtree::OriginKeys;

    let secret = |id: u64| [id as u8 + 1; 32];
    let public = |id: u64| OriginKeys::new(id, secret(id)).public_key();
    let network = LocalNetwork::new();
    let recorders: Vec<Recorder> = (0..6).map(|_| Recorder::default()).collect();
    // Nodes 0 to 4 know each other's keys; node 5's key is known to no one else.
    let nodes: Vec<_> = (0..6u64)
        .map(|id| {
            let keys = (0..5).fold(OriginKeys::new(id, secret(id)), |keys, origin| {
                keys.with_origin(origin, public(origin)).unwrap()
            });
            PlumtreeMemberlist::new(id, lan(id), recorders[id as usize].clone())
                .and_then(|node| node.with_origin_keys(keys))
                .unwrap()
        })
        .collect();
    for node in &nodes {
        node.start(network.join(node)).unwrap();
        node.inputs().add_peers(0..6);
    }
    let ids = broadcast_from(&nodes, &[0, 1, 2, 3, 4], 20, Duration::ZERO).await;
    assert!(
        all_deliver(&recorders, &ids, Duration::from_secs(10)).await,
        "a signed broadcast was not delivered everywhere"
    );
    let unknown = broadcast_from(&nodes, &[5], 3, Duration::ZERO).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(recorders[5].has_all(&unknown), "delivered at its origin");
    for recorder in &recorders[..5] {
        let seen = recorder.seen.lock().unwrap();
        assert!(
            unknown.iter().all(|id| !seen.contains(id)),
            "an unknown signer got through"
        );
    }
    let mut dropped = 0;
    for node in &nodes[..5] {
        dropped += node.stats().await.unwrap().protocol.bad_signatures;
    }
    assert!(dropped >= 3, "dropped and counted: {dropped}");
    for node in &nodes {
        node.shutdown().await;
    }
}
