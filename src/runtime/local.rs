//! [`LocalNetwork`]: many nodes in one process, wired through in-memory links with optional
//! latency and loss. For tests, examples and your own tests.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::inbound::InboundError;
use super::node::PlumtreeMemberlist;
use super::topics::Routes;
use super::transport::{Transport, TransportError};
use crate::{Frame, NodeId};

/// An in-process network. Each node joins with [`LocalNetwork::join`] and starts with the
/// transport it returns.
///
/// Latency is drawn once per link (fixed by the seed), so a link never reorders; loss drops
/// frames at random, like a lossy network (the sender is not told).
///
/// # Examples
/// ```
/// use memberlist_plumtree::{LocalNetwork, NoopDelegate, PlumtreeConfig, PlumtreeMemberlist};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let network = LocalNetwork::new();
/// let nodes: Vec<_> = (0..3u64)
///     .map(|id| PlumtreeMemberlist::new(id, PlumtreeConfig::lan(), NoopDelegate).unwrap())
///     .collect();
/// let mut deliveries = nodes[2].deliveries().unwrap(); // before start
/// for node in &nodes {
///     node.start(network.join(node)).unwrap();
///     node.inputs().add_peers(0..3);
/// }
/// nodes[0].broadcast(&b"hi"[..]).await.unwrap();
/// assert_eq!(&deliveries.recv().await.unwrap().payload[..], b"hi");
/// # });
/// ```
#[derive(Debug)]
pub struct LocalNetwork<I> {
    inner: Arc<Inner<I>>,
}

impl<I> Clone for LocalNetwork<I> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// Which side of a partition a node is on.
type Sides<I> = Arc<dyn Fn(&I) -> u8 + Send + Sync>;

struct Inner<I> {
    sinks: RwLock<HashMap<I, Arc<Routes>>>,
    /// While set, frames between nodes on different sides are lost.
    partition: RwLock<Option<Sides<I>>>,
    /// Whether `partition` is set: every frame checks it, so it must not take the lock.
    partitioned: AtomicBool,
    latency: Range<Duration>,
    loss: f64,
    seed: u64,
    rng: Mutex<fastrand::Rng>,
}

impl<I: std::fmt::Debug> std::fmt::Debug for Inner<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNetwork")
            .field("nodes", &self.sinks.read().map(|s| s.len()).unwrap_or(0))
            .field("latency", &self.latency)
            .field("loss", &self.loss)
            .field("partitioned", &self.partitioned.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<I: NodeId> Default for LocalNetwork<I> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I: NodeId> LocalNetwork<I> {
    /// A network without latency or loss.
    pub fn new() -> Self {
        Self::with_conditions(Duration::ZERO..Duration::ZERO, 0.0, 1)
    }

    /// A network whose links each get a one-way latency drawn from `latency`, and that loses each
    /// frame with probability `loss`; `seed` fixes both draws.
    pub fn with_conditions(latency: Range<Duration>, loss: f64, seed: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                sinks: RwLock::default(),
                partition: RwLock::default(),
                partitioned: AtomicBool::new(false),
                latency,
                loss,
                seed,
                rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            }),
        }
    }

    /// Connects `node` to the network and returns the transport to [start](PlumtreeMemberlist::start) it with.
    pub fn join<D: crate::PlumtreeDelegate<I>>(
        &self,
        node: &PlumtreeMemberlist<I, D>,
    ) -> LocalTransport<I> {
        let id = node.local_id().clone();
        self.inner
            .sinks
            .write()
            .expect("not poisoned")
            .insert(id.clone(), Arc::clone(node.inputs().routes()));
        LocalTransport {
            from: id,
            network: self.clone(),
            links: Arc::default(),
        }
    }

    /// Disconnects `id`: frames to it are lost from now on (as if it crashed).
    pub fn leave(&self, id: &I) {
        self.inner.sinks.write().expect("not poisoned").remove(id);
    }

    /// Cuts the network: from now on, frames between nodes that `side` puts on different sides
    /// are lost (the sender is not told), until [`heal`](Self::heal).
    pub fn partition(&self, side: impl Fn(&I) -> u8 + Send + Sync + 'static) {
        *self.inner.partition.write().expect("not poisoned") = Some(Arc::new(side));
        self.inner.partitioned.store(true, Ordering::Release);
    }

    /// Ends a [`partition`](Self::partition).
    pub fn heal(&self) {
        self.inner.partitioned.store(false, Ordering::Release);
        *self.inner.partition.write().expect("not poisoned") = None;
    }

    /// Whether a frame from `a` to `b` is lost to a partition.
    fn cut(&self, a: &I, b: &I) -> bool {
        if !self.inner.partitioned.load(Ordering::Acquire) {
            return false;
        }
        let partition = self.inner.partition.read().expect("not poisoned");
        partition.as_ref().is_some_and(|side| side(a) != side(b))
    }

    fn sink(&self, id: &I) -> Option<Arc<Routes>> {
        self.inner
            .sinks
            .read()
            .expect("not poisoned")
            .get(id)
            .cloned()
    }

    fn lost(&self) -> bool {
        self.inner.loss > 0.0
            && self.inner.rng.lock().expect("not poisoned").f64() < self.inner.loss
    }

    fn latency(&self, a: &I, b: &I) -> Duration {
        crate::latency::link_latency(&self.inner.latency, self.inner.seed, a.tag(), b.tag())
    }
}

/// Frames on their way over one delayed link, each with the instant it arrives.
type Link = mpsc::Sender<(Instant, Frame)>;

/// Frames one delayed link holds in flight; a sender waits beyond that, as on a full TCP window.
const LINK_CAPACITY: usize = 1024;

/// One node's view of a [`LocalNetwork`].
#[derive(Debug)]
pub struct LocalTransport<I> {
    from: I,
    network: LocalNetwork<I>,
    /// Per destination, the task that delays frames on that link (only with latency).
    links: Arc<Mutex<HashMap<I, Link>>>,
}

impl<I: NodeId> Transport<I> for LocalTransport<I> {
    async fn send(&self, to: &I, frame: Frame) -> Result<(), TransportError> {
        let sink = self.network.sink(to).ok_or(TransportError::Unreachable)?;
        if self.network.lost() || self.network.cut(&self.from, to) {
            return Ok(());
        }
        let latency = self.network.latency(&self.from, to);
        if latency.is_zero() {
            return sink
                .send_wait(frame)
                .await
                .map_err(|_| TransportError::Unreachable);
        }
        let link = {
            let mut links = self.links.lock().expect("not poisoned");
            links
                .entry(to.clone())
                .or_insert_with(|| spawn_link(sink))
                .clone()
        };
        link.send((Instant::now() + latency, frame))
            .await
            .map_err(|_| TransportError::Unreachable)
    }

    /// Without latency or loss, straight into the receiver's inbound queue if it has room.
    fn try_send(&self, to: &I, frame: Frame) -> Result<(), Frame> {
        let inner = &self.network.inner;
        if inner.loss > 0.0 || !inner.latency.start.is_zero() || !inner.latency.end.is_zero() {
            return Err(frame);
        }
        if self.network.cut(&self.from, to) {
            return Ok(()); // lost, as on a cut link
        }
        let sinks = inner.sinks.read().expect("not poisoned");
        match sinks.get(to) {
            Some(sink) => sink.try_send(frame),
            None => Err(frame),
        }
    }
}

/// A task that delivers one link's frames in order, each at its instant.
fn spawn_link(sink: Arc<Routes>) -> Link {
    let (tx, mut rx) = mpsc::channel::<(Instant, Frame)>(LINK_CAPACITY);
    tokio::spawn(async move {
        while let Some((at, frame)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if sink.send_wait(frame).await == Err(InboundError::Closed) {
                break;
            }
        }
    });
    tx
}
