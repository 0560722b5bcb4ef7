//! RTP receiver over a datagram script: order, accounting and timer invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    switchyard::fuzz_harness::rtp(data);
});
