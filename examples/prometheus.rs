//! Serves the runtime's metrics on a Prometheus endpoint while five in-process nodes broadcast.
//!
//! ```text
//! cargo run --example prometheus -- --listen 127.0.0.1:9000 --seconds 30
//! curl -s http://127.0.0.1:9000/metrics | grep plumtree_
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use memberlist_plumtree::{LocalNetwork, NoopDelegate, PlumtreeConfig, PlumtreeMemberlist};
use metrics_exporter_prometheus::PrometheusBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut listen: SocketAddr = "127.0.0.1:9000".parse()?;
    let mut seconds = 30u64;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?.parse()?,
            "--seconds" => seconds = args.next().ok_or("--seconds needs a number")?.parse()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .install()?;
    println!("metrics at http://{listen}/metrics for {seconds} s");

    let network = LocalNetwork::new();
    let nodes: Vec<_> = (0..5u64)
        .map(|id| PlumtreeMemberlist::new(id, PlumtreeConfig::lan(), NoopDelegate))
        .collect::<Result<_, _>>()?;
    for node in &nodes {
        node.start(network.join(node))?;
        node.inputs().add_peers(0..5);
    }
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut rng = fastrand::Rng::new();
    while Instant::now() < end {
        nodes[rng.usize(..nodes.len())]
            .broadcast(vec![0u8; 256])
            .await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for node in &nodes {
        node.shutdown().await;
    }
    Ok(())
}
