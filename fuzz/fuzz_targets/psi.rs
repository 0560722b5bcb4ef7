//! PSI section reassembly, CRC, PAT/PMT parse and re-encode round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    switchyard::fuzz_harness::psi(data);

});
