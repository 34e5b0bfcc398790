//! Serves the runtime's metrics on a Prometheus endpoint while five in-process nodes broadcast.
//!
//! ```text
//! cargo run --example prometheus -- --listen 127.0.0.1:9000 --seconds 30
//! curl -s http://127.0.0.1:9000/metrics | grep plumtree_
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use memberlist_plumtree::{LocalNetwork, NoopDelegate, PlumtreeConfig, PlumtreeMemberlist};
use metrics_exporter_prometheus::PrometheusBuilder;

mod support;

const USAGE: &str = "
Five in-process nodes broadcast while their metrics are served for Prometheus.

usage: cargo run --example prometheus -- [--listen ADDR] [--seconds S]

  --listen ADDR   where to serve /metrics (default 127.0.0.1:9000)
  --seconds S     how long to run (default 30)
";

#[tokio::main]
async fn main() -> ExitCode {
    support::exit(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut listen: SocketAddr = "127.0.0.1:9000".parse()?;
    let mut seconds = 30u64;
    let mut args = support::args(USAGE).into_iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--seconds" => seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            other => return Err(support::unknown(other).into()),
        }
    }
    if listen.port() == 0 {
        return Err("--listen needs a fixed port: Prometheus must know where to scrape".into());
    }
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .install()
        .map_err(|e| format!("serving metrics on {listen}: {e} (try another --listen address)"))?;
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
    let mut broadcasts = 0u64;
    while Instant::now() < end {
        nodes[rng.usize(..nodes.len())]
            .broadcast(vec![0u8; 256])
            .await?;
        broadcasts += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for node in &nodes {
        node.shutdown().await;
    }
    // What the endpoint serves at the end, fetched as Prometheus would.
    let served = tokio::task::spawn_blocking(move || scrape(listen))
        .await?
        .map_err(|e| format!("fetching http://{listen}/metrics: {e}"))?;
    let series: Vec<&str> = served
        .lines()
        .filter(|line| line.starts_with("plumtree_"))
        .collect();
    println!(
        "{broadcasts} broadcasts; served {} plumtree_ series, for example:",
        series.len()
    );
    for line in series.iter().filter(|l| l.contains("node=\"0\"")).take(6) {
        println!("  {line}");
    }
    Ok(())
}

/// One plain HTTP/1.0 GET of `/metrics`: the response's body.
fn scrape(listen: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(listen)?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_owned()))
}
