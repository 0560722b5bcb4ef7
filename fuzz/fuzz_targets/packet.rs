//! Packet view + adaptation field; builder round trip; demux over whole packets.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    switchyard::fuzz_harness::packet(data);
    switchyard::fuzz_harness::demux_packets(data);
});
