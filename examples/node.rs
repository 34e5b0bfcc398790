//! One cluster node per process, for running a cluster across real sockets and measuring it:
//! joins through seeds, broadcasts at a given rate, and writes one JSON line per delivery and a
//! summary when it ends (after `--duration`, or on SIGTERM or Ctrl-C: it leaves, then shuts
//! down).
//!
//! ```sh
//! cargo run --release --example node -- --id 1 --bind 127.0.0.1:7001 --rate 10 --duration 30
//! cargo run --release --example node -- --id 2 --bind 127.0.0.1:7002 --seed 127.0.0.1:7001
//! ```
//!
//! Each payload carries its origin, its sequence number at that origin and its send time (wall
//! clock, microseconds), so that latency is measured across processes on one machine.
//!
//! With `--quic` the Plumtree frames go over `QuicTransport` with mutual TLS; `--make-certs`
//! writes a throwaway CA and one certificate per node id for that:
//!
//! ```sh
//! cargo run --release --example node -- --make-certs /tmp/certs --ids 3
//! cargo run --release --example node -- --id 1 --bind 127.0.0.1:7001 --quic 127.0.0.1:7101 \
//!     --ca /tmp/certs/ca.pem --cert /tmp/certs/1.pem --key /tmp/certs/1.key
//! ```
//!
//! chaos/harness.py runs a cluster of these across network namespaces under injected faults.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use memberlist_plumtree::{
    BridgeConfig, ClusterCa, Delivery, MemberlistStack, MessageId, PlumtreeConfig,
    PlumtreeDelegate, QuicConfig, QuicTls, QuicTransport, TopicId,
};
use serde_json::json;

mod support;

const USAGE: &str = "
One cluster node per process: joins, broadcasts, and reports every delivery as a JSON line.

usage: cargo run --release --example node -- --id N --bind ADDR [FLAGS]
       cargo run --release --example node -- --make-certs DIR [--ids N]

  --id N            this node's id (required)
  --bind ADDR       address for memberlist, UDP and TCP, e.g. 127.0.0.1:7001 (required)
  --seed ADDR       a node to join through (repeatable; none: wait to be joined)
  --preset NAME     default, lan, wan, large-cluster (default: lan)
  --rate R          broadcasts per second (default 0: only receive)
  --payload BYTES   payload size, at least 24 (default 256)
  --duration SECS   run this long, then leave (default: until SIGTERM or Ctrl-C)
  --send-for SECS   broadcast only this long, then only receive (default: all the time)
  --metrics ADDR    serve Prometheus metrics there (docs/metrics.md)
  --no-anti-entropy turn anti-entropy off (for comparisons)
  --compress BYTES  compress payloads of at least BYTES with LZ4 (compress_min_size)
  --demo-signing N  sign broadcasts and accept only those signed by nodes 1 to N, with keys
                    derived from the ids (a demonstration: anyone can derive them)
  --cert-signing N  with --quic: sign broadcasts with this node's certificate key and accept
                    only those signed by nodes 1 to N, each key taken from its certificate
                    (ID.pem beside --cert) once checked against the CA and the id
  --topic T:A-B     nodes A to B join topic T (a number above 0) as well (repeatable); a
                    member broadcasts on the default topic and its topics in turn, and its
                    lines carry \"topic\"
  --no-reconnect    do not join departed members again (for comparisons)
  --quic ADDR       send Plumtree frames over QUIC bound there (mutual TLS; needs the three below)
  --ca FILE         PEM: the CA every node trusts
  --cert FILE       PEM: this node's certificate, naming its id
  --key FILE        PEM: its private key
  --make-certs DIR  write a throwaway CA (DIR/ca.pem) and certificates for ids 1 to N
                    (DIR/ID.pem, DIR/ID.key), then exit
  --ids N           with --make-certs: how many ids (default 10)

Output on stdout, one JSON object per line: {\"event\":\"start\",...}, then
{\"event\":\"sent\",...} per broadcast, {\"event\":\"deliver\",...} per delivery,
{\"event\":\"gap\",...} per loss reported, {\"event\":\"members\",...} when the number of
live members changes, then {\"event\":\"summary\",...}. Logs go to stderr.
";

struct Args {
    id: u64,
    bind: SocketAddr,
    seeds: Vec<SocketAddr>,
    config: PlumtreeConfig,
    rate: u64,
    payload: usize,
    duration: Option<Duration>,
    send_for: Option<Duration>,
    metrics: Option<SocketAddr>,
    reconnect: bool,
    quic: Option<Quic>,
    /// `--demo-signing N`: origin keys of nodes 1 to N.
    demo_signing: Option<u64>,
    /// `--cert-signing N`: origin keys of nodes 1 to N from their certificates.
    cert_signing: Option<u64>,
    /// `--topic T:A-B`: the topics, and which ids join each.
    topics: Vec<(u64, std::ops::RangeInclusive<u64>)>,
}

/// `--quic` and the certificate files it needs.
struct Quic {
    bind: SocketAddr,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// What the command line asks for.
enum Command {
    Run(Box<Args>),
    MakeCerts { dir: PathBuf, ids: u64 },
}

fn parse() -> Result<Command, String> {
    let (mut id, mut bind, mut seeds) = (None, None, Vec::new());
    let (mut quic, mut ca, mut cert, mut key) = (None, None, None, None);
    let (mut make_certs, mut ids) = (None, 10u64);
    let mut args = Args {
        id: 0,
        bind: "127.0.0.1:0".parse().expect("literal"),
        seeds: Vec::new(),
        config: PlumtreeConfig::lan(),
        rate: 0,
        payload: 256,
        duration: None,
        send_for: None,
        metrics: None,
        reconnect: true,
        quic: None,
        demo_signing: None,
        cert_signing: None,
        topics: Vec::new(),
    };
    let (mut compress, mut anti_entropy) = (None, true);
    let mut it = support::args(USAGE).into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let bad = |e: &dyn std::fmt::Display| format!("{flag}: {e}");
        match flag.as_str() {
            "--id" => id = Some(value()?.parse::<u64>().map_err(|e| bad(&e))?),
            "--bind" => bind = Some(value()?.parse().map_err(|e| bad(&e))?),
            "--seed" => seeds.push(value()?.parse().map_err(|e| bad(&e))?),
            "--preset" => args.config = support::preset(&value()?).map_err(|e| bad(&e))?,
            "--rate" => args.rate = value()?.parse().map_err(|e| bad(&e))?,
            "--payload" => args.payload = value()?.parse().map_err(|e| bad(&e))?,
            "--duration" => {
                let secs: f64 = value()?.parse().map_err(|e| bad(&e))?;
                if !(secs > 0.0 && secs.is_finite()) {
                    return Err("--duration must be a positive number of seconds".into());
                }
                args.duration = Some(Duration::from_secs_f64(secs));
            }
            "--send-for" => {
                let secs: f64 = value()?.parse().map_err(|e| bad(&e))?;
                if !(secs >= 0.0 && secs.is_finite()) {
                    return Err("--send-for must be a number of seconds".into());
                }
                args.send_for = Some(Duration::from_secs_f64(secs));
            }
            "--metrics" => args.metrics = Some(value()?.parse().map_err(|e| bad(&e))?),
            "--no-anti-entropy" => anti_entropy = false,
            "--no-reconnect" => args.reconnect = false,
            "--compress" => compress = Some(value()?.parse().map_err(|e| bad(&e))?),
            "--demo-signing" => args.demo_signing = Some(value()?.parse().map_err(|e| bad(&e))?),
            "--cert-signing" => args.cert_signing = Some(value()?.parse().map_err(|e| bad(&e))?),
            "--topic" => {
                let spec = value()?;
                let parsed = spec.split_once(':').and_then(|(topic, ids)| {
                    let (a, b) = ids.split_once('-')?;
                    Some((topic.parse().ok()?, a.parse().ok()?..=b.parse().ok()?))
                });
                match parsed {
                    Some((topic, ids)) if topic > 0 => args.topics.push((topic, ids)),
                    _ => return Err(format!("--topic {spec}: expected T:A-B, T above 0")),
                }
            }
            "--quic" => quic = Some(value()?.parse().map_err(|e| bad(&e))?),
            "--ca" => ca = Some(PathBuf::from(value()?)),
            "--cert" => cert = Some(PathBuf::from(value()?)),
            "--key" => key = Some(PathBuf::from(value()?)),
            "--make-certs" => make_certs = Some(PathBuf::from(value()?)),
            "--ids" => ids = value()?.parse().map_err(|e| bad(&e))?,
            other => return Err(support::unknown(other)),
        }
    }
    if let Some(dir) = make_certs {
        return Ok(Command::MakeCerts { dir, ids });
    }
    args.quic = match (quic, ca, cert, key) {
        (Some(bind), Some(ca), Some(cert), Some(key)) => Some(Quic {
            bind,
            ca,
            cert,
            key,
        }),
        (None, None, None, None) => None,
        (None, ..) => return Err("--ca, --cert and --key go with --quic ADDR".into()),
        _ => return Err("--quic needs --ca FILE, --cert FILE and --key FILE".into()),
    };
    if args.cert_signing.is_some() && (args.quic.is_none() || args.demo_signing.is_some()) {
        return Err("--cert-signing goes with --quic, and not with --demo-signing".into());
    }
    // After the loop: `--preset` replaces the whole config, wherever it stands.
    args.config = args.config.with_compress_min_size(compress);
    if !anti_entropy {
        args.config = args.config.with_anti_entropy_interval(Duration::ZERO);
    }
    args.config
        .validate()
        .map_err(|e| format!("--compress: {e}"))?;
    args.id = id.ok_or("--id N is required")?;
    args.bind = bind.ok_or("--bind ADDR is required, e.g. --bind 127.0.0.1:7001")?;
    args.seeds = seeds;
    if args.payload < 24 {
        return Err("--payload must be at least 24 bytes (origin, sequence, send time)".into());
    }
    if args.payload > args.config.max_message_size {
        return Err(format!(
            "--payload {} exceeds the preset's max_message_size ({})",
            args.payload, args.config.max_message_size
        ));
    }
    Ok(Command::Run(Box::new(args)))
}

/// `--make-certs`: a throwaway CA and a certificate for each of the ids 1 to `ids`.
fn make_certs(dir: &Path, ids: u64) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let ca = ClusterCa::generate()?;
    let write = |name: String, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))
    };
    write("ca.pem".into(), &ca.cert_pem())?;
    for id in 1..=ids {
        let issued = ca.issue(&id)?;
        write(format!("{id}.pem"), &issued.cert_pem)?;
        write(format!("{id}.key"), &issued.key_pem)?;
    }
    eprintln!("a CA and {ids} node certificates in {}", dir.display());
    Ok(())
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Writes every delivery as a JSON line and counts them per id (duplicates show).
#[derive(Clone)]
struct Report {
    out: Arc<Mutex<std::io::BufWriter<std::io::Stdout>>>,
    seen: Arc<Mutex<HashMap<(u64, MessageId), u32>>>,
    /// The topic whose deliveries this one reports (0: the default).
    topic: u64,
}

impl PlumtreeDelegate<u64> for Report {
    fn on_deliver(&self, delivery: Delivery<u64>) {
        let word = |i: usize| {
            delivery
                .payload
                .get(i * 8..i * 8 + 8)
                .map_or(0, |b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
        };
        let (origin, seq, sent) = (word(0), word(1), word(2));
        let times = {
            let mut seen = self.seen.lock().unwrap();
            let n = seen.entry((self.topic, delivery.id)).or_default();
            *n += 1;
            *n
        };
        let line = json!({
            "event": "deliver",
            "id": delivery.id.to_string(),
            "origin": origin,
            "seq": seq,
            "hops": delivery.hops,
            "latency_us": now_micros().saturating_sub(sent),
            "times": times,
            "topic": self.topic,
        });
        self.line(line);
    }

    fn on_gap(&self, first: &MessageId, count: u64) {
        self.line(json!({ "event": "gap", "first": first.to_string(), "count": count }));
    }
}

impl Report {
    fn line(&self, value: serde_json::Value) {
        let _ = writeln!(self.out.lock().unwrap(), "{value}");
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    support::exit(run().await)
}

/// `--demo-signing`: node `id`'s keys, accepting nodes 1 to `ids`; every secret is derived from
/// its id, so this shows the mechanism, not a secure setup (real secrets come from a key store).
fn demo_keys(id: u64, ids: u64) -> Result<memberlist_plumtree::OriginKeys<u64>, String> {
    use memberlist_plumtree::OriginKeys;
    let secret = |n: u64| {
        let mut secret = [0xd5; 32];
        secret[..8].copy_from_slice(&n.to_le_bytes());
        secret
    };
    (1..=ids).try_fold(OriginKeys::new(id, secret(id)), |keys, n| {
        let public = OriginKeys::new(n, secret(n)).public_key();
        keys.with_origin(n, public).map_err(|e| e.to_string())
    })
}

/// `--cert-signing`: node `id`'s keys from its certificate, accepting nodes 1 to `ids`, each
/// key from the certificate `ID.pem` in the directory of this node's, checked by `tls`.
fn certified_keys(
    id: u64,
    ids: u64,
    tls: &QuicTls,
    cert: &Path,
) -> Result<memberlist_plumtree::OriginKeys<u64>, Box<dyn std::error::Error>> {
    let dir = cert.parent().unwrap_or(Path::new("."));
    let mut keys = tls.origin_keys(id)?;
    for origin in (1..=ids).filter(|&n| n != id) {
        let pem = read(&dir.join(format!("{origin}.pem")))?;
        let key = tls
            .certified_origin_key(&origin, &pem)
            .map_err(|e| format!("certificate of node {origin}: {e}"))?;
        keys = keys.with_origin(origin, key)?;
    }
    Ok(keys)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = match parse()? {
        Command::Run(args) => *args,
        Command::MakeCerts { dir, ids } => return make_certs(&dir, ids),
    };
    if let Some(listen) = args.metrics {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(listen)
            .install()
            .map_err(|e| format!("serving metrics on {listen}: {e}"))?;
    }
    let report = Report {
        out: Arc::new(Mutex::new(std::io::BufWriter::new(std::io::stdout()))),
        seen: Arc::default(),
        topic: 0,
    };
    let mut builder = MemberlistStack::builder(args.id);
    if let Some(quic) = &args.quic {
        let tls = QuicTls::from_pem(&read(&quic.ca)?, &read(&quic.cert)?, &read(&quic.key)?)?;
        if let Some(ids) = args.cert_signing {
            builder = builder.origin_keys(certified_keys(args.id, ids, &tls, &quic.cert)?);
        }
        builder = builder.quic(QuicTransport::bind(
            args.id,
            quic.bind,
            QuicConfig::lan(),
            &tls,
        )?);
    }
    if let Some(ids) = args.demo_signing {
        builder = builder.origin_keys(demo_keys(args.id, ids)?);
    }
    let node = builder
        .bind(args.bind)
        .seeds(args.seeds.iter().copied())
        .config(args.config.clone())
        .bridge(
            BridgeConfig::default().with_reconnect_interval(if args.reconnect {
                BridgeConfig::default().reconnect_interval
            } else {
                Duration::ZERO
            }),
        )
        .build(report.clone())
        .await?;
    eprintln!(
        "node {} on {} ({} seeds)",
        args.id,
        node.memberlist().advertise_address(),
        args.seeds.len()
    );

    let mut topics = Vec::new();
    for (topic, ids) in &args.topics {
        if ids.contains(&args.id) {
            let delegate = Report {
                topic: *topic,
                ..report.clone()
            };
            let joined = node
                .join_topic(
                    TopicId::new(*topic),
                    args.config.clone(),
                    delegate,
                    Duration::from_secs(1),
                )
                .await?;
            topics.push((*topic, joined));
        }
    }
    let signing = match (args.cert_signing, args.demo_signing) {
        (Some(_), _) => "certificate",
        (None, Some(_)) => "demo",
        (None, None) => "off",
    };
    report.line(json!({
        "event": "start",
        "id": args.id,
        "signing": signing,
        "at_us": now_micros()
    }));
    let started = tokio::time::Instant::now();
    let deadline = args.duration.map(|d| started + d);
    let sending = |at: tokio::time::Instant| args.send_for.is_none_or(|d| at < started + d);
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        match deadline {
            Some(at) => tokio::select! {
                () = tokio::time::sleep_until(at) => "duration",
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "Ctrl-C",
            },
            None => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "Ctrl-C",
            },
        }
    };
    tokio::pin!(stop);
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate.max(1) as f64));
    // The harness reads from these lines when membership re-merged after a split.
    let mut look = tokio::time::interval(Duration::from_millis(100));
    let mut members = 0;
    let why = loop {
        tokio::select! {
            why = &mut stop => break why,
            _ = look.tick() => {
                let now = node.memberlist().num_online_members().await;
                if now != members {
                    members = now;
                    report.line(json!({ "event": "members", "count": now, "at_us": now_micros() }));
                }
            }
            at = tick.tick(), if args.rate > 0 => {
                if !sending(at) {
                    continue;
                }
                let at_us = now_micros();
                let mut payload = vec![0u8; args.payload];
                payload[0..8].copy_from_slice(&args.id.to_be_bytes());
                payload[8..16].copy_from_slice(&sent.to_be_bytes());
                payload[16..24].copy_from_slice(&at_us.to_be_bytes());
                // The default topic and this node's topics in turn.
                let turn = (sent % (topics.len() as u64 + 1)) as usize;
                let (topic, id) = match turn.checked_sub(1).map(|i| &topics[i]) {
                    None => (0, node.broadcast(payload).await?),
                    Some((topic, joined)) => (*topic, joined.broadcast(payload).await?),
                };
                report.line(json!({
                    "event": "sent", "id": id.to_string(), "seq": sent, "at_us": at_us,
                    "topic": topic,
                }));
                sent += 1;
            }
        }
    };
    // How deliveries were repaired, for the harness's report: grafts answer announcements,
    // repairs answer anti-entropy requests.
    let stats = node.plumtree().stats().await;
    if stats.is_none() {
        eprintln!("stats: the protocol task had stopped (the summary reports zeros)");
    }
    eprintln!("stopping ({why}): leaving the cluster");
    if let Err(error) = node.leave(Duration::from_secs(2)).await {
        eprintln!("leave: {error}");
    }
    node.shutdown().await?;
    let seen = report.seen.lock().unwrap();
    let summary = json!({
        "event": "summary",
        "id": args.id,
        "sent": sent,
        "delivered": seen.len(),
        "duplicates": seen.values().filter(|&&n| n > 1).count(),
        "stopped_by": why,
        "grafts_sent": stats.as_ref().map_or(0, |s| s.protocol.grafts_sent),
        "repairs_received": stats.as_ref().map_or(0, |s| s.protocol.repairs_received),
        "frames_dropped": stats.as_ref().map_or(0, |s| s.outbound_dropped),
        "bad_signatures": stats.as_ref().map_or(0, |s| s.protocol.bad_signatures),
    });
    let mut out = report.out.lock().unwrap();
    writeln!(out, "{summary}")?;
    out.flush()?;
    Ok(())
}
