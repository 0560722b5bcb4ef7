//! Main/backup input failover end to end (issue 3, points 5 and 7), with
//! live-encoded publishers: two ffmpeg x264 encoders started at different
//! times, so their timestamps are unrelated and the backup must be rebased
//! onto the output timeline.
//!
//! Each case records the stream with a file output, SIGKILLs the main
//! publisher mid-stream and checks that the output continues from the
//! backup within `input_timeout` + one GOP, then starts a main publisher
//! again and checks that the output returns to it after `revert_after`, on
//! an IDR. The recording must be one clean stream: monotonic PTS/DTS, no
//! duplicate PTS, 0 CC errors, starting at an IDR, and decodable by ffmpeg
//! with `-xerror`. With `SWITCHYARD_KEEP_FAILED=DIR`, an output ffmpeg
//! cannot decode is copied to DIR for a look.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, TempDir, TestRouter, probe_file, require, wait_until};
use switchyard::app::metrics::SwitchRecord;
use switchyard::config::InputRole;
use switchyard::failover::SwitchReason;
use switchyard::ingest::srt::Role;

const INPUT_TIMEOUT: Duration = Duration::from_millis(500);
const REVERT_AFTER: Duration = Duration::from_secs(2);
/// The encoders' GOP: 25 frames at 25 fps.
const GOP: Duration = Duration::from_secs(1);
const STREAM: &str = "live/ha";

/// A live encoder: test pattern and tone, x264 with an IDR every 25
/// frames, AAC, MPEG-TS to `url`.
fn live_encoder(url: &str) -> Command {
    let mut command = Command::new("ffmpeg");
    command
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args([
            "-g",
            "25",
            "-keyint_min",
            "25",
            "-sc_threshold",
            "0",
            "-bf",
            "0",
        ])
        .args(["-c:a", "aac", "-f", "mpegts"])
        .arg(url)
        .stdout(Stdio::null());
    command
}

fn config(dir: &TempDir, extra: &str) -> String {
    format!(
        r#"
[srt]
accept_any_stream = false
latency_ms = 80

[defaults]
profile = "passthrough"   # the input switch is what is tested

[[stream]]
id = "{STREAM}"
input_timeout_ms = {timeout}
revert_after_ms = {revert}
{extra}
  [[stream.output]]
  kind = "file"
  path = "{out}"
"#,
        timeout = INPUT_TIMEOUT.as_millis(),
        revert = REVERT_AFTER.as_millis(),
        out = dir.path("out.ts").display(),
    )
}

fn srt_url(router: &TestRouter, streamid: &str) -> String {
    format!("srt://{}?streamid={streamid}&pkt_size=1316", router.srt)
}

/// Waits for a switch event matching `wanted`, at most `timeout`.
fn wait_for_switch(
    router: &TestRouter,
    timeout: Duration,
    wanted: impl Fn(&SwitchRecord) -> bool,
) -> Option<SwitchRecord> {
    let mut found = None;
    wait_until(timeout, || {
        found = router.switch_events(STREAM).into_iter().find(&wanted);
        found.is_some()
    });
    found
}

/// The SRT main publisher's connection is listed.
fn srt_main_connected(router: &TestRouter) -> bool {
    router
        .srt_connections()
        .iter()
        .any(|(_, s)| s.stream.as_str() == STREAM && matches!(s.role, Role::Main | Role::Takeover))
}

/// How the backup publishes, and how a main comes back.
struct Case {
    name: &'static str,
    /// Stream settings and inputs, TOML.
    stream_toml: &'static str,
    /// Starts the backup publisher.
    backup: fn(&TestRouter) -> Proc,
    /// The restarted main connects while the killed one is still listed
    /// (takeover); otherwise it waits for the router to drop the dead one
    /// (peer idle timeout).
    takeover: bool,
}

fn run(case: &Case) {
    let name = case.name;
    let dir = TempDir::new(name);
    let router = TestRouter::start(&config(&dir, case.stream_toml));
    let main_url = srt_url(&router, STREAM);
    let main = Proc::spawn("main publisher", &mut live_encoder(&main_url));
    assert!(
        wait_until(Duration::from_secs(10), || router
            .stream_metrics(STREAM)
            .is_some_and(|m| m.main_bytes > 0)),
        "{name}: the main publisher is relayed"
    );
    // A second apart: the two encoders' clocks are unrelated.
    std::thread::sleep(GOP);
    let _backup = (case.backup)(&router);
    assert!(
        wait_until(Duration::from_secs(10), || router
            .stream_metrics(STREAM)
            .is_some_and(|m| m.backup_bytes > 0)),
        "{name}: the backup publisher is received"
    );
    std::thread::sleep(Duration::from_millis(2500));
    let start = router.switch_events(STREAM);
    assert!(
        matches!(
            start.as_slice(),
            [SwitchRecord {
                from: None,
                to: InputRole::Main,
                ..
            }]
        ),
        "{name}: the output starts from the main and stays there: {start:?}"
    );

    // The main dies.
    main.signal("KILL");
    let killed = Instant::now();
    let failover = wait_for_switch(&router, Duration::from_secs(5), |e| {
        e.from == Some(InputRole::Main) && e.to == InputRole::Backup
    })
    .unwrap_or_else(|| {
        panic!(
            "{name}: no switch to the backup: {:?}",
            router.switch_events(STREAM)
        )
    });
    let detected = failover.at.saturating_duration_since(killed);
    eprintln!(
        "{name}: failover {:?}: gap {:?} (splicer), {:?} from the kill to the switch, rebased {}",
        failover.reason, failover.gap, detected, failover.rebased
    );
    assert_eq!(failover.reason, SwitchReason::MainTimeout, "{name}");
    assert!(failover.rebased, "{name}: unrelated clocks are rebased");
    assert!(
        failover.gap <= INPUT_TIMEOUT + GOP,
        "{name}: gap {:?} > input_timeout + one GOP",
        failover.gap
    );
    drop(main);

    // A main comes back.
    std::thread::sleep(Duration::from_secs(1));
    if !case.takeover {
        let dropped = wait_until(Duration::from_secs(8), || !srt_main_connected(&router));
        assert!(dropped, "{name}: the killed main was never dropped");
        eprintln!(
            "{name}: the killed main was dropped {:?} after the kill",
            killed.elapsed()
        );
    }
    let _main_again = Proc::spawn("main publisher again", &mut live_encoder(&main_url));
    let restarted = Instant::now();
    let revert = wait_for_switch(&router, REVERT_AFTER + Duration::from_secs(6), |e| {
        e.to == InputRole::Main && e.from == Some(InputRole::Backup)
    })
    .unwrap_or_else(|| panic!("{name}: no revert: {:?}", router.switch_events(STREAM)));
    let after = revert.at.saturating_duration_since(restarted);
    eprintln!(
        "{name}: revert {:?}: gap {:?}, {:?} after the main restarted, rebased {}",
        revert.reason, revert.gap, after, revert.rebased
    );
    assert_eq!(revert.reason, SwitchReason::Revert, "{name}");
    assert!(
        after >= REVERT_AFTER,
        "{name}: reverted after {after:?}, before revert_after"
    );
    assert!(revert.gap <= GOP, "{name}: revert gap {:?}", revert.gap);

    // Some of the main again, then the recording is closed.
    std::thread::sleep(Duration::from_secs(2));
    let events = router.switch_events(STREAM);
    let metrics = router.stream_metrics(STREAM).expect("the stream runs");
    assert_eq!(
        metrics.switches, 3,
        "{name}: start, failover, revert: {events:?}"
    );
    assert_eq!(router.srt_panics(), 0, "{name}");
    assert!(router.stop(), "{name}: shutdown within 5 s");

    let out = dir.path("out.ts");
    let report = probe_file(&out);
    eprintln!("{name}: output: {report}");
    assert_eq!(report.cc_errors, 0, "{name}: CC errors: {report}");
    let video = report.video.as_ref().expect("video");
    assert_eq!(video.frames_before_first_idr, 0, "{name}: starts at an IDR");
    assert_eq!(video.pts_backwards, 0, "{name}: {report}");
    assert_eq!(video.dts_backwards, 0, "{name}: {report}");
    assert_eq!(video.duplicate_pts, 0, "{name}: {report}");
    assert!(
        video.gop_frames.iter().all(|&g| g <= 25),
        "{name}: GOPs {:?}",
        video.gop_frames
    );
    assert!(!report.audio.is_empty(), "{name}: audio kept");
    for audio in &report.audio {
        assert_eq!(
            audio.pts_backwards + audio.duplicate_pts,
            0,
            "{name}: {report}"
        );
    }
    let decode = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-xerror", "-i"])
        .arg(&out)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let errors = String::from_utf8_lossy(&decode.stderr);
    if !errors.trim().is_empty()
        && let Some(keep) = std::env::var_os("SWITCHYARD_KEEP_FAILED")
    {
        let _ = std::fs::copy(
            &out,
            std::path::Path::new(&keep).join(format!("{}.ts", name.replace('+', "-"))),
        );
    }
    assert!(
        decode.status.success() && errors.trim().is_empty(),
        "{name}: ffmpeg cannot decode the output: {errors}"
    );
}

/// Main and backup are both SRT publishers to the same stream id; the
/// backup declares itself (`switchyard_role=backup`), and with
/// `second_publisher = "takeover"` the restarted main replaces the dead
/// connection at once.
#[test]
fn srt_main_srt_backup() {
    if !require("ffmpeg") {
        return;
    }
    run(&Case {
        name: "srt+srt",
        stream_toml: "second_publisher = \"takeover\"",
        backup: |router| {
            let url = srt_url(
                router,
                &format!(
                    "%23%21%3A%3Ar%3D{}%2Cswitchyard_role%3Dbackup",
                    STREAM.replace('/', "%2F")
                ),
            );
            Proc::spawn("backup publisher", &mut live_encoder(&url))
        },
        takeover: true,
    });
}

/// SRT main, configured UDP backup; the restarted main connects once the
/// router dropped the killed one.
#[test]
fn srt_main_udp_backup() {
    if !require("ffmpeg") {
        return;
    }
    run(&Case {
        name: "srt+udp",
        stream_toml: "  [[stream.input]]\n  kind = \"udp\"\n  role = \"backup\"\n  listen = \"127.0.0.1:5002\"",
        backup: |router| {
            let url = format!("udp://{}?pkt_size=1316", router.input(STREAM, 0));
            Proc::spawn("backup publisher", &mut live_encoder(&url))
        },
        takeover: false,
    });
}
