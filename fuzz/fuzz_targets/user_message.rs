//! See `memberlist_plumtree::fuzzing::user_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| memberlist_plumtree::fuzzing::user_message(data));
