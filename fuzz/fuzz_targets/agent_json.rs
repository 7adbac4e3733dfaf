//! Fuzz target `agent_json`: see `sentinel::fuzzing::agent_json` for what the input means.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sentinel::fuzzing::agent_json(data));
