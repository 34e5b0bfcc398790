//! The runtime's metrics, through the `metrics` crate (feature `metrics`); docs/metrics.md lists
//! them. Every metric carries a `node` label with the node's id, so that several nodes in one
//! process do not mix.
//!
//! Handles are registered once per node, so recording is an atomic add. Without the feature the
//! handles record nothing (src/telemetry.rs).

use crate::message::MessageKind;
use crate::telemetry::{Counter, Gauge, counter, gauge};

/// Registered handles of one node.
#[derive(Debug)]
pub(crate) struct Metrics {
    sent: [Counter; MessageKind::ALL.len()],
    sent_bytes: Counter,
    received: [Counter; MessageKind::ALL.len()],
    received_bytes: Counter,
    deliveries: Counter,
    duplicates: Counter,
    dropped_outbound: Counter,
    dropped_inbound: Counter,
    decode_errors: Counter,
    non_members: Counter,
    bad_signatures: Counter,
    given_up: Counter,
    gaps: Counter,
    eager: Gauge,
    lazy: Gauge,
    cache_entries: Gauge,
    cache_bytes: Gauge,
    queued: Gauge,
}

impl Metrics {
    pub(crate) fn new(node: String) -> Self {
        let by_kind = |name: &'static str| {
            MessageKind::ALL
                .map(|kind| counter!(name, "node" => node.clone(), "type" => kind.as_str()))
        };
        let one = |name: &'static str| counter!(name, "node" => node.clone());
        let level = |name: &'static str| gauge!(name, "node" => node.clone());
        Self {
            sent: by_kind("plumtree_messages_sent_total"),
            sent_bytes: one("plumtree_bytes_sent_total"),
            received: by_kind("plumtree_messages_received_total"),
            received_bytes: one("plumtree_bytes_received_total"),
            deliveries: one("plumtree_deliveries_total"),
            duplicates: one("plumtree_duplicates_total"),
            dropped_outbound: counter!("plumtree_frames_dropped_total", "node" => node.clone(), "direction" => "outbound"),
            dropped_inbound: counter!("plumtree_frames_dropped_total", "node" => node.clone(), "direction" => "inbound"),
            decode_errors: one("plumtree_decode_errors_total"),
            non_members: one("plumtree_non_member_messages_total"),
            bad_signatures: one("plumtree_bad_signatures_total"),
            given_up: one("plumtree_payloads_given_up_total"),
            gaps: one("plumtree_gap_payloads_total"),
            eager: level("plumtree_eager_peers"),
            lazy: level("plumtree_lazy_peers"),
            cache_entries: level("plumtree_cache_entries"),
            cache_bytes: level("plumtree_cache_bytes"),
            queued: level("plumtree_queued_frames"),
        }
    }

    pub(crate) fn sent(&self, kind: MessageKind, bytes: usize) {
        self.sent[kind as usize].increment(1);
        self.sent_bytes.increment(bytes as u64);
    }

    pub(crate) fn received(&self, kind: MessageKind, bytes: usize) {
        self.received[kind as usize].increment(1);
        self.received_bytes.increment(bytes as u64);
    }

    pub(crate) fn delivered(&self) {
        self.deliveries.increment(1);
    }

    pub(crate) fn dropped_outbound(&self) {
        self.dropped_outbound.increment(1);
    }

    pub(crate) fn gave_up(&self) {
        self.given_up.increment(1);
    }

    pub(crate) fn gap(&self, count: u64) {
        self.gaps.increment(count);
    }

    pub(crate) fn decode_error(&self) {
        self.decode_errors.increment(1);
    }

    /// Levels and totals kept elsewhere, published now and then.
    pub(crate) fn publish(&self, levels: &Levels) {
        self.eager.set(levels.eager as f64);
        self.lazy.set(levels.lazy as f64);
        self.cache_entries.set(levels.cache_entries as f64);
        self.cache_bytes.set(levels.cache_bytes as f64);
        self.queued.set(levels.queued as f64);
        self.duplicates.absolute(levels.duplicates);
        self.dropped_inbound.absolute(levels.dropped_inbound);
        self.non_members.absolute(levels.from_non_members);
        self.bad_signatures.absolute(levels.bad_signatures);
    }
}

/// Values published as gauges (and counters kept outside the metrics handles).
#[derive(Debug, Default)]
pub(crate) struct Levels {
    pub(crate) eager: usize,
    pub(crate) lazy: usize,
    pub(crate) cache_entries: usize,
    pub(crate) cache_bytes: usize,
    pub(crate) queued: usize,
    pub(crate) duplicates: u64,
    pub(crate) dropped_inbound: u64,
    pub(crate) from_non_members: u64,
    pub(crate) bad_signatures: u64,
}
