//! [`PlumtreeConfig`]: every knob of the protocol core, with presets.
//!
//! Start from a preset and override what differs; [`PlumtreeConfig::validate`] (called by every
//! constructor) rejects combinations that cannot work. docs/configuration.md has the same table
//! with guidance on choosing.

use std::time::Duration;

use crate::error::ConfigError;
use crate::message::DecodeLimits;

/// Largest IHave batch a config may ask for; it is also the decode limit, so it bounds the memory
/// one IHave frame can claim.
pub const MAX_IHAVE_BATCH_SIZE: usize = 4096;

/// Largest payload a config may allow: 16 MiB. Larger broadcasts belong in a blob store.
pub const MAX_MESSAGE_SIZE_LIMIT: usize = 16 * 1024 * 1024;

/// Configuration of the Plumtree protocol core.
///
/// Durations serialize as human-readable strings (`"500ms"`, `"1m"`) with the `serde` feature;
/// fields left out of a serialized config take their [`Default`] values.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use memberlist_plumtree::PlumtreeConfig;
///
/// let config = PlumtreeConfig::lan()
///     .with_eager_fanout(4)
///     .with_graft_timeout(Duration::from_millis(150));
/// assert!(config.validate().is_ok());
/// assert!(PlumtreeConfig::default().with_eager_fanout(0).validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct PlumtreeConfig {
    /// Eager (push) neighbours chosen when a node first picks its neighbours. Default 2.
    ///
    /// Peers that chose this node add to these, so the first eager graph has about twice as
    /// many links per node. Until the tree has formed, every broadcast floods that graph: about
    /// `2 * eager_fanout - 2` redundant copies per delivery. 2 keeps the first broadcasts cheap
    /// when many nodes send at once; 3 gives a shallower first tree (in the simulator, 1,000
    /// nodes, one sender: p50 latency 113-127 ms instead of 145-172 ms) at twice the early
    /// redundancy (docs/simulation.md).
    pub eager_fanout: usize,
    /// Lazy (announce-only) neighbours chosen besides the eager ones. Default 8.
    ///
    /// These receive IHave announcements and repair the tree when an eager link fails; more lazy
    /// neighbours mean more paths for repair and more IHave traffic (about 28 bytes per neighbour
    /// per broadcast).
    pub lazy_fanout: usize,
    /// Cap on eager plus lazy neighbours, counting peers that chose this node. `None` (default):
    /// no cap beyond the membership itself.
    ///
    /// When the cap is reached, a new peer that pushes to this node is answered with a Prune.
    pub max_peers: Option<usize>,
    /// How long an announcement may wait to be batched into an IHave. Default 100 ms.
    ///
    /// A batch also leaves as soon as it holds `ihave_batch_size` entries. Longer intervals mean
    /// fewer IHave frames and slower repair.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub ihave_interval: Duration,
    /// Most announcements in one IHave frame. Default 16. Also the decode limit for received
    /// IHaves, so every node of a cluster must use the same value or a smaller one.
    pub ihave_batch_size: usize,
    /// How long after the announcer had a missing payload to graft it: the first announcement
    /// arrives saying how long it waited in its batch (`Announcement::held_ms`), and the graft
    /// leaves this long minus that wait after it, at once if it waited longer. Default 500 ms.
    ///
    /// Should exceed the usual delay of the eager path (latency times depth of the tree), or nodes
    /// graft payloads that were about to arrive and the tree gains needless links.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub graft_timeout: Duration,
    /// After a Graft, how long to wait before grafting the next announcer. Default 250 ms.
    /// Each round over all the announcers waits twice as long as the round before, up to 16
    /// times this, so `graft_max_retries` grafts to one announcer span 31 times this.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub graft_retry_timeout: Duration,
    /// Grafts sent for one missing payload before giving up on it (the announcers are tried in
    /// turn; a graft the runtime could not queue does not count). Default 5.
    pub graft_max_retries: u32,
    /// A duplicate marks the eager link it came on as suspect; the link is pruned on a duplicate
    /// of a payload first received at least `prune_delay` after that mark, unless the link
    /// brought some payload first in between (it is in use). Default 500 ms; zero prunes on the
    /// first duplicate, as in the paper.
    ///
    /// A duplicate over the heaviest link of a cycle prunes at once whatever this says: that
    /// is always safe (docs/architecture.md). This rule removes the cycles that one misses.
    /// With several broadcasts in flight, pruning on the first duplicate cuts the tree apart
    /// (docs/simulation.md measures it). Make it about the time a broadcast takes to reach the
    /// whole cluster; the cost is that the tree forms that much later.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub prune_delay: Duration,
    /// Tree optimization: when a payload arrives with a hop count at least this much larger than
    /// an announcer's, the announcer is grafted and the sender pruned. Default 14; 0 turns it off.
    ///
    /// One tree serves every origin, so a broadcast that starts deep in it travels far; at 14
    /// only paths that long are shortened (simulator, 1,000 nodes, random senders: mean depth
    /// of the last delivery about 26 -> 21.5 hops, redundancy 0.17 -> 0.25). Each swap suits
    /// one sender's position, so small values (3) make swaps undo each other under many
    /// senders and redundancy triples; they suit a cluster where most broadcasts come from one
    /// node (docs/simulation.md, "Depth under random senders").
    pub optimization_threshold: u32,
    /// How long a payload stays in the cache, to answer Grafts. Default 60 s.
    ///
    /// Bounds how long after a broadcast a lagging node can still be repaired.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub message_cache_ttl: Duration,
    /// Most payloads in the cache; the oldest leaves first. Default 10,000.
    pub message_cache_max_size: usize,
    /// Most payload bytes in the cache; the oldest leaves first. Default 64 MiB.
    pub message_cache_max_bytes: usize,
    /// Largest payload accepted from the application or the network, in bytes (a compressed
    /// payload counts at its decompressed length). Default 64 KiB.
    pub max_message_size: usize,
    /// Compress payloads of at least this many bytes with LZ4 when they broadcast from this
    /// node and come out smaller; they travel and are cached compressed, and every node that
    /// delivers one decompresses it once. Default `None`: sent as they are. 1024 is a good start
    /// for text: below about 256 bytes LZ4 barely shrinks anything, and at 256 the bytes saved
    /// on a 1 Gbit/s link take about as long to send as the extra CPU (docs/configuration.md,
    /// "Compression").
    ///
    /// Needs the `compression` feature (on by default). Every node of the cluster must run a
    /// release that reads compressed payloads (wire version 6) before any node turns this on:
    /// older nodes, and builds without the feature, refuse them.
    pub compress_min_size: Option<usize>,
    /// How long a message id is remembered as delivered, so late copies are recognised as
    /// duplicates. Default 120 s; at least `message_cache_ttl`.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub seen_ttl: Duration,
    /// Most message ids remembered as delivered. Default 100,000 (about 18 MB: some 180 bytes
    /// an id with the tables' slack); at least `message_cache_max_size`.
    pub seen_max_size: usize,
    /// Most payloads tracked as announced but not yet received. Default 10,000. Announcements
    /// beyond it are dropped and counted, so an IHave flood cannot grow memory.
    pub max_missing: usize,
    /// Most announcers remembered per missing payload. Default 8.
    pub max_announcers: usize,
    /// Keep the two neighbours of this node on a hash ring of all members as neighbours, never
    /// evicted: the overlay then stays connected whatever fails, once membership has caught up
    /// (docs/peer-topology.md). Default `false`; `large_cluster()` turns it on.
    pub use_hash_ring: bool,
    /// Rank peers by measured round-trip time (fed with
    /// [`Plumtree::record_rtt`](crate::Plumtree::record_rtt); `MemberlistStack` feeds memberlist's
    /// pings) and graft outcomes: eager links and repairs prefer fast, reliable peers
    /// (docs/peer-topology.md). Without measurements it changes nothing. Default `false`;
    /// `wan()` and `large_cluster()` turn it on.
    pub peer_scoring: bool,
    /// Stretch the IHave flush interval (up to 8 x `ihave_interval`) while the tree needs no
    /// repair, and snap back at the first graft: fewer IHave frames over a healthy tree (at
    /// 1,000 nodes, a seventh with one sender, 72% fewer with random senders), for slightly more
    /// payload copies while failures are not yet detected (docs/adaptive-features.md). Default
    /// `true`; `wan()` turns it off (its flushes would stretch to 1.6 s).
    pub adaptive_ihave: bool,
    /// Keep payloads only as long as a graft can still ask for them (twice the protocol's repair
    /// window, or twice the oldest payload ever grafted from us, at most `message_cache_ttl`)
    /// instead of always `message_cache_ttl`: less memory for the same repairs by grafts, but
    /// anti-entropy cannot repair a partition longer than that (docs/adaptive-features.md).
    /// Default `false` in every preset.
    pub adaptive_cache: bool,
    /// How often a node sends one neighbour, chosen at random, a digest of what it has
    /// delivered and can still supply; the neighbour asks for what it lacks (anti-entropy,
    /// docs/architecture.md). A node also sends a digest to every new neighbour at once.
    /// Default 1 s: a few dozen bytes a second per node, and a node cut off (a partition, a
    /// lost announcement) hears of what it missed within seconds. Zero turns anti-entropy off.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub anti_entropy_interval: Duration,
    /// Most runs of ids in one digest or request; also what a node accepts. Default 64. While
    /// neighbours agree a digest carries an eighth of it (about 220 bytes by default, the
    /// records taking turns); for ten intervals after an exchange found something lacking, all
    /// of it.
    pub anti_entropy_max_runs: usize,
    /// Most payloads a node sends in answer to one request. Default 128; at most one request a
    /// peer is answered per half `anti_entropy_interval`.
    pub anti_entropy_batch: usize,
    /// Most origins whose deliveries a node tracks for anti-entropy; the one heard from least
    /// recently leaves first. Default 4,096.
    pub anti_entropy_max_origins: usize,
    /// How long a payload known to be missing (a digest offered it, or a later payload of its
    /// origin arrived) may stay missing before it is reported as a gap (`Event::Gap`) and no
    /// longer asked for. Default 60 s, the default `message_cache_ttl`: after that no holder
    /// that had it when it was sent still caches it.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub gap_timeout: Duration,
    /// Seed for the protocol's random choices. `None` (default): seeded from the OS.
    ///
    /// A fixed seed makes a node's choices, and its message-id incarnation, repeat: use it for
    /// tests and simulation, never for two lives of one production node.
    pub rng_seed: Option<u64>,
}

impl Default for PlumtreeConfig {
    /// General purpose: links of a few to a few tens of milliseconds, up to a few hundred nodes.
    fn default() -> Self {
        Self {
            eager_fanout: 2,
            lazy_fanout: 8,
            max_peers: None,
            ihave_interval: Duration::from_millis(100),
            ihave_batch_size: 16,
            graft_timeout: Duration::from_millis(500),
            graft_retry_timeout: Duration::from_millis(250),
            graft_max_retries: 5,
            prune_delay: Duration::from_millis(500),
            optimization_threshold: 14,
            message_cache_ttl: Duration::from_secs(60),
            message_cache_max_size: 10_000,
            message_cache_max_bytes: 64 * 1024 * 1024,
            max_message_size: 64 * 1024,
            compress_min_size: None,
            seen_ttl: Duration::from_secs(120),
            seen_max_size: 100_000,
            max_missing: 10_000,
            max_announcers: 8,
            use_hash_ring: false,
            peer_scoring: false,
            adaptive_ihave: true,
            adaptive_cache: false,
            anti_entropy_interval: Duration::from_secs(1),
            anti_entropy_max_runs: 64,
            anti_entropy_batch: 128,
            anti_entropy_max_origins: 4096,
            gap_timeout: Duration::from_secs(60),
            rng_seed: None,
        }
    }
}

impl PlumtreeConfig {
    /// Low-latency LAN (sub-millisecond to a few ms): faster IHave flushes and grafts, shorter
    /// cache. Differs from `default()` only in the fields set here.
    pub fn lan() -> Self {
        Self {
            ihave_interval: Duration::from_millis(50), // repair latency matters more than frames
            graft_timeout: Duration::from_millis(200), // eager paths finish in a few ms
            graft_retry_timeout: Duration::from_millis(100),
            message_cache_ttl: Duration::from_secs(30),
            seen_ttl: Duration::from_secs(60),
            ..Self::default()
        }
    }

    /// High-latency WAN (tens to hundreds of ms, some loss): more redundancy, patient grafts,
    /// longer cache.
    pub fn wan() -> Self {
        Self {
            eager_fanout: 4,                            // redundancy while the tree forms
            ihave_interval: Duration::from_millis(200), // fewer, fuller IHave frames
            graft_timeout: Duration::from_secs(1),      // eager path may take several 100 ms hops
            graft_retry_timeout: Duration::from_millis(500),
            graft_max_retries: 7,
            message_cache_ttl: Duration::from_secs(120),
            seen_ttl: Duration::from_secs(240),
            peer_scoring: true, // links differ by tens of ms: prefer the fast ones
            // Scoring already prefers fast links; swaps on top bought little depth for more
            // copies (docs/simulation.md, "Depth under random senders").
            optimization_threshold: 0,
            // Stretched up to 1.6 s, flushes delay repairs more than the frames saved are worth
            // here (docs/adaptive-features.md).
            adaptive_ihave: false,
            ..Self::default()
        }
    }

    /// 1,000 nodes and more: larger batches and caches, a bounded neighbour table.
    pub fn large_cluster() -> Self {
        Self {
            eager_fanout: 3, // the two ring neighbours and one more: 2 would make the ring the tree
            max_peers: Some(32), // bound per-node state however popular a node is
            ihave_batch_size: 32, // fewer IHave frames in a busy cluster
            graft_timeout: Duration::from_millis(750), // deeper tree, longer eager paths
            graft_retry_timeout: Duration::from_millis(300),
            message_cache_ttl: Duration::from_secs(90),
            message_cache_max_size: 50_000,
            seen_ttl: Duration::from_secs(180),
            seen_max_size: 200_000,
            max_missing: 20_000,
            use_hash_ring: true, // connected by construction, whatever fails
            peer_scoring: true,
            // Swaps made random senders' p99 half as long again and nearly tripled the copies
            // here (docs/simulation.md, "Depth under random senders").
            optimization_threshold: 0,
            // adaptive_cache stays off: anti-entropy repairs a partition only from what is
            // still cached, and the cache is bounded by size and bytes anyway
            ..Self::default()
        }
    }

    /// Checks that the fields make sense together.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        ConfigError::first_zero(
            &[
                ("eager_fanout", self.eager_fanout),
                ("ihave_batch_size", self.ihave_batch_size),
                ("message_cache_max_size", self.message_cache_max_size),
                ("message_cache_max_bytes", self.message_cache_max_bytes),
                ("max_message_size", self.max_message_size),
                ("seen_max_size", self.seen_max_size),
                ("max_missing", self.max_missing),
                ("max_announcers", self.max_announcers),
                ("graft_max_retries", self.graft_max_retries as usize),
                ("anti_entropy_max_runs", self.anti_entropy_max_runs),
                ("anti_entropy_batch", self.anti_entropy_batch),
                ("anti_entropy_max_origins", self.anti_entropy_max_origins),
            ],
            &[
                ("ihave_interval", self.ihave_interval),
                ("graft_timeout", self.graft_timeout),
                ("graft_retry_timeout", self.graft_retry_timeout),
                ("message_cache_ttl", self.message_cache_ttl),
                ("seen_ttl", self.seen_ttl),
                ("gap_timeout", self.gap_timeout),
            ],
        )?;
        if self.ihave_batch_size > MAX_IHAVE_BATCH_SIZE {
            return Err(ConfigError::TooLarge {
                field: "ihave_batch_size",
                max: MAX_IHAVE_BATCH_SIZE,
            });
        }
        if self.max_message_size > MAX_MESSAGE_SIZE_LIMIT {
            return Err(ConfigError::TooLarge {
                field: "max_message_size",
                max: MAX_MESSAGE_SIZE_LIMIT,
            });
        }
        if let Some(max) = self.max_peers {
            let wanted = self.eager_fanout + self.lazy_fanout;
            if max < wanted {
                return Err(ConfigError::MaxPeersBelowFanout {
                    max_peers: max,
                    fanout: wanted,
                });
            }
        }
        if self.seen_ttl < self.message_cache_ttl {
            return Err(ConfigError::Inconsistent(
                "seen_ttl must be at least message_cache_ttl",
            ));
        }
        if self.seen_max_size < self.message_cache_max_size {
            return Err(ConfigError::Inconsistent(
                "seen_max_size must be at least message_cache_max_size",
            ));
        }
        if self.graft_retry_timeout > self.graft_timeout {
            return Err(ConfigError::Inconsistent(
                "graft_retry_timeout must not exceed graft_timeout",
            ));
        }
        if self.compress_min_size.is_some() && !cfg!(feature = "compression") {
            return Err(ConfigError::Inconsistent(
                "compress_min_size needs the `compression` feature",
            ));
        }
        Ok(())
    }

    /// Whether a payload of `len` bytes may be broadcast under this config.
    pub(crate) fn check_payload(&self, len: usize) -> Result<(), crate::BroadcastError> {
        if len > self.max_message_size {
            return Err(crate::BroadcastError::PayloadTooLarge {
                size: len,
                max: self.max_message_size,
            });
        }
        Ok(())
    }

    /// The limits a decoder applies to frames for a node with this config.
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_payload: self.max_message_size,
            max_announcements: self.ihave_batch_size,
            max_runs: self.anti_entropy_max_runs,
        }
    }
}

setters! {
    PlumtreeConfig;
    /// Sets [`eager_fanout`](Self::eager_fanout).
    with_eager_fanout: eager_fanout: usize;
    /// Sets [`lazy_fanout`](Self::lazy_fanout).
    with_lazy_fanout: lazy_fanout: usize;
    /// Sets [`max_peers`](Self::max_peers).
    with_max_peers: max_peers: Option<usize>;
    /// Sets [`ihave_interval`](Self::ihave_interval).
    with_ihave_interval: ihave_interval: Duration;
    /// Sets [`ihave_batch_size`](Self::ihave_batch_size).
    with_ihave_batch_size: ihave_batch_size: usize;
    /// Sets [`graft_timeout`](Self::graft_timeout).
    with_graft_timeout: graft_timeout: Duration;
    /// Sets [`graft_retry_timeout`](Self::graft_retry_timeout).
    with_graft_retry_timeout: graft_retry_timeout: Duration;
    /// Sets [`graft_max_retries`](Self::graft_max_retries).
    with_graft_max_retries: graft_max_retries: u32;
    /// Sets [`prune_delay`](Self::prune_delay).
    with_prune_delay: prune_delay: Duration;
    /// Sets [`optimization_threshold`](Self::optimization_threshold).
    with_optimization_threshold: optimization_threshold: u32;
    /// Sets [`message_cache_ttl`](Self::message_cache_ttl).
    with_message_cache_ttl: message_cache_ttl: Duration;
    /// Sets [`message_cache_max_size`](Self::message_cache_max_size).
    with_message_cache_max_size: message_cache_max_size: usize;
    /// Sets [`message_cache_max_bytes`](Self::message_cache_max_bytes).
    with_message_cache_max_bytes: message_cache_max_bytes: usize;
    /// Sets [`max_message_size`](Self::max_message_size).
    with_max_message_size: max_message_size: usize;
    /// Sets [`compress_min_size`](Self::compress_min_size).
    with_compress_min_size: compress_min_size: Option<usize>;
    /// Sets [`seen_ttl`](Self::seen_ttl).
    with_seen_ttl: seen_ttl: Duration;
    /// Sets [`seen_max_size`](Self::seen_max_size).
    with_seen_max_size: seen_max_size: usize;
    /// Sets [`max_missing`](Self::max_missing).
    with_max_missing: max_missing: usize;
    /// Sets [`max_announcers`](Self::max_announcers).
    with_max_announcers: max_announcers: usize;
    /// Sets [`use_hash_ring`](Self::use_hash_ring).
    with_use_hash_ring: use_hash_ring: bool;
    /// Sets [`peer_scoring`](Self::peer_scoring).
    with_peer_scoring: peer_scoring: bool;
    /// Sets [`adaptive_ihave`](Self::adaptive_ihave).
    with_adaptive_ihave: adaptive_ihave: bool;
    /// Sets [`adaptive_cache`](Self::adaptive_cache).
    with_adaptive_cache: adaptive_cache: bool;
    /// Sets [`anti_entropy_interval`](Self::anti_entropy_interval) (zero: off).
    with_anti_entropy_interval: anti_entropy_interval: Duration;
    /// Sets [`anti_entropy_max_runs`](Self::anti_entropy_max_runs).
    with_anti_entropy_max_runs: anti_entropy_max_runs: usize;
    /// Sets [`anti_entropy_batch`](Self::anti_entropy_batch).
    with_anti_entropy_batch: anti_entropy_batch: usize;
    /// Sets [`anti_entropy_max_origins`](Self::anti_entropy_max_origins).
    with_anti_entropy_max_origins: anti_entropy_max_origins: usize;
    /// Sets [`gap_timeout`](Self::gap_timeout).
    with_gap_timeout: gap_timeout: Duration;
    /// Sets [`rng_seed`](Self::rng_seed).
    with_rng_seed: rng_seed: Option<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for config in [
            PlumtreeConfig::default(),
            PlumtreeConfig::lan(),
            PlumtreeConfig::wan(),
            PlumtreeConfig::large_cluster(),
        ] {
            assert_eq!(config.validate(), Ok(()), "{config:?}");
        }
    }

    #[test]
    fn compression_is_refused_without_its_feature() {
        let config = PlumtreeConfig::default().with_compress_min_size(Some(256));
        if cfg!(feature = "compression") {
            assert_eq!(config.validate(), Ok(()));
        } else {
            assert_eq!(
                config.validate(),
                Err(ConfigError::Inconsistent(
                    "compress_min_size needs the `compression` feature"
                ))
            );
        }
    }

    #[test]
    fn invalid_configs_name_the_problem() {
        let d = PlumtreeConfig::default;
        assert_eq!(
            d().with_eager_fanout(0).validate(),
            Err(ConfigError::Zero("eager_fanout"))
        );
        assert_eq!(
            d().with_graft_timeout(Duration::ZERO).validate(),
            Err(ConfigError::Zero("graft_timeout"))
        );
        assert_eq!(
            d().with_max_peers(Some(5)).validate(),
            Err(ConfigError::MaxPeersBelowFanout {
                max_peers: 5,
                fanout: 10
            })
        );
        assert!(matches!(
            d().with_ihave_batch_size(MAX_IHAVE_BATCH_SIZE + 1)
                .validate(),
            Err(ConfigError::TooLarge {
                field: "ihave_batch_size",
                ..
            })
        ));
        assert!(matches!(
            d().with_seen_ttl(Duration::from_secs(1)).validate(),
            Err(ConfigError::Inconsistent(_))
        ));
        assert!(matches!(
            d().with_graft_retry_timeout(Duration::from_secs(9))
                .validate(),
            Err(ConfigError::Inconsistent(_))
        ));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_uses_readable_durations_and_defaults() {
        let json = serde_json::to_value(PlumtreeConfig::lan()).unwrap();
        assert_eq!(json["graft_timeout"], "200ms");
        let parsed: PlumtreeConfig =
            serde_json::from_str(r#"{"eager_fanout": 4, "ihave_interval": "1s 5ms"}"#).unwrap();
        assert_eq!(
            parsed,
            PlumtreeConfig::default()
                .with_eager_fanout(4)
                .with_ihave_interval(Duration::from_millis(1005))
        );
        assert!(serde_json::from_str::<PlumtreeConfig>(r#"{"eager_fanot": 4}"#).is_err());
    }
}
