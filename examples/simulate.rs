//! Runs one simulator scenario and prints its report (`--help` lists the flags).
//!
//! ```text
//! cargo run --release --features sim --example simulate -- --scenario single-sender --nodes 1000 --seed 1
//! ```

use std::process::ExitCode;
use std::time::Instant;

use memberlist_plumtree::sim::topics::{self, TopicsConfig};
use memberlist_plumtree::sim::{Regions, Report, Scenario, SimConfig, Workload, scenario};

mod support;

const USAGE: &str = "
Runs one simulator scenario over many protocol cores in virtual time and prints its report.

usage: cargo run --release --features sim --example simulate -- [FLAGS]

  --scenario NAME      single-sender (default), random-sender, burst, failure, churn,
                       partition, mass-failure
  --nodes N            nodes (default 1000)
  --seed S             random seed (default 1; the SEED environment variable overrides it)
  --config PRESET      default, lan, wan, large-cluster (default: default)
  --set FIELD=VALUE    override one PlumtreeConfig field, e.g. --set graft_timeout=1s
                       (repeatable)
  --messages M         broadcasts (default 200)
  --interval-ms T      between broadcasts (default 100)
  --latency-ms MIN-MAX one-way link latency (default 10-50)
  --regions R          R regions instead: 2 ms one way inside one, 80 ms between
  --loss P             frame loss, 0 to 1 (default 0)
  --partition-secs S   how long the partition scenario's cut lasts (default 10)
  --topics K           instead of a scenario: K topics of 100 to 300 members among the
                       nodes, random senders in each (--messages per topic), each beside a
                       cluster of just its members (one line per topic)
  --json               the report as JSON
  --out DIR            also write an SVG plot of reliability and RMR per broadcast and the
                       final eager tree as a Graphviz DOT file

On Linux with glibc it restarts itself once with GLIBC_TUNABLES=glibc.malloc.hugetlb=1
(the heap on transparent huge pages: large runs take about a third less time); set
GLIBC_TUNABLES, even to an empty value, to run as started.
";

struct Args {
    scenario: Scenario,
    nodes: usize,
    seed: u64,
    preset: String,
    messages: usize,
    json: bool,
    overrides: Vec<(String, String)>,
    interval_ms: u64,
    partition_secs: u64,
    out: Option<std::path::PathBuf>,
    latency: Option<std::ops::Range<std::time::Duration>>,
    regions: Option<u64>,
    loss: f64,
    topics: Option<usize>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        scenario: Scenario::SingleSender,
        nodes: 1000,
        seed: 1,
        preset: "default".into(),
        messages: 200,
        json: false,
        overrides: Vec::new(),
        interval_ms: 100,
        partition_secs: 10,
        out: None,
        latency: None,
        regions: None,
        loss: 0.0,
        topics: None,
    };
    let mut it = support::args(USAGE).into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--scenario" => args.scenario = value()?.parse()?,
            "--nodes" => args.nodes = value()?.parse().map_err(|e| format!("--nodes: {e}"))?,
            "--seed" => args.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--config" => args.preset = value()?,
            "--messages" => {
                args.messages = value()?.parse().map_err(|e| format!("--messages: {e}"))?
            }
            "--json" => args.json = true,
            "--topics" => {
                args.topics = Some(value()?.parse().map_err(|e| format!("--topics: {e}"))?)
            }
            "--out" => args.out = Some(value()?.into()),
            "--latency-ms" => {
                let range = value()?;
                let (lo, hi) = range
                    .split_once('-')
                    .ok_or(format!("--latency-ms {range}: expected MIN-MAX"))?;
                let ms = |v: &str| {
                    v.parse::<f64>()
                        .map(|v| std::time::Duration::from_secs_f64(v / 1000.0))
                };
                args.latency =
                    Some(ms(lo).map_err(|e| e.to_string())?..ms(hi).map_err(|e| e.to_string())?);
            }
            "--loss" => args.loss = value()?.parse().map_err(|e| format!("--loss: {e}"))?,
            "--regions" => {
                args.regions = Some(value()?.parse().map_err(|e| format!("--regions: {e}"))?)
            }
            "--partition-secs" => {
                args.partition_secs = value()?
                    .parse()
                    .map_err(|e| format!("--partition-secs: {e}"))?
            }
            "--interval-ms" => {
                args.interval_ms = value()?
                    .parse()
                    .map_err(|e| format!("--interval-ms: {e}"))?
            }
            "--set" => {
                let pair = value()?;
                let (field, v) = pair
                    .split_once('=')
                    .ok_or(format!("--set {pair}: expected field=value"))?;
                args.overrides.push((field.to_owned(), v.to_owned()));
            }
            other => return Err(support::unknown(other)),
        }
    }
    if let Ok(seed) = std::env::var("SEED") {
        args.seed = seed.parse().map_err(|e| format!("SEED: {e}"))?;
    }
    Ok(args)
}

fn main() -> ExitCode {
    with_huge_pages();
    support::exit(run())
}

/// Restarts the process once with glibc's heap on transparent huge pages, unless
/// `GLIBC_TUNABLES` is already set (set it, even empty, to run without). A thousand nodes'
/// tables are read in random order, and with 4 KiB pages most of those reads also miss the
/// TLB: the burst at 1,000 nodes takes about a third less time (docs/simulation.md). Results
/// do not depend on it.
fn with_huge_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        use std::os::unix::process::CommandExt;
        if let Ok(exe) = std::env::current_exe() {
            let error = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .env("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")
                .exec();
            eprintln!("running without huge pages: {error}");
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    if args.messages == 0 && args.scenario != Scenario::Burst {
        println!("--messages 0: nothing is broadcast, so there is nothing to measure");
        return Ok(());
    }
    let mut config = SimConfig::new(args.nodes, args.seed);
    config.protocol = support::preset(&args.preset)?;
    if let Some(latency) = args.latency.clone() {
        config.network.latency = latency;
    }
    config.network.loss = args.loss;
    config.network.regions = args.regions.map(Regions::new);
    if !args.overrides.is_empty() {
        // Go through the config's serde form, so every field can be set by name.
        let mut json = serde_json::to_value(&config.protocol)?;
        for (field, value) in &args.overrides {
            let value = serde_json::from_str(value)
                .unwrap_or_else(|_| serde_json::Value::String(value.clone()));
            json[field.as_str()] = value;
        }
        config.protocol = serde_json::from_value(json)?;
    }
    let workload = Workload {
        messages: args.messages,
        interval: std::time::Duration::from_millis(args.interval_ms),
        partition: std::time::Duration::from_secs(args.partition_secs),
        ..Workload::default()
    };
    if let Some(topics) = args.topics {
        return run_topics(topics, config, workload, args.json);
    }
    let started = Instant::now();
    let (report, sim) = scenario::run(args.scenario, config, &workload)?;
    let wall_ms = started.elapsed().as_millis();
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)?;
        let stem = format!("{}-{}-{}", report.scenario, report.nodes, report.seed);
        let svg = dir.join(format!("{stem}.svg"));
        plot(&report, &svg)?;
        let dot = dir.join(format!("{stem}-tree.dot"));
        std::fs::write(&dot, sim.eager_tree_dot())?;
        eprintln!("wrote {} and {}", svg.display(), dot.display());
    }
    if args.json {
        let mut control = serde_json::Map::new();
        for (kind, per) in report.per_broadcast {
            control.insert(kind.as_str().into(), per.into());
        }
        let mut json = serde_json::json!({
            "scenario": report.scenario.name(),
            "config": args.preset,
            "nodes": report.nodes,
            "seed": report.seed,
            "messages": report.messages,
            "reliability_min": report.reliability_min,
            "reliability_mean": report.reliability_mean,
            "rmr_mean": report.rmr_mean,
            "rmr_steady": report.rmr_steady,
            "ldh_max": report.ldh_max,
            "ldh_mean": report.ldh_mean,
            "control_per_broadcast": control,
            "duplicate_deliveries": report.duplicate_deliveries,
            "delivery_ms_p50": report.delivery_ms[0],
            "delivery_ms_p99": report.delivery_ms[1],
            "delivery_ms_max": report.delivery_ms[2],
            "eager_links": report.tree.eager_links,
            "one_sided_links": report.tree.one_sided,
            "tree_components": report.tree.components,
            "tree_largest_component": report.tree.largest_component,
            "wall_ms": wall_ms,
        });
        for (name, value) in &report.extra {
            json[*name] = (*value).into();
        }
        println!("{json}");
    } else {
        println!(
            "scenario {}  nodes {}  seed {}  config {}",
            report.scenario, report.nodes, report.seed, args.preset
        );
        println!("  messages              {}", report.messages);
        println!(
            "  reliability min/mean  {:.4} / {:.4}",
            report.reliability_min, report.reliability_mean
        );
        println!(
            "  RMR mean / steady     {:.4} / {:.4}",
            report.rmr_mean, report.rmr_steady
        );
        println!(
            "  LDH max / mean        {} / {:.2}",
            report.ldh_max, report.ldh_mean
        );
        let per: Vec<String> = report
            .per_broadcast
            .iter()
            .map(|(k, v)| format!("{} {:.1}", k.as_str(), v))
            .collect();
        println!("  frames per broadcast  {}", per.join(", "));
        println!("  duplicate deliveries  {}", report.duplicate_deliveries);
        let [p50, p99, max] = report.delivery_ms;
        println!("  delivery ms p50/p99/max  {p50:.1} / {p99:.1} / {max:.1}");
        let tree = &report.tree;
        println!(
            "  eager links at end    {} ({} one-sided), {} component(s), the largest {} nodes",
            tree.eager_links, tree.one_sided, tree.components, tree.largest_component
        );
        for (name, value) in &report.extra {
            println!("  {name:<22}{value}");
        }
        println!("  wall                  {wall_ms} ms");
    }
    Ok(())
}

/// Reliability and RMR per broadcast, one panel each.
fn plot(report: &Report, path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "{} - {} nodes, seed {}",
        report.scenario, report.nodes, report.seed
    );
    let root = root.titled(&title, ("sans-serif", 20))?;
    let (top, bottom) = root.split_vertically(290);
    let n = report.series.len().max(1);
    let reliability: Vec<f64> = report.series.iter().map(|s| s.0).collect();
    let rmr: Vec<f64> = report.series.iter().map(|s| s.1).collect();
    for (name, area, values) in [("reliability", top, reliability), ("RMR", bottom, rmr)] {
        let max = values.iter().copied().fold(0.0, f64::max).max(1.0) * 1.05;
        let mut chart = ChartBuilder::on(&area)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0..n, 0.0..max)?;
        chart
            .configure_mesh()
            .x_desc("broadcast")
            .y_desc(name)
            .draw()?;
        chart.draw_series(LineSeries::new(values.into_iter().enumerate(), &BLUE))?;
    }
    root.present()?;
    Ok(())
}

/// The topics measurement (`--topics K`): one line per topic, its run beside a cluster of just
/// its members.
fn run_topics(
    topics: usize,
    cluster: SimConfig,
    workload: Workload,
    json: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let config = TopicsConfig {
        topics,
        workload,
        ..TopicsConfig::new(cluster.nodes, cluster.seed)
    };
    let config = TopicsConfig { cluster, ..config };
    let started = Instant::now();
    let reports = topics::run(&config)?;
    let wall_ms = started.elapsed().as_millis();
    if !json {
        println!(
            "{topics} topics among {} nodes, seed {}: topic run | alone (a cluster of its members)",
            config.cluster.nodes, config.cluster.seed
        );
        println!(
            "topic members  reliability  rmr          ldh mean     duplicates  frames/payloads to non-members"
        );
    }
    for (i, t) in reports.iter().enumerate() {
        let (r, a) = (&t.report, &t.alone);
        if json {
            let line = serde_json::json!({
                "topic": i,
                "members": t.members,
                "reliability_min": r.reliability_min,
                "alone_reliability_min": a.reliability_min,
                "rmr_mean": r.rmr_mean,
                "alone_rmr_mean": a.rmr_mean,
                "ldh_mean": r.ldh_mean,
                "alone_ldh_mean": a.ldh_mean,
                "duplicates": r.duplicate_deliveries + a.duplicate_deliveries,
                "frames_to_non_members": t.to_outsiders.0,
                "payloads_to_non_members": t.to_outsiders.1,
            });
            println!("{line}");
        } else {
            println!(
                "{i:>5} {:>7}  {:.3} | {:.3}  {:.3} | {:.3}  {:>4.1} | {:>4.1}  {:>10}  {} / {}",
                t.members,
                r.reliability_min,
                a.reliability_min,
                r.rmr_mean,
                a.rmr_mean,
                r.ldh_mean,
                a.ldh_mean,
                r.duplicate_deliveries + a.duplicate_deliveries,
                t.to_outsiders.0,
                t.to_outsiders.1,
            );
        }
    }
    if !json {
        let mean = |f: &dyn Fn(&topics::TopicReport) -> f64| {
            reports.iter().map(f).sum::<f64>() / reports.len().max(1) as f64
        };
        println!(
            "mean rmr {:.3} | {:.3}  mean ldh {:.1} | {:.1}  wall {wall_ms} ms",
            mean(&|t| t.report.rmr_mean),
            mean(&|t| t.alone.rmr_mean),
            mean(&|t| t.report.ldh_mean),
            mean(&|t| t.alone.ldh_mean),
        );
    }
    Ok(())
}
