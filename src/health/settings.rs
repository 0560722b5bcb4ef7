//! Health thresholds.

use std::time::Duration;

/// Thresholds of [`super::HealthScorer`]. The defaults are the ones
/// switchyard ships; DESIGN.md and the module docs say where each comes
/// from.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSettings {
    /// No stdout for this long while input is owed → Failed (stall).
    /// Default 500 ms: healthy stdout gaps never exceeded 170 ms at 30 fps.
    pub stall_timeout: Duration,
    /// No first stdout this long after the first input → Failed. Default
    /// 3 s: first output takes 0.2 s from a splice point, 1.1 s mid-GOP.
    pub startup_timeout: Duration,
    /// `/proc` state `T` (stopped) seen for this long → Failed. Default
    /// 250 ms.
    pub stopped_for: Duration,
    /// Speed (Δout_time / Δwall) below this → slow. Default 0.9.
    pub slow_speed: f64,
    /// Slow on every block for this long → Degraded. Default 3 s.
    pub slow_for: Duration,
    /// Span of `-progress` blocks speed is measured over. Default 1 s.
    pub speed_window: Duration,
    /// Window over which output and input video frames are counted.
    /// Default 3 s.
    pub cadence_window: Duration,
    /// Output frames / input frames below this → cadence low. Default 0.85.
    pub cadence_min_ratio: f64,
    /// Cadence low for this long → Degraded. Default 1 s.
    pub cadence_for: Duration,
    /// Window of the minimum PTS lag. Default 10 s.
    pub lag_window: Duration,
    /// Lag above its window minimum by more than this → Degraded.
    /// Default 1 s.
    pub lag_growth: Duration,
    /// Time constant of the output (and input) bitrate EWMA. Default 10 s.
    pub ewma_window: Duration,
    /// Output bitrate below this fraction of its EWMA → collapsing.
    /// Default 0.25.
    pub collapse_ratio: f64,
    /// Window the collapsing bitrate is measured over. Default 2 s.
    pub collapse_for: Duration,
    /// Output history needed before the bitrate rule applies. Default 5 s.
    pub bitrate_warmup: Duration,
    /// stdin queue depth at or above this → Degraded; clear below half.
    /// Default 1 MiB (~1 s at 8 Mbit/s).
    pub queue_degraded_bytes: u64,
    /// Every condition clear this long → back to Healthy. Default 5 s.
    pub recovery_hold: Duration,
    /// Clock ticks per second of `/proc/PID/stat` CPU times (`sysconf
    /// (_SC_CLK_TCK)`, 100 on Linux).
    pub clock_ticks_per_second: u64,
}

impl Default for HealthSettings {
    fn default() -> HealthSettings {
        HealthSettings {
            stall_timeout: Duration::from_millis(500),
            startup_timeout: Duration::from_secs(3),
            stopped_for: Duration::from_millis(250),
            slow_speed: 0.9,
            slow_for: Duration::from_secs(3),
            speed_window: Duration::from_secs(1),
            cadence_window: Duration::from_secs(3),
            cadence_min_ratio: 0.85,
            cadence_for: Duration::from_secs(1),
            lag_window: Duration::from_secs(10),
            lag_growth: Duration::from_secs(1),
            ewma_window: Duration::from_secs(10),
            collapse_ratio: 0.25,
            collapse_for: Duration::from_secs(2),
            bitrate_warmup: Duration::from_secs(5),
            queue_degraded_bytes: 1 << 20,
            recovery_hold: Duration::from_secs(5),
            clock_ticks_per_second: 100,
        }
    }
}
