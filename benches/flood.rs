//! Peak memory of one node fed a flood of forged traffic, against the bounds its config sets.
//!
//! One `Plumtree` with 20 members receives, as encoded frames it decodes itself, 1,000,000
//! Gossips with unique ids (each from a different origin, 256 B payloads), then 20,000 more
//! of the largest payload the config accepts (to fill the cache's byte bound), then 1,000,000
//! IHave announcements of unique ids, then 1,000,000 Grafts for ids it never had, 100,000
//! frames a second of virtual time, with its timers run as they fall due and everything it sends
//! drained. After each phase it prints the process's peak RSS (VmHWM) and the size of each
//! bounded table next to its configured bound, and fails if a table is over its bound.
//!
//! ```sh
//! cargo bench --bench flood                       # default() and large_cluster()
//! cargo bench --bench flood -- --messages 100000  # a shorter flood
//! ```
//!
//! Each config runs in a process of its own (the bench runs itself again), so each peak is its
//! own.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use bytes::Bytes;
use memberlist_plumtree::message::{Announcement, Gossip, Graft, IHave};
use memberlist_plumtree::{Envelope, Message, MessageId, Plumtree, PlumtreeConfig};

const CONFIGS: [&str; 2] = ["default", "large_cluster"];

fn config(name: &str) -> PlumtreeConfig {
    match name {
        "large_cluster" => PlumtreeConfig::large_cluster(),
        _ => PlumtreeConfig::default(),
    }
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// A node under a flood, with its virtual clock.
struct Target {
    node: Plumtree<u64>,
    now: Instant,
    limits: memberlist_plumtree::DecodeLimits,
    sent: u64,
    over: Vec<String>,
}

impl Target {
    /// Decodes one frame from peer 1 and handles it, advancing the clock 10 us.
    fn feed(&mut self, message: Message<u64>) {
        let frame = Envelope {
            sender: 1u64,
            message,
        }
        .to_bytes();
        let Envelope { sender, message } =
            Envelope::<u64>::decode(&frame, &self.limits).expect("a frame of ours decodes");
        self.now += Duration::from_micros(10);
        self.node.handle_message(self.now, sender, message);
        while self.node.poll_timeout().is_some_and(|at| at <= self.now) {
            self.node.handle_timeout(self.now);
        }
        while self.node.poll_transmit().is_some() {
            self.sent += 1;
        }
        while self.node.poll_event().is_some() {}
    }

    fn report(&mut self, phase: &str) {
        let c = self.node.config().clone();
        let (cached, bytes) = self.node.cache_usage();
        let tables = [
            ("cached payloads", cached, c.message_cache_max_size),
            ("cached bytes", bytes, c.message_cache_max_bytes),
            ("seen ids", self.node.seen_len(), c.seen_max_size),
            ("missing ids", self.node.missing_len(), c.max_missing),
            (
                "origins",
                self.node.origins_len(),
                c.anti_entropy_max_origins,
            ),
        ];
        let shown: Vec<String> = tables
            .iter()
            .map(|(what, n, bound)| format!("{what} {n}/{bound}"))
            .collect();
        println!(
            "  after {phase}: peak RSS {:.0} MB; {}; frames sent {}",
            peak_rss_mb(),
            shown.join(", "),
            self.sent
        );
        for (what, n, bound) in tables {
            if n > bound {
                self.over.push(format!("{phase}: {what} {n} over {bound}"));
            }
        }
    }
}

/// A Gossip with a fresh random id, from a fresh origin.
fn forged_gossip(rng: &mut fastrand::Rng, payload: &Bytes) -> Message<u64> {
    let origin = rng.u64(2..);
    Message::Gossip(Gossip {
        id: MessageId::new(origin, rng.u64(..), rng.u64(1..)),
        origin,
        round: 1,
        heaviest: 0,
        payload: payload.clone(),
        encoding: Default::default(),
        signature: None,
    })
}

fn flood(name: &str, messages: u64) -> bool {
    let config = config(name).with_rng_seed(Some(7));
    let limits = config.decode_limits();
    let mut node = Plumtree::new(0u64, config).expect("presets validate");
    let now = Instant::now();
    node.add_peers(now, 1..=20u64);
    let mut target = Target {
        node,
        now,
        limits,
        sent: 0,
        over: Vec::new(),
    };
    println!("{name}: {messages} forged messages per phase");
    target.report("start");
    let payload = Bytes::from(vec![0xA5u8; 256]);
    let mut rng = fastrand::Rng::with_seed(7);
    for k in 0..messages {
        target.feed(forged_gossip(&mut rng, &payload));
        if k == messages / 2 {
            target.report("half the gossips");
        }
    }
    target.report("gossips");
    let large = Bytes::from(vec![0x5Au8; target.node.config().max_message_size]);
    for _ in 0..messages / 50 {
        target.feed(forged_gossip(&mut rng, &large));
    }
    target.report("largest gossips");
    let batch = target.node.config().ihave_batch_size as u64;
    for _ in 0..messages / batch {
        let entries = (0..batch)
            .map(|_| Announcement {
                id: MessageId::new(rng.u64(2..), rng.u64(..), rng.u64(1..)),
                round: 1,
                held_ms: 0,
            })
            .collect();
        target.feed(Message::IHave(IHave { entries }));
    }
    target.report("IHaves");
    for _ in 0..messages {
        let id = MessageId::new(rng.u64(2..), rng.u64(..), rng.u64(1..));
        target.feed(Message::Graft(Graft { id: Some(id) }));
    }
    target.report("grafts");
    // Let every timer run out: what is left is what the node keeps.
    let end = target.now + Duration::from_secs(300);
    while let Some(at) = target.node.poll_timeout().filter(|&at| at <= end) {
        target.now = at.max(target.now);
        target.node.handle_timeout(target.now);
        while target.node.poll_transmit().is_some() {}
        while target.node.poll_event().is_some() {}
    }
    target.report("300 s of quiet");
    for over in &target.over {
        println!("  OVER BOUND: {over}");
    }
    target.over.is_empty()
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut messages, mut child) = (1_000_000u64, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--messages" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => messages = n,
                None => {
                    eprintln!("--messages takes a number");
                    return ExitCode::FAILURE;
                }
            },
            "--child" => child = args.next(),
            _ => {} // cargo bench's own flags
        }
    }
    if let Some(name) = child {
        return if flood(&name, messages) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let me = std::env::current_exe().expect("own path");
    let mut ok = true;
    for name in CONFIGS {
        let status = Command::new(&me)
            .args(["--child", name, "--messages", &messages.to_string()])
            .status()
            .expect("the bench runs itself");
        ok &= status.success();
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
