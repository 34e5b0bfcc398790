//! Topics in the runtime: independent groups in one node, over the in-process network.
#![cfg(feature = "tokio")]

mod common;

use std::time::Duration;

use common::{Recorder, all_deliver, lan, local_cluster, wait_for};
use memberlist_plumtree::{
    BroadcastError, Envelope, Frame, LocalNetwork, Message, NoopDelegate, PlumtreeMemberlist,
    RuntimeConfig, Topic, TopicError, TopicId,
};

const CHAT: TopicId = TopicId::named("chat");
const ALERTS: TopicId = TopicId::named("alerts");

/// Nodes `members` join `topic` and learn each other as its peers.
fn join(
    nodes: &[PlumtreeMemberlist<u64, Recorder>],
    topic: TopicId,
    members: &[u64],
) -> Vec<(Topic<u64, Recorder>, Recorder)> {
    members
        .iter()
        .map(|&id| {
            let recorder = Recorder::default();
            let joined = nodes[id as usize]
                .join_topic(topic, lan(id + 100), recorder.clone())
                .unwrap();
            joined.inputs().add_peers(members.iter().copied());
            (joined, recorder)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_topics_deliver_to_their_members_only() {
    let network = LocalNetwork::new();
    let (nodes, default) = local_cluster(12, &network);
    let chat = join(&nodes, CHAT, &[0, 1, 2, 3, 4, 5, 6]);
    let alerts = join(&nodes, ALERTS, &[4, 5, 6, 7, 8, 9, 10]);

    let mut chat_ids = Vec::new();
    let mut alert_ids = Vec::new();
    for round in 0..40 {
        chat_ids.push(chat[round % 7].0.broadcast(vec![1u8; 64]).await.unwrap());
        alert_ids.push(alerts[round % 7].0.broadcast(vec![2u8; 64]).await.unwrap());
    }
    let default_id = nodes[11].broadcast(vec![3u8; 64]).await.unwrap();

    let chat_recorders: Vec<_> = chat.iter().map(|(_, r)| r.clone()).collect();
    let alert_recorders: Vec<_> = alerts.iter().map(|(_, r)| r.clone()).collect();
    let limit = Duration::from_secs(10);
    assert!(all_deliver(&chat_recorders, &chat_ids, limit).await);
    assert!(all_deliver(&alert_recorders, &alert_ids, limit).await);
    assert!(all_deliver(&default, &[default_id], limit).await);

    // Each topic's deliveries went to its own delegate, once; the default topic's delegates saw
    // only the default broadcast.
    for (_, recorder) in chat.iter().chain(&alerts) {
        assert_eq!(recorder.count(), 40);
        assert_eq!(*recorder.twice.lock().unwrap(), 0);
    }
    for recorder in &default {
        assert_eq!(recorder.count(), 1);
    }
    // Node 11, in neither topic, got no frame of either. (A member may count a few: frames
    // of peers that joined before it did.)
    assert_eq!(nodes[11].stats().await.unwrap().unrouted_frames, 0);
    for (topic, _) in chat.iter().chain(&alerts) {
        let stats = topic.stats().await.unwrap();
        assert!(stats.members <= 7, "{} members", stats.members);
    }
    for node in &nodes {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn a_frame_of_a_topic_not_joined_is_dropped_and_counted() {
    let network = LocalNetwork::new();
    let (nodes, _) = local_cluster(2, &network);
    let joined = join(&nodes, CHAT, &[0]);
    // A frame of the chat topic, as node 1 would send it, reaches node 0 (joined) and a node
    // that is not in the topic.
    let mut buf = bytes::BytesMut::new();
    buf.extend_from_slice(&[8]);
    buf.extend_from_slice(&[0x81, 0x01]); // topic 129
    Envelope {
        sender: 1u64,
        message: Message::Prune,
    }
    .encode(&mut buf);
    let frame = Frame::from(buf.freeze());
    assert_eq!(frame.topic(), Ok(TopicId::new(129)));
    nodes[0].inputs().handle_frame(frame.clone()).await.unwrap();
    nodes[1].inputs().try_handle_frame(frame).unwrap();
    // Routing happens in the call: the counts are up to date when it returns.
    assert_eq!(nodes[0].stats().await.unwrap().unrouted_frames, 1);
    assert_eq!(nodes[1].stats().await.unwrap().unrouted_frames, 1);
    assert_eq!(joined[0].0.stats().await.unwrap().decode_errors, 0);
    for node in &nodes {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn joining_and_leaving_follow_the_rules() {
    let network = LocalNetwork::new();
    let unstarted = PlumtreeMemberlist::new(9u64, lan(9), NoopDelegate).unwrap();
    assert_eq!(
        unstarted
            .join_topic(CHAT, lan(9), NoopDelegate)
            .unwrap_err(),
        TopicError::NotRunning
    );
    let node = PlumtreeMemberlist::with_runtime_config(
        0u64,
        lan(0),
        RuntimeConfig::default().with_max_topics(2),
        NoopDelegate,
    )
    .unwrap();
    node.start(network.join(&node)).unwrap();
    assert_eq!(
        node.join_topic(TopicId::DEFAULT, lan(0), NoopDelegate)
            .unwrap_err(),
        TopicError::Default
    );
    let chat = node.join_topic(CHAT, lan(0), NoopDelegate).unwrap();
    assert_eq!(
        node.join_topic(CHAT, lan(0), NoopDelegate).unwrap_err(),
        TopicError::AlreadyJoined(CHAT)
    );
    assert!(matches!(
        node.join_topic(ALERTS, lan(0).with_eager_fanout(0), NoopDelegate),
        Err(TopicError::Config(_))
    ));
    let alerts = node.join_topic(ALERTS, lan(0), NoopDelegate).unwrap();
    assert_eq!(
        node.join_topic(TopicId::new(3), lan(0), NoopDelegate)
            .unwrap_err(),
        TopicError::TooMany { max: 2 }
    );
    assert_eq!(node.joined_topics().len(), 2);

    assert!(chat.broadcast(vec![1u8; 8]).await.is_ok());
    assert!(node.leave_topic(CHAT).await);
    assert!(!node.leave_topic(CHAT).await);
    assert_eq!(
        chat.broadcast(vec![1u8; 8]).await,
        Err(BroadcastError::NotJoined(CHAT))
    );
    assert_eq!(chat.stats().await, None);
    // Room for another topic again.
    assert!(
        node.join_topic(TopicId::new(3), lan(0), NoopDelegate)
            .is_ok()
    );
    node.shutdown().await;
    assert!(node.joined_topics().is_empty());
    // Stopped with the node, not left: its broadcasts fail as the node's do.
    assert_eq!(
        alerts.broadcast(vec![1u8; 8]).await,
        Err(BroadcastError::Closed)
    );
}

#[tokio::test]
async fn a_topic_handle_does_not_keep_a_dropped_node_running() {
    let network = LocalNetwork::new();
    let node = PlumtreeMemberlist::new(0u64, lan(0), NoopDelegate).unwrap();
    node.start(network.join(&node)).unwrap();
    let chat = node.join_topic(CHAT, lan(0), NoopDelegate).unwrap();
    assert!(chat.stats().await.is_some());
    drop(node);
    let give_up = tokio::time::Instant::now() + Duration::from_secs(5);
    while chat.stats().await.is_some() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "the topic still runs"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        chat.broadcast(vec![1u8; 8]).await,
        Err(BroadcastError::Closed)
    );
}

#[tokio::test]
async fn a_topic_delivers_to_its_stream_once_taken() {
    let network = LocalNetwork::new();
    let (nodes, _) = local_cluster(2, &network);
    let joined = join(&nodes, CHAT, &[0, 1]);
    let mut stream = joined[1].0.deliveries().expect("taken once");
    assert!(joined[1].0.clone().deliveries().is_none());
    let id = joined[0].0.broadcast(vec![5u8; 16]).await.unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(5), stream.recv())
        .await
        .expect("in time")
        .expect("a delivery");
    assert_eq!(delivery.id, id);
    assert_eq!(&delivery.payload[..], &[5u8; 16]);
    // The delegate gets it too (right after the stream).
    let delegate = joined[1].1.clone();
    assert!(wait_for(|| delegate.count() == 1, Duration::from_secs(5)).await);
    for node in &nodes {
        node.shutdown().await;
    }
    assert!(
        stream.recv().await.is_none(),
        "the stream ends with the topic"
    );
}
