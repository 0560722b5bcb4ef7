//! States, conditions and the reasons events carry.

use std::fmt;
use std::time::{Duration, Instant};

/// The verdict on one encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthState {
    /// Keeps up; may take new work.
    Healthy,
    /// Working but struggling: takes no new work; the stream moves after
    /// `degraded_grace` if a healthier encoder is available.
    Degraded,
    /// Dead, stalled or stopped: the stream moves now. Final.
    Failed,
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HealthState::Healthy => "healthy",
            HealthState::Degraded => "degraded",
            HealthState::Failed => "failed",
        })
    }
}

/// How the process ended, as the shell saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit status {code}"),
            (None, Some(signal)) => write!(f, "killed by signal {signal}"),
            (None, None) => f.write_str("ended"),
        }
    }
}

/// A Degraded condition (several may hold at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    Slow,
    LowCadence,
    FallingBehind,
    BitrateCollapse,
    QueueGrowing,
}

/// Why a transition happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    Exited(ExitStatus),
    /// `/proc` state `Z` or `X`: exited, not yet reaped.
    Zombie,
    Stalled {
        silent_for: Duration,
    },
    NoFirstOutput {
        waited: Duration,
    },
    Stopped {
        stopped_for: Duration,
    },
    Slow {
        speed: f64,
        threshold: f64,
        lasted: Duration,
    },
    LowCadence {
        output_fps: f64,
        input_fps: f64,
    },
    FallingBehind {
        lag: Duration,
        min_lag: Duration,
    },
    BitrateCollapse {
        kbps: f64,
        average_kbps: f64,
    },
    QueueGrowing {
        bytes: u64,
        threshold: u64,
    },
    Recovered {
        clear_for: Duration,
    },
}

impl Reason {
    pub fn condition(&self) -> Option<Condition> {
        match self {
            Reason::Slow { .. } => Some(Condition::Slow),
            Reason::LowCadence { .. } => Some(Condition::LowCadence),
            Reason::FallingBehind { .. } => Some(Condition::FallingBehind),
            Reason::BitrateCollapse { .. } => Some(Condition::BitrateCollapse),
            Reason::QueueGrowing { .. } => Some(Condition::QueueGrowing),
            _ => None,
        }
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Exited(ExitStatus { code, signal }) => match (code, signal) {
                (_, Some(sig)) => write!(f, "the encoder process was killed by signal {sig}"),
                (Some(code), None) => write!(f, "the encoder process exited with status {code}"),
                (None, None) => write!(f, "the encoder process exited"),
            },
            Reason::Zombie => write!(f, "the encoder process has exited (zombie in /proc)"),
            Reason::Stalled { silent_for } => write!(
                f,
                "the encoder wrote nothing to stdout for {} ms while it had input",
                ms(*silent_for)
            ),
            Reason::NoFirstOutput { waited } => write!(
                f,
                "the encoder wrote no output {} ms after its first input",
                ms(*waited)
            ),
            Reason::Stopped { stopped_for } => write!(
                f,
                "the encoder process has been stopped (state T) for {} ms",
                ms(*stopped_for)
            ),
            Reason::Slow {
                speed,
                threshold,
                lasted,
            } => write!(
                f,
                "the encoder ran at {speed:.2}x real time, below {threshold:.2}x, for {} ms",
                ms(*lasted)
            ),
            Reason::LowCadence {
                output_fps,
                input_fps,
            } => write!(
                f,
                "the encoder output {output_fps:.1} video frames per second for {input_fps:.1} in"
            ),
            Reason::FallingBehind { lag, min_lag } => write!(
                f,
                "the encoder's output PTS fell {} ms behind its input, up from {} ms",
                ms(*lag),
                ms(*min_lag)
            ),
            Reason::BitrateCollapse { kbps, average_kbps } => write!(
                f,
                "the encoder's output bitrate fell to {kbps:.0} kbit/s against its recent average of {average_kbps:.0} kbit/s"
            ),
            Reason::QueueGrowing { bytes, threshold } => write!(
                f,
                "the encoder's stdin queue holds {bytes} bytes, over the {threshold}-byte limit"
            ),
            Reason::Recovered { clear_for } => {
                write!(f, "the encoder has kept up for {} ms", ms(*clear_for))
            }
        }
    }
}

/// One state change.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthEvent {
    pub at: Instant,
    pub from: HealthState,
    pub to: HealthState,
    pub reason: Reason,
}

impl fmt::Display for HealthEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} → {}: {}", self.from, self.to, self.reason)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_sentences() {
        let r = Reason::Stalled {
            silent_for: Duration::from_millis(500),
        };
        assert_eq!(
            r.to_string(),
            "the encoder wrote nothing to stdout for 500 ms while it had input"
        );
        let r = Reason::Exited(ExitStatus {
            code: None,
            signal: Some(9),
        });
        assert_eq!(r.to_string(), "the encoder process was killed by signal 9");
        let r = Reason::Slow {
            speed: 0.7,
            threshold: 0.9,
            lasted: Duration::from_secs(3),
        };
        assert_eq!(
            r.to_string(),
            "the encoder ran at 0.70x real time, below 0.90x, for 3000 ms"
        );
    }
}
