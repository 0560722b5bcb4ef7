//! Encoder health scorer over an observation script; /proc text parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    switchyard::fuzz_harness::health(data);
});
