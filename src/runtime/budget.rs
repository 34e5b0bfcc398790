//! A queue bounded by a budget: each item costs some permits, taken by the sender before it
//! queues and given back by the receiver in batches.
//!
//! The runtime's inbound queue (a cost in bytes) and its broadcast queue (one per broadcast) are
//! both this. A bounded channel bounds items, not bytes, and gives each slot back as its item is
//! taken, waking a waiting sender every time; here the receiver gives back `release_at` permits
//! at once (or all it holds once the queue is empty), so a waiting sender wakes once per batch.

use std::sync::Arc;

use tokio::sync::{Semaphore, TryAcquireError, mpsc};

/// The sending and the receiving end of a queue of `permits`, given back `release_at` at a time.
pub(crate) fn channel<T>(
    permits: usize,
    release_at: usize,
) -> (BudgetSender<T>, BudgetReceiver<T>) {
    let budget = Arc::new(Semaphore::new(permits));
    let (tx, rx) = mpsc::unbounded_channel();
    let sender = BudgetSender {
        tx,
        budget: Arc::clone(&budget),
    };
    let receiver = BudgetReceiver {
        rx,
        budget,
        taken: 0,
        release_at: release_at.max(1),
    };
    (sender, receiver)
}

/// Why no permits were reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// Not enough permits now.
    Full,
    /// The receiver is gone or closed the queue.
    Closed,
}

#[derive(Debug)]
pub(crate) struct BudgetSender<T> {
    /// Each item travels with its cost, so that the receiver gives back what was taken.
    tx: mpsc::UnboundedSender<(T, u32)>,
    budget: Arc<Semaphore>,
}

impl<T> Clone for BudgetSender<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            budget: Arc::clone(&self.budget),
        }
    }
}

impl<T> BudgetSender<T> {
    /// Takes `cost` permits, waiting until they are free, for one item to
    /// [`push`](Reserved::push). `cost` must not exceed the permits the queue was made with (it
    /// would wait forever): callers clamp it.
    ///
    /// # Cancel safety
    /// Cancel safe: if cancelled, no permit was taken.
    pub(crate) async fn reserve(&self, cost: u32) -> Result<Reserved<'_, T>, Unavailable> {
        let permits = self
            .budget
            .acquire_many(cost)
            .await
            .map_err(|_| Unavailable::Closed)?;
        permits.forget(); // given back by the receiver, or by `Reserved::drop` if unused
        Ok(Reserved { queue: self, cost })
    }

    /// Takes `cost` permits if they are free now.
    pub(crate) fn try_reserve(&self, cost: u32) -> Result<Reserved<'_, T>, Unavailable> {
        match self.budget.try_acquire_many(cost) {
            Ok(permits) => permits.forget(),
            Err(TryAcquireError::NoPermits) => return Err(Unavailable::Full),
            Err(TryAcquireError::Closed) => return Err(Unavailable::Closed),
        }
        Ok(Reserved { queue: self, cost })
    }

    /// Resolves once the receiver is gone.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub(crate) async fn closed(&self) {
        self.tx.closed().await;
    }
}

/// Permits reserved for one item; given back if dropped unused.
#[derive(Debug)]
pub(crate) struct Reserved<'a, T> {
    queue: &'a BudgetSender<T>,
    cost: u32,
}

impl<T> Reserved<'_, T> {
    /// Queues `item`; gives it back if the queue was closed meanwhile.
    pub(crate) fn push(mut self, item: T) -> Result<(), T> {
        let cost = std::mem::take(&mut self.cost);
        self.queue.tx.send((item, cost)).map_err(|e| e.0.0)
    }
}

impl<T> Drop for Reserved<'_, T> {
    fn drop(&mut self) {
        if self.cost > 0 {
            self.queue.budget.add_permits(self.cost as usize);
        }
    }
}

/// The receiving end. Dropping it closes the queue: waiting senders get their item back.
#[derive(Debug)]
pub(crate) struct BudgetReceiver<T> {
    rx: mpsc::UnboundedReceiver<(T, u32)>,
    budget: Arc<Semaphore>,
    /// Permits of the items taken that have not been given back.
    taken: usize,
    release_at: usize,
}

impl<T> BudgetReceiver<T> {
    /// The next item, waiting for one. Its permits stay taken until [`release`](Self::release).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        let (item, cost) = self.rx.recv().await?;
        self.taken += cost as usize;
        Some(item)
    }

    /// The next item if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        let (item, cost) = self.rx.try_recv().ok()?;
        self.taken += cost as usize;
        Some(item)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Gives back the permits of the items taken, once they reach `release_at` or nothing else
    /// is queued (a sender waiting on a drained queue must not wait for more to be taken).
    pub(crate) fn release(&mut self) {
        if self.taken >= self.release_at || (self.taken > 0 && self.rx.is_empty()) {
            self.budget.add_permits(std::mem::take(&mut self.taken));
        }
    }

    /// Takes no more items: senders are refused from now on, and every item already queued is
    /// still returned by [`try_recv`](Self::try_recv).
    pub(crate) fn close(&mut self) {
        self.budget.close();
        self.rx.close();
    }
}

impl<T> Drop for BudgetReceiver<T> {
    fn drop(&mut self) {
        self.budget.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_reservations_give_their_permits_back() {
        let (sender, mut receiver) = channel::<u8>(3, 3);
        let unused = sender.try_reserve(2).unwrap();
        assert_eq!(sender.try_reserve(2).err(), Some(Unavailable::Full));
        drop(unused);
        sender.try_reserve(3).unwrap().push(7).unwrap();
        assert_eq!(receiver.try_recv(), Some(7));
        receiver.release();
        assert!(sender.try_reserve(3).is_ok());
    }
}
