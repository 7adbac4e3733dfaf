//! Fuzz target `netlink`: see `sentinel::fuzzing::netlink` for what the input means.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sentinel::fuzzing::netlink(data));
