//! [`PlumtreeNodeDelegate`]: the memberlist delegate that turns SWIM events into Plumtree peers
//! and wraps the application's own memberlist delegate.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use memberlist::delegate::{
    AliveDelegate, ConflictDelegate, Delegate, EventDelegate, MergeDelegate, NodeDelegate,
    PingDelegate, VoidDelegate,
};
use memberlist::proto::{Meta, NodeState};
use memberlist::transport::{CheapClone, Id};

use super::bridge::{BridgeConfig, PeerBook};
use super::meta::{META_MAX_SIZE, NodeMeta};
use super::topics::TopicDirectory;
use super::user_message;
use crate::runtime::PlumtreeDelegate;
use crate::{ConfigError, NodeId, NodeInputs, NoopDelegate, PlumtreeMemberlist};

/// Turns what the application passes as its memberlist delegate into one memberlist accepts.
///
/// Any memberlist [`Delegate`] passes through unchanged; [`NoopDelegate`] becomes memberlist's
/// `VoidDelegate`, for applications with nothing of their own to hook into memberlist.
pub trait IntoMemberlistDelegate<I, A> {
    /// The memberlist delegate this turns into.
    type Delegate: Delegate<Id = I, Address = A>;

    /// Does the conversion.
    fn into_delegate(self) -> Self::Delegate;
}

impl<D: Delegate> IntoMemberlistDelegate<<D as Delegate>::Id, <D as Delegate>::Address> for D {
    type Delegate = D;

    fn into_delegate(self) -> D {
        self
    }
}

impl<I, A> IntoMemberlistDelegate<I, A> for NoopDelegate
where
    I: Id + Send + Sync + 'static,
    A: CheapClone + Send + Sync + 'static,
{
    type Delegate = VoidDelegate<I, A>;

    fn into_delegate(self) -> VoidDelegate<I, A> {
        VoidDelegate::new()
    }
}

/// The memberlist delegate of a [`MemberlistStack`](super::MemberlistStack).
///
/// It keeps the Plumtree node's peers in step with memberlist: a join adds a peer, a leave or a
/// death removes it, and ping round-trip times are recorded per peer. It publishes this node's
/// [`NodeMeta`] and receives Plumtree frames sent as memberlist user messages. Everything else
/// (and every event, after it is recorded) goes to the wrapped application delegate.
///
/// memberlist calls the event callbacks while it holds its node table lock, so they only send on
/// channels and update a map: they never call back into memberlist.
#[derive(Debug)]
pub struct PlumtreeNodeDelegate<I, A, D> {
    local: I,
    inner: D,
    node: NodeInputs<I>,
    book: Arc<PeerBook<I, A>>,
    topics: Arc<TopicDirectory<I>>,
    bridge: BridgeConfig,
}

impl<I: NodeId + Id, A: CheapClone + Send + Sync + 'static, D: Delegate<Id = I, Address = A>>
    PlumtreeNodeDelegate<I, A, D>
{
    /// A delegate that drives `plumtree` and forwards to `inner` (pass [`NoopDelegate`] if you
    /// have no memberlist delegate of your own), with the default [`BridgeConfig`].
    pub fn new<PD: PlumtreeDelegate<I>>(
        plumtree: &PlumtreeMemberlist<I, PD>,
        inner: impl IntoMemberlistDelegate<I, A, Delegate = D>,
    ) -> Self {
        Self {
            local: plumtree.local_id().clone(),
            inner: inner.into_delegate(),
            node: plumtree.inputs(),
            book: Arc::new(PeerBook::new()),
            topics: Arc::new(TopicDirectory::new(plumtree.runtime_config().max_topics)),
            bridge: BridgeConfig::default(),
        }
    }

    /// Replaces the [`BridgeConfig`].
    ///
    /// # Errors
    /// [`ConfigError`] if it does not validate.
    pub fn with_bridge(mut self, bridge: BridgeConfig) -> Result<Self, ConfigError> {
        bridge.validate()?;
        self.bridge = bridge;
        Ok(self)
    }

    /// The wrapped application delegate.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    pub(crate) fn local_id(&self) -> &I {
        &self.local
    }

    pub(crate) fn book(&self) -> &Arc<PeerBook<I, A>> {
        &self.book
    }

    pub(crate) fn bridge(&self) -> &BridgeConfig {
        &self.bridge
    }

    pub(crate) fn topics(&self) -> &Arc<TopicDirectory<I>> {
        &self.topics
    }

    /// Records a member that is alive (joined, or updated), making it a peer if it is new.
    fn member_alive(&self, node: &NodeState<I, A>) {
        if node.id() == &self.local {
            return;
        }
        let meta = match NodeMeta::decode(node.meta()) {
            Ok(meta) => meta,
            Err(_) if !self.bridge.plumtree_only => NodeMeta {
                transport_addr: None,
                topics: Vec::new(),
                app: Bytes::copy_from_slice(node.meta()),
            },
            Err(error) => {
                tracing::debug!(peer = %node.id(), %error, "member is not a Plumtree peer");
                return;
            }
        };
        self.topics.member(node.id(), &meta.topics);
        if self
            .book
            .upsert(node.id().clone(), node.address().cheap_clone(), meta)
        {
            self.node.add_peer(node.id().clone());
        }
    }
}

/// The impl header every memberlist delegate trait shares here; with `ids`, the trait's `Id` and
/// `Address` types too. The methods a trait does not intercept forward to the inner delegate.
macro_rules! delegate_impl {
    ($trait:ident, ids { $($body:tt)* }) => {
        delegate_impl! { $trait { type Id = I; type Address = A; $($body)* } }
    };
    ($trait:ident { $($body:tt)* }) => {
        impl<I, A, D> $trait for PlumtreeNodeDelegate<I, A, D>
        where
            I: NodeId + Id,
            A: CheapClone + Send + Sync + 'static,
            D: Delegate<Id = I, Address = A>,
        {
            $($body)*
        }
    };
}

delegate_impl! { NodeDelegate {
    async fn node_meta(&self, limit: usize) -> Meta {
        let limit = limit.min(META_MAX_SIZE);
        let mut topics = self.topics.local_topics();
        while NodeMeta::header_len(self.bridge.transport_addr, &topics) > limit {
            // Only a max_topics far above the default gets here; memberlist would panic.
            let dropped = topics.pop();
            tracing::error!(topic = ?dropped, "too many topics for the node metadata; not published");
        }
        let header = NodeMeta::header_len(self.bridge.transport_addr, &topics);
        let app = self.inner.node_meta(limit.saturating_sub(header)).await;
        let app = if header + app.len() > limit {
            // memberlist panics on oversized metadata; publishing ours alone keeps the node usable.
            tracing::error!(
                len = app.len(),
                room = limit.saturating_sub(header),
                "application metadata too large; published without it"
            );
            Bytes::new()
        } else {
            Bytes::copy_from_slice(&app)
        };
        let encoded = NodeMeta {
            transport_addr: self.bridge.transport_addr,
            topics,
            app,
        }
        .encode();
        Meta::try_from(encoded).unwrap_or_default()
    }

    async fn notify_message(&self, msg: Cow<'_, [u8]>) {
        if !user_message::carries_frames(&msg) {
            return self.inner.notify_message(msg).await;
        }
        // One copy (none if memberlist hands over its buffer); the frames are views of it.
        let message = match msg {
            Cow::Owned(owned) => Bytes::from(owned),
            Cow::Borrowed(borrowed) => Bytes::copy_from_slice(borrowed),
        };
        for frame in user_message::decode(message) {
            // Waiting here slows this stream's reader when the node is behind: backpressure to
            // the sender instead of a dropped frame.
            if self.node.handle_frame(frame).await.is_err() {
                break;
            }
        }
    }

    async fn broadcast_messages<F>(
        &self,
        limit: usize,
        encoded_len: F,
    ) -> impl Iterator<Item = Bytes> + Send
    where
        F: Fn(Bytes) -> (usize, Bytes) + Send + Sync + 'static,
    {
        self.inner.broadcast_messages(limit, encoded_len).await
    }

    async fn local_state(&self, join: bool) -> Bytes {
        self.inner.local_state(join).await
    }

    async fn merge_remote_state(&self, buf: &[u8], join: bool) {
        self.inner.merge_remote_state(buf, join).await
    }
}}

delegate_impl! { PingDelegate, ids {
    async fn ack_payload(&self) -> Bytes {
        self.inner.ack_payload().await
    }

    async fn notify_ping_complete(
        &self,
        node: Arc<NodeState<I, A>>,
        rtt: Duration,
        payload: Bytes,
    ) {
        self.book.record_rtt(node.id(), rtt);
        // For peer scoring (PlumtreeConfig::peer_scoring); ignored by the core without it.
        if node.id() != &self.local {
            self.node.record_rtt(node.id().clone(), rtt);
        }
        self.inner.notify_ping_complete(node, rtt, payload).await
    }

    fn disable_reliable_pings(&self, target: &I) -> bool {
        self.inner.disable_reliable_pings(target)
    }
}}

delegate_impl! { EventDelegate, ids {
    async fn notify_join(&self, node: Arc<NodeState<I, A>>) {
        self.member_alive(&node);
        self.inner.notify_join(node).await
    }

    async fn notify_leave(&self, node: Arc<NodeState<I, A>>) {
        if node.id() != &self.local && self.book.remove(node.id()) {
            self.node.remove_peer(node.id().clone());
            self.topics.remove(node.id());
        }
        self.inner.notify_leave(node).await
    }

    async fn notify_update(&self, node: Arc<NodeState<I, A>>) {
        self.member_alive(&node);
        self.inner.notify_update(node).await
    }
}}

delegate_impl! { ConflictDelegate, ids {
    async fn notify_conflict(&self, existing: Arc<NodeState<I, A>>, other: Arc<NodeState<I, A>>) {
        self.inner.notify_conflict(existing, other).await
    }
}}

delegate_impl! { AliveDelegate, ids {
    type Error = <D as AliveDelegate>::Error;

    async fn notify_alive(&self, peer: Arc<NodeState<I, A>>) -> Result<(), Self::Error> {
        self.inner.notify_alive(peer).await
    }
}}

delegate_impl! { MergeDelegate, ids {
    type Error = <D as MergeDelegate>::Error;

    async fn notify_merge(&self, peers: Arc<[NodeState<I, A>]>) -> Result<(), Self::Error> {
        self.inner.notify_merge(peers).await
    }
}}

delegate_impl! { Delegate, ids {}}
