//! Fuzz target `agent_nginx`: see `sentinel::fuzzing::agent_nginx` for what the input means.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sentinel::fuzzing::agent_nginx(data));
