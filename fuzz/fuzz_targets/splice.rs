//! The output splicer over two sources with random switches: whole packets out, continuity
//! counters that run on across every switch.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    switchyard::fuzz_harness::splice(data);
});
