//! See `memberlist_plumtree::fuzzing::envelope`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| memberlist_plumtree::fuzzing::envelope(data));
