//! What the simulator measures: per-broadcast records and traffic counts.

use std::time::Duration;

use crate::message::{MessageId, MessageKind};

/// Everything measured about one broadcast.
#[derive(Clone, Debug)]
pub struct MessageRecord {
    /// The broadcast's id.
    pub id: MessageId,
    /// Its origin.
    pub origin: u64,
    /// When it was broadcast (virtual time since the start).
    pub sent_at: Duration,
    /// Gossip frames (payload copies) sent for it, graft answers included.
    pub payload_messages: u64,
    /// Nodes other than the origin that delivered it.
    pub delivered: u64,
    /// Largest hop count at first delivery.
    pub max_hops: u32,
    /// Time from broadcast to each delivery, in delivery order.
    pub latencies: Vec<Duration>,
    /// Which nodes were running at broadcast time, by index.
    live_at_send: Vec<bool>,
    /// Which nodes delivered it, by index.
    delivered_by: Vec<bool>,
}

impl MessageRecord {
    pub(crate) fn new(
        id: MessageId,
        origin: u64,
        sent_at: Duration,
        live_at_send: Vec<bool>,
    ) -> Self {
        let delivered_by = vec![false; live_at_send.len()];
        Self {
            id,
            origin,
            sent_at,
            payload_messages: 0,
            delivered: 0,
            max_hops: 0,
            latencies: Vec::new(),
            live_at_send,
            delivered_by,
        }
    }

    /// Records a delivery at `node`; false if that node had delivered it already.
    pub(crate) fn deliver(&mut self, node: u64, hops: u32, at: Duration) -> bool {
        let node = node as usize;
        if node >= self.delivered_by.len() {
            return true; // joined after the broadcast: not part of this broadcast's audience
        }
        if node as u64 == self.origin {
            return !std::mem::replace(&mut self.delivered_by[node], true);
        }
        if std::mem::replace(&mut self.delivered_by[node], true) {
            return false;
        }
        self.delivered += 1;
        self.max_hops = self.max_hops.max(hops);
        self.latencies.push(at.saturating_sub(self.sent_at));
        true
    }

    /// Whether node `node` delivered this broadcast.
    pub fn delivered_at(&self, node: u64) -> bool {
        self.delivered_by
            .get(node as usize)
            .copied()
            .unwrap_or(false)
    }

    /// Receivers that delivered it, over the nodes that should have: running at broadcast time and
    /// for which `alive_now` holds, the origin excepted. 1.0 when there is nobody to reach.
    pub fn reliability(&self, alive_now: impl Fn(u64) -> bool) -> f64 {
        let mut expected = 0u64;
        let mut got = 0u64;
        for (i, &live) in self.live_at_send.iter().enumerate() {
            let i = i as u64;
            if live && i != self.origin && alive_now(i) {
                expected += 1;
                got += u64::from(self.delivered_by[i as usize]);
            }
        }
        if expected == 0 {
            1.0
        } else {
            got as f64 / expected as f64
        }
    }

    /// Relative message redundancy: payload copies per receiver, minus one. 0 is a perfect tree.
    pub fn rmr(&self) -> f64 {
        if self.delivered == 0 {
            0.0
        } else {
            self.payload_messages as f64 / self.delivered as f64 - 1.0
        }
    }

    /// Time from broadcast to the last delivery.
    pub fn last_delivery(&self) -> Duration {
        self.latencies.iter().copied().max().unwrap_or_default()
    }
}

/// Frames sent, by kind, and their bytes on the wire (envelopes as encoded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    counts: [u64; MessageKind::ALL.len()],
    bytes: u64,
}

impl Traffic {
    pub(crate) fn count(&mut self, kind: MessageKind, bytes: usize) {
        self.counts[kind as usize] += 1;
        self.bytes += bytes as u64;
    }

    /// Bytes of every frame sent so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Frames of `kind` sent so far.
    pub fn get(&self, kind: MessageKind) -> u64 {
        self.counts[kind as usize]
    }
}

/// What a node that never delivered a payload knows of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossState {
    /// Given up and reported as a gap.
    Reported,
    /// Known to be missing, not given up yet.
    Pending,
    /// Nothing: the node has not learnt of it.
    Unknown,
}
