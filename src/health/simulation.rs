//! Simulated encoders on a virtual clock: a healthy encoder with seeded
//! jitter must never be flagged over a simulated hour, and every fault must
//! be detected at the time the rules promise.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use super::*;
use crate::progress::Progress;
use crate::ts::Timestamp;

/// xorshift64*: deterministic, seeded, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.range(0.0, 1.0) < p
    }
}

#[derive(Debug, Clone)]
enum Obs {
    Input(usize),
    InputFrame(Timestamp),
    Stdout(usize),
    OutputFrame(Timestamp),
    Progress(i64),
    Proc(char, u64),
    Queue(u64),
    Exit,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// Output stops at the time; the process stays `S` (blocked).
    Stall,
    /// SIGSTOP: output stops and `/proc` says `T`.
    SigStop,
    /// Runs at this fraction of real time from the time on.
    Slow(f64),
    /// Drops every third output frame.
    DropFrames,
    /// Writes bytes without frames (garbage) from the time on.
    Garbage,
    /// Output bitrate × 0.1.
    BitrateCollapse,
    /// Input and output bitrate × 0.1 (a black slate).
    SlateCollapse,
    /// stdin queue depth 2 MiB for 3 s.
    QueueBurst,
    /// Input stops for 10 s, then resumes.
    InputPause,
    Exit,
    NoOutputEver,
}

struct Model {
    seed: u64,
    secs: f64,
    fault: Fault,
    fault_at: f64,
}

const FPS: f64 = 30.0;
/// A PTS near the 33-bit wrap, so that every run crosses it.
const PTS0: u64 = (1 << 33) - 90_000 * 30;

fn script(m: &Model) -> Vec<(Duration, Obs)> {
    let mut rng = Rng(m.seed | 1);
    let mut out = Vec::new();
    let at = |s: f64| Duration::from_secs_f64(s.max(0.0));
    let frames = (m.secs * FPS) as u64;
    let fault_at = m.fault_at;
    let mut complexity = 1.0;
    let mut next_scene = 0.0;
    let mut emit = 0.0f64;
    let mut last_out_pts = None;
    let mut progress_marks: Vec<(f64, u64)> = Vec::new();
    for i in 0..frames {
        let nominal = i as f64 / FPS;
        let paused = m.fault == Fault::InputPause && (fault_at..fault_at + 10.0).contains(&nominal);
        if paused {
            continue;
        }
        if nominal >= next_scene {
            // Scene complexity ±60 %, scenes of 2–10 s.
            complexity = rng.range(0.4, 1.6);
            next_scene = nominal + rng.range(2.0, 10.0);
        }
        let faulty = nominal >= fault_at;
        let t_in = nominal + rng.range(0.0, 0.02);
        let pts = Timestamp::new(PTS0 + i * 3000);
        let slate = if faulty && m.fault == Fault::SlateCollapse {
            0.1
        } else {
            1.0
        };
        out.push((at(t_in), Obs::Input((4000.0 * complexity * slate) as usize)));
        out.push((at(t_in), Obs::InputFrame(pts)));
        // The encoder: 40–50 ms latency, a hiccup now and then that bunches
        // frames (stdout gaps up to ~170 ms, as measured at 30 fps).
        let mut ready = t_in + 0.04 + rng.range(0.0, 0.01);
        if rng.chance(0.02) {
            ready += rng.range(0.05, 0.137);
        }
        if let Fault::Slow(speed) = m.fault
            && faulty
        {
            ready = fault_at + (t_in - fault_at) / speed + 0.04;
        }
        emit = emit.max(ready);
        let stopped =
            matches!(m.fault, Fault::Stall | Fault::SigStop | Fault::Exit) && emit >= fault_at;
        if stopped || m.fault == Fault::NoOutputEver {
            continue;
        }
        let bytes = 2500.0 * complexity * rng.range(0.8, 1.2);
        let collapse = faulty && matches!(m.fault, Fault::BitrateCollapse | Fault::SlateCollapse);
        let bytes = if collapse { bytes * 0.1 } else { bytes };
        out.push((at(emit), Obs::Stdout(bytes as usize)));
        let drop = faulty && m.fault == Fault::DropFrames && i % 3 == 0;
        let garbage = emit >= fault_at && m.fault == Fault::Garbage;
        if !drop && !garbage {
            out.push((at(emit), Obs::OutputFrame(pts)));
            last_out_pts = Some(i * 3000);
        }
        if let Some(p) = last_out_pts {
            progress_marks.push((emit, p));
        }
    }
    // -progress every 0.5 s (±10 ms), out_time ±25 ms: speed over a 1 s
    // window fluctuates 0.95–1.05.
    let end_out = progress_marks.last().map_or(0.0, |(t, _)| *t);
    let mut t = 0.5;
    let mut k = 0;
    while t < end_out {
        while progress_marks.get(k + 1).is_some_and(|(e, _)| *e <= t) {
            k += 1;
        }
        if let Some((_, pts)) = progress_marks.get(k) {
            let us = (*pts as f64 / 0.09 + rng.range(-25_000.0, 25_000.0)).max(0.0) as i64;
            out.push((at(t + rng.range(-0.01, 0.01)), Obs::Progress(us)));
        }
        t += 0.5;
    }
    // /proc every 100 ms, queue depth every 100 ms.
    let mut ticks = 0u64;
    let mut t = 0.05;
    while t < m.secs {
        let stopped = m.fault == Fault::SigStop && t >= fault_at;
        // A stopped process uses no CPU.
        if !stopped {
            ticks += rng.range(1.0, 3.0) as u64;
        }
        let state = if stopped {
            'T'
        } else if rng.chance(0.3) {
            'R'
        } else {
            'S'
        };
        out.push((at(t), Obs::Proc(state, ticks)));
        let burst = m.fault == Fault::QueueBurst && (fault_at..fault_at + 3.0).contains(&t);
        let depth = if burst {
            2 << 20
        } else {
            rng.range(0.0, 100_000.0) as u64
        };
        out.push((at(t), Obs::Queue(depth)));
        t += 0.1;
    }
    if m.fault == Fault::Exit {
        out.push((at(fault_at), Obs::Exit));
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

fn proc_line(state: char, ticks: u64) -> ProcStat {
    ProcStat {
        pid: 7,
        comm: "ffmpeg".into(),
        state,
        utime: ticks,
        stime: 0,
        num_threads: 3,
        starttime: 1,
    }
}

/// Replays a script, calling `handle_timeout` exactly at every
/// `poll_timeout` that falls between two observations.
fn run(m: &Model) -> (Instant, Vec<HealthEvent>, HealthScorer) {
    let t0 = Instant::now();
    let mut h = HealthScorer::new(HealthSettings::default(), t0);
    let mut events = Vec::new();
    let mut drain = |h: &mut HealthScorer| {
        while let Some(e) = h.poll_event() {
            events.push(e);
        }
    };
    let end = t0 + Duration::from_secs_f64(m.secs);
    for (offset, obs) in script(m)
        .into_iter()
        .filter(|(t, _)| t.as_secs_f64() <= m.secs)
    {
        let now = t0 + offset;
        while let Some(d) = h.poll_timeout().filter(|d| *d <= now) {
            h.handle_timeout(d);
            drain(&mut h);
        }
        match obs {
            Obs::Input(b) => h.on_input(now, b),
            Obs::InputFrame(p) => h.on_input_frame(now, p),
            Obs::Stdout(b) => h.on_stdout(now, b),
            Obs::OutputFrame(p) => h.on_output_frame(now, p),
            Obs::Progress(us) => h.on_progress(
                now,
                &Progress {
                    out_time_us: Some(us),
                    ..Progress::default()
                },
            ),
            Obs::Proc(state, ticks) => h.on_proc_sample(now, &proc_line(state, ticks)),
            Obs::Queue(b) => h.on_queue_depth(now, b),
            Obs::Exit => h.on_exit(
                now,
                ExitStatus {
                    code: None,
                    signal: Some(9),
                },
            ),
        }
        drain(&mut h);
    }
    while let Some(d) = h.poll_timeout().filter(|d| *d <= end) {
        h.handle_timeout(d);
        drain(&mut h);
    }
    (t0, events, h)
}

fn faulty(fault: Fault, seed: u64) -> (Instant, Vec<HealthEvent>, HealthScorer) {
    run(&Model {
        seed,
        secs: 40.0,
        fault,
        fault_at: 20.0,
    })
}

fn secs(t0: Instant, e: &HealthEvent) -> f64 {
    e.at.duration_since(t0).as_secs_f64()
}

#[test]
fn healthy_hour_with_jitter_is_never_flagged() {
    for seed in [1, 2] {
        let (_, events, h) = run(&Model {
            seed,
            secs: 3600.0,
            fault: Fault::None,
            fault_at: f64::INFINITY,
        });
        assert!(
            events.is_empty(),
            "seed {seed}: {:?}",
            events.first().map(|e| e.to_string())
        );
        assert_eq!(h.state(), HealthState::Healthy);
        let speed = h.speed().expect("speed measured");
        assert!((0.9..1.1).contains(&speed), "{speed}");
        assert!(h.cpu_share().is_some_and(|c| c > 0.0 && c < 0.3));
    }
}

#[test]
fn healthy_minutes_over_many_seeds() {
    for seed in 3..40 {
        let (_, events, _) = run(&Model {
            seed,
            secs: 120.0,
            fault: Fault::None,
            fault_at: f64::INFINITY,
        });
        assert!(events.is_empty(), "seed {seed}: {}", events[0]);
    }
}

#[test]
fn input_pause_is_not_a_stall() {
    for seed in 1..10 {
        let (_, events, _) = faulty(Fault::InputPause, seed);
        assert!(events.is_empty(), "seed {seed}: {}", events[0]);
    }
}

#[test]
fn stall_is_detected_exactly_stall_timeout_after_the_last_stdout() {
    for seed in 1..20 {
        let script = script(&Model {
            seed,
            secs: 40.0,
            fault: Fault::Stall,
            fault_at: 20.0,
        });
        let last_stdout = script
            .iter()
            .filter(|(_, o)| matches!(o, Obs::Stdout(_)))
            .map(|(t, _)| *t)
            .max()
            .unwrap();
        let (t0, events, _) = faulty(Fault::Stall, seed);
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!(e.to, HealthState::Failed);
        assert_eq!(
            e.at,
            t0 + last_stdout + Duration::from_millis(500),
            "seed {seed}"
        );
        assert!(
            matches!(e.reason, Reason::Stalled { silent_for } if silent_for == Duration::from_millis(500))
        );
    }
}

#[test]
fn sigstop_is_detected_from_proc_before_the_stall_timeout() {
    let (t0, events, _) = faulty(Fault::SigStop, 5);
    let e = &events[0];
    assert_eq!(e.to, HealthState::Failed);
    assert!(matches!(e.reason, Reason::Stopped { .. }), "{e}");
    // First `T` sample within 100 ms of the stop, confirmed 250 ms later.
    let at = secs(t0, e);
    assert!((20.25..=20.45).contains(&at), "{at}");
}

#[test]
fn exit_fails_at_once() {
    let (t0, events, h) = faulty(Fault::Exit, 1);
    assert_eq!(events.len(), 1);
    assert_eq!(secs(t0, &events[0]), 20.0);
    assert_eq!(
        events[0].reason.to_string(),
        "the encoder process was killed by signal 9"
    );
    assert_eq!(h.poll_timeout(), None);
}

#[test]
fn no_first_output_fails_after_the_startup_timeout() {
    let (t0, events, _) = faulty(Fault::NoOutputEver, 1);
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert!(matches!(e.reason, Reason::NoFirstOutput { .. }));
    // The first input arrives within 20 ms of t0.
    let at = secs(t0, e);
    assert!((3.0..3.02).contains(&at), "{at}");
}

#[test]
fn slow_encoder_is_degraded_within_seconds() {
    for seed in 1..10 {
        let (t0, events, h) = faulty(Fault::Slow(0.7), seed);
        let e = &events[0];
        assert_eq!(e.to, HealthState::Degraded, "{e}");
        let at = secs(t0, e);
        assert!((20.5..24.5).contains(&at), "seed {seed}: {at} {e}");
        assert_eq!(h.state(), HealthState::Degraded);
        // Every slowness signal fires eventually.
        for c in [
            Condition::Slow,
            Condition::FallingBehind,
            Condition::LowCadence,
        ] {
            assert!(
                h.conditions().contains(&c),
                "seed {seed}: {:?}",
                h.conditions()
            );
        }
    }
}

#[test]
fn dropped_frames_lower_the_cadence() {
    let (t0, events, h) = faulty(Fault::DropFrames, 2);
    let e = &events[0];
    assert!(matches!(e.reason, Reason::LowCadence { .. }), "{e}");
    let at = secs(t0, e);
    // 2/3 of the frames: the 3 s window falls below 0.85 after ~1.4 s,
    // then cadence_for (1 s).
    assert!((21.5..23.0).contains(&at), "{at}");
    assert!(!h.conditions().contains(&Condition::FallingBehind));
}

#[test]
fn garbage_output_falls_behind() {
    let (t0, events, _) = faulty(Fault::Garbage, 3);
    let e = &events[0];
    assert_eq!(e.to, HealthState::Degraded);
    assert!(
        matches!(
            e.reason,
            Reason::FallingBehind { .. } | Reason::LowCadence { .. }
        ),
        "{e}"
    );
    assert!((20.9..22.6).contains(&secs(t0, e)), "{}", secs(t0, e));
}

#[test]
fn bitrate_collapse_is_degraded_within_collapse_for() {
    for seed in 1..10 {
        let (t0, events, _) = faulty(Fault::BitrateCollapse, seed);
        let e = &events[0];
        assert!(matches!(e.reason, Reason::BitrateCollapse { .. }), "{e}");
        let at = secs(t0, e);
        assert!((21.0..23.0).contains(&at), "seed {seed}: {at}");
    }
}

#[test]
fn a_slate_that_collapses_input_too_is_not_flagged() {
    for seed in 1..10 {
        let (_, events, _) = faulty(Fault::SlateCollapse, seed);
        assert!(events.is_empty(), "seed {seed}: {}", events[0]);
    }
}

#[test]
fn queue_burst_degrades_and_recovers_after_the_hold() {
    let (t0, events, h) = faulty(Fault::QueueBurst, 4);
    assert_eq!(events.len(), 2, "{events:?}");
    let (down, up) = (&events[0], &events[1]);
    assert!(matches!(down.reason, Reason::QueueGrowing { .. }));
    assert!((20.0..20.11).contains(&secs(t0, down)));
    assert_eq!(up.to, HealthState::Healthy);
    // Clear at the first sample after 23 s, then 5 s of hold, exactly.
    let clear = secs(t0, up) - 5.0;
    assert!((23.0..23.11).contains(&clear), "{clear}");
    assert!(
        matches!(up.reason, Reason::Recovered { clear_for } if clear_for == Duration::from_secs(5))
    );
    assert_eq!(h.state(), HealthState::Healthy);
}

/// Hand-driven checks of single rules.
mod rules {
    use super::*;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn slow_needs_slow_for_of_slow_blocks() {
        let t0 = Instant::now();
        let mut h = HealthScorer::new(HealthSettings::default(), t0);
        h.on_stdout(t0, 100);
        // Input every 33 ms, progress at 0.7x every 500 ms.
        let mut out_us = 0i64;
        let mut flagged = None;
        for step in 0..300u64 {
            let now = ms(t0, step * 33);
            h.on_input(now, 1000);
            h.on_stdout(now, 100);
            if step % 15 == 0 {
                out_us += 350_000;
                h.on_progress(
                    now,
                    &Progress {
                        out_time_us: Some(out_us),
                        ..Progress::default()
                    },
                );
            }
            if let Some(e) = h.poll_event() {
                flagged = Some((now, e));
                break;
            }
        }
        let (at, e) = flagged.expect("flagged");
        assert!(matches!(e.reason, Reason::Slow { .. }), "{e}");
        // Speed is first known one window (990 ms) in; 3 s later.
        // Blocks every 495 ms: speed is first known at the block 1485 ms in
        // (the first one at least 1 s after another), slow_for later falls
        // between blocks, so the next block (4950 ms) flags it.
        assert_eq!(at, ms(t0, 150 * 33));
    }

    #[test]
    fn zombie_fails() {
        let t0 = Instant::now();
        let mut h = HealthScorer::new(HealthSettings::default(), t0);
        h.on_proc_sample(t0, &proc_line('Z', 0));
        assert_eq!(h.poll_event().map(|e| e.reason), Some(Reason::Zombie));
        assert_eq!(h.state(), HealthState::Failed);
    }

    #[test]
    fn a_short_stop_is_not_a_failure() {
        let t0 = Instant::now();
        let mut h = HealthScorer::new(HealthSettings::default(), t0);
        h.on_proc_sample(ms(t0, 0), &proc_line('T', 0));
        h.on_proc_sample(ms(t0, 100), &proc_line('T', 0));
        h.on_proc_sample(ms(t0, 200), &proc_line('R', 0));
        h.on_proc_sample(ms(t0, 300), &proc_line('T', 0));
        h.on_proc_sample(ms(t0, 500), &proc_line('T', 0));
        assert_eq!(h.state(), HealthState::Healthy);
        h.on_proc_sample(ms(t0, 550), &proc_line('T', 0));
        assert!(matches!(
            h.poll_event().map(|e| e.reason),
            Some(Reason::Stopped { .. })
        ));
    }

    #[test]
    fn a_duty_cycled_process_is_not_stopped() {
        // Stopped 200 ms of every 210 ms: each sample (every 250 ms)
        // finds it in `T`, but its CPU time moves between samples.
        let t0 = Instant::now();
        let mut h = HealthScorer::new(HealthSettings::default(), t0);
        for n in 0..40u64 {
            h.on_proc_sample(ms(t0, n * 250), &proc_line('T', n));
        }
        assert_eq!(h.state(), HealthState::Healthy);
        // Runs too short to be counted a tick, but counted in ns.
        for n in 0..10u64 {
            h.on_proc_sample_with_run_time(
                ms(t0, 10_000 + n * 250),
                &proc_line('T', 40),
                Some(1_000_000 * n),
            );
        }
        // Output read from the pipe is no sign of running.
        h.on_stdout(ms(t0, 12_400), 188);
        h.on_stdout(ms(t0, 12_600), 188);
        assert_eq!(h.state(), HealthState::Healthy);
        // Once neither moves, it is stopped.
        h.on_proc_sample_with_run_time(ms(t0, 12_500), &proc_line('T', 40), Some(9_000_000));
        h.on_proc_sample_with_run_time(ms(t0, 12_750), &proc_line('T', 40), Some(9_000_000));
        assert!(matches!(
            h.poll_event().map(|e| e.reason),
            Some(Reason::Stopped { .. })
        ));
    }

    #[test]
    fn queue_hysteresis_does_not_flap() {
        let start = Instant::now();
        let mut h = HealthScorer::new(HealthSettings::default(), start);
        // An encoder that has been producing output past its start-up.
        h.on_output_frame(start, Timestamp::new(0));
        let t0 = start + h.settings().startup_timeout;
        let limit = h.settings().queue_degraded_bytes;
        h.on_queue_depth(ms(t0, 0), limit);
        assert_eq!(h.state(), HealthState::Degraded);
        // Oscillating between 60 % and 110 % of the limit for a minute:
        // never below half, so never clear.
        for i in 1..600u64 {
            let depth = if i % 2 == 0 {
                limit * 6 / 10
            } else {
                limit * 11 / 10
            };
            h.on_queue_depth(ms(t0, i * 100), depth);
        }
        assert_eq!(h.state(), HealthState::Degraded);
        let events: Vec<_> = std::iter::from_fn(|| h.poll_event()).collect();
        assert_eq!(events.len(), 1);
        // Under half: clear; recovery waits the hold, re-degrading resets it.
        h.on_queue_depth(ms(t0, 60_000), 0);
        assert_eq!(h.poll_timeout(), Some(ms(t0, 65_000)));
        h.on_queue_depth(ms(t0, 64_000), limit);
        h.on_queue_depth(ms(t0, 64_100), 0);
        assert_eq!(h.poll_timeout(), Some(ms(t0, 69_100)));
        h.handle_timeout(ms(t0, 69_100));
        assert_eq!(h.state(), HealthState::Healthy);
    }

    #[test]
    fn a_start_up_backlog_is_not_a_growing_queue() {
        let t0 = Instant::now();
        let mut h = HealthScorer::new(HealthSettings::default(), t0);
        let limit = h.settings().queue_degraded_bytes;
        // A replacement is handed several GOPs at once and works them off.
        h.on_queue_depth(ms(t0, 0), 3 * limit);
        h.on_output_frame(ms(t0, 300), Timestamp::new(0));
        h.on_queue_depth(ms(t0, 1_000), 2 * limit);
        h.on_queue_depth(ms(t0, 2_000), limit / 4);
        assert_eq!(h.state(), HealthState::Healthy);
        assert!(h.poll_event().is_none());
        // Once settled, a queue that grows is a sign.
        h.on_queue_depth(ms(t0, 4_000), limit);
        assert_eq!(h.state(), HealthState::Degraded);
    }

    #[test]
    fn spare_waiting_for_input_is_never_stalled() {
        let t0 = Instant::now();
        let h = HealthScorer::new(HealthSettings::default(), t0);
        assert_eq!(h.poll_timeout(), None);
    }
}
