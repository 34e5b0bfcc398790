//! Replays the fuzz targets' saved inputs (fuzz/corpus/TARGET, minimized, and
//! fuzz/regressions/TARGET, the inputs behind past findings) through the same entry points the
//! fuzzers drive, so every decoder of peer bytes is checked on every run of the suite without a
//! nightly toolchain (docs/fuzzing.md).
//!
//! Besides the targets' own assertions, it checks what the fuzzers cannot: that no input of at
//! most 4 KiB makes a decoder ask for one allocation above `LARGEST_ALLOCATION`.
#![cfg(all(feature = "fuzzing", feature = "memberlist", feature = "quic"))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

/// Larger than anything a 4 KiB input may legitimately expand to (an IHave of
/// `MAX_IHAVE_BATCH_SIZE` announcements, about 128 KiB), smaller than the frame a QUIC peer
/// may announce (`QuicConfig::default().max_frame_size`, 1 MiB).
const LARGEST_ALLOCATION: usize = 512 * 1024;

/// The system allocator, noting the largest request made on this thread.
struct Watching;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.with(|l| l.set(l.get().max(layout.size())));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.with(|l| l.set(l.get().max(new_size)));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// A fuzz target's entry point.
type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 5] = [
    ("envelope", memberlist_plumtree::fuzzing::envelope),
    ("node_meta", memberlist_plumtree::fuzzing::node_meta),
    ("user_message", memberlist_plumtree::fuzzing::user_message),
    ("stream_header", memberlist_plumtree::fuzzing::stream_header),
    ("quic_stream", memberlist_plumtree::fuzzing::quic_stream),
];

fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut inputs: Vec<_> = entries
        .map(|entry| entry.expect("readable directory").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let bytes = std::fs::read(&path).expect("readable input");
            (path.display().to_string(), bytes)
        })
        .collect();
    inputs.sort();
    inputs
}

#[test]
fn every_saved_input_decodes_without_panic_or_a_large_allocation() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (target, run) in TARGETS {
        let corpus = inputs(&fuzz.join("corpus").join(target));
        assert!(
            !corpus.is_empty(),
            "no saved corpus for {target}: the replay would check nothing"
        );
        let regressions = inputs(&fuzz.join("regressions").join(target));
        for (name, bytes) in corpus.iter().chain(&regressions) {
            assert!(
                bytes.len() <= 4096,
                "{name}: longer than the fuzzers' 4 KiB"
            );
            LARGEST.with(|l| l.set(0));
            run(bytes);
            let largest = LARGEST.with(Cell::get);
            assert!(
                largest <= LARGEST_ALLOCATION,
                "{name}: one allocation of {largest} bytes from {} bytes of input",
                bytes.len()
            );
        }
    }
}
