//! One ffmpeg encoder process: spawn, feed, read, score, stop (the shell
//! around [`crate::health`], [`crate::progress`] and [`super::ffmpeg_args`]).
//!
//! [`Encoder::spawn`] starts the process and a supervisor task that owns
//! it. The task moves bytes and timers only; every verdict is the
//! [`HealthScorer`]'s:
//!
//! - **stdin**: [`Encoder::feed`] never blocks the stream task: batches go
//!   into a queue bounded in bytes ([`EncoderOptions::queue_limit`]) that a
//!   writer task drains into the pipe. A full queue refuses the batch
//!   ([`FeedError::QueueFull`]); its depth is a health signal. The first
//!   write error (EPIPE: the process died) closes the input for good.
//! - **stdout**: read into a `BytesMut`, split off and frozen as [`Bytes`]
//!   chunks (no copy) onto [`Encoder::output`]; each chunk is reported to the
//!   scorer and run through a TS demux whose video access units are the
//!   output frames (PTS lag, cadence).
//! - **stderr**: [`ProgressParser`] → `-progress` blocks to the scorer;
//!   other lines logged at `debug`, at most [`LOG_BURST`] per second.
//! - **/proc/PID/stat** every [`EncoderOptions::proc_period`] (250 ms):
//!   stopped (state `T`), zombie, CPU share; the queue depth is reported at
//!   the same time.
//! - **exit**: reaped by `Child::wait` (SIGCHLD), reported at once.
//!
//! Health transitions arrive on [`Encoder::events`], then
//! [`EncoderEvent::Exited`] when the process is gone.
//!
//! A **spare** is an encoder spawned and not fed: the scorer's stall and
//! first-output clocks only run once input is owed, so a spare waits on
//! stdin indefinitely, Healthy, while `/proc` sampling still catches a spare
//! that dies or is stopped.
//!
//! [`Encoder::stop`] sends SIGTERM, SIGKILL after a grace period, and
//! always reaps; dropping an [`Encoder`] kills the process
//! (`kill_on_drop`).
//!
//! The output channel applies backpressure: a consumer that does not drain
//! [`Encoder::output`] stops stdout being read, and the encoder then looks
//! stalled. The stream task must drain it (or drop the encoder).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::sync::{Notify, mpsc, oneshot};

use super::args::{StreamLayout, ffmpeg_args};
use super::profile::{FfmpegMissing, Profile};
use crate::health::{ExitStatus, HealthEvent, HealthScorer, HealthSettings, parse_proc_stat};
use crate::progress::{ProgressEvent, ProgressParser};
use crate::ts::Timestamp;
use crate::ts::demux::{AccessUnit, DemuxHandler, StreamDemux};

/// Stderr log lines logged per second; the rest are counted.
pub const LOG_BURST: u32 = 20;

/// What to run: the program, its arguments and extra environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderSpec {
    /// The profile's name, for messages.
    pub profile: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Added to the inherited environment.
    pub env: Vec<(OsString, OsString)>,
}

impl EncoderSpec {
    /// The ffmpeg command of `profile` for a stream laid out as `layout`;
    /// `None` for a passthrough profile, which runs no process.
    pub fn from_profile(profile: &Profile, layout: &StreamLayout) -> Option<EncoderSpec> {
        Some(EncoderSpec {
            profile: profile.name().to_owned(),
            program: profile.ffmpeg().to_path_buf(),
            args: ffmpeg_args(profile, layout)?,
            env: Vec::new(),
        })
    }

    /// Checks that the program can be found (a path that exists, or a name
    /// in `PATH`) and is executable: the start-up check that turns a
    /// missing ffmpeg into advice rather than a failing stream.
    pub fn check_program(&self) -> Result<PathBuf, FfmpegMissing> {
        find_program(&self.program).ok_or_else(|| self.missing())
    }

    fn missing(&self) -> FfmpegMissing {
        FfmpegMissing {
            profile: self.profile.clone(),
            path: self.program.display().to_string(),
        }
    }
}

fn find_program(program: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 || program.is_absolute() {
        return executable(program).then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

/// Tuning of the shell (the thresholds are in [`HealthSettings`]).
#[derive(Debug, Clone)]
pub struct EncoderOptions {
    pub health: HealthSettings,
    /// Bytes the stdin queue may hold; a batch beyond it is refused.
    /// Default 4 MiB (4× the scorer's Degraded threshold).
    pub queue_limit: u64,
    /// Chunks [`Encoder::output`] holds before stdout reading waits.
    pub output_capacity: usize,
    /// Period of `/proc/PID/stat` samples. Default 250 ms.
    pub proc_period: Duration,
    /// A label for logs: stream and encoder, e.g. `live/cam1#3`.
    pub label: String,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        EncoderOptions {
            health: HealthSettings::default(),
            queue_limit: 4 << 20,
            output_capacity: 1024,
            proc_period: Duration::from_millis(250),
            label: String::new(),
        }
    }
}

/// What the supervisor reports.
#[derive(Debug, Clone, PartialEq)]
pub enum EncoderEvent {
    /// A health state change, with its reason and when it was decided.
    Health(HealthEvent),
    /// The process is gone and reaped. `at` is when the reap was seen.
    Exited { status: ExitStatus, at: Instant },
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error(transparent)]
    Missing(#[from] FfmpegMissing),
    #[error("profile `{profile}`: cannot start `{program}`: {source}")]
    Io {
        profile: String,
        program: String,
        source: std::io::Error,
    },
}

/// Why [`Encoder::feed`] refused a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("the encoder's stdin queue is full ({depth} of {limit} bytes)")]
    QueueFull { depth: u64, limit: u64 },
    #[error("the encoder's stdin is closed (the process exited or input was finished)")]
    Closed,
}

/// State shared by the feeder (the stream task) and the supervisor.
#[derive(Debug)]
struct Shared {
    scorer: Mutex<HealthScorer>,
    /// Wakes the supervisor when input may have moved the scorer's
    /// deadline or queued an event.
    wake: Notify,
    queue_depth: AtomicU64,
    input_closed: AtomicBool,
    fed_bytes: AtomicU64,
    refused_bytes: AtomicU64,
}

impl Shared {
    fn scorer(&self) -> MutexGuard<'_, HealthScorer> {
        // A panic while holding the lock poisons it; the scorer is still
        // the best state there is.
        self.scorer.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running encoder process. See the module docs.
#[derive(Debug)]
pub struct Encoder {
    pid: u32,
    started: Instant,
    shared: Arc<Shared>,
    input: Option<mpsc::UnboundedSender<Bytes>>,
    queue_limit: u64,
    stop: Option<oneshot::Sender<(Duration, oneshot::Sender<ExitStatus>)>>,
    /// TS from the process's stdout, in order. Closed at stdout EOF.
    pub output: mpsc::Receiver<Bytes>,
    /// Health transitions, then [`EncoderEvent::Exited`]. Closed when the
    /// supervisor ends.
    pub events: mpsc::UnboundedReceiver<EncoderEvent>,
}

impl Encoder {
    /// Starts `spec`. A program that cannot be found or executed is
    /// [`SpawnError::Missing`], with install advice.
    pub fn spawn(spec: &EncoderSpec, options: EncoderOptions) -> Result<Encoder, SpawnError> {
        let mut command = Command::new(&spec.program);
        command
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                SpawnError::Missing(spec.missing())
            }
            _ => SpawnError::Io {
                profile: spec.profile.clone(),
                program: spec.program.display().to_string(),
                source: e,
            },
        })?;
        let started = Instant::now();
        let pid = child.id().unwrap_or(0);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            // Not reachable: all three were asked to be piped.
            return Err(SpawnError::Io {
                profile: spec.profile.clone(),
                program: spec.program.display().to_string(),
                source: std::io::Error::other("a pipe of the child is missing"),
            });
        };
        let shared = Arc::new(Shared {
            scorer: Mutex::new(HealthScorer::new(options.health.clone(), started)),
            wake: Notify::new(),
            queue_depth: AtomicU64::new(0),
            input_closed: AtomicBool::new(false),
            fed_bytes: AtomicU64::new(0),
            refused_bytes: AtomicU64::new(0),
        });
        let (input_tx, input_rx) = mpsc::unbounded_channel();
        let (output_tx, output_rx) = mpsc::channel(options.output_capacity.max(1));
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        tokio::spawn(write_stdin(stdin, input_rx, Arc::clone(&shared)));
        let supervisor = Supervisor {
            label: options.label.clone(),
            pid,
            shared: Arc::clone(&shared),
            output: output_tx,
            events: events_tx,
            proc_period: options.proc_period,
            demux: StreamDemux::new(),
            progress: ProgressParser::new(),
            log: LogLimiter::default(),
        };
        tokio::spawn(supervisor.run(child, stdout, stderr, stop_rx));
        tracing::debug!(encoder = %options.label, pid, program = %spec.program.display(), "encoder started");
        Ok(Encoder {
            pid,
            started,
            shared,
            input: Some(input_tx),
            queue_limit: options.queue_limit,
            stop: Some(stop_tx),
            output: output_rx,
            events: events_rx,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// When the process was spawned.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Queues a batch of TS for stdin, never waiting. The batch is reported
    /// to the scorer as input offered, at `now`.
    pub fn feed(&self, now: Instant, batch: Bytes) -> Result<(), FeedError> {
        let Some(input) = &self.input else {
            return Err(FeedError::Closed);
        };
        if self.shared.input_closed.load(Ordering::Acquire) {
            return Err(FeedError::Closed);
        }
        let len = batch.len() as u64;
        let depth = self.shared.queue_depth.load(Ordering::Acquire);
        if depth.saturating_add(len) > self.queue_limit {
            self.shared.refused_bytes.fetch_add(len, Ordering::Relaxed);
            self.shared.scorer().on_queue_depth(now, depth);
            self.shared.wake.notify_one();
            return Err(FeedError::QueueFull {
                depth,
                limit: self.queue_limit,
            });
        }
        self.shared.queue_depth.fetch_add(len, Ordering::AcqRel);
        if input.send(batch).is_err() {
            self.shared.queue_depth.fetch_sub(len, Ordering::AcqRel);
            return Err(FeedError::Closed);
        }
        self.shared.fed_bytes.fetch_add(len, Ordering::Relaxed);
        {
            let mut scorer = self.shared.scorer();
            scorer.on_input(now, batch_len(len));
            scorer.on_queue_depth(now, depth.saturating_add(len));
        }
        self.shared.wake.notify_one();
        Ok(())
    }

    /// A video frame with this PTS was in input already fed (the feeder's
    /// demux found it): the input side of cadence and PTS lag.
    pub fn input_frame(&self, now: Instant, pts: Timestamp) {
        self.shared.scorer().on_input_frame(now, pts);
        self.shared.wake.notify_one();
    }

    /// Closes stdin once the queue is written: ffmpeg finishes and exits.
    pub fn finish_input(&mut self) {
        self.input = None;
    }

    /// Bytes queued for stdin and not yet written.
    pub fn queue_depth(&self) -> u64 {
        self.shared.queue_depth.load(Ordering::Acquire)
    }

    /// Bytes accepted by [`Encoder::feed`] and refused by it, so far.
    pub fn fed_and_refused_bytes(&self) -> (u64, u64) {
        (
            self.shared.fed_bytes.load(Ordering::Relaxed),
            self.shared.refused_bytes.load(Ordering::Relaxed),
        )
    }

    /// The scorer's current verdict.
    pub fn health(&self) -> crate::health::HealthState {
        self.shared.scorer().state()
    }

    /// The process's CPU share of one core, from `/proc` (for placement).
    pub fn cpu_share(&self) -> Option<f64> {
        self.shared.scorer().cpu_share()
    }

    /// Stops the process: SIGTERM, SIGKILL if it has not exited after
    /// `grace`, and reaps it. Stdout is read (and forwarded) meanwhile, so
    /// ffmpeg can finish writing. Returns how it ended.
    pub async fn stop(mut self, grace: Duration) -> ExitStatus {
        let (tx, rx) = oneshot::channel();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send((grace, tx));
        }
        self.input = None;
        // Drain the output so a process finishing its last writes is not
        // blocked by us; the caller is done with it.
        let drain = async {
            while self.output.recv().await.is_some() {}
            std::future::pending::<ExitStatus>().await
        };
        tokio::select! {
            // The supervisor always answers unless it panicked.
            status = rx => status.unwrap_or(ExitStatus { code: None, signal: None }),
            status = drain => status,
        }
    }
}

fn batch_len(len: u64) -> usize {
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// Writes queued batches to stdin until the queue closes or a write fails
/// (EPIPE: the process is gone), then closes stdin.
async fn write_stdin(
    mut stdin: tokio::process::ChildStdin,
    mut queue: mpsc::UnboundedReceiver<Bytes>,
    shared: Arc<Shared>,
) {
    while let Some(batch) = queue.recv().await {
        let len = batch.len() as u64;
        let result = stdin.write_all(&batch).await;
        shared.queue_depth.fetch_sub(len, Ordering::AcqRel);
        if let Err(e) = result {
            tracing::debug!(error = %e, "encoder stdin closed");
            shared.input_closed.store(true, Ordering::Release);
            break;
        }
    }
    shared.input_closed.store(true, Ordering::Release);
    // Queued batches are dropped; their bytes no longer count.
    queue.close();
    while let Some(batch) = queue.recv().await {
        shared
            .queue_depth
            .fetch_sub(batch.len() as u64, Ordering::AcqRel);
    }
}

/// Output video access units found in one stdout chunk.
#[derive(Debug, Default)]
struct OutputFrames(Vec<Timestamp>);

impl DemuxHandler for OutputFrames {
    fn on_access_unit(&mut self, au: &AccessUnit) {
        if let Some(pts) = au.pts {
            self.0.push(pts);
        }
    }
}

/// Rate limit of stderr log lines.
#[derive(Debug, Default)]
struct LogLimiter {
    window_start: Option<Instant>,
    in_window: u32,
    suppressed: u64,
}

impl LogLimiter {
    fn allow(&mut self, now: Instant) -> bool {
        let fresh = self
            .window_start
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if fresh {
            self.window_start = Some(now);
            self.in_window = 0;
        }
        self.in_window += 1;
        if self.in_window > LOG_BURST {
            self.suppressed += 1;
            false
        } else {
            true
        }
    }
}

struct Supervisor {
    label: String,
    pid: u32,
    shared: Arc<Shared>,
    output: mpsc::Sender<Bytes>,
    events: mpsc::UnboundedSender<EncoderEvent>,
    proc_period: Duration,
    demux: StreamDemux,
    progress: ProgressParser,
    log: LogLimiter,
}

const READ_CHUNK: usize = 64 * 1024;

impl Supervisor {
    async fn run(
        mut self,
        mut child: Child,
        mut stdout: ChildStdout,
        mut stderr: ChildStderr,
        mut stop_rx: oneshot::Receiver<(Duration, oneshot::Sender<ExitStatus>)>,
    ) {
        let mut out_buf = BytesMut::with_capacity(READ_CHUNK);
        let mut err_buf = BytesMut::with_capacity(4096);
        let mut stdout_open = true;
        let mut stderr_open = true;
        let mut stop_listening = true;
        let mut proc_tick = tokio::time::interval(self.proc_period);
        proc_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // (SIGKILL deadline, reply) once a stop was asked.
        let mut stopping: Option<(tokio::time::Instant, oneshot::Sender<ExitStatus>)> = None;
        let mut killed = false;

        let status = loop {
            let deadline = self.shared.scorer().poll_timeout();
            let health_timer = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let kill_at = stopping.as_ref().map(|(at, _)| *at).filter(|_| !killed);
            let kill_timer = async {
                match kill_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            if out_buf.capacity() - out_buf.len() < READ_CHUNK / 4 {
                out_buf.reserve(READ_CHUNK);
            }
            tokio::select! {
                biased;
                status = child.wait() => break to_status(status),
                read = stdout.read_buf(&mut out_buf), if stdout_open => match read {
                    Ok(0) | Err(_) => stdout_open = false,
                    Ok(_) => {
                        let chunk = out_buf.split().freeze();
                        self.on_stdout(&chunk);
                        let _ = self.output.send(chunk).await;
                    }
                },
                read = stderr.read_buf(&mut err_buf), if stderr_open => match read {
                    Ok(0) | Err(_) => {
                        stderr_open = false;
                        self.progress.finish();
                        self.drain_progress();
                    }
                    Ok(_) => {
                        self.progress.push(&err_buf);
                        err_buf.clear();
                        self.drain_progress();
                    }
                },
                () = health_timer => self.shared.scorer().handle_timeout(Instant::now()),
                () = self.shared.wake.notified() => {}
                _ = proc_tick.tick() => self.sample_proc(),
                asked = &mut stop_rx, if stop_listening && stopping.is_none() => {
                    stop_listening = false;
                    if let Ok((grace, reply)) = asked {
                        signal(self.pid, nix::sys::signal::Signal::SIGTERM);
                        stopping = Some((tokio::time::Instant::now() + grace, reply));
                    }
                }
                () = kill_timer => {
                    killed = true;
                    signal(self.pid, nix::sys::signal::Signal::SIGKILL);
                }
            }
            self.forward_health();
        };
        let at = Instant::now();
        self.shared.scorer().on_exit(at, status);
        self.forward_health();
        let _ = self.events.send(EncoderEvent::Exited { status, at });
        tracing::debug!(encoder = %self.label, pid = self.pid, ?status, "encoder exited");
        // The rest of stdout (already written before the exit) is still
        // output; bounded, in case a grandchild holds the pipe open.
        let drain = async {
            while stdout_open {
                match stdout.read_buf(&mut out_buf).await {
                    Ok(0) | Err(_) => stdout_open = false,
                    Ok(_) => {
                        let chunk = out_buf.split().freeze();
                        let _ = self.output.send(chunk).await;
                    }
                }
                if out_buf.capacity() - out_buf.len() < READ_CHUNK / 4 {
                    out_buf.reserve(READ_CHUNK);
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(200), drain).await;
        if self.log.suppressed > 0 {
            tracing::debug!(encoder = %self.label, suppressed = self.log.suppressed, "encoder stderr lines not logged");
        }
        if let Some((_, reply)) = stopping {
            let _ = reply.send(status);
        } else if let Ok((_, reply)) = stop_rx.try_recv() {
            let _ = reply.send(status);
        }
    }

    fn on_stdout(&mut self, chunk: &Bytes) {
        let now = Instant::now();
        let mut frames = OutputFrames::default();
        self.demux.push(chunk, &mut frames);
        let mut scorer = self.shared.scorer();
        scorer.on_stdout(now, chunk.len());
        for pts in frames.0 {
            scorer.on_output_frame(now, pts);
        }
    }

    fn drain_progress(&mut self) {
        let now = Instant::now();
        while let Some(event) = self.progress.poll_event() {
            match event {
                ProgressEvent::Progress(block) => self.shared.scorer().on_progress(now, &block),
                ProgressEvent::Log(line) => {
                    if self.log.allow(now) {
                        tracing::debug!(encoder = %self.label, pid = self.pid, "ffmpeg: {}", line.text);
                    }
                }
            }
        }
    }

    fn sample_proc(&mut self) {
        let now = Instant::now();
        let depth = self.shared.queue_depth.load(Ordering::Acquire);
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .ok()
            .and_then(|text| parse_proc_stat(&text).ok());
        let run_ns = run_time_ns(self.pid);
        let mut scorer = self.shared.scorer();
        if let Some(stat) = stat {
            scorer.on_proc_sample_with_run_time(now, &stat, run_ns);
        }
        scorer.on_queue_depth(now, depth);
    }

    fn forward_health(&mut self) {
        loop {
            let Some(event) = self.shared.scorer().poll_event() else {
                break;
            };
            tracing::info!(encoder = %self.label, pid = self.pid, from = %event.from, to = %event.to, reason = %event.reason, "encoder health");
            let _ = self.events.send(EncoderEvent::Health(event));
        }
    }
}

/// Time the process's threads have spent on a CPU, ns: the first field of
/// each `/proc/PID/task/TID/schedstat` (kernels with schedstats; `None`
/// elsewhere).
fn run_time_ns(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = None;
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("schedstat")).ok();
        if let Some(ns) = text
            .as_deref()
            .and_then(|t| t.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
        {
            total = Some(total.unwrap_or(0u64).saturating_add(ns));
        }
    }
    total
}

fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid)
        && pid > 0
    {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

fn to_status(status: std::io::Result<std::process::ExitStatus>) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => ExitStatus {
            code: s.code(),
            signal: s.signal(),
        },
        Err(_) => ExitStatus {
            code: None,
            signal: None,
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_rate_limited_per_second() {
        let mut l = LogLimiter::default();
        let t0 = Instant::now();
        let allowed = (0..50).filter(|_| l.allow(t0)).count();
        assert_eq!(allowed, LOG_BURST as usize);
        assert_eq!(l.suppressed, 30);
        assert!(l.allow(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn programs_are_found_in_path_or_by_path() {
        assert!(find_program(Path::new("sh")).is_some());
        assert!(find_program(Path::new("/bin/sh")).is_some());
        assert!(find_program(Path::new("no-such-program-switchyard")).is_none());
        assert!(find_program(Path::new("/nonexistent/ffmpeg")).is_none());
        let spec = EncoderSpec {
            profile: "hd".into(),
            program: "/nonexistent/ffmpeg".into(),
            args: Vec::new(),
            env: Vec::new(),
        };
        let e = spec.check_program().expect_err("missing");
        assert!(e.to_string().contains("sudo apt install ffmpeg"), "{e}");
    }
}
