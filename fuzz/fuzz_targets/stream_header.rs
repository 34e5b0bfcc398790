//! See `memberlist_plumtree::fuzzing::stream_header`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| memberlist_plumtree::fuzzing::stream_header(data));
