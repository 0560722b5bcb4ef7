//! SRT endpoint over a datagram script: no panic reaches srt-protocol, events and tables stay consistent, everything times out.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    switchyard::fuzz_harness::srt_endpoint(data);
});
