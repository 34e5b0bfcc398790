//! [`BridgeConfig`] (how memberlist's view becomes Plumtree peers) and the peer book that the
//! delegate fills and the stack and transports read.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use super::meta::{META_MAX_SIZE, NodeMeta};
use crate::ConfigError;

/// How membership events map to Plumtree peers, and what this node publishes.
///
/// Every member that joins becomes a Plumtree peer (the core makes it eager while the eager set
/// is below `eager_fanout`, lazy otherwise); a member that leaves or is declared dead stops
/// being one.
///
/// # Examples
/// ```
/// use memberlist_plumtree::BridgeConfig;
///
/// let bridge = BridgeConfig::default()
///     .with_transport_addr(Some("10.0.0.7:7001".parse()?))
///     .with_plumtree_only(true);
/// bridge.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeConfig {
    /// Published in node metadata for transports that listen on their own address (QUIC).
    /// `None` when Plumtree frames ride on memberlist itself. Default `None`.
    pub transport_addr: Option<SocketAddr>,
    /// Only members whose metadata says they run Plumtree become peers, so a memberlist cluster
    /// may hold other services too. With `false`, every member is a peer. Default `true`.
    pub plumtree_only: bool,
    /// How often a started `MemberlistStack` tries to join again the members that left or
    /// failed (as serf's reconnect does). After a network split, SWIM on each side declares the
    /// other side dead and neither would contact it again; these attempts bring the halves back
    /// together once the network heals. Zero turns it off. Default 10 s.
    pub reconnect_interval: Duration,
    /// How long a member that left or failed is tried again. Default 6 hours; at most the 1,024
    /// most recent departures are remembered.
    pub reconnect_timeout: Duration,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            transport_addr: None,
            plumtree_only: true,
            reconnect_interval: Duration::from_secs(10),
            reconnect_timeout: Duration::from_secs(6 * 3600),
        }
    }
}

setters! { BridgeConfig;
    /// Sets [`transport_addr`](Self::transport_addr).
    with_transport_addr: transport_addr: Option<SocketAddr>;
    /// Sets [`plumtree_only`](Self::plumtree_only).
    with_plumtree_only: plumtree_only: bool;
    /// Sets [`reconnect_interval`](Self::reconnect_interval) (zero: off).
    with_reconnect_interval: reconnect_interval: Duration;
    /// Sets [`reconnect_timeout`](Self::reconnect_timeout).
    with_reconnect_timeout: reconnect_timeout: Duration;
}

impl BridgeConfig {
    /// Checks that our part of the metadata leaves room under memberlist's 512-byte limit.
    ///
    /// # Errors
    /// [`ConfigError::TooLarge`] if it does not (it always fits today; the check keeps future
    /// fields honest).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.header_len() > META_MAX_SIZE {
            return Err(ConfigError::TooLarge {
                field: "node metadata",
                max: META_MAX_SIZE,
            });
        }
        Ok(())
    }

    /// Bytes of metadata we use before the application's.
    pub(crate) fn header_len(&self) -> usize {
        NodeMeta::header_len(self.transport_addr, &[])
    }
}

/// What this node knows about one peer, from memberlist.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerInfo<A> {
    /// The peer's memberlist address.
    pub address: A,
    /// Its published metadata.
    pub meta: NodeMeta,
    /// The last ping round-trip time memberlist measured to it, if any yet.
    pub rtt: Option<Duration>,
}

/// Most departed members remembered for reconnect attempts.
const MAX_DEPARTED: usize = 1024;

/// Peers by id: filled by the delegate's callbacks, read by the stack and the transports.
///
/// Callbacks run under memberlist's node-table lock, so every method here only takes this
/// map's own short lock and never waits on anything else.
#[derive(Debug)]
pub(crate) struct PeerBook<I, A> {
    peers: RwLock<HashMap<I, PeerInfo<A>>>,
    /// Members that left or failed, with their address and when: tried again by the stack's
    /// reconnect task until `reconnect_timeout`.
    departed: Mutex<HashMap<I, (A, Instant)>>,
}

impl<I: Eq + Hash + Clone, A: Clone> PeerBook<I, A> {
    pub(crate) fn new() -> Self {
        Self {
            peers: RwLock::new(HashMap::new()),
            departed: Mutex::new(HashMap::new()),
        }
    }

    fn departed_map(&self) -> std::sync::MutexGuard<'_, HashMap<I, (A, Instant)>> {
        self.departed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The members that left or failed less than `timeout` ago, with their last address;
    /// older ones are forgotten.
    pub(crate) fn departed(&self, timeout: Duration) -> Vec<(I, A)> {
        let mut departed = self.departed_map();
        departed.retain(|_, (_, at)| at.elapsed() < timeout);
        departed
            .iter()
            .map(|(id, (address, _))| (id.clone(), address.clone()))
            .collect()
    }

    // A panic elsewhere while holding the lock leaves the map consistent (every update is one
    // map operation), so a poisoned lock is used as is.
    fn read(&self) -> RwLockReadGuard<'_, HashMap<I, PeerInfo<A>>> {
        self.peers.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<I, PeerInfo<A>>> {
        self.peers.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a member; `true` if it was not known.
    pub(crate) fn upsert(&self, id: I, address: A, meta: NodeMeta) -> bool {
        let mut peers = self.write();
        match peers.get_mut(&id) {
            Some(info) => {
                info.address = address;
                info.meta = meta;
                false
            }
            None => {
                self.departed_map().remove(&id);
                peers.insert(
                    id,
                    PeerInfo {
                        address,
                        meta,
                        rtt: None,
                    },
                );
                true
            }
        }
    }

    /// Forgets a member, remembering its address as departed; `true` if it was known.
    pub(crate) fn remove(&self, id: &I) -> bool {
        let mut peers = self.write();
        let Some(info) = peers.remove(id) else {
            return false;
        };
        let mut departed = self.departed_map();
        if departed.len() >= MAX_DEPARTED {
            // Churn through many short-lived ids must not grow this: the oldest goes first.
            let oldest = departed
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                departed.remove(&oldest);
            }
        }
        departed.insert(id.clone(), (info.address, Instant::now()));
        true
    }

    pub(crate) fn record_rtt(&self, id: &I, rtt: Duration) {
        let mut peers = self.write();
        if let Some(info) = peers.get_mut(id) {
            info.rtt = Some(rtt);
        }
    }

    pub(crate) fn address(&self, id: &I) -> Option<A> {
        let peers = self.read();
        peers.get(id).map(|info| info.address.clone())
    }

    /// Where `id`'s own Plumtree transport listens, from its metadata.
    #[cfg_attr(not(feature = "quic"), allow(dead_code))]
    pub(crate) fn transport_addr(&self, id: &I) -> Option<SocketAddr> {
        let peers = self.read();
        peers.get(id).and_then(|info| info.meta.transport_addr)
    }

    pub(crate) fn get(&self, id: &I) -> Option<PeerInfo<A>> {
        let peers = self.read();
        peers.get(id).cloned()
    }

    pub(crate) fn ids(&self) -> Vec<I> {
        let peers = self.read();
        peers.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn departures_are_remembered_for_reconnects_within_a_bound() {
        let book = PeerBook::<u32, u32>::new();
        for id in 0..(MAX_DEPARTED as u32 + 10) {
            book.upsert(id, id, NodeMeta::default());
            assert!(book.remove(&id));
        }
        let departed = book.departed(Duration::from_secs(60));
        assert_eq!(departed.len(), MAX_DEPARTED);
        // Back again: no longer departed.
        book.upsert(MAX_DEPARTED as u32 + 9, 0, NodeMeta::default());
        assert_eq!(
            book.departed(Duration::from_secs(60)).len(),
            MAX_DEPARTED - 1
        );
        assert!(book.departed(Duration::ZERO).is_empty());
    }
}
