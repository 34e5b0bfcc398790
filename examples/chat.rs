//! A chat room over Plumtree: one node per terminal, every line you type is broadcast to all.
//!
//! ```sh
//! # terminal 1
//! cargo run --example chat -- --bind 127.0.0.1:7000
//! # terminal 2, 3, ...
//! cargo run --example chat -- --bind 127.0.0.1:7001 --seed 127.0.0.1:7000
//! ```
//! The node id is the bind port unless `--id` says otherwise. Type `/members` to list peers,
//! `/quit` (or end input) to leave gracefully.

use std::net::SocketAddr;
use std::time::Duration;

use memberlist_plumtree::{Delivery, MemberlistStack, PlumtreeConfig, PlumtreeDelegate};

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
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--bind" => bind = Some(value.parse().map_err(|e| format!("--bind: {e}"))?),
            "--seed" => seeds.push(value.parse().map_err(|e| format!("--seed: {e}"))?),
            "--id" => id = Some(value.parse().map_err(|e| format!("--id: {e}"))?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let bind = bind.ok_or("--bind ADDR is required")?;
    Ok((bind, seeds, id))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    while let Some(line) = lines.recv().await {
        match line.trim() {
            "" => {}
            "/quit" => break,
            "/members" => println!("* members: {:?}", stack.members()),
            text => {
                stack.broadcast(text.to_owned().into_bytes()).await?;
            }
        }
    }
    if let Err(error) = stack.leave(Duration::from_secs(2)).await {
        eprintln!("leave: {error}");
    }
    stack.shutdown().await?;
    Ok(())
}
