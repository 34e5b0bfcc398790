//! QUIC beside the in-process network: `cargo bench --bench quic`.
//!
//! 3 and 8 nodes in one process, each a `PlumtreeMemberlist` that knows all the others, over
//! `QuicTransport` on 127.0.0.1 (real QUIC, real TLS) and over `LocalNetwork` (channels), with
//! 256 B and 16 KiB payloads. Node 0 broadcasts. Two measurements per case, median of 3 runs:
//!
//! - throughput: broadcasts as fast as `broadcast().await` allows; cluster deliveries per second
//!   (local delivery included) over the time to the last delivery;
//! - latency: 1,000 broadcasts paced at one per millisecond; time from `broadcast` to each remote
//!   delivery, p50 and p99 (the payload carries its send time).
//!
//! A filter argument selects cases by name, e.g. `cargo bench --bench quic -- quic/8`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memberlist_plumtree::{
    ClusterCa, Delivery, LocalNetwork, PlumtreeConfig, PlumtreeDelegate, PlumtreeMemberlist,
    QuicConfig, QuicTransport,
};

const RUNS: usize = 3;
const PACED: u64 = 1_000;

/// Counts deliveries; while `sample` is set, records the latency of remote ones in microseconds.
#[derive(Clone)]
struct Probe {
    count: Arc<AtomicU64>,
    latencies: Arc<Mutex<Vec<u32>>>,
    epoch: Instant,
}

impl PlumtreeDelegate<u64> for Probe {
    fn on_deliver(&self, delivery: Delivery<u64>) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if delivery.hops > 0 && delivery.payload[8] == 1 {
            let sent = u64::from_be_bytes(delivery.payload[..8].try_into().unwrap());
            let now = self.epoch.elapsed().as_micros() as u64;
            self.latencies
                .lock()
                .unwrap()
                .push(now.saturating_sub(sent) as u32);
        }
    }
}

impl Probe {
    /// A payload of `size` bytes stamped with the current time; `sampled` marks latency runs.
    fn payload(&self, size: usize, sampled: bool) -> Vec<u8> {
        let mut body = vec![7u8; size];
        body[..8].copy_from_slice(&(self.epoch.elapsed().as_micros() as u64).to_be_bytes());
        body[8] = u8::from(sampled);
        body
    }

    fn delivered(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Waits until `expected` deliveries, or none for 3 s; returns the instant of the last.
    async fn settle(&self, expected: u64) -> Instant {
        let (mut last, mut changed) = (0, Instant::now());
        loop {
            let now = self.delivered();
            if now != last {
                (last, changed) = (now, Instant::now());
            }
            if now >= expected || changed.elapsed() > Duration::from_secs(3) {
                return changed;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Quic,
    Local,
}

struct Cluster {
    nodes: Vec<PlumtreeMemberlist<u64, Probe>>,
    transports: Vec<QuicTransport<u64>>,
}

fn cluster(kind: Kind, n: u64, probe: &Probe) -> Cluster {
    let config = |id| {
        PlumtreeConfig::lan()
            .with_rng_seed(Some(id))
            .with_message_cache_max_size(100_000)
            .with_seen_max_size(200_000)
    };
    let nodes: Vec<_> = (0..n)
        .map(|id| PlumtreeMemberlist::new(id, config(id), probe.clone()).unwrap())
        .collect();
    let mut transports = Vec::new();
    match kind {
        Kind::Local => {
            let network = LocalNetwork::new();
            for node in &nodes {
                node.start(network.join(node)).unwrap();
            }
        }
        Kind::Quic => {
            let ca = ClusterCa::generate().unwrap();
            for node in &nodes {
                let id = *node.local_id();
                let tls = ca.node_tls(&id).unwrap();
                let quic = QuicTransport::bind(
                    id,
                    "127.0.0.1:0".parse().unwrap(),
                    QuicConfig::lan(),
                    &tls,
                )
                .unwrap();
                transports.push(quic);
            }
            let addresses: Vec<_> = transports.iter().map(|q| q.local_addr()).collect();
            for (node, quic) in nodes.iter().zip(&transports) {
                let addresses = addresses.clone();
                quic.set_resolver(move |peer| addresses.get(*peer as usize).copied());
                node.start(quic.clone()).unwrap();
            }
        }
    }
    for node in &nodes {
        node.inputs().add_peers(0..n);
    }
    Cluster { nodes, transports }
}

struct Run {
    deliveries_per_sec: f64,
    missing: u64,
    p50_us: u32,
    p99_us: u32,
}

async fn run(kind: Kind, n: u64, payload: usize, broadcasts: u64) -> Run {
    let probe = Probe {
        count: Arc::default(),
        latencies: Arc::default(),
        epoch: Instant::now(),
    };
    let cluster = cluster(kind, n, &probe);
    let origin = &cluster.nodes[0];
    // Warm up: connections open, the tree forms.
    for _ in 0..500 {
        origin
            .broadcast(probe.payload(payload, false))
            .await
            .unwrap();
    }
    probe.settle(500 * n).await;
    tokio::time::sleep(Duration::from_millis(600)).await;

    let start = probe.delivered();
    let t0 = Instant::now();
    for _ in 0..broadcasts {
        origin
            .broadcast(probe.payload(payload, false))
            .await
            .unwrap();
    }
    let done = probe.settle(start + broadcasts * n).await;
    let delivered = probe.delivered() - start;
    let deliveries_per_sec = delivered as f64 / (done - t0).as_secs_f64();
    let missing = broadcasts * n - delivered;

    let start = probe.delivered();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    for _ in 0..PACED {
        tick.tick().await;
        origin
            .broadcast(probe.payload(payload, true))
            .await
            .unwrap();
    }
    probe.settle(start + PACED * n).await;
    let mut latencies = std::mem::take(&mut *probe.latencies.lock().unwrap());
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };

    for node in &cluster.nodes {
        node.shutdown().await;
    }
    for quic in &cluster.transports {
        quic.close().await;
    }
    Run {
        deliveries_per_sec,
        missing: missing + (PACED * n).saturating_sub(probe.delivered() - start),
        p50_us: at(0.5),
        p99_us: at(0.99),
    }
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for n in [3u64, 8] {
        for (payload, broadcasts) in [(256usize, 10_000u64), (16 * 1024, 2_000)] {
            for (kind, label) in [(Kind::Quic, "quic"), (Kind::Local, "local")] {
                let name = format!("{label}/{n}_nodes_{payload}B");
                if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
                    continue;
                }
                let mut runs: Vec<Run> = (0..RUNS)
                    .map(|_| runtime.block_on(run(kind, n, payload, broadcasts)))
                    .collect();
                runs.sort_by(|a, b| a.deliveries_per_sec.total_cmp(&b.deliveries_per_sec));
                let mut p50: Vec<u32> = runs.iter().map(|r| r.p50_us).collect();
                let mut p99: Vec<u32> = runs.iter().map(|r| r.p99_us).collect();
                p50.sort_unstable();
                p99.sort_unstable();
                println!(
                    "{name}: {:.0} deliveries/s (runs {:.0}..{:.0}); paced latency p50 {} us, p99 {} us; {} deliveries missing",
                    runs[RUNS / 2].deliveries_per_sec,
                    runs[0].deliveries_per_sec,
                    runs[RUNS - 1].deliveries_per_sec,
                    p50[RUNS / 2],
                    p99[RUNS / 2],
                    runs.iter().map(|r| r.missing).sum::<u64>(),
                );
            }
        }
    }
}
