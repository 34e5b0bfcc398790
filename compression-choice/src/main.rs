//! Compares the compressors the `compression` feature could use on payloads like a cluster
//! broadcasts: text-like (JSON records) and random bytes, at 256 B, 4 KiB and 64 KiB. Prints
//! a Markdown table (64 B to 64 KiB): bytes after compression, and the median time to compress and to
//! decompress one payload (11 batches of about 20 ms each).
//!
//! ```text
//! cd compression-choice && cargo run --release
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

/// JSON records of the kind services broadcast (membership notes, cache invalidations), with
/// numbers and words drawn from a seeded generator: repetitive in structure, not in content.
fn text(len: usize, rng: &mut fastrand::Rng) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "replicated",
        "invalidated",
        "user",
        "session",
        "peer",
        "shard",
        "key",
        "rebalanced",
        "timeout",
        "commit",
        "lease",
        "renewed",
    ];
    const LEVELS: [&str; 3] = ["info", "warn", "debug"];
    let mut out = String::new();
    while out.len() < len {
        out.push_str(&format!(
            "{{\"ts\":{},\"node\":\"node-{}\",\"level\":\"{}\",\"msg\":\"{} {}:{} {} {}\",\"ms\":{}.{}}}\n",
            1_733_500_000_000u64 + rng.u64(..10_000_000),
            rng.u32(..64),
            LEVELS[rng.usize(..LEVELS.len())],
            WORDS[rng.usize(..WORDS.len())],
            WORDS[rng.usize(..WORDS.len())],
            rng.u32(..100_000),
            WORDS[rng.usize(..WORDS.len())],
            rng.u32(..8),
            rng.u32(..200),
            rng.u32(..10),
        ));
    }
    out.truncate(len);
    out.into_bytes()
}

fn random(len: usize, rng: &mut fastrand::Rng) -> Vec<u8> {
    std::iter::repeat_with(|| rng.u8(..)).take(len).collect()
}

/// Median time of one call of `f`, over 11 batches sized to take about 20 ms each.
fn median(mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    let mut calls = 0u32;
    while start.elapsed() < Duration::from_millis(20) {
        f();
        calls += 1;
    }
    let mut times: Vec<Duration> = (0..11)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls {
                f();
            }
            start.elapsed() / calls
        })
        .collect();
    times.sort();
    times[5]
}

thread_local! {
    /// zstd with its contexts made once and reused, as a node would keep them.
    static ZSTD: std::cell::RefCell<(
        zstd::bulk::Compressor<'static>,
        zstd::bulk::Compressor<'static>,
        zstd::bulk::Decompressor<'static>,
    )> = std::cell::RefCell::new((
        zstd::bulk::Compressor::new(1).expect("zstd"),
        zstd::bulk::Compressor::new(3).expect("zstd"),
        zstd::bulk::Decompressor::new().expect("zstd"),
    ));
}

struct Codec {
    name: &'static str,
    compress: fn(&[u8]) -> Vec<u8>,
    /// Decompresses into a buffer of the original length.
    decompress: fn(&[u8], &mut [u8]) -> usize,
}

fn main() {
    let codecs = [
        Codec {
            name: "lz4_flex (block)",
            compress: |input| lz4_flex::block::compress(input),
            decompress: |input, out| lz4_flex::block::decompress_into(input, out).expect("lz4"),
        },
        Codec {
            name: "zstd level 1",
            compress: |input| ZSTD.with_borrow_mut(|(c1, _, _)| c1.compress(input).expect("zstd")),
            decompress: |input, out| {
                ZSTD.with_borrow_mut(|(_, _, d)| d.decompress_to_buffer(input, out).expect("zstd"))
            },
        },
        Codec {
            name: "zstd level 3",
            compress: |input| ZSTD.with_borrow_mut(|(_, c3, _)| c3.compress(input).expect("zstd")),
            decompress: |input, out| {
                ZSTD.with_borrow_mut(|(_, _, d)| d.decompress_to_buffer(input, out).expect("zstd"))
            },
        },
    ];
    println!("| payload | size | compressor | bytes after | compress | decompress |");
    println!("|---|---|---|---|---|---|");
    let mut rng = fastrand::Rng::with_seed(7);
    let kinds: [(&str, fn(usize, &mut fastrand::Rng) -> Vec<u8>); 2] =
        [("text", text), ("random", random)];
    for (kind, make) in kinds {
        for len in [64, 128, 256, 1024, 4096, 65536] {
            let payload = make(len, &mut rng);
            for codec in &codecs {
                let packed = (codec.compress)(&payload);
                let mut out = vec![0u8; len];
                assert_eq!((codec.decompress)(&packed, &mut out), len);
                assert_eq!(out, payload, "{} round trip", codec.name);
                let compress = median(|| {
                    black_box((codec.compress)(black_box(&payload)));
                });
                let decompress = median(|| {
                    black_box((codec.decompress)(black_box(&packed), &mut out));
                });
                println!(
                    "| {kind} | {len} | {} | {} ({:.0}%) | {:.2} us | {:.2} us |",
                    codec.name,
                    packed.len(),
                    100.0 * packed.len() as f64 / len as f64,
                    compress.as_secs_f64() * 1e6,
                    decompress.as_secs_f64() * 1e6,
                );
            }
        }
    }
}
