//! Throughput of the tokio runtime under a saturating sender: `cargo bench --bench runtime`.
//!
//! Ten nodes in one process over the in-process network, every node knowing every other; node 0
//! broadcasts as fast as `broadcast().await` lets it (no pacing), then the run waits until every
//! node has delivered every broadcast. The `10_origins` case has every node broadcast its share at
//! once (payloads cross links both ways).
//!
//! Cases, selected by a filter argument matched against their names:
//! - `tuned/...`: `PlumtreeConfig::lan()` with caches sized for the rate, so that admission does
//!   not bind and the runtime's own speed shows, and `tuned_3_6`, `tuned_4_4` with those
//!   eager/lazy fanouts;
//! - `fanout_2_8`, `fanout_3_6`, `fanout_4_4`, `lan`, `wan`, `large_cluster`: the config as a new
//!   user would take it (`default()` with those fanouts, or the preset), nothing enlarged; each at
//!   256 B and 16 KiB.
//!
//! - `signing/{unsigned,signed}/...`: the `tuned` config at 256 B and 4 KiB, every node with
//!   origin keys (signing and checking) or none.
//! - `compression/{plain,lz4}/...`: the `tuned` config with payloads of JSON-like text or random
//!   bytes at 256 B, 1 KiB, 4 KiB and 64 KiB, sent as they are or with `compress_min_size` 256.
//! - `topics/{1,4}_topics/...`: the `tuned` config, every node in 0 or 3 topics besides the
//!   default one, the broadcasts spread over the default topic and the topics in turn (one
//!   origin, or ten): what running a core per topic costs.
//!
//! `--broadcasts N` (default 20,000) and `--runs N` (default 5) set the size; `--bytes` installs
//! a `metrics` recorder (for every case of the run, so compare cases measured together) and
//! adds the bytes all nodes sent per delivery. Reported per case:
//! the median of the runs of cluster deliveries per second (local delivery included) over the
//! time to the last delivery, and of process CPU time per delivery (which includes this harness
//! polling every 200 us); summed over the runs, frames dropped anywhere, deliveries missing and
//! delivered twice, and payloads reported given up. The target is none missing and none twice:
//! an unpaced sender must meet backpressure, not loss.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memberlist_plumtree::{
    Delivery, LocalNetwork, MessageId, PlumtreeConfig, PlumtreeDelegate, PlumtreeMemberlist, Topic,
    TopicId,
};

const NODES: u64 = 10;
const WARMUP: u64 = 2_000;

/// Counts deliveries per (node, broadcast): the payload's first 8 bytes are its number.
#[derive(Clone)]
struct Count {
    total: Arc<AtomicU64>,
    seen: Arc<Vec<AtomicU8>>,
    node: u64,
    broadcasts: u64,
}

impl PlumtreeDelegate<u64> for Count {
    fn on_deliver(&self, delivery: Delivery<u64>) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let n = u64::from_le_bytes(delivery.payload[..8].try_into().unwrap());
        let slot = (self.node * self.broadcasts + n) as usize;
        self.seen[slot].fetch_add(1, Ordering::Relaxed);
    }
}

/// User plus system CPU time of this process, from /proc (Linux; 10 ms resolution).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("Linux /proc");
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split(' ')
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// A config by name.
type Named = (&'static str, fn() -> PlumtreeConfig);

struct Case {
    name: String,
    config: fn() -> PlumtreeConfig,
    payload: usize,
    origins: u64,
    body: Body,
    /// Broadcast with `compress_min_size` 256.
    compress: bool,
    /// Every node signs its broadcasts and checks everyone's (`with_origin_keys`).
    sign: bool,
    /// Topics every node joins besides the default one; broadcasts go to each in turn.
    topics: u64,
}

impl Case {
    /// One unpaced origin, filler payloads, neither compressed nor signed.
    fn new(name: String, config: fn() -> PlumtreeConfig, payload: usize) -> Self {
        Self {
            name,
            config,
            payload,
            origins: 1,
            body: Body::Filler,
            compress: false,
            sign: false,
            topics: 0,
        }
    }
}

/// Where a node broadcasts: payload `n` goes to the default topic or one of the topics, in turn.
#[derive(Clone)]
struct Sender {
    node: Arc<PlumtreeMemberlist<u64, Count>>,
    topics: Vec<Topic<u64, Count>>,
}

impl Sender {
    async fn send(&self, n: u64, payload: Vec<u8>) -> MessageId {
        let turn = (n % (self.topics.len() as u64 + 1)) as usize;
        match turn.checked_sub(1) {
            None => self.node.broadcast(payload).await,
            Some(topic) => self.topics[topic].broadcast(payload).await,
        }
        .unwrap()
    }
}

/// What a payload holds after its number (its first 8 bytes).
#[derive(Clone, Copy)]
enum Body {
    /// One repeated byte.
    Filler,
    /// JSON-like records with numbers and words drawn from a generator seeded by the number.
    Text,
    /// Random bytes.
    Random,
}

impl Body {
    fn payload(self, n: u64, len: usize) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(n);
        let mut body = match self {
            Body::Filler => vec![7u8; len],
            Body::Random => std::iter::repeat_with(|| rng.u8(..)).take(len).collect(),
            Body::Text => {
                const WORDS: [&str; 8] = [
                    "replicated",
                    "invalidated",
                    "session",
                    "shard",
                    "lease",
                    "renewed",
                    "commit",
                    "timeout",
                ];
                let mut text = String::new();
                while text.len() < len {
                    let word = |rng: &mut fastrand::Rng| WORDS[rng.usize(..WORDS.len())];
                    text.push_str(&format!(
                        "{{\"ts\":{},\"node\":\"node-{}\",\"msg\":\"{} {}:{}\",\"ms\":{}}}\n",
                        1_733_500_000_000u64 + rng.u64(..10_000_000),
                        rng.u32(..64),
                        word(&mut rng),
                        word(&mut rng),
                        rng.u32(..100_000),
                        rng.u32(..200),
                    ));
                }
                text.truncate(len);
                text.into_bytes()
            }
        };
        body[..8].copy_from_slice(&n.to_le_bytes());
        body
    }
}

/// `node` signing its broadcasts and checking those of every node of the bench.
fn signing(node: PlumtreeMemberlist<u64, Count>, id: u64) -> PlumtreeMemberlist<u64, Count> {
    #[cfg(feature = "signing")]
    {
        use memberlist_plumtree::OriginKeys;
        let secret = |n: u64| [n as u8 + 1; 32];
        let keys = (0..NODES).fold(OriginKeys::new(id, secret(id)), |keys, n| {
            let public = OriginKeys::new(n, secret(n)).public_key();
            keys.with_origin(n, public).unwrap()
        });
        node.with_origin_keys(keys).unwrap()
    }
    #[cfg(not(feature = "signing"))]
    {
        let _ = (node, id);
        panic!("the signing cases need the `signing` feature")
    }
}

/// With `--bytes`: reads (and resets) what the nodes' `metrics` counters recorded.
static RECORDER: std::sync::OnceLock<metrics_util::debugging::Snapshotter> =
    std::sync::OnceLock::new();

/// Bytes all nodes sent since the last call (0 without `--bytes`).
fn bytes_sent() -> u64 {
    let Some(snapshotter) = RECORDER.get() else {
        return 0;
    };
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "plumtree_bytes_sent_total")
        .map(|(.., value)| match value {
            metrics_util::debugging::DebugValue::Counter(n) => n,
            _ => 0,
        })
        .sum()
}

struct Run {
    missed: u64,
    twice: u64,
    given_up: u64,
    deliveries_per_sec: f64,
    cpu_per_delivery: Duration,
    bytes_per_delivery: f64,
    dropped: u64,
}

async fn run(case: &Case, broadcasts: u64) -> Run {
    let network = LocalNetwork::new();
    let total = WARMUP + broadcasts;
    let count = Count {
        total: Arc::default(),
        seen: Arc::new((0..NODES * total).map(|_| AtomicU8::new(0)).collect()),
        node: 0,
        broadcasts: total,
    };
    let nodes: Vec<Arc<_>> = (0..NODES)
        .map(|id| {
            let config = (case.config)()
                .with_rng_seed(Some(id))
                .with_compress_min_size(case.compress.then_some(256));
            let delegate = Count {
                node: id,
                ..count.clone()
            };
            let node = PlumtreeMemberlist::new(id, config, delegate).unwrap();
            Arc::new(if case.sign { signing(node, id) } else { node })
        })
        .collect();
    for node in &nodes {
        node.start(network.join(node)).unwrap();
        node.inputs().add_peers(0..NODES);
    }
    let senders: Vec<Sender> = nodes
        .iter()
        .enumerate()
        .map(|(id, node)| {
            let topics = (1..=case.topics)
                .map(|topic| {
                    let config = (case.config)().with_rng_seed(Some(id as u64 + 100 * topic));
                    let delegate = Count {
                        node: id as u64,
                        ..count.clone()
                    };
                    let joined = node
                        .join_topic(TopicId::new(topic), config, delegate)
                        .unwrap();
                    joined.inputs().add_peers(0..NODES);
                    joined
                })
                .collect();
            Sender {
                node: Arc::clone(node),
                topics,
            }
        })
        .collect();
    let body = |n: u64| case.body.payload(n, case.payload);
    // Warm up: let the trees form.
    for n in 0..WARMUP {
        senders[0].send(n, body(n)).await;
    }
    while count.total.load(Ordering::Relaxed) < WARMUP * NODES {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await; // confirmed prunes settle
    let start_count = count.total.load(Ordering::Relaxed);
    bytes_sent();
    let (t0, cpu0) = (Instant::now(), cpu_time());
    if case.origins == 1 {
        // On the calling task, as a service's main loop would.
        for n in WARMUP..total {
            senders[0].send(n, body(n)).await;
        }
    } else {
        let mut tasks = tokio::task::JoinSet::new();
        let share = broadcasts / case.origins;
        for (i, sender) in senders[..case.origins as usize].iter().enumerate() {
            let sender = sender.clone();
            let first = WARMUP + i as u64 * share;
            let payloads: Vec<(u64, Vec<u8>)> =
                (first..first + share).map(|n| (n, body(n))).collect();
            tasks.spawn(async move {
                for (n, payload) in payloads {
                    sender.send(n, payload).await;
                }
            });
        }
        tasks.join_all().await;
    }
    // Wait for the last delivery: until all arrived, or none arrived for 3 s (lost for good).
    let expected = start_count + broadcasts * NODES;
    let (mut last, mut last_change, mut done_at) = (0, Instant::now(), Instant::now());
    loop {
        let now = count.total.load(Ordering::Relaxed);
        if now != last {
            (last, last_change, done_at) = (now, Instant::now(), Instant::now());
        }
        if now >= expected || last_change.elapsed() > Duration::from_secs(3) {
            break;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let (elapsed, cpu) = (done_at - t0, cpu_time() - cpu0);
    let delivered = count.total.load(Ordering::Relaxed) - start_count;
    let bytes = bytes_sent();
    let (mut dropped, mut given_up) = (0, 0);
    for sender in &senders {
        for topic in &sender.topics {
            let stats = topic.stats().await.unwrap();
            dropped += stats.outbound_dropped + stats.inbound_dropped;
            given_up += stats.protocol.grafts_given_up;
        }
    }
    drop(senders);
    for node in &nodes {
        let stats = node.stats().await.unwrap();
        dropped += stats.outbound_dropped + stats.inbound_dropped;
        given_up += stats.protocol.grafts_given_up;
        node.shutdown().await;
    }
    let (mut missed, mut twice) = (0, 0);
    for node in 0..NODES {
        for n in WARMUP..total {
            match count.seen[(node * total + n) as usize].load(Ordering::Relaxed) {
                0 => missed += 1,
                1 => {}
                k => twice += u64::from(k) - 1,
            }
        }
    }
    Run {
        missed,
        twice,
        given_up,
        deliveries_per_sec: delivered as f64 / elapsed.as_secs_f64(),
        cpu_per_delivery: cpu / delivered.max(1) as u32,
        bytes_per_delivery: bytes as f64 / delivered.max(1) as f64,
        dropped,
    }
}

fn cases() -> Vec<Case> {
    fn tuned() -> PlumtreeConfig {
        // The cache covers the rate times the longest repair, the missing table what a node can
        // fall behind by.
        PlumtreeConfig::lan()
            .with_message_cache_max_size(200_000)
            .with_seen_max_size(400_000)
            .with_max_missing(100_000)
    }
    let mut cases = vec![];
    for (payload, origins) in [(256usize, 1), (1024, 1), (256, NODES)] {
        let name = match origins {
            1 => format!("runtime/tuned/{NODES}_nodes_{payload}B"),
            _ => format!("runtime/tuned/{NODES}_nodes_{payload}B_{origins}_origins"),
        };
        cases.push(Case {
            origins,
            ..Case::new(name, tuned, payload)
        });
    }
    let tuned_fanouts: [Named; 2] = [
        ("tuned_3_6", || {
            tuned().with_eager_fanout(3).with_lazy_fanout(6)
        }),
        ("tuned_4_4", || {
            tuned().with_eager_fanout(4).with_lazy_fanout(4)
        }),
    ];
    for (name, config) in tuned_fanouts {
        cases.push(Case::new(
            format!("runtime/{name}/{NODES}_nodes_256B"),
            config,
            256,
        ));
    }
    let configs: [Named; 6] = [
        ("fanout_2_8", PlumtreeConfig::default),
        ("fanout_3_6", || {
            PlumtreeConfig::default()
                .with_eager_fanout(3)
                .with_lazy_fanout(6)
        }),
        ("fanout_4_4", || {
            PlumtreeConfig::default()
                .with_eager_fanout(4)
                .with_lazy_fanout(4)
        }),
        ("lan", PlumtreeConfig::lan),
        ("wan", PlumtreeConfig::wan),
        ("large_cluster", PlumtreeConfig::large_cluster),
    ];
    for payload in [256usize, 16 * 1024] {
        for (config_name, config) in configs {
            cases.push(Case::new(
                format!("runtime/{config_name}/{NODES}_nodes_{payload}B"),
                config,
                payload,
            ));
        }
    }
    for payload in [256usize, 1024, 4096, 65536] {
        for (kind, body) in [("text", Body::Text), ("random", Body::Random)] {
            for (mode, compress) in [("plain", false), ("lz4", true)] {
                let name = format!("runtime/compression/{mode}/{NODES}_nodes_{payload}B_{kind}");
                cases.push(Case {
                    body,
                    compress,
                    ..Case::new(name, tuned, payload)
                });
            }
        }
    }
    for (payload, origins) in [(256usize, 1), (256, NODES)] {
        for topics in [0u64, 3] {
            let name = match origins {
                1 => format!(
                    "runtime/topics/{}_topics/{NODES}_nodes_{payload}B",
                    topics + 1
                ),
                _ => format!(
                    "runtime/topics/{}_topics/{NODES}_nodes_{payload}B_{origins}_origins",
                    topics + 1
                ),
            };
            cases.push(Case {
                topics,
                origins,
                ..Case::new(name, tuned, payload)
            });
        }
    }
    for payload in [256usize, 4096] {
        for (mode, sign) in [("unsigned", false), ("signed", true)] {
            let name = format!("runtime/signing/{mode}/{NODES}_nodes_{payload}B");
            cases.push(Case {
                sign,
                ..Case::new(name, tuned, payload)
            });
        }
    }
    cases
}

fn main() {
    // `cargo bench` passes `--bench`; a free argument filters cases by name.
    let mut args = std::env::args().skip(1);
    let (mut filter, mut broadcasts, mut runs) = (None, 20_000u64, 5usize);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--broadcasts" => broadcasts = args.next().and_then(|n| n.parse().ok()).unwrap(),
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).unwrap(),
            "--bytes" => {
                let recorder = metrics_util::debugging::DebuggingRecorder::new();
                RECORDER.get_or_init(|| recorder.snapshotter());
                recorder
                    .install()
                    .expect("the only recorder of this process");
            }
            flag if flag.starts_with('-') => {}
            name => filter = Some(name.to_owned()),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for case in cases() {
        if filter
            .as_ref()
            .is_some_and(|f| !case.name.contains(f.as_str()))
        {
            continue;
        }
        let mut results: Vec<Run> = (0..runs)
            .map(|_| runtime.block_on(run(&case, broadcasts)))
            .collect();
        results.sort_by(|a, b| a.deliveries_per_sec.total_cmp(&b.deliveries_per_sec));
        let median = &results[runs / 2];
        let mut cpu: Vec<Duration> = results.iter().map(|r| r.cpu_per_delivery).collect();
        cpu.sort();
        let mut bytes: Vec<f64> = results.iter().map(|r| r.bytes_per_delivery).collect();
        bytes.sort_by(f64::total_cmp);
        let bytes = match RECORDER.get() {
            Some(_) => format!(", {:.0} bytes sent per delivery", bytes[runs / 2]),
            None => String::new(),
        };
        let sum = |f: fn(&Run) -> u64| results.iter().map(f).sum::<u64>();
        let worst = results.iter().map(|r| r.missed).max().unwrap_or(0);
        println!(
            "{}: {:.0} deliveries/s (runs {:.0}..{:.0}), {:.2} us CPU per delivery{bytes}, {} frames dropped, {} deliveries missing (worst run {worst}), {} twice, {} payloads given up",
            case.name,
            median.deliveries_per_sec,
            results[0].deliveries_per_sec,
            results[runs - 1].deliveries_per_sec,
            cpu[runs / 2].as_secs_f64() * 1e6,
            sum(|r| r.dropped),
            sum(|r| r.missed),
            sum(|r| r.twice),
            sum(|r| r.given_up),
        );
    }
}
