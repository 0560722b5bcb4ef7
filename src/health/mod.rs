//! Encoder health: observations of one ffmpeg encoder in, a
//! Healthy / Degraded / Failed verdict with reasons out, sans-IO.
//!
//! The encoder shell reports what it sees, each with the `now` it saw it
//! at: stdout chunks, the video frames the output demux found in them,
//! input offered to the encoder's stdin queue, `-progress` blocks
//! ([`crate::progress`]), `/proc/PID/stat` samples ([`parse_proc_stat`]),
//! the queue depth and the process exit. [`HealthScorer`] turns them into
//! [`HealthEvent`]s, one per state change, each with a [`Reason`], and
//! tells the shell when to call back ([`HealthScorer::poll_timeout`]).
//!
//! The signals and why each is shaped as it is (issue 4 point 4; the
//! measured facts are in DESIGN.md):
//!
//! | signal | verdict | rule |
//! |---|---|---|
//! | process exit, zombie | Failed | at once |
//! | stdout silent while input is owed | Failed | `stall_timeout` (500 ms): healthy gaps never exceeded 170 ms at 30 fps |
//! | no first output | Failed | `startup_timeout` (3 s) after the first input: first output takes 0.2–1.1 s |
//! | `/proc` state `T` | Failed | seen for `stopped_for` (250 ms), so a SIGSTOP/SIGCONT duty cycle reads as *slow*, not *stopped* |
//! | speed | Degraded | below `slow_speed` for `slow_for` (3 s); speed is Δ`out_time` / Δwall clock over `speed_window`, **not** ffmpeg's `speed=` (see below) |
//! | frame cadence | Degraded | output frames / input frames over `cadence_window` below `cadence_min_ratio` for `cadence_for` |
//! | PTS lag | Degraded | input PTS − output PTS grew by more than `lag_growth` above its minimum over `lag_window` |
//! | bitrate | Degraded | output bitrate over `collapse_for` (2 s) below `collapse_ratio` (25 %) of its own EWMA (`ewma_window`, 10 s), unless the input collapsed as well |
//! | stdin queue | Degraded | depth ≥ `queue_degraded_bytes`, clear below half of it |
//!
//! Recovery from Degraded needs every condition clear for `recovery_hold`
//! (5 s): hysteresis, so one slow second does not flap a stream. Failed is
//! final: a failed encoder is stopped, and a new one gets a new scorer.
//!
//! **Why not ffmpeg's own `speed=`**: ffmpeg 5.1 prints `out_time / time
//! since start`, a cumulative average that includes the start-up latency.
//! Measured on a healthy real-time encoder fed from stdin with `-re`:
//! 0.51x, 0.69x, 0.75x, 0.81x, 0.83x, 0.86x, 0.89x, 0.92x over its first
//! 4 s; it tends to 1.0 only as (t − latency) / t. "speed=… < 1.0 for
//! 3 s" would flag every healthy encoder. The scorer measures speed from the
//! `out_time` advance between blocks instead. A live encoder is input-bound,
//! so that speed hovers around 1.0 (0.95–1.05): `slow_speed` is 0.9.
//!
//! CPU share is measured ([`HealthScorer::cpu_share`]) for placement but not
//! scored: an encoder at 100 % of its thread that keeps real time is
//! healthy, and one that does not shows up as speed, cadence and lag.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod proc_stat;
mod reason;
mod scorer;
mod settings;
#[cfg(test)]
mod simulation;

pub use proc_stat::{ProcStat, ProcStatError, parse_proc_stat};
pub use reason::{Condition, ExitStatus, HealthEvent, HealthState, Reason};
pub use scorer::HealthScorer;
pub use settings::HealthSettings;
