//! Counters of the QUIC transport: read as [`QuicStats`], published through the `metrics` crate
//! (feature `metrics`) with a `node` label.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::telemetry::{Counter, Gauge, counter, gauge};

/// Why a received frame (or a whole connection) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// The declared length was zero or over `max_frame_size`; the connection was closed before
    /// any of the frame was read.
    Oversize,
    /// The frame's sender is not the node the peer's certificate names; the connection was
    /// closed.
    SpoofedSender,
    /// The frame was too short to name a sender, or a stream did not start with our header.
    Malformed,
}

impl RejectReason {
    const ALL: [RejectReason; 3] = [Self::Oversize, Self::SpoofedSender, Self::Malformed];

    /// The `reason` label in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oversize => "oversize",
            Self::SpoofedSender => "spoofed_sender",
            Self::Malformed => "malformed",
        }
    }
}

/// A snapshot of a [`QuicTransport`](super::QuicTransport)'s counters (all since it was bound).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuicStats {
    /// Connections open now, both directions.
    pub connections: u64,
    /// Connections this node dialed successfully.
    pub dials: u64,
    /// Connections (either direction) to a peer we had been connected to before and lost.
    pub reconnects: u64,
    /// Dials and accepts whose handshake failed (wrong CA, wrong name, timeout).
    pub handshake_failures: u64,
    /// Frames written to peers.
    pub frames_sent: u64,
    /// Bytes of those frames (without the 4-byte length prefix).
    pub bytes_sent: u64,
    /// Frames received and handed to the node.
    pub frames_received: u64,
    /// Bytes of those frames.
    pub bytes_received: u64,
    /// Frames refused because their length was out of bounds.
    pub rejected_oversize: u64,
    /// Frames refused because their sender was not the certificate's node.
    pub rejected_spoofed: u64,
    /// Frames or streams refused as malformed.
    pub rejected_malformed: u64,
}

/// The live counters, shared by every task of one transport.
#[derive(Debug)]
pub(crate) struct Counters {
    connections: AtomicU64,
    dials: AtomicU64,
    reconnects: AtomicU64,
    handshake_failures: AtomicU64,
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    frames_received: AtomicU64,
    bytes_received: AtomicU64,
    rejected: [AtomicU64; 3],
    metrics: Handles,
}

impl Counters {
    pub(crate) fn new(node: String) -> Self {
        Self {
            connections: AtomicU64::new(0),
            dials: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            handshake_failures: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            frames_received: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            rejected: Default::default(),
            metrics: Handles::new(node),
        }
    }

    pub(crate) fn opened(&self) {
        let now = self.connections.fetch_add(1, Relaxed) + 1;
        self.metrics.connections(now);
    }

    pub(crate) fn closed(&self) {
        let now = self.connections.fetch_sub(1, Relaxed) - 1;
        self.metrics.connections(now);
    }

    pub(crate) fn dialed(&self) {
        self.dials.fetch_add(1, Relaxed);
        self.metrics.dialed();
    }

    pub(crate) fn reconnected(&self) {
        self.reconnects.fetch_add(1, Relaxed);
        self.metrics.reconnected();
    }

    pub(crate) fn handshake_failed(&self) {
        self.handshake_failures.fetch_add(1, Relaxed);
        self.metrics.handshake_failed();
    }

    pub(crate) fn sent(&self, bytes: usize) {
        self.frames_sent.fetch_add(1, Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Relaxed);
        self.metrics.sent(bytes);
    }

    pub(crate) fn received(&self, bytes: usize) {
        self.frames_received.fetch_add(1, Relaxed);
        self.bytes_received.fetch_add(bytes as u64, Relaxed);
        self.metrics.received(bytes);
    }

    pub(crate) fn rejected(&self, reason: RejectReason) {
        self.rejected[reason as usize].fetch_add(1, Relaxed);
        self.metrics.rejected(reason);
    }

    pub(crate) fn snapshot(&self) -> QuicStats {
        QuicStats {
            connections: self.connections.load(Relaxed),
            dials: self.dials.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            handshake_failures: self.handshake_failures.load(Relaxed),
            frames_sent: self.frames_sent.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            frames_received: self.frames_received.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
            rejected_oversize: self.rejected[RejectReason::Oversize as usize].load(Relaxed),
            rejected_spoofed: self.rejected[RejectReason::SpoofedSender as usize].load(Relaxed),
            rejected_malformed: self.rejected[RejectReason::Malformed as usize].load(Relaxed),
        }
    }
}

#[derive(Debug)]
struct Handles {
    connections: Gauge,
    dials: Counter,
    reconnects: Counter,
    handshake_failures: Counter,
    frames_sent: Counter,
    bytes_sent: Counter,
    frames_received: Counter,
    bytes_received: Counter,
    rejected: [Counter; 3],
}

impl Handles {
    fn new(node: String) -> Self {
        let one = |name: &'static str| counter!(name, "node" => node.clone());
        Self {
            connections: gauge!("plumtree_quic_connections", "node" => node.clone()),
            dials: one("plumtree_quic_dials_total"),
            reconnects: one("plumtree_quic_reconnects_total"),
            handshake_failures: one("plumtree_quic_handshake_failures_total"),
            frames_sent: counter!("plumtree_quic_frames_total", "node" => node.clone(), "direction" => "out"),
            bytes_sent: counter!("plumtree_quic_bytes_total", "node" => node.clone(), "direction" => "out"),
            frames_received: counter!("plumtree_quic_frames_total", "node" => node.clone(), "direction" => "in"),
            bytes_received: counter!("plumtree_quic_bytes_total", "node" => node.clone(), "direction" => "in"),
            rejected: RejectReason::ALL.map(|reason| {
                counter!("plumtree_quic_rejected_frames_total", "node" => node.clone(), "reason" => reason.as_str())
            }),
        }
    }
    fn connections(&self, now: u64) {
        self.connections.set(now as f64);
    }
    fn dialed(&self) {
        self.dials.increment(1);
    }
    fn reconnected(&self) {
        self.reconnects.increment(1);
    }
    fn handshake_failed(&self) {
        self.handshake_failures.increment(1);
    }
    fn sent(&self, bytes: usize) {
        self.frames_sent.increment(1);
        self.bytes_sent.increment(bytes as u64);
    }
    fn received(&self, bytes: usize) {
        self.frames_received.increment(1);
        self.bytes_received.increment(bytes as u64);
    }
    fn rejected(&self, reason: RejectReason) {
        self.rejected[reason as usize].increment(1);
    }
}
