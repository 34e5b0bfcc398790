//! The queue of broadcasts between a node's handle and its protocol task.
//!
//! It holds at most `broadcast_capacity` broadcasts, and the protocol task gives their room back
//! in batches: once it has taken half the capacity, or everything that was queued. An unpaced
//! sender then wakes once per batch. A bounded channel gave each slot back as its broadcast was
//! taken and woke the waiting sender for it; a sender on another thread than the protocol task
//! (a service's `main`) paid a thread wake-up for every one or two broadcasts. In the runtime
//! bench (1 KiB) batching cut context switches from 57,000-75,000 to 7,700-10,500 per invocation
//! and CPU per delivery by 6 to 20% (docs/benchmarks.md, session 8).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{Semaphore, TryAcquireError, mpsc};

use crate::proto::IdSource;
use crate::{BroadcastError, MessageId};

/// A broadcast waiting for the protocol task, already named and size-checked by the handle.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) id: MessageId,
    pub(crate) payload: Bytes,
}

/// A queue of at most `capacity` broadcasts, named from `ids`: the handle's end and the
/// protocol task's end.
pub(crate) fn channel(capacity: usize, ids: IdSource) -> (RequestSender, Requests) {
    let permits = Arc::new(Semaphore::new(capacity));
    let (tx, rx) = mpsc::unbounded_channel();
    let sender = RequestSender {
        tx,
        permits: Arc::clone(&permits),
        ids,
    };
    let requests = Requests {
        rx,
        permits,
        taken: 0,
        batch: (capacity / 2).max(1),
    };
    (sender, requests)
}

/// The handle's end: names broadcasts and queues them.
#[derive(Debug)]
pub(crate) struct RequestSender {
    tx: mpsc::UnboundedSender<Request>,
    permits: Arc<Semaphore>,
    /// Shared with the core, which names the broadcasts it is given directly the same way.
    ids: IdSource,
}

impl RequestSender {
    /// Queues `payload`, waiting for room.
    ///
    /// # Cancel safety
    /// Cancel safe: if cancelled, nothing was queued.
    pub(crate) async fn send(&self, payload: Bytes) -> Result<MessageId, BroadcastError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| BroadcastError::Closed)?;
        // Given back by the protocol task once it has taken the broadcast.
        permit.forget();
        self.queue(payload)
    }

    /// Queues `payload` if there is room now.
    pub(crate) fn try_send(&self, payload: Bytes) -> Result<MessageId, BroadcastError> {
        match self.permits.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(TryAcquireError::NoPermits) => return Err(BroadcastError::Backpressure),
            Err(TryAcquireError::Closed) => return Err(BroadcastError::Closed),
        }
        self.queue(payload)
    }

    fn queue(&self, payload: Bytes) -> Result<MessageId, BroadcastError> {
        let id = self.ids.next();
        // Fails only once the protocol task has closed the queue: then nothing will take it.
        self.tx
            .send(Request { id, payload })
            .map_err(|_| BroadcastError::Closed)?;
        Ok(id)
    }
}

/// The protocol task's end. Dropping it closes the queue.
#[derive(Debug)]
pub(crate) struct Requests {
    rx: mpsc::UnboundedReceiver<Request>,
    permits: Arc<Semaphore>,
    /// Broadcasts taken whose room has not been given back.
    taken: usize,
    /// Room is given back once this many were taken (or the queue is empty).
    batch: usize,
}

impl Requests {
    /// The next broadcast, waiting for one.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub(crate) async fn recv(&mut self) -> Option<Request> {
        let request = self.rx.recv().await?;
        self.taken += 1;
        Some(request)
    }

    /// The next broadcast if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<Request> {
        let request = self.rx.try_recv().ok()?;
        self.taken += 1;
        Some(request)
    }

    /// Gives back the room of the broadcasts taken, once they make a batch or nothing else is
    /// queued (a sender waiting on a drained queue must not wait for more to be taken).
    pub(crate) fn release(&mut self) {
        if self.taken >= self.batch || (self.taken > 0 && self.rx.is_empty()) {
            self.permits.add_permits(std::mem::take(&mut self.taken));
        }
    }

    /// Takes no more broadcasts: senders get [`BroadcastError::Closed`] from now on, and every
    /// broadcast already queued (each one whose sender got `Ok`) is still returned by
    /// [`try_recv`](Self::try_recv).
    pub(crate) fn close(&mut self) {
        self.permits.close();
        self.rx.close();
    }
}

impl Drop for Requests {
    fn drop(&mut self) {
        self.permits.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(capacity: usize) -> (RequestSender, Requests) {
        channel(capacity, IdSource::new(1, 2))
    }

    fn send(sender: &RequestSender) -> Result<MessageId, BroadcastError> {
        sender.try_send(Bytes::from_static(b"x"))
    }

    #[test]
    fn room_comes_back_by_half_the_capacity() {
        let (sender, mut requests) = queue(4);
        for _ in 0..4 {
            send(&sender).unwrap();
        }
        assert_eq!(send(&sender), Err(BroadcastError::Backpressure));
        requests.try_recv().unwrap();
        requests.release(); // one taken, three queued: not yet
        assert_eq!(send(&sender), Err(BroadcastError::Backpressure));
        requests.try_recv().unwrap();
        requests.release(); // two taken: half the capacity
        send(&sender).unwrap();
        send(&sender).unwrap();
        assert_eq!(send(&sender), Err(BroadcastError::Backpressure));
    }

    #[test]
    fn a_drained_queue_gives_all_its_room_back() {
        let (sender, mut requests) = queue(4);
        let id = send(&sender).unwrap();
        assert_eq!(requests.try_recv().map(|r| r.id), Some(id));
        requests.release(); // one taken, none queued
        for _ in 0..4 {
            send(&sender).unwrap();
        }
    }

    #[tokio::test]
    async fn closing_keeps_what_was_queued_and_refuses_the_rest() {
        let (sender, mut requests) = queue(1);
        let queued = sender.send(Bytes::from_static(b"a")).await.unwrap();
        let waiting = tokio::spawn(async move {
            let result = sender.send(Bytes::from_static(b"b")).await;
            (result, sender)
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        requests.close();
        let (result, sender) = waiting.await.unwrap();
        assert_eq!(result, Err(BroadcastError::Closed));
        assert_eq!(send(&sender), Err(BroadcastError::Closed));
        assert_eq!(requests.try_recv().map(|r| r.id), Some(queued));
        assert!(requests.try_recv().is_none());
    }
}
