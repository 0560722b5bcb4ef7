//! The scoring state machine.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::proc_stat::ProcStat;
use super::reason::{Condition, ExitStatus, HealthEvent, HealthState, Reason};
use super::settings::HealthSettings;
use crate::probe::Unwrapper;
use crate::progress::Progress;
use crate::ts::Timestamp;

/// Samples kept per sliding window, whatever the frame rate: bounds memory
/// if a caller reports frames absurdly fast.
const MAX_WINDOW_SAMPLES: usize = 16_384;

/// Bitrate is accounted in buckets of this length.
const BUCKET: Duration = Duration::from_millis(500);

/// See the module docs.
#[derive(Debug)]
pub struct HealthScorer {
    s: HealthSettings,
    state: HealthState,
    events: VecDeque<HealthEvent>,
    stall: StallClock,
    stopped_since: Option<Instant>,
    cpu: Option<(Instant, u64)>,
    /// Run time of the process's threads at the last sample, ns.
    run_ns: Option<u64>,
    cpu_share: Option<f64>,
    /// (arrival, out_time_us) of recent `-progress` blocks.
    blocks: VecDeque<(Instant, i64)>,
    speed: Option<f64>,
    slow_since: Option<Instant>,
    in_frames: VecDeque<Instant>,
    out_frames: VecDeque<Instant>,
    first_output_frame: Option<Instant>,
    low_cadence_since: Option<Instant>,
    lag: LagTracker,
    out_rate: RateTracker,
    in_rate: RateTracker,
    queue_bytes: u64,
    active: Vec<Condition>,
    clear_since: Option<Instant>,
}

impl HealthScorer {
    /// A scorer for an encoder started at `now`.
    pub fn new(settings: HealthSettings, now: Instant) -> HealthScorer {
        let ewma = settings.ewma_window;
        let recent = settings.collapse_for;
        HealthScorer {
            s: settings,
            state: HealthState::Healthy,
            events: VecDeque::new(),
            stall: StallClock::default(),
            stopped_since: None,
            cpu: None,
            run_ns: None,
            cpu_share: None,
            blocks: VecDeque::new(),
            speed: None,
            slow_since: None,
            in_frames: VecDeque::new(),
            out_frames: VecDeque::new(),
            first_output_frame: None,
            low_cadence_since: None,
            lag: LagTracker::default(),
            out_rate: RateTracker::new(now, ewma, recent),
            in_rate: RateTracker::new(now, ewma, recent),
            queue_bytes: 0,
            active: Vec::new(),
            clear_since: None,
        }
    }

    pub fn state(&self) -> HealthState {
        self.state
    }

    pub fn settings(&self) -> &HealthSettings {
        &self.s
    }

    /// Degraded conditions holding now.
    pub fn conditions(&self) -> &[Condition] {
        &self.active
    }

    /// Share of one core the process used between its last two `/proc`
    /// samples.
    pub fn cpu_share(&self) -> Option<f64> {
        self.cpu_share
    }

    /// Speed measured from `out_time` over `speed_window`.
    pub fn speed(&self) -> Option<f64> {
        self.speed
    }

    /// The output bitrate EWMA, bit/s.
    pub fn output_bps(&self) -> Option<f64> {
        self.out_rate.ewma
    }

    /// The next state change, oldest first.
    pub fn poll_event(&mut self) -> Option<HealthEvent> {
        self.events.pop_front()
    }

    /// When the shell must call [`HealthScorer::handle_timeout`] even if
    /// nothing else happens: the stall (or first-output) deadline and the
    /// end of the recovery hold.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == HealthState::Failed {
            return None;
        }
        let stall = self.stall.deadline(&self.s).map(|(at, _)| at);
        let recovery = match (self.state, self.clear_since) {
            (HealthState::Degraded, Some(since)) => since.checked_add(self.s.recovery_hold),
            _ => None,
        };
        [stall, recovery].into_iter().flatten().min()
    }

    /// Re-evaluates at `now` (at or after [`HealthScorer::poll_timeout`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.evaluate(now);
    }

    /// A chunk of `bytes` arrived on the encoder's stdout.
    pub fn on_stdout(&mut self, now: Instant, bytes: usize) {
        if self.failed() {
            return;
        }
        // A stall deadline that passed before this chunk is a stall the
        // shell was late to report; judge it first.
        self.evaluate(now);
        self.stall.stdout(now);
        self.out_rate.add(now, bytes as u64);
        self.evaluate(now);
    }

    /// `bytes` of input were offered to the encoder (queued for its
    /// stdin, whether or not the pipe has taken them yet).
    pub fn on_input(&mut self, now: Instant, bytes: usize) {
        if self.failed() {
            return;
        }
        self.evaluate(now);
        self.stall.input(now, self.s.stall_timeout);
        self.in_rate.add(now, bytes as u64);
        self.evaluate(now);
    }

    /// The input demux found a video access unit (offered to the encoder).
    pub fn on_input_frame(&mut self, now: Instant, pts: Timestamp) {
        if self.failed() {
            return;
        }
        push_bounded(&mut self.in_frames, now);
        self.lag.input(pts);
        self.evaluate(now);
    }

    /// The output demux found a video access unit in the encoder's stdout.
    pub fn on_output_frame(&mut self, now: Instant, pts: Timestamp) {
        if self.failed() {
            return;
        }
        push_bounded(&mut self.out_frames, now);
        self.first_output_frame.get_or_insert(now);
        self.lag.output(pts);
        self.lag.sample(now, self.s.lag_window);
        self.evaluate(now);
    }

    /// A `-progress` block arrived.
    pub fn on_progress(&mut self, now: Instant, block: &Progress) {
        if self.failed() {
            return;
        }
        if let Some(t) = block.out_time_us {
            self.measure_speed(now, t);
        }
        self.evaluate(now);
    }

    /// A `/proc/PID/stat` sample.
    pub fn on_proc_sample(&mut self, now: Instant, stat: &ProcStat) {
        self.on_proc_sample_with_run_time(now, stat, None);
    }

    /// A `/proc/PID/stat` sample, with the time the process's threads
    /// have spent on a CPU (the sum of `/proc/PID/task/*/schedstat`'s
    /// first field, in ns) when the shell could read it.
    pub fn on_proc_sample_with_run_time(
        &mut self,
        now: Instant,
        stat: &ProcStat,
        run_ns: Option<u64>,
    ) {
        if self.failed() {
            return;
        }
        let ticks = stat.cpu_ticks();
        // CPU time spent since the last sample: the process ran in
        // between, whatever state both samples caught it in. `stat`
        // counts 10 ms ticks, which a run of a few ms may not show;
        // schedstat counts ns. (Output read since the last sample is no
        // sign: the pipe holds what was written before a stop.)
        let ran_ns = match (run_ns, self.run_ns) {
            (Some(now_ns), Some(before)) => now_ns > before,
            _ => false,
        };
        if run_ns.is_some() {
            self.run_ns = run_ns;
        }
        let ran = ran_ns || self.cpu.is_some_and(|(_, before)| ticks > before);
        if let Some((then, before)) = self.cpu {
            let dt = now.saturating_duration_since(then).as_secs_f64();
            if dt > 0.0 && self.s.clock_ticks_per_second > 0 {
                let used =
                    ticks.saturating_sub(before) as f64 / self.s.clock_ticks_per_second as f64;
                self.cpu_share = Some(used / dt);
            }
        }
        self.cpu = Some((now, ticks));
        match stat.state {
            'Z' | 'X' | 'x' => return self.fail(now, Reason::Zombie),
            'T' | 't' => {
                // Stopped *continuously*: a process stopped and continued
                // between samples (a SIGSTOP/SIGCONT duty cycle, a
                // debugger) is caught in `T` by sample after sample
                // without ever being stopped for long; its CPU time
                // advancing says so. Slowness is then the speed rules'.
                if ran {
                    self.stopped_since = None;
                }
                let since = *self.stopped_since.get_or_insert(now);
                let stopped_for = now.saturating_duration_since(since);
                if stopped_for >= self.s.stopped_for {
                    return self.fail(now, Reason::Stopped { stopped_for });
                }
            }
            _ => self.stopped_since = None,
        }
        self.evaluate(now);
    }

    /// The depth of the encoder's stdin queue, in bytes.
    pub fn on_queue_depth(&mut self, now: Instant, bytes: u64) {
        if self.failed() {
            return;
        }
        self.queue_bytes = bytes;
        self.evaluate(now);
    }

    /// The process exited.
    pub fn on_exit(&mut self, now: Instant, status: ExitStatus) {
        self.fail(now, Reason::Exited(status));
    }

    fn failed(&self) -> bool {
        self.state == HealthState::Failed
    }

    fn measure_speed(&mut self, now: Instant, out_time_us: i64) {
        self.blocks.push_back((now, out_time_us));
        // Keep the newest block at least `speed_window` old, drop older.
        while self
            .blocks
            .get(1)
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= self.s.speed_window)
        {
            self.blocks.pop_front();
        }
        if self.blocks.len() > MAX_WINDOW_SAMPLES {
            self.blocks.pop_front();
        }
        self.speed = self.blocks.front().and_then(|&(t0, out0)| {
            let wall = now.saturating_duration_since(t0);
            (wall >= self.s.speed_window)
                .then(|| out_time_us.saturating_sub(out0) as f64 / 1e6 / wall.as_secs_f64())
        });
        // Judge speed only while input flowed over the whole window: an
        // input pause slows every encoder.
        let window_start = self.blocks.front().map(|(t, _)| *t);
        let input_flowing = match (
            self.stall.flowing_since(now, self.s.stall_timeout),
            window_start,
        ) {
            (Some(run), Some(start)) => run <= start,
            _ => false,
        };
        match self.speed {
            Some(speed) if input_flowing && speed < self.s.slow_speed => {
                let since = *self.slow_since.get_or_insert(now);
                let lasted = now.saturating_duration_since(since);
                if lasted >= self.s.slow_for {
                    self.set(
                        now,
                        Condition::Slow,
                        Some(Reason::Slow {
                            speed,
                            threshold: self.s.slow_speed,
                            lasted,
                        }),
                    );
                }
            }
            _ => {
                self.slow_since = None;
                self.set(now, Condition::Slow, None);
            }
        }
    }

    fn evaluate(&mut self, now: Instant) {
        if self.failed() {
            return;
        }
        if let Some((deadline, reason)) = self.stall.deadline(&self.s)
            && now >= deadline
        {
            let reason = match reason {
                StallKind::Startup => Reason::NoFirstOutput {
                    waited: now.saturating_duration_since(self.stall.owed_since.unwrap_or(now)),
                },
                StallKind::Stall => Reason::Stalled {
                    silent_for: now
                        .saturating_duration_since(self.stall.last_stdout.unwrap_or(now)),
                },
            };
            return self.fail(now, reason);
        }
        self.check_cadence(now);
        self.check_lag(now);
        self.check_bitrate(now);
        self.check_queue(now);
        if self.state == HealthState::Degraded
            && self.active.is_empty()
            && let Some(since) = self.clear_since
        {
            let clear_for = now.saturating_duration_since(since);
            if clear_for >= self.s.recovery_hold {
                self.transition(now, HealthState::Healthy, Reason::Recovered { clear_for });
                self.clear_since = None;
            }
        }
    }

    fn check_cadence(&mut self, now: Instant) {
        let window = self.s.cadence_window;
        prune(&mut self.in_frames, now, window);
        prune(&mut self.out_frames, now, window);
        let warmed = self
            .first_output_frame
            .is_some_and(|t| now.saturating_duration_since(t) >= window);
        let input_flowing = self
            .stall
            .flowing_since(now, self.s.stall_timeout)
            .is_some_and(|t| now.saturating_duration_since(t) >= window);
        let (inn, out) = (self.in_frames.len(), self.out_frames.len());
        // Below 10 frames a window says nothing (a slide show, a pause).
        let low = warmed
            && input_flowing
            && inn >= 10
            && (out as f64) < self.s.cadence_min_ratio * inn as f64;
        if !low {
            self.low_cadence_since = None;
            return self.set(now, Condition::LowCadence, None);
        }
        let since = *self.low_cadence_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.s.cadence_for {
            let secs = window.as_secs_f64();
            self.set(
                now,
                Condition::LowCadence,
                Some(Reason::LowCadence {
                    output_fps: out as f64 / secs,
                    input_fps: inn as f64 / secs,
                }),
            );
        }
    }

    fn check_lag(&mut self, now: Instant) {
        let reason = match (self.lag.last_sample, self.lag.min()) {
            (Some(lag), Some(min)) if lag.saturating_sub(min) > ticks(self.s.lag_growth) => {
                Some(Reason::FallingBehind {
                    lag: from_ticks(lag),
                    min_lag: from_ticks(min),
                })
            }
            _ => None,
        };
        self.set(now, Condition::FallingBehind, reason);
    }

    fn check_bitrate(&mut self, now: Instant) {
        self.out_rate.roll(now);
        self.in_rate.roll(now);
        let warm = self.s.bitrate_warmup + self.s.collapse_for;
        let reason = match (
            self.out_rate.recent_and_reference(),
            self.in_rate.recent_and_reference(),
        ) {
            (Some((out, out_ref)), Some((inn, in_ref)))
                if self.out_rate.history >= warm
                    && out_ref > 0.0
                    && in_ref > 0.0
                    && out < self.s.collapse_ratio * out_ref
                    // A black slate collapses the input too: not the
                    // encoder's fault.
                    && inn >= 2.0 * self.s.collapse_ratio * in_ref =>
            {
                Some(Reason::BitrateCollapse {
                    kbps: out / 1000.0,
                    average_kbps: out_ref / 1000.0,
                })
            }
            _ => None,
        };
        self.set(now, Condition::BitrateCollapse, reason);
    }

    fn check_queue(&mut self, now: Instant) {
        let limit = self.s.queue_degraded_bytes;
        // A new encoder is handed the ring's backlog from its splice point
        // at once (a replacement after a stall: several GOPs) and works it
        // off faster than real time: a deep queue means nothing until it
        // has been producing output for `startup_timeout`.
        let settled = self
            .first_output_frame
            .is_some_and(|first| now >= first + self.s.startup_timeout);
        if self.queue_bytes >= limit && settled {
            let reason = Reason::QueueGrowing {
                bytes: self.queue_bytes,
                threshold: limit,
            };
            self.set(now, Condition::QueueGrowing, Some(reason));
        } else if self.queue_bytes < limit / 2 {
            self.set(now, Condition::QueueGrowing, None);
        }
    }

    /// Sets (`Some`) or clears (`None`) a Degraded condition.
    fn set(&mut self, now: Instant, condition: Condition, reason: Option<Reason>) {
        let held = self.active.contains(&condition);
        match reason {
            Some(reason) => {
                if !held {
                    self.active.push(condition);
                }
                self.clear_since = None;
                if self.state == HealthState::Healthy {
                    self.transition(now, HealthState::Degraded, reason);
                }
            }
            None if held => {
                self.active.retain(|c| *c != condition);
                if self.active.is_empty() {
                    self.clear_since = Some(now);
                }
            }
            None => {}
        }
    }

    fn fail(&mut self, now: Instant, reason: Reason) {
        if !self.failed() {
            self.transition(now, HealthState::Failed, reason);
        }
    }

    fn transition(&mut self, at: Instant, to: HealthState, reason: Reason) {
        let from = std::mem::replace(&mut self.state, to);
        self.events.push_back(HealthEvent {
            at,
            from,
            to,
            reason,
        });
    }
}

#[derive(Debug, Clone, Copy)]
enum StallKind {
    Startup,
    Stall,
}

/// When the encoder owes output: input was offered after its last stdout.
#[derive(Debug, Default)]
struct StallClock {
    last_stdout: Option<Instant>,
    last_input: Option<Instant>,
    /// Start of the current run of input without a gap of half the stall
    /// timeout.
    input_run_since: Option<Instant>,
    /// The stall clock's start, while output is owed.
    owed_since: Option<Instant>,
}

impl StallClock {
    fn stdout(&mut self, now: Instant) {
        self.last_stdout = Some(now);
        self.owed_since = None;
    }

    /// Input that follows a gap of at least half the stall timeout starts
    /// the clock at its own arrival, so that an encoder gets at least that
    /// long to answer input that resumes after a pause; otherwise the clock
    /// runs from the last stdout, so that a stall is detected exactly
    /// `stall_timeout` after the last output.
    fn input(&mut self, now: Instant, stall_timeout: Duration) {
        let resumed = self
            .last_input
            .is_none_or(|t| now.saturating_duration_since(t) >= stall_timeout / 2);
        if resumed {
            self.input_run_since = Some(now);
        }
        self.last_input = Some(now);
        if self.owed_since.is_none() {
            self.owed_since = Some(match self.last_stdout {
                Some(out) if !resumed => out,
                _ => now,
            });
        }
    }

    /// The start of the current input run, if input is still flowing.
    fn flowing_since(&self, now: Instant, stall_timeout: Duration) -> Option<Instant> {
        let last = self.last_input?;
        (now.saturating_duration_since(last) < stall_timeout / 2)
            .then_some(self.input_run_since)
            .flatten()
    }

    fn deadline(&self, s: &HealthSettings) -> Option<(Instant, StallKind)> {
        let owed = self.owed_since?;
        if self.last_stdout.is_none() {
            Some((owed.checked_add(s.startup_timeout)?, StallKind::Startup))
        } else {
            Some((owed.checked_add(s.stall_timeout)?, StallKind::Stall))
        }
    }
}

/// Input PTS − output PTS (90 kHz ticks), sampled at each output frame, and
/// its minimum over a window. Sampling at output frames only means a PTS
/// jump in the input (a publisher that paused or restarted) counts once the
/// encoder has answered it, not before.
#[derive(Debug, Default)]
struct LagTracker {
    last_sample: Option<i64>,
    unwrap: Unwrapper,
    in_last: Option<(Timestamp, i64)>,
    in_max: Option<i64>,
    out_max: Option<i64>,
    /// Monotonic deque: (time, lag) with increasing lags; front is the min.
    window: VecDeque<(Instant, i64)>,
}

impl LagTracker {
    fn input(&mut self, pts: Timestamp) {
        let t = self.unwrap.unwrap(pts);
        self.in_last = Some((pts, t));
        self.in_max = Some(self.in_max.map_or(t, |m| m.max(t)));
    }

    /// Output PTS are placed on the input's unwrapped timeline (`-copyts`
    /// keeps them on it), so a wrap between the two cannot fake a lag.
    fn output(&mut self, pts: Timestamp) {
        let Some((raw, unwrapped)) = self.in_last else {
            return;
        };
        let t = unwrapped.saturating_add(pts.delta(raw));
        self.out_max = Some(self.out_max.map_or(t, |m| m.max(t)));
    }

    fn current(&self) -> Option<i64> {
        Some(self.in_max?.saturating_sub(self.out_max?))
    }

    fn min(&self) -> Option<i64> {
        self.window.front().map(|(_, lag)| *lag)
    }

    fn sample(&mut self, now: Instant, window: Duration) {
        let Some(lag) = self.current() else { return };
        self.last_sample = Some(lag);
        while self.window.back().is_some_and(|(_, l)| *l >= lag) {
            self.window.pop_back();
        }
        self.window.push_back((now, lag));
        while self.window.len() > 1
            && self
                .window
                .front()
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) > window)
        {
            self.window.pop_front();
        }
        if self.window.len() > MAX_WINDOW_SAMPLES {
            self.window.pop_front();
        }
    }
}

/// Bytes per [`BUCKET`], an EWMA of the bucket rates, and the recent
/// buckets with the EWMA as it was before each.
#[derive(Debug)]
struct RateTracker {
    bucket_start: Instant,
    bucket_bytes: u64,
    alpha: f64,
    recent_len: usize,
    /// (rate, EWMA before this bucket), bit/s.
    recent: VecDeque<(f64, Option<f64>)>,
    ewma: Option<f64>,
    history: Duration,
}

impl RateTracker {
    fn new(now: Instant, ewma_window: Duration, recent: Duration) -> RateTracker {
        let tau = ewma_window.as_secs_f64().max(BUCKET.as_secs_f64());
        RateTracker {
            bucket_start: now,
            bucket_bytes: 0,
            alpha: 1.0 - (-BUCKET.as_secs_f64() / tau).exp(),
            recent_len: (recent.as_millis() / BUCKET.as_millis()).max(1) as usize,
            recent: VecDeque::new(),
            ewma: None,
            history: Duration::ZERO,
        }
    }

    fn add(&mut self, now: Instant, bytes: u64) {
        self.roll(now);
        self.bucket_bytes = self.bucket_bytes.saturating_add(bytes);
    }

    /// Closes every bucket that ended by `now`.
    fn roll(&mut self, now: Instant) {
        // After this many empty buckets the EWMA is ~0 anyway: skip ahead.
        let mut budget = 256;
        while let Some(end) = self.bucket_start.checked_add(BUCKET)
            && end <= now
        {
            if budget == 0 {
                let behind = now.saturating_duration_since(self.bucket_start).as_nanos();
                let skip = behind - behind % BUCKET.as_nanos();
                let skip = Duration::from_nanos(u64::try_from(skip).unwrap_or(u64::MAX));
                self.bucket_start = self.bucket_start.checked_add(skip).unwrap_or(now);
                self.history = self.history.saturating_add(skip);
                break;
            }
            budget -= 1;
            let rate = self.bucket_bytes as f64 * 8.0 / BUCKET.as_secs_f64();
            self.recent.push_back((rate, self.ewma));
            if self.recent.len() > self.recent_len {
                self.recent.pop_front();
            }
            self.ewma = Some(match self.ewma {
                None => rate,
                Some(e) => e + self.alpha * (rate - e),
            });
            self.bucket_bytes = 0;
            self.bucket_start = end;
            self.history = self.history.saturating_add(BUCKET);
        }
    }

    /// The mean rate of the recent buckets and the EWMA from before them.
    fn recent_and_reference(&self) -> Option<(f64, f64)> {
        if self.recent.len() < self.recent_len {
            return None;
        }
        let reference = self.recent.front()?.1?;
        let mean = self.recent.iter().map(|(r, _)| r).sum::<f64>() / self.recent.len() as f64;
        Some((mean, reference))
    }
}

fn push_bounded(q: &mut VecDeque<Instant>, now: Instant) {
    q.push_back(now);
    if q.len() > MAX_WINDOW_SAMPLES {
        q.pop_front();
    }
}

fn prune(q: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while q
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) > window)
    {
        q.pop_front();
    }
}

fn ticks(d: Duration) -> i64 {
    i64::try_from(d.as_micros() * 9 / 100).unwrap_or(i64::MAX)
}

fn from_ticks(t: i64) -> Duration {
    Duration::from_micros(u64::try_from(t.max(0)).unwrap_or(0) * 100 / 9)
}
