//! Cluster-wide broadcast with the Plumtree protocol (Epidemic Broadcast Trees).
//!
//! Plumtree pushes each payload along a spanning tree of the cluster (*eager* links) and only
//! announces it on the remaining links (*lazy* links). Duplicates prune redundant links, so after
//! a few broadcasts each node receives each payload once; announcements let a node whose tree
//! link failed fetch what it missed and graft itself back into the tree.
//!
//! This crate is built in layers; each wraps the one below:
//!
//! 1. [`Plumtree`]: the protocol core, sans-IO. You feed it membership changes, broadcasts,
//!    received [`Message`]s and the time; it hands back [`Transmit`]s and [`Event`]s.
//! 2. `PlumtreeMemberlist` (feature `tokio`): one core driven by tokio, with timers, bounded
//!    per-peer send queues, a `PlumtreeDelegate` for deliveries, and
//!    any `Transport` (`ChannelTransport` hands you the frames, `LocalNetwork` wires nodes in one
//!    process). Peers are added by hand.
//! 3. `MemberlistStack` (feature `memberlist`): SWIM membership from the `memberlist` crate
//!    drives the peers; `MemberlistStack::builder` makes a working node in a few lines
//!    (docs/getting-started.md).
//! 4. `QuicTransport` (feature `quic`): frames over persistent QUIC connections with mutual
//!    TLS, the node id carried in each certificate and checked against every frame
//!    (docs/quic.md). `MemberlistStack` can use it for the frames, and run memberlist itself over
//!    QUIC with the same certificates.
//!
//! A node can also join *topics*, independent broadcast groups among the members that joined
//! them (`PlumtreeMemberlist::join_topic`, `MemberlistStack::join_topic`; a core per topic,
//! membership in memberlist metadata; docs/architecture.md, "Topics").
//!
//! With the `sim` feature, `sim` runs many cores over a virtual network in virtual time, to
//! measure reliability, redundancy and delay before you deploy a config (docs/simulation.md).
//!
//! # Example
//! Ten cores wired together in memory with a virtual clock; one broadcast reaches every node
//! exactly once:
//! ```
//! use std::time::{Duration, Instant};
//! use memberlist_plumtree::{Event, Plumtree, PlumtreeConfig};
//!
//! let start = Instant::now();
//! let config = PlumtreeConfig::default().with_rng_seed(Some(7));
//! let mut nodes: Vec<Plumtree<u64>> =
//!     (0..10).map(|id| Plumtree::new(id, config.clone())).collect::<Result<_, _>>()?;
//! for node in &mut nodes {
//!     node.add_peers(start, 0..10);
//! }
//! nodes[0].broadcast(start, &b"hello"[..])?;
//!
//! // Carry every transmit to its peer; when the network is quiet, jump to the next timer
//! // (IHave flushes and grafts repair whatever the first eager links missed).
//! let mut now = start;
//! let mut deliveries = vec![0; 10];
//! loop {
//!     let mut quiet = true;
//!     for i in 0..nodes.len() {
//!         while let Some(t) = nodes[i].poll_transmit() {
//!             quiet = false;
//!             nodes[t.to as usize].handle_message(now, i as u64, t.message);
//!         }
//!         while let Some(event) = nodes[i].poll_event() {
//!             if let Event::Deliver(_) = event {
//!                 deliveries[i] += 1;
//!             }
//!         }
//!     }
//!     if quiet {
//!         let next = nodes.iter().filter_map(|n| n.poll_timeout()).min().unwrap();
//!         if next > start + Duration::from_secs(5) {
//!             break;
//!         }
//!         now = next;
//!         nodes.iter_mut().for_each(|n| n.handle_timeout(now));
//!     }
//! }
//! assert_eq!(deliveries, [1; 10]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![doc(test(attr(deny(warnings))))]

/// Chainable setters for config structs and builders:
/// `setters! { Type; /// doc\n name: field: Ty; ... }`, or `setters! { impl<I> Type<I>; ... }`.
macro_rules! setters {
    (impl<$($generic:ident),*> $target:ty; $($(#[$doc:meta])* $name:ident: $field:ident: $ty:ty;)*) => {
        impl<$($generic),*> $target {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $name(mut self, value: $ty) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
    ($target:ty; $($rest:tt)*) => {
        setters! { impl<> $target; $($rest)* }
    };
}

mod config;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(any(feature = "sim", feature = "tokio"))]
mod latency;
#[cfg(feature = "memberlist")]
mod membership;
pub mod message;
mod node_id;
mod proto;
#[cfg(feature = "quic")]
mod quic;
#[cfg(feature = "tokio")]
mod runtime;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(feature = "tokio")]
mod telemetry;

pub use config::{MAX_IHAVE_BATCH_SIZE, MAX_MESSAGE_SIZE_LIMIT, PlumtreeConfig};
pub use error::{BroadcastError, ConfigError};
/// The `memberlist` crate this one is built on, so that its `Options` and transports match.
#[cfg(feature = "memberlist")]
pub use memberlist;
#[cfg(feature = "memberlist")]
pub use membership::{
    BridgeConfig, DelegatedMemberlist, GuardStats, Guarded, GuardedListener, GuardedOptions,
    GuardedReader, GuardedStream, IntoMemberlistDelegate, META_MAX_SIZE, MemberlistStack,
    MemberlistTransport, MetaError, NodeMeta, PeerInfo, PlumtreeNodeDelegate, StackBuilder,
    StackError, StreamGuard, TcpStack, TcpTransport,
};
#[cfg(all(feature = "memberlist", feature = "quic"))]
pub use membership::{
    GuardedAcceptor, GuardedConnection, GuardedConnector, GuardedQuic, MAX_HANDSHAKES,
    QuicMemberlistTransport, QuicStack, TlsConnection, TlsLayer, TlsListener,
    TlsMemberlistTransport, TlsOptions, TlsReader, TlsStack,
};
pub use message::{
    DecodeError, DecodeLimits, Encoding, Envelope, Frame, Message, MessageId, MessageKind,
    Signature, TopicId,
};
pub use node_id::{MAX_NODE_ID_LEN, NodeId};
pub use proto::{Delivery, Event, PeerRole, Plumtree, Stats, Transmit};
#[cfg(feature = "signing")]
pub use proto::{InvalidKey, MAX_KEYS_PER_ORIGIN, OriginKeys};
#[cfg(feature = "quic")]
pub use quic::{
    ClusterCa, MAX_CERTIFICATE_ID_LEN, MAX_FRAME_SIZE_LIMIT, MEMBERS_NAME, NodeCertificate,
    QuicConfig, QuicError, QuicStats, QuicTls, QuicTransport, RejectReason, TlsError,
    certificate_name,
};
#[cfg(feature = "tokio")]
pub use runtime::{
    ChannelReceiver, ChannelTransport, Deliveries, InboundError, LocalNetwork, LocalTransport,
    NodeInputs, NodeStats, NoopDelegate, PlumtreeDelegate, PlumtreeMemberlist, RuntimeConfig,
    StartError, Topic, TopicError, Transport, TransportError,
};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// docs/getting-started.md's examples, compiled and run as doc tests (one compresses and signs,
/// the last joins a topic).
#[cfg(all(
    doctest,
    feature = "memberlist",
    feature = "compression",
    feature = "signing"
))]
#[doc = include_str!("../docs/getting-started.md")]
struct GettingStartedDoctests;

/// docs/configuration.md's examples, compiled and run as doc tests (one turns compression on).
#[cfg(all(doctest, feature = "compression"))]
#[doc = include_str!("../docs/configuration.md")]
struct ConfigurationDoctests;

/// docs/quic.md's examples, compiled and run as doc tests.
#[cfg(all(doctest, feature = "memberlist", feature = "quic"))]
#[doc = include_str!("../docs/quic.md")]
struct QuicDoctests;
