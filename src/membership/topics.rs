//! Topic membership over SWIM: each node publishes the topics it joined in its metadata, and
//! [`TopicDirectory`] makes every member that lists a topic a peer of this node in that topic.
//!
//! SWIM carries metadata with every alive message and push-pull sync, so a node that joins or
//! leaves a topic re-advertises itself (`Memberlist::update_node`) and the others hear of it as
//! an update; a member that fails or leaves stops being a peer of every topic. What one member
//! publishes is bounded twice: by memberlist's 512 bytes of metadata, and here by
//! `RuntimeConfig::max_topics` (only the first that many topic ids of a member are read).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

use crate::{NodeInputs, TopicId};

/// Where a topic's peer changes go: a joined topic's inputs (a recorder in tests).
pub(crate) trait TopicPeers<I> {
    fn add(&self, peer: I);
    fn remove(&self, peer: I);
}

impl<I> TopicPeers<I> for NodeInputs<I> {
    fn add(&self, peer: I) {
        self.add_peer(peer);
    }

    fn remove(&self, peer: I) {
        self.remove_peer(peer);
    }
}

/// The topics each member published, and this node's joined topics with their inputs.
#[derive(Debug)]
pub(crate) struct TopicDirectory<I, P = NodeInputs<I>> {
    max_topics: usize,
    state: Mutex<State<I, P>>,
}

#[derive(Debug)]
struct State<I, P> {
    /// Per member, the topics it published (at most `max_topics`, sorted, no repeats).
    members: HashMap<I, Vec<TopicId>>,
    /// This node's topics.
    joined: HashMap<TopicId, P>,
}

impl<I: Clone + Eq + Hash, P: TopicPeers<I>> TopicDirectory<I, P> {
    pub(crate) fn new(max_topics: usize) -> Self {
        Self {
            max_topics,
            state: Mutex::new(State {
                members: HashMap::new(),
                joined: HashMap::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<I, P>> {
        // Every update is a few map operations that leave it consistent: a poisoned lock is
        // used as is.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The topics this node publishes, sorted.
    pub(crate) fn local_topics(&self) -> Vec<TopicId> {
        let mut topics: Vec<TopicId> = self.state().joined.keys().copied().collect();
        topics.sort_unstable();
        topics
    }

    /// `member` is alive and published `published`: it becomes a peer of the joined topics it
    /// now lists, and stops being one of those it no longer lists.
    pub(crate) fn member(&self, member: &I, published: &[TopicId]) {
        let mut topics: Vec<TopicId> = published
            .iter()
            .copied()
            .filter(|topic| !topic.is_default())
            .take(self.max_topics)
            .collect();
        topics.sort_unstable();
        topics.dedup();
        let mut state = self.state();
        let before = state.members.get(member).cloned().unwrap_or_default();
        for topic in &topics {
            if before.binary_search(topic).is_err()
                && let Some(peers) = state.joined.get(topic)
            {
                peers.add(member.clone());
            }
        }
        for topic in &before {
            if topics.binary_search(topic).is_err()
                && let Some(peers) = state.joined.get(topic)
            {
                peers.remove(member.clone());
            }
        }
        if topics.is_empty() {
            state.members.remove(member);
        } else {
            state.members.insert(member.clone(), topics);
        }
    }

    /// `member` left or failed: it is no peer of any topic.
    pub(crate) fn remove(&self, member: &I) {
        let mut state = self.state();
        if let Some(topics) = state.members.remove(member) {
            for topic in topics {
                if let Some(peers) = state.joined.get(&topic) {
                    peers.remove(member.clone());
                }
            }
        }
    }

    /// This node joined `topic`: every member that lists it becomes its peer.
    pub(crate) fn join(&self, topic: TopicId, peers: P) {
        let mut state = self.state();
        for (member, topics) in &state.members {
            if topics.binary_search(&topic).is_ok() {
                peers.add(member.clone());
            }
        }
        state.joined.insert(topic, peers);
    }

    /// This node left `topic`.
    pub(crate) fn leave(&self, topic: TopicId) {
        self.state().joined.remove(&topic);
    }

    /// Topics recorded for `member`.
    #[cfg(test)]
    fn topics_of(&self, member: &I) -> Vec<TopicId> {
        self.state()
            .members
            .get(member)
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;
    use std::rc::Rc;

    use proptest::prelude::*;

    use super::*;

    /// A topic's peer set, as the changes told to it build it.
    #[derive(Clone, Default, Debug)]
    struct Peers(Rc<RefCell<BTreeSet<u8>>>);

    impl TopicPeers<u8> for Peers {
        fn add(&self, peer: u8) {
            self.0.borrow_mut().insert(peer);
        }

        fn remove(&self, peer: u8) {
            self.0.borrow_mut().remove(&peer);
        }
    }

    #[derive(Clone, Debug)]
    enum Step {
        Publish(u8, Vec<u64>),
        Fail(u8),
        Join(u64),
        Leave(u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u8..8, prop::collection::vec(0u64..6, 0..40)).prop_map(|(m, t)| Step::Publish(m, t)),
            1 => (0u8..8).prop_map(Step::Fail),
            1 => (1u64..6).prop_map(Step::Join),
            1 => (1u64..6).prop_map(Step::Leave),
        ]
    }

    proptest! {
        /// Whatever members publish (however many topics, repeated, the default among them) and
        /// in whatever order things happen: no member holds more than `max_topics` topics here,
        /// and each joined topic's peers are exactly the live members whose first `max_topics`
        /// published topics list it.
        #[test]
        fn peers_follow_what_members_publish_within_the_bound(
            steps in prop::collection::vec(step(), 1..60),
            max in 1usize..4,
        ) {
            let directory = TopicDirectory::<u8, Peers>::new(max);
            let mut published: HashMap<u8, Vec<u64>> = HashMap::new();
            let mut joined: HashMap<u64, Peers> = HashMap::new();
            for step in steps {
                match step {
                    Step::Publish(member, topics) => {
                        let ids: Vec<TopicId> = topics.iter().map(|&t| TopicId::new(t)).collect();
                        directory.member(&member, &ids);
                        published.insert(member, topics);
                    }
                    Step::Fail(member) => {
                        directory.remove(&member);
                        published.remove(&member);
                    }
                    Step::Join(topic) => {
                        if let std::collections::hash_map::Entry::Vacant(e) = joined.entry(topic) {
                            let peers = Peers::default();
                            directory.join(TopicId::new(topic), peers.clone());
                            e.insert(peers);
                        }
                    }
                    Step::Leave(topic) => {
                        directory.leave(TopicId::new(topic));
                        joined.remove(&topic);
                    }
                }
                for member in 0..8 {
                    prop_assert!(directory.topics_of(&member).len() <= max);
                }
                for (topic, peers) in &joined {
                    let expected: BTreeSet<u8> = published
                        .iter()
                        .filter(|(_, topics)| {
                            topics.iter().filter(|&&t| t != 0).take(max).any(|t| t == topic)
                        })
                        .map(|(member, _)| *member)
                        .collect();
                    prop_assert_eq!(&*peers.0.borrow(), &expected, "topic {}", topic);
                }
            }
        }
    }
}
