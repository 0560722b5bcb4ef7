//! `[encoder]`: the encoder pool, placement and health thresholds.

use std::path::PathBuf;
use std::time::Duration;

use super::error::ErrorKind;
use super::reader::{Report, Section};
use crate::health::HealthSettings;
use crate::placement::{PlacementSettings, RefusalPolicy};

/// `[encoder]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderConfig {
    /// `ffmpeg`: the binary profiles run unless they name their own.
    /// Default `"ffmpeg"`, looked up in `PATH`.
    pub ffmpeg: PathBuf,
    /// `max_encoders`: most encoder processes, spares included. 1 to 1024,
    /// default 8.
    pub max_encoders: usize,
    /// `spares`: processes kept waiting on stdin so that failover skips the
    /// ~70 ms spawn. 0 to 64, fewer than `max_encoders`; default 1.
    pub spares: usize,
    /// `cpu_headroom`: fraction of the host's CPU kept free; no stream is
    /// placed beyond it. 0.0 to 0.9, default 0.2.
    pub cpu_headroom: f64,
    /// `on_no_capacity`: what a stream refused an encoder does:
    /// `"passthrough"` (default) or `"reject"`.
    pub on_no_capacity: RefusalPolicy,
    /// `default_profile`: the profile of streams that name none. Default
    /// `"h264"` (built in).
    pub default_profile: String,
    /// `stall_timeout_ms`: no stdout this long while input is owed →
    /// Failed. 100 to 60000 ms, default 500 ms.
    pub stall_timeout: Duration,
    /// `slow_for_ms`: slower than real time this long → Degraded. 500 to
    /// 600000 ms, default 3000 ms.
    pub slow_for: Duration,
    /// `degraded_grace_ms`: a Degraded encoder keeps its stream this long
    /// before failing over to a healthier one. 0 to 600000 ms, default
    /// 2000 ms.
    pub degraded_grace: Duration,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        let placement = PlacementSettings::default();
        let health = HealthSettings::default();
        EncoderConfig {
            ffmpeg: PathBuf::from("ffmpeg"),
            max_encoders: placement.max_encoders,
            spares: placement.spares,
            cpu_headroom: placement.headroom,
            on_no_capacity: placement.refusal,
            default_profile: super::profile::H264.to_string(),
            stall_timeout: health.stall_timeout,
            slow_for: health.slow_for,
            degraded_grace: Duration::from_secs(2),
        }
    }
}

impl EncoderConfig {
    /// The placement settings these keys give.
    pub fn placement(&self) -> PlacementSettings {
        PlacementSettings {
            max_encoders: self.max_encoders,
            spares: self.spares,
            headroom: self.cpu_headroom,
            refusal: self.on_no_capacity,
        }
    }

    /// The health thresholds: the built-in ones with this section's
    /// overrides.
    pub fn health(&self) -> HealthSettings {
        HealthSettings {
            stall_timeout: self.stall_timeout,
            slow_for: self.slow_for,
            ..HealthSettings::default()
        }
    }
}

pub(super) const ENCODER_KEYS: &[&str] = &[
    "ffmpeg",
    "max_encoders",
    "spares",
    "cpu_headroom",
    "on_no_capacity",
    "default_profile",
    "stall_timeout_ms",
    "slow_for_ms",
    "degraded_grace_ms",
];

impl EncoderConfig {
    /// Reads `[encoder]`. `default_profile` is checked by the caller, once
    /// the profiles are known.
    pub(super) fn read(section: &Section<'_>, report: &mut Report<'_>) -> EncoderConfig {
        section.check_keys(ENCODER_KEYS, report);
        let mut e = EncoderConfig::default();
        if let Some(v) = section.get("ffmpeg").and_then(|f| f.program(report)) {
            e.ffmpeg = v;
        }
        let max = section.get("max_encoders");
        if let Some(v) = max
            .as_ref()
            .and_then(|f| f.integer(1..=1024, "processes", "", report))
        {
            e.max_encoders = v;
        }
        let spares = section.get("spares");
        if let Some(v) = spares.as_ref().and_then(|f| {
            f.integer(
                0..=64,
                "processes",
                "0 starts a process at every failover",
                report,
            )
        }) {
            e.spares = v;
        }
        if e.spares >= e.max_encoders
            && let Some(at) = spares.as_ref().or(max.as_ref())
        {
            at.error(
                report,
                ErrorKind::Conflict,
                format!(
                    "`spares` ({}) must be fewer than `max_encoders` ({}): spares count against the process cap, and a pool of spares alone encodes nothing",
                    e.spares, e.max_encoders
                ),
            );
        }
        if let Some(v) = section.get("cpu_headroom").and_then(|f| {
            f.fraction(
                0.0..=0.9,
                "the share of the host's CPU kept free; 0.9 leaves a tenth for encoders",
                report,
            )
        }) {
            e.cpu_headroom = v;
        }
        if let Some(v) = section.get("on_no_capacity").and_then(|f| {
            f.choice(
                &[
                    ("passthrough", RefusalPolicy::Passthrough),
                    ("reject", RefusalPolicy::Reject),
                ],
                report,
            )
        }) {
            e.on_no_capacity = v;
        }
        if let Some(v) = section.get("stall_timeout_ms").and_then(|f| {
            f.millis(
                100..=60_000,
                "healthy ffmpeg stdout gaps reach 170 ms at 30 fps",
                report,
            )
        }) {
            e.stall_timeout = v;
        }
        if let Some(v) = section.get("slow_for_ms").and_then(|f| {
            f.millis(
                500..=600_000,
                "speed is measured over 1 s of -progress blocks",
                report,
            )
        }) {
            e.slow_for = v;
        }
        if let Some(v) = section
            .get("degraded_grace_ms")
            .and_then(|f| f.millis(0..=600_000, "", report))
        {
            e.degraded_grace = v;
        }
        e
    }
}

#[cfg(test)]
#[allow(
    clippy::expect_used,
    reason = "tests: a failed expectation is a failed test"
)]
mod tests {
    use super::super::testing::{assert_one_error, config};
    use super::*;

    #[test]
    fn every_key_is_read() {
        let c = config(
            "[encoder]\nffmpeg = \"/opt/ffmpeg/bin/ffmpeg\"\nmax_encoders = 4\nspares = 0\n\
             cpu_headroom = 0.5\non_no_capacity = \"reject\"\ndefault_profile = \"passthrough\"\n\
             stall_timeout_ms = 300\nslow_for_ms = 5000\ndegraded_grace_ms = 0\n",
        );
        assert_eq!(
            c.encoder,
            EncoderConfig {
                ffmpeg: "/opt/ffmpeg/bin/ffmpeg".into(),
                max_encoders: 4,
                spares: 0,
                cpu_headroom: 0.5,
                on_no_capacity: RefusalPolicy::Reject,
                default_profile: "passthrough".into(),
                stall_timeout: Duration::from_millis(300),
                slow_for: Duration::from_secs(5),
                degraded_grace: Duration::ZERO,
            }
        );
        assert_eq!(c.defaults.profile, "passthrough");
        assert_eq!(c.encoder.health().stall_timeout, Duration::from_millis(300));
        assert_eq!(c.encoder.health().slow_for, Duration::from_secs(5));
        assert_eq!(c.encoder.placement().refusal, RefusalPolicy::Reject);
        // Integers are fractions too.
        assert_eq!(
            config("[encoder]\ncpu_headroom = 0\n").encoder.cpu_headroom,
            0.0
        );
    }

    #[test]
    fn defaults_match_placement_and_health() {
        let e = EncoderConfig::default();
        assert_eq!(e.placement(), PlacementSettings::default());
        assert_eq!(e.health(), HealthSettings::default());
        assert_eq!(e.degraded_grace, Duration::from_secs(2));
    }

    #[test]
    fn errors() {
        assert_one_error(
            "[encoder]\nmax_encoders = 0\n",
            "encoder.max_encoders",
            (2, 16),
            ErrorKind::Invalid,
            "must be between 1 and 1024 processes, got 0",
        );
        assert_one_error(
            "[encoder]\nmax_encoders = 2\nspares = 2\n",
            "encoder.spares",
            (3, 10),
            ErrorKind::Conflict,
            "`spares` (2) must be fewer than `max_encoders` (2)",
        );
        assert_one_error(
            "[encoder]\ncpu_headroom = 0.95\n",
            "encoder.cpu_headroom",
            (2, 16),
            ErrorKind::Invalid,
            "must be between 0 and 0.9",
        );
        assert_one_error(
            "[encoder]\ncpu_headroom = \"20%\"\n",
            "encoder.cpu_headroom",
            (2, 16),
            ErrorKind::WrongType,
            "must be a number such as 0.2",
        );
        assert_one_error(
            "[encoder]\non_no_capacity = \"queue\"\n",
            "encoder.on_no_capacity",
            (2, 18),
            ErrorKind::Invalid,
            "must be \"passthrough\" or \"reject\", got \"queue\"",
        );
        assert_one_error(
            "[encoder]\nstall_timeout_ms = 50\n",
            "encoder.stall_timeout_ms",
            (2, 20),
            ErrorKind::Invalid,
            "between 100 and 60000 milliseconds",
        );
        assert_one_error(
            "[encoder]\nffmpeg = \"\"\n",
            "encoder.ffmpeg",
            (2, 10),
            ErrorKind::Invalid,
            "must name a program",
        );
        assert_one_error(
            "[encoder]\nstall_timeout = 500\n",
            "encoder.stall_timeout",
            (2, 1),
            ErrorKind::UnknownKey,
            "did you mean `stall_timeout_ms`?",
        );
    }
}
