//! Hostile bytes against a default `MemberlistStack` (memberlist over UDP+TCP): connections that
//! end or hang inside a message header, huge length claims, connection floods and random
//! datagrams. The node under attack runs on a runtime of its own with two workers, so that a
//! wedged node fails a test (a broadcast does not arrive in time) instead of hanging it.
//!
//! The tests take turns (one lock): the memory test reads the process's resident size.
#![cfg(feature = "memberlist")]

mod common;

use std::io::{Read, Write};
use std::net::UdpSocket;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[cfg(feature = "quic")]
use common::host::{Certified, certified_pair};
use common::host::{Host, connect, flows, pair};

static TURN: Mutex<()> = Mutex::new(());

/// The first bytes of each kind of memberlist message, cut inside its header: plain (a user
/// message: tag 9, then a varint length), labeled (12), compound (1), checksummed (13),
/// compressed (14) and encrypted (15).
const HEADER_PREFIXES: &[&[u8]] = &[
    &[0x09],
    &[0x09, 0x80],
    &[0x09, 0xff, 0xff],
    &[0x02, 0x80, 0x80, 0x80],
    &[0x0c],
    &[0x0c, 0x05, b'a'],
    &[0x01],
    &[0x01, 0x02, 0x00],
    &[0x0d, 0x01, 0x00],
    &[0x0e, 0x00],
    &[0x0f],
    &[0x0f, 0x01, 0x00, 0x00],
];

#[test]
fn connections_that_end_or_hang_inside_a_header_do_not_wedge_the_node() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let (target, witness) = pair();
    let mut hanging = Vec::new();
    for prefix in HEADER_PREFIXES {
        // Two of each: one per worker of the target's runtime.
        for _ in 0..2 {
            let mut closed = connect(target.address);
            closed.write_all(prefix).expect("write");
            drop(closed);
            let mut open = connect(target.address);
            open.write_all(prefix).expect("write");
            hanging.push(open);
        }
        std::thread::sleep(Duration::from_millis(50));
        flows(
            &target,
            &witness,
            &format!("after {prefix:02x?}"),
            Duration::from_secs(5),
        )
        .unwrap();
    }
    drop(hanging);
    let refused = target.node().guard_stats().expect("a guarded stack");
    // Each prefix came twice on a connection that closed.
    assert!(
        refused.truncated >= 2 * HEADER_PREFIXES.len() as u64,
        "{refused:?}"
    );
    settles();
}

/// CPU time this process has used (user and system), from /proc.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
    // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse::<u64>().expect("ticks"))
        .sum();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// The node is idle again: over one quiet second, the process uses under a third of a core.
fn settles() {
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_time();
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_time().saturating_sub(before);
    assert!(
        used < Duration::from_millis(330),
        "{used:?} of CPU in one quiet second: something spins"
    );
}

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("rss");
    pages * 4096
}

#[test]
fn a_huge_length_claim_is_refused_before_it_is_allocated() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let (target, witness) = pair();
    let before = rss();
    // A user message claiming 1 GiB (varint 0x80 0x80 0x80 0x80 0x04), then data as fast as
    // the node takes it: 256 MiB at most.
    let mut stream = connect(target.address);
    stream
        .write_all(&[0x09, 0x80, 0x80, 0x80, 0x80, 0x04])
        .unwrap();
    let chunk = vec![0x5a_u8; 1 << 20];
    let mut written = 0usize;
    while written < 256 << 20 {
        match stream.write(&chunk) {
            Ok(n) => written += n,
            Err(_) => break,
        }
    }
    let grown = rss().saturating_sub(before);
    // The largest message the stack accepts by default, plus room for the runtime's own noise.
    let bound = (8 << 20) + (32 << 20);
    assert!(
        written < 64 << 20,
        "the node took {} MiB of a message claiming 1 GiB",
        written >> 20
    );
    assert!(
        grown < bound,
        "the process grew by {} MiB (bound {} MiB)",
        grown >> 20,
        bound >> 20
    );
    drop(stream);
    let refused = target.node().guard_stats().expect("a guarded stack");
    assert_eq!(refused.oversize, 1, "{refused:?}");
    flows(&target, &witness, "after the claim", Duration::from_secs(5)).unwrap();
}

/// The flood of the issue: 300 connections that send one byte and stay open (returned, to be
/// held), and 300 that send 64 random bytes and close.
fn flood(to: std::net::SocketAddr, seed: u64) -> Vec<std::net::TcpStream> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut idle = Vec::new();
    for _ in 0..300 {
        let mut stream = connect(to);
        stream.write_all(&[rng.u8(..)]).expect("write");
        idle.push(stream);
    }
    for _ in 0..300 {
        let mut stream = connect(to);
        let junk: Vec<u8> = (0..64).map(|_| rng.u8(..)).collect();
        let _ = stream.write_all(&junk);
    }
    idle
}

#[test]
fn a_new_node_joins_through_a_node_under_a_connection_flood() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let (target, witness) = pair();
    let idle = flood(target.address, 18);
    let started = Instant::now();
    let newcomer = Host::start(3, &[target.address]).expect("a new node joins through the target");
    assert!(
        newcomer.wait_members(2, Duration::from_secs(10).saturating_sub(started.elapsed())),
        "the new node learned of both members within 10 s"
    );
    flows(&target, &witness, "under the flood", Duration::from_secs(5)).unwrap();
    let hello = b"to the newcomer".to_vec();
    target.broadcast(hello.clone());
    assert!(newcomer.receives(&hello, Duration::from_secs(5)));
    drop(idle);
}

#[test]
fn random_datagrams_and_streams_for_ten_seconds() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let (target, witness) = pair();
    let mut rng = fastrand::Rng::with_seed(1818);
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let until = Instant::now() + Duration::from_secs(10);
    let mut rounds = 0u32;
    while Instant::now() < until {
        for _ in 0..50 {
            let len = rng.usize(1..1400);
            let mut datagram: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            // Half of them look like memberlist messages at first glance.
            if rng.bool() {
                datagram[0] = rng.u8(1..16);
            }
            let _ = udp.send_to(&datagram, target.address);
        }
        for _ in 0..5 {
            let mut stream = connect(target.address);
            let len = rng.usize(1..4096);
            let mut junk: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            junk[0] = rng.u8(1..16);
            let _ = stream.write_all(&junk);
            if rng.bool() {
                let _ = stream.set_read_timeout(Some(Duration::from_millis(10)));
                let _ = stream.read(&mut [0u8; 64]);
            }
        }
        rounds += 1;
        if rounds % 20 == 0 {
            flows(
                &target,
                &witness,
                &format!("round {rounds}"),
                Duration::from_secs(5),
            )
            .unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    flows(&target, &witness, "after the noise", Duration::from_secs(5)).unwrap();
    settles();
}

/// memberlist over QUIC (`build_quic`) authenticates every peer, so only a holder of a cluster
/// certificate gets as far as a stream: an insider. One that stops inside a header must still
/// not wedge the node.
#[cfg(feature = "quic")]
#[test]
fn a_certified_peer_that_stops_inside_a_header_does_not_wedge_a_quic_node() {
    use memberlist_plumtree::memberlist::quic::stream_layer::{
        QuicConnection, QuicConnector, StreamLayer,
    };
    use memberlist_plumtree::memberlist::tokio::TokioQuinn;
    use memberlist_plumtree::memberlist::transport::Connection;
    use memberlist_plumtree::{ClusterCa, QuicConfig};

    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let ca = ClusterCa::generate().unwrap();
    let (target, witness) = certified_pair(&ca, Certified::Quic);
    // The insider's own runtime; its connections stay open until the end of the test.
    let insider = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let options = ca
        .node_tls(&66u64)
        .unwrap()
        .memberlist_quinn_options(&QuicConfig::lan())
        .unwrap();
    let to = target.address;
    let held = insider.block_on(async move {
        let layer = TokioQuinn::new(options).await.unwrap();
        let (_, acceptor, connector) = layer.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut held = Vec::new();
        for prefix in HEADER_PREFIXES {
            for _ in 0..2 {
                let connection = connector
                    .connect(to)
                    .await
                    .unwrap_or_else(|e| panic!("the node stopped accepting: {e}"));
                let (mut stream, _) = connection.open_bi().await.unwrap();
                stream.write_all(prefix).await.unwrap();
                stream.flush().await.unwrap();
                held.push((connection, stream));
            }
        }
        // A user message claiming 1 GiB, then 1 MiB of it.
        let connection = connector.connect(to).await.unwrap();
        let (mut stream, _) = connection.open_bi().await.unwrap();
        stream
            .write_all(&[0x09, 0x80, 0x80, 0x80, 0x80, 0x04])
            .await
            .unwrap();
        let _ = stream.write_all(&[0x5a; 1 << 20]).await;
        held.push((connection, stream));
        (held, acceptor, connector, layer)
    });
    std::thread::sleep(Duration::from_millis(200));
    flows(
        &target,
        &witness,
        "after the insider",
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(target.guard_stats().oversize, 1, "the 1 GiB claim");
    drop(held);
    insider.shutdown_background();
    settles();
}

#[cfg(feature = "quic")]
#[test]
fn random_datagrams_at_a_quic_node() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let ca = memberlist_plumtree::ClusterCa::generate().unwrap();
    let (target, witness) = certified_pair(&ca, Certified::Quic);
    let mut rng = fastrand::Rng::with_seed(1819);
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        for _ in 0..50 {
            let len = rng.usize(1..1400);
            let datagram: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            let _ = udp.send_to(&datagram, target.address);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    flows(&target, &witness, "after the noise", Duration::from_secs(5)).unwrap();
    settles();
}

/// memberlist-net's own TLS listener runs each handshake inside `accept`, without a timeout: one
/// silent connection would stop every later one. `build_tls`'s listener must not.
#[cfg(feature = "quic")]
#[test]
fn a_tls_node_takes_new_members_while_connections_never_finish_a_handshake() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let ca = memberlist_plumtree::ClusterCa::generate().unwrap();
    let target =
        Host::start_certified(1, &[], ca.node_tls(&1u64).unwrap(), Certified::Tls).expect("target");
    let idle = flood(target.address, 20);
    let started = Instant::now();
    let newcomer = Host::start_certified(
        2,
        &[target.address],
        ca.node_tls(&2u64).unwrap(),
        Certified::Tls,
    )
    .expect("joins");
    assert!(newcomer.wait_members(1, Duration::from_secs(10)));
    assert!(started.elapsed() < Duration::from_secs(10));
    flows(
        &target,
        &newcomer,
        "under the flood",
        Duration::from_secs(5),
    )
    .unwrap();
    drop(idle);
    settles();
}
