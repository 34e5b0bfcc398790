//! Topics on a real cluster on loopback: six nodes (memberlist over UDP+TCP on 127.0.0.1), two
//! overlapping topics. Nodes 0-3 join `orders`, nodes 2-5 join `alerts`; every member
//! broadcasts on its topics; then node 3 leaves `orders` and the rest go on without it. At the
//! end, per node and topic: what was delivered, and how many frames reached a node outside
//! their topic (only frames in flight while node 3 left can).
//!
//! ```sh
//! cargo run --example topics
//! ```

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use memberlist_plumtree::memberlist::Options;
use memberlist_plumtree::{
    Delivery, MemberlistStack, MessageId, NoopDelegate, PlumtreeConfig, PlumtreeDelegate, TcpStack,
    Topic, TopicId,
};

mod support;

const USAGE: &str = "
Six nodes on 127.0.0.1, two overlapping topics; one node leaves a topic half way.

usage: cargo run --example topics
";

const ORDERS: TopicId = TopicId::named("orders");
const ALERTS: TopicId = TopicId::named("alerts");
const NODES: u64 = 6;
const PER_MEMBER: usize = 20;

/// The ids one node delivered in one topic.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<HashSet<MessageId>>>);

impl PlumtreeDelegate<u64> for Seen {
    fn on_deliver(&self, delivery: Delivery<u64>) {
        self.0.lock().unwrap().insert(delivery.id);
    }
}

impl Seen {
    fn has_all(&self, ids: &[MessageId]) -> bool {
        let seen = self.0.lock().unwrap();
        ids.iter().all(|id| seen.contains(id))
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// memberlist's LAN options with loopback timings.
fn swim() -> Options {
    Options::lan()
        .with_probe_interval(Duration::from_millis(200))
        .with_probe_timeout(Duration::from_millis(100))
        .with_gossip_interval(Duration::from_millis(50))
}

/// Who joins which topic.
fn topics_of(id: u64) -> Vec<TopicId> {
    let mut topics = Vec::new();
    if id <= 3 {
        topics.push(ORDERS);
    }
    if id >= 2 {
        topics.push(ALERTS);
    }
    topics
}

struct Member {
    topic: Topic<u64, Seen>,
    seen: Seen,
    node: u64,
}

fn main() -> ExitCode {
    if let Some(arg) = support::args(USAGE).first() {
        return support::exit(Err(support::unknown(arg).into()));
    }
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    support::exit(runtime.block_on(run()))
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let timeout = Duration::from_secs(2);
    let mut nodes: Vec<TcpStack<u64, NoopDelegate>> = Vec::new();
    for id in 0..NODES {
        let seeds: Vec<_> = nodes
            .first()
            .map(|first| *first.memberlist().advertise_address())
            .into_iter()
            .collect();
        let node = MemberlistStack::builder(id)
            .bind("127.0.0.1:0".parse()?)
            .seeds(seeds)
            .config(PlumtreeConfig::lan())
            .memberlist_options(swim())
            .build(NoopDelegate)
            .await?;
        nodes.push(node);
    }
    wait("full membership", || {
        nodes
            .iter()
            .all(|n| n.members().len() == NODES as usize - 1)
    })
    .await?;

    let mut members = Vec::new();
    for (id, node) in (0..NODES).zip(&nodes) {
        for topic in topics_of(id) {
            let seen = Seen::default();
            let joined = node
                .join_topic(topic, PlumtreeConfig::lan(), seen.clone(), timeout)
                .await?;
            members.push(Member {
                topic: joined,
                seen,
                node: id,
            });
        }
    }
    // Each member of a topic of four learns the other three from their metadata.
    let give_up = tokio::time::Instant::now() + Duration::from_secs(20);
    for member in &members {
        while member.topic.stats().await.map_or(0, |s| s.members) < 3 {
            if tokio::time::Instant::now() > give_up {
                return Err("topic peers were not learned within 20 s".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    println!("nodes 0-3 joined {ORDERS} (orders), nodes 2-5 joined {ALERTS} (alerts)");

    let mut sent: Vec<(TopicId, MessageId)> = Vec::new();
    for round in 0..PER_MEMBER {
        for member in &members {
            let payload = format!("node {} round {round}", member.node);
            sent.push((member.topic.id(), member.topic.broadcast(payload).await?));
        }
    }
    let of = |topic: TopicId| -> Vec<MessageId> {
        sent.iter()
            .filter(|(t, _)| *t == topic)
            .map(|(_, id)| *id)
            .collect()
    };
    let (orders, alerts) = (of(ORDERS), of(ALERTS));
    wait("every topic delivery", || {
        members.iter().all(|m| {
            let ids = if m.topic.id() == ORDERS {
                &orders
            } else {
                &alerts
            };
            m.seen.has_all(ids)
        })
    })
    .await?;

    // Node 3 leaves `orders`: the others see it in its metadata and go on without it.
    nodes[3].leave_topic(ORDERS, timeout).await;
    let mut later = Vec::new();
    for member in members
        .iter()
        .filter(|m| m.topic.id() == ORDERS && m.node != 3)
    {
        later.push(member.topic.broadcast(&b"after node 3 left"[..]).await?);
    }
    let staying: Vec<&Member> = members
        .iter()
        .filter(|m| m.topic.id() == ORDERS && m.node != 3)
        .collect();
    wait("deliveries after the leave", || {
        staying.iter().all(|m| m.seen.has_all(&later))
    })
    .await?;

    println!("node  topic   delivered");
    for member in &members {
        let name = if member.topic.id() == ORDERS {
            "orders"
        } else {
            "alerts"
        };
        println!("{:>4}  {name:<6}  {:>9}", member.node, member.seen.count());
    }
    let mut unrouted = 0;
    for node in &nodes {
        unrouted += node
            .plumtree()
            .stats()
            .await
            .map_or(0, |s| s.unrouted_frames);
    }
    println!(
        "orders: {} broadcasts before node 3 left, {} after; alerts: {}",
        orders.len(),
        later.len(),
        alerts.len()
    );
    println!("frames that reached a node outside their topic: {unrouted}");
    for node in &nodes {
        node.shutdown().await?;
    }
    Ok(())
}

/// Polls `done` every 20 ms for at most 20 s.
async fn wait(what: &str, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        if tokio::time::Instant::now() > give_up {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
