//! A hostile peer, speaking raw QUIC with a valid certificate: what the receiving side refuses.

use std::time::Duration;

use super::transport::close_code;
use super::*;
use crate::{NoopDelegate, PlumtreeConfig, PlumtreeMemberlist};

/// A started node 1 over QUIC, with the CA that certified it.
fn victim() -> (
    ClusterCa,
    PlumtreeMemberlist<u64, NoopDelegate>,
    QuicTransport<u64>,
) {
    let ca = ClusterCa::generate().unwrap();
    let quic = QuicTransport::bind(
        1u64,
        "127.0.0.1:0".parse().unwrap(),
        QuicConfig::lan(),
        &ca.node_tls(&1u64).unwrap(),
    )
    .unwrap();
    let node = PlumtreeMemberlist::new(1u64, PlumtreeConfig::lan(), NoopDelegate).unwrap();
    node.start(quic.clone()).unwrap();
    (ca, node, quic)
}

/// A raw connection to `quic` from a client holding `id`'s certificate from `ca`.
async fn raw_client(ca: &ClusterCa, quic: &QuicTransport<u64>, id: u64) -> quinn::Connection {
    let client_tls = ca
        .node_tls(&id)
        .unwrap()
        .client_config(QuicConfig::lan().transport_config(), tls::ALPN)
        .unwrap();
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(client_tls);
    client
        .connect(quic.local_addr(), &certificate_name(&1u64).unwrap())
        .unwrap()
        .await
        .unwrap()
}

/// A started node 1 and a raw connection to it from a client holding node 9's certificate.
async fn victim_and_raw_client() -> (
    PlumtreeMemberlist<u64, NoopDelegate>,
    QuicTransport<u64>,
    quinn::Connection,
) {
    let (ca, node, quic) = victim();
    let connection = raw_client(&ca, &quic, 9).await;
    (node, quic, connection)
}

fn closed_with(error: quinn::ConnectionError, code: u32) -> bool {
    matches!(error, quinn::ConnectionError::ApplicationClosed(close) if close.error_code == quinn::VarInt::from_u32(code))
}

#[tokio::test]
async fn an_oversize_frame_is_refused_from_its_length_alone() {
    let (node, quic, connection) = victim_and_raw_client().await;
    let mut stream = connection.open_uni().await.unwrap();
    let [a, b, c] = link::STREAM_MAGIC;
    stream.write_all(&[a, b, c, 1]).await.unwrap();
    // Declares 4 GiB and sends none of it: only the length check can refuse it, and it must,
    // without waiting for (or allocating) the body.
    stream.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let error = tokio::time::timeout(Duration::from_secs(5), connection.closed())
        .await
        .unwrap();
    assert!(closed_with(error, close_code::FRAME_TOO_LARGE));
    assert_eq!(quic.stats().rejected_oversize, 1);
    assert_eq!(quic.stats().frames_received, 0);
    node.shutdown().await;
    quic.close().await;
}

#[tokio::test]
async fn a_stream_without_our_header_is_refused() {
    let (node, quic, connection) = victim_and_raw_client().await;
    let mut stream = connection.open_uni().await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let error = tokio::time::timeout(Duration::from_secs(5), connection.closed())
        .await
        .unwrap();
    assert!(closed_with(error, close_code::MALFORMED));
    assert_eq!(quic.stats().rejected_malformed, 1);
    node.shutdown().await;
    quic.close().await;
}

#[tokio::test]
async fn shutting_the_node_down_ends_every_transport_task() {
    let (node, quic, connection) = victim_and_raw_client().await;
    node.shutdown().await;
    // The accept loop sees the node's inbound queue close and stops the transport by itself.
    let error = tokio::time::timeout(Duration::from_secs(1), connection.closed())
        .await
        .unwrap();
    assert!(closed_with(error, close_code::SHUTDOWN));
    tokio::time::timeout(Duration::from_secs(1), quic.shared_tasks_wait())
        .await
        .unwrap();
}

/// A certified peer that opens every stream it may, on many connections, and stops each inside
/// a frame's length: its streams wait (quinn allows it 8 per connection), nothing spins, and
/// another peer's frames still arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_stopped_inside_a_length_hold_no_one_else_up() {
    let (ca, node, quic) = victim();
    let [a, b, c] = link::STREAM_MAGIC;
    let mut held = Vec::new();
    let mut connections = Vec::new();
    for _ in 0..20 {
        let connection = raw_client(&ca, &quic, 9).await;
        for _ in 0..8 {
            let mut stream = connection.open_uni().await.unwrap();
            stream.write_all(&[a, b, c, 1, 0, 0]).await.unwrap(); // half a length
            held.push(stream);
        }
        connections.push(connection);
    }
    let honest = raw_client(&ca, &quic, 8).await;
    let mut stream = honest.open_uni().await.unwrap();
    let frame = crate::Envelope {
        sender: 8u64,
        message: crate::Message::Prune,
    }
    .to_bytes();
    stream.write_all(&[a, b, c, 1]).await.unwrap();
    stream
        .write_all(&(frame.len() as u32).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&frame).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while quic.stats().frames_received == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(quic.stats().frames_received, 1, "the honest peer's frame");
    drop((held, connections));
    node.shutdown().await;
    quic.close().await;
}
