//! Byte-stream resync with fuzzer-chosen chunking: byte accounting, clean streams pass unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    switchyard::fuzz_harness::resync(data);

});
