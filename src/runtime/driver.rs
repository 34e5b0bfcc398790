//! The protocol task: owns the core, feeds it, and carries out what it asks.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::alarm::Alarm;
use super::broadcasts::{BroadcastQueue, QueuedBroadcast};
use super::encode::Encoder;
use super::inbound::Inbound;
use super::metrics::{Levels, Metrics};
use super::options::RuntimeConfig;
use super::outbox::Outbox;
use super::pacing::Pacing;
use super::stats::{Counters, NodeStats};
use super::transport::Transport;
use crate::message::DecodeLimits;
use crate::proto::{Event, Plumtree};
use crate::{Envelope, Frame, NodeId, TopicId};

/// Membership changes and queries: rare, never dropped.
#[derive(Debug)]
pub(crate) enum Control<I> {
    AddPeers(Vec<I>),
    RemovePeer(I),
    Rtt(I, Duration),
    Stats(oneshot::Sender<NodeStats<I>>),
    Shutdown,
}

/// How often a congested node looks again whether its queues have room.
const CONGESTION_RECHECK: Duration = Duration::from_millis(1);

/// Frames taken from the inbound queue in one turn of the protocol task.
pub(crate) const INBOUND_BATCH: usize = 64;

/// Most broadcasts taken in one turn.
const BROADCAST_BATCH: usize = 8;

/// At most one warning this often for payloads given up (grafts or anti-entropy).
const GAVE_UP_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// A warning logged at most once per [`GAVE_UP_LOG_INTERVAL`], with the count since the last:
/// a repair storm or a long partition gives up thousands at once, and the delegate hears of every
/// one anyway.
#[derive(Debug, Default)]
struct Throttled {
    logged: Option<Instant>,
    unlogged: u64,
}

impl Throttled {
    /// Adds `count`; returns the count to log if a line is due.
    fn add(&mut self, count: u64) -> Option<u64> {
        self.unlogged = self.unlogged.saturating_add(count);
        if self
            .logged
            .is_some_and(|at| at.elapsed() < GAVE_UP_LOG_INTERVAL)
        {
            return None;
        }
        self.logged = Some(Instant::now());
        Some(std::mem::take(&mut self.unlogged))
    }
}

/// How often gauges are refreshed.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub(crate) struct Driver<I: NodeId, T> {
    core: Plumtree<I>,
    outbox: Outbox<I, T>,
    /// The delivery task's end: one batch of events per turn.
    events: mpsc::Sender<Vec<Event<I>>>,
    encoder: Encoder<I>,
    pacing: Pacing,
    limits: DecodeLimits,
    outbound_dropped: u64,
    decode_errors: u64,
    counters: Arc<Counters>,
    metrics: Metrics,
    published: Instant,
    /// Warnings for payloads given up by grafts, and by anti-entropy.
    gave_up: Throttled,
    gaps: Throttled,
    /// Events the last turn handed over: the next turn's vector starts that large instead of
    /// growing through several reallocations.
    events_last: usize,
}

impl<I: NodeId, T: Transport<I>> Driver<I, T> {
    pub(crate) fn new(
        topic: TopicId,
        core: Plumtree<I>,
        transport: Arc<T>,
        runtime: &RuntimeConfig,
        events: mpsc::Sender<Vec<Event<I>>>,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            metrics: Metrics::new(if topic.is_default() {
                format!("{:?}", core.local_id())
            } else {
                format!("{:?}#{}", core.local_id(), topic.get())
            }),
            counters,
            published: Instant::now(),
            encoder: Encoder::new(topic),
            pacing: Pacing::new(runtime.stall_timeout),
            events_last: 0,
            gave_up: Throttled::default(),
            gaps: Throttled::default(),
            limits: core.config().decode_limits(),
            core,
            outbox: Outbox::new(
                transport,
                runtime.peer_queue_capacity,
                runtime.stall_timeout,
            ),
            events,
            outbound_dropped: 0,
            decode_errors: 0,
        }
    }

    /// Runs until shutdown, or until every handle to the node is gone.
    pub(crate) async fn run(
        mut self,
        mut control: mpsc::UnboundedReceiver<Control<I>>,
        mut frames: Inbound,
        mut broadcasts: BroadcastQueue,
    ) {
        // The core's deadline, the congestion recheck and admission.
        let (mut timer, mut recheck, mut admit) = (Alarm::new(), Alarm::new(), Alarm::new());
        loop {
            timer.set(self.core.poll_timeout());
            // A broadcast enters only when the cache can keep it, and every payload before it,
            // for as long as a repair may ask for them (`Plumtree::broadcast_room_at`).
            admit.set(self.core.broadcast_room_at(now()));
            let room = self.outbox.has_room();
            if room {
                recheck.set(None);
            } else if !recheck.is_armed() {
                recheck.set(Some(now() + CONGESTION_RECHECK));
            }
            let allowed = self.pacing.allowed(room, !frames.is_empty());
            tokio::select! {
                biased;
                command = control.recv() => {
                    if !self.on_control(command) {
                        break;
                    }
                }
                // Timers before frames: under a flood of frames, IHave flushes and grafts (the
                // repairs) must still run, unless pacing holds them (src/runtime/pacing.rs).
                () = timer.fired(), if timer.is_armed() && allowed.timers => {
                    self.core.handle_timeout(now());
                }
                Some(frame) = frames.recv(), if allowed.frames => {
                    self.take_frames(frame, &mut frames);
                }
                Some(first) = broadcasts.recv(), if allowed.broadcasts && !admit.is_armed() => {
                    self.take_broadcasts(first, &mut broadcasts);
                }
                () = recheck.fired(), if recheck.is_armed() => {}
                () = admit.fired(), if admit.is_armed() => {}
            }
            if !self.flush().await {
                break;
            }
        }
        // `broadcast` returned Ok for every queued broadcast: each is still delivered here (the
        // delivery task runs until this task is gone) and handed to the send queues, which
        // shutdown then stops. No broadcast enters after `close`.
        broadcasts.close();
        while let Some(queued) = broadcasts.try_recv() {
            self.core.broadcast_as(now(), queued.id, queued.payload);
        }
        self.flush().await;
        self.outbox.shutdown().await;
    }

    /// Carries out a control command; false when the task must end.
    fn on_control(&mut self, command: Option<Control<I>>) -> bool {
        match command {
            Some(Control::AddPeers(peers)) => {
                self.core.add_peers(now(), peers);
            }
            Some(Control::RemovePeer(peer)) => {
                self.core.remove_peer(now(), &peer);
                self.outbox.remove(&peer);
            }
            Some(Control::Rtt(peer, rtt)) => self.core.record_rtt(&peer, rtt),
            Some(Control::Stats(reply)) => {
                let _ = reply.send(self.stats());
            }
            Some(Control::Shutdown) | None => return false,
        }
        true
    }

    /// Takes `first` and whatever else has arrived, in one turn (bounded, so timers and control
    /// still get their turn under a flood), with one clock read: they arrived together.
    fn take_frames(&mut self, first: Frame, frames: &mut Inbound) {
        self.pacing.took_frames();
        let now = now();
        self.on_frame(now, first);
        for _ in 1..INBOUND_BATCH {
            match frames.try_recv() {
                Some(frame) => self.on_frame(now, frame),
                None => break,
            }
        }
        frames.release();
    }

    /// Takes `first` and the broadcasts queued behind it in one turn, as long as admission lets
    /// them in: the senders' wait for room then ends once per turn, not once per broadcast. A
    /// broadcast queues at most one frame per peer, and a queue with room is at most half full:
    /// a quarter of its capacity more cannot overflow it.
    fn take_broadcasts(&mut self, first: QueuedBroadcast, broadcasts: &mut BroadcastQueue) {
        let now = now();
        self.core.broadcast_as(now, first.id, first.payload);
        for _ in 1..self.outbox.capacity().div_ceil(4).min(BROADCAST_BATCH) {
            if self.core.broadcast_room_at(now).is_some() {
                break;
            }
            match broadcasts.try_recv() {
                Some(queued) => self.core.broadcast_as(now, queued.id, queued.payload),
                None => break,
            }
        }
        broadcasts.release();
    }

    fn on_frame(&mut self, now: std::time::Instant, frame: Frame) {
        match Envelope::<I>::decode_frame(&frame, &self.limits) {
            Ok(envelope) => {
                self.metrics.received(envelope.message.kind(), frame.len());
                self.core
                    .handle_message(now, envelope.sender, envelope.message);
            }
            Err(error) => {
                self.decode_errors += 1;
                self.metrics.decode_error();
                tracing::debug!(%error, "dropped a frame that does not decode");
            }
        }
    }

    /// Sends what the core produced and hands its events to the delivery task. False when the
    /// delivery task is gone (the node is shutting down).
    async fn flush(&mut self) -> bool {
        let local = self.core.local_id().clone();
        while let Some(transmit) = self.core.poll_transmit() {
            // Only members get send queues (a task per unknown id would let forged ids spawn
            // tasks without bound): the core guarantees it (`Plumtree::poll_transmit`).
            debug_assert!(self.core.is_member(&transmit.to), "addressed a non-member");
            let kind = transmit.message.kind();
            let envelope = Envelope {
                sender: local.clone(),
                message: transmit.message,
            };
            // Urgency travels with the frame: the send queue and the transport put an urgent
            // frame (control, or a graft's answer) ahead of pushed payloads, whose queue may be
            // full exactly because that peer is behind.
            let frame = self.encoder.frame(&envelope).with_urgent(transmit.urgent);
            self.metrics.sent(kind, frame.len());
            if self.outbox.push(&transmit.to, frame.clone()) {
                self.encoder.sent(envelope.message, frame);
            } else {
                self.outbound_dropped += 1;
                self.metrics.dropped_outbound();
                // What the frame carried is announced again later, so the peer can graft it.
                self.core
                    .handle_undelivered(now(), &transmit.to, envelope.message);
            }
        }
        self.encoder.end_turn();
        let mut events = Vec::with_capacity(self.events_last);
        while let Some(event) = self.core.poll_event() {
            match &event {
                Event::Deliver(_) => self.metrics.delivered(),
                Event::GaveUp { id } => {
                    self.metrics.gave_up();
                    if let Some(count) = self.gave_up.add(1) {
                        tracing::warn!(
                            %id,
                            count,
                            "gave up payloads that no announcer supplied (count: since the last such line)"
                        );
                    }
                }
                Event::Gap { first, count } => {
                    self.metrics.gap(*count);
                    if let Some(count) = self.gaps.add(*count) {
                        tracing::warn!(
                            %first,
                            count,
                            "anti-entropy gave up on payloads no neighbour caches (count: since the last such line)"
                        );
                    }
                }
                _ => {}
            }
            events.push(event);
        }
        // One hand-off per turn: a send (and often a wake of the delivery task) per event cost
        // more than the delegate calls themselves.
        self.events_last = events.len();
        if !events.is_empty() && self.events.send(events).await.is_err() {
            return false;
        }
        if self.published.elapsed() >= PUBLISH_INTERVAL {
            self.publish();
        }
        true
    }

    fn publish(&mut self) {
        self.published = Instant::now();
        let (cache_entries, cache_bytes) = self.core.cache_usage();
        self.metrics.publish(&Levels {
            eager: self.core.eager_peers().count(),
            lazy: self.core.lazy_peers().count(),
            cache_entries,
            cache_bytes,
            queued: self.outbox.depth(),
            duplicates: self.core.stats().duplicates,
            from_non_members: self.core.stats().from_non_members,
            bad_signatures: self.core.stats().bad_signatures,
            dropped_inbound: self.counters.inbound_dropped.load(Ordering::Relaxed),
        });
    }

    fn stats(&self) -> NodeStats<I> {
        NodeStats {
            protocol: *self.core.stats(),
            eager: self.core.eager_peers().cloned().collect(),
            lazy: self.core.lazy_peers().cloned().collect(),
            members: self.core.members().len(),
            cache: self.core.cache_usage(),
            seen: self.core.seen_len(),
            peers_with_rtt: self.core.peers_with_rtt(),
            queued_frames: self.outbox.depth(),
            outbound_dropped: self.outbound_dropped,
            inbound_dropped: self.counters.inbound_dropped.load(Ordering::Relaxed),
            decode_errors: self.decode_errors,
            unrouted_frames: 0,
        }
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}
