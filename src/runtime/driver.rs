//! The protocol task: owns the core, feeds it, and carries out what it asks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::delegate::PlumtreeDelegate;
use super::inbound::Inbound;
use super::metrics::{Levels, Metrics};
use super::node::{Counters, NodeStats};
use super::options::RuntimeConfig;
use super::outbox::{Lane, Outbox};
use super::requests::Requests;
use super::transport::Transport;
use crate::message::DecodeLimits;
use crate::message::{Gossip, Graft, IHave};
use crate::proto::{Delivery, Event, Plumtree};
use crate::{Envelope, Frame, Message, MessageId, NodeId};

/// Membership changes and queries: rare, never dropped.
#[derive(Debug)]
pub(crate) enum Control<I> {
    AddPeers(Vec<I>),
    RemovePeer(I),
    Rtt(I, Duration),
    Stats(oneshot::Sender<NodeStats<I>>),
    Shutdown,
}

/// What the delivery task hands to the delegate.
#[derive(Debug)]
pub(crate) enum Notice<I> {
    Event(Event<I>),
    Graft(I),
    Prune(I),
}

/// How often a congested node looks again whether its queues have room.
const CONGESTION_RECHECK: Duration = Duration::from_millis(1);

/// How often a congested node takes one turn of received frames.
const CONGESTED_PACE: Duration = Duration::from_millis(10);

/// Frames taken from the inbound queue in one turn of the protocol task.
pub(crate) const INBOUND_BATCH: usize = 64;

/// Most broadcasts taken in one turn.
const BROADCAST_BATCH: usize = 8;

/// An instant far enough away to stand for "no timer".
const FAR: Duration = Duration::from_secs(86_400 * 365);

/// Bytes in one block that frame heads are cut from (`Driver::encode`).
const FRAME_BLOCK: usize = 16 * 1024;

/// At most one warning this often for payloads given up.
const GAVE_UP_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// How often gauges are refreshed.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub(crate) struct Driver<I: NodeId, T> {
    core: Plumtree<I>,
    outbox: Outbox<I, T>,
    notices: mpsc::Sender<Vec<Notice<I>>>,
    limits: DecodeLimits,
    outbound_dropped: u64,
    decode_errors: u64,
    counters: Arc<Counters>,
    metrics: Metrics,
    published: Instant,
    /// The Grafts (with an id) handled in this turn, so that their answers take the control
    /// lane. A turn takes up to `INBOUND_BATCH` frames: keeping only the last Graft sent the
    /// answers to the others into the payload queues they were meant to skip.
    answering: Vec<(I, MessageId)>,
    /// Frame heads are cut from blocks of `FRAME_BLOCK` bytes, see `encode`.
    block: BytesMut,
    /// When a payload given up was last logged, and how many were given up since.
    gave_up_logged: Option<Instant>,
    gave_up_unlogged: u64,
    /// Notices the last turn handed over: the next turn's vector starts that large instead of
    /// growing through several reallocations.
    notices_last: usize,
}

impl<I: NodeId, T: Transport<I>> Driver<I, T> {
    pub(crate) fn new(
        core: Plumtree<I>,
        transport: Arc<T>,
        runtime: &RuntimeConfig,
        notices: mpsc::Sender<Vec<Notice<I>>>,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            metrics: Metrics::new(format!("{:?}", core.local_id())),
            counters,
            published: Instant::now(),
            answering: Vec::new(),
            block: BytesMut::new(),
            notices_last: 0,
            gave_up_logged: None,
            gave_up_unlogged: 0,
            limits: core.config().decode_limits(),
            core,
            outbox: Outbox::new(
                transport,
                runtime.peer_queue_capacity,
                runtime.stall_timeout,
            ),
            notices,
            outbound_dropped: 0,
            decode_errors: 0,
        }
    }

    /// Runs until shutdown, or until every handle to the node is gone.
    pub(crate) async fn run(
        mut self,
        mut control: mpsc::UnboundedReceiver<Control<I>>,
        mut frames: Inbound,
        mut broadcasts: Requests,
    ) {
        // One timer for the core's deadline and one for the congestion recheck, kept across turns
        // and reset only when their instant changes: a fresh sleep per turn registered and
        // removed a timer (and often woke the timer driver) for every frame.
        let far = Instant::now() + FAR;
        let timer = tokio::time::sleep_until(far);
        let recheck = tokio::time::sleep_until(far);
        // When the cache can take the next broadcast (`Plumtree::broadcast_room_at`).
        let admit = tokio::time::sleep_until(far);
        tokio::pin!(timer, recheck, admit);
        let mut armed: Option<Instant> = None;
        let mut admit_armed: Option<Instant> = None;
        let mut rechecking = false;
        // When the node became congested, and when it took its last paced turn since.
        let mut congested_since: Option<Instant> = None;
        let mut paused_since: Option<Instant> = None;
        loop {
            let deadline = self.core.poll_timeout().map(Instant::from_std);
            if deadline != armed {
                if let Some(at) = deadline {
                    timer.as_mut().reset(at);
                }
                armed = deadline;
            }
            // A broadcast enters only when the cache can keep it, and every payload before it,
            // for as long as a repair may ask for them: past that rate, payloads that needed
            // repair were lost (issue 24). The wait holds `broadcast().await` back.
            let admit_at = self.core.broadcast_room_at(now()).map(Instant::from_std);
            if admit_at != admit_armed {
                if let Some(at) = admit_at {
                    admit.as_mut().reset(at);
                }
                admit_armed = admit_at;
            }
            let room = self.outbox.has_room();
            if room {
                rechecking = false;
                congested_since = None;
                paused_since = None;
            } else if !rechecking {
                recheck.as_mut().reset(Instant::now() + CONGESTION_RECHECK);
                rechecking = true;
            }
            // Congested, a node takes received frames only one turn per `CONGESTED_PACE`: its
            // inbound queue fills, the neighbours feeding it slow down, and the congestion
            // travels back to the origins (which stop taking broadcasts) instead of overflowing
            // queues further down the tree. Slowed, never stopped: with several origins,
            // payloads flow both ways over a link, and two congested nodes that stopped would
            // wait on each other.
            let paced_turn = !room && {
                let since = *paused_since.get_or_insert_with(Instant::now);
                since.elapsed() >= CONGESTED_PACE
            };
            // Timers wait while congestion holds received frames back (below), but not for
            // longer than `stall_timeout`: congestion that lasts is not a passing burst, and a
            // node behind a slow neighbour must still repair and announce.
            let congested_for = if room {
                Duration::ZERO
            } else {
                congested_since.get_or_insert_with(Instant::now).elapsed()
            };
            let timers_due =
                room || frames.is_empty() || congested_for >= self.outbox.stall_timeout();
            tokio::select! {
                biased;
                command = control.recv() => match command {
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
                    Some(Control::Shutdown) | None => break,
                },
                // Timers before frames: under a flood of frames, IHave flushes and grafts (the
                // repairs) must still run. But not while congestion holds received frames back:
                // a payload announced to us is then most likely waiting in our own inbound
                // queue, and grafting it would only add answers to the congestion (in the
                // ten-origin bench this set off repair storms).
                () = &mut timer, if armed.is_some() && timers_due => {
                    armed = None; // fired: reset before it is awaited again
                    self.core.handle_timeout(now());
                }
                Some(frame) = frames.recv(), if room || paced_turn => {
                    if paced_turn {
                        paused_since = Some(Instant::now());
                    }
                    // One clock read per turn: the frames of a turn arrived together.
                    let now = now();
                    self.on_frame(now, frame);
                    // Whatever else has arrived goes in the same turn (bounded, so timers and
                    // control still get their turn under a flood).
                    for _ in 1..INBOUND_BATCH {
                        match frames.try_recv() {
                            Some(frame) => self.on_frame(now, frame),
                            None => break,
                        }
                    }
                    frames.release();
                }
                Some(request) = broadcasts.recv(), if room && admit_at.is_none() => {
                    // Like frames, queued broadcasts go in one turn: the senders' wait for room
                    // then ends once per turn, not once per broadcast. A broadcast queues at
                    // most one frame per peer, and a queue with room is at most half full:
                    // a quarter of its capacity more cannot overflow it.
                    let now = now();
                    self.core.broadcast_as(now, request.id, request.payload);
                    for _ in 1..self.outbox.capacity().div_ceil(4).min(BROADCAST_BATCH) {
                        if self.core.broadcast_room_at(now).is_some() {
                            break;
                        }
                        match broadcasts.try_recv() {
                            Some(request) => {
                                self.core.broadcast_as(now, request.id, request.payload);
                            }
                            None => break,
                        }
                    }
                    broadcasts.release();
                }
                () = &mut recheck, if rechecking => rechecking = false,
                () = &mut admit, if admit_armed.is_some() => admit_armed = None,
            }
            if !self.flush().await {
                break;
            }
        }
        // `broadcast` returned Ok for every queued request: each is still delivered here (the
        // delivery task runs until this task is gone) and handed to the send queues, which
        // shutdown then stops. No broadcast enters after `close`.
        broadcasts.close();
        while let Some(request) = broadcasts.try_recv() {
            self.core.broadcast_as(now(), request.id, request.payload);
        }
        self.flush().await;
        self.outbox.shutdown().await;
    }

    fn on_frame(&mut self, now: std::time::Instant, frame: Frame) {
        match Envelope::<I>::decode_frame(&frame, &self.limits) {
            Ok(envelope) => {
                self.metrics.received(envelope.message.kind(), frame.len());
                if let Message::Graft(Graft { id: Some(id) }) = envelope.message {
                    self.answering.push((envelope.sender.clone(), id));
                }
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
        let mut notices = Vec::with_capacity(self.notices_last);
        let mut recent = RecentFrames::default();
        while let Some(transmit) = self.core.poll_transmit() {
            if !self.core.is_member(&transmit.to) {
                // Only members get send queues: a task per unknown id would let forged ids spawn
                // tasks without bound. The core ignores messages from non-members, so it should
                // never address one; this keeps the rule should that change (issue 19 moves the
                // decision to one layer).
                self.outbound_dropped += 1;
                self.metrics.dropped_outbound();
                tracing::debug!(to = ?transmit.to, "not sending to a non-member");
                continue;
            }
            let (lane, notice) = match &transmit.message {
                // The answer to a Graft is a repair: it skips the queue of pushed payloads, which
                // may be full exactly because that peer is behind.
                Message::Gossip(g)
                    if self
                        .answering
                        .iter()
                        .any(|(peer, id)| *peer == transmit.to && *id == g.id) =>
                {
                    (Lane::Control, None)
                }
                Message::Gossip(_) => (Lane::Payload, None),
                Message::Graft(_) => (Lane::Control, Some(Notice::Graft(transmit.to.clone()))),
                Message::Prune => (Lane::Control, Some(Notice::Prune(transmit.to.clone()))),
                Message::IHave(_) => (Lane::Control, None),
            };
            let kind = transmit.message.kind();
            let envelope = Envelope {
                sender: local.clone(),
                message: transmit.message,
            };
            let frame = match recent.frame_of(&envelope.message) {
                Some(frame) => frame,
                None => self.encode(&envelope),
            };
            self.metrics.sent(kind, frame.len());
            if self.outbox.push(&transmit.to, lane, frame.clone()) {
                recent.keep(envelope.message, frame);
            } else {
                self.outbound_dropped += 1;
                self.metrics.dropped_outbound();
                // What the frame carried is announced again later, so the peer can graft it.
                self.core
                    .handle_undelivered(now(), &transmit.to, envelope.message);
            }
            notices.extend(notice);
        }
        self.answering.clear();
        while let Some(event) = self.core.poll_event() {
            match &event {
                Event::Deliver(_) => self.metrics.delivered(),
                Event::GaveUp { id } => {
                    self.metrics.gave_up();
                    self.gave_up_unlogged += 1;
                    // One line a second at most: a repair storm gives up thousands at once,
                    // and the delegate hears of every one.
                    if self
                        .gave_up_logged
                        .is_none_or(|at| at.elapsed() >= GAVE_UP_LOG_INTERVAL)
                    {
                        tracing::warn!(
                            %id,
                            count = self.gave_up_unlogged,
                            "gave up payloads that no announcer supplied (count: since the last such line)"
                        );
                        self.gave_up_logged = Some(Instant::now());
                        self.gave_up_unlogged = 0;
                    }
                }
                _ => {}
            }
            notices.push(Notice::Event(event));
        }
        // One hand-off per turn: a send (and often a wake of the delivery task) per event cost
        // more than the delegate calls themselves.
        self.notices_last = notices.len();
        if !notices.is_empty() && self.notices.send(notices).await.is_err() {
            return false;
        }
        if self.published.elapsed() >= PUBLISH_INTERVAL {
            self.publish();
        }
        true
    }

    /// Encodes a frame, its head cut from the current block; a Gossip's payload is the frame's
    /// second part, not a copy (see [`Frame`]). Heads cut from one block share its allocation and
    /// its reference count: no allocation of their own, and a frame sent to several peers costs
    /// an atomic increment per copy. A block is freed when its last head is; heads larger than a
    /// block (large IHave batches) get one of their own.
    fn encode(&mut self, envelope: &Envelope<I>) -> Frame {
        let len = envelope.head_len();
        if self.block.capacity() < len {
            self.block = BytesMut::with_capacity(len.max(FRAME_BLOCK));
        }
        envelope.encode_frame(&mut self.block)
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
            inbound_dropped: 0,
            decode_errors: self.decode_errors,
        }
    }
}

/// The last payload and the last IHave sent in one flush, with their frames, so that a message
/// sent to several peers is encoded once. A payload pushed to the eager peers goes out once per
/// peer, and so, while the lazy neighbours' batches fill in step (they do while the tree is
/// stable), does each IHave batch; the two interleave, hence one of each.
struct RecentFrames<I> {
    gossip: Option<(Gossip<I>, Frame)>,
    ihave: Option<(IHave, Frame)>,
}

impl<I> Default for RecentFrames<I> {
    fn default() -> Self {
        Self {
            gossip: None,
            ihave: None,
        }
    }
}

impl<I: NodeId> RecentFrames<I> {
    /// The frame of `message` if it was just sent. Payloads are not compared byte by byte: one
    /// id, round and path weight is one frame.
    fn frame_of(&self, message: &Message<I>) -> Option<Frame> {
        match (message, &self.gossip, &self.ihave) {
            (Message::Gossip(g), Some((last, frame)), _)
                if g.id == last.id && g.round == last.round && g.heaviest == last.heaviest =>
            {
                Some(frame.clone())
            }
            (Message::IHave(i), _, Some((last, frame))) if i.entries == last.entries => {
                Some(frame.clone())
            }
            _ => None,
        }
    }

    fn keep(&mut self, message: Message<I>, frame: Frame) {
        match message {
            Message::Gossip(g) => self.gossip = Some((g, frame)),
            Message::IHave(i) => self.ihave = Some((i, frame)),
            Message::Graft(_) | Message::Prune => {}
        }
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// The delivery task: calls the delegate, in order, and feeds the delivery stream if taken.
pub(crate) async fn deliver<I: NodeId, D: PlumtreeDelegate<I>>(
    mut notices: mpsc::Receiver<Vec<Notice<I>>>,
    delegate: Arc<D>,
    stream: mpsc::Sender<Delivery<I>>,
    stream_taken: Arc<AtomicBool>,
) {
    while let Some(batch) = notices.recv().await {
        for notice in batch {
            match notice {
                Notice::Event(Event::Deliver(delivery)) => {
                    if stream_taken.load(Ordering::Acquire) {
                        // A reader that went away only stops the stream, not the delegate.
                        let _ = stream.send(delivery.clone()).await;
                    }
                    delegate.on_deliver(delivery);
                }
                Notice::Event(Event::Promoted { peer }) => delegate.on_promote(&peer),
                Notice::Event(Event::Demoted { peer }) => delegate.on_demote(&peer),
                Notice::Event(Event::GaveUp { id }) => delegate.on_give_up(&id),
                Notice::Event(_) => {}
                Notice::Graft(peer) => delegate.on_graft(&peer),
                Notice::Prune(peer) => delegate.on_prune(&peer),
            }
        }
    }
}
