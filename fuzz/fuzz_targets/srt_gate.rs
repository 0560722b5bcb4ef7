//! SRT handshake/control gate: canonical conclusions and every datagram it passes parse in srt-protocol without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    switchyard::fuzz_harness::srt_gate(data);
});
