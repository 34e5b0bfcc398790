//! A deterministic simulator: many real [`Plumtree`] cores over a virtual network, in virtual
//! time.
//!
//! Every node runs the same core as production. Frames travel with a fixed per-link latency,
//! may be lost, and are dropped across a partition or towards a crashed node; timers fire in
//! virtual time. Events are ordered by (instant, sequence), peer sets iterate in order and each
//! node's RNG is seeded from the simulation seed, so a seed fixes the whole run.
//!
//! # Examples
//! ```
//! use std::time::Duration;
//! use memberlist_plumtree::sim::{Sim, SimConfig};
//!
//! let mut sim = Sim::new(SimConfig::new(50, 1))?;
//! for _ in 0..20 {
//!     sim.broadcast(0, vec![0; 256]);
//!     sim.run_for(Duration::from_millis(100));
//! }
//! sim.run_for(Duration::from_secs(2));
//! let stats = sim.records();
//! assert!(stats.iter().all(|m| m.delivered == 49));
//! assert_eq!(sim.duplicate_deliveries(), 0);
//! # Ok::<(), memberlist_plumtree::ConfigError>(())
//! ```

mod network;
mod queue;
mod record;
pub mod scenario;
pub mod topics;
mod tree;

use std::collections::HashMap;

use queue::EventQueue;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use network::{NetworkConfig, Regions};
pub use record::{LossState, MessageRecord, Traffic};
pub use scenario::{Report, Scenario, Workload};
pub use tree::TreeShape;

use crate::message::{Envelope, Message, MessageId};
use crate::proto::{Event, Plumtree};
use crate::{ConfigError, PlumtreeConfig};

/// Node ids in the simulator are indices: node `i` is `i as u64`.
pub type NodeIndex = u64;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of nodes at the start, all knowing each other.
    pub nodes: usize,
    /// Seed of every random choice: the network's and each node's.
    pub seed: u64,
    /// The protocol config of every node (its `rng_seed` is replaced per node).
    pub protocol: PlumtreeConfig,
    /// The virtual network.
    pub network: NetworkConfig,
}

impl SimConfig {
    /// `nodes` nodes with the default protocol config and network.
    pub fn new(nodes: usize, seed: u64) -> Self {
        Self {
            nodes,
            seed,
            protocol: PlumtreeConfig::default(),
            network: NetworkConfig::default(),
        }
    }
}

#[derive(Debug)]
enum Action {
    Frame {
        from: NodeIndex,
        to: NodeIndex,
        message: Message<NodeIndex>,
    },
    Timer {
        node: NodeIndex,
    },
}

#[derive(Debug)]
struct Node {
    core: Option<Plumtree<NodeIndex>>,
    /// The instant of the timer event in the queue for this node, if any.
    timer: Option<Instant>,
    /// Partition side; frames between different sides are dropped.
    side: u8,
    /// Never in the group ([`Sim::with_members`]): frames that reach it are counted.
    outsider: bool,
}

/// The simulator. See the [module docs](self).
#[derive(Debug)]
pub struct Sim {
    config: SimConfig,
    start: Instant,
    now: Instant,
    nodes: Vec<Node>,
    /// Pending events by (instant, sequence): ties run in scheduling order.
    queue: EventQueue<Action>,
    /// Reused buffer for one node's transmits.
    frames: Vec<crate::Transmit<NodeIndex>>,
    rng: fastrand::Rng,
    records: Vec<MessageRecord>,
    index: HashMap<MessageId, usize, foldhash::fast::RandomState>,
    traffic: Traffic,
    duplicates: u64,
    /// Payloads given up by anti-entropy and reported as gaps, over all nodes.
    gap_payloads: u64,
    /// Promotions (lazy to eager) and demotions seen, over all nodes.
    role_changes: (u64, u64),
    /// Largest payload cache of one node at any sample, in bytes.
    cache_peak: usize,
    /// Sum over samples of the mean cache size per running node, and the number of samples.
    cache_samples: (f64, u64),
    /// Frames, and payloads among them, that reached nodes outside the group.
    to_outsiders: (u64, u64),
}

impl Sim {
    /// Creates `config.nodes` nodes that all know each other.
    ///
    /// # Errors
    /// [`ConfigError`] if the protocol config is invalid.
    pub fn new(config: SimConfig) -> Result<Self, ConfigError> {
        let everyone: Vec<NodeIndex> = (0..config.nodes as NodeIndex).collect();
        Self::with_members(config, &everyone)
    }

    /// Creates `config.nodes` node slots of which only `members` run, all knowing each other:
    /// one topic's group inside a larger cluster. The others never start; what reaches them
    /// is counted ([`to_outsiders`](Self::to_outsiders)). Members outside the slots are ignored.
    ///
    /// # Errors
    /// [`ConfigError`] if the protocol config is invalid.
    pub fn with_members(config: SimConfig, members: &[NodeIndex]) -> Result<Self, ConfigError> {
        let start = Instant::now();
        let mut sim = Self {
            start,
            now: start,
            nodes: Vec::with_capacity(config.nodes),
            queue: EventQueue::new(start),
            frames: Vec::new(),
            rng: fastrand::Rng::with_seed(config.seed),
            records: Vec::new(),
            index: HashMap::default(),
            traffic: Traffic::default(),
            duplicates: 0,
            gap_payloads: 0,
            role_changes: (0, 0),
            cache_peak: 0,
            cache_samples: (0.0, 0),
            to_outsiders: (0, 0),
            config,
        };
        let n = sim.config.nodes as NodeIndex;
        let mut members = members.to_vec();
        members.retain(|&m| m < n);
        members.sort_unstable();
        members.dedup();
        let whole = members.len() == n as usize;
        // One list for every node: at 10,000 nodes, a copy each would take 800 MB.
        let group = std::sync::Arc::new(members);
        for i in 0..n {
            let outsider = !whole && group.binary_search(&i).is_err();
            let core = if outsider {
                None
            } else {
                let mut core = sim.new_core(i)?;
                sim.measure_rtts(&mut core, i, (!whole).then_some(&group[..]));
                core.add_peer_list(start, group.clone());
                Some(core)
            };
            sim.nodes.push(Node {
                core,
                timer: None,
                side: 0,
                outsider,
            });
        }
        for i in 0..n {
            sim.drain(i);
        }
        Ok(sim)
    }

    /// With peer scoring, what SWIM's pings would have told node `i` by the time it chooses
    /// neighbours: the round trip to every other node of the group (`group`, or everyone; to
    /// 256 random nodes above 2,000 nodes, to bound memory).
    fn measure_rtts(
        &mut self,
        core: &mut Plumtree<NodeIndex>,
        i: NodeIndex,
        group: Option<&[NodeIndex]>,
    ) {
        if !self.config.protocol.peer_scoring {
            return;
        }
        let n = self.config.nodes as NodeIndex;
        let peers: Vec<NodeIndex> = if let Some(group) = group {
            group.to_vec()
        } else if n <= 2000 {
            (0..n).collect()
        } else {
            (0..256).map(|_| self.rng.u64(..n)).collect()
        };
        for j in peers {
            if j != i {
                let one_way = self.config.network.latency(self.config.seed, i, j);
                core.record_rtt(&j, one_way * 2);
            }
        }
    }

    fn new_core(&self, id: NodeIndex) -> Result<Plumtree<NodeIndex>, ConfigError> {
        let seed = self
            .config
            .seed
            .wrapping_mul(0x2545_f491_4f6c_dd1d)
            .wrapping_add(id);
        Plumtree::new(id, self.config.protocol.clone().with_rng_seed(Some(seed)))
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Number of node slots (live, crashed or left).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the simulation has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether node `i` is running.
    pub fn is_live(&self, i: NodeIndex) -> bool {
        self.nodes.get(i as usize).is_some_and(|n| n.core.is_some())
    }

    /// The running nodes.
    pub fn live_nodes(&self) -> impl Iterator<Item = NodeIndex> + '_ {
        (0..self.nodes.len() as NodeIndex).filter(|&i| self.is_live(i))
    }

    /// Node `i`'s core, if it is running.
    pub fn node(&self, i: NodeIndex) -> Option<&Plumtree<NodeIndex>> {
        self.nodes.get(i as usize)?.core.as_ref()
    }

    /// One record per broadcast, in broadcast order.
    pub fn records(&self) -> &[MessageRecord] {
        &self.records
    }

    /// Frames sent so far, by kind.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// Payloads given up by anti-entropy (`Event::Gap`), summed over all nodes.
    pub fn gap_payloads(&self) -> u64 {
        self.gap_payloads
    }

    /// Frames, and payloads among them, that reached node slots outside the group
    /// ([`with_members`](Self::with_members)).
    pub fn to_outsiders(&self) -> (u64, u64) {
        self.to_outsiders
    }

    /// Payloads delivered twice to the same node (the protocol promises 0).
    pub fn duplicate_deliveries(&self) -> u64 {
        self.duplicates
    }

    /// Broadcasts `payload` from node `origin` now. Returns `None` if the node is not running or
    /// refused the payload.
    pub fn broadcast(&mut self, origin: NodeIndex, payload: impl Into<Bytes>) -> Option<MessageId> {
        self.sample_cache();
        let now = self.now;
        let core = self.nodes.get_mut(origin as usize)?.core.as_mut()?;
        let id = core.broadcast(now, payload).ok()?;
        let live: Vec<bool> = self.nodes.iter().map(|n| n.core.is_some()).collect();
        self.index.insert(id, self.records.len());
        self.records
            .push(MessageRecord::new(id, origin, self.elapsed(), live));
        self.drain(origin);
        Some(id)
    }

    /// Runs every event up to `elapsed() + d`, then sets the clock there.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while let Some((at, action)) = self.queue.pop_until(until) {
            self.now = at;
            self.apply(action);
        }
        self.now = until;
    }

    /// Stops node `i` silently: frames to it are lost, its timers never fire. Nobody is told;
    /// call [`detect`](Self::detect) to model the failure detector.
    pub fn crash(&mut self, i: NodeIndex) {
        if let Some(node) = self.nodes.get_mut(i as usize) {
            node.core = None;
            node.timer = None;
        }
    }

    /// Every running node learns that `i` is gone (as SWIM would report it).
    pub fn detect(&mut self, i: NodeIndex) {
        let now = self.now;
        for j in 0..self.nodes.len() as NodeIndex {
            if let Some(core) = self.nodes[j as usize].core.as_mut() {
                if core.remove_peer(now, &i) {
                    self.drain(j);
                }
            }
        }
    }

    /// Starts a new node that knows every running node, and tells them about it. Returns its id.
    ///
    /// # Errors
    /// [`ConfigError`] if the protocol config is invalid.
    pub fn join(&mut self) -> Result<NodeIndex, ConfigError> {
        let id = self.nodes.len() as NodeIndex;
        let now = self.now;
        let live: Vec<NodeIndex> = self.live_nodes().collect();
        let mut core = self.new_core(id)?;
        self.measure_rtts(&mut core, id, None);
        core.add_peers(now, live.iter().copied());
        self.nodes.push(Node {
            core: Some(core),
            timer: None,
            side: 0,
            outsider: false,
        });
        self.drain(id);
        for j in live {
            if let Some(core) = self.nodes[j as usize].core.as_mut() {
                core.add_peer(now, id);
                self.drain(j);
            }
        }
        Ok(id)
    }

    /// Cuts the network: frames between nodes on different sides are dropped. `side(i)` gives
    /// node `i`'s side; [`heal`](Self::heal) puts everyone back on one side.
    pub fn partition(&mut self, side: impl Fn(NodeIndex) -> u8) {
        for (i, node) in self.nodes.iter_mut().enumerate() {
            node.side = side(i as NodeIndex);
        }
    }

    /// Ends a partition.
    pub fn heal(&mut self) {
        self.partition(|_| 0);
    }

    /// Draws from the simulation's RNG (for scenarios: choosing senders, victims...).
    pub fn rng(&mut self) -> &mut fastrand::Rng {
        &mut self.rng
    }

    fn schedule(&mut self, at: Instant, action: Action) {
        self.queue.push(at, action);
    }

    fn apply(&mut self, action: Action) {
        let now = self.now;
        match action {
            Action::Frame { from, to, message } => {
                if self.nodes[to as usize].side != self.nodes[from as usize].side {
                    return;
                }
                let node = &mut self.nodes[to as usize];
                let Some(core) = node.core.as_mut() else {
                    if node.outsider {
                        self.to_outsiders.0 += 1;
                        if let Message::Gossip(_) | Message::Repair(_) = message {
                            self.to_outsiders.1 += 1;
                        }
                    }
                    return;
                };
                core.handle_message(now, from, message);
                self.drain(to);
            }
            Action::Timer { node: i } => {
                let node = &mut self.nodes[i as usize];
                if node.timer != Some(now) {
                    return; // superseded by an earlier timer, or the node crashed
                }
                node.timer = None;
                if let Some(core) = node.core.as_mut() {
                    core.handle_timeout(now);
                    self.drain(i);
                }
            }
        }
    }

    /// Carries node `i`'s outputs: frames into the queue, deliveries into the records, and its
    /// next timer.
    fn drain(&mut self, i: NodeIndex) {
        let now = self.now;
        let elapsed = self.elapsed();
        let Some(core) = self.nodes[i as usize].core.as_mut() else {
            return;
        };
        let mut frames = std::mem::take(&mut self.frames);
        while let Some(t) = core.poll_transmit() {
            frames.push(t);
        }
        while let Some(event) = core.poll_event() {
            match &event {
                Event::Promoted { .. } => self.role_changes.0 += 1,
                Event::Demoted { .. } => self.role_changes.1 += 1,
                Event::Gap { count, .. } => self.gap_payloads += count,
                _ => {}
            }
            if let Event::Deliver(d) = event {
                if let Some(&r) = self.index.get(&d.id) {
                    if !self.records[r].deliver(i, d.hops, elapsed) {
                        self.duplicates += 1;
                    }
                }
            }
        }
        let next = core.poll_timeout();
        for t in frames.drain(..) {
            let kind = t.message.kind();
            let envelope = Envelope {
                sender: i,
                message: t.message,
            };
            self.traffic.count(kind, envelope.encoded_len());
            let t = crate::Transmit {
                to: t.to,
                message: envelope.message,
                urgent: t.urgent,
            };
            // Repairs carry payloads too: redundancy counts them.
            if let Message::Gossip(g) | Message::Repair(g) = &t.message {
                if let Some(&r) = self.index.get(&g.id) {
                    self.records[r].payload_messages += 1;
                }
            }
            if self.config.network.loss > 0.0 && self.rng.f64() < self.config.network.loss {
                continue;
            }
            let latency = self.config.network.latency(self.config.seed, i, t.to);
            self.schedule(
                now + latency,
                Action::Frame {
                    from: i,
                    to: t.to,
                    message: t.message,
                },
            );
        }
        self.frames = frames;
        let node = &mut self.nodes[i as usize];
        if let Some(at) = next {
            if node.timer.is_none_or(|armed| at < armed) {
                node.timer = Some(at);
                self.schedule(at, Action::Timer { node: i });
            }
        }
    }
}

impl Sim {
    /// Payload-cache bytes per node, sampled at every broadcast: the largest one node held, and
    /// the mean over samples and running nodes.
    pub fn cache_bytes(&self) -> (usize, f64) {
        let (sum, samples) = self.cache_samples;
        (
            self.cache_peak,
            if samples == 0 {
                0.0
            } else {
                sum / samples as f64
            },
        )
    }

    fn sample_cache(&mut self) {
        let (mut total, mut live) = (0usize, 0usize);
        for node in &self.nodes {
            if let Some(core) = &node.core {
                let bytes = core.cache_usage().1;
                self.cache_peak = self.cache_peak.max(bytes);
                total += bytes;
                live += 1;
            }
        }
        if live > 0 {
            self.cache_samples.0 += total as f64 / live as f64;
            self.cache_samples.1 += 1;
        }
    }

    /// Promotions (lazy to eager) and demotions (eager to lazy) so far, over all nodes.
    pub fn role_changes(&self) -> (u64, u64) {
        self.role_changes
    }
}
