//! The queue of broadcasts between a node's handle and its protocol task.
//!
//! It holds at most `broadcast_capacity` broadcasts, and the protocol task gives their room back
//! in batches (src/runtime/budget.rs): once it has taken half the capacity, or everything that
//! was queued, so that a sender on another thread than the protocol task (a service's `main`)
//! wakes once per batch instead of once or twice per broadcast.

use bytes::Bytes;

use super::budget::{self, BudgetReceiver, BudgetSender, Reserved, Unavailable};
use crate::proto::IdSource;
use crate::{BroadcastError, MessageId};

/// A broadcast waiting for the protocol task, already named and size-checked by the handle.
#[derive(Debug)]
pub(crate) struct QueuedBroadcast {
    pub(crate) id: MessageId,
    pub(crate) payload: Bytes,
}

/// A queue of at most `capacity` broadcasts, named from `ids`: the handle's end and the
/// protocol task's end.
pub(crate) fn channel(capacity: usize, ids: IdSource) -> (BroadcastSender, BroadcastQueue) {
    let (queue, requests) = budget::channel(capacity, capacity / 2);
    (BroadcastSender { queue, ids }, requests)
}

/// The protocol task's end: it gives the room back with `release` after each turn, and `close`s
/// it at shutdown (every broadcast whose sender got `Ok` is still taken).
pub(crate) type BroadcastQueue = BudgetReceiver<QueuedBroadcast>;

/// The handle's end: names broadcasts and queues them.
#[derive(Debug)]
pub(crate) struct BroadcastSender {
    queue: BudgetSender<QueuedBroadcast>,
    /// Shared with the core, which names the broadcasts it is given directly the same way.
    ids: IdSource,
}

fn refused(why: Unavailable) -> BroadcastError {
    match why {
        Unavailable::Full => BroadcastError::Backpressure,
        Unavailable::Closed => BroadcastError::Closed,
    }
}

impl BroadcastSender {
    /// Queues `payload`, waiting for room.
    ///
    /// # Cancel safety
    /// Cancel safe: if cancelled, nothing was queued.
    pub(crate) async fn send(&self, payload: Bytes) -> Result<MessageId, BroadcastError> {
        let room = self.queue.reserve(1).await.map_err(refused)?;
        self.push(room, payload)
    }

    /// Queues `payload` if there is room now.
    pub(crate) fn try_send(&self, payload: Bytes) -> Result<MessageId, BroadcastError> {
        let room = self.queue.try_reserve(1).map_err(refused)?;
        self.push(room, payload)
    }

    /// Named only once it has room: a refused broadcast leaves no gap in the sequence.
    fn push(
        &self,
        room: Reserved<'_, QueuedBroadcast>,
        payload: Bytes,
    ) -> Result<MessageId, BroadcastError> {
        let id = self.ids.next();
        room.push(QueuedBroadcast { id, payload })
            .map_err(|_| BroadcastError::Closed)?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(capacity: usize) -> (BroadcastSender, BroadcastQueue) {
        channel(capacity, IdSource::new(1, 2))
    }

    fn send(sender: &BroadcastSender) -> Result<MessageId, BroadcastError> {
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
