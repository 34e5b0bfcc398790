//! Anti-entropy: neighbours tell each other what they have delivered and can still supply, and
//! ask for what they lack, so that a payload that lazy push could not repair (a partition, an
//! announcement lost with a crashed node) still reaches every live node while it is cached.
//!
//! Every `anti_entropy_interval` a node sends one neighbour, chosen at random, a Digest: per
//! origin, the run of sequence numbers it has delivered and still caches (its records take turns,
//! at most `anti_entropy_max_runs` per digest). A new neighbour gets one at once. The receiver
//! compares each run with its own record of that origin (src/proto/origins.rs) and sends a Want
//! for the runs it lacks; the holder answers with Repair messages, at most `anti_entropy_batch`
//! payloads per Want and one Want a peer per half interval. A repair is delivered and cached
//! like a pushed payload, but changes no link's role and is not pushed on: the tree stays as the
//! protocol shaped it, and every node that lacks a payload asks for it itself.
//!
//! What no neighbour supplies is reported, not left silent: a payload known to be missing (a
//! digest offered it, or a later one of its origin arrived) that has not come from anywhere
//! `gap_timeout` later (by default the cache's lifetime, after which no holder keeps it) is given
//! up with [`Event::Gap`].

use std::time::{Duration, Instant};

use super::{Plumtree, admission};
use crate::NodeId;
use crate::message::{Digest, Gossip, IdRun, IdRuns, Message, MessageId, Offer};
use crate::proto::origins::{Gap, Key, Origins, Record};
use crate::proto::output::{Event, Transmit};
use crate::proto::store::{MessageStore, Seen};

/// Most payloads a digest steps back over to find an origin's settled ones.
const SETTLE_STEPS: usize = 64;

/// Digest intervals a node lists its records at full size after an exchange found a difference.
const BOOST_INTERVALS: u32 = 10;

impl<I: NodeId> Plumtree<I> {
    /// Whether anti-entropy runs at all (`anti_entropy_interval` is not zero).
    pub(super) fn anti_entropy_on(&self) -> bool {
        !self.config.anti_entropy_interval.is_zero()
    }

    /// Arms the digest timer unless it is armed.
    pub(super) fn arm_digest(&mut self, now: Instant) {
        if self.anti_entropy_on() && self.digest_deadline.is_none() {
            self.digest_deadline = Some(now + self.config.anti_entropy_interval);
        }
    }

    /// The digest timer: a digest to one neighbour, and gaps given up. Re-arms itself.
    pub(super) fn on_digest_timer(&mut self, now: Instant) {
        if self.digest_deadline.is_none_or(|at| at > now) {
            return;
        }
        self.digest_deadline = None;
        let neighbours: Vec<I> = self
            .peers
            .neighbours_mut()
            .map(|(p, _)| p.clone())
            .collect();
        if !neighbours.is_empty() {
            let to = neighbours[self.ae_rng.usize(..neighbours.len())].clone();
            self.send_digest(now, to, false);
        }
        self.send_follow_up(now);
        self.give_up_stale(now);
        self.arm_digest(now);
    }

    /// Sends `to` a digest of what this node can supply, if anything.
    ///
    /// Half the runs go to the records a delivery moved most recently: after a partition heals,
    /// what a node was just repaired with is what its neighbours on the same side lack too, so
    /// repairs spread from node to node like news. The other half takes the records in turn, so
    /// that every record is offered now and then.
    ///
    /// Only settled payloads are offered: those delivered here more than twice the repair
    /// horizon ago. A younger one is most likely still on its way to the neighbour through the
    /// tree; asking for it would race the tree, and a repair that wins makes the tree's copy a
    /// duplicate, which prunes a good link. Nor are those delivered before `to` started.
    ///
    /// A greeting goes out even when it offers nothing: it tells the new neighbour when this
    /// node started.
    pub(super) fn send_digest(&mut self, now: Instant, to: I, greeting: bool) {
        if !self.anti_entropy_on() {
            return;
        }
        let max = self.digest_budget(now);
        let bounds = self.bounds_for(now, &to);
        let store = &self.store;
        let mut runs = Vec::new();
        let mut offered = Vec::new();
        for key in self.origins.by_recency() {
            if runs.len() >= max.div_ceil(2) {
                break;
            }
            if let Some(run) = self
                .origins
                .get_mut(&key)
                .and_then(|r| offer(store, bounds, key, r))
            {
                runs.push(run);
                offered.push(key);
            }
        }
        let cursor = self.digest_cursor;
        self.digest_cursor = offer_in_turn(
            &mut self.origins,
            &self.store,
            bounds,
            cursor,
            &offered,
            max,
            &mut runs,
        );
        if runs.is_empty() && !greeting {
            return;
        }
        self.send_offers(now, to, runs);
    }

    fn send_offers(&mut self, now: Instant, to: I, offers: Vec<Offer>) {
        self.stats.digests_sent += 1;
        let uptime = self.uptime(now);
        self.send(
            to,
            Message::Digest(Digest {
                uptime_ms: u64::try_from(uptime.as_millis()).unwrap_or(u64::MAX),
                offers,
            }),
        );
    }

    fn uptime(&self, now: Instant) -> Duration {
        self.born
            .map_or(Duration::ZERO, |born| now.saturating_duration_since(born))
    }

    /// What may be offered to `peer` now: payloads delivered here before the settle line and
    /// after `peer` started, as far as its digests told.
    fn bounds_for(&mut self, now: Instant, peer: &I) -> Bounds {
        Bounds {
            now,
            settled: self.settled_before(now),
            born: self.peers.neighbour_mut(peer).and_then(|n| n.born),
            all_lost: self.boosted_until.is_none_or(|until| until <= now),
        }
    }

    /// The next page of every record, in key order, to the first neighbour that asked for
    /// something lately: a node that lacked one thing (a partition, a restart) likely lacks
    /// others, including whole origins it has never heard of, which the random digests would
    /// take long to name. Costs nothing while no one asks.
    fn send_follow_up(&mut self, now: Instant) {
        let Some((peer, (cursor, pages))) = self.follow_ups.pop_first() else {
            return;
        };
        if self.peers.role(&peer).is_none() {
            return; // no longer a neighbour
        }
        let bounds = self.bounds_for(now, &peer);
        let mut runs = Vec::new();
        let last = offer_in_turn(
            &mut self.origins,
            &self.store,
            bounds,
            cursor,
            &[],
            self.config.anti_entropy_max_runs,
            &mut runs,
        );
        if pages > 1 {
            self.follow_ups.insert(peer.clone(), (last, pages - 1));
        }
        if !runs.is_empty() {
            self.send_offers(now, peer, runs);
        }
    }

    /// A neighbour's digest: ask it for what we lack of what it offers.
    ///
    /// A run that begins before this node's time (its holder delivered its first payload before
    /// this node started) is not fetched below what this node already covers: a node that joins
    /// receives what is broadcast from then on, not the history its neighbours still cache.
    /// Neighbours that know when this node started (from its digests) begin their runs about
    /// then. The uptime a digest carries is one trip old when it arrives, so its receiver puts
    /// the sender's start half an interval earlier than it reckons, and a node fetches runs that
    /// begin up to one interval before its start: nothing sent after it started is left out.
    pub(super) fn on_digest(&mut self, now: Instant, from: I, digest: Digest) {
        self.stats.digests_received += 1;
        let early = self.config.anti_entropy_interval / 2;
        if let Some(neighbour) = self.peers.neighbour_mut(&from) {
            // A forged uptime misleads only what this node offers to its sender.
            neighbour.born = Duration::from_millis(digest.uptime_ms)
                .checked_add(early)
                .and_then(|ago| now.checked_sub(ago));
        }
        let max_runs = self.config.anti_entropy_max_runs;
        let reach = self.uptime(now) + self.config.anti_entropy_interval;
        let batch = self.config.anti_entropy_batch as u64;
        let mut want = Want {
            runs: Vec::new(),
            left: batch,
            lost_left: batch,
        };
        for offer in &digest.offers {
            if (want.left == 0 && want.lost_left == 0) || want.runs.len() >= max_runs {
                break;
            }
            self.take_offer(
                now,
                offer,
                Duration::from_millis(offer.age_ms) <= reach,
                &mut want,
            );
        }
        if !want.runs.is_empty() {
            self.boost(now);
            self.stats.wants_sent += 1;
            self.send(from, Message::Want(IdRuns { runs: want.runs }));
        }
    }

    /// Compares one offered run with this node's record of its origin: what the holder caches
    /// and this node lacks goes into `want`; what it delivered but no longer caches, and this
    /// node lacks, is noted as missing (given up and reported after `gap_timeout` unless another
    /// holder supplies it). Both within `want`'s budgets, so that a forged offer of a huge run
    /// costs one batch each. `reach_down`: the run began after this node started, so what lies below
    /// this node's record of the origin is its to fetch.
    fn take_offer(&mut self, now: Instant, offer: &Offer, reach_down: bool, want: &mut Want) {
        let run = offer.run;
        let key: Key = (run.first.origin(), run.first.incarnation());
        let (start, end) = (run.first.seq(), run.first.seq().saturating_add(run.len));
        let record = if reach_down {
            self.origins.reach_down(key, start, now)
        } else {
            match self.origins.get_mut(&key) {
                Some(record) => record,
                None => return,
            }
        };
        if record.asked_until.is_some_and(|until| until > now) {
            return;
        }
        let cached_from = offer.cached_from();
        let mut known_below = None;
        let mut lost = Vec::new();
        for (a, b) in record.lacking(start, end) {
            if a < cached_from {
                // Delivered there, no longer to be had there.
                let b = b.min(cached_from).min(a.saturating_add(want.lost_left));
                lost.extend(a..b);
                want.lost_left -= b - a;
                if b > a {
                    known_below = Some(b);
                }
                continue;
            }
            if want.left == 0 || want.runs.len() >= self.config.anti_entropy_max_runs {
                break;
            }
            let b = b.min(a.saturating_add(want.left));
            want.runs.push(IdRun {
                first: MessageId::new(key.0, key.1, a),
                len: b - a,
            });
            want.left -= b - a;
            known_below = Some(b);
            // One request per origin outstanding: the answer takes a round trip.
            record.asked_until = Some(now + self.config.graft_timeout);
        }
        // A record that grew down may lack what this node delivered before it had the record
        // (the seen set remembers): that is not missing.
        for seq in lost {
            let id = MessageId::new(key.0, key.1, seq);
            if self.store.seen(&id).is_some() {
                self.origins.deliver(&id, now);
            }
        }
        if let (Some(below), Some(record)) = (known_below, self.origins.get_mut(&key)) {
            record.lacking_since(now, below);
        }
    }

    /// A request: answer with what we cache, within the batch, at most once per half interval
    /// per neighbour.
    pub(super) fn on_want(&mut self, now: Instant, from: I, want: IdRuns) {
        self.stats.wants_received += 1;
        let pause = self.config.anti_entropy_interval / 2;
        let Some(neighbour) = self.peers.neighbour_mut(&from) else {
            return; // digests go to neighbours only: a stranger's request is not answered
        };
        if neighbour.answered_at.is_some_and(|at| now < at + pause) {
            self.stats.wants_refused += 1;
            return;
        }
        neighbour.answered_at = Some(now);
        self.boost(now);
        // It lacked something: page through every record for it (see `send_follow_up`).
        let pages = self
            .origins
            .len()
            .div_ceil(self.config.anti_entropy_max_runs) as u32
            + 1;
        self.follow_ups
            .entry(from.clone())
            .and_modify(|(_, left)| *left = pages)
            .or_insert((None, pages));
        let mut sent = 0;
        for id in want.ids().take(self.config.anti_entropy_batch) {
            let Some(seen) = self.store.seen(&id) else {
                continue;
            };
            // Asked for at this age: with adaptive retention, keep payloads at least this long
            // from now on (as for grafts), so that the next repair of this kind finds them.
            let age = now.saturating_duration_since(seen.at);
            if let Some(longer) = self.adaptive.grafted_at_age(age, &self.config) {
                self.store.set_retention(longer);
            }
            let Some(cached) = self.store.cached(&id) else {
                continue;
            };
            let repair = cached.gossip(id, seen.heaviest);
            // A payload: it queues behind pushed payloads, not ahead of control messages.
            self.transmits.push_back(Transmit {
                to: from.clone(),
                message: Message::Repair(repair),
                urgent: false,
            });
            sent += 1;
        }
        self.stats.repairs_sent += sent;
    }

    /// A payload sent in answer to our request: delivered and cached if new, nothing else.
    pub(super) fn on_repair(&mut self, now: Instant, from: I, repair: Gossip<I>) {
        self.stats.repairs_received += 1;
        if repair.payload.len() > self.config.max_message_size {
            self.stats.invalid_messages += 1;
            return;
        }
        if self.store.contains(&repair.id) {
            self.stats.repair_duplicates += 1;
            return;
        }
        let (id, round, heaviest) = (repair.id, repair.round, repair.heaviest);
        let Some((origin, payload)) = self.first_copy(&from, repair) else {
            return;
        };
        // An announcement of it may be waiting for its graft: it has come.
        self.missing.remove(&id);
        let seen = Seen { at: now, heaviest };
        self.deliver(
            seen,
            id,
            origin,
            round.saturating_add(1),
            payload,
            Some(&from),
        );
    }

    /// Payloads delivered before this instant are settled: a digest offers them (see
    /// `send_digest`).
    fn settled_before(&self, now: Instant) -> Option<Instant> {
        now.checked_sub(2 * admission::repair_horizon(&self.config, &self.adaptive))
    }

    /// Runs a digest may carry now: an eighth of `anti_entropy_max_runs` while the neighbours
    /// agree, all of it for [`BOOST_INTERVALS`] digest intervals after an exchange found
    /// something lacking. Agreement is the steady state and costs a few dozen bytes a second;
    /// after a partition heals, the first exchange across it finds a difference, and the nodes
    /// on both sides then list their records eight times as fast.
    fn digest_budget(&self, now: Instant) -> usize {
        let max = self.config.anti_entropy_max_runs;
        if self.boosted_until.is_some_and(|until| until > now) {
            max
        } else {
            (max / 8).max(1)
        }
    }

    fn boost(&mut self, now: Instant) {
        self.boosted_until = Some(now + BOOST_INTERVALS * self.config.anti_entropy_interval);
    }

    /// Gives up what has been known missing for `gap_timeout` (no neighbour supplied it in that
    /// time, asked at every digest that offered it), and reports it.
    fn give_up_stale(&mut self, now: Instant) {
        let timeout = self.config.gap_timeout;
        let mut gaps = Vec::new();
        for (&(tag, incarnation), record) in self.origins.iter_mut() {
            let Some((since, below)) = record.stale else {
                continue;
            };
            if record.next() >= below {
                record.stale = None;
                continue;
            }
            if now.saturating_duration_since(since) < timeout {
                continue;
            }
            record.stale = None;
            for (from, to) in record.give_up_below(below) {
                gaps.push(Gap {
                    first: MessageId::new(tag, incarnation, from),
                    count: to - from,
                });
            }
        }
        for gap in gaps {
            self.report_gap(gap);
        }
    }

    /// Reports payloads given up: an event for the application, and the count.
    pub(super) fn report_gap(&mut self, gap: Gap) {
        self.stats.gap_payloads = self.stats.gap_payloads.saturating_add(gap.count);
        self.events.push_back(Event::Gap {
            first: gap.first,
            count: gap.count,
        });
    }
}

/// A Want being filled from one digest: the runs asked for and the ids left in the batch.
struct Want {
    runs: Vec<IdRun>,
    /// Ids left to ask for.
    left: u64,
    /// Ids left to note as lost (offered as no longer cached).
    lost_left: u64,
}

/// Which payloads a digest to one neighbour offers.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    now: Instant,
    /// Those delivered after this are not settled yet (`None`: all are).
    settled: Option<Instant>,
    /// When the receiver started, if it said: those delivered here before are its history.
    born: Option<Instant>,
    /// Whether origins of which nothing is cached any more are offered too. Not while
    /// exchanges are finding differences: slots go to what can still be repaired first.
    all_lost: bool,
}

/// The run of `key` this node offers: what it has delivered and still caches, without the
/// payloads delivered after `bounds.settled` (none if nothing is left), with the age of its
/// first. To a receiver whose start is known, the run begins with the first payload delivered
/// here after that start, and may reach below the cache: those ids are offered as uncached,
/// so that a receiver lacking them learns they are lost. Without the start, only the cached
/// part is offered: what lies below could be history the receiver must not be told of.
fn offer<I: NodeId>(
    store: &MessageStore<I>,
    bounds: Bounds,
    (tag, incarnation): Key,
    record: &mut Record,
) -> Option<Offer> {
    let Bounds {
        now,
        settled,
        born,
        all_lost,
    } = bounds;
    let id = |seq| MessageId::new(tag, incarnation, seq);
    // With nothing cached any more, the run is all uncached (to a receiver whose start is known).
    let supply = record.supply(|seq| store.cached(&id(seq)).is_some());
    if supply.is_none() && !all_lost {
        return None;
    }
    let (cached_from, mut to) = supply.unwrap_or((record.next(), record.next()));
    let seen_at = |seq| store.seen(&id(seq)).map(|seen| seen.at);
    let young = |seq| seen_at(seq).is_some_and(|at| settled.is_none_or(|line| at > line));
    // Back off over the youngest, a bounded number of steps: an origin busier than that is
    // being served by the tree right now.
    let mut steps = 0;
    while to > cached_from && young(to - 1) && steps < SETTLE_STEPS {
        to -= 1;
        steps += 1;
    }
    if (supply.is_some() && to == cached_from) || to <= record.floor() || young(to - 1) {
        return None;
    }
    let from = match born {
        None if supply.is_some() => cached_from,
        None => return None,
        Some(born) => first_after(record.floor(), to, |seq| match seen_at(seq) {
            Some(at) => at < born,
            // Below the cache and gone from the seen set: old if the record is.
            None => seq < cached_from && record.created < born,
        })?,
    };
    let age = seen_at(from).map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
    Some(Offer {
        run: IdRun {
            first: id(from),
            len: to - from,
        },
        age_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
        uncached: cached_from.saturating_sub(from),
    })
}

/// The first sequence number in `from..to` above the last one delivered before the receiver
/// started (`old`), found by bisection; `None` if the whole run is older.
///
/// An origin numbers its payloads in the order it sends them, and a payload is delivered after
/// it is sent, so every payload below an old one was sent before the receiver started too: any
/// old-then-not-old step is a safe place to begin, even where repairs made delivery times
/// non-monotonic.
fn first_after(from: u64, to: u64, old: impl Fn(u64) -> bool) -> Option<u64> {
    if !old(from) {
        return Some(from);
    }
    let (mut lo, mut hi) = (from, to - 1);
    if old(hi) {
        return None;
    }
    // old(lo) and not old(hi)
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if old(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi)
}

/// Offers from the records after `cursor` in key order (wrapping around), skipping `skip`, until
/// `runs` holds `max`; returns the key to go on from next time.
fn offer_in_turn<I: NodeId>(
    origins: &mut Origins,
    store: &MessageStore<I>,
    bounds: Bounds,
    cursor: Option<Key>,
    skip: &[Key],
    max: usize,
    runs: &mut Vec<Offer>,
) -> Option<Key> {
    let mut last = cursor;
    for (key, record) in origins.iter_from(cursor) {
        if runs.len() >= max {
            break;
        }
        last = Some(*key);
        if !skip.contains(key) {
            runs.extend(offer(store, bounds, *key, record));
        }
    }
    last
}
