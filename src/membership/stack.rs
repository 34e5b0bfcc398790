//! [`MemberlistStack`]: a Plumtree node whose peers come from a memberlist instance.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use memberlist::Memberlist;
use memberlist::delegate::Delegate;
use memberlist::proto::{Data, MaybeResolvedAddress};
use memberlist::transport::{Id, Transport as MlTransport};

use super::bridge::{PeerBook, PeerInfo};
use super::delegate::PlumtreeNodeDelegate;
use super::guard::{GuardStats, Shared};
use super::topics::TopicDirectory;
use super::transport::MemberlistTransport;
use crate::runtime::{PlumtreeDelegate, Transport};
use crate::{
    BroadcastError, ConfigError, MessageId, NodeId, PlumtreeConfig, PlumtreeMemberlist, StartError,
    Topic, TopicError, TopicId,
};

/// What went wrong building, joining or leaving a [`MemberlistStack`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    /// A configuration did not validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The Plumtree node could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A topic could not be joined.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The memberlist's delegate drives another Plumtree node than the one given.
    #[error("the memberlist's PlumtreeNodeDelegate was made for another node")]
    DelegateMismatch,
    /// Not one seed could be reached.
    #[error("could not join any of {seeds} seeds: {reason}")]
    Join {
        /// Seeds tried.
        seeds: usize,
        /// memberlist's error.
        reason: String,
    },
    /// The leave was not confirmed sent within the timeout; the node has still left (it will
    /// not rejoin by itself), the others may learn it only through failure detection.
    #[error("timed out announcing the leave")]
    LeaveTimeout,
    /// memberlist failed (creating, leaving or shutting down), described.
    #[error("memberlist: {0}")]
    Memberlist(String),
}

/// The memberlist instance inside a [`MemberlistStack`]: a `Memberlist` whose delegate is a
/// [`PlumtreeNodeDelegate`] (named for that delegate, to tell it from the stack around it).
pub type DelegatedMemberlist<T, D> = Memberlist<
    T,
    PlumtreeNodeDelegate<<T as MlTransport>::Id, <T as MlTransport>::ResolvedAddress, D>,
>;

/// A Plumtree node coupled to memberlist: SWIM joins, leaves and failures become peer changes.
///
/// Build one with [`builder`](MemberlistStack::builder) for the common case (memberlist over
/// UDP+TCP, Plumtree frames over memberlist too), or with [`new`](Self::new) from a
/// [`PlumtreeMemberlist`] and a memberlist you created with a [`PlumtreeNodeDelegate`]; then
/// [`start`](Self::start) it with a transport and [`join`](Self::join) seeds.
/// docs/getting-started.md walks through both.
pub struct MemberlistStack<I: NodeId + Id + Data, PD, T: MlTransport<Id = I>, D>
where
    D: Delegate<Id = I, Address = T::ResolvedAddress>,
{
    plumtree: Arc<PlumtreeMemberlist<I, PD>>,
    memberlist: DelegatedMemberlist<T, D>,
    book: Arc<PeerBook<I, T::ResolvedAddress>>,
    /// Which members are in which topic; this node's topics.
    topics: Arc<TopicDirectory<I>>,
    /// The stream guard of a stack made by the builder, for its counters and message limit.
    guard: Option<Arc<Shared>>,
    /// The longest message memberlist's streams accept, when Plumtree frames ride on them
    /// (builder stacks without QUIC): a topic's frames must fit too.
    frame_limit: Option<usize>,
    /// The task that joins departed members again (`BridgeConfig::reconnect_interval`).
    reconnect: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl<I: NodeId + Id + Data, PD, T: MlTransport<Id = I>, D> std::fmt::Debug
    for MemberlistStack<I, PD, T, D>
where
    D: Delegate<Id = I, Address = T::ResolvedAddress>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberlistStack")
            .field("local", self.memberlist.local_id())
            .finish_non_exhaustive()
    }
}

impl<I: NodeId + Id + Data, PD, T: MlTransport<Id = I>, D> Drop for MemberlistStack<I, PD, T, D>
where
    D: Delegate<Id = I, Address = T::ResolvedAddress>,
{
    fn drop(&mut self) {
        // The reconnect task holds only memberlist handles: it must not outlive the stack.
        if let Some(task) = self
            .reconnect
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

impl<I, PD, T, D> MemberlistStack<I, PD, T, D>
where
    I: NodeId + Id + Data,
    PD: PlumtreeDelegate<I>,
    T: MlTransport<Id = I>,
    D: Delegate<Id = I, Address = T::ResolvedAddress>,
{
    /// Couples `plumtree` to `memberlist`, whose delegate must have been made from `plumtree`
    /// with [`PlumtreeNodeDelegate::new`]. Nothing runs until [`start`](Self::start); membership
    /// events that arrive before are kept for it.
    ///
    /// # Errors
    /// [`StackError::DelegateMismatch`] if the delegate was made for another node.
    pub fn new(
        plumtree: Arc<PlumtreeMemberlist<I, PD>>,
        memberlist: DelegatedMemberlist<T, D>,
    ) -> Result<Self, StackError> {
        let delegate = memberlist.delegate().ok_or(StackError::DelegateMismatch)?;
        if delegate.local_id() != plumtree.local_id()
            || memberlist.local_id() != plumtree.local_id()
        {
            return Err(StackError::DelegateMismatch);
        }
        let book = Arc::clone(delegate.book());
        let topics = Arc::clone(delegate.topics());
        Ok(Self {
            plumtree,
            memberlist,
            book,
            topics,
            guard: None,
            frame_limit: None,
            reconnect: std::sync::Mutex::default(),
        })
    }

    pub(crate) fn set_guard(&mut self, guard: Arc<Shared>) {
        self.guard = Some(guard);
    }

    pub(crate) fn set_frame_limit(&mut self, limit: Option<usize>) {
        self.frame_limit = limit;
    }

    /// What the stream guard has refused so far, for a stack made by
    /// [`builder`](Self::builder) (`build`, `build_tls` or `build_quic`); `None` for one made
    /// with [`new`](Self::new), whose transport the stack does not know.
    pub fn guard_stats(&self) -> Option<GuardStats> {
        self.guard.as_ref().map(|guard| guard.stats())
    }

    /// Starts the Plumtree node's tasks, sending frames through `transport`: a
    /// [`memberlist_transport`](Self::memberlist_transport), a `ChannelTransport`, or your own.
    ///
    /// # Errors
    /// As [`PlumtreeMemberlist::start`].
    pub fn start(&self, transport: impl Transport<I>) -> Result<(), StartError> {
        self.plumtree.start(transport)?;
        self.start_reconnect();
        Ok(())
    }

    /// Spawns the task that joins departed members again, every
    /// `BridgeConfig::reconnect_interval` (see there why).
    fn start_reconnect(&self) {
        let Some(bridge) = self.memberlist.delegate().map(|d| d.bridge().clone()) else {
            return;
        };
        if bridge.reconnect_interval.is_zero() {
            return;
        }
        let memberlist = self.memberlist.clone();
        let book = Arc::clone(&self.book);
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(bridge.reconnect_interval).await;
                for (id, address) in book.departed(bridge.reconnect_timeout) {
                    match memberlist
                        .join(MaybeResolvedAddress::Resolved(address))
                        .await
                    {
                        Ok(_) => tracing::info!(peer = %id, "joined a departed member again"),
                        Err(memberlist::error::Error::NotRunning) => return,
                        Err(error) => {
                            tracing::debug!(peer = %id, %error, "departed member still unreachable");
                        }
                    }
                }
            }
        });
        let old = self
            .reconnect
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(task);
        if let Some(old) = old {
            old.abort();
        }
    }

    /// Finds a peer's Plumtree transport address (its `BridgeConfig::transport_addr`) in the
    /// metadata memberlist gossips: the resolver for a transport that listens on its own
    /// address, such as `QuicTransport::set_resolver`.
    pub fn transport_resolver(
        &self,
    ) -> impl Fn(&I) -> Option<std::net::SocketAddr> + Send + Sync + 'static {
        let book = Arc::clone(&self.book);
        move |peer| book.transport_addr(peer)
    }

    /// A transport that carries Plumtree frames as memberlist reliable user messages.
    pub fn memberlist_transport(&self) -> MemberlistTransport<T, D> {
        let limit = self
            .guard
            .as_ref()
            .map_or(usize::MAX, |guard| guard.max_message_size());
        MemberlistTransport::new(self.memberlist.clone(), Arc::clone(&self.book), limit)
    }

    /// Joins the cluster through `seeds` (any one reachable seed is enough). Returns how many
    /// answered.
    ///
    /// # Errors
    /// [`StackError::Join`] if none could be reached.
    pub async fn join(&self, seeds: &[T::Address]) -> Result<usize, StackError> {
        if seeds.is_empty() {
            return Ok(0);
        }
        let addresses = seeds
            .iter()
            .map(|seed| MaybeResolvedAddress::Unresolved(seed.clone()));
        match self.memberlist.join_many(addresses).await {
            Ok(joined) => Ok(joined.len()),
            Err((joined, _)) if !joined.is_empty() => Ok(joined.len()),
            Err((_, error)) => Err(StackError::Join {
                seeds: seeds.len(),
                reason: error.to_string(),
            }),
        }
    }

    /// Broadcasts `payload` to the cluster (see [`PlumtreeMemberlist::broadcast`]).
    ///
    /// # Errors
    /// As `PlumtreeMemberlist::broadcast`.
    pub async fn broadcast(&self, payload: impl Into<Bytes>) -> Result<MessageId, BroadcastError> {
        self.plumtree.broadcast(payload).await
    }

    /// Joins `topic` (see [`PlumtreeMemberlist::join_topic`]): the members that joined it
    /// become its peers, and this node tells the others it joined, in its memberlist metadata,
    /// waiting at most `timeout` for the news to go out (zero: not at all; if it does not go
    /// out in time, that is logged, and SWIM's next syncs carry it). Members that join the
    /// topic later become peers as SWIM tells of them.
    ///
    /// # Errors
    /// [`StackError::Topic`] as `PlumtreeMemberlist::join_topic`; [`StackError::Config`] when
    /// frames ride on memberlist and the topic's longest frame (its `max_message_size`,
    /// `ihave_batch_size`) does not fit in the stream guard's `max_message_size`, as the
    /// builder checks for the default topic.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f(stack: memberlist_plumtree::TcpStack<u64, memberlist_plumtree::NoopDelegate>)
    /// # -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use memberlist_plumtree::{NoopDelegate, PlumtreeConfig, TopicId};
    ///
    /// let chat = stack
    ///     .join_topic(TopicId::named("chat"), PlumtreeConfig::lan(), NoopDelegate, Duration::from_secs(1))
    ///     .await?;
    /// chat.broadcast(&b"hello, chat"[..]).await?;
    /// # Ok(()) }
    /// # let _ = f;
    /// ```
    pub async fn join_topic<E: PlumtreeDelegate<I>>(
        &self,
        topic: TopicId,
        config: PlumtreeConfig,
        delegate: E,
        timeout: Duration,
    ) -> Result<Topic<I, E>, StackError> {
        if let Some(limit) = self.frame_limit {
            super::transport::check_frames_fit(&config, limit)?;
        }
        let joined = self.plumtree.join_topic(topic, config, delegate)?;
        self.topics.join(topic, joined.inputs());
        self.publish_topics(timeout).await;
        Ok(joined)
    }

    /// Leaves `topic`: stops it (see [`PlumtreeMemberlist::leave_topic`]) and tells the others,
    /// waiting at most `timeout` for the news to go out (as for `join_topic`). False if this
    /// node was not in it. Until the others hear, their frames of the topic reach this node and
    /// are dropped (`NodeStats::unrouted_frames`).
    pub async fn leave_topic(&self, topic: TopicId, timeout: Duration) -> bool {
        self.topics.leave(topic);
        if !self.plumtree.leave_topic(topic).await {
            return false;
        }
        self.publish_topics(timeout).await;
        true
    }

    /// Re-advertises this node, so that its metadata (the topics it is in) reaches the others.
    /// A zero `timeout` does not wait (memberlist would wait without bound).
    async fn publish_topics(&self, timeout: Duration) {
        match self
            .memberlist
            .update_node(timeout.max(Duration::from_millis(1)))
            .await
        {
            Ok(()) => {}
            Err(memberlist::error::Error::UpdateTimeout) if timeout.is_zero() => {}
            Err(error) => {
                tracing::warn!(%error, "topic membership not yet sent; SWIM's syncs will carry it");
            }
        }
    }

    /// The members that are currently Plumtree peers (this node excluded), sorted.
    pub fn members(&self) -> Vec<I> {
        let mut ids = self.book.ids();
        ids.sort();
        ids
    }

    /// What memberlist told us about `peer`: address, metadata, last ping round-trip time.
    pub fn peer(&self, peer: &I) -> Option<PeerInfo<T::ResolvedAddress>> {
        self.book.get(peer)
    }

    /// Leaves the cluster gracefully: tells the others, waiting at most `timeout` for the news
    /// to go out. The node keeps running until [`shutdown`](Self::shutdown).
    ///
    /// # Errors
    /// [`StackError::LeaveTimeout`] if memberlist could not announce it in time (for
    /// instance because no other member is left to tell).
    pub async fn leave(&self, timeout: Duration) -> Result<(), StackError> {
        match self.memberlist.leave(timeout).await {
            Ok(_) => Ok(()),
            Err(memberlist::error::Error::LeaveTimeout) => Err(StackError::LeaveTimeout),
            Err(e) => Err(StackError::Memberlist(e.to_string())),
        }
    }

    /// Stops memberlist and every task of the Plumtree node, and waits for them. Without a
    /// [`leave`](Self::leave) first, the others notice only by failure detection.
    ///
    /// # Errors
    /// [`StackError::Memberlist`] if memberlist's transport failed to close; the Plumtree node
    /// is stopped anyway.
    pub async fn shutdown(&self) -> Result<(), StackError> {
        let reconnect = self
            .reconnect
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = reconnect {
            task.abort();
            let _ = task.await;
        }
        let result = self.memberlist.shutdown().await;
        self.plumtree.shutdown().await;
        result.map_err(|e| StackError::Memberlist(e.to_string()))
    }

    /// The Plumtree node: stats, deliveries, manual sends.
    pub fn plumtree(&self) -> &Arc<PlumtreeMemberlist<I, PD>> {
        &self.plumtree
    }

    /// The memberlist instance: its address, full member table, user messages.
    pub fn memberlist(&self) -> &DelegatedMemberlist<T, D> {
        &self.memberlist
    }
}
