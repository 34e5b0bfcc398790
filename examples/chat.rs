//! A chat room over Plumtree: one node per terminal, every line you type is broadcast to all.
//!
//! ```sh
//! # terminal 1
//! cargo run --example chat -- --bind 127.0.0.1:7000
//! # terminal 2, 3, ...
//! cargo run --example chat -- --bind 127.0.0.1:7001 --seed 127.0.0.1:7000
//! ```
//! The node id is the bind port unless `--id` says otherwise. Joins and leaves are announced;
//! type `/members` to list peers, `/quit` (or end input) to leave gracefully.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use memberlist_plumtree::{Delivery, MemberlistStack, PlumtreeConfig, PlumtreeDelegate};

mod support;

const USAGE: &str = "
A chat room over Plumtree: every line you type is broadcast to every node.

usage: cargo run --example chat -- --bind ADDR [--seed ADDR]... [--id N]

  --bind ADDR    address to listen on (UDP and TCP), e.g. 127.0.0.1:7000 (required)
  --seed ADDR    a node already in the room, e.g. 127.0.0.1:7000 (repeatable)
  --id N         this node's id (default: the bind port)

In the room: /members lists the others, /quit (or end of input) leaves.
";

/// Prints every line from someone else.
struct Printer {
    me: u64,
}

impl PlumtreeDelegate<u64> for Printer {
    fn on_deliver(&self, delivery: Delivery<u64>) {
        if delivery.origin != self.me {
            let text = String::from_utf8_lossy(&delivery.payload);
            println!("<{}> {text}   ({} hops)", delivery.origin, delivery.hops);
        }
    }

    fn on_promote(&self, peer: &u64) {
        println!("* {peer} is now an eager (tree) neighbour");
    }
}

fn parse() -> Result<(SocketAddr, Vec<SocketAddr>, Option<u64>), String> {
    let (mut bind, mut seeds, mut id) = (None, Vec::new(), None);
    let mut it = support::args(USAGE).into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--bind" => bind = Some(value()?.parse().map_err(|e| format!("--bind: {e}"))?),
            "--seed" => seeds.push(value()?.parse().map_err(|e| format!("--seed: {e}"))?),
            "--id" => id = Some(value()?.parse().map_err(|e| format!("--id: {e}"))?),
            other => return Err(support::unknown(other)),
        }
    }
    let bind = bind.ok_or("--bind ADDR is required, e.g. --bind 127.0.0.1:7000")?;
    Ok((bind, seeds, id))
}

#[tokio::main]
async fn main() -> ExitCode {
    support::exit(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (bind, seeds, id) = parse()?;
    let me = id.unwrap_or(u64::from(bind.port()));
    let stack = MemberlistStack::builder(me)
        .bind(bind)
        .seeds(seeds)
        .config(PlumtreeConfig::lan())
        .build(Printer { me })
        .await?;
    println!(
        "node {me} on {}; type a line to broadcast it",
        stack.memberlist().advertise_address()
    );

    // stdin is blocking; read it on its own thread and hand lines over.
    let (lines_tx, mut lines) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if lines_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    // memberlist tells the stack who is in the room; compare twice a second and say who came
    // and went.
    let mut known = BTreeSet::new();
    let mut look = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            line = lines.recv() => match line.as_deref().map(str::trim) {
                None | Some("/quit") => break,
                Some("") => {}
                Some("/members") => println!("* members: {:?}", stack.members()),
                Some(text) => {
                    stack.broadcast(text.to_owned().into_bytes()).await?;
                }
            },
            _ = look.tick() => {
                let now: BTreeSet<u64> = stack.members().into_iter().collect();
                for joined in now.difference(&known) {
                    println!("* {joined} joined");
                }
                for left in known.difference(&now) {
                    println!("* {left} left");
                }
                known = now;
            }
        }
    }
    if let Err(error) = stack.leave(Duration::from_secs(2)).await {
        eprintln!("leave: {error}");
    }
    stack.shutdown().await?;
    Ok(())
}
