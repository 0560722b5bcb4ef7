//! ffmpeg `-progress` parser over stderr bytes: bounded lines, chunking-independent events.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    switchyard::fuzz_harness::progress(data);
});
