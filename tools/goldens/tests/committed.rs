//! Recomputes every committed golden from ffprobe, live, so the goldens
//! cannot drift from what ffprobe (reconciled with NAL types) sees.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn committed_goldens_match_ffprobe_now() {
    let testdata = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    let mut captures: Vec<PathBuf> = std::fs::read_dir(&testdata)
        .expect("testdata/ is readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ts"))
        .collect();
    captures.sort();
    assert!(
        captures.len() >= 11,
        "expected the 11 captures, found {captures:?}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_goldens"))
        .arg("--check")
        .args(&captures)
        .output()
        .expect("run the goldens oracle (needs ffprobe: apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "goldens --check failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
