//! Topics: independent broadcast groups inside one node.
//!
//! A node runs one protocol core per topic it joined, each with its own protocol task, delivery
//! task, send queues and config, so a topic's tree, cache and flow control never touch another's.
//! They share the node's id and its [`Transport`]: a topic's frames carry its id in front of the
//! envelope (src/message/topic.rs), and [`Routes`] hands each received frame to its topic's
//! inbound queue. A frame of a topic the node has not joined is dropped and counted.
//!
//! Which peers take part in a topic is told to the topic by its [`NodeInputs`] (as for the
//! default topic); `MemberlistStack` does it from what members publish in their metadata.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::broadcasts::BroadcastQueue;
use super::driver::{Control, Driver};
use super::inbound::{FrameSink, Inbound, InboundError};
use super::node::NodeInputs;
use super::options::RuntimeConfig;
use super::stats::{Counters, NodeStats};
use super::transport::Transport;
use super::{PlumtreeDelegate, PlumtreeMemberlist};
use crate::proto::{Event, Plumtree};
use crate::{BroadcastError, ConfigError, Frame, MessageId, NodeId, TopicId};

/// Why [`PlumtreeMemberlist::join_topic`] failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The default topic is not joined or left: every node is in it.
    #[error("the default topic cannot be joined or left")]
    Default,
    /// This node is in the topic already.
    #[error("{0} was joined already")]
    AlreadyJoined(TopicId),
    /// The node is in [`RuntimeConfig::max_topics`] topics already.
    #[error("this node is in {max} topics already (RuntimeConfig::max_topics)")]
    TooMany {
        /// The limit.
        max: usize,
    },
    /// Topics are joined on a started node: they send through its transport.
    #[error("topics are joined on a started node")]
    NotRunning,
    /// The topic's config does not validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Where one received frame goes.
enum Route {
    Default,
    /// To this topic's queue, without its prefix of this many bytes.
    Topic(FrameSink, usize),
    /// A topic this node is not in: dropped (and counted).
    Nowhere,
}

/// Where received frames go: each to the inbound queue of its topic. Shared by the inputs of a
/// node and of all its topics, so any of them routes any frame.
#[derive(Debug)]
pub(crate) struct Routes {
    default: FrameSink,
    topics: RwLock<HashMap<TopicId, FrameSink>>,
    /// Frames of topics this node is not in.
    unrouted: AtomicU64,
}

impl Routes {
    pub(crate) fn new(default: FrameSink) -> Self {
        Self {
            default,
            topics: RwLock::default(),
            unrouted: AtomicU64::new(0),
        }
    }

    /// Where `frame` goes, read once from its prefix. A malformed prefix goes to the default
    /// topic, whose decoder counts it; a topic the node is not in is counted here.
    fn route(&self, frame: &Frame) -> Route {
        let (topic, len) = match frame.split_topic() {
            Ok((topic, len)) if !topic.is_default() => (topic, len),
            _ => return Route::Default,
        };
        let sink = self
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&topic)
            .cloned();
        match sink {
            Some(sink) => Route::Topic(sink, len),
            None => {
                self.unrouted.fetch_add(1, Ordering::Relaxed);
                Route::Nowhere
            }
        }
    }

    /// Hands `frame` to its topic's queue, waiting for room.
    pub(crate) async fn send_wait(&self, frame: Frame) -> Result<(), InboundError> {
        match self.route(&frame) {
            Route::Default => self.default.send_wait(frame).await,
            Route::Topic(sink, len) => sink.send_wait(frame.without_prefix(len)).await,
            Route::Nowhere => Ok(()),
        }
    }

    /// Hands `frame` to its topic's queue if there is room, or drops and counts it.
    pub(crate) fn send(&self, frame: Frame) -> Result<(), InboundError> {
        match self.route(&frame) {
            Route::Default => self.default.send(frame),
            Route::Topic(sink, len) => sink.send(frame.without_prefix(len)),
            Route::Nowhere => Ok(()),
        }
    }

    /// Hands `frame` to its topic's queue if that has room, or gives it back as it came.
    pub(crate) fn try_send(&self, frame: Frame) -> Result<(), Frame> {
        match self.route(&frame) {
            Route::Default => self.default.try_send(frame),
            // The envelope shares the frame's buffers: keeping the frame costs a reference
            // count, and it is what goes back if there is no room.
            Route::Topic(sink, len) => sink
                .try_send(frame.clone().without_prefix(len))
                .map_err(|_| frame),
            Route::Nowhere => Ok(()),
        }
    }

    /// Frames dropped because this node is not in their topic.
    pub(crate) fn unrouted(&self) -> u64 {
        self.unrouted.load(Ordering::Relaxed)
    }

    fn insert(&self, topic: TopicId, sink: FrameSink) {
        self.topics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(topic, sink);
    }

    fn remove(&self, topic: TopicId) {
        self.topics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&topic);
    }
}

/// What a protocol task is started from.
pub(crate) struct DriverParts<I: NodeId> {
    pub(crate) topic: TopicId,
    pub(crate) core: Plumtree<I>,
    pub(crate) runtime: RuntimeConfig,
    pub(crate) events: tokio::sync::mpsc::Sender<Vec<Event<I>>>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) control: tokio::sync::mpsc::UnboundedReceiver<Control<I>>,
    pub(crate) frames: Inbound,
    pub(crate) broadcasts: BroadcastQueue,
}

/// Starts protocol tasks on a node's transport: kept by a started node for the topics it joins
/// later, when the transport's type is no longer at hand.
pub(crate) trait StartDriver<I: NodeId>: Send + Sync {
    fn spawn(&self, parts: DriverParts<I>) -> JoinHandle<()>;
    fn handle(&self) -> &Handle;
}

/// The [`StartDriver`] of a transport `T`.
pub(crate) struct Starter<T> {
    pub(crate) transport: Arc<T>,
    pub(crate) handle: Handle,
}

impl<I: NodeId, T: Transport<I>> StartDriver<I> for Starter<T> {
    fn spawn(&self, parts: DriverParts<I>) -> JoinHandle<()> {
        let driver = Driver::new(
            parts.topic,
            parts.core,
            Arc::clone(&self.transport),
            &parts.runtime,
            parts.events,
            parts.counters,
        );
        self.handle
            .spawn(driver.run(parts.control, parts.frames, parts.broadcasts))
    }

    fn handle(&self) -> &Handle {
        &self.handle
    }
}

/// A joined topic, whatever its delegate's type: what the node needs to route to it and to
/// stop it.
trait Joined<I: NodeId>: Send + Sync {
    fn inputs(&self) -> NodeInputs<I>;
    /// Stops the topic's tasks; `left`: because the node left the topic (its handle's
    /// broadcasts then fail with `NotJoined` rather than `Closed`).
    fn stop(&self, left: bool) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

impl<I: NodeId, D: PlumtreeDelegate<I>> Joined<I> for PlumtreeMemberlist<I, D> {
    fn inputs(&self) -> NodeInputs<I> {
        PlumtreeMemberlist::inputs(self)
    }

    fn stop(&self, left: bool) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        if left {
            self.mark_left();
        }
        Box::pin(self.shutdown())
    }
}

/// The topics of a node (empty in a topic's own node).
pub(crate) struct Topics<I: NodeId> {
    state: std::sync::Mutex<TopicTable<I>>,
}

struct TopicTable<I: NodeId> {
    starter: Option<Arc<dyn StartDriver<I>>>,
    joined: HashMap<TopicId, Arc<dyn Joined<I>>>,
}

impl<I: NodeId> std::fmt::Debug for Topics<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Topics")
            .field("joined", &state.joined.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<I: NodeId> Topics<I> {
    pub(crate) fn new() -> Self {
        Self {
            state: std::sync::Mutex::new(TopicTable {
                starter: None,
                joined: HashMap::new(),
            }),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, TopicTable<I>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps the node's starter for topics joined from now on.
    pub(crate) fn started(&self, starter: Arc<dyn StartDriver<I>>) {
        self.table().starter = Some(starter);
    }

    /// Starts `node` as topic `topic` of this node, its frames routed by `routes`.
    pub(crate) fn join<D: PlumtreeDelegate<I>>(
        &self,
        routes: &Routes,
        topic: TopicId,
        node: PlumtreeMemberlist<I, D>,
        max: usize,
    ) -> Result<Topic<I, D>, TopicError> {
        let mut table = self.table();
        let starter = table.starter.clone().ok_or(TopicError::NotRunning)?;
        if table.joined.contains_key(&topic) {
            return Err(TopicError::AlreadyJoined(topic));
        }
        if table.joined.len() >= max {
            return Err(TopicError::TooMany { max });
        }
        let node = Arc::new(node);
        let stream = node.stream_receiver();
        node.launch(&*starter).map_err(|_| TopicError::NotRunning)?;
        routes.insert(topic, node.own_sink().clone());
        table
            .joined
            .insert(topic, Arc::clone(&node) as Arc<dyn Joined<I>>);
        Ok(Topic {
            topic,
            node,
            stream: Arc::new(std::sync::Mutex::new(stream)),
        })
    }

    /// Stops topic `topic` and takes it out of `routes`; false if the node was not in it.
    pub(crate) async fn leave(&self, routes: &Routes, topic: TopicId) -> bool {
        let joined = self.table().joined.remove(&topic);
        routes.remove(topic);
        match joined {
            Some(node) => {
                node.stop(true).await;
                true
            }
            None => false,
        }
    }

    /// Stops every topic (the node shuts down).
    pub(crate) async fn stop_all(&self, routes: &Routes) {
        let joined: Vec<_> = self.table().joined.drain().collect();
        for (topic, node) in joined {
            routes.remove(topic);
            node.stop(false).await;
        }
    }

    /// The topics joined, with their inputs.
    pub(crate) fn joined(&self) -> Vec<(TopicId, NodeInputs<I>)> {
        self.table()
            .joined
            .iter()
            .map(|(topic, node)| (*topic, node.inputs()))
            .collect()
    }
}

/// A topic this node joined ([`PlumtreeMemberlist::join_topic`]): broadcasts on it, its peers
/// and its state. Cloning it is cheap; it does not keep the topic joined, and once the topic is
/// left its broadcasts fail with [`BroadcastError::NotJoined`].
pub struct Topic<I: NodeId, D> {
    topic: TopicId,
    node: Arc<PlumtreeMemberlist<I, D>>,
    /// The delivery stream's receiving end until [`deliveries`](Topic::deliveries) takes it.
    stream: Arc<std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<crate::Delivery<I>>>>>,
}

impl<I: NodeId, D> std::fmt::Debug for Topic<I, D> {
    /// Names the topic, whatever the delegate.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl<I: NodeId, D> Clone for Topic<I, D> {
    fn clone(&self) -> Self {
        Self {
            topic: self.topic,
            node: Arc::clone(&self.node),
            stream: Arc::clone(&self.stream),
        }
    }
}

impl<I: NodeId, D: PlumtreeDelegate<I>> Topic<I, D> {
    /// Which topic it is.
    pub fn id(&self) -> TopicId {
        self.topic
    }

    /// Broadcasts `payload` to the topic's members, as
    /// [`PlumtreeMemberlist::broadcast`] does for the default topic.
    ///
    /// # Errors
    /// As `PlumtreeMemberlist::broadcast`, and [`BroadcastError::NotJoined`] once the topic was
    /// left.
    ///
    /// # Cancel safety
    /// Cancel safe: if cancelled, nothing was broadcast.
    pub async fn broadcast(
        &self,
        payload: impl Into<bytes::Bytes>,
    ) -> Result<MessageId, BroadcastError> {
        self.node.broadcast(payload).await
    }

    /// Like [`broadcast`](Self::broadcast), but fails at once instead of waiting for room.
    ///
    /// # Errors
    /// As [`PlumtreeMemberlist::try_broadcast`], and [`BroadcastError::NotJoined`] once the
    /// topic was left.
    pub fn try_broadcast(
        &self,
        payload: impl Into<bytes::Bytes>,
    ) -> Result<MessageId, BroadcastError> {
        self.node.try_broadcast(payload)
    }

    /// The topic's inputs: its peers (the members that joined it) and round trips. Received
    /// frames may go to any of a node's inputs: they are routed by topic.
    pub fn inputs(&self) -> NodeInputs<I> {
        self.node.inputs()
    }

    /// A snapshot of the topic's state; `None` once it was left.
    pub async fn stats(&self) -> Option<NodeStats<I>> {
        self.node.stats().await
    }

    /// The topic's deliveries as a stream, from now on (the delegate is still called).
    /// Available once, from any clone of the handle (otherwise `None`). Once taken, a reader
    /// that falls `delivery_capacity` behind makes the topic wait for it, as
    /// [`PlumtreeMemberlist::deliveries`] does.
    pub fn deliveries(&self) -> Option<super::Deliveries<I>> {
        let rx = self
            .stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        Some(self.node.feed(rx))
    }

    /// The topic's delegate.
    pub fn delegate(&self) -> &D {
        self.node.delegate()
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};

    use super::*;
    use crate::runtime::inbound;

    fn frame(topic: TopicId, len: usize) -> Frame {
        let mut buf = BytesMut::new();
        topic.put_prefix(&mut buf);
        buf.extend_from_slice(&vec![3u8; len]);
        Frame::from(buf.freeze())
    }

    #[test]
    fn frames_go_to_their_topic_and_come_back_whole_when_it_is_full() {
        let (default, mut default_rx) = inbound::channel(10_000, Arc::default());
        let routes = Routes::new(default);
        let chat = TopicId::new(5);
        // Room for one frame of 100 bytes and its overhead.
        let (sink, mut chat_rx) = inbound::channel(200, Arc::default());
        routes.insert(chat, sink);

        assert!(routes.try_send(frame(chat, 100)).is_ok());
        let full = frame(chat, 100);
        let back = routes.try_send(full.clone()).expect_err("no room");
        assert_eq!(
            back.to_bytes(),
            full.to_bytes(),
            "given back with its prefix"
        );
        // The topic's queue got the envelope alone.
        let got = chat_rx.try_recv().expect("queued");
        assert_eq!(got.to_bytes(), Bytes::from(vec![3u8; 100]));

        assert!(routes.try_send(frame(TopicId::DEFAULT, 10)).is_ok());
        assert_eq!(default_rx.try_recv().map(|f| f.len()), Some(10));

        // A topic this node is not in: dropped, counted, nothing to give back.
        assert!(routes.try_send(frame(TopicId::new(6), 10)).is_ok());
        assert_eq!(routes.send(frame(TopicId::new(6), 10)), Ok(()));
        assert_eq!(routes.unrouted(), 2);
        routes.remove(chat);
        assert!(routes.try_send(frame(chat, 1)).is_ok());
        assert_eq!(routes.unrouted(), 3);
    }
}
