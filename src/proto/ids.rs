//! [`IdSource`]: the ids a node gives its own broadcasts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::message::MessageId;

/// Names this node's broadcasts: its tag, its incarnation and the next sequence number.
///
/// Clones share the sequence, so the tokio runtime can name a broadcast the moment it is queued
/// and return without a round trip to the protocol task; ids stay unique however many clones
/// hand them out.
#[derive(Clone, Debug)]
pub(crate) struct IdSource {
    origin: u64,
    incarnation: u64,
    last: Arc<AtomicU64>,
}

impl IdSource {
    pub(crate) fn new(origin: u64, incarnation: u64) -> Self {
        Self {
            origin,
            incarnation,
            last: Arc::default(),
        }
    }

    /// A fresh id; sequence numbers start at 1.
    pub(crate) fn next(&self) -> MessageId {
        // Only uniqueness matters: no other memory is ordered by this counter.
        let seq = self.last.fetch_add(1, Ordering::Relaxed) + 1;
        MessageId::new(self.origin, self.incarnation, seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_sequence() {
        let a = IdSource::new(7, 9);
        let b = a.clone();
        let ids = [a.next(), b.next(), a.next()];
        assert_eq!(ids.map(|id| id.seq()), [1, 2, 3]);
        assert!(
            ids.iter()
                .all(|id| id.origin() == 7 && id.incarnation() == 9)
        );
    }
}
