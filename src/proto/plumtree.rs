//! [`Plumtree`]: the protocol state machine.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

mod admission;
mod anti_entropy;
mod gossip;
mod neighbours;
mod prune;
mod repair;

use super::adaptive::Adaptive;
use super::ids::IdSource;
use super::missing::Missing;
use super::origins::{Key, Origins};
use super::output::{Event, PeerRole, Stats, Transmit};
use super::peers::{Peers, Topology};
use super::store::{Limits, MessageStore, Seen};
use crate::NodeId;
use crate::config::PlumtreeConfig;
use crate::error::{BroadcastError, ConfigError};
use crate::message::compress::Carried;
use crate::message::{Announcement, Graft, IHave, Message, MessageId};

/// The Plumtree protocol for one node, without I/O.
///
/// # Driving it
/// The caller feeds facts in and carries commands out:
///
/// - inputs: [`add_peer`](Self::add_peer) / [`add_peers`](Self::add_peers) /
///   [`remove_peer`](Self::remove_peer) as membership changes, [`broadcast`](Self::broadcast)
///   for the application's payloads, [`handle_message`](Self::handle_message) for each frame
///   received, [`handle_undelivered`](Self::handle_undelivered) for a transmit that could not be
///   sent (a full queue), [`record_rtt`](Self::record_rtt) for a measured round trip (peer
///   scoring), and [`handle_timeout`](Self::handle_timeout) once
///   [`poll_timeout`](Self::poll_timeout)'s instant has passed;
/// - outputs, to drain after every input: [`poll_transmit`](Self::poll_transmit) (send each to
///   its peer) and [`poll_event`](Self::poll_event) (deliveries, neighbour changes, payloads
///   given up); then re-arm one timer at [`poll_timeout`](Self::poll_timeout);
/// - before a broadcast under load, [`broadcast_room_at`](Self::broadcast_room_at): a caller
///   that broadcasts faster than the cache can keep payloads for repair loses repairs.
///   `PlumtreeMemberlist` waits for it.
///
/// Every input takes `now`. Time must not go backwards; an earlier `now` is treated as the latest
/// one seen. With [`PlumtreeConfig::rng_seed`] set, the same inputs give the same outputs.
///
/// # Examples
/// Two nodes wired by hand:
/// ```
/// use std::time::Instant;
/// use memberlist_plumtree::{Event, Plumtree, PlumtreeConfig};
///
/// let now = Instant::now();
/// let mut a = Plumtree::new(1u64, PlumtreeConfig::default())?;
/// let mut b = Plumtree::new(2u64, PlumtreeConfig::default())?;
/// a.add_peer(now, 2);
/// b.add_peer(now, 1);
///
/// a.broadcast(now, &b"hello"[..])?;
/// while let Some(t) = a.poll_transmit() {
///     assert_eq!(t.to, 2);
///     b.handle_message(now, 1, t.message);
/// }
/// let delivered: Vec<_> = std::iter::from_fn(|| b.poll_event())
///     .filter_map(|e| match e {
///         Event::Deliver(d) => Some(d.payload),
///         _ => None, // neighbour changes
///     })
///     .collect();
/// assert_eq!(delivered, [&b"hello"[..]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Plumtree<I: NodeId> {
    local: I,
    config: PlumtreeConfig,
    rng: fastrand::Rng,
    /// Names our broadcasts (shared with the runtime, which names them as they are queued).
    ids: IdSource,
    peers: Peers<I>,
    /// Ids already delivered (a second copy is a duplicate), and the payloads kept for Grafts.
    store: MessageStore<I>,
    /// Ids announced to us that we do not have yet.
    missing: Missing<I>,
    /// When pending announcements must leave, if any are pending.
    ihave_deadline: Option<Instant>,
    /// The adaptive IHave interval and cache retention (inert unless configured).
    adaptive: Adaptive,
    /// What we have delivered per origin, for anti-entropy.
    origins: Origins,
    /// When the next digest leaves, and the origin the last one ended with.
    digest_deadline: Option<Instant>,
    digest_cursor: Option<Key>,
    /// Until when digests carry every run they may (an exchange found a difference).
    boosted_until: Option<Instant>,
    /// Neighbours that asked for something lately, each with the record to page on from and
    /// the pages left (at most one entry per neighbour).
    follow_ups: std::collections::BTreeMap<I, (Option<Key>, u32)>,
    /// Anti-entropy's own random choices, apart from the protocol's: turning it on or off
    /// leaves every other choice of a seeded node as it was.
    ae_rng: fastrand::Rng,
    /// Latest time seen; inputs never move it back.
    now: Option<Instant>,
    /// The first time seen: anti-entropy fetches nothing from before it.
    born: Option<Instant>,
    transmits: VecDeque<Transmit<I>>,
    events: VecDeque<Event<I>>,
    stats: Stats,
    /// With origin keys: our broadcasts are signed and others' checked.
    #[cfg(feature = "signing")]
    keys: Option<Box<super::signing::OriginKeys<I>>>,
}

impl<I: NodeId> Plumtree<I> {
    /// Creates the protocol state of node `local`.
    ///
    /// # Errors
    /// [`ConfigError`] when `config` does not [validate](PlumtreeConfig::validate).
    pub fn new(local: I, config: PlumtreeConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut rng = match config.rng_seed {
            Some(seed) => fastrand::Rng::with_seed(seed),
            None => fastrand::Rng::new(),
        };
        let adaptive = Adaptive::new(&config);
        let mut store = MessageStore::new(Limits {
            seen_len: config.seen_max_size,
            seen_ttl: config.seen_ttl,
            cache_len: config.message_cache_max_size,
            cache_bytes: config.message_cache_max_bytes,
            cache_ttl: config.message_cache_ttl,
            horizon: admission::repair_horizon(&config, &adaptive),
        });
        store.set_retention(adaptive.cache_retention(&config));
        let max_origins = config.anti_entropy_max_origins;
        let ae_rng = match config.rng_seed {
            Some(seed) => fastrand::Rng::with_seed(seed ^ 0xa5a5_5a5a_a5a5_5a5a),
            None => fastrand::Rng::new(),
        };
        Ok(Self {
            ids: IdSource::new(local.tag(), rng.u64(..)),
            peers: Peers::new(
                local.clone(),
                Topology {
                    max_peers: config.max_peers,
                    hash_ring: config.use_hash_ring,
                    scoring: config.peer_scoring,
                },
            ),
            missing: Missing::new(
                config.max_missing,
                config.max_announcers,
                config.optimization_threshold > 0,
            ),
            local,
            config,
            rng,
            store,
            ihave_deadline: None,
            origins: Origins::new(max_origins),
            digest_deadline: None,
            digest_cursor: None,
            boosted_until: None,
            follow_ups: std::collections::BTreeMap::new(),
            ae_rng,
            adaptive,
            now: None,
            born: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            #[cfg(feature = "signing")]
            keys: None,
        })
    }

    /// Signs this node's broadcasts with `keys` and delivers or passes on only payloads whose
    /// origin signed them with a key in `keys` (the `signing` feature); what fails is dropped
    /// and counted in [`Stats::bad_signatures`]. Every node of the cluster needs keys, and the
    /// public key of every origin.
    ///
    /// # Errors
    /// [`ConfigError::Inconsistent`] when `keys` belong to another node id.
    #[cfg(feature = "signing")]
    pub fn with_origin_keys(
        mut self,
        keys: super::signing::OriginKeys<I>,
    ) -> Result<Self, ConfigError> {
        if *keys.local() != self.local {
            return Err(ConfigError::Inconsistent("origin keys of another node id"));
        }
        self.keys = Some(Box::new(keys));
        Ok(self)
    }

    /// This node's id.
    pub fn local_id(&self) -> &I {
        &self.local
    }

    /// The configuration in force.
    pub fn config(&self) -> &PlumtreeConfig {
        &self.config
    }

    /// Counters since creation.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Current eager neighbours, in id order.
    pub fn eager_peers(&self) -> impl Iterator<Item = &I> {
        self.peers.with_role(PeerRole::Eager)
    }

    /// Current lazy neighbours, in id order.
    pub fn lazy_peers(&self) -> impl Iterator<Item = &I> {
        self.peers.with_role(PeerRole::Lazy)
    }

    /// `peer`'s role, if it is a neighbour.
    pub fn peer_role(&self, peer: &I) -> Option<PeerRole> {
        self.peers.role(peer)
    }

    /// Whether `peer` is a known member.
    pub fn is_member(&self, peer: &I) -> bool {
        self.peers.is_member(peer)
    }

    /// Every known member (neighbour or not), in id order.
    pub fn members(&self) -> impl ExactSizeIterator<Item = &I> {
        self.peers.members().iter()
    }

    /// Payloads in the cache, and their total size in bytes.
    pub fn cache_usage(&self) -> (usize, usize) {
        self.store.cache_usage()
    }

    /// Ids remembered as delivered.
    pub fn seen_len(&self) -> usize {
        self.store.seen_len()
    }

    /// Origins whose deliveries are tracked for anti-entropy (at most
    /// [`anti_entropy_max_origins`](PlumtreeConfig::anti_entropy_max_origins)).
    pub fn origins_len(&self) -> usize {
        self.origins.len()
    }

    /// What this node knows of a payload it never delivered: given up (reported as a gap),
    /// known to be missing (not given up yet), or nothing. For the simulator's accounting.
    #[cfg(feature = "sim")]
    pub(crate) fn loss_state(&self, id: &MessageId) -> crate::sim::LossState {
        use crate::sim::LossState;
        let Some(record) = self.origins.get(&(id.origin(), id.incarnation())) else {
            return LossState::Unknown;
        };
        if record.has(id.seq()) {
            LossState::Reported
        } else if record
            .stale
            .is_some_and(|(_, below)| id.seq() < below && id.seq() >= record.floor())
        {
            LossState::Pending
        } else {
            LossState::Unknown
        }
    }

    /// Payloads announced but not received yet.
    pub fn missing_len(&self) -> usize {
        self.missing.len()
    }

    /// A member joined. Neighbours are topped up from the members at once, so a caller that
    /// learns many members together should use [`add_peers`](Self::add_peers), which chooses
    /// among all of them. Returns false for the local id or a known member.
    pub fn add_peer(&mut self, now: Instant, peer: I) -> bool {
        self.add_peers(now, [peer]) == 1
    }

    /// Members joined; returns how many were new.
    pub fn add_peers(&mut self, now: Instant, peers: impl IntoIterator<Item = I>) -> usize {
        self.advance(now);
        let added = self.peers.add_members(peers);
        self.joined(now, added)
    }

    /// [`add_peers`](Self::add_peers) for a whole membership list, sorted and without repeats
    /// (it may hold the local id). A node that knows no member yet keeps the list itself, so
    /// the simulator's nodes share one instead of each holding a copy; it is copied when this
    /// node's membership first changes.
    #[cfg(feature = "sim")]
    pub(crate) fn add_peer_list(&mut self, now: Instant, list: std::sync::Arc<Vec<I>>) -> usize {
        self.advance(now);
        let added = self.peers.share_members(list);
        self.joined(now, added)
    }

    /// Tops up the neighbours after `added` members joined; returns `added`.
    fn joined(&mut self, now: Instant, added: usize) -> usize {
        if added > 0 {
            self.fill();
            self.arm_digest(now);
        }
        added
    }

    /// A member left or failed. If it was an eager neighbour, a random lazy neighbour is promoted
    /// (and grafted) to repair the tree; lost neighbours are replaced from the members. Returns
    /// false if it was not a member.
    pub fn remove_peer(&mut self, now: Instant, peer: &I) -> bool {
        self.advance(now);
        if !self.peers.is_member(peer) {
            return false;
        }
        if let Some(gone) = self.peers.remove_member(peer) {
            self.events
                .push_back(Event::NeighbourRemoved { peer: peer.clone() });
            if gone.role == PeerRole::Eager {
                if let Some(lazy) = self.peers.best_lazy(&mut self.rng, None) {
                    self.graft(&lazy, None);
                }
            }
        }
        self.missing.forget_peer(peer);
        self.fill();
        true
    }

    /// Broadcasts `payload` to the cluster. It is delivered locally at once (an
    /// [`Event::Deliver`] with `hops == 0` and no `from`), pushed to eager neighbours and
    /// announced to lazy ones.
    ///
    /// # Errors
    /// [`BroadcastError::PayloadTooLarge`] above `max_message_size`; nothing is sent.
    pub fn broadcast(
        &mut self,
        now: Instant,
        payload: impl Into<Bytes>,
    ) -> Result<MessageId, BroadcastError> {
        let payload = payload.into();
        self.config.check_payload(payload.len())?;
        let id = self.ids.next();
        self.broadcast_as(now, id, payload);
        Ok(id)
    }

    /// Where the runtime gets the ids of broadcasts it queues for [`broadcast_as`](Self::broadcast_as).
    #[cfg(feature = "tokio")]
    pub(crate) fn ids(&self) -> IdSource {
        self.ids.clone()
    }

    /// [`broadcast`](Self::broadcast) under an id from [`ids`](Self::ids), for a payload whose
    /// size the caller has checked.
    pub(crate) fn broadcast_as(&mut self, now: Instant, id: MessageId, payload: Bytes) {
        debug_assert!(self.config.check_payload(payload.len()).is_ok());
        let now = self.advance(now);
        self.stats.broadcasts += 1;
        let seen = Seen {
            at: now,
            heaviest: 0,
        };
        let payload = Carried::broadcast(payload, self.config.compress_min_size);
        #[cfg(feature = "signing")]
        let payload = match &self.keys {
            Some(keys) => Carried {
                signature: Some(keys.sign(&id, payload.encoding, &payload.wire)),
                ..payload
            },
            None => payload,
        };
        self.accept(seen, id, self.local.clone(), 0, payload, None);
    }

    /// A message arrived from `from` (the sender named by its envelope).
    pub fn handle_message(&mut self, now: Instant, from: I, message: Message<I>) {
        let now = self.advance(now);
        if from == self.local {
            self.stats.invalid_messages += 1;
            tracing::debug!(?from, "ignored a message claiming to come from this node");
            return;
        }
        // Only members take part: a stranger's payload is not delivered or relayed, its
        // announcements and grafts are not answered. A member whose join we have not heard of
        // yet is refused too; what it sent reaches us through the members that know it.
        if !self.peers.admits(&from) {
            self.stats.from_non_members += 1;
            tracing::debug!(?from, "ignored a message from a non-member");
            return;
        }
        match message {
            Message::Gossip(gossip) => self.on_gossip(now, from, gossip),
            Message::IHave(ihave) => self.on_ihave(now, from, ihave),
            Message::Graft(graft) => self.on_graft(now, from, graft),
            Message::Prune => self.on_prune(from),
            Message::Digest(digest) => self.on_digest(now, from, digest),
            Message::Want(want) => self.on_want(now, from, want),
            Message::Repair(repair) => self.on_repair(now, from, repair),
        }
    }

    /// The caller could not send `message` to `peer` (that peer's queue was full). A payload or
    /// announcements it carried are announced to the peer again at the next IHave flush, so the
    /// peer can still graft them: a full queue delays a payload, it does not lose it. A Graft for
    /// a payload is not counted towards `graft_max_retries` (the graft timer tries again, as it
    /// would have anyway); prunes are left to later duplicates.
    pub fn handle_undelivered(&mut self, now: Instant, peer: &I, message: Message<I>) {
        let now = self.advance(now);
        match message {
            Message::Gossip(gossip) => {
                let entry = Announcement {
                    id: gossip.id,
                    round: gossip.round,
                    held_ms: 0,
                };
                self.requeue(now, peer, vec![entry]);
            }
            Message::IHave(ihave) => self.requeue(now, peer, ihave.entries),
            // Under overload the queues to every announcer can be full for longer than the
            // retries last; grafts that never left must not make the node give up.
            Message::Graft(Graft { id: Some(id) }) => {
                self.missing
                    .refund_graft(&id, now, self.config.graft_retry_timeout);
            }
            // Anti-entropy retries by itself: the next digest offers the same runs again.
            Message::Graft(_)
            | Message::Prune
            | Message::Digest(_)
            | Message::Want(_)
            | Message::Repair(_) => {}
        }
    }

    /// A round-trip time measured to `peer` (a memberlist ping, a QUIC path estimate). With
    /// [`peer_scoring`](PlumtreeConfig::peer_scoring), new eager links and repairs prefer peers
    /// with short, smoothed round trips; otherwise it is ignored.
    /// A peer need not be a member yet (pings may come before the join event); at most
    /// 65,536 peers are scored at once, and a member's score goes when it leaves.
    pub fn record_rtt(&mut self, peer: &I, rtt: Duration) {
        if *peer != self.local {
            self.peers.record_rtt(peer, rtt);
        }
    }

    /// Peers with a measured round-trip time ([`peer_scoring`](PlumtreeConfig::peer_scoring));
    /// 0 without it.
    pub fn peers_with_rtt(&self) -> usize {
        self.peers.peers_with_rtt()
    }

    /// Runs every timer due at `now`: IHave flushes, grafts for missing payloads, cache and
    /// seen-set expiry. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        if self.ihave_deadline.is_some_and(|at| at <= now) {
            self.flush_ihaves(now);
        }
        self.on_missing_timers(now);
        self.on_digest_timer(now);
        self.store.expire(now);
    }

    /// The next message to send, if any. It is always addressed to a member (as of the input
    /// that produced it): the core never answers or addresses a non-member
    /// (tests/properties.rs checks it under random inputs), so a caller can keep per-peer
    /// state for every addressee without a stranger growing it.
    pub fn poll_transmit(&mut self) -> Option<Transmit<I>> {
        self.transmits.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event<I>> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called; `None` if no timer is
    /// armed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.ihave_deadline,
            self.missing.next_deadline(),
            self.digest_deadline,
            self.store.next_expiry(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn advance(&mut self, now: Instant) -> Instant {
        let now = self.now.map_or(now, |last| last.max(now));
        self.now = Some(now);
        self.born.get_or_insert(now);
        now
    }

    /// Arms the IHave flush timer unless it is armed.
    fn arm_ihave_flush(&mut self, now: Instant) {
        if self.ihave_deadline.is_none() {
            self.ihave_deadline = Some(now + self.adaptive.ihave_interval(&self.config));
        }
    }

    /// Makes `peer` eager and asks it for `id` (or only for the link).
    fn graft(&mut self, peer: &I, id: Option<MessageId>) {
        self.make_eager(peer);
        self.send(peer.clone(), Message::Graft(Graft { id }));
        self.events
            .push_back(Event::GraftSent { peer: peer.clone() });
        self.stats.grafts_sent += 1;
    }

    /// Queues a message that must not wait behind pushed payloads: every message but a push
    /// goes out this way.
    fn send(&mut self, to: I, message: Message<I>) {
        self.transmits.push_back(Transmit {
            to,
            message,
            urgent: true,
        });
    }
}

/// Queues an IHave of `entries` for `to` and counts it. It takes the fields it needs rather than
/// the whole core so that loops over the neighbours, which hold `peers` borrowed, can call it.
fn queue_ihave<I>(
    transmits: &mut VecDeque<Transmit<I>>,
    stats: &mut Stats,
    to: I,
    entries: Vec<Announcement>,
) {
    transmits.push_back(Transmit {
        to,
        message: Message::IHave(IHave { entries }),
        urgent: true,
    });
    stats.ihave_sent += 1;
}
