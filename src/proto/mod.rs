//! The sans-IO protocol core: [`Plumtree`] and what it outputs.
//!
//! Nothing here touches a socket, a clock or an async runtime: time comes in as an argument and
//! messages go out as values. The same core runs in the tokio runtime, in tests and in the
//! simulator. The algorithm is the one of Leitão, Pereira and Rodrigues, *Epidemic Broadcast
//! Trees* (SRDS 2007), Section 3; docs/architecture.md walks through it.
//!
//! The state is split by concern: `peers` (members, eager and lazy neighbours; `members` holds
//! the member list, which nodes knowing the same members can share), `ring` (the
//! optional hash ring that keeps the overlay connected), `score` (round-trip times and graft
//! outcomes that rank peers), `store` (the seen set and the payload cache, with `seq_windows`
//! answering most "seen?" questions from a bit per id), `pending` (announcements waiting for
//! the next IHave, with when each was queued), `missing` (announced payloads and graft timers),
//! `adaptive` (the adaptive IHave interval and cache retention), `cycle` (link weights and the
//! test that finds the heaviest link of a cycle), `ids` (the ids of our own broadcasts); the
//! handlers that tie them together live in `plumtree`, the payload path (a Gossip in,
//! eager push and announcements out) in `plumtree/gossip.rs`, duplicates and prunes in
//! `plumtree/prune.rs`, lazy push and repair in `plumtree/repair.rs`, neighbour roles in
//! `plumtree/neighbours.rs`, how fast broadcasts may enter in `plumtree/admission.rs`.

mod adaptive;
mod cycle;
mod ids;
mod members;
mod missing;
mod origins;
mod output;
mod peers;
mod pending;
mod plumtree;
mod ring;
mod score;
mod seq_windows;
#[cfg(feature = "signing")]
mod signing;
mod store;

#[cfg(feature = "tokio")]
pub(crate) use ids::IdSource;
pub use output::{Delivery, Event, PeerRole, Stats, Transmit};
pub use plumtree::Plumtree;
#[cfg(feature = "signing")]
pub use signing::{InvalidKey, MAX_KEYS_PER_ORIGIN, OriginKeys};

#[cfg(test)]
mod tests;
