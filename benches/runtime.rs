//! Throughput of the tokio runtime: `cargo bench --bench runtime`.
//!
//! Ten nodes in one process over the in-process network; node 0 broadcasts as fast as
//! `broadcast().await` lets it (no pacing), then the run waits until every node has delivered
//! every broadcast. A third case has every node broadcast its share at once (ten unpaced
//! origins: payloads cross links both ways). Reported per case, median of 5 runs: cluster
//! deliveries per second (local delivery included) over the time to the last delivery, and
//! process CPU time per delivery (which includes this harness polling every 200 us), plus frames
//! dropped anywhere and deliveries that never happened (the target is none of either: an unpaced
//! sender must meet backpressure, not loss).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memberlist_plumtree::{
    Delivery, LocalNetwork, PlumtreeConfig, PlumtreeDelegate, PlumtreeMemberlist,
};

const NODES: u64 = 10;
const BROADCASTS: u64 = 20_000;
const RUNS: usize = 5;

#[derive(Clone, Default)]
struct Count(Arc<AtomicU64>);

impl PlumtreeDelegate<u64> for Count {
    fn on_deliver(&self, _: Delivery<u64>) {
        self.0.fetch_add(1, Ordering::Relaxed);
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

struct Run {
    missed: u64,
    given_up: u64,
    unanswered: u64,
    deliveries_per_sec: f64,
    cpu_per_delivery: Duration,
    dropped: u64,
}

async fn run(payload: usize, origins: u64) -> Run {
    let network = LocalNetwork::new();
    let count = Count::default();
    let nodes: Vec<Arc<_>> = (0..NODES)
        .map(|id| {
            // The cache must cover the rate times the longest repair: at 100,000+ broadcasts/s
            // the default 10,000 payloads is a tenth of a second, and late grafts go unanswered.
            // Likewise the missing table must hold what a node can fall behind by: with ten
            // origins, a node congested for a quarter of a second missed over 10,000 payloads,
            // dropped the announcements beyond that, and lost those payloads for good.
            let config = PlumtreeConfig::lan()
                .with_rng_seed(Some(id))
                .with_message_cache_max_size(200_000)
                .with_seen_max_size(400_000)
                .with_max_missing(100_000);
            Arc::new(PlumtreeMemberlist::new(id, config, count.clone()).unwrap())
        })
        .collect();
    for node in &nodes {
        node.start(network.join(node)).unwrap();
        node.add_peers(0..NODES);
    }
    let body = vec![7u8; payload];
    // Warm up: let the tree form.
    for _ in 0..2_000 {
        nodes[0].broadcast(body.clone()).await.unwrap();
    }
    while count.0.load(Ordering::Relaxed) < 2_000 * NODES {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await; // confirmed prunes settle
    let start_count = count.0.load(Ordering::Relaxed);
    let (t0, cpu0) = (Instant::now(), cpu_time());
    if origins == 1 {
        // On the calling task, as a service's main loop would (and as in earlier sessions).
        for _ in 0..BROADCASTS {
            nodes[0].broadcast(body.clone()).await.unwrap();
        }
    } else {
        let mut senders = tokio::task::JoinSet::new();
        for node in &nodes[..origins as usize] {
            let (node, body) = (Arc::clone(node), body.clone());
            senders.spawn(async move {
                for _ in 0..BROADCASTS / origins {
                    node.broadcast(body.clone()).await.unwrap();
                }
            });
        }
        senders.join_all().await;
    }
    // Wait for the last delivery: until all arrived, or none arrived for 3 s (lost for good).
    let expected = start_count + BROADCASTS * NODES;
    let (mut last, mut last_change, mut done_at) = (0, Instant::now(), Instant::now());
    loop {
        let now = count.0.load(Ordering::Relaxed);
        if now != last {
            (last, last_change, done_at) = (now, Instant::now(), Instant::now());
        }
        if now >= expected || last_change.elapsed() > Duration::from_secs(3) {
            break;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let (elapsed, cpu) = (done_at - t0, cpu_time() - cpu0);
    let delivered = count.0.load(Ordering::Relaxed) - start_count;
    let (mut dropped, mut given_up, mut unanswered) = (0, 0, 0);
    for node in &nodes {
        let stats = node.stats().await.unwrap();
        dropped += stats.outbound_dropped + stats.inbound_dropped;
        given_up += stats.protocol.grafts_given_up;
        unanswered += stats.protocol.grafts_unanswered;
        node.shutdown().await;
    }
    Run {
        missed: BROADCASTS * NODES - delivered,
        given_up,
        unanswered,
        deliveries_per_sec: delivered as f64 / elapsed.as_secs_f64(),
        cpu_per_delivery: cpu / delivered as u32,
        dropped,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects payload sizes by name.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (payload, origins) in [(256usize, 1), (1024, 1), (256, NODES)] {
        let name = match origins {
            1 => format!("runtime/{NODES}_nodes_{payload}B"),
            _ => format!("runtime/{NODES}_nodes_{payload}B_{origins}_origins"),
        };
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let mut runs: Vec<Run> = (0..RUNS)
            .map(|_| runtime.block_on(run(payload, origins)))
            .collect();
        runs.sort_by(|a, b| a.deliveries_per_sec.total_cmp(&b.deliveries_per_sec));
        let median = &runs[RUNS / 2];
        let mut cpu: Vec<Duration> = runs.iter().map(|r| r.cpu_per_delivery).collect();
        cpu.sort();
        println!(
            "{name}: {:.0} deliveries/s (runs {:.0}..{:.0}), {:.2} us CPU per delivery, {} frames dropped, {} deliveries missing ({} payloads given up after grafts, {} grafts unanswered)",
            median.deliveries_per_sec,
            runs[0].deliveries_per_sec,
            runs[RUNS - 1].deliveries_per_sec,
            cpu[RUNS / 2].as_secs_f64() * 1e6,
            runs.iter().map(|r| r.dropped).sum::<u64>(),
            runs.iter().map(|r| r.missed).sum::<u64>(),
            runs.iter().map(|r| r.given_up).sum::<u64>(),
            runs.iter().map(|r| r.unanswered).sum::<u64>(),
        );
    }
}
