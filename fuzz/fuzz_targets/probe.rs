//! The whole probe pipeline: no panic, consistent counts, chunking-independent.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    switchyard::fuzz_harness::probe(data);

});
