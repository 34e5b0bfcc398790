//! Who can make a `MemberlistStack` deliver a broadcast: forged frames from outside the cluster,
//! frames naming a member, replays, and nodes without the cluster's key. docs/security.md cites
//! these tests in its threat table.
#![cfg(feature = "memberlist")]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
#[cfg(feature = "quic")]
use common::host::{Certified, certified_pair};
use common::host::{Host, connect, flows, pair, pair_with};
use memberlist_plumtree::memberlist::proto::{Message as MlMessage, ProtoEncoder, SecretKey};
use memberlist_plumtree::message::Gossip;
use memberlist_plumtree::{Envelope, Message, MessageId};

static TURN: Mutex<()> = Mutex::new(());

const KEY: SecretKey = SecretKey::Aes256([0x42; 32]);

/// A Gossip frame claiming to come from `sender`, originated by it.
fn forged(sender: u64, seq: u64, payload: &'static [u8]) -> Bytes {
    Envelope {
        sender,
        message: Message::Gossip(Gossip {
            id: MessageId::new(sender, 0, seq),
            origin: sender,
            round: 0,
            heaviest: 0,
            payload: Bytes::from_static(payload),
            encoding: Default::default(),
            signature: None,
        }),
    }
    .to_bytes()
}

/// Sends `frame` to `to` as a memberlist user message carrying Plumtree frames (plaintext, as
/// anyone who can reach the port can).
fn inject(to: SocketAddr, frame: &[u8]) {
    let mut body = vec![0xB7]; // the stack's tag for user messages that carry frames
    body.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    body.extend_from_slice(frame);
    let messages: [MlMessage<u64, SocketAddr>; 1] = [MlMessage::UserData(Bytes::from(body))];
    let encoder = ProtoEncoder::new(usize::MAX).with_messages(&messages[..]);
    let payloads: Vec<_> = encoder.encode().collect::<Result<_, _>>().unwrap();
    let mut stream = connect(to);
    stream.write_all(payloads[0].as_slice()).unwrap();
}

fn non_member_messages(host: &Host) -> u64 {
    let node = host.node().plumtree().clone();
    host.runtime()
        .block_on(node.stats())
        .expect("running")
        .protocol
        .from_non_members
}

#[test]
fn a_forged_frame_from_a_non_member_is_dropped_and_counted() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let (target, witness) = pair();
    inject(target.address, &forged(42, 0, b"from outside"));
    assert!(
        !target.receives(b"from outside", Duration::from_secs(2)),
        "delivered"
    );
    assert!(
        !witness.receives(b"from outside", Duration::from_millis(500)),
        "relayed"
    );
    assert_eq!(non_member_messages(&target), 1);
    flows(
        &target,
        &witness,
        "after the forgery",
        Duration::from_secs(5),
    )
    .unwrap();
}

/// On plain UDP+TCP nothing binds a frame to its sender: a frame that names a member is taken
/// as that member's. This is the gap a keyring (or QUIC) closes; the test keeps the table in
/// docs/security.md honest.
#[test]
fn on_plain_tcp_a_frame_naming_a_member_is_believed() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let (target, _witness) = pair();
    inject(target.address, &forged(2, 1000, b"as the witness"));
    assert!(target.receives(b"as the witness", Duration::from_secs(5)));
}

#[test]
fn a_replayed_frame_is_delivered_once() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let (target, _witness) = pair();
    let frame = forged(2, 2000, b"replayed");
    inject(target.address, &frame);
    assert!(target.receives(b"replayed", Duration::from_secs(5)));
    for _ in 0..3 {
        inject(target.address, &frame);
    }
    assert!(
        !target.receives(b"replayed", Duration::from_secs(2)),
        "delivered again"
    );
}

#[test]
fn with_a_keyring_plaintext_frames_are_refused_and_members_still_broadcast() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let (target, witness) = pair_with(Some(KEY));
    assert!(target.node().memberlist().encryption_enabled());
    inject(target.address, &forged(2, 3000, b"without the key"));
    assert!(
        !target.receives(b"without the key", Duration::from_secs(2)),
        "a plaintext frame naming a member was delivered"
    );
    flows(&target, &witness, "with a keyring", Duration::from_secs(5)).unwrap();
}

#[test]
fn a_node_with_another_key_or_none_cannot_join() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let (target, _witness) = pair_with(Some(KEY));
    let other = SecretKey::Aes256([7; 32]);
    for key in [Some(other), None] {
        let joined = Host::start_with(3, &[target.address], key);
        assert!(joined.is_err(), "joined with {key:?}");
    }
    assert_eq!(target.node().members().len(), 1);
}

#[test]
fn a_key_rotation_keeps_the_cluster_together() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let (target, witness) = pair_with(Some(KEY));
    let new = SecretKey::Aes256([9; 32]);
    for host in [&target, &witness] {
        host.node()
            .memberlist()
            .keyring()
            .expect("keyring")
            .insert(new);
    }
    for host in [&target, &witness] {
        let keyring = host.node().memberlist().keyring().expect("keyring");
        keyring.use_key(new.as_ref()).expect("installed");
    }
    for host in [&target, &witness] {
        let keyring = host.node().memberlist().keyring().expect("keyring");
        keyring.remove(KEY.as_ref()).expect("not primary");
    }
    flows(
        &target,
        &witness,
        "after the rotation",
        Duration::from_secs(5),
    )
    .unwrap();
    // A node with only the old key is refused now.
    assert!(Host::start_with(3, &[target.address], Some(KEY)).is_err());
}

/// memberlist's streams over TLS (`build_tls`): members broadcast; a node whose certificate comes
/// from another CA cannot join; frames written to the port in plaintext go nowhere.
#[cfg(feature = "quic")]
#[test]
fn over_tls_only_certified_nodes_join_and_plaintext_is_refused() {
    use memberlist_plumtree::ClusterCa;

    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let ca = ClusterCa::generate().unwrap();
    let (target, witness) = certified_pair(&ca, Certified::Tls);
    flows(&target, &witness, "over TLS", Duration::from_secs(5)).unwrap();
    let stranger = ClusterCa::generate().unwrap().node_tls(&3u64).unwrap();
    assert!(Host::start_certified(3, &[target.address], stranger, Certified::Tls).is_err());
    inject(target.address, &forged(2, 4000, b"plaintext to TLS"));
    assert!(!target.receives(b"plaintext to TLS", Duration::from_secs(2)));
    assert_eq!(target.members(), [2]);
}
