//! Fuzz target `ingest_body`: see `sentinel::fuzzing::ingest_body` for what the input means.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sentinel::fuzzing::ingest_body(data));
