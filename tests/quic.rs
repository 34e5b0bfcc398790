//! QuicTransport on loopback: real QUIC, real TLS, several nodes in one process.
#![cfg(feature = "quic")]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use common::{Recorder, wait_for};
use memberlist_plumtree::message::Gossip;
use memberlist_plumtree::{
    ClusterCa, Envelope, Message, MessageId, PlumtreeConfig, PlumtreeMemberlist, QuicConfig,
    QuicTls, QuicTransport, Transport,
};

/// Where every node listens, shared by all resolvers.
type Book = Arc<RwLock<HashMap<u64, SocketAddr>>>;

struct Node {
    node: PlumtreeMemberlist<u64, Recorder>,
    quic: QuicTransport<u64>,
    recorder: Recorder,
}

fn quic_config() -> QuicConfig {
    QuicConfig::lan().with_reconnect_min(Duration::from_millis(20))
}

/// Node `id`, listening on a fresh port, resolving peers through `book`, peers `peers`.
fn node(id: u64, tls: &QuicTls, book: &Book, peers: impl IntoIterator<Item = u64>) -> Node {
    let quic = QuicTransport::bind(id, "127.0.0.1:0".parse().unwrap(), quic_config(), tls).unwrap();
    let lookup = Arc::clone(book);
    quic.set_resolver(move |peer| lookup.read().unwrap().get(peer).copied());
    book.write().unwrap().insert(id, quic.local_addr());
    let recorder = Recorder::default();
    // Scoring on: the transport's RTT samples must reach the core (checked below).
    let config = PlumtreeConfig::lan()
        .with_rng_seed(Some(id))
        .with_peer_scoring(true);
    let node = PlumtreeMemberlist::new(id, config, recorder.clone()).unwrap();
    node.start(quic.clone()).unwrap();
    node.inputs()
        .add_peers(peers.into_iter().filter(|&p| p != id));
    Node {
        node,
        quic,
        recorder,
    }
}

/// Waits until every node has a measured round trip to at least one peer.
async fn wait_for_async(nodes: &[Node], limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let mut all = true;
        for n in nodes {
            all &= n.node.stats().await.is_some_and(|s| s.peers_with_rtt > 0);
        }
        if all || tokio::time::Instant::now() > deadline {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stop(node: &Node) {
    node.node.shutdown().await;
    tokio::time::timeout(Duration::from_secs(1), node.quic.close())
        .await
        .expect("the transport's tasks end within 1 s of the node's shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_deliver_1000_broadcasts_exactly_once() {
    let ca = ClusterCa::generate().unwrap();
    let book = Book::default();
    let nodes: Vec<Node> = (0..5)
        .map(|id| node(id, &ca.node_tls(&id).unwrap(), &book, 0..5))
        .collect();
    let mut rng = fastrand::Rng::with_seed(5);
    let mut ids = Vec::new();
    for i in 0..1000 {
        let origin = &nodes[rng.usize(0..5)];
        ids.push(origin.node.broadcast(format!("message {i}")).await.unwrap());
    }
    let all = wait_for(
        || nodes.iter().all(|n| n.recorder.has_all(&ids)),
        Duration::from_secs(20),
    )
    .await;
    let counts: Vec<usize> = nodes.iter().map(|n| n.recorder.count()).collect();
    assert!(all, "deliveries per node: {counts:?}");
    // Every connection reports QUIC's RTT estimate once a second: each node scores its peers.
    let scored = wait_for_async(&nodes, Duration::from_secs(5)).await;
    assert!(scored, "QUIC round trips did not reach the cores");
    for n in &nodes {
        assert_eq!(*n.recorder.twice.lock().unwrap(), 0, "a duplicate delivery");
        assert_eq!(n.recorder.count(), 1000);
        let stats = n.quic.stats();
        assert!(stats.frames_received > 0 && stats.frames_sent > 0);
        assert_eq!(
            stats.rejected_oversize + stats.rejected_spoofed + stats.rejected_malformed,
            0
        );
    }
    for n in &nodes {
        stop(n).await;
    }
}

#[tokio::test]
async fn a_peer_with_a_certificate_from_another_ca_is_refused() {
    let ca = ClusterCa::generate().unwrap();
    let other = ClusterCa::generate().unwrap();
    let book = Book::default();
    let honest = node(1, &ca.node_tls(&1u64).unwrap(), &book, [2]);
    // The intruder trusts our CA (so it accepts our server certificate) but its own
    // certificate comes from another CA: our side of the handshake must refuse it.
    let forged = other.issue(&2u64).unwrap();
    let tls = QuicTls::from_pem(&ca.cert_pem(), &forged.cert_pem, &forged.key_pem).unwrap();
    let intruder = node(2, &tls, &book, [1]);
    for _ in 0..5 {
        let _ = intruder.node.broadcast(&b"let me in"[..]).await;
    }
    let refused = wait_for(
        || honest.quic.stats().handshake_failures > 0,
        Duration::from_secs(5),
    )
    .await;
    assert!(
        refused,
        "our endpoint never refused a handshake: {:?}",
        honest.quic.stats()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(honest.recorder.count(), 0, "a frame got through");
    assert_eq!(honest.quic.stats().frames_received, 0);
    stop(&honest).await;
    stop(&intruder).await;
}

#[tokio::test]
async fn a_frame_with_a_spoofed_sender_is_rejected() {
    let ca = ClusterCa::generate().unwrap();
    let book = Book::default();
    let victim = node(1, &ca.node_tls(&1u64).unwrap(), &book, [2, 3]);
    // Node 3 holds a valid certificate, for node 3, and claims to be node 2.
    let liar = QuicTransport::bind(
        3u64,
        "127.0.0.1:0".parse().unwrap(),
        quic_config(),
        &ca.node_tls(&3u64).unwrap(),
    )
    .unwrap();
    let lookup = Arc::clone(&book);
    liar.set_resolver(move |peer| lookup.read().unwrap().get(peer).copied());
    let forged = Envelope {
        sender: 2u64,
        message: Message::Gossip(Gossip {
            id: MessageId::new(2, 1, 1),
            origin: 2,
            round: 0,
            heaviest: 0,
            payload: Bytes::from_static(b"forged"),
            encoding: Default::default(),
            signature: None,
        }),
    };
    liar.send(&1, forged.to_bytes().into()).await.unwrap();
    let rejected = wait_for(
        || victim.quic.stats().rejected_spoofed == 1,
        Duration::from_secs(5),
    )
    .await;
    assert!(rejected, "{:?}", victim.quic.stats());
    assert_eq!(victim.recorder.count(), 0);
    assert_eq!(victim.quic.stats().frames_received, 0);
    stop(&victim).await;
    liar.close().await;
}

/// A node killed without a word (its runtime stops: no QUIC close is sent) comes back at once
/// on another port with the same id. The survivors still hold connections to the dead process
/// and write into them; nothing waits for those to time out. What they lose there, the
/// restarted node fetches by anti-entropy: it receives every message broadcast after its start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_killed_peer_restarted_at_once_receives_later_broadcasts() {
    let ca = ClusterCa::generate().unwrap();
    let book = Book::default();
    let survivors: Vec<Node> = (0..2)
        .map(|id| node(id, &ca.node_tls(&id).unwrap(), &book, 0..3))
        .collect();
    // Node 2 lives in a runtime of its own, so that it can die with it.
    let doomed_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let doomed = {
        let _inside = doomed_runtime.enter();
        node(2, &ca.node_tls(&2u64).unwrap(), &book, 0..3)
    };
    let before = survivors[0].node.broadcast(&b"before"[..]).await.unwrap();
    let everyone = || survivors.iter().chain([&doomed]);
    assert!(
        wait_for(
            || everyone().all(|n| n.recorder.has_all(&[before])),
            Duration::from_secs(5)
        )
        .await
    );
    let open_before: Vec<u64> = survivors
        .iter()
        .map(|n| n.quic.stats().connections)
        .collect();

    // Killed: its tasks stop where they are, its socket closes, and no close frame goes out.
    doomed_runtime.shutdown_background();
    let restarted = node(2, &ca.node_tls(&2u64).unwrap(), &book, 0..3);
    let still_open: Vec<u64> = survivors
        .iter()
        .map(|n| n.quic.stats().connections)
        .collect();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            survivors[i % 2]
                .node
                .broadcast(format!("after {i}"))
                .await
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Sooner than the dead connections' idle timeout: the survivors answer on the restarted
    // node's new connection as soon as it uses it, instead of writing into the old ones.
    let limit = quic_config().idle_timeout - Duration::from_secs(1);
    let received = wait_for(|| restarted.recorder.has_all(&ids), limit).await;
    assert!(
        received,
        "the restarted node got {} of 20 within {limit:?} (connections before the kill {open_before:?}, right after {still_open:?})",
        restarted.recorder.count()
    );
    for n in survivors.iter().chain([&restarted]) {
        assert_eq!(
            *n.recorder.twice.lock().unwrap(),
            0,
            "a message was delivered twice"
        );
    }
    for n in survivors.iter().chain([&restarted]) {
        stop(n).await;
    }
    drop(doomed);
}

/// Signing keys bound to certificates: node 3, holding a valid certificate for node 3, can
/// sign only as node 3. A payload it signed and then passed off as node 2's is dropped; the
/// same payload under its own name is delivered.
#[cfg(feature = "signing")]
#[tokio::test]
async fn signing_keys_from_certificates_let_no_node_sign_as_another() {
    use memberlist_plumtree::{Plumtree, TlsError};

    let ca = ClusterCa::generate().unwrap();
    let certs: HashMap<u64, _> = (1..=3).map(|id| (id, ca.issue(&id).unwrap())).collect();
    let tls = |id: u64| {
        QuicTls::from_pem(&ca.cert_pem(), &certs[&id].cert_pem, &certs[&id].key_pem).unwrap()
    };
    let keys = |id: u64| {
        let own = tls(id);
        (1..=3)
            .filter(|&o| o != id)
            .fold(own.origin_keys(id).unwrap(), |keys, o| {
                let key = own.certified_origin_key(&o, &certs[&o].cert_pem).unwrap();
                keys.with_origin(o, key).unwrap()
            })
    };
    let liar_tls = tls(3);
    assert!(matches!(
        liar_tls.origin_keys(2u64),
        Err(TlsError::WrongName { .. })
    ));

    let book = Book::default();
    let quic =
        QuicTransport::bind(1u64, "127.0.0.1:0".parse().unwrap(), quic_config(), &tls(1)).unwrap();
    book.write().unwrap().insert(1, quic.local_addr());
    let recorder = Recorder::default();
    let victim = PlumtreeMemberlist::new(1u64, PlumtreeConfig::lan(), recorder.clone())
        .unwrap()
        .with_origin_keys(keys(1))
        .unwrap();
    victim.start(quic.clone()).unwrap();
    victim.inputs().add_peers([2, 3]);

    // Node 3's own core signs a broadcast, as node 3.
    let mut core = Plumtree::new(3u64, PlumtreeConfig::lan())
        .unwrap()
        .with_origin_keys(keys(3))
        .unwrap();
    core.add_peer(std::time::Instant::now(), 1);
    core.broadcast(std::time::Instant::now(), &b"signed by 3"[..])
        .unwrap();
    let genuine = std::iter::from_fn(|| core.poll_transmit())
        .find_map(|t| match t.message {
            Message::Gossip(g) => Some(g),
            _ => None,
        })
        .expect("a pushed payload");
    let liar = QuicTransport::bind(
        3u64,
        "127.0.0.1:0".parse().unwrap(),
        quic_config(),
        &liar_tls,
    )
    .unwrap();
    let lookup = Arc::clone(&book);
    liar.set_resolver(move |peer| lookup.read().unwrap().get(peer).copied());
    let send = |gossip: Gossip<u64>| Envelope {
        sender: 3u64,
        message: Message::Gossip(gossip),
    };
    let passed_off = Gossip {
        origin: 2,
        ..genuine.clone()
    };
    liar.send(&1, send(passed_off).to_bytes().into())
        .await
        .unwrap();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(5);
    while victim.stats().await.unwrap().protocol.bad_signatures == 0 {
        assert!(tokio::time::Instant::now() < give_up, "not checked");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(recorder.count(), 0);
    liar.send(&1, send(genuine).to_bytes().into())
        .await
        .unwrap();
    assert!(wait_for(|| recorder.count() == 1, Duration::from_secs(5)).await);
    assert_eq!(victim.stats().await.unwrap().protocol.bad_signatures, 1);
    victim.shutdown().await;
    quic.close().await;
    liar.close().await;
}
