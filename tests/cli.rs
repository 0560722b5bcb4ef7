//! The `switchyard probe` command line: exit codes, stdin, human output.

use std::io::Write;
use std::process::{Command, Stdio};

fn switchyard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
}

#[test]
fn non_ts_input_is_an_error_with_status_2() {
    let dir = std::env::temp_dir().join(format!("switchyard-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("not.ts");
    std::fs::write(
        &path,
        "hello, this is a text file and not a transport stream\n".repeat(50),
    )
    .expect("write");
    let out = switchyard().arg("probe").arg(&path).output().expect("run");
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not an MPEG transport stream"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn missing_file_is_an_error() {
    let out = switchyard()
        .args(["probe", "/nonexistent/input.ts"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open"));
}

#[test]
fn reads_stdin_and_prints_a_summary() {
    let data = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/two_programs.ts"
    ))
    .expect("capture");
    let mut child = switchyard()
        .args(["probe", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    // Write in odd-sized pieces: the pipe delivers them in any chunking.
    for piece in data.chunks(1000) {
        stdin.write_all(piece).expect("write");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("program 1 (PMT 0x1000, PCR 0x0100)"),
        "{text}"
    );
    assert!(
        text.contains("program 2 (PMT 0x1001, PCR 0x0102)"),
        "{text}"
    );
    assert!(text.contains("3 IDRs"), "{text}");
}

#[test]
fn json_has_the_documented_keys() {
    let out = switchyard()
        .args(["probe", "--json"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/h264_aac_closed_gop.ts"
        ))
        .output()
        .expect("run");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    for key in [
        "packets",
        "bytes",
        "duration_s",
        "bitrate_bps",
        "sync_losses",
        "cc_errors",
        "programs",
        "pids",
        "video",
        "audio",
        "pcr",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    for key in ["program_number", "pmt_pid", "pcr_pid", "streams"] {
        assert!(v["programs"][0].get(key).is_some(), "programs[].{key}");
    }
    for key in ["pid", "stream_type", "codec"] {
        assert!(
            v["programs"][0]["streams"][0].get(key).is_some(),
            "streams[].{key}"
        );
    }
    for key in ["pid", "packets", "cc_errors"] {
        assert!(v["pids"][0].get(key).is_some(), "pids[].{key}");
    }
    for key in [
        "pid",
        "codec",
        "frames",
        "idr_pts",
        "gop_frames",
        "pts_backwards",
        "duplicate_pts",
        "max_pts_gap_ms",
    ] {
        assert!(v["video"].get(key).is_some(), "video.{key}");
    }
    for key in ["pid", "codec", "frames", "pts_backwards", "max_pts_gap_ms"] {
        assert!(v["audio"][0].get(key).is_some(), "audio[].{key}");
    }
    for key in ["pid", "count", "max_interval_ms"] {
        assert!(v["pcr"].get(key).is_some(), "pcr.{key}");
    }
    let duration = v["duration_s"].as_f64().expect("duration");
    assert!((3.9..4.2).contains(&duration), "duration {duration}");
}
