//! Broadcast latency of a node under a connection flood, against the same node undisturbed.
//!
//! Three nodes on 127.0.0.1 (memberlist over UDP+TCP, frames over memberlist, the default
//! builder). Node 1 broadcasts `--messages` payloads at `--rate` per second; nodes 2 and 3 record
//! when each arrives. Phases alternate, `--rounds` times each: quiet, then flooded, where another
//! thread keeps 300 connections open that each sent one byte, and opens 300 more every second
//! that send 64 random bytes and close (the attack of tests/hostile.rs). Prints p50/p99 per phase
//! and the median ratio of flooded to quiet p99.
//!
//! ```sh
//! cargo run --release --example flood -- [--rounds 5] [--messages 500] [--rate 250]
//! ```

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memberlist_plumtree::memberlist::Options;
use memberlist_plumtree::{Delivery, MemberlistStack, PlumtreeConfig, PlumtreeDelegate, TcpStack};

mod support;

const USAGE: &str = "
Broadcast latency under a connection flood against the same node undisturbed.

usage: cargo run --release --example flood -- [--rounds R] [--messages M] [--rate N]

  --rounds R     quiet/flooded pairs (default 5)
  --messages M   broadcasts per phase (default 500)
  --rate N       broadcasts per second (default 250)
";

/// Latency of each delivery: the payload carries its send time (micros since `epoch`).
#[derive(Clone)]
struct Clock {
    me: u64,
    epoch: Instant,
    latencies: Arc<Mutex<Vec<Duration>>>,
}

impl PlumtreeDelegate<u64> for Clock {
    fn on_deliver(&self, delivery: Delivery<u64>) {
        if delivery.origin == self.me {
            return; // the origin's own delivery travels no network
        }
        let Some(sent) = delivery.payload.first_chunk::<8>() else {
            return;
        };
        let sent = Duration::from_micros(u64::from_be_bytes(*sent));
        let latency = self.epoch.elapsed().saturating_sub(sent);
        self.latencies.lock().unwrap().push(latency);
    }
}

/// `--rounds`, `--messages` and `--rate`, each with its default.
fn parse() -> Result<(u64, u64, u64), String> {
    let (mut rounds, mut messages, mut rate) = (5, 500, 250);
    let mut it = support::args(USAGE).into_iter();
    while let Some(flag) = it.next() {
        let slot = match flag.as_str() {
            "--rounds" => &mut rounds,
            "--messages" => &mut messages,
            "--rate" => &mut rate,
            other => return Err(support::unknown(other)),
        };
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        *slot = value.parse().map_err(|e| format!("{flag}: {e}"))?;
    }
    if rounds == 0 || rate == 0 {
        return Err("--rounds and --rate must be positive".into());
    }
    Ok((rounds, messages, rate))
}

/// Until `stop`: 300 connections held open after one byte, and 300 per second that send 64
/// random bytes and close.
fn flood(to: SocketAddr, stop: Arc<AtomicBool>) {
    let mut rng = fastrand::Rng::with_seed(18);
    let mut held = Vec::new();
    for _ in 0..300 {
        if let Ok(mut stream) = TcpStream::connect_timeout(&to, Duration::from_secs(1)) {
            let _ = stream.write_all(&[rng.u8(..)]);
            held.push(stream);
        }
    }
    while !stop.load(Ordering::Relaxed) {
        let second = Instant::now();
        for _ in 0..300 {
            if let Ok(mut stream) = TcpStream::connect_timeout(&to, Duration::from_secs(1)) {
                let junk: Vec<u8> = (0..64).map(|_| rng.u8(..)).collect();
                let _ = stream.write_all(&junk);
            }
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(second.elapsed()));
    }
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    support::exit(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (rounds, messages, rate) = parse()?;
    if messages == 0 {
        println!("--messages 0: nothing is broadcast, so there is nothing to measure");
        return Ok(());
    }
    let clock = Clock {
        me: 0,
        epoch: Instant::now(),
        latencies: Arc::default(),
    };
    let swim = Options::lan().with_probe_interval(Duration::from_millis(200));
    let mut nodes: Vec<TcpStack<u64, Clock>> = Vec::new();
    for id in 1..=3u64 {
        let seeds = nodes.first().map(|n| *n.memberlist().advertise_address());
        nodes.push(
            MemberlistStack::builder(id)
                .seeds(seeds)
                .config(PlumtreeConfig::lan().with_rng_seed(Some(id)))
                .memberlist_options(swim.clone())
                .build(Clock {
                    me: id,
                    ..clock.clone()
                })
                .await?,
        );
    }
    while nodes.iter().any(|n| n.members().len() < 2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let target = *nodes[0].memberlist().advertise_address();
    let mut p99 = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        for (phase, flooded) in [(0, false), (1, true)] {
            let stop = Arc::new(AtomicBool::new(false));
            let attacker = flooded.then(|| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || flood(target, stop))
            });
            if flooded {
                tokio::time::sleep(Duration::from_secs(1)).await; // the flood builds up
            }
            clock.latencies.lock().unwrap().clear();
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
            for _ in 0..messages {
                tick.tick().await;
                let sent = clock.epoch.elapsed().as_micros() as u64;
                let mut payload = sent.to_be_bytes().to_vec();
                payload.resize(256, 0);
                nodes[0].broadcast(payload).await?;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            stop.store(true, Ordering::Relaxed);
            if let Some(attacker) = attacker {
                attacker.join().map_err(|_| "the flood thread panicked")?;
            }
            let mut got = clock.latencies.lock().unwrap().clone();
            got.sort();
            let expected = 2 * messages as usize;
            println!(
                "round {round} {:>7}: delivered {}/{expected}, p50 {:?}, p99 {:?}, max {:?}",
                if flooded { "flooded" } else { "quiet" },
                got.len(),
                quantile(&got, 0.5),
                quantile(&got, 0.99),
                got.last().copied().unwrap_or_default(),
            );
            p99[phase].push(quantile(&got, 0.99));
        }
    }
    let refused = nodes[0].guard_stats().unwrap_or_default();
    println!("guard of node 1: {refused:?}");
    let mut ratios: Vec<f64> = p99[0]
        .iter()
        .zip(&p99[1])
        .map(|(quiet, flooded)| flooded.as_secs_f64() / quiet.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "p99 flooded / quiet per round: {:?}; median {:.2}",
        ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>(),
        ratios[ratios.len() / 2]
    );
    for node in nodes {
        node.shutdown().await?;
    }
    Ok(())
}
