//! Per-peer send queues: one task per peer, control frames ahead of payloads, bounded.
//!
//! A peer that is slow or dead fills only its own queue; frames beyond the bound are dropped and
//! counted, and the other peers' tasks carry on. The protocol repairs what a drop loses (the
//! receiver is announced the payload and grafts it).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::transport::Transport;

/// Most bytes in one batch (see `Transport::MAX_BATCH`): past it no further frame is added (the
/// first always goes), so that a batch stays a reasonable message for transports that send it
/// as one.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// Which queue a frame waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// IHave, Graft, Prune: small and urgent.
    Control,
    /// Gossip.
    Payload,
}

#[derive(Debug)]
struct PeerQueue {
    control: mpsc::Sender<Bytes>,
    payload: mpsc::Sender<Bytes>,
    /// Milliseconds since `Outbox::epoch` when the task last handed a frame to the transport.
    progress: Arc<AtomicU64>,
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

    /// Queues `frame` for `to`; false if that queue is full and the frame was dropped.
    pub(crate) fn push(&mut self, to: &I, lane: Lane, frame: Bytes) -> bool {
        let queue = match self.queues.get(to) {
            Some(queue) => queue,
            None => {
                let queue = self.spawn(to.clone());
                self.queues.entry(to.clone()).or_insert(queue)
            }
        };
        let sender = match lane {
            Lane::Control => &queue.control,
            Lane::Payload => &queue.payload,
        };
        match sender.try_send(frame) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => false,
            Err(TrySendError::Closed(_)) => false,
        }
    }

    /// Whether a new broadcast may enter: no payload queue is more than half full, except queues
    /// whose task has made no progress for `stall_timeout` (a dead peer must not stall the node;
    /// its queue just drops).
    pub(crate) fn has_room(&self) -> bool {
        let now = self.elapsed_ms();
        let stall = self.stall_timeout.as_millis() as u64;
        self.queues.values().all(|q| {
            let queued = self.capacity - q.payload.capacity();
            queued * 2 < self.capacity
                || now.saturating_sub(q.progress.load(Ordering::Relaxed)) > stall
        })
    }

    /// How long a peer's queue may stand still before it no longer holds the node back.
    pub(crate) fn stall_timeout(&self) -> Duration {
        self.stall_timeout
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
        let (control, mut control_rx) = mpsc::channel::<Bytes>(self.capacity);
        let (payload, mut payload_rx) = mpsc::channel::<Bytes>(self.capacity);
        let progress = Arc::new(AtomicU64::new(self.elapsed_ms()));
        let transport = Arc::clone(&self.transport);
        let epoch = self.epoch;
        let task_progress = Arc::clone(&progress);
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
                let result = match second {
                    None => transport.send(&peer, first).await,
                    Some(second) => {
                        let mut bytes = first.len() + second.len();
                        let mut batch = vec![first, second];
                        while batch.len() < T::MAX_BATCH && bytes < MAX_BATCH_BYTES {
                            let Some(frame) = next() else { break };
                            bytes += frame.len();
                            batch.push(frame);
                        }
                        transport.send_batch(&peer, batch).await
                    }
                };
                if let Err(error) = result {
                    tracing::debug!(%error, "frames not sent");
                }
                task_progress.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
        });
        PeerQueue {
            control,
            payload,
            progress,
            task,
        }
    }
}
