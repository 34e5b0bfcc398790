//! [`PlumtreeMemberlist`]: one protocol core driven by tokio.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::broadcasts::{self, BroadcastQueue, BroadcastSender};
use super::delegate::PlumtreeDelegate;
use super::driver::Control;
use super::inbound::{self, FrameSink, Inbound, InboundError};
use super::options::RuntimeConfig;
use super::stats::NodeStats;
use super::topics::{DriverParts, Routes, StartDriver, Starter, Topic, TopicError, Topics};
use super::transport::Transport;
use crate::proto::{Delivery, Plumtree};
use crate::{BroadcastError, ConfigError, Frame, MessageId, NodeId, PlumtreeConfig, TopicId};

/// Why [`PlumtreeMemberlist::start`] failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// `start` was called before.
    #[error("the node was already started")]
    AlreadyStarted,
    /// `start` was called outside a tokio runtime.
    #[error("start must be called from within a tokio runtime")]
    NoRuntime,
}

/// A live Plumtree node: the protocol core, its timers, per-peer send queues, and the delegate.
///
/// Peers and received frames come in through its [`NodeInputs`] ([`inputs`](Self::inputs)):
/// by hand, from your own membership, or from SWIM in `MemberlistStack`. Frames to send leave
/// through the [`Transport`] given to [`start`](Self::start).
///
/// # Tasks
/// [`start`](Self::start) spawns a protocol task (owns the core, so it needs no lock), a delivery
/// task (calls the delegate), and one send task per peer. [`shutdown`](Self::shutdown) stops all
/// of them and waits; dropping the node stops them too. docs/background-tasks.md has details.
#[derive(Debug)]
pub struct PlumtreeMemberlist<I: NodeId, D> {
    local: I,
    /// The default topic for a node, another for a topic's own node (see [`Topic`]).
    topic: TopicId,
    /// Set when a topic's node was left: its broadcasts fail with `NotJoined`.
    left: AtomicBool,
    /// The topics this node joined (unused in a topic's own node).
    topics: Topics<I>,
    /// Kept for the topics this node joins: each signs with them (under its topic).
    #[cfg(feature = "signing")]
    origin_keys: Option<crate::OriginKeys<I>>,
    inputs: NodeInputs<I>,
    broadcasts: BroadcastSender,
    config: PlumtreeConfig,
    /// Set by `start`: before it, nothing would take the queued broadcasts.
    started: AtomicBool,
    delegate: Arc<D>,
    runtime: RuntimeConfig,
    /// Everything the tasks take over at `start`.
    parts: Mutex<Option<Parts<I>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    stream_taken: Arc<AtomicBool>,
}

#[derive(Debug)]
struct Parts<I: NodeId> {
    core: Plumtree<I>,
    control: mpsc::UnboundedReceiver<Control<I>>,
    frames: Inbound,
    broadcasts: BroadcastQueue,
    stream: (
        mpsc::Sender<Delivery<I>>,
        Option<mpsc::Receiver<Delivery<I>>>,
    ),
}

impl<I: NodeId, D: PlumtreeDelegate<I>> PlumtreeMemberlist<I, D> {
    /// A node with the default [`RuntimeConfig`]. Call [`start`](Self::start) to run it.
    ///
    /// # Errors
    /// [`ConfigError`] if `config` does not validate.
    pub fn new(local: I, config: PlumtreeConfig, delegate: D) -> Result<Self, ConfigError> {
        Self::with_runtime_config(local, config, RuntimeConfig::default(), delegate)
    }

    /// A node with explicit runtime queue sizes.
    ///
    /// # Errors
    /// [`ConfigError`] if either config does not validate.
    pub fn with_runtime_config(
        local: I,
        config: PlumtreeConfig,
        runtime: RuntimeConfig,
        delegate: D,
    ) -> Result<Self, ConfigError> {
        Self::build(local, TopicId::DEFAULT, None, config, runtime, delegate)
    }

    /// A node of `topic`, whose received frames come through `routes` (a new table for a node
    /// of the default topic).
    fn build(
        local: I,
        topic: TopicId,
        routes: Option<Arc<Routes>>,
        config: PlumtreeConfig,
        runtime: RuntimeConfig,
        delegate: D,
    ) -> Result<Self, ConfigError> {
        runtime.validate()?;
        let core = Plumtree::new(local.clone(), config.clone())?;
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (sink, frames) = inbound::channel(runtime.inbound_bytes, Arc::default());
        let routes = routes.unwrap_or_else(|| Arc::new(Routes::new(sink.clone())));
        let (broadcasts_tx, broadcasts_rx) =
            broadcasts::channel(runtime.broadcast_capacity, core.ids());
        let (stream_tx, stream_rx) = mpsc::channel(runtime.delivery_capacity);
        Ok(Self {
            local,
            topic,
            left: AtomicBool::new(false),
            topics: Topics::new(),
            #[cfg(feature = "signing")]
            origin_keys: None,
            inputs: NodeInputs {
                control: control_tx,
                sink,
                routes,
            },
            broadcasts: broadcasts_tx,
            config,
            started: AtomicBool::new(false),
            delegate: Arc::new(delegate),
            runtime,
            parts: Mutex::new(Some(Parts {
                core,
                control: control_rx,
                frames,
                broadcasts: broadcasts_rx,
                stream: (stream_tx, Some(stream_rx)),
            })),
            tasks: Mutex::new(Vec::new()),
            stream_taken: Arc::default(),
        })
    }

    /// Signs this node's broadcasts with `keys` and delivers only payloads whose origin signed
    /// them with a key in `keys` (see [`Plumtree::with_origin_keys`]). Before
    /// [`start`](Self::start).
    ///
    /// # Errors
    /// [`ConfigError::Inconsistent`] when `keys` belong to another node id, or the node has
    /// started.
    #[cfg(feature = "signing")]
    pub fn with_origin_keys(mut self, keys: crate::OriginKeys<I>) -> Result<Self, ConfigError> {
        self.origin_keys = Some(keys.clone());
        {
            let mut slot = self
                .parts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut parts = slot
                .take()
                .ok_or(ConfigError::Inconsistent("origin keys after start"))?;
            parts.core = parts.core.with_origin_keys(keys)?;
            *slot = Some(parts);
        }
        Ok(self)
    }

    /// Its runtime config.
    pub fn runtime_config(&self) -> &RuntimeConfig {
        &self.runtime
    }

    /// This node's id.
    pub fn local_id(&self) -> &I {
        &self.local
    }

    /// Starts the background tasks, sending through `transport`.
    ///
    /// # Errors
    /// [`StartError`] if already started or not inside a tokio runtime.
    pub fn start<T: Transport<I>>(&self, transport: T) -> Result<(), StartError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        let transport = Arc::new(transport);
        let starter: Arc<dyn StartDriver<I>> = Arc::new(Starter {
            transport: Arc::clone(&transport),
            handle,
        });
        self.launch(&*starter)?;
        transport.attach(self.inputs.clone());
        self.topics.started(starter);
        Ok(())
    }

    /// Spawns the protocol and delivery tasks of this node (of its topic).
    pub(super) fn launch(&self, starter: &dyn StartDriver<I>) -> Result<(), StartError> {
        let parts = self
            .parts
            .lock()
            .expect("not poisoned")
            .take()
            .ok_or(StartError::AlreadyStarted)?;
        let (events_tx, events_rx) = mpsc::channel(event_batches(self.runtime.delivery_capacity));
        let protocol = starter.spawn(DriverParts {
            topic: self.topic,
            core: parts.core,
            runtime: self.runtime.clone(),
            events: events_tx,
            counters: Arc::clone(&self.inputs.sink.counters),
            control: parts.control,
            frames: parts.frames,
            broadcasts: parts.broadcasts,
        });
        let delivery = starter.handle().spawn(super::delivery::deliver(
            events_rx,
            Arc::clone(&self.delegate),
            parts.stream.0,
            Arc::clone(&self.stream_taken),
        ));
        self.tasks
            .lock()
            .expect("not poisoned")
            .extend([protocol, delivery]);
        self.started.store(true, Ordering::Release);
        Ok(())
    }

    /// Joins `topic`: from now on this node takes part in its broadcasts, with its own protocol
    /// core (under `config`), queues (this node's [`RuntimeConfig`]) and `delegate`, sending
    /// through this node's transport. Tell the topic which peers joined it through
    /// [`Topic::inputs`]; `MemberlistStack::join_topic` does that from membership and tells the
    /// other members. With origin keys, the topic's broadcasts are signed, under the topic's id.
    ///
    /// # Errors
    /// [`TopicError`]: the default topic, a topic joined already, more than
    /// [`RuntimeConfig::max_topics`], a node not started, or a `config` that does not validate.
    pub fn join_topic<E: PlumtreeDelegate<I>>(
        &self,
        topic: TopicId,
        config: PlumtreeConfig,
        delegate: E,
    ) -> Result<Topic<I, E>, TopicError> {
        if topic.is_default() {
            return Err(TopicError::Default);
        }
        if !self.started.load(Ordering::Acquire) {
            return Err(TopicError::NotRunning);
        }
        let node = PlumtreeMemberlist::build(
            self.local.clone(),
            topic,
            Some(Arc::clone(&self.inputs.routes)),
            config,
            self.runtime.clone(),
            delegate,
        )?;
        #[cfg(feature = "signing")]
        let node = match &self.origin_keys {
            Some(keys) => node.with_origin_keys(keys.for_topic(topic))?,
            None => node,
        };
        self.topics
            .join(&self.inputs.routes, topic, node, self.runtime.max_topics)
    }

    /// Leaves `topic`: stops its tasks (as [`shutdown`](Self::shutdown) does) and drops its
    /// frames from now on. False if the node was not in it.
    ///
    /// # Cancel safety
    /// Cancel safe: the topic is left anyway.
    pub async fn leave_topic(&self, topic: TopicId) -> bool {
        self.topics.leave(&self.inputs.routes, topic).await
    }

    /// The topics this node joined, with their inputs (for a membership source that tells each
    /// topic its peers).
    pub fn joined_topics(&self) -> Vec<(TopicId, NodeInputs<I>)> {
        self.topics.joined()
    }

    /// The delegate.
    pub(super) fn delegate(&self) -> &D {
        &self.delegate
    }

    /// This node's own inbound queue.
    pub(super) fn own_sink(&self) -> &FrameSink {
        &self.inputs.sink
    }

    /// Marks a topic's node as left: broadcasts fail with `NotJoined` from now on.
    pub(super) fn mark_left(&self) {
        self.left.store(true, Ordering::Release);
    }

    /// Deliveries as a stream, for `while let Some(d) = deliveries.recv().await`. Available once,
    /// before [`start`](Self::start) (otherwise `None`); the delegate is still called. Once taken,
    /// a reader that falls `delivery_capacity` behind makes the node wait for it.
    pub fn deliveries(&self) -> Option<Deliveries<I>> {
        let stream = self.stream_receiver()?;
        Some(self.feed(stream))
    }

    /// The delivery stream's receiving end, before start; nothing is fed to it yet.
    pub(super) fn stream_receiver(&self) -> Option<mpsc::Receiver<Delivery<I>>> {
        let mut parts = self.parts.lock().expect("not poisoned");
        parts.as_mut()?.stream.1.take()
    }

    /// Starts feeding the delivery stream whose receiving end is `rx`.
    pub(super) fn feed(&self, rx: mpsc::Receiver<Delivery<I>>) -> Deliveries<I> {
        self.stream_taken.store(true, Ordering::Release);
        Deliveries { rx }
    }

    /// Broadcasts `payload` to the cluster, waiting while the node is congested.
    ///
    /// The node takes broadcasts no faster than its cache can keep them for repairs
    /// ([`Plumtree::broadcast_room_at`](crate::Plumtree::broadcast_room_at): about 11,800 a
    /// second over the whole cluster with `PlumtreeConfig::default()`, more with a larger
    /// `message_cache_max_size`), nor while a neighbour's send queue is congested; a sender
    /// faster than that waits here, so that nothing it was told is `Ok` is lost.
    ///
    /// Returns the payload's id once the node has queued it (at most
    /// [`broadcast_capacity`](RuntimeConfig::broadcast_capacity) wait): the protocol task then
    /// delivers it locally and sends it, also if the node is shut down in between. Naming the
    /// broadcast here, instead of waiting for the protocol task to answer, spares a sender on
    /// another thread a wake-up per broadcast.
    ///
    /// # Errors
    /// [`BroadcastError::PayloadTooLarge`], or [`BroadcastError::Closed`] if the node is not
    /// running (not started, or shut down).
    ///
    /// # Cancel safety
    /// Cancel safe: if cancelled, nothing was broadcast.
    pub async fn broadcast(&self, payload: impl Into<Bytes>) -> Result<MessageId, BroadcastError> {
        let payload = self.checked(payload.into())?;
        self.broadcasts.send(payload).await
    }

    /// Like [`broadcast`](Self::broadcast), but fails at once instead of waiting for room.
    ///
    /// # Errors
    /// [`BroadcastError::Backpressure`] when the node cannot take more now; otherwise as
    /// `broadcast`.
    pub fn try_broadcast(&self, payload: impl Into<Bytes>) -> Result<MessageId, BroadcastError> {
        let payload = self.checked(payload.into())?;
        self.broadcasts.try_send(payload)
    }

    fn checked(&self, payload: Bytes) -> Result<Bytes, BroadcastError> {
        if self.left.load(Ordering::Acquire) {
            return Err(BroadcastError::NotJoined(self.topic));
        }
        if !self.started.load(Ordering::Acquire) {
            return Err(BroadcastError::Closed);
        }
        self.config.check_payload(payload.len())?;
        Ok(payload)
    }

    /// The node's inputs: peer changes, round trips and received frames. A membership source
    /// (memberlist's delegate in `MemberlistStack`, or your own) and a transport that receives
    /// on its own each hold one; holding it does not keep the node running.
    pub fn inputs(&self) -> NodeInputs<I> {
        self.inputs.clone()
    }

    /// A snapshot of the node's state; `None` if it is not running.
    pub async fn stats(&self) -> Option<NodeStats<I>> {
        let (reply, answer) = oneshot::channel();
        self.inputs.control.send(Control::Stats(reply)).ok()?;
        let mut stats = answer.await.ok()?;
        stats.unrouted_frames = self.inputs.routes.unrouted();
        Some(stats)
    }

    /// Stops every task of this node and waits for them to end.
    ///
    /// # Cancel safety
    /// Cancel safe: the tasks stop anyway.
    pub async fn shutdown(&self) {
        self.topics.stop_all(&self.inputs.routes).await;
        let _ = self.inputs.control.send(Control::Shutdown);
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.tasks.lock().expect("not poisoned"));
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl<I: NodeId, D> Drop for PlumtreeMemberlist<I, D> {
    fn drop(&mut self) {
        // A topic's handle may outlive the node; its tasks must not.
        for (_, topic) in self.topics.joined() {
            let _ = topic.control.send(Control::Shutdown);
        }
        // The protocol task also ends when the control channel closes; telling it saves a wait.
        let _ = self.inputs.control.send(Control::Shutdown);
    }
}

/// Everything that comes into a node from outside except broadcasts: membership changes,
/// measured round trips and frames received from peers (see
/// [`PlumtreeMemberlist::inputs`]). Cloneable; holding it does not keep the node running, and
/// every input after shutdown is ignored (frames get [`InboundError::Closed`]).
///
/// It is the one way in for a membership source: `MemberlistStack` drives its node through it,
/// and so can a membership of your own.
#[derive(Clone, Debug)]
pub struct NodeInputs<I> {
    control: mpsc::UnboundedSender<Control<I>>,
    /// This node's (or topic's) own inbound queue.
    sink: FrameSink,
    /// Where received frames go, by topic.
    routes: Arc<Routes>,
}

// A control send fails only once the node has shut down, when peer changes no longer matter.
impl<I> NodeInputs<I> {
    /// Adds a member (see [`Plumtree::add_peer`]).
    pub fn add_peer(&self, peer: I) {
        let _ = self.control.send(Control::AddPeers(vec![peer]));
    }

    /// Adds several members at once, so that neighbours are chosen among all of them.
    pub fn add_peers(&self, peers: impl IntoIterator<Item = I>) {
        let _ = self
            .control
            .send(Control::AddPeers(peers.into_iter().collect()));
    }

    /// Removes a member (see [`Plumtree::remove_peer`]) and stops its send task.
    pub fn remove_peer(&self, peer: I) {
        let _ = self.control.send(Control::RemovePeer(peer));
    }

    /// A round trip measured to `peer`, for
    /// [`peer_scoring`](crate::PlumtreeConfig::peer_scoring) (ignored without it). Report at
    /// most every few hundred milliseconds per peer: the channel that carries it is unbounded.
    pub fn record_rtt(&self, peer: I, rtt: std::time::Duration) {
        let _ = self.control.send(Control::Rtt(peer, rtt));
    }

    /// Hands the node a frame received from a peer (its wire form as `Bytes`, or a [`Frame`]):
    /// it goes to the frame's topic (a frame of a topic the node is not in is dropped and
    /// counted in [`NodeStats::unrouted_frames`]),
    /// waiting while the inbound queue is full: backpressure to whoever reads the network, as
    /// TCP gives a slow receiver.
    ///
    /// # Errors
    /// [`InboundError::Closed`] after shutdown.
    ///
    /// # Cancel safety
    /// Cancel safe: if cancelled, the frame was not handed over.
    pub async fn handle_frame(&self, frame: impl Into<Frame>) -> Result<(), InboundError> {
        self.routes.send_wait(frame.into()).await
    }

    /// Like [`handle_frame`](Self::handle_frame) but never waits, for readers that cannot: when
    /// the queue is full the frame is dropped, counted (`NodeStats::inbound_dropped`) and left
    /// to the protocol's repair.
    ///
    /// # Errors
    /// [`InboundError::Full`] when the frame was dropped, [`InboundError::Closed`] after
    /// shutdown.
    pub fn try_handle_frame(&self, frame: impl Into<Frame>) -> Result<(), InboundError> {
        self.routes.send(frame.into())
    }

    /// Resolves once the node has shut down and takes no more frames: a transport's reader
    /// tasks end then.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn closed(&self) {
        self.sink.closed().await;
    }

    /// Where received frames go: in-process links hand frames to it directly.
    pub(crate) fn routes(&self) -> &Arc<Routes> {
        &self.routes
    }
}

/// Deliveries as a stream (see [`PlumtreeMemberlist::deliveries`]).
#[derive(Debug)]
pub struct Deliveries<I> {
    rx: mpsc::Receiver<Delivery<I>>,
}

impl<I> Deliveries<I> {
    /// The next delivery; `None` once the node has shut down.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn recv(&mut self) -> Option<Delivery<I>> {
        self.rx.recv().await
    }
}

/// Batches of events (one per protocol turn) that hold about `deliveries` deliveries: a turn
/// takes up to `INBOUND_BATCH` frames, each delivering at most one payload.
fn event_batches(deliveries: usize) -> usize {
    deliveries.div_ceil(super::driver::INBOUND_BATCH).max(1)
}
