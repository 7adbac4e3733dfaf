//! Fuzz target `config`: see `sentinel::fuzzing::config` for what the input means.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sentinel::fuzzing::config(data));
