//! Per-peer send queues: one task per peer, control frames ahead of payloads, bounded.
//!
//! A frame for a peer with nothing queued goes straight to the transport when it can take it
//! without waiting (`Transport::try_send`); only frames that would wait go through the task.
//!
//! A peer that is slow or dead fills only its own queue; frames beyond the bound are dropped and
//! counted, and the other peers' tasks carry on. The protocol repairs what a drop loses (the
//! receiver is announced the payload and grafts it).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::transport::Transport;
use crate::Frame;

/// Most bytes in one batch (see `Transport::MAX_BATCH`): past it no further frame is added (the
/// first always goes), so that a batch stays a reasonable message for transports that send it
/// as one.
const MAX_BATCH_BYTES: usize = 1 << 20;

#[derive(Debug)]
struct PeerQueue {
    control: mpsc::Sender<Frame>,
    payload: mpsc::Sender<Frame>,
    /// Milliseconds since `Outbox::epoch` when the task last handed a frame to the transport,
    /// or was given work while idle.
    progress: Arc<AtomicU64>,
    /// Frames in the two lanes or being sent by the task. At 0, a new frame may bypass the
    /// task (`Transport::try_send`) without overtaking any other.
    pending: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

/// The queues of every peer this node has sent to.
#[derive(Debug)]
pub(crate) struct Outbox<I, T> {
    transport: Arc<T>,
    queues: HashMap<I, PeerQueue>,
    capacity: usize,
    stall_timeout: Duration,
    epoch: Instant,
}

impl<I, T> Outbox<I, T>
where
    I: Clone + Eq + Hash + Send + Sync + 'static,
    T: Transport<I>,
{
    pub(crate) fn new(transport: Arc<T>, capacity: usize, stall_timeout: Duration) -> Self {
        Self {
            transport,
            queues: HashMap::new(),
            capacity,
            stall_timeout,
            epoch: Instant::now(),
        }
    }

    /// Sends or queues `frame` for `to`, in the control queue if it is urgent
    /// ([`Frame::is_urgent`]); false if that queue is full and the frame was dropped.
    pub(crate) fn push(&mut self, to: &I, frame: Frame) -> bool {
        let queue = match self.queues.get(to) {
            Some(queue) => queue,
            None => {
                let queue = self.spawn(to.clone());
                self.queues.entry(to.clone()).or_insert(queue)
            }
        };
        // Acquire: the task's last send has completed, so a frame handed over now follows it.
        let frame = if queue.pending.load(Ordering::Acquire) == 0 {
            match self.transport.try_send(to, frame) {
                Ok(()) => return true,
                Err(frame) => frame,
            }
        } else {
            frame
        };
        if queue.pending.fetch_add(1, Ordering::Relaxed) == 0 {
            // The task had nothing to do: its progress counts from now, not from its last send.
            let now = self.epoch.elapsed().as_millis() as u64;
            queue.progress.store(now, Ordering::Relaxed);
        }
        let sender = if frame.is_urgent() {
            &queue.control
        } else {
            &queue.payload
        };
        match sender.try_send(frame) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
                queue.pending.fetch_sub(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Whether a new broadcast may enter: no payload queue is more than half full, except queues
    /// whose task has made no progress for `stall_timeout` (a dead peer must not stall the node;
    /// its queue just drops).
    pub(crate) fn has_room(&self) -> bool {
        // Asked every turn: the clock is read only when some queue is more than half full.
        let mut now = None;
        let stall = self.stall_timeout.as_millis() as u64;
        self.queues.values().all(|q| {
            let queued = self.capacity - q.payload.capacity();
            queued * 2 < self.capacity || {
                let now = *now.get_or_insert_with(|| self.elapsed_ms());
                now.saturating_sub(q.progress.load(Ordering::Relaxed)) > stall
            }
        })
    }

    /// Frames each lane of a peer's queue holds.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Frames waiting, over all peers.
    pub(crate) fn depth(&self) -> usize {
        self.queues
            .values()
            .map(|q| 2 * self.capacity - q.payload.capacity() - q.control.capacity())
            .sum()
    }

    /// Drops `peer`'s queue and stops its task (it may be stuck sending to a dead peer).
    pub(crate) fn remove(&mut self, peer: &I) {
        if let Some(queue) = self.queues.remove(peer) {
            queue.task.abort();
        }
    }

    /// Stops every task and waits until they have ended.
    pub(crate) async fn shutdown(&mut self) {
        let tasks: Vec<JoinHandle<()>> = self
            .queues
            .drain()
            .map(|(_, q)| {
                q.task.abort();
                q.task
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn spawn(&self, peer: I) -> PeerQueue {
        let (control, mut control_rx) = mpsc::channel::<Frame>(self.capacity);
        let (payload, mut payload_rx) = mpsc::channel::<Frame>(self.capacity);
        let progress = Arc::new(AtomicU64::new(self.elapsed_ms()));
        let pending = Arc::new(AtomicUsize::new(0));
        let transport = Arc::clone(&self.transport);
        let epoch = self.epoch;
        let (task_progress, task_pending) = (Arc::clone(&progress), Arc::clone(&pending));
        let task = tokio::spawn(async move {
            loop {
                let first = tokio::select! {
                    biased;
                    Some(frame) = control_rx.recv() => frame,
                    Some(frame) = payload_rx.recv() => frame,
                    else => break,
                };
                // For transports that batch, whatever queued up while the last send was in
                // flight goes in one call, control frames first.
                let mut next = || {
                    control_rx
                        .try_recv()
                        .or_else(|_| payload_rx.try_recv())
                        .ok()
                };
                let second = if T::MAX_BATCH > 1 { next() } else { None };
                let (result, sent) = match second {
                    None => (transport.send(&peer, first).await, 1),
                    Some(second) => {
                        let mut bytes = first.len() + second.len();
                        let mut batch = vec![first, second];
                        while batch.len() < T::MAX_BATCH && bytes < MAX_BATCH_BYTES {
                            let Some(frame) = next() else { break };
                            bytes += frame.len();
                            batch.push(frame);
                        }
                        let sent = batch.len();
                        (transport.send_batch(&peer, batch).await, sent)
                    }
                };
                if let Err(error) = result {
                    tracing::debug!(%error, "frames not sent");
                }
                task_progress.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                // Release: pairs with `push`, which may hand the next frame over directly.
                task_pending.fetch_sub(sent, Ordering::Release);
            }
        });
        PeerQueue {
            control,
            payload,
            progress,
            pending,
            task,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::runtime::TransportError;

    /// Takes every other frame at once; the rest go through `send`, which yields first so that
    /// the send task is still busy when the next frames are pushed.
    #[derive(Default)]
    struct EveryOther {
        direct: AtomicBool,
        arrived: Mutex<Vec<u8>>,
    }

    impl Transport<u64> for EveryOther {
        async fn send(&self, _: &u64, frame: Frame) -> Result<(), TransportError> {
            tokio::task::yield_now().await;
            self.arrived.lock().unwrap().push(frame.get(0).unwrap());
            Ok(())
        }

        fn try_send(&self, _: &u64, frame: Frame) -> Result<(), Frame> {
            if self.direct.fetch_xor(true, Ordering::Relaxed) {
                self.arrived.lock().unwrap().push(frame.get(0).unwrap());
                Ok(())
            } else {
                Err(frame)
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_handed_over_directly_never_overtake_queued_ones() {
        let transport = Arc::new(EveryOther::default());
        let mut outbox = Outbox::new(Arc::clone(&transport), 256, Duration::from_secs(1));
        for i in 0..=255u8 {
            let frame = Frame::from(bytes::Bytes::from(vec![i]));
            assert!(outbox.push(&1, frame));
            if i % 8 == 0 {
                tokio::task::yield_now().await; // let the task drain now and then
            }
        }
        while transport.arrived.lock().unwrap().len() < 256 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let arrived = transport.arrived.lock().unwrap().clone();
        assert_eq!(arrived, (0..=255).collect::<Vec<u8>>());
        outbox.shutdown().await;
    }
}
