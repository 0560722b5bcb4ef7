//! The per-stream ring and fan-out: byte bounds, consumers get the stream's own packets in order
//! with no continuity errors of their own.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    switchyard::fuzz_harness::stream_buffer(data);
});
