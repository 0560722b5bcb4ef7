//! Real libsrt callers (ffmpeg 5.1, srt-live-transmit) against the sans-IO
//! SRT endpoint over loopback, driven by a minimal blocking std-socket loop
//! (the tokio shell comes later). Each case checks what the caller got
//! (connected or rejected with the right code) and, for publishers, that the
//! stream arrived whole: `switchyard probe`'s analyser on the received
//! bytes finds the frames and IDRs that were sent and no CC errors.
//!
//! Needs ffmpeg with libsrt (DESIGN.md: Debian 12's ffmpeg 5.1 has it) and
//! srt-live-transmit (package `srt-tools`); a missing tool skips its cases
//! with a message.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard::config;
use switchyard::ingest::srt::{ConnId, Endpoint, EndpointSettings, Event, Role};
use switchyard::probe::Prober;

const SECRET: &str = "0123456789abcdef";

const CONFIG: &str = r#"
[srt]
accept_any_stream = false

[[stream]]
id = "live/cam1"

[[stream]]
id = "live/cam2"

[[stream]]
id = "live/secret"
passphrase = "0123456789abcdef"
"#;

/// What the listener saw of one caller.
#[derive(Debug, Default)]
struct Outcome {
    connected: Option<(Role, Option<u8>)>,
    rejected: Vec<u16>,
    data: Vec<u8>,
    panics: u64,
}

/// Runs an endpoint on a loopback socket until `caller` exits (plus a
/// grace period for the TSBPD delay), and returns what it saw.
fn serve(caller: impl FnOnce(SocketAddr) -> std::io::Result<Child>) -> Option<(Outcome, bool)> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
    let local = socket.local_addr().expect("local address");
    let config = Arc::new(config::parse(CONFIG, "test.toml").expect("valid config"));
    let start = Instant::now();
    let settings = EndpointSettings::from_config(&config);
    let mut endpoint = Endpoint::new(start, config, settings, *b"switchyard-tests");
    let mut child = match caller(local) {
        Ok(child) => child,
        Err(e) => {
            eprintln!("skipped: cannot start the caller: {e}");
            return None;
        }
    };
    let mut outcome = Outcome::default();
    let mut roles: HashMap<ConnId, Role> = HashMap::new();
    let mut exited_at = None;
    let mut success = false;
    let mut buf = vec![0u8; 2048];
    let deadline = start + Duration::from_secs(30);
    loop {
        let now = Instant::now();
        if now > deadline {
            let _ = child.kill();
            panic!("the caller did not finish in 30 s");
        }
        if exited_at.is_none()
            && let Ok(Some(status)) = child.try_wait()
        {
            exited_at = Some(now);
            success = status.success();
        }
        if exited_at.is_some_and(|t| now > t + Duration::from_millis(600)) {
            break;
        }
        let wait = endpoint
            .poll_timeout()
            .map_or(Duration::from_millis(20), |t| {
                t.saturating_duration_since(now)
            })
            .clamp(Duration::from_micros(100), Duration::from_millis(20));
        socket.set_read_timeout(Some(wait)).expect("timeout");
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            let datagram = Bytes::copy_from_slice(&buf[..n]);
            endpoint.handle_datagram(Instant::now(), from, datagram);
        }
        endpoint.handle_timeout(Instant::now());
        while let Some((to, datagram)) = endpoint.poll_transmit() {
            let _ = socket.send_to(&datagram, to);
        }
        while let Some(event) = endpoint.poll_event() {
            match event {
                Event::Connected {
                    conn,
                    role,
                    key_len,
                    ..
                } => {
                    roles.insert(conn, role);
                    outcome.connected = Some((role, key_len));
                }
                Event::Rejected { rejection, .. } => outcome.rejected.push(rejection.code.code()),
                Event::Data { conn, data } if roles.get(&conn) != Some(&Role::Player) => {
                    outcome.data.extend_from_slice(&data);
                }
                _ => {}
            }
        }
    }
    outcome.panics = endpoint.counters().panics;
    Some((outcome, success))
}

fn ffmpeg_publisher(url_query: &str) -> impl FnOnce(SocketAddr) -> std::io::Result<Child> {
    let query = url_query.to_string();
    move |listener| {
        Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-nostdin",
                "-re",
                "-f",
                "lavfi",
                "-i",
            ])
            .arg("testsrc2=size=160x90:rate=25:duration=2")
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "25",
                "-bf",
                "0",
            ])
            .args(["-f", "mpegts"])
            .arg(format!("srt://{listener}?{query}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    }
}

/// The received stream as the analyser sees it: (frames, IDRs, CC errors).
fn analyse(data: &[u8]) -> (u64, usize, u64) {
    let mut prober = Prober::new();
    prober.push(data);
    let report = prober.finish().expect("a stream");
    let video = report.video.expect("a video stream");
    (video.frames, video.idr_pts.len(), report.cc_errors)
}

fn assert_published(case: &str, query: &str, key_len: Option<u8>) {
    let Some((outcome, success)) = serve(ffmpeg_publisher(query)) else {
        return;
    };
    assert!(success, "{case}: ffmpeg failed; listener saw {outcome:?}");
    assert_eq!(outcome.connected, Some((Role::Main, key_len)), "{case}");
    assert_eq!(outcome.panics, 0, "{case}");
    let (frames, idrs, cc_errors) = analyse(&outcome.data);
    // 50 frames sent; the last few may be lost when the caller closes
    // (libsrt listeners lose them too: docs/srt-ingest-notes.md §4a).
    assert!(frames >= 44, "{case}: {frames} frames");
    assert!(idrs >= 2, "{case}: {idrs} IDRs");
    assert_eq!(cc_errors, 0, "{case}");
}

#[test]
fn ffmpeg_plain_streamid() {
    assert_published("plain", "streamid=live/cam1", None);
}

#[test]
fn ffmpeg_access_control_streamid_percent_encoded() {
    // ffmpeg percent-encodes the streamid of the URL on the wire.
    assert_published(
        "access control",
        "streamid=%23%21%3A%3Ar%3Dlive%2Fcam2%2Cm%3Dpublish",
        None,
    );
}

#[test]
fn ffmpeg_encrypted_key_lengths() {
    assert_published(
        "AES-128",
        &format!("streamid=live/secret&passphrase={SECRET}&pbkeylen=16"),
        Some(16),
    );
    assert_published(
        "AES-256",
        &format!("streamid=live/secret&passphrase={SECRET}&pbkeylen=32"),
        Some(32),
    );
    // No pbkeylen: the CIF says 0, the key material 16.
    assert_published(
        "pbkeylen unset",
        &format!("streamid=live/secret&passphrase={SECRET}"),
        Some(16),
    );
}

fn assert_rejected(case: &str, query: &str, code: u16) {
    let Some((outcome, success)) = serve(ffmpeg_publisher(query)) else {
        return;
    };
    assert!(!success, "{case}: ffmpeg should fail");
    assert_eq!(outcome.connected, None, "{case}");
    assert!(outcome.rejected.contains(&code), "{case}: {outcome:?}");
    assert_eq!(outcome.panics, 0, "{case}");
}

#[test]
fn ffmpeg_rejections() {
    assert_rejected(
        "wrong passphrase",
        "streamid=live/secret&passphrase=not-the-secret&pbkeylen=16",
        1010,
    );
    assert_rejected("no passphrase", "streamid=live/secret", 1011);
    assert_rejected(
        "passphrase to an open stream",
        &format!("streamid=live/cam1&passphrase={SECRET}"),
        1011,
    );
    assert_rejected("unknown stream", "streamid=live/nope", 404);
}

#[test]
fn srt_live_transmit_aes256() {
    let caller = |listener: SocketAddr| {
        // srt-live-transmit relays real-time TS from its standard input.
        let source = "ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi \
            -i testsrc2=size=160x90:rate=25:duration=2 \
            -c:v libx264 -preset ultrafast -g 25 -bf 0 -f mpegts -";
        let url = format!(
            "srt://{listener}?streamid=#!::r=live/secret,m=publish&passphrase={SECRET}&pbkeylen=32"
        );
        // srt-live-transmit does not exit at the end of its input: `timeout`
        // ends it.
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{source} | timeout 5 srt-live-transmit -a:no -q file://con '{url}'"
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    };
    if Command::new("srt-live-transmit")
        .arg("-version")
        .output()
        .is_err()
    {
        eprintln!("skipped: srt-live-transmit is not installed (package srt-tools)");
        return;
    }
    let Some((outcome, _)) = serve(caller) else {
        return;
    };
    assert_eq!(outcome.connected, Some((Role::Main, Some(32))));
    assert_eq!(outcome.panics, 0);
    let (frames, _, cc_errors) = analyse(&outcome.data);
    assert!(frames >= 44, "{frames} frames");
    assert_eq!(cc_errors, 0);
}
