//! The inbound queue: received frames waiting for the protocol task, bounded in bytes.
//!
//! A bound in frames would let the largest payloads pile up (8,192 frames of 64 KiB are half a
//! gigabyte), while a bound that is safe for them would make the queue of small frames too
//! shallow to absorb a burst: with direct sends this queue is the buffer between two nodes, and a
//! shallow one sends the overflow into the neighbours' send queues, where it is dropped and
//! repaired. So every frame is charged its length plus [`FRAME_OVERHEAD`] against
//! [`RuntimeConfig::inbound_bytes`](super::RuntimeConfig::inbound_bytes).
//!
//! The protocol task gives back a whole turn's bytes at once (src/runtime/budget.rs): one lock
//! per turn instead of one per frame, as a bounded channel would take.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::budget::{self, BudgetReceiver, BudgetSender, Unavailable};
use super::stats::Counters;
use crate::Frame;

/// What a queued frame costs beyond its bytes: its handle and its slot in the channel, so that a
/// flood of tiny frames is bounded too.
const FRAME_OVERHEAD: usize = 64;

/// Why a received frame was not accepted by [`NodeInputs`](super::NodeInputs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InboundError {
    /// The inbound queue is full; the frame was dropped (and counted).
    #[error("inbound queue full")]
    Full,
    /// The node is shut down.
    #[error("node shut down")]
    Closed,
}

/// A queue holding at most `bytes` (frames charged as above): the sending and the receiving end.
pub(crate) fn channel(bytes: usize, counters: Arc<Counters>) -> (FrameSink, Inbound) {
    // The semaphore takes at most u32::MAX permits at once; `RuntimeConfig::validate` keeps
    // the budget below that, the min only guards against a config that skipped it.
    let limit = bytes.min(u32::MAX as usize);
    // Given back every turn (whatever it took).
    let (frames, inbound) = budget::channel(limit, 1);
    let sink = FrameSink {
        frames,
        limit,
        counters,
    };
    (sink, inbound)
}

/// The protocol task's end of the queue: it gives the bytes back with `release` after each
/// turn. Dropping it closes the queue: waiting senders get [`InboundError::Closed`].
pub(crate) type Inbound = BudgetReceiver<Frame>;

/// Bytes a frame takes of the budget. A frame larger than the whole budget takes all of it, so
/// that it still passes once the queue is empty (decoding rejects what is over the limits).
fn cost(frame: &Frame, limit: usize) -> u32 {
    // `limit` fits in u32 (see `channel`).
    frame.len().saturating_add(FRAME_OVERHEAD).min(limit) as u32
}

/// The sending end of the inbound queue, inside [`NodeInputs`](super::NodeInputs).
#[derive(Clone, Debug)]
pub(crate) struct FrameSink {
    frames: BudgetSender<Frame>,
    limit: usize,
    pub(crate) counters: Arc<Counters>,
}

impl FrameSink {
    /// Hands a frame over, waiting while the queue is full; `Closed` after shutdown.
    pub(crate) async fn send_wait(&self, frame: Frame) -> Result<(), InboundError> {
        let reserved = self.frames.reserve(cost(&frame, self.limit)).await;
        reserved
            .map_err(|_| InboundError::Closed)?
            .push(frame)
            .map_err(|_| InboundError::Closed)
    }

    /// Resolves once the node has shut down and takes no more frames.
    pub(crate) async fn closed(&self) {
        self.frames.closed().await;
    }

    /// Hands a frame over if the inbound queue has room, or gives it back (nothing counted:
    /// the caller sends it another way).
    pub(crate) fn try_send(&self, frame: Frame) -> Result<(), Frame> {
        match self.frames.try_reserve(cost(&frame, self.limit)) {
            Ok(reserved) => reserved.push(frame),
            Err(_) => Err(frame),
        }
    }

    /// Hands a frame over if there is room; otherwise drops and counts it (`Full`).
    pub(crate) fn send(&self, frame: Frame) -> Result<(), InboundError> {
        match self.frames.try_reserve(cost(&frame, self.limit)) {
            Ok(reserved) => reserved.push(frame).map_err(|_| InboundError::Closed),
            Err(Unavailable::Full) => {
                self.counters
                    .inbound_dropped
                    .fetch_add(1, Ordering::Relaxed);
                Err(InboundError::Full)
            }
            Err(Unavailable::Closed) => Err(InboundError::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Frame {
        Frame::from(bytes::Bytes::from(vec![0; len]))
    }

    #[test]
    fn the_budget_counts_bytes_and_comes_back_on_release() {
        let (sink, mut inbound) = channel(2 * (100 + FRAME_OVERHEAD), Arc::default());
        assert_eq!(sink.send(frame(100)), Ok(()));
        assert_eq!(sink.send(frame(100)), Ok(()));
        // A third frame of the same size does not fit, a small one neither.
        assert_eq!(sink.send(frame(100)), Err(InboundError::Full));
        assert!(sink.try_send(frame(1)).is_err());
        assert_eq!(sink.counters.inbound_dropped.load(Ordering::Relaxed), 1);
        // Taking frames frees nothing until the turn gives the bytes back.
        assert_eq!(inbound.try_recv().map(|f| f.len()), Some(100));
        assert!(sink.try_send(frame(1)).is_err());
        inbound.release();
        assert!(sink.try_send(frame(1)).is_ok());
    }

    #[test]
    fn a_frame_larger_than_the_budget_passes_an_empty_queue_alone() {
        let (sink, mut inbound) = channel(1000, Arc::default());
        assert_eq!(sink.send(frame(5000)), Ok(()));
        assert_eq!(sink.send(frame(1)), Err(InboundError::Full));
        assert_eq!(inbound.try_recv().map(|f| f.len()), Some(5000));
        inbound.release();
        assert_eq!(sink.send(frame(1)), Ok(()));
    }

    #[tokio::test]
    async fn a_waiting_sender_goes_on_after_release_and_fails_after_close() {
        let (sink, mut inbound) = channel(100 + FRAME_OVERHEAD, Arc::default());
        sink.send_wait(frame(100)).await.unwrap();
        let waiting = tokio::spawn({
            let sink = sink.clone();
            async move { sink.send_wait(frame(100)).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert!(inbound.recv().await.is_some());
        inbound.release();
        assert_eq!(waiting.await.unwrap(), Ok(()));

        let blocked = tokio::spawn({
            let sink = sink.clone();
            async move { sink.send_wait(frame(100)).await }
        });
        tokio::task::yield_now().await;
        drop(inbound);
        assert_eq!(blocked.await.unwrap(), Err(InboundError::Closed));
        assert_eq!(sink.send(frame(1)), Err(InboundError::Closed));
    }
}
