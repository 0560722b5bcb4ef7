//! Shared harness of the end-to-end tests: an in-process router on
//! loopback ports, child processes killed by PID when dropped, and the
//! probe oracle.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use bytes::Bytes;
use switchyard::app::Router;
use switchyard::app::metrics::{StreamSnapshot, SwitchRecord};
use switchyard::config::{self, Config};
use switchyard::ingest::srt::{ConnId, ConnStats, Counters};
use switchyard::output::{Batch, FeedSender, Offer};
use switchyard::probe::{Prober, Report};

/// The capture every publisher sends: H.264 + AAC, 4 s, 100 frames, an IDR
/// every 25 frames (closed GOPs).
pub const CAPTURE: &str = "testdata/h264_aac_closed_gop.ts";
pub const CAPTURE_FRAMES: u64 = 100;
pub const CAPTURE_IDRS: usize = 4;

pub fn capture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(CAPTURE)
}

/// The capture cut into its 188-byte TS packets.
pub fn capture_packets() -> Vec<Bytes> {
    let data = std::fs::read(capture_path()).expect("testdata capture");
    data.chunks(188).map(Bytes::copy_from_slice).collect()
}

/// Offers a batch to an output's feed, waiting while the feed is full;
/// fails if it stays full for 1 s (an output must keep draining whatever
/// happens) or if the output task has ended.
pub async fn offer(tx: &FeedSender, batch: Batch) {
    offer_within(tx, batch, Duration::from_secs(1)).await;
}

/// [`offer`], failing if the feed stays full for `limit`.
pub async fn offer_within(tx: &FeedSender, mut batch: Batch, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tx.offer(batch) {
            Offer::Sent => return,
            Offer::Full(b) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the feed stayed full for {} s",
                    limit.as_secs_f64()
                );
                batch = b;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Offer::Closed => panic!("the output task ended"),
        }
    }
}

/// Whether an external tool is installed. Without it a case is skipped
/// with a message, except under `tools/test.sh` (CI), which installs every
/// tool and sets `SWITCHYARD_REQUIRE_TOOLS`: there a missing tool fails.
pub fn require(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("SWITCHYARD_REQUIRE_TOOLS").is_none(),
            "{tool} is not installed, and tools/test.sh should have installed it"
        );
        eprintln!("skipped: {tool} is not installed");
    }
    found
}

/// A child process, killed (by PID) and reaped when dropped.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, command: &mut Command) -> Proc {
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child,
            name: name.to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh directory for one test's files, removed when dropped.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchyard-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A router on loopback: the SRT port and every UDP/RTP input are moved to
/// free ports of 127.0.0.1 (port 0), so tests run in parallel.
pub struct TestRouter {
    runtime: tokio::runtime::Runtime,
    router: Option<Router>,
    pub srt: SocketAddr,
}

impl TestRouter {
    pub fn start(toml: &str) -> TestRouter {
        let mut config: Config = config::parse(toml, "test.toml").expect("a valid test config");
        config.srt.listen = "127.0.0.1:0".parse().expect("address");
        for stream in &mut config.streams {
            for input in &mut stream.inputs {
                if input.multicast.is_none() {
                    input.listen = "127.0.0.1:0".parse().expect("address");
                }
            }
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let router = runtime
            .block_on(Router::start(Arc::new(config)))
            .expect("the router starts");
        let srt = router.srt_addr();
        TestRouter {
            runtime,
            router: Some(router),
            srt,
        }
    }

    fn router(&self) -> &Router {
        self.router.as_ref().expect("running")
    }

    /// The actual address of a stream's `n`th UDP/RTP input.
    pub fn input(&self, stream: &str, n: usize) -> SocketAddr {
        self.router()
            .input_addrs()
            .iter()
            .filter(|(id, _)| id.as_str() == stream)
            .nth(n)
            .map(|(_, addr)| *addr)
            .unwrap_or_else(|| panic!("stream {stream} has no input {n}"))
    }

    /// Bytes received so far by a stream (main + backup).
    pub fn received(&self, stream: &str) -> u64 {
        self.router()
            .registry()
            .snapshot()
            .iter()
            .find(|(id, _)| id.as_str() == stream)
            .map(|(_, h)| {
                let s = h.metrics.snapshot();
                s.main_bytes + s.backup_bytes
            })
            .unwrap_or(0)
    }

    /// Waits until a stream has received data, at most `timeout`.
    pub fn wait_for_data(&self, stream: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.received(stream) > 0)
    }

    /// The SRT port's counters (refreshed by the router every second).
    pub fn srt_counters(&self) -> Counters {
        self.router()
            .srt_metrics()
            .counters
            .lock()
            .expect("metrics lock")
            .clone()
    }

    /// The SRT connections (refreshed by the router every second).
    pub fn srt_connections(&self) -> Vec<(ConnId, ConnStats)> {
        self.router()
            .srt_metrics()
            .connections
            .lock()
            .expect("metrics lock")
            .clone()
    }

    /// Refused SRT callers by reject code.
    pub fn srt_rejections(&self) -> BTreeMap<u16, u64> {
        self.router()
            .srt_metrics()
            .rejections
            .lock()
            .expect("metrics lock")
            .clone()
    }

    /// A copy of a stream's metrics.
    pub fn stream_metrics(&self, stream: &str) -> Option<StreamSnapshot> {
        self.router()
            .registry()
            .snapshot()
            .iter()
            .find(|(id, _)| id.as_str() == stream)
            .map(|(_, h)| h.metrics.snapshot())
    }

    /// A stream's recent input switches, oldest first.
    pub fn switch_events(&self, stream: &str) -> Vec<SwitchRecord> {
        self.router()
            .registry()
            .snapshot()
            .iter()
            .find(|(id, _)| id.as_str() == stream)
            .map(|(_, h)| h.metrics.switch_events())
            .unwrap_or_default()
    }

    pub fn srt_panics(&self) -> u64 {
        self.router()
            .srt_metrics()
            .counters
            .lock()
            .expect("metrics lock")
            .panics
    }

    /// Graceful shutdown; true if every task finished in time.
    pub fn stop(mut self) -> bool {
        let router = self.router.take().expect("running");
        self.runtime
            .block_on(router.shutdown(Duration::from_secs(5)))
    }
}

impl Drop for TestRouter {
    fn drop(&mut self) {
        if let Some(router) = self.router.take() {
            self.runtime
                .block_on(router.shutdown(Duration::from_secs(5)));
        }
    }
}

/// A free UDP port of 127.0.0.1 (released just before use: a small race
/// with other processes, acceptable on a test machine).
pub fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("address").port()
}

pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn probe_bytes(data: &[u8]) -> Report {
    let mut prober = Prober::new();
    prober.push(data);
    prober.finish().expect("a transport stream")
}

pub fn probe_file(path: &Path) -> Report {
    let data =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    probe_bytes(&data)
}

/// ffmpeg sending the capture in real time, stream copy, to `url`, in the
/// muxer `format` (`mpegts`, `rtp_mpegts`).
pub fn ffmpeg_send(format: &str, url: &str) -> Command {
    ffmpeg_send_looped(format, url, 0)
}

/// The capture played `plays` times into one file of `dir` (ffmpeg
/// `-stream_loop`, stream copy), and its probe report: the reference a
/// relay of it is judged against ([`assert_relayed_reference`]). ffmpeg's
/// loop is not seamless (the first IDR of each repeat is not one), so the
/// loops are not `plays` copies of the capture.
pub fn looped_capture(dir: &TempDir, plays: u32) -> (PathBuf, Report) {
    let path = dir.path(&format!("capture-x{plays}.ts"));
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-stream_loop", &plays.saturating_sub(1).to_string(), "-i"])
        .arg(capture_path())
        .args(["-c", "copy", "-f", "mpegts"])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not loop the capture");
    let report = probe_file(&path);
    (path, report)
}

/// ffmpeg sending `file` in real time, stream copy, to `url`.
pub fn ffmpeg_send_file(format: &str, url: &str, file: &Path) -> Command {
    let mut command = Command::new("ffmpeg");
    command
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-re",
            "-i",
        ])
        .arg(file)
        .args(["-c", "copy", "-f", format])
        .arg(url)
        .stdout(Stdio::null());
    command
}

/// The checks of [`assert_relayed`] against the probe of what was sent:
/// the same IDRs, the same frames but for `tail_loss` at the end, no CC
/// error, monotonic video, audio kept.
pub fn assert_relayed_reference(case: &str, report: &Report, sent: &Report, tail_loss: u64) {
    assert_eq!(report.cc_errors, 0, "{case}: CC errors: {report}");
    let video = report
        .video
        .as_ref()
        .unwrap_or_else(|| panic!("{case}: no video"));
    let reference = sent.video.as_ref().expect("the reference has video");
    assert_eq!(video.frames_before_first_idr, 0, "{case}: starts at an IDR");
    assert_eq!(video.pts_backwards, 0, "{case}: {report}");
    assert_eq!(video.duplicate_pts, 0, "{case}: {report}");
    assert_eq!(video.idr_pts, reference.idr_pts, "{case}: IDRs");
    assert!(
        video.frames + tail_loss >= reference.frames && video.frames <= reference.frames,
        "{case}: {} frames of {}",
        video.frames,
        reference.frames
    );
    assert!(!report.audio.is_empty(), "{case}: audio kept");
}

/// [`ffmpeg_send`] with the capture played `1 + loops` times (timestamps
/// continue across loops).
pub fn ffmpeg_send_looped(format: &str, url: &str, loops: u32) -> Command {
    let mut command = Command::new("ffmpeg");
    command
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
        .args(["-stream_loop", &loops.to_string(), "-i"])
        .arg(capture_path())
        .args(["-c", "copy", "-f", format])
        .arg(url)
        .stdout(Stdio::null());
    command
}

/// Frames an SRT publisher may lose as it closes (see
/// [`assert_relayed_within`]); UDP and RTP publishers lose none.
pub const SRT_TAIL_LOSS: u64 = 3;

/// The standard checks of a relayed capture: no CC error, monotonic video,
/// and the frames and IDRs that were sent — all of them when `whole`, else
/// a tail of the capture starting at one of its IDRs (a player that joined
/// late).
pub fn assert_relayed(case: &str, report: &Report, whole: bool) {
    assert_relayed_within(case, report, whole, 1);
}

/// [`assert_relayed`], allowing `tail_loss` frames lost at the very end.
/// A libsrt caller that closes right after its last packet loses up to a
/// few of them in flight (libsrt listeners lose them too:
/// docs/srt-ingest-notes.md §4a).
pub fn assert_relayed_within(case: &str, report: &Report, whole: bool, tail_loss: u64) {
    assert_eq!(report.cc_errors, 0, "{case}: CC errors: {report:?}");
    let video = report
        .video
        .as_ref()
        .unwrap_or_else(|| panic!("{case}: no video"));
    assert_eq!(video.frames_before_first_idr, 0, "{case}: starts at an IDR");
    assert_eq!(video.pts_backwards, 0, "{case}");
    assert_eq!(video.duplicate_pts, 0, "{case}");
    let idrs = video.idr_pts.len();
    if whole {
        assert_eq!(idrs, CAPTURE_IDRS, "{case}: IDRs {:?}", video.idr_pts);
        assert!(
            video.frames >= CAPTURE_FRAMES - tail_loss && video.frames <= CAPTURE_FRAMES,
            "{case}: {} frames",
            video.frames
        );
    } else {
        assert!(idrs >= 1, "{case}: IDRs {:?}", video.idr_pts);
        let expected = 25 * idrs as u64;
        assert!(
            video.frames >= expected - tail_loss && video.frames <= expected,
            "{case}: {} frames for {idrs} GOPs",
            video.frames
        );
    }
    assert!(
        video.gop_frames.iter().all(|&g| g <= 25),
        "{case}: GOPs {:?}",
        video.gop_frames
    );
    assert!(!report.audio.is_empty(), "{case}: audio kept");
}
