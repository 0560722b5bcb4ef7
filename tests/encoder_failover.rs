//! Encoder failover end to end (issue 4, point 8): a live publisher
//! (ffmpeg lavfi, x264 ultrafast, an IDR every 25 frames, no B-frames)
//! over UDP into an in-process router, whose stream runs through real
//! ffmpeg encoders (320x180 ultrafast, one thread) or the fault-injecting
//! fake encoder, into a file output. Faults are injected from outside, the
//! way they happen in production: `kill -9`, `SIGSTOP`, a `SIGSTOP`/
//! `SIGCONT` duty cycle, and the fake encoder's garbage, slowness and
//! crashes.
//!
//! Each case measures, from the router's own tracing events (captured
//! in-process by a subscriber layer) and from the recordings:
//!
//! - detection: from the fault to the encoder's health event (the encoder
//!   shell's, which the stream task's follows through a mailbox);
//! - frames lost and duplicated: the output's video PTS against the
//!   input's (the publisher records what it sends, `-f tee`), over the
//!   output's span;
//! - validity: `switchyard probe`'s analyser (0 CC errors, 0 PTS going
//!   backwards, 0 duplicated PTS) and `ffmpeg -xerror` decoding the output.
//!
//! Targets: death ≤ 50 ms; stall ≤ stall_timeout + 100 ms; hitless: 0 lost
//! and 0 duplicated over 20 random kills; low-latency: the output's gap ≤
//! detection + one GOP.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use common::{Proc, TempDir, TestRouter, probe_file, require, wait_until};

const FAKE: &str = env!("CARGO_BIN_EXE_fake-encoder");

/// The publisher's GOP: 25 frames at 25 fps.
const GOP: Duration = Duration::from_secs(1);
/// One frame in 90 kHz ticks.
const FRAME_TICKS: u64 = 3600;
const STALL_TIMEOUT_MS: u64 = 500;

// ---------------------------------------------------------------------------
// The router's tracing events, captured in-process.

#[derive(Debug, Clone)]
struct Captured {
    at: Instant,
    target: String,
    message: String,
    fields: BTreeMap<String, String>,
}

impl Captured {
    fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }

    fn number(&self, name: &str) -> f64 {
        self.field(name).parse().unwrap_or(f64::NAN)
    }

    fn encoder(&self) -> u64 {
        self.field("encoder").parse().unwrap_or(0)
    }
}

static EVENTS: Mutex<Vec<Captured>> = Mutex::new(Vec::new());

#[derive(Default)]
struct Fields {
    message: String,
    fields: BTreeMap<String, String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.fields.insert(field.name().to_string(), text);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields
                .insert(field.name().to_string(), value.to_string());
        }
    }
}

struct Capture;

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let at = Instant::now();
        let meta = event.metadata();
        if !meta.target().starts_with("switchyard") || *meta.level() > tracing::Level::INFO {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        // The encoder shell (`switchyard::encoder::process`) labels its
        // events `STREAM#ID`; it sees a death or a stall first, the
        // stream task hears of it through a mailbox.
        if !fields.fields.contains_key("stream")
            && let Some((stream, id)) = fields
                .fields
                .get("encoder")
                .and_then(|label| label.rsplit_once('#'))
                .map(|(s, id)| (s.to_string(), id.to_string()))
        {
            fields.fields.insert("stream".into(), stream);
            fields.fields.insert("encoder".into(), id);
        }
        EVENTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Captured {
                at,
                target: meta.target().to_string(),
                message: fields.message,
                fields: fields.fields,
            });
    }
}

fn capture_events() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::registry().with(Capture).try_init();
    });
}

/// One stream's captured events, in order.
fn events(stream: &str) -> Vec<Captured> {
    EVENTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|e| e.field("stream") == stream)
        .cloned()
        .collect()
}

fn failovers(stream: &str) -> Vec<Captured> {
    events(stream)
        .into_iter()
        .filter(|e| e.target == "switchyard::failover")
        .collect()
}

fn with_message(stream: &str, message: &str) -> Vec<Captured> {
    events(stream)
        .into_iter()
        .filter(|e| e.message == message)
        .collect()
}

/// The first health transition of `encoder` to `to` (`failed`,
/// `degraded`).
fn health(stream: &str, encoder: u64, to: &str) -> Option<Captured> {
    events(stream)
        .into_iter()
        .find(|e| e.message == "encoder health" && e.encoder() == encoder && e.field("to") == to)
}

fn wait_for<T>(timeout: Duration, mut found: impl FnMut() -> Option<T>) -> Option<T> {
    let mut value = None;
    wait_until(timeout, || {
        value = found();
        value.is_some()
    });
    value
}

/// The encoder whose output is published, and its PID.
fn active(stream: &str) -> Option<(u64, u32)> {
    let events = events(stream);
    let id = events.iter().rev().find_map(|e| {
        if e.target == "switchyard::failover" {
            e.field("to").parse().ok()
        } else if e.message == "publishing encoder output" {
            Some(e.encoder())
        } else {
            None
        }
    })?;
    let pid = events
        .iter()
        .find(|e| e.message == "encoder started" && e.encoder() == id)?
        .field("pid")
        .parse()
        .ok()?;
    Some((id, pid))
}

// ---------------------------------------------------------------------------
// The router's encoder processes: our children reading `pipe:0`.

fn router_encoders() -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // `pid (comm) state ppid …`: comm may hold spaces.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(me) && cmdline.split(|&b| b == 0).any(|arg| arg == b"pipe:0")
        })
        .collect()
}

/// The published encoder's PID, checked to be one of our `pipe:0`
/// children.
fn active_pid(stream: &str) -> (u64, u32) {
    let (id, pid) = wait_for(Duration::from_secs(5), || active(stream))
        .unwrap_or_else(|| panic!("{stream}: no encoder published"));
    assert!(
        router_encoders().contains(&pid),
        "{stream}: encoder {id} (pid {pid}) is not a child of the test reading pipe:0: {:?}",
        router_encoders()
    );
    (id, pid)
}

fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
}

/// Gone, and reaped: no `/proc` entry (a zombie would keep one).
fn reaped(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

// ---------------------------------------------------------------------------
// The set-up: publisher, router, recordings.

/// A live publisher: testsrc2 + sine, x264 ultrafast at 2 Mbit/s (real
/// encoders probe a fast input quickly), IDR every 25 frames, no B-frames,
/// to the router over UDP and recorded to `record` (what was sent).
fn publisher(to: SocketAddr, record: &Path, seconds: u32) -> Proc {
    let tee = format!(
        "[f=mpegts]udp://{to}?pkt_size=1316|[f=mpegts]{}",
        record.display()
    );
    Proc::spawn(
        "publisher",
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"])
            .args([
                "-re",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
            ])
            .args(["-t", &seconds.to_string(), "-map", "0:v", "-map", "1:a"])
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
            .args([
                "-b:v", "2M", "-minrate", "2M", "-maxrate", "2M", "-bufsize", "1M",
            ])
            .args(["-x264-params", "nal-hrd=cbr"])
            .args(["-c:a", "aac", "-b:a", "128k"])
            // A timeline off the frame grid and away from 0, like a real
            // camera's.
            .args(["-output_ts_offset", "10.0133", "-f", "tee", &tee])
            .stdout(Stdio::null()),
    )
}

/// A shell script standing in for ffmpeg: the fake encoder with `fault`
/// for the first `faulty` processes it starts (counted with marker files),
/// a healthy fake after. `exec`, so the router's child is the fake itself.
fn fake_wrapper(dir: &TempDir, fault: &str, faulty: u32) -> PathBuf {
    let path = dir.path("fake-ffmpeg.sh");
    let counter = dir.path("starts");
    let script = format!(
        "#!/bin/sh\necho x >> '{counter}'\nn=$(wc -l < '{counter}')\n\
         if [ \"$n\" -le {faulty} ]; then export FAKE_ENCODER_FAULT='{fault}'; fi\n\
         exec '{FAKE}' \"$@\"\n",
        counter = counter.display()
    );
    std::fs::write(&path, script).expect("write the wrapper");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Encoders<'a> {
    /// Real ffmpeg, 320x180 ultrafast, one thread (~50× real time).
    Real,
    /// Real ffmpeg, 640x360 x264 slow, one thread (~5× real time): a
    /// duty cycle can hold it below real time.
    RealHeavy,
    /// This program (the fake encoder or a wrapper).
    Fake(&'a Path),
}

struct Case {
    name: String,
    dir: TempDir,
    router: TestRouter,
    publisher: Proc,
    /// When the router started.
    started: Instant,
}

impl Case {
    /// A router with one stream `enc/NAME` (UDP in, file out) and a
    /// publisher sending for `seconds`. `stream_keys`/`encoder_keys` are
    /// extra TOML lines.
    fn start(
        name: &str,
        encoders: Encoders<'_>,
        seconds: u32,
        stream_keys: &str,
        encoder_keys: &str,
    ) -> Case {
        capture_events();
        let dir = TempDir::new(&format!("encfail-{name}"));
        let ffmpeg = match encoders {
            Encoders::Real | Encoders::RealHeavy => PathBuf::from("ffmpeg"),
            Encoders::Fake(path) => path.to_path_buf(),
        };
        let (size, preset) = match encoders {
            Encoders::RealHeavy => ("640x360", "slow"),
            _ => ("320x180", "ultrafast"),
        };
        let toml = format!(
            r#"
[srt]
accept_any_stream = false

[encoder]
max_encoders = 8
spares = 0
stall_timeout_ms = {STALL_TIMEOUT_MS}
{encoder_keys}

[[profile]]
name = "tiny"
ffmpeg = "{ffmpeg}"
video_codec = "libx264"
size = "{size}"
preset = "{preset}"
tune = "zerolatency"
threads = 1
video_bitrate = "300k"
audio_codec = "aac"
audio_bitrate = "64k"

[[stream]]
id = "enc/{name}"
profile = "tiny"
{stream_keys}
  [[stream.input]]
  kind = "udp"
  listen = "127.0.0.1:5000"
  [[stream.output]]
  kind = "file"
  path = "{out}"
"#,
            ffmpeg = ffmpeg.display(),
            out = dir.path("out.ts").display(),
        );
        let router = TestRouter::start(&toml);
        let started = Instant::now();
        let stream = format!("enc/{name}");
        let publisher = publisher(router.input(&stream, 0), &dir.path("in.ts"), seconds);
        Case {
            name: name.to_string(),
            dir,
            router,
            publisher,
            started,
        }
    }

    fn stream(&self) -> String {
        format!("enc/{}", self.name)
    }

    /// Waits for the first encoder's output to be published.
    fn wait_published(&self) -> (u64, u32) {
        let stream = self.stream();
        wait_for(Duration::from_secs(10), || {
            with_message(&stream, "publishing encoder output").pop()
        })
        .unwrap_or_else(|| panic!("{stream}: no encoder output published in 10 s"));
        active_pid(&stream)
    }

    /// Lets the publisher finish (or stops it), stops the router and
    /// judges the recordings.
    fn finish(mut self, publisher_done_within: Duration) -> Outcome {
        if self.publisher.wait_timeout(publisher_done_within).is_none() {
            self.publisher.signal("INT");
            self.publisher.wait_timeout(Duration::from_secs(5));
        }
        std::thread::sleep(Duration::from_millis(1500));
        let stream = self.stream();
        assert!(self.router.stop(), "{stream}: shutdown within 5 s");
        let input = video_pts(&self.dir.path("in.ts"));
        let out_path = self.dir.path("out.ts");
        let output = video_pts(&out_path);
        let report = probe_file(&out_path);
        assert_eq!(report.cc_errors, 0, "{stream}: CC errors: {report:?}");
        let video = report
            .video
            .as_ref()
            .unwrap_or_else(|| panic!("{stream}: no video in the output"));
        assert_eq!(video.pts_backwards, 0, "{stream}: {report:?}");
        assert_eq!(video.duplicate_pts, 0, "{stream}: {report:?}");
        let decode = Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-xerror", "-i"])
            .arg(&out_path)
            .args(["-f", "null", "-"])
            .stdin(Stdio::null())
            .output()
            .expect("run ffmpeg");
        assert!(
            decode.status.success(),
            "{stream}: the output does not decode cleanly: {}",
            String::from_utf8_lossy(&decode.stderr)
        );
        let frames = compare(&input, &output);
        println!(
            "{stream}: output {} video frames, input {} in its span: lost {}, duplicated {}, \
             foreign {}, max gap {} frames",
            output.len(),
            frames.in_span,
            frames.lost,
            frames.duplicated,
            frames.foreign,
            frames.max_step_frames
        );
        assert!(
            output.windows(2).all(|w| w[0] < w[1]),
            "{stream}: PTS not monotonic"
        );
        assert_eq!(frames.duplicated, 0, "{stream}: duplicated frames");
        assert_eq!(
            frames.foreign, 0,
            "{stream}: output frames the input never had"
        );
        Outcome {
            events: events(&stream),
            stream,
            frames,
            output,
        }
    }
}

struct Outcome {
    stream: String,
    frames: Frames,
    events: Vec<Captured>,
    output: Vec<u64>,
}

impl Outcome {
    fn failovers(&self) -> Vec<&Captured> {
        self.events
            .iter()
            .filter(|e| e.target == "switchyard::failover")
            .collect()
    }

    /// Gaps in the output's video (PTS steps of more than one frame), in
    /// ms of media missing.
    fn gaps_ms(&self) -> Vec<f64> {
        self.output
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|&step| step > FRAME_TICKS)
            .map(|step| (step - FRAME_TICKS) as f64 / 90.0)
            .collect()
    }
}

#[derive(Debug, Default)]
struct Frames {
    in_span: usize,
    lost: usize,
    duplicated: usize,
    foreign: usize,
    max_step_frames: u64,
}

/// The output's video frames against the input's, over the output's span.
fn compare(input: &[u64], output: &[u64]) -> Frames {
    let (Some(&first), Some(&last)) = (output.first(), output.last()) else {
        return Frames::default();
    };
    let input: BTreeSet<u64> = input.iter().copied().collect();
    let out: BTreeSet<u64> = output.iter().copied().collect();
    let in_span: BTreeSet<u64> = input.range(first..=last).copied().collect();
    Frames {
        in_span: in_span.len(),
        lost: in_span.difference(&out).count(),
        duplicated: output.len() - out.len(),
        foreign: out.difference(&input).count(),
        max_step_frames: output
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0]) / FRAME_TICKS)
            .max()
            .unwrap_or(0),
    }
}

/// Video PES PTS of a TS file, in file order (33-bit, no wrap in a test).
fn video_pts(path: &Path) -> Vec<u64> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut pts = Vec::new();
    for packet in data.chunks_exact(188) {
        if packet[0] != 0x47 || packet[1] & 0x40 == 0 {
            continue;
        }
        let mut at = 4;
        if packet[3] & 0x20 != 0 {
            at += 1 + packet[4] as usize;
        }
        let Some(pes) = packet.get(at..) else {
            continue;
        };
        if pes.len() < 14 || pes[..3] != [0, 0, 1] || !(0xE0..=0xEF).contains(&pes[3]) {
            continue;
        }
        if pes[7] & 0x80 == 0 {
            continue;
        }
        let p = &pes[9..14];
        let value = (u64::from(p[0] & 0x0E) << 29)
            | (u64::from(p[1]) << 22)
            | (u64::from(p[2] & 0xFE) << 14)
            | (u64::from(p[3]) << 7)
            | (u64::from(p[4]) >> 1);
        pts.push(value);
    }
    pts
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A seeded xorshift: random fault times, reproducible from the seed
/// printed.
struct Rng(u64);

impl Rng {
    fn from_time() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        println!("seed {seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

// ---------------------------------------------------------------------------
// The cases.

/// `kill -9` of a real encoder: the death is seen within 50 ms, the
/// replacement is published, the old process is reaped.
#[test]
fn kill_9_is_detected_within_50_ms() {
    if !require("ffmpeg") {
        return;
    }
    let case = Case::start("kill", Encoders::Real, 8, "", "");
    let stream = case.stream();
    let (id, pid) = case.wait_published();
    std::thread::sleep(Duration::from_millis(2000));
    let killed = Instant::now();
    signal(pid, nix::sys::signal::Signal::SIGKILL);
    let failed = wait_for(Duration::from_secs(2), || health(&stream, id, "failed"))
        .unwrap_or_else(|| panic!("{stream}: no failure event for encoder {id}"));
    let detection = failed.at.saturating_duration_since(killed);
    let failover = wait_for(Duration::from_secs(5), || failovers(&stream).pop())
        .unwrap_or_else(|| panic!("{stream}: no failover"));
    println!(
        "{stream}: kill -9 → failed ({}) in {:.1} ms; failover: startup {:.0} ms, gap {:.0} ms, \
         lost {}, duplicated {}",
        failed.field("reason"),
        ms(detection),
        failover.number("startup_ms"),
        failover.number("gap_ms"),
        failover.field("frames_lost"),
        failover.field("frames_duplicated"),
    );
    assert!(
        detection <= Duration::from_millis(50),
        "{stream}: {detection:?}"
    );
    assert!(
        wait_until(Duration::from_secs(2), || reaped(pid)),
        "{stream}: not reaped"
    );
    let outcome = case.finish(Duration::from_secs(10));
    assert_eq!(outcome.failovers().len(), 1);
    assert_low_latency_gaps(&outcome, ms(detection));
}

/// Low-latency: each gap of the output is at most detection + one GOP.
fn assert_low_latency_gaps(outcome: &Outcome, detection_ms: f64) {
    let gaps = outcome.gaps_ms();
    println!("{}: output gaps (ms of media) {gaps:?}", outcome.stream);
    for gap in gaps {
        assert!(
            gap <= detection_ms + ms(GOP),
            "{}: gap {gap} ms > detection {detection_ms} ms + one GOP",
            outcome.stream
        );
    }
}

/// `SIGSTOP` of a real encoder: a stall (or a stopped process), seen within
/// stall_timeout + 100 ms; the stopped process is killed and reaped.
#[test]
fn sigstop_is_detected_within_stall_timeout() {
    if !require("ffmpeg") {
        return;
    }
    let case = Case::start("stop", Encoders::Real, 9, "", "");
    let stream = case.stream();
    let (id, pid) = case.wait_published();
    std::thread::sleep(Duration::from_millis(2000));
    let stopped = Instant::now();
    signal(pid, nix::sys::signal::Signal::SIGSTOP);
    let failed = wait_for(Duration::from_secs(3), || health(&stream, id, "failed"))
        .unwrap_or_else(|| panic!("{stream}: no failure event for encoder {id}"));
    let detection = failed.at.saturating_duration_since(stopped);
    let failover = wait_for(Duration::from_secs(5), || failovers(&stream).pop())
        .unwrap_or_else(|| panic!("{stream}: no failover"));
    println!(
        "{stream}: SIGSTOP → failed ({}) in {:.1} ms; failover: startup {:.0} ms, gap {:.0} ms, \
         lost {}",
        failed.field("reason"),
        ms(detection),
        failover.number("startup_ms"),
        failover.number("gap_ms"),
        failover.field("frames_lost"),
    );
    assert!(
        detection <= Duration::from_millis(STALL_TIMEOUT_MS + 100),
        "{stream}: {detection:?}"
    );
    assert!(
        wait_until(Duration::from_secs(4), || reaped(pid)),
        "{stream}: the stopped encoder was not killed and reaped"
    );
    let outcome = case.finish(Duration::from_secs(10));
    assert_eq!(outcome.failovers().len(), 1);
    assert_low_latency_gaps(&outcome, ms(detection));
}

/// A fake encoder at 0.7× real time: slow → degraded → moved after
/// degraded_grace.
#[test]
fn slow_encoder_is_moved_after_degraded_grace() {
    if !require("ffmpeg") {
        return;
    }
    let dir = TempDir::new("encfail-slow-wrapper");
    let wrapper = fake_wrapper(&dir, "slow=0.7", 1);
    let case = Case::start(
        "slow",
        Encoders::Fake(&wrapper),
        10,
        "",
        "slow_for_ms = 1000\ndegraded_grace_ms = 1000",
    );
    let stream = case.stream();
    let (id, _) = case.wait_published();
    let started = with_message(&stream, "encoder started")
        .first()
        .map(|e| e.at)
        .expect("started");
    let degraded = wait_for(Duration::from_secs(8), || health(&stream, id, "degraded"))
        .unwrap_or_else(|| panic!("{stream}: encoder {id} never degraded"));
    let failover = wait_for(Duration::from_secs(5), || failovers(&stream).pop())
        .unwrap_or_else(|| panic!("{stream}: no failover"));
    let detection = degraded.at.saturating_duration_since(started);
    let moved = failover.at.saturating_duration_since(degraded.at);
    println!(
        "{stream}: slow 0.7× from start → degraded ({}) after {:.0} ms; moved {:.0} ms later \
         (detection_ms {:.0}, startup {:.0} ms, gap {:.0} ms, lost {})",
        degraded.field("reason"),
        ms(detection),
        ms(moved),
        failover.number("detection_ms"),
        failover.number("startup_ms"),
        failover.number("gap_ms"),
        failover.field("frames_lost"),
    );
    assert!(failover.field("reason").starts_with("degraded"), "{stream}");
    // slow_for + the 1 s speed window + start-up.
    assert!(
        detection <= Duration::from_millis(3500),
        "{stream}: {detection:?}"
    );
    assert!(
        moved >= Duration::from_millis(1000) && moved <= Duration::from_millis(2500),
        "{stream}: moved {moved:?} after degrading (grace 1 s)"
    );
    case.finish(Duration::from_secs(10));
}

/// A real encoder under a SIGSTOP/SIGCONT duty cycle that holds it to
/// ~0.7× real time: slow → degraded → moved after degraded_grace. Left
/// alone, an encoder runs several times faster than real time, so a fixed duty
/// cycle would only delay it; the cycle is steered by the published
/// output's PTS (the file output, flushed every 500 ms): 200 ms periods,
/// running 10 ms when ahead of 0.7× and 60 ms when behind, on a heavier
/// profile (~5× real time). No stop is
/// long enough to be a stall or a stopped process.
#[test]
fn duty_cycled_real_encoder_is_moved() {
    if !require("ffmpeg") {
        return;
    }
    let case = Case::start(
        "duty",
        Encoders::RealHeavy,
        16,
        "",
        "slow_for_ms = 1000\ndegraded_grace_ms = 1000",
    );
    let stream = case.stream();
    let (id, pid) = case.wait_published();
    let out = case.dir.path("out.ts");
    let last_pts = || video_pts(&out).last().copied();
    std::thread::sleep(Duration::from_millis(1000));
    let began = Instant::now();
    let base = wait_for(Duration::from_secs(2), last_pts).expect("output");
    let mut moved = None;
    let mut steps = 0;
    while began.elapsed() < Duration::from_secs(9) {
        let target = base + (0.7 * began.elapsed().as_secs_f64() * 90_000.0) as u64;
        let ahead = last_pts().is_some_and(|pts| pts > target);
        let run = if ahead { 10 } else { 60 };
        signal(pid, nix::sys::signal::Signal::SIGCONT);
        std::thread::sleep(Duration::from_millis(run));
        signal(pid, nix::sys::signal::Signal::SIGSTOP);
        std::thread::sleep(Duration::from_millis(200 - run));
        steps += 1;
        if let Some(f) = failovers(&stream).pop() {
            moved = Some(f);
            break;
        }
    }
    signal(pid, nix::sys::signal::Signal::SIGCONT);
    let speed =
        last_pts().map(|pts| (pts - base) as f64 / 90_000.0 / began.elapsed().as_secs_f64());
    let flagged = events(&stream)
        .into_iter()
        .find(|e| e.message == "encoder health" && e.encoder() == id && e.field("to") != "healthy");
    println!(
        "{stream}: duty cycle ({steps} periods, published speed {speed:.2?}×) → {:?} after \
         {:?}; failover {:?}",
        flagged
            .as_ref()
            .map(|e| (e.field("to").to_string(), e.field("reason").to_string())),
        flagged
            .as_ref()
            .map(|e| e.at.saturating_duration_since(began)),
        moved.as_ref().map(|f| (
            f.field("reason").to_string(),
            f.at.saturating_duration_since(began)
        )),
    );
    let moved = moved.unwrap_or_else(|| panic!("{stream}: the duty-cycled encoder was not moved"));
    let flagged = flagged.expect("a health transition");
    assert_eq!(
        flagged.field("to"),
        "degraded",
        "{stream}: slow, not failed"
    );
    assert!(moved.field("reason").starts_with("degraded"), "{stream}");
    let grace = moved.at.saturating_duration_since(flagged.at);
    assert!(
        grace >= Duration::from_millis(1000),
        "{stream}: moved {grace:?} after degrading"
    );
    case.finish(Duration::from_secs(12));
}

/// Garbage on the first encoder's stdout (fake encoder): the output frames
/// stop, the encoder is degraded and moved; the garbage never reaches the
/// output.
#[test]
fn garbage_on_stdout_is_moved_away_from() {
    if !require("ffmpeg") {
        return;
    }
    let dir = TempDir::new("encfail-garbage-wrapper");
    let wrapper = fake_wrapper(&dir, "garbage-after-ms=2000", 1);
    let case = Case::start(
        "garbage",
        Encoders::Fake(&wrapper),
        12,
        "",
        "degraded_grace_ms = 1000",
    );
    let stream = case.stream();
    let (id, _) = case.wait_published();
    let started = with_message(&stream, "encoder started")
        .first()
        .map(|e| e.at)
        .expect("started");
    let flagged = wait_for(Duration::from_secs(8), || {
        events(&stream).into_iter().find(|e| {
            e.message == "encoder health" && e.encoder() == id && e.field("to") != "healthy"
        })
    })
    .unwrap_or_else(|| panic!("{stream}: the garbage was never flagged"));
    let failover = wait_for(Duration::from_secs(5), || failovers(&stream).pop())
        .unwrap_or_else(|| panic!("{stream}: no failover"));
    let garbage_from = started + Duration::from_millis(2000);
    let detection = flagged.at.saturating_duration_since(garbage_from);
    println!(
        "{stream}: garbage from ~2000 ms → {} ({}) {:.0} ms later; failover {:.0} ms after that \
         (gap {:.0} ms, lost {})",
        flagged.field("to"),
        flagged.field("reason"),
        ms(detection),
        ms(failover.at.saturating_duration_since(flagged.at)),
        failover.number("gap_ms"),
        failover.field("frames_lost"),
    );
    // The cadence rule needs its window (3 s) and 1 s of low cadence.
    assert!(
        detection <= Duration::from_millis(5000),
        "{stream}: {detection:?}"
    );
    case.finish(Duration::from_secs(12));
}

/// Encoders that exit at once: crash loop, backoff 1, 2, 4, 8 s, then
/// passthrough, said in the log; the published stream is the input.
#[test]
fn crash_loop_backs_off_then_falls_back_to_passthrough() {
    if !require("ffmpeg") {
        return;
    }
    let dir = TempDir::new("encfail-crash-wrapper");
    let wrapper = fake_wrapper(&dir, "exit-at-once", 1000);
    let case = Case::start("crash", Encoders::Fake(&wrapper), 26, "", "");
    let stream = case.stream();
    let gave_up = wait_for(Duration::from_secs(30), || {
        with_message(&stream, "publishing the input unencoded (passthrough)").pop()
    })
    .unwrap_or_else(|| panic!("{stream}: never fell back to passthrough"));
    let backoffs: Vec<f64> = with_message(&stream, "encoders keep failing: backing off")
        .iter()
        .map(|e| e.number("delay_ms"))
        .collect();
    let starts = with_message(&stream, "encoder started").len();
    println!(
        "{stream}: {starts} encoders started, backoffs {backoffs:?} ms, passthrough after {:.1} s",
        gave_up
            .at
            .saturating_duration_since(case.started)
            .as_secs_f64()
    );
    assert_eq!(backoffs, vec![1000.0, 2000.0, 4000.0, 8000.0], "{stream}");
    assert!(!with_message(&stream, "encoders keep failing: giving up on encoding").is_empty());
    let outcome = case.finish(Duration::from_secs(15));
    assert!(outcome.failovers().is_empty());
    assert_eq!(
        outcome.frames.lost, 0,
        "{stream}: passthrough loses nothing"
    );
    assert!(
        outcome.output.len() >= 50,
        "{stream}: passthrough published"
    );
}

/// Every encoder fails after a short while (crashes after 600 ms of
/// output), with `on_no_capacity = "reject"`: the stream is stopped
/// cleanly after the backoffs; what was published is valid.
#[test]
fn every_encoder_failing_stops_the_stream_per_config() {
    if !require("ffmpeg") {
        return;
    }
    let dir = TempDir::new("encfail-allfail-wrapper");
    let wrapper = fake_wrapper(&dir, "exit-after-ms=600", 1000);
    let case = Case::start(
        "allfail",
        Encoders::Fake(&wrapper),
        30,
        "",
        "on_no_capacity = \"reject\"",
    );
    let stream = case.stream();
    let stopped = wait_for(Duration::from_secs(40), || {
        with_message(&stream, "stream stopped: no encoder could run it").pop()
    })
    .unwrap_or_else(|| panic!("{stream}: never stopped"));
    println!(
        "{stream}: {} encoders started, {} failovers, stopped after {:.1} s",
        with_message(&stream, "encoder started").len(),
        failovers(&stream).len(),
        stopped
            .at
            .saturating_duration_since(case.started)
            .as_secs_f64()
    );
    let outcome = case.finish(Duration::from_secs(5));
    println!(
        "{stream}: lost {} frames over the failovers",
        outcome.frames.lost
    );
}

/// Hitless: 20 kill -9 of the published real encoder at random times, at
/// least one GOP apart: not one frame lost or repeated.
#[test]
fn hitless_survives_20_random_kills_without_losing_a_frame() {
    if !require("ffmpeg") {
        return;
    }
    const KILLS: usize = 20;
    let case = Case::start(
        "hitless",
        Encoders::Real,
        120,
        "failover_mode = \"hitless\"",
        "",
    );
    let stream = case.stream();
    case.wait_published();
    let mut rng = Rng::from_time();
    std::thread::sleep(Duration::from_millis(1500));
    let mut detections = Vec::new();
    for kill in 0..KILLS {
        let (id, pid) = active_pid(&stream);
        let killed = Instant::now();
        signal(pid, nix::sys::signal::Signal::SIGKILL);
        let failed = wait_for(Duration::from_secs(2), || health(&stream, id, "failed"))
            .unwrap_or_else(|| panic!("{stream}: kill {kill}: no failure event for {id}"));
        detections.push(ms(failed.at.saturating_duration_since(killed)));
        wait_until(Duration::from_secs(10), || failovers(&stream).len() > kill);
        if failovers(&stream).len() != kill + 1 {
            for e in events(&stream).iter().rev().take(30).rev() {
                println!("  {:?} {} {:?}", e.at, e.message, e.fields);
            }
        }
        assert_eq!(
            failovers(&stream).len(),
            kill + 1,
            "{stream}: kill {kill}: no failover"
        );
        // At least one GOP after the kill, and after the replacement is
        // published.
        let next = killed + GOP + Duration::from_millis(rng.below(1000));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    std::thread::sleep(Duration::from_millis(2000));
    let outcome = case.finish(Duration::ZERO);
    let failovers = outcome.failovers();
    let lost: Vec<&str> = failovers.iter().map(|f| f.field("frames_lost")).collect();
    let gaps: Vec<f64> = failovers.iter().map(|f| f.number("gap_ms")).collect();
    println!(
        "{stream}: {KILLS} kills: detection ms {detections:.1?}; failover gaps (wall ms) \
         {gaps:.0?}; frames lost per event {lost:?}"
    );
    assert_eq!(failovers.len(), KILLS);
    assert!(
        detections.iter().all(|&d| d <= 50.0),
        "{stream}: {detections:?}"
    );
    assert_eq!(outcome.frames.lost, 0, "{stream}: frames lost");
    assert_eq!(outcome.frames.duplicated, 0);
    assert!(
        outcome.frames.in_span >= 20 * 25,
        "{stream}: ran long enough"
    );
}

/// Low-latency: 5 kill -9 of the published real encoder: each gap ≤
/// detection + one GOP, the loss reported by the events matches the
/// recording.
#[test]
fn low_latency_kills_gap_within_detection_plus_one_gop() {
    if !require("ffmpeg") {
        return;
    }
    const KILLS: usize = 5;
    let case = Case::start("lowlat", Encoders::Real, 60, "", "");
    let stream = case.stream();
    case.wait_published();
    let mut rng = Rng::from_time();
    std::thread::sleep(Duration::from_millis(1500));
    let mut worst_detection: f64 = 0.0;
    for kill in 0..KILLS {
        let (id, pid) = active_pid(&stream);
        let killed = Instant::now();
        signal(pid, nix::sys::signal::Signal::SIGKILL);
        let failed = wait_for(Duration::from_secs(2), || health(&stream, id, "failed"))
            .unwrap_or_else(|| panic!("{stream}: kill {kill}: no failure event for {id}"));
        worst_detection = worst_detection.max(ms(failed.at.saturating_duration_since(killed)));
        wait_until(Duration::from_secs(10), || failovers(&stream).len() > kill);
        let next = killed + GOP + Duration::from_millis(rng.below(1000));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let outcome = case.finish(Duration::ZERO);
    let failovers = outcome.failovers();
    let reported: i64 = failovers
        .iter()
        .map(|f| f.field("frames_lost").parse::<i64>().unwrap_or(0))
        .sum();
    println!(
        "{stream}: {KILLS} kills, worst detection {worst_detection:.1} ms, lost {} frames \
         (events say {reported}), wall gaps {:.0?} ms",
        outcome.frames.lost,
        failovers
            .iter()
            .map(|f| f.number("gap_ms"))
            .collect::<Vec<_>>()
    );
    for f in &failovers {
        println!("  failover {:?}", f.fields);
    }
    assert_eq!(failovers.len(), KILLS);
    assert!(worst_detection <= 50.0);
    assert_eq!(
        outcome.frames.lost as i64, reported,
        "{stream}: events agree with the output"
    );
    assert_low_latency_gaps(&outcome, worst_detection);
}

/// `standby = "hot"`: a second encoder runs in parallel, so a kill of the
/// published one moves the output with no start-up (the event says
/// `warm`), and a new standby is started behind it.
#[test]
fn hot_standby_takes_over_without_start_up() {
    if !require("ffmpeg") {
        return;
    }
    let case = Case::start("hot", Encoders::Real, 8, "standby = \"hot\"", "");
    let stream = case.stream();
    let (id, pid) = case.wait_published();
    assert!(
        wait_until(Duration::from_secs(5), || router_encoders().len() >= 2),
        "{stream}: no standby running beside the active encoder"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let killed = Instant::now();
    signal(pid, nix::sys::signal::Signal::SIGKILL);
    let failed = wait_for(Duration::from_secs(2), || health(&stream, id, "failed"))
        .unwrap_or_else(|| panic!("{stream}: no failure event for encoder {id}"));
    let detection = failed.at.saturating_duration_since(killed);
    let failover = wait_for(Duration::from_secs(5), || failovers(&stream).pop())
        .unwrap_or_else(|| panic!("{stream}: no failover"));
    println!(
        "{stream}: kill -9 → failed in {:.1} ms; failover: warm {}, startup {:.0} ms, gap {:.0} ms, lost {}",
        ms(detection),
        failover.field("warm"),
        failover.number("startup_ms"),
        failover.number("gap_ms"),
        failover.field("frames_lost"),
    );
    assert_eq!(
        failover.field("warm"),
        "true",
        "{stream}: the standby took over"
    );
    assert!(
        failover.number("startup_ms") < 5.0,
        "{stream}: a ready standby needs no start-up"
    );
    // A new standby is started behind the new active encoder.
    assert!(
        wait_until(Duration::from_secs(5), || router_encoders().len() >= 2),
        "{stream}: no new standby"
    );
    let metrics = case
        .router
        .stream_metrics(&stream)
        .expect("the stream runs");
    assert_eq!(metrics.encoder_failovers, 1, "{metrics:?}");
    assert_eq!(metrics.encoder_frames_duplicated, 0, "{metrics:?}");
    let outcome = case.finish(Duration::from_secs(10));
    assert_eq!(outcome.failovers().len(), 1);
    assert_low_latency_gaps(&outcome, ms(detection));
}
