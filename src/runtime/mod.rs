//! The tokio runtime around the protocol core: [`PlumtreeMemberlist`], the [`Transport`] trait
//! and [`ChannelTransport`].
//!
//! One node is three kinds of task: a protocol task that owns the [`Plumtree`](crate::Plumtree)
//! core (so no lock guards it) and sleeps until the core's next deadline or the next input; a
//! delivery task that calls your [`PlumtreeDelegate`]; and one send task per peer, so that a slow
//! or dead peer only fills its own bounded queue. docs/background-tasks.md describes them.

mod alarm;
mod broadcasts;
mod budget;
mod delegate;
mod delivery;
mod driver;
mod encode;
mod inbound;
mod local;
mod metrics;
mod node;
mod options;
mod outbox;
mod pacing;
mod stats;
mod topics;
mod transport;

pub use delegate::{NoopDelegate, PlumtreeDelegate};
pub use inbound::InboundError;
pub use local::{LocalNetwork, LocalTransport};
pub use node::{Deliveries, NodeInputs, PlumtreeMemberlist, StartError};
pub use options::RuntimeConfig;
pub use stats::NodeStats;
pub use topics::{Topic, TopicError};
pub use transport::{ChannelReceiver, ChannelTransport, Transport, TransportError};
