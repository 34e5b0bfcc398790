//! The delivery task: hands the core's events to the delegate, in order, and feeds the delivery
//! stream if it was taken.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use super::delegate::PlumtreeDelegate;
use crate::NodeId;
use crate::proto::{Delivery, Event};

/// Runs until the protocol task drops its end of `events` (one batch per protocol turn).
pub(crate) async fn deliver<I: NodeId, D: PlumtreeDelegate<I>>(
    mut events: mpsc::Receiver<Vec<Event<I>>>,
    delegate: Arc<D>,
    stream: mpsc::Sender<Delivery<I>>,
    stream_taken: Arc<AtomicBool>,
) {
    while let Some(batch) = events.recv().await {
        for event in batch {
            match event {
                Event::Deliver(delivery) => {
                    if stream_taken.load(Ordering::Acquire) {
                        // A reader that went away only stops the stream, not the delegate.
                        let _ = stream.send(delivery.clone()).await;
                    }
                    delegate.on_deliver(delivery);
                }
                Event::Promoted { peer } => delegate.on_promote(&peer),
                Event::Demoted { peer } => delegate.on_demote(&peer),
                Event::GraftSent { peer } => delegate.on_graft(&peer),
                Event::PruneSent { peer } => delegate.on_prune(&peer),
                Event::GaveUp { id } => delegate.on_give_up(&id),
                Event::Gap { first, count } => delegate.on_gap(&first, count),
                Event::NeighbourAdded { .. } | Event::NeighbourRemoved { .. } => {}
            }
        }
    }
}
