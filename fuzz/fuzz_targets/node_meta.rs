//! See `memberlist_plumtree::fuzzing::node_meta`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| memberlist_plumtree::fuzzing::node_meta(data));
