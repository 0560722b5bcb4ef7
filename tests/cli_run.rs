//! The `switchyard run` command line: the printed default configuration,
//! start-up errors, and graceful shutdown of the real binary on SIGTERM
//! and SIGINT (outputs flushed and closed, exit status 0).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    Proc, TempDir, assert_relayed_within, ffmpeg_send, free_udp_port, probe_file, require,
    wait_until,
};

fn switchyard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
}

#[test]
fn print_default_config_prints_the_embedded_default() {
    let out = switchyard()
        .args(["run", "--print-default-config"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert_eq!(text, switchyard::config::Config::default_toml());
    let config = switchyard::config::parse(&text, "default").expect("valid");
    assert_eq!(config.srt.listen.to_string(), "0.0.0.0:9000");
    assert!(config.srt.accept_any_stream);
    assert_eq!(config.api.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.defaults.profile, "h264");
}

#[test]
fn a_missing_ffmpeg_is_a_start_up_error_that_says_what_to_do() {
    let dir = TempDir::new("noffmpeg");
    let path = dir.path("config.toml");
    std::fs::write(
        &path,
        format!(
            "[srt]\nlisten = \"127.0.0.1:{}\"\n[encoder]\nffmpeg = \"/nonexistent/ffmpeg\"\n",
            free_udp_port()
        ),
    )
    .expect("write");
    let out = switchyard()
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("install ffmpeg"), "{stderr}");
    assert!(stderr.contains("/nonexistent/ffmpeg"), "{stderr}");
}

#[test]
fn a_bad_config_names_the_key_and_does_not_start() {
    let dir = TempDir::new("badconfig");
    let path = dir.path("config.toml");
    std::fs::write(&path, "[srt]\nlatency_ms = 70000\n").expect("write");
    let out = switchyard()
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("srt.latency_ms"), "{stderr}");
}

/// The router binary records a UDP input to a file; a signal stops it
/// with status 0 and the recording is whole (flushed and closed).
fn graceful_stop(signal: &str) {
    if !require("ffmpeg") {
        return;
    }
    let dir = TempDir::new("graceful");
    let input = free_udp_port();
    let out = dir.path("recording.ts");
    let path = dir.path("config.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[srt]
listen = "127.0.0.1:{srt}"
[defaults]
profile = "passthrough"
[[stream]]
id = "rec"
  [[stream.input]]
  kind = "udp"
  listen = "127.0.0.1:{input}"
  [[stream.output]]
  kind = "file"
  path = "{out}"
"#,
            srt = free_udp_port(),
            out = out.display()
        ),
    )
    .expect("write");
    let log = std::fs::File::create(dir.path("router.log")).expect("log");
    let mut router = Proc::spawn(
        "switchyard run",
        switchyard()
            .args(["run", "--config"])
            .arg(&path)
            .stderr(log)
            .stdout(Stdio::null()),
    );
    let log_text = || std::fs::read_to_string(dir.path("router.log")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || log_text()
            .contains("switchyard running")),
        "the router did not start: {}",
        log_text()
    );
    let url = format!("udp://127.0.0.1:{input}?pkt_size=1316");
    let mut publisher = Proc::spawn("ffmpeg", &mut ffmpeg_send("mpegts", &url));
    assert!(
        publisher
            .wait_timeout(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );
    std::thread::sleep(Duration::from_millis(300));
    router.signal(signal);
    let status = router.wait_timeout(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "{signal}: {status:?}\n{}",
        log_text()
    );
    let text = log_text();
    assert!(
        text.contains(&format!("SIG{signal}: shutting down")),
        "{text}"
    );
    assert!(text.contains("stopped"), "{text}");
    assert_relayed_within(signal, &probe_file(&out), true, 0);
}

#[test]
fn sigterm_stops_gracefully_and_the_recording_is_whole() {
    graceful_stop("TERM");
}

#[test]
fn sigint_stops_gracefully_and_the_recording_is_whole() {
    graceful_stop("INT");
}
