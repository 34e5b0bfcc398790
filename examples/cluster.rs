//! A real cluster on loopback: N nodes in one process, each with its own memberlist (UDP+TCP on
//! 127.0.0.1) carrying SWIM and, by default, the Plumtree frames too; with `--quic` the frames go
//! over `QuicTransport` (mutual TLS, certificates from a throwaway `ClusterCa`). The nodes join
//! through node 0, broadcast a stream of messages from every live node in turn, and one node is
//! killed without warning half way through. At the end: deliveries and duplicates per node, the
//! eager tree, and latency.
//!
//! ```sh
//! cargo run --release --example cluster -- [--nodes 5] [--messages 400] [--rate 200] [--no-kill] [--quic]
//! cargo run --release --example cluster -- --help
//! ```

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memberlist_plumtree::memberlist::Options;
use memberlist_plumtree::{
    ClusterCa, Delivery, MemberlistStack, MessageId, PlumtreeConfig, PlumtreeDelegate, QuicConfig,
    QuicTransport, TcpStack,
};

mod support;

const USAGE: &str = "
A real cluster on 127.0.0.1: every node broadcasts in turn, one is killed half way.

usage: cargo run --release --example cluster -- [FLAGS]

  --nodes N      nodes in the cluster (default 5; at least 3 with a kill, 2 without)
  --messages M   broadcasts in all (default 400)
  --rate R       broadcasts per second (default 200)
  --no-kill      keep every node alive
  --quic         Plumtree frames over QuicTransport (mutual TLS) instead of memberlist
";

struct Args {
    nodes: u64,
    messages: usize,
    rate: u64,
    kill: bool,
    quic: Option<ClusterCa>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        nodes: 5,
        messages: 400,
        rate: 200,
        kill: true,
        quic: None,
    };
    let mut it = support::args(USAGE).into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--nodes" => args.nodes = value()?.parse().map_err(|e| format!("--nodes: {e}"))?,
            "--messages" => {
                args.messages = value()?.parse().map_err(|e| format!("--messages: {e}"))?
            }
            "--rate" => args.rate = value()?.parse().map_err(|e| format!("--rate: {e}"))?,
            "--no-kill" => args.kill = false,
            "--quic" => {
                let ca = ClusterCa::generate().map_err(|e| format!("--quic: {e}"))?;
                args.quic = Some(ca);
            }
            other => return Err(support::unknown(other)),
        }
    }
    if args.nodes < 2 || (args.kill && args.nodes < 3) {
        return Err("--nodes must be at least 3 (2 with --no-kill)".into());
    }
    if args.rate == 0 {
        return Err("--rate must be positive".into());
    }
    Ok(args)
}

/// Arrival time of every delivery at one node, and how many times each id arrived.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<HashMap<MessageId, (Instant, usize)>>>);

impl PlumtreeDelegate<u64> for Arrivals {
    fn on_deliver(&self, delivery: Delivery<u64>) {
        let mut arrivals = self.0.lock().unwrap();
        arrivals.entry(delivery.id).or_insert((Instant::now(), 0)).1 += 1;
    }
}

type Node = TcpStack<u64, Arrivals>;

/// memberlist's LAN options with loopback timings: a silent node is declared dead in about a
/// second. (`Options::local()` retransmits each piece of gossip half as often as `lan()`, and
/// with it five nodes took 18 s, one push-pull round, to all see each other.)
fn swim() -> Options {
    Options::lan()
        .with_probe_interval(Duration::from_millis(200))
        .with_probe_timeout(Duration::from_millis(100))
        .with_gossip_interval(Duration::from_millis(50))
}

async fn start(
    id: u64,
    seeds: &[SocketAddr],
    quic: Option<&ClusterCa>,
) -> Result<(Node, Arrivals), Box<dyn std::error::Error>> {
    let arrivals = Arrivals::default();
    let mut builder = MemberlistStack::builder(id)
        .bind("127.0.0.1:0".parse()?)
        .seeds(seeds.iter().copied())
        .config(PlumtreeConfig::lan())
        .memberlist_options(swim());
    if let Some(ca) = quic {
        let tls = ca.node_tls(&id)?;
        builder = builder.quic(QuicTransport::bind(
            id,
            "127.0.0.1:0".parse()?,
            QuicConfig::lan(),
            &tls,
        )?);
    }
    let node = builder.build(arrivals.clone()).await?;
    Ok((node, arrivals))
}

/// Broadcasts sent so far: a bar redrawn in place on a terminal, one line per tenth of the run
/// in a file or a pipe.
fn progress(done: usize, total: usize, note: &str) {
    if std::io::stdout().is_terminal() {
        if done % (total / 50).max(1) != 0 && done != total {
            return;
        }
        let width = 40;
        let filled = done * width / total.max(1);
        print!(
            "\r[{}{}] {done}/{total} {note:<24}",
            "#".repeat(filled),
            " ".repeat(width - filled)
        );
        let _ = std::io::stdout().flush();
        if done == total {
            println!();
        }
    } else if done * 10 / total > (done - 1) * 10 / total || done == total {
        let note = if note.is_empty() {
            String::new()
        } else {
            format!(" ({note})")
        };
        println!("sent {done}/{total}{note}");
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> ExitCode {
    support::exit(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    if args.messages == 0 {
        println!("--messages 0: nothing is broadcast, so there is nothing to measure");
        return Ok(());
    }

    let frames = if args.quic.is_some() {
        "QUIC"
    } else {
        "memberlist"
    };
    println!(
        "starting {} nodes on 127.0.0.1 (Plumtree frames over {frames}) ...",
        args.nodes
    );
    let first = start(0, &[], args.quic.as_ref()).await?;
    let seed = *first.0.memberlist().advertise_address();
    let mut nodes = vec![first];
    for id in 1..args.nodes {
        nodes.push(start(id, &[seed], args.quic.as_ref()).await?);
    }
    let joined = Instant::now();
    while nodes
        .iter()
        .any(|(node, _)| node.members().len() + 1 < nodes.len())
    {
        if joined.elapsed() > Duration::from_secs(30) {
            return Err("the nodes did not all see each other within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "all {} nodes see each other after {:?} (seed {seed})",
        nodes.len(),
        joined.elapsed()
    );

    // The node killed half way, and the first message broadcast after it died.
    let victim = args.kill.then_some(args.nodes as usize / 2);
    let mut killed: Option<(usize, usize)> = None;
    let mut live: Vec<usize> = (0..nodes.len()).collect();
    // (id, when, origin) of every broadcast.
    let mut sent: Vec<(MessageId, Instant, usize)> = Vec::with_capacity(args.messages);
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / args.rate));
    for i in 0..args.messages {
        ticker.tick().await;
        if i == args.messages / 2
            && let Some(victim) = victim
        {
            nodes[victim].0.shutdown().await?;
            live.retain(|&n| n != victim);
            killed = Some((victim, i));
        }
        let from = live[i % live.len()];
        let at = Instant::now();
        let id = nodes[from]
            .0
            .broadcast(format!("message {i}").into_bytes())
            .await?;
        sent.push((id, at, from));
        let note = killed.map_or(String::new(), |(v, _)| format!("node {v} killed"));
        progress(i + 1, args.messages, &note);
    }

    // A message the killed node broadcast just before it died may never have left it: only
    // messages from live origins must reach every live node.
    let required: Vec<MessageId> = sent
        .iter()
        .filter(|&&(_, _, from)| live.contains(&from))
        .map(|&(id, _, _)| id)
        .collect();
    let delivered = |n: usize, id: &MessageId| nodes[n].1.0.lock().unwrap().contains_key(id);
    let missing = |n: usize| required.iter().filter(|id| !delivered(n, id)).count();
    // Wait for the stragglers (a broadcast sent just after the kill may need a graft), and for
    // SWIM to declare the killed node dead, so that the tree printed is the repaired one.
    let unsettled = |n: usize| {
        missing(n) > 0 || killed.is_some_and(|(v, _)| nodes[n].0.members().contains(&(v as u64)))
    };
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(10) && live.iter().any(|&n| unsettled(n)) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    println!("\n node  delivered  duplicates  eager neighbours");
    let mut latencies = Vec::new();
    let mut all_delivered = live.iter().all(|&n| missing(n) == 0);
    for (n, (node, arrivals)) in nodes.iter().enumerate() {
        let eager = match node.plumtree().stats().await {
            Some(stats) => format!("{:?}", stats.eager),
            None => "(killed)".to_owned(),
        };
        let arrivals = arrivals.0.lock().unwrap();
        let duplicates: usize = arrivals.values().map(|&(_, count)| count - 1).sum();
        println!("{n:>5}  {:>9}  {duplicates:>10}  {eager}", arrivals.len());
        if live.contains(&n) {
            all_delivered &= duplicates == 0;
            for (id, at, _) in &sent {
                if let Some(&(arrived, _)) = arrivals.get(id) {
                    latencies.push(arrived.saturating_duration_since(*at));
                }
            }
        }
    }
    latencies.sort();
    println!(
        "\ndelivery latency over {} deliveries: p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    if let Some((victim, at)) = killed {
        let from_victim: Vec<MessageId> = sent
            .iter()
            .filter(|&&(_, _, from)| from == victim)
            .map(|&(id, _, _)| id)
            .collect();
        let lost = from_victim
            .iter()
            .filter(|id| live.iter().all(|&n| !delivered(n, id)))
            .count();
        println!("node {victim} was killed before message {at}; the others went on without it");
        println!(
            "of the {} messages node {victim} broadcast, {lost} died with it before leaving it",
            from_victim.len()
        );
    }
    println!(
        "{}",
        if all_delivered {
            "every live node delivered every message from a live origin, exactly once"
        } else {
            "SOME MESSAGES WERE NOT DELIVERED to every live node"
        }
    );

    for &n in &live {
        nodes[n].0.shutdown().await?;
    }
    if !all_delivered {
        return Err("some messages from live origins did not reach every live node".into());
    }
    Ok(())
}
