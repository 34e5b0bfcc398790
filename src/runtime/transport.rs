//! [`Transport`]: how the runtime hands an encoded frame to the network, and
//! [`ChannelTransport`], which hands it to you.

use std::future::Future;

use tokio::sync::mpsc;

use super::NodeInputs;
use crate::Frame;

/// Why a frame could not be handed to the network.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The transport does not know how to reach this peer.
    #[error("peer unreachable")]
    Unreachable,
    /// The transport was shut down.
    #[error("transport closed")]
    Closed,
    /// Anything else, described.
    #[error("transport error: {0}")]
    Other(String),
}

/// Carries encoded [`Frame`]s to peers.
///
/// A frame comes in up to two parts, its head and a Gossip's payload, so that relaying a payload
/// never copies it; on the wire they are one frame, the head first (see [`Frame`]).
///
/// # Implementer notes
/// The runtime calls `send` from one task per peer, so calls for different peers run
/// concurrently and calls for one peer never overlap: a slow peer only holds up its own task.
/// `send` may wait (that is the backpressure a slow peer exerts on its own queue) but should give
/// up with an error rather than wait forever on a dead peer. Frames for one peer must arrive in
/// the order they were sent.
pub trait Transport<I>: Send + Sync + 'static {
    /// Most frames a peer's send task hands to one [`send_batch`](Self::send_batch) call when
    /// several have queued up. The default, 1, sends every frame through `send`: batching only
    /// pays for transports with a cost per call (a connection, a system call), and taking frames
    /// out of the queue early hides congestion from the node's flow control.
    const MAX_BATCH: usize = 1;

    /// Called once by [`PlumtreeMemberlist::start`](super::PlumtreeMemberlist::start), before
    /// any `send`, with the node's inputs. Transports that receive frames themselves (QUIC) keep
    /// them, hand every frame that arrives to [`NodeInputs::handle_frame`], and may report measured
    /// round trips; the default does nothing, for transports whose frames reach the node another
    /// way (a channel you drain, memberlist's delegate). [`NodeInputs::closed`] resolves when the node shuts
    /// down: a transport's own tasks should end then.
    fn attach(&self, node: NodeInputs<I>) {
        let _ = node;
    }

    /// Sends one frame to `to`.
    fn send(&self, to: &I, frame: Frame)
    -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Hands `frame` to `to` at once if that needs no waiting, or gives it back.
    ///
    /// The runtime tries this for a peer whose send task has nothing queued or in flight, so
    /// order is kept; a frame given back goes to the send task and [`send`](Self::send). It
    /// saves a task switch per frame where handing over is cheap and never blocks (a channel,
    /// [`LocalNetwork`](super::LocalNetwork)). The default gives every frame back. Report
    /// failures other than "would wait" by giving the frame back too: `send` reports them.
    fn try_send(&self, to: &I, frame: Frame) -> Result<(), Frame> {
        let _ = to;
        Err(frame)
    }

    /// Sends several frames (at most [`MAX_BATCH`](Self::MAX_BATCH)) to `to`, in order. The
    /// default sends them one at a time, going on after a failure and returning the last error;
    /// a transport that raises `MAX_BATCH` should send them together.
    fn send_batch(
        &self,
        to: &I,
        frames: Vec<Frame>,
    ) -> impl Future<Output = Result<(), TransportError>> + Send
    where
        I: Sync,
    {
        async move {
            let mut result = Ok(());
            for frame in frames {
                if let Err(error) = self.send(to, frame).await {
                    result = Err(error);
                }
            }
            result
        }
    }
}

/// A transport that hands every frame to you, through a channel, as `(peer, frame)`.
///
/// Use it to carry frames over a transport of your own, or in tests. Write a frame's two parts
/// one after the other ([`Frame::into_parts`]), or take it in one buffer ([`Frame::to_bytes`]);
/// pass each frame that arrives from the network to
/// [`NodeInputs::handle_frame`] on the receiving node (in one process, the frame itself: nothing is copied).
///
/// # Examples
/// ```
/// use memberlist_plumtree::ChannelTransport;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (transport, mut frames) = ChannelTransport::<u64>::bounded(1024);
/// # drop(transport);
/// while let Some((peer, frame)) = frames.recv().await {
///     let (head, payload) = frame.into_parts();
///     // send `head`, then `payload`, to `peer` your way
/// #   let _ = (peer, head, payload);
/// }
/// # });
/// ```
#[derive(Debug)]
pub struct ChannelTransport<I> {
    tx: Sender<I>,
}

impl<I> Clone for ChannelTransport<I> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

#[derive(Debug)]
enum Sender<I> {
    Bounded(mpsc::Sender<(I, Frame)>),
    Unbounded(mpsc::UnboundedSender<(I, Frame)>),
}

impl<I> Clone for Sender<I> {
    fn clone(&self) -> Self {
        match self {
            Sender::Bounded(tx) => Sender::Bounded(tx.clone()),
            Sender::Unbounded(tx) => Sender::Unbounded(tx.clone()),
        }
    }
}

/// The receiving end of a [`ChannelTransport`]: frames to deliver, with their destination.
#[derive(Debug)]
pub struct ChannelReceiver<I> {
    rx: Receiver<I>,
}

#[derive(Debug)]
enum Receiver<I> {
    Bounded(mpsc::Receiver<(I, Frame)>),
    Unbounded(mpsc::UnboundedReceiver<(I, Frame)>),
}

impl<I> ChannelReceiver<I> {
    /// The next frame and its destination; `None` once every transport clone is dropped.
    ///
    /// # Cancel safety
    /// Cancel safe: a frame is never lost by dropping this future.
    pub async fn recv(&mut self) -> Option<(I, Frame)> {
        match &mut self.rx {
            Receiver::Bounded(rx) => rx.recv().await,
            Receiver::Unbounded(rx) => rx.recv().await,
        }
    }
}

impl<I: Send + Sync + 'static> ChannelTransport<I> {
    /// A channel holding at most `capacity` frames: when you fall behind, each peer's send task
    /// waits, its queue fills and further frames to it are dropped and counted.
    ///
    /// # Panics
    /// If `capacity` is 0.
    pub fn bounded(capacity: usize) -> (Self, ChannelReceiver<I>) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            Self {
                tx: Sender::Bounded(tx),
            },
            ChannelReceiver {
                rx: Receiver::Bounded(rx),
            },
        )
    }

    /// A channel without a bound: memory grows if you fall behind. For tests and for consumers
    /// that are always faster than the network.
    pub fn unbounded() -> (Self, ChannelReceiver<I>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                tx: Sender::Unbounded(tx),
            },
            ChannelReceiver {
                rx: Receiver::Unbounded(rx),
            },
        )
    }
}

impl<I: Clone + Send + Sync + 'static> Transport<I> for ChannelTransport<I> {
    async fn send(&self, to: &I, frame: Frame) -> Result<(), TransportError> {
        let item = (to.clone(), frame);
        match &self.tx {
            Sender::Bounded(tx) => tx.send(item).await.map_err(|_| TransportError::Closed),
            Sender::Unbounded(tx) => tx.send(item).map_err(|_| TransportError::Closed),
        }
    }

    fn try_send(&self, to: &I, frame: Frame) -> Result<(), Frame> {
        let item = (to.clone(), frame);
        match &self.tx {
            Sender::Bounded(tx) => tx.try_send(item).map_err(|e| e.into_inner().1),
            Sender::Unbounded(tx) => tx.send(item).map_err(|e| e.0.1),
        }
    }
}
