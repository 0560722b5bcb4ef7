//! `switchyard run` end to end over loopback with real clients (issue 3,
//! point 7): publishers (ffmpeg over SRT in both streamid forms, with and
//! without passphrase; srt-live-transmit; GStreamer's srtsink; ffmpeg
//! `rtp_mpegts`; ffmpeg `udp://`), players pulling with `m=request`
//! (ffmpeg, srt-live-transmit), and every output kind. Each output is
//! judged by `switchyard probe`'s analyser: the frames and IDRs that were
//! sent, 0 CC errors, monotonic timestamps.

mod common;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Proc, TempDir, TestRouter, assert_relayed_within, capture_path, ffmpeg_send, free_udp_port,
    probe_bytes, probe_file, require,
};

const SECRET: &str = "correct-horse-battery";

fn config(dir: &TempDir) -> String {
    let file = |name: &str| dir.path(name).display().to_string();
    format!(
        r#"
[srt]
accept_any_stream = false
latency_ms = 80

[defaults]
profile = "passthrough"                # relayed as sent: compared byte for byte

[[stream]]
id = "live/cam1"
  [[stream.output]]
  kind = "file"
  path = "{cam1}"

[[stream]]
id = "live/secret"
passphrase = "{SECRET}"
  [[stream.output]]
  kind = "file"
  path = "{secret}"

[[stream]]
id = "rtp/in"
  [[stream.input]]
  kind = "rtp"
  listen = "127.0.0.1:5004"
  [[stream.output]]
  kind = "file"
  path = "{rtp}"

[[stream]]
id = "udp/in"
  [[stream.input]]
  kind = "udp"
  listen = "127.0.0.1:5002"
  [[stream.output]]
  kind = "file"
  path = "{udp}"
"#,
        cam1 = file("cam1.ts"),
        secret = file("secret.ts"),
        rtp = file("rtp.ts"),
        udp = file("udp.ts"),
    )
}

/// How long after a publisher ends the router is stopped: the SRT latency
/// plus the time for the last packets to reach the file.
const SETTLE: Duration = Duration::from_millis(1500);

/// Runs a publisher to completion against a fresh router, stops the router
/// (which flushes and closes the file outputs) and checks the recording.
fn relay(
    case: &str,
    file: &str,
    tail_loss: u64,
    publisher: impl FnOnce(&TestRouter, &TempDir) -> Vec<Proc>,
) {
    let dir = TempDir::new(case);
    let router = TestRouter::start(&config(&dir));
    let mut procs = publisher(&router, &dir);
    let status = procs[0]
        .wait_timeout(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{case}: the publisher did not finish in 30 s"));
    assert!(status.success(), "{case}: publisher failed: {status}");
    std::thread::sleep(SETTLE);
    for proc in &procs[1..] {
        proc.signal("INT");
    }
    assert_eq!(router.srt_panics(), 0, "{case}");
    assert!(router.stop(), "{case}: shutdown within 5 s");
    drop(procs);
    assert_relayed_within(case, &probe_file(&dir.path(file)), true, tail_loss);
}

/// Frames an SRT publisher may lose as it closes (see
/// [`assert_relayed_within`]); UDP and RTP publishers lose none.
const SRT_TAIL_LOSS: u64 = 3;

fn srt_url(router: &TestRouter, query: &str) -> String {
    format!("srt://{}?{query}", router.srt)
}

/// `#!::r=ID,m=MODE` percent-encoded, as a URL query value.
fn access_control(id: &str, mode: &str) -> String {
    format!("%23%21%3A%3Ar%3D{}%2Cm%3D{mode}", id.replace('/', "%2F"))
}

#[test]
fn ffmpeg_srt_plain_streamid() {
    if !require("ffmpeg") {
        return;
    }
    relay("ffmpeg-plain", "cam1.ts", SRT_TAIL_LOSS, |router, _| {
        let url = srt_url(router, "streamid=live/cam1&pkt_size=1316");
        vec![Proc::spawn("ffmpeg", &mut ffmpeg_send("mpegts", &url))]
    });
}

#[test]
fn ffmpeg_srt_access_control_streamid_with_passphrase() {
    if !require("ffmpeg") {
        return;
    }
    relay(
        "ffmpeg-ac-aes256",
        "secret.ts",
        SRT_TAIL_LOSS,
        |router, _| {
            let query = format!(
                "streamid={}&passphrase={SECRET}&pbkeylen=32&pkt_size=1316",
                access_control("live/secret", "publish")
            );
            let url = srt_url(router, &query);
            vec![Proc::spawn("ffmpeg", &mut ffmpeg_send("mpegts", &url))]
        },
    );
}

#[test]
fn srt_live_transmit_publisher() {
    if !require("ffmpeg") || !require("srt-live-transmit") {
        return;
    }
    relay(
        "srt-live-transmit",
        "cam1.ts",
        SRT_TAIL_LOSS,
        |router, _| {
            // ffmpeg paces the capture into srt-live-transmit over UDP.
            let port = free_udp_port();
            let relay = Proc::spawn(
                "srt-live-transmit",
                Command::new("srt-live-transmit")
                    .arg("-q")
                    .arg(format!("udp://127.0.0.1:{port}"))
                    .arg(srt_url(router, "streamid=live/cam1"))
                    .stdout(Stdio::null()),
            );
            std::thread::sleep(Duration::from_millis(300));
            let url = format!("udp://127.0.0.1:{port}?pkt_size=1316");
            let ffmpeg = Proc::spawn("ffmpeg", &mut ffmpeg_send("mpegts", &url));
            vec![ffmpeg, relay]
        },
    );
}

#[test]
fn gstreamer_srtsink_publisher() {
    if !require("gst-launch-1.0") {
        return;
    }
    relay("gstreamer", "cam1.ts", SRT_TAIL_LOSS, |router, _| {
        vec![Proc::spawn(
            "gst-launch-1.0",
            Command::new("gst-launch-1.0")
                .arg("-q")
                .arg("filesrc")
                .arg(format!("location={}", capture_path().display()))
                .args(["!", "tsparse", "set-timestamps=true", "!", "srtsink"])
                .arg(format!("uri={}", srt_url(router, "streamid=live/cam1")))
                .args(["sync=true", "wait-for-connection=true"])
                .stdout(Stdio::null()),
        )]
    });
}

#[test]
fn ffmpeg_rtp_publisher() {
    if !require("ffmpeg") {
        return;
    }
    relay("ffmpeg-rtp", "rtp.ts", 0, |router, _| {
        let url = format!("rtp://{}", router.input("rtp/in", 0));
        vec![Proc::spawn("ffmpeg", &mut ffmpeg_send("rtp_mpegts", &url))]
    });
}

#[test]
fn ffmpeg_udp_publisher() {
    if !require("ffmpeg") {
        return;
    }
    relay("ffmpeg-udp", "udp.ts", 0, |router, _| {
        let url = format!("udp://{}?pkt_size=1316", router.input("udp/in", 0));
        vec![Proc::spawn("ffmpeg", &mut ffmpeg_send("mpegts", &url))]
    });
}

/// A multicast UDP input (group joined on the loopback interface) with
/// ffmpeg sending to the group.
#[test]
fn ffmpeg_udp_multicast_publisher() {
    if !require("ffmpeg") {
        return;
    }
    let dir = TempDir::new("multicast");
    let port = free_udp_port();
    let group = "239.255.77.1";
    let toml = format!(
        r#"
[defaults]
profile = "passthrough"

[[stream]]
id = "mcast/in"
  [[stream.input]]
  kind = "udp"
  listen = "0.0.0.0:{port}"
  multicast_group = "{group}"
  multicast_interface = "127.0.0.1"
  [[stream.output]]
  kind = "file"
  path = "{out}"
"#,
        out = dir.path("mcast.ts").display()
    );
    let router = TestRouter::start(&toml);
    // ffmpeg sends multicast out of the loopback interface, with loopback
    // delivery on (its defaults).
    let url = format!("udp://{group}:{port}?pkt_size=1316&localaddr=127.0.0.1&ttl=1");
    let mut publisher = Proc::spawn("ffmpeg", &mut ffmpeg_send("mpegts", &url));
    assert!(
        publisher
            .wait_timeout(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );
    std::thread::sleep(SETTLE);
    if router.received("mcast/in") == 0 {
        // Some sandboxes have no multicast route on loopback: nothing to
        // judge the router by.
        assert!(
            std::env::var_os("SWITCHYARD_REQUIRE_MULTICAST").is_none(),
            "no multicast datagram arrived"
        );
        eprintln!("skipped: this kernel delivered no multicast on loopback");
        return;
    }
    assert!(router.stop());
    assert_relayed_within("multicast", &probe_file(&dir.path("mcast.ts")), true, 0);
}

/// Players pull `live/cam1` with `m=request` while ffmpeg publishes it:
/// ffmpeg (remuxing to a file) and srt-live-transmit (the bytes as sent).
#[test]
fn players_pull_with_m_request() {
    if !require("ffmpeg") || !require("srt-live-transmit") {
        return;
    }
    let dir = TempDir::new("players");
    let router = TestRouter::start(&config(&dir));
    let url = srt_url(&router, "streamid=live/cam1&pkt_size=1316");
    let mut publisher = Proc::spawn("ffmpeg", &mut ffmpeg_send("mpegts", &url));
    assert!(router.wait_for_data("live/cam1", Duration::from_secs(10)));
    let pull = srt_url(
        &router,
        &format!("streamid={}", access_control("live/cam1", "request")),
    );
    let ffmpeg_out = dir.path("ffmpeg-player.ts");
    let mut ffmpeg_player = Proc::spawn(
        "ffmpeg player",
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
            // ffmpeg probes 5 s of stream by default, more than is sent.
            .args(["-analyzeduration", "2000000", "-i"])
            .arg(&pull)
            // It stops by itself: a player does not learn that the publisher
            // left, and a killed ffmpeg loses its unflushed output.
            .args(["-t", "3", "-c", "copy", "-f", "mpegts", "-y"])
            .arg(&ffmpeg_out),
    );
    let slt_out = dir.path("slt-player.ts");
    let slt_player = Proc::spawn(
        "srt-live-transmit player",
        Command::new("srt-live-transmit")
            .arg("-q")
            .arg(srt_url(&router, "streamid=#!::r=live/cam1,m=request"))
            .arg("file://con")
            .stdout(std::fs::File::create(&slt_out).expect("create the output")),
    );
    assert!(
        publisher
            .wait_timeout(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );
    std::thread::sleep(SETTLE);
    slt_player.signal("INT");
    let ffmpeg_status = ffmpeg_player.wait_timeout(Duration::from_secs(10));
    assert!(
        ffmpeg_status.is_some_and(|s| s.success()),
        "ffmpeg player: {ffmpeg_status:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    drop((ffmpeg_player, slt_player));
    assert!(router.stop());
    // ffmpeg remuxed 3 s of it: from an IDR, clean, at least 2 GOPs.
    let report = probe_file(&ffmpeg_out);
    assert_eq!(report.cc_errors, 0, "ffmpeg player: {report}");
    let video = report.video.as_ref().expect("ffmpeg player: video");
    assert_eq!(video.frames_before_first_idr, 0, "ffmpeg player: {report}");
    assert_eq!(
        video.pts_backwards + video.duplicate_pts,
        0,
        "ffmpeg player: {report}"
    );
    assert!(
        video.frames >= 70 && video.idr_pts.len() >= 2,
        "ffmpeg player: {report}"
    );
    assert_relayed_within(
        "srt-live-transmit player",
        &probe_file(&slt_out),
        false,
        SRT_TAIL_LOSS,
    );
}

/// One stream, every output kind at once, plus an SRT output whose
/// receiver does not exist: the three working outputs get the whole
/// stream regardless.
#[test]
fn every_output_kind() {
    if !require("ffmpeg") || !require("srt-live-transmit") {
        return;
    }
    let dir = TempDir::new("outputs");
    let udp_receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
    udp_receiver
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let udp_addr = udp_receiver.local_addr().expect("address");
    let srt_port = free_udp_port();
    let dead_port = free_udp_port();
    let srt_out = dir.path("srt-out.ts");
    let mut srt_receiver = Proc::spawn(
        "srt-live-transmit listener",
        Command::new("srt-live-transmit")
            .arg("-q")
            // Exit (flushing its output) when the connection closes.
            .arg("-a:no")
            .arg(format!(
                "srt://127.0.0.1:{srt_port}?mode=listener&passphrase=another-secret-1&pbkeylen=24"
            ))
            .arg("file://con")
            .stdout(std::fs::File::create(&srt_out).expect("create the output")),
    );
    let toml = format!(
        r#"
[defaults]
profile = "passthrough"

[[stream]]
id = "live/all"
  [[stream.output]]
  kind = "file"
  path = "{file}"
  [[stream.output]]
  kind = "udp"
  address = "{udp_addr}"
  [[stream.output]]
  kind = "srt"
  url = "srt://127.0.0.1:{srt_port}?streamid=out/all&passphrase=another-secret-1&pbkeylen=24"
  [[stream.output]]
  kind = "srt"
  url = "srt://127.0.0.1:{dead_port}?streamid=nobody"
  reconnect_min_ms = 50
  reconnect_max_ms = 200
"#,
        file = dir.path("file-out.ts").display()
    );
    let router = TestRouter::start(&toml);
    let udp_thread = std::thread::spawn(move || {
        let mut data = Vec::new();
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(40);
        let mut last: Option<Instant> = None;
        loop {
            match udp_receiver.recv(&mut buf) {
                Ok(n) => {
                    data.extend_from_slice(&buf[..n]);
                    last = Some(Instant::now());
                }
                Err(_) => {
                    let quiet = last.is_some_and(|l| l.elapsed() > Duration::from_secs(1));
                    if quiet || Instant::now() > deadline {
                        break;
                    }
                }
            }
        }
        data
    });
    std::thread::sleep(Duration::from_millis(500));
    let url = srt_url(&router, "streamid=live/all&pkt_size=1316");
    let mut publisher = Proc::spawn("ffmpeg", &mut ffmpeg_send("mpegts", &url));
    assert!(
        publisher
            .wait_timeout(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );
    std::thread::sleep(SETTLE);
    assert!(router.stop());
    let udp_data = udp_thread.join().expect("receiver thread");
    let receiver_exit = srt_receiver.wait_timeout(Duration::from_secs(5));
    assert!(
        receiver_exit.is_some(),
        "the SRT output never closed its session"
    );
    drop(srt_receiver);
    let file_data = std::fs::read(dir.path("file-out.ts")).expect("the recording");
    assert_relayed_within("file output", &probe_bytes(&file_data), true, SRT_TAIL_LOSS);
    // Every output starts at the same splice point with the same
    // continuity counters: the same bytes.
    assert!(
        udp_data == file_data,
        "udp output differs from the file output"
    );
    let srt_data = std::fs::read(&srt_out).expect("the SRT receiver's output");
    assert!(
        srt_data == file_data,
        "srt output differs from the file output: {} vs {} bytes, prefix {}, suffix {}",
        srt_data.len(),
        file_data.len(),
        file_data.starts_with(&srt_data),
        file_data.ends_with(&srt_data)
    );
}
