//! `encoder::process` against the fault-injecting fake encoder and real
//! ffmpeg: detection times of death and stalls, no false alarm from a
//! healthy encoder, garbage output, a missing binary, spares, reaping.
//!
//! Detection times are printed (`--nocapture`) as `detection: …`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use switchyard::encoder::{
    AudioArgs, Encoder, EncoderEvent, EncoderOptions, EncoderSpec, Profile, SpawnError,
    StreamLayout, VideoArgs, VideoSize,
};
use switchyard::health::{ExitStatus, HealthEvent, HealthState, Reason};
use switchyard::ts::Timestamp;
use switchyard::ts::demux::{AccessUnit, DemuxHandler, StreamDemux};

const FAKE: &str = env!("CARGO_BIN_EXE_fake-encoder");
/// The capture is 4 s long.
const CAPTURE_SECONDS: f64 = 4.0;
/// Length of the generated source.
const LIVE_SECONDS: f64 = 8.0;

/// An 8 s H.264/AAC source at ~1.6 Mbit/s with an IDR every second,
/// generated once. The capture in testdata/ is 266 kbit/s: at real time
/// ffmpeg's `-probesize 128k` takes ~3.9 s of it before the first output
/// (measured), longer than the scorer's 3 s first-output timeout, so the
/// real-time cases need a contribution-like bitrate.
fn live_source() -> Vec<u8> {
    static SOURCE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    SOURCE
        .get_or_init(|| {
            let dir = std::env::temp_dir()
                .join(format!("switchyard-encoder-process-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let path = dir.join("live.ts");
            let status = std::process::Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-y"])
                .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"])
                .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
                .args(["-t", &LIVE_SECONDS.to_string()])
                .args(["-c:v", "libx264", "-preset", "ultrafast", "-b:v", "1500k"])
                .args(["-g", "25", "-keyint_min", "25", "-sc_threshold", "0"])
                .args(["-c:a", "aac", "-b:a", "128k", "-f", "mpegts"])
                .arg(&path)
                .status()
                .expect("run ffmpeg");
            assert!(status.success(), "generating the source failed");
            let bytes = std::fs::read(&path).expect("read the source");
            let _ = std::fs::remove_dir_all(&dir);
            bytes
        })
        .clone()
}

fn fake(fault: &str) -> EncoderSpec {
    EncoderSpec {
        profile: "fake".into(),
        program: FAKE.into(),
        args: vec!["-hide_banner".into(), "pipe:1".into()],
        env: vec![("FAKE_ENCODER_FAULT".into(), fault.into())],
    }
}

/// A small, fast real encoder (issue 4 point 8: small resolution,
/// ultrafast, to fit CI).
fn real_ffmpeg() -> EncoderSpec {
    let profile = Profile::new(
        "test",
        "ffmpeg",
        VideoArgs {
            codec: "libx264".into(),
            bitrate_kbps: Some(300),
            size: Some(VideoSize {
                width: 320,
                height: 180,
            }),
            preset: Some("ultrafast".into()),
            tune: Some("zerolatency".into()),
            threads: Some(1),
            extra: Vec::new(),
        },
        AudioArgs {
            codec: "aac".into(),
            bitrate_kbps: Some(64),
            extra: Vec::new(),
        },
    )
    .expect("a valid profile");
    EncoderSpec::from_profile(&profile, &StreamLayout::default()).expect("not passthrough")
}

fn options() -> EncoderOptions {
    EncoderOptions {
        label: "test".into(),
        ..EncoderOptions::default()
    }
}

/// Input video frames: (byte offset of the packet the access unit starts
/// in, PTS).
#[derive(Default)]
struct Frames(Vec<(usize, Timestamp)>);

impl DemuxHandler for Frames {
    fn on_access_unit(&mut self, au: &AccessUnit) {
        if let Some(pts) = au.pts {
            self.0.push((au.index as usize * 188, pts));
        }
    }
}

/// Feeds the capture at real time and records what comes back.
struct Run {
    enc: Encoder,
    input: Vec<u8>,
    frames: Vec<(usize, Timestamp)>,
    fed: usize,
    next_frame: usize,
    started: Option<Instant>,
    bytes_per_second: f64,
    events: Vec<EncoderEvent>,
    last_output: Option<Instant>,
    output_bytes: usize,
}

impl Run {
    /// Feeds the 4 s capture.
    fn new(enc: Encoder) -> Run {
        let input = std::fs::read(common::capture_path()).expect("read the capture");
        Run::with(enc, input, CAPTURE_SECONDS)
    }

    /// Feeds the generated 8 s source.
    fn live(enc: Encoder) -> Run {
        Run::with(enc, live_source(), LIVE_SECONDS)
    }

    fn with(enc: Encoder, input: Vec<u8>, seconds: f64) -> Run {
        let mut frames = Frames::default();
        let mut demux = StreamDemux::new();
        demux.push(&input, &mut frames);
        demux.finish(&mut frames);
        Run {
            enc,
            bytes_per_second: input.len() as f64 / seconds,
            input,
            frames: frames.0,
            fed: 0,
            next_frame: 0,
            started: None,
            events: Vec::new(),
            last_output: None,
            output_bytes: 0,
        }
    }

    fn feed_due(&mut self) {
        let started = *self.started.get_or_insert_with(Instant::now);
        let due = (started.elapsed().as_secs_f64() * self.bytes_per_second) as usize;
        let due = (due / 188 * 188).min(self.input.len());
        if due <= self.fed {
            return;
        }
        let now = Instant::now();
        let batch = bytes::Bytes::copy_from_slice(&self.input[self.fed..due]);
        if self.enc.feed(now, batch).is_err() {
            return;
        }
        self.fed = due;
        while let Some(&(offset, pts)) = self.frames.get(self.next_frame) {
            if offset >= self.fed {
                break;
            }
            self.enc.input_frame(now, pts);
            self.next_frame += 1;
        }
    }

    fn input_done(&self) -> bool {
        self.fed >= self.input.len()
    }

    /// Runs for `duration` or until an event matching `until`, which is
    /// returned.
    async fn run(
        &mut self,
        duration: Duration,
        feed: bool,
        until: impl Fn(&EncoderEvent) -> bool,
    ) -> Option<EncoderEvent> {
        let deadline = tokio::time::Instant::now() + duration;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut output_open = true;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return None,
                _ = tick.tick() => if feed { self.feed_due() },
                chunk = self.enc.output.recv(), if output_open => match chunk {
                    Some(chunk) => {
                        self.last_output = Some(Instant::now());
                        self.output_bytes += chunk.len();
                    }
                    None => output_open = false,
                },
                event = self.enc.events.recv() => match event {
                    Some(event) => {
                        self.events.push(event.clone());
                        if until(&event) {
                            return Some(event);
                        }
                    }
                    None => return None,
                },
            }
        }
    }
}

fn health(event: &EncoderEvent) -> Option<&HealthEvent> {
    match event {
        EncoderEvent::Health(h) => Some(h),
        EncoderEvent::Exited { .. } => None,
    }
}

fn is_failed(event: &EncoderEvent) -> bool {
    health(event).is_some_and(|h| h.to == HealthState::Failed)
}

fn is_exited(event: &EncoderEvent) -> bool {
    matches!(event, EncoderEvent::Exited { .. })
}

fn event_at(event: &EncoderEvent) -> Instant {
    match event {
        EncoderEvent::Health(h) => h.at,
        EncoderEvent::Exited { at, .. } => *at,
    }
}

fn kill(pid: u32, signal: nix::sys::signal::Signal) -> Instant {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).expect("signal");
    Instant::now()
}

/// No `/proc/PID` entry, or one that is not this process's zombie.
fn reaped(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(text) => !text
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
    }
}

async fn death_detected(spec: EncoderSpec, what: &str, live: bool) {
    let enc = Encoder::spawn(&spec, options()).expect("spawn");
    let pid = enc.pid();
    let mut run = if live { Run::live(enc) } else { Run::new(enc) };
    run.run(Duration::from_millis(1500), true, |_| false).await;
    assert!(run.output_bytes > 0, "{what}: no output before the kill");
    assert!(
        run.events.is_empty(),
        "{what}: events before the kill: {:?}",
        run.events
    );
    let killed = kill(pid, nix::sys::signal::Signal::SIGKILL);
    let exited = run
        .run(Duration::from_secs(2), true, is_exited)
        .await
        .expect("an Exited event");
    let failed = run
        .events
        .iter()
        .find(|e| is_failed(e))
        .expect("a Failed event");
    let detection = event_at(failed).saturating_duration_since(killed);
    let seen = event_at(&exited).saturating_duration_since(killed);
    println!(
        "detection: {what} SIGKILL → Failed in {:.1} ms (Exited at {:.1} ms): {}",
        detection.as_secs_f64() * 1e3,
        seen.as_secs_f64() * 1e3,
        health(failed)
            .map(|h| h.reason.to_string())
            .unwrap_or_default()
    );
    // The reap (SIGCHLD) or a /proc sample showing the zombie, whichever
    // comes first.
    assert!(
        matches!(
            health(failed).map(|h| &h.reason),
            Some(Reason::Zombie)
                | Some(Reason::Exited(ExitStatus {
                    signal: Some(9),
                    ..
                }))
        ),
        "{failed:?}"
    );
    assert!(
        detection <= Duration::from_millis(50),
        "{what}: {detection:?}"
    );
    assert!(reaped(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_encoder_death_is_detected_within_50_ms() {
    death_detected(fake(""), "fake encoder", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_ffmpeg_death_is_detected_within_50_ms() {
    if !common::require("ffmpeg") {
        return;
    }
    death_detected(real_ffmpeg(), "ffmpeg", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_encoder_stall_is_detected_within_stall_timeout() {
    let stall_timeout = options().health.stall_timeout;
    let enc = Encoder::spawn(&fake("stall-after-ms=1500"), options()).expect("spawn");
    let mut run = Run::new(enc);
    let failed = run
        .run(Duration::from_secs(4), true, is_failed)
        .await
        .expect("a Failed event");
    let last_output = run.last_output.expect("output before the stall");
    // The fake stalls at its first read at or after 1500 ms: the last
    // output is when the stall began.
    let detection = event_at(&failed).saturating_duration_since(last_output);
    println!(
        "detection: fake encoder stall → Failed {:.1} ms after its last output: {}",
        detection.as_secs_f64() * 1e3,
        health(&failed)
            .map(|h| h.reason.to_string())
            .unwrap_or_default()
    );
    assert!(
        matches!(
            health(&failed).map(|h| &h.reason),
            Some(Reason::Stalled { .. })
        ),
        "{failed:?}"
    );
    assert!(
        detection <= stall_timeout + Duration::from_millis(100),
        "{detection:?}"
    );
    // Stopping closes stdin and sends SIGTERM at once: the fake (which keeps
    // reading while stalled) may end on either first, both a clean stop.
    let status = tokio::time::timeout(
        Duration::from_secs(3),
        run.enc.stop(Duration::from_millis(500)),
    )
    .await
    .expect("stopped and reaped within the grace");
    assert!(
        status.signal.is_some() || status.code.is_some(),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_ffmpeg_sigstop_is_detected_within_stall_timeout() {
    if !common::require("ffmpeg") {
        return;
    }
    let stall_timeout = options().health.stall_timeout;
    let enc = Encoder::spawn(&real_ffmpeg(), options()).expect("spawn");
    let pid = enc.pid();
    let mut run = Run::live(enc);
    run.run(Duration::from_millis(2000), true, |_| false).await;
    assert!(run.output_bytes > 0, "no output before SIGSTOP");
    assert!(run.events.is_empty(), "{:?}", run.events);
    let stopped = kill(pid, nix::sys::signal::Signal::SIGSTOP);
    let failed = run
        .run(Duration::from_secs(2), true, is_failed)
        .await
        .expect("a Failed event");
    let detection = event_at(&failed).saturating_duration_since(stopped);
    println!(
        "detection: ffmpeg SIGSTOP → Failed in {:.1} ms: {}",
        detection.as_secs_f64() * 1e3,
        health(&failed)
            .map(|h| h.reason.to_string())
            .unwrap_or_default()
    );
    assert!(
        matches!(
            health(&failed).map(|h| &h.reason),
            Some(Reason::Stalled { .. } | Reason::Stopped { .. })
        ),
        "{failed:?}"
    );
    assert!(
        detection <= stall_timeout + Duration::from_millis(100),
        "{detection:?}"
    );
    // A stopped process does not act on SIGTERM: stop() kills it after the
    // grace, and reaps it.
    let t = Instant::now();
    let status = run.enc.stop(Duration::from_millis(300)).await;
    assert_eq!(status.signal, Some(9), "{status:?}");
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(reaped(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_real_ffmpeg_raises_no_health_transition() {
    if !common::require("ffmpeg") {
        return;
    }
    let enc = Encoder::spawn(&real_ffmpeg(), options()).expect("spawn");
    let pid = enc.pid();
    let mut run = Run::live(enc);
    // The whole source at real time (8 s), then 1 s more with no input
    // owed once the output caught up.
    run.run(Duration::from_secs_f64(LIVE_SECONDS + 1.0), true, |_| false)
        .await;
    assert!(run.input_done());
    assert!(run.output_bytes > 10_000, "{} bytes out", run.output_bytes);
    assert!(
        run.events.is_empty(),
        "a healthy encoder raised {:?}",
        run.events
    );
    assert_eq!(run.enc.health(), HealthState::Healthy);
    assert!(run.enc.cpu_share().is_some());
    // SIGTERM: ffmpeg exits by itself, well within the grace.
    let t = Instant::now();
    let status = run.enc.stop(Duration::from_secs(3)).await;
    println!(
        "stop: ffmpeg exited {status:?} {:.0} ms after SIGTERM",
        t.elapsed().as_secs_f64() * 1e3
    );
    assert_ne!(status.signal, Some(9), "{status:?}");
    assert!(reaped(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_output_degrades_the_encoder() {
    if !common::require("ffmpeg") {
        return;
    }
    let source = live_source();
    let enc = Encoder::spawn(&fake("garbage-after-ms=800"), options()).expect("spawn");
    let mut run = Run::with(enc, source, LIVE_SECONDS);
    let degraded = run
        .run(Duration::from_secs(8), true, |e| {
            health(e).is_some_and(|h| h.to != HealthState::Healthy)
        })
        .await
        .expect("a health transition");
    let h = health(&degraded).expect("a health event");
    let after = h.at.saturating_duration_since(run.started.expect("fed"));
    println!(
        "detection: garbage on stdout from 800 ms → {h} at {:.0} ms",
        after.as_secs_f64() * 1e3
    );
    // Bytes keep flowing, so it is no stall and no bitrate collapse; the
    // output frames stop, and cadence needs a full window (3 s of output
    // and input) before it judges.
    assert_eq!(h.to, HealthState::Degraded, "{h}");
    assert!(
        matches!(
            h.reason,
            Reason::FallingBehind { .. } | Reason::LowCadence { .. }
        ),
        "{h}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_binary_is_a_clear_error() {
    for program in ["/nonexistent/ffmpeg", "no-such-ffmpeg-switchyard"] {
        let spec = EncoderSpec {
            program: program.into(),
            ..fake("")
        };
        let e = match Encoder::spawn(&spec, options()) {
            Err(SpawnError::Missing(e)) => e,
            other => panic!("expected Missing, got {other:?}"),
        };
        let message = e.to_string();
        assert!(message.contains(program), "{message}");
        assert!(message.contains("install ffmpeg"), "{message}");
        assert!(spec.check_program().is_err());
    }
    assert_eq!(
        fake("").check_program().ok().as_deref(),
        Some(Path::new(FAKE))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spare_waits_healthy_until_fed() {
    let enc = Encoder::spawn(&fake(""), options()).expect("spawn");
    let pid = enc.pid();
    let mut run = Run::new(enc);
    run.run(Duration::from_millis(1200), false, |_| false).await;
    assert!(run.events.is_empty(), "{:?}", run.events);
    assert_eq!(run.output_bytes, 0);
    assert_eq!(run.enc.health(), HealthState::Healthy);
    run.run(Duration::from_millis(500), true, |_| false).await;
    assert!(run.output_bytes > 0);
    assert!(run.events.is_empty(), "{:?}", run.events);
    // The fake ends on SIGTERM (default action), or at the end of its
    // input if it reads that first: either way it is reaped, no zombie,
    // and well before the SIGKILL grace.
    let status = run.enc.stop(Duration::from_secs(1)).await;
    assert!(
        status.signal == Some(15) || status.code == Some(0),
        "{status:?}"
    );
    assert!(reaped(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_exits_at_once_fails_and_refuses_input() {
    let enc = Encoder::spawn(&fake("exit-at-once"), options()).expect("spawn");
    let pid = enc.pid();
    let mut run = Run::new(enc);
    let exited = run
        .run(Duration::from_secs(2), false, is_exited)
        .await
        .expect("Exited");
    assert!(
        matches!(exited, EncoderEvent::Exited { status, .. } if status.code == Some(1)),
        "{exited:?}"
    );
    assert!(run.events.iter().any(is_failed), "{:?}", run.events);
    assert_eq!(run.enc.health(), HealthState::Failed);
    // The next write hits EPIPE and closes the input for good.
    let batch = bytes::Bytes::from(vec![0x47; 188 * 7]);
    let mut refused = false;
    for _ in 0..50 {
        if run.enc.feed(Instant::now(), batch.clone()).is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "feeding a dead encoder keeps succeeding");
    assert!(reaped(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_without_blocking() {
    // A process that never reads stdin: once the pipe is full, the queue
    // fills to its limit and feed refuses at once.
    let spec = EncoderSpec {
        profile: "sleep".into(),
        program: "sleep".into(),
        args: vec!["10".into()],
        env: Vec::new(),
    };
    let enc = Encoder::spawn(
        &spec,
        EncoderOptions {
            queue_limit: 188 * 70,
            ..options()
        },
    )
    .expect("spawn");
    let batch = bytes::Bytes::from(vec![0x47; 188 * 7]);
    let t = Instant::now();
    let mut full = false;
    for _ in 0..100_000 {
        match enc.feed(Instant::now(), batch.clone()) {
            Ok(()) => {}
            Err(switchyard::encoder::FeedError::QueueFull { depth, limit }) => {
                assert!(depth <= limit);
                full = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(full, "the queue never filled");
    assert!(t.elapsed() < Duration::from_secs(1), "feed blocked");
    assert!(enc.queue_depth() > 0);
    enc.stop(Duration::from_millis(200)).await;
}
