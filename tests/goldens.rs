//! `switchyard probe` against the ffprobe-derived goldens in `testdata/`:
//! programs, PIDs, codecs, frame counts and — the point of the TS core —
//! exactly the IDR access units, not the CRA / open-GOP / intra-refresh
//! pictures ffprobe also flags as keyframes.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn probe_json(path: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["probe", "--json"])
        .arg(path)
        .output()
        .expect("run switchyard probe");
    assert!(
        out.status.success(),
        "probe {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("probe --json prints JSON")
}

fn golden(name: &str) -> Value {
    let text = std::fs::read_to_string(testdata().join(format!("{name}.golden.json")))
        .expect("golden exists");
    serde_json::from_str(&text).expect("golden is JSON")
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// Compares everything the golden states with the probe report.
fn check(name: &str, audio_frame_slack: u64) -> Value {
    let report = probe_json(&testdata().join(format!("{name}.ts")));
    let golden = golden(name);
    let programs = report["programs"].as_array().expect("programs");
    let golden_programs = golden["programs"].as_array().expect("golden programs");
    assert_eq!(
        programs.len(),
        golden_programs.len(),
        "{name}: program count"
    );
    for (p, g) in programs.iter().zip(golden_programs) {
        assert_eq!(p["program_number"], g["program_number"], "{name}");
        assert_eq!(p["pmt_pid"], g["pmt_pid"], "{name}");
        let streams: Vec<(u64, &str)> = p["streams"]
            .as_array()
            .expect("streams")
            .iter()
            .map(|s| {
                (
                    s["pid"].as_u64().unwrap_or(0),
                    s["codec"].as_str().unwrap_or(""),
                )
            })
            .collect();
        let want: Vec<(u64, &str)> = g["streams"]
            .as_array()
            .expect("golden streams")
            .iter()
            .map(|s| {
                (
                    s["pid"].as_u64().unwrap_or(0),
                    s["codec"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            streams, want,
            "{name}: streams of program {}",
            p["program_number"]
        );
    }
    let videos = report["video_streams"].as_array().expect("video_streams");
    let golden_videos = golden["video"].as_array().expect("golden video");
    assert_eq!(videos.len(), golden_videos.len(), "{name}: video streams");
    for (v, g) in videos.iter().zip(golden_videos) {
        assert_eq!(v["pid"], g["pid"], "{name}");
        assert_eq!(v["codec"], g["codec"], "{name}");
        assert_eq!(v["frames"], g["frames"], "{name}: video frames");
        assert_eq!(u64s(&v["idr_pts"]), u64s(&g["idr_pts"]), "{name}: IDR PTS");
        let mut cra = u64s(&g["cra_pts"]);
        cra.extend(u64s(&g["bla_pts"]));
        cra.sort_unstable();
        assert_eq!(u64s(&v["cra_pts"]), cra, "{name}: CRA/BLA PTS");
        // ffprobe's keyframes that are not IDRs must not be splice points.
        let keyframes = u64s(&g["ffprobe_keyframe_pts"]);
        let idrs = u64s(&v["idr_pts"]);
        for k in keyframes
            .iter()
            .filter(|k| !u64s(&g["idr_pts"]).contains(k))
        {
            assert!(
                !idrs.contains(k),
                "{name}: ffprobe keyframe {k} is not an IDR"
            );
        }
        assert_eq!(
            v["recovery_points"].as_u64(),
            Some(u64s(&g["recovery_point_pts"]).len() as u64),
            "{name}: recovery points"
        );
    }
    let audio = report["audio"].as_array().expect("audio");
    let golden_audio = golden["audio"].as_array().expect("golden audio");
    assert_eq!(audio.len(), golden_audio.len(), "{name}: audio streams");
    for (a, g) in audio.iter().zip(golden_audio) {
        assert_eq!(a["pid"], g["pid"], "{name}");
        assert_eq!(a["codec"], g["codec"], "{name}");
        let (got, want) = (
            a["frames"].as_u64().unwrap_or(0),
            g["frames"].as_u64().unwrap_or(0),
        );
        assert!(
            got.abs_diff(want) <= audio_frame_slack,
            "{name}: audio frames {got}, ffprobe {want}"
        );
    }
    report
}

fn assert_clean(name: &str, report: &Value) {
    assert_eq!(report["sync_losses"], 0, "{name}");
    assert_eq!(report["cc_errors"], 0, "{name}");
    let video = &report["video"];
    assert_eq!(video["pts_backwards"], 0, "{name}");
    assert_eq!(video["duplicate_pts"], 0, "{name}");
    assert_eq!(video["dts_backwards"], 0, "{name}");
    for a in report["audio"].as_array().expect("audio") {
        assert_eq!(a["pts_backwards"], 0, "{name}");
        assert_eq!(a["duplicate_pts"], 0, "{name}");
    }
}

#[test]
fn h264_closed_gop() {
    let r = check("h264_aac_closed_gop", 0);
    assert_clean("h264_aac_closed_gop", &r);
    assert_eq!(u64s(&r["video"]["gop_frames"]), vec![25; 4]);
    assert_eq!(r["video"]["max_pts_gap_ms"], 40.0);
    assert_eq!(r["packets"], 708);
    assert_eq!(r["pcr"]["pid"], 256);
}

#[test]
fn hevc_closed_gop() {
    let r = check("hevc_aac_closed_gop", 0);
    assert_clean("hevc_aac_closed_gop", &r);
    assert_eq!(u64s(&r["video"]["gop_frames"]), vec![25; 4]);
}

#[test]
fn h264_open_gop_has_one_idr() {
    let r = check("h264_open_gop", 0);
    assert_clean("h264_open_gop", &r);
    assert_eq!(u64s(&r["video"]["idr_pts"]).len(), 1);
}

#[test]
fn hevc_open_gop_cra_is_not_idr() {
    let r = check("hevc_open_gop_cra", 0);
    assert_clean("hevc_open_gop_cra", &r);
    assert_eq!(u64s(&r["video"]["idr_pts"]).len(), 1);
    assert_eq!(u64s(&r["video"]["cra_pts"]).len(), 3);
}

#[test]
fn h264_intra_refresh_has_no_periodic_idr() {
    let r = check("h264_intra_refresh", 0);
    assert_clean("h264_intra_refresh", &r);
    assert_eq!(u64s(&r["video"]["idr_pts"]).len(), 1);
    assert_eq!(u64s(&r["video"]["gop_frames"]), vec![100]);
}

#[test]
fn two_programs() {
    let r = check("two_programs", 0);
    assert_clean("two_programs", &r);
    assert_eq!(r["programs"].as_array().map(Vec::len), Some(2));
}

#[test]
fn cbr_with_null_packets() {
    let r = check("cbr_null_packets", 0);
    assert_clean("cbr_null_packets", &r);
    let null = r["pids"]
        .as_array()
        .expect("pids")
        .iter()
        .find(|p| p["pid"] == 0x1FFF)
        .expect("null PID listed");
    assert_eq!(null["packets"], 482);
    // Muxed at -muxrate 600k.
    let bitrate = r["bitrate_bps"].as_f64().expect("bitrate");
    assert!(
        (590_000.0..=610_000.0).contains(&bitrate),
        "bitrate {bitrate}"
    );
}

#[test]
fn frame_rates() {
    let r = check("h264_60fps", 0);
    assert_clean("h264_60fps", &r);
    let gap = r["video"]["max_pts_gap_ms"].as_f64().expect("gap");
    assert!((gap - 1000.0 / 60.0).abs() < 0.01, "60 fps gap {gap}");
    assert_eq!(u64s(&r["video"]["gop_frames"]), vec![60, 60]);
}

#[test]
fn damaged_garbage_resyncs_without_losing_packets() {
    // ffprobe's resync loses one audio frame that ours keeps: the five runs
    // of garbage (629 bytes) are skipped exactly and every packet is kept
    // (each damaged packet is handed out with its tail cut by the garbage,
    // as a receiver cannot tell an inserted run from a gap after a packet).
    let r = check("damaged_garbage", 1);
    assert_eq!(r["sync_losses"], 5);
    assert_eq!(r["errors"]["bytes_skipped"], 7 + 100 + 188 + 1 + 333);
    assert_eq!(r["packets"], 708);
}

#[test]
fn damaged_cc_counts_errors_per_pid() {
    let r = check("damaged_cc", 0);
    assert_eq!(r["cc_errors"], 7);
    let errors = |pid: u64| {
        r["pids"]
            .as_array()
            .expect("pids")
            .iter()
            .find(|p| p["pid"] == pid)
            .map(|p| p["cc_errors"].clone())
    };
    assert_eq!(errors(0x100), Some(4.into()));
    assert_eq!(errors(0x101), Some(3.into()));
}

#[test]
fn damaged_truncated_tail() {
    let r = check("damaged_truncated", 0);
    assert_eq!(r["errors"]["truncated_tail"], true);
    assert_eq!(r["errors"]["bytes_skipped"], 100);
    assert_eq!(r["packets"], 707);
}
