//! See `memberlist_plumtree::fuzzing::quic_stream`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| memberlist_plumtree::fuzzing::quic_stream(data));
