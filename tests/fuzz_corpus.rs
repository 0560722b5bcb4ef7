//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the
//! same invariant checks the cargo-fuzz targets run, on stable Rust, so every
//! seed and every minimised crash that was ever committed stays fixed.

use std::path::PathBuf;

use switchyard::fuzz_harness;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    for file in &files {
        let data = std::fs::read(file).expect("read seed");
        let result = std::panic::catch_unwind(|| check(&data));
        assert!(
            result.is_ok(),
            "{target}: seed {} breaks an invariant",
            file.display()
        );
    }
}

#[test]
fn packet() {
    replay("packet", |d| {
        fuzz_harness::packet(d);
        fuzz_harness::demux_packets(d);
    });
}

#[test]
fn resync() {
    replay("resync", fuzz_harness::resync);
}

#[test]
fn psi() {
    replay("psi", fuzz_harness::psi);
}

#[test]
fn pes() {
    replay("pes", fuzz_harness::pes);
}

#[test]
fn nal() {
    replay("nal", fuzz_harness::nal);
}

#[test]
fn probe() {
    replay("probe", fuzz_harness::probe);
}

#[test]
fn rtp() {
    replay("rtp", fuzz_harness::rtp);
}

#[test]
fn stream_buffer() {
    replay("stream_buffer", fuzz_harness::stream_buffer);
}

#[test]
fn srt_gate() {
    replay("srt_gate", fuzz_harness::srt_gate);
}

#[test]
fn srt_endpoint() {
    replay("srt_endpoint", fuzz_harness::srt_endpoint);
}

#[test]
fn splice() {
    replay("splice", fuzz_harness::splice);
}

#[test]
fn progress() {
    replay("progress", fuzz_harness::progress);
}

#[test]
fn health() {
    replay("health", fuzz_harness::health);
}
