//! The payload path: a Gossip in (delivered, cached, passed on, or a duplicate), a Graft
//! answered from the cache, a Prune taken, and what a new payload sets off: eager push to the
//! eager neighbours and an announcement queued for each lazy one.

use std::time::Instant;

use super::{Plumtree, queue_ihave};
use crate::NodeId;
use crate::message::compress::Carried;
use crate::message::{Announcement, Gossip, Graft, Message, MessageId};
use crate::proto::output::{Delivery, Event, PeerRole, Transmit};
use crate::proto::store::{Cached, Seen};

impl<I: NodeId> Plumtree<I> {
    pub(super) fn on_gossip(&mut self, now: Instant, from: I, gossip: Gossip<I>) {
        self.stats.gossip_received += 1;
        if gossip.payload.len() > self.config.max_message_size {
            self.stats.invalid_messages += 1;
            tracing::debug!(
                ?from,
                len = gossip.payload.len(),
                "ignored an oversize payload"
            );
            return;
        }
        if let Some(first) = self.store.seen(&gossip.id) {
            let weight = self.peers.link_weight(&from);
            self.on_duplicate(now, from, weight, gossip.heaviest, first);
            return;
        }
        let (id, round, heaviest) = (gossip.id, gossip.round, gossip.heaviest);
        let Some((origin, payload)) = self.first_copy(&from, gossip) else {
            return;
        };
        let announced = self.missing.remove(&id);
        let waiting = self.missing.take_lowest(&id);
        if announced.as_ref().is_some_and(|entry| {
            entry.grafts > 0 && entry.announcers.back().is_some_and(|a| a.peer == from)
        }) {
            self.peers.graft_outcome(&from, true);
        }
        let (role, weight) = self.peers.delivered_first(&from);
        if role == Some(PeerRole::Lazy) {
            self.pushed_by_lazy(now, &from);
        } else if !self.make_eager(&from) && self.peers.is_member(&from) {
            // No room for another eager link: ask the sender to announce instead.
            self.prune(from.clone());
        }
        let seen = Seen {
            at: now,
            heaviest: heaviest.max(weight),
        };
        self.accept(
            seen,
            id,
            origin,
            round.saturating_add(1),
            payload,
            Some(&from),
        );

        // Optimization: an announcer that had the payload several hops earlier is a shorter
        // path; make it the eager link instead of the sender.
        let threshold = self.config.optimization_threshold;
        let announcers = announced.map(|e| e.announcers).unwrap_or_default();
        let Some(best) = announcers
            .into_iter()
            .chain(waiting)
            .min_by_key(|a| a.round)
        else {
            return;
        };
        if threshold > 0 && best.peer != from && round >= best.round.saturating_add(threshold) {
            self.graft(&best.peer, None);
            self.prune(from);
        }
    }

    /// The payload of a first copy (pushed or a repair), checked and decoded for delivery: its
    /// origin's signature, with origin keys, then its encoding. `None`, and counted, for a copy
    /// that fails either: it is not marked seen, so a good copy from another peer still gets in.
    pub(super) fn first_copy(&mut self, from: &I, gossip: Gossip<I>) -> Option<(I, Carried)> {
        #[cfg(feature = "signing")]
        if let Some(keys) = &self.keys
            && let Err(error) = keys.verify(
                &gossip.origin,
                &gossip.id,
                gossip.encoding,
                &gossip.payload,
                gossip.signature.as_ref(),
            )
        {
            self.stats.bad_signatures += 1;
            let origin = &gossip.origin;
            tracing::debug!(?from, ?origin, %error, "dropped a payload whose signature does not hold");
            return None;
        }
        let Gossip {
            origin,
            payload,
            encoding,
            signature,
            ..
        } = gossip;
        let max = self.config.max_message_size;
        match Carried::received(payload, encoding, signature, max) {
            Ok(payload) => Some((origin, payload)),
            Err(error) => {
                self.stats.invalid_messages += 1;
                tracing::debug!(?from, %error, "ignored a payload that does not decode");
                None
            }
        }
    }

    pub(super) fn on_graft(&mut self, now: Instant, from: I, graft: Graft) {
        self.stats.grafts_received += 1;
        self.make_eager(&from);
        let Some(id) = graft.id else { return };
        self.flush_within_interval(now);
        let Some(seen) = self.store.seen(&id) else {
            self.stats.grafts_unanswered += 1;
            return;
        };
        if let Some(longer) = self
            .adaptive
            .grafted_at_age(now.saturating_duration_since(seen.at), &self.config)
        {
            self.store.set_retention(longer);
        }
        match self.store.cached(&id) {
            Some(cached) => {
                let gossip = cached.gossip(id, seen.heaviest);
                self.send(from, Message::Gossip(gossip));
            }
            None => self.stats.grafts_unanswered += 1,
        }
    }

    pub(super) fn on_prune(&mut self, from: I) {
        self.stats.prunes_received += 1;
        self.set_role(&from, PeerRole::Lazy);
    }

    /// Marks a new payload seen, caches it, delivers it, and records it for anti-entropy.
    pub(super) fn deliver(
        &mut self,
        seen: Seen,
        id: MessageId,
        origin: I,
        hops: u32,
        payload: Carried,
        from: Option<&I>,
    ) {
        let now = seen.at;
        self.store.insert(
            seen,
            id,
            Cached {
                origin: origin.clone(),
                hops,
                payload: payload.wire,
                encoding: payload.encoding,
                signature: payload.signature,
            },
        );
        self.stats.delivered += 1;
        self.events.push_back(Event::Deliver(Delivery {
            id,
            origin,
            payload: payload.plain,
            hops,
            from: from.cloned(),
        }));
        if self.anti_entropy_on()
            && let Some(gap) = self.origins.deliver(&id, now)
        {
            self.report_gap(gap);
        }
    }

    /// Delivers a new payload ([`deliver`](Self::deliver)) and passes it on.
    pub(super) fn accept(
        &mut self,
        seen: Seen,
        id: MessageId,
        origin: I,
        hops: u32,
        payload: Carried,
        from: Option<&I>,
    ) {
        let now = seen.at;
        let (wire, encoding) = (payload.wire.clone(), payload.encoding);
        let signature = payload.signature.clone();
        self.deliver(seen, id, origin.clone(), hops, payload, from);

        // Eager push to every eager neighbour, lazy push (an announcement) to every lazy one, both
        // except the peer it came from.
        let gossip = Gossip {
            id,
            origin,
            round: hops,
            heaviest: seen.heaviest,
            payload: wire,
            encoding,
            signature,
        };
        let announcement = Announcement {
            id,
            round: hops,
            held_ms: 0,
        };
        let batch = self.config.ihave_batch_size;
        let mut waiting = false;
        for (peer, neighbour) in self.peers.neighbours_mut() {
            if Some(peer) == from {
                continue;
            }
            match neighbour.role {
                PeerRole::Eager => self.transmits.push_back(Transmit {
                    to: peer.clone(),
                    message: Message::Gossip(gossip.clone()),
                    urgent: false,
                }),
                PeerRole::Lazy => {
                    neighbour.pending.push(now, announcement);
                    if neighbour.pending.len() >= batch {
                        let entries = neighbour.pending.take(now);
                        queue_ihave(&mut self.transmits, &mut self.stats, peer.clone(), entries);
                    } else {
                        waiting = true;
                    }
                }
            }
        }
        if waiting {
            self.arm_ihave_flush(now);
        }
    }
}
