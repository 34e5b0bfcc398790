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
//! 2. The tokio runtime (`PlumtreeMemberlist`) and the memberlist coupling (`MemberlistStack`)
//!    are not part of this release yet: see README.md, "Status".
//!
//! # Example
//! Ten cores wired together in memory, one broadcast, every node delivers it once:
//! ```
//! use std::time::Instant;
//! use memberlist_plumtree::{Event, Plumtree, PlumtreeConfig};
//!
//! let now = Instant::now();
//! let config = PlumtreeConfig::default().with_rng_seed(Some(7));
//! let mut nodes: Vec<Plumtree<u64>> =
//!     (0..10).map(|id| Plumtree::new(id, config.clone())).collect::<Result<_, _>>()?;
//! for node in &mut nodes {
//!     node.add_peers(now, 0..10);
//! }
//!
//! nodes[0].broadcast(now, &b"hello"[..])?;
//! // Carry every transmit to its destination until the network is quiet.
//! let mut queue: Vec<(u64, u64, _)> = Vec::new();
//! loop {
//!     for node in &mut nodes {
//!         while let Some(t) = node.poll_transmit() {
//!             queue.push((*node.local_id(), t.to, t.message));
//!         }
//!     }
//!     let Some((from, to, message)) = queue.pop() else { break };
//!     nodes[to as usize].handle_message(now, from, message);
//! }
//! for node in &mut nodes {
//!     let deliveries = std::iter::from_fn(|| node.poll_event())
//!         .filter(|e| matches!(e, Event::Deliver(_)))
//!         .count();
//!     assert_eq!(deliveries, 1);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![doc(test(attr(deny(warnings))))]

mod config;
mod error;
pub mod message;
mod node_id;
mod proto;
#[cfg(feature = "sim")]
pub mod sim;

pub use config::{MAX_IHAVE_BATCH_SIZE, MAX_MESSAGE_SIZE_LIMIT, PlumtreeConfig};
pub use error::{BroadcastError, ConfigError};
pub use message::{DecodeError, DecodeLimits, Envelope, Message, MessageId, MessageKind};
pub use node_id::{MAX_NODE_ID_LEN, NodeId};
pub use proto::{Delivery, Event, PeerRole, Plumtree, Stats, Transmit};
