//! H.264/HEVC access unit classification is independent of packet splits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    switchyard::fuzz_harness::nal(data);

});
