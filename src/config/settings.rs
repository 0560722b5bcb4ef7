//! Per-stream settings: `[defaults]`, overridable in each `[[stream]]`.

use std::time::Duration;

use super::error::ErrorKind;
use super::reader::{Report, Section};
use super::size::ByteSize;

/// What happens when a second SRT publisher arrives for a stream that
/// already has one (issue 3, point 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SecondPublisher {
    /// The newcomer becomes the stream's backup input.
    #[default]
    Backup,
    /// The newcomer becomes the main input; the old one is disconnected.
    Takeover,
    /// The newcomer is rejected with SRT reject code 409 (conflict).
    Reject,
}

/// How a stream's output survives an encoder failover (issue 4 point 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FailoverMode {
    /// Encoder output is forwarded at once; after a failover it resumes at
    /// the new encoder's first IDR after the last PTS sent. Gap ≤ detection
    /// time + one GOP.
    #[default]
    LowLatency,
    /// Output is held back by one GOP and released only when complete from a
    /// healthy encoder: no frame lost or repeated, one GOP more latency.
    Hitless,
}

/// Whether a second encoder runs in parallel, ready to take over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Standby {
    /// Failover takes a spare or starts a process.
    #[default]
    None,
    /// A second encoder is fed in parallel, so failover needs no start-up.
    Hot,
}

/// Settings that apply to every stream unless the stream overrides them.
/// The resolved values (stream over `[defaults]` over built-in) are in
/// [`super::StreamConfig::settings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// `buffer`: GOP ring buffer budget; whole GOPs are evicted from the
    /// front to stay under it. Default 16 MiB (two 4-second GOPs at 16 Mbit/s).
    pub buffer: ByteSize,
    /// `buffer_hard_cap`: never exceeded, even when no IDR arrives for
    /// longer than `buffer` holds. At least `buffer`. Default 64 MiB.
    pub buffer_hard_cap: ByteSize,
    /// `consumer_queue`: per-consumer queue; a consumer that falls this far
    /// behind skips to the next GOP. Default 2 MiB.
    pub consumer_queue: ByteSize,
    /// `input_timeout_ms`: the main input is lost after this long without
    /// packets. Default 500 ms.
    pub input_timeout: Duration,
    /// `revert_after_ms`: the main must be stable this long before the
    /// stream switches back from the backup. Default 10 s.
    pub revert_after: Duration,
    /// `second_publisher`: `"backup"` (default), `"takeover"` or `"reject"`.
    pub second_publisher: SecondPublisher,
    /// `allow_pull`: players may pull the stream with `m=request`. Default true.
    pub allow_pull: bool,
    /// `profile`: the name of the encoder profile (`[[profile]]` or a
    /// built-in one) the stream is encoded with. Default: `[encoder]
    /// default_profile`, itself `"h264"` by default.
    pub profile: String,
    /// `failover_mode`: `"low-latency"` (default) or `"hitless"`.
    pub failover_mode: FailoverMode,
    /// `standby`: `"none"` (default) or `"hot"`.
    pub standby: Standby,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            buffer: ByteSize::mib(16),
            buffer_hard_cap: ByteSize::mib(64),
            consumer_queue: ByteSize::mib(2),
            input_timeout: Duration::from_millis(500),
            revert_after: Duration::from_secs(10),
            second_publisher: SecondPublisher::Backup,
            allow_pull: true,
            profile: super::profile::H264.to_string(),
            failover_mode: FailoverMode::LowLatency,
            standby: Standby::None,
        }
    }
}

/// The keys of [`StreamSettings`], accepted in `[defaults]` and `[[stream]]`.
pub const SETTINGS_KEYS: &[&str] = &[
    "buffer",
    "buffer_hard_cap",
    "consumer_queue",
    "input_timeout_ms",
    "revert_after_ms",
    "second_publisher",
    "allow_pull",
    "profile",
    "failover_mode",
    "standby",
];

/// Ring buffer sizes: at least 64 KiB (a GOP of a low-bitrate stream), at
/// most 1 TiB (a bound that keeps byte arithmetic far from overflow).
const BUFFER_RANGE: std::ops::RangeInclusive<ByteSize> =
    ByteSize::kib(64)..=ByteSize::bytes(1 << 40);
/// One datagram of 7 TS packets (7 × 188 bytes) is the smallest unit a
/// consumer queue can hold.
const QUEUE_RANGE: std::ops::RangeInclusive<ByteSize> =
    ByteSize::bytes(7 * 188)..=ByteSize::bytes(1 << 40);

/// Settings read from one section, and whether both buffer sizes in them
/// are trustworthy (read without error here and in the base), so that the
/// `buffer <= buffer_hard_cap` check does not pile onto an earlier error.
#[derive(Debug)]
pub(super) struct ReadSettings {
    pub(super) settings: StreamSettings,
    pub(super) sizes_valid: bool,
}

impl StreamSettings {
    /// Reads the settings keys of `section` on top of `base`; `profiles`
    /// are the names a `profile` key may give.
    pub(super) fn read(
        section: &Section<'_>,
        base: &ReadSettings,
        profiles: &[&str],
        report: &mut Report<'_>,
    ) -> ReadSettings {
        let mut s = base.settings.clone();
        let mut sizes_valid = base.sizes_valid;
        if let Some(f) = section.get("buffer") {
            match f.size(BUFFER_RANGE, "", report) {
                Some(v) => s.buffer = v,
                None => sizes_valid = false,
            }
        }
        if let Some(f) = section.get("buffer_hard_cap") {
            match f.size(BUFFER_RANGE, "", report) {
                Some(v) => s.buffer_hard_cap = v,
                None => sizes_valid = false,
            }
        }
        if let Some(v) = section
            .get("consumer_queue")
            .and_then(|f| f.size(QUEUE_RANGE, "at least one datagram of 7 TS packets", report))
        {
            s.consumer_queue = v;
        }
        if let Some(v) = section
            .get("input_timeout_ms")
            .and_then(|f| f.millis(10..=60_000, "", report))
        {
            s.input_timeout = v;
        }
        if let Some(v) = section.get("revert_after_ms").and_then(|f| {
            f.millis(
                0..=3_600_000,
                "0 reverts as soon as the main is back; at most one hour",
                report,
            )
        }) {
            s.revert_after = v;
        }
        if let Some(v) = section.get("second_publisher").and_then(|f| {
            f.choice(
                &[
                    ("backup", SecondPublisher::Backup),
                    ("takeover", SecondPublisher::Takeover),
                    ("reject", SecondPublisher::Reject),
                ],
                report,
            )
        }) {
            s.second_publisher = v;
        }
        if let Some(v) = section.get("allow_pull").and_then(|f| f.bool(report)) {
            s.allow_pull = v;
        }
        if let Some(v) = section
            .get("profile")
            .and_then(|f| super::profile::read_profile_name(&f, profiles, report))
        {
            s.profile = v;
        }
        if let Some(v) = section.get("failover_mode").and_then(|f| {
            f.choice(
                &[
                    ("low-latency", FailoverMode::LowLatency),
                    ("hitless", FailoverMode::Hitless),
                ],
                report,
            )
        }) {
            s.failover_mode = v;
        }
        if let Some(v) = section
            .get("standby")
            .and_then(|f| f.choice(&[("none", Standby::None), ("hot", Standby::Hot)], report))
        {
            s.standby = v;
        }

        let buffer = section.get("buffer");
        let cap = section.get("buffer_hard_cap");
        if sizes_valid && s.buffer > s.buffer_hard_cap {
            // Point at whichever of the two this section sets; if it sets
            // neither, the base was checked already.
            if let Some(at) = buffer.as_ref().or(cap.as_ref()) {
                let origin = |set_here: bool| if set_here { "" } else { " from [defaults]" };
                at.error(
                    report,
                    ErrorKind::Conflict,
                    format!(
                        "`buffer` ({}{}) must not be larger than `buffer_hard_cap` ({}{}): the hard cap bounds the buffer; raise the cap or lower the buffer",
                        s.buffer,
                        origin(buffer.is_some()),
                        s.buffer_hard_cap,
                        origin(cap.is_some()),
                    ),
                );
            }
        }
        ReadSettings {
            settings: s,
            sizes_valid,
        }
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
    fn built_in_defaults() {
        assert_eq!(config("").defaults, StreamSettings::default());
    }

    #[test]
    fn every_key_is_read() {
        let c = config(
            "[defaults]\nbuffer = \"8 MiB\"\nbuffer_hard_cap = 33554432\nconsumer_queue = \"512 KiB\"\n\
             input_timeout_ms = 750\nrevert_after_ms = 0\nsecond_publisher = \"reject\"\nallow_pull = false\n",
        );
        assert_eq!(
            c.defaults,
            StreamSettings {
                buffer: ByteSize::mib(8),
                buffer_hard_cap: ByteSize::mib(32),
                consumer_queue: ByteSize::kib(512),
                input_timeout: Duration::from_millis(750),
                revert_after: Duration::ZERO,
                second_publisher: SecondPublisher::Reject,
                allow_pull: false,
                ..StreamSettings::default()
            }
        );
    }

    #[test]
    fn streams_inherit_defaults_and_override_them() {
        let c = config(
            "[defaults]\nbuffer = \"8 MiB\"\nsecond_publisher = \"takeover\"\n\
             [[stream]]\nid = \"a\"\n\
             [[stream]]\nid = \"b\"\nbuffer = \"4 MiB\"\nallow_pull = false\n",
        );
        let [a, b] = c.streams.as_slice() else {
            panic!("two streams expected, got {:?}", c.streams);
        };
        assert_eq!(a.settings.buffer, ByteSize::mib(8));
        assert_eq!(a.settings.second_publisher, SecondPublisher::Takeover);
        assert!(a.settings.allow_pull);
        assert_eq!(b.settings.buffer, ByteSize::mib(4));
        assert_eq!(b.settings.second_publisher, SecondPublisher::Takeover);
        assert!(!b.settings.allow_pull);
        assert_eq!(b.settings.buffer_hard_cap, ByteSize::mib(64));
    }

    #[test]
    fn ranges() {
        assert_one_error(
            "[defaults]\nbuffer = \"32 KiB\"\n",
            "defaults.buffer",
            (2, 10),
            ErrorKind::Invalid,
            "must be between 64 KiB and 1 TiB, got 32 KiB (32768 bytes)",
        );
        assert_one_error(
            "[defaults]\nconsumer_queue = 1000\n",
            "defaults.consumer_queue",
            (2, 18),
            ErrorKind::Invalid,
            "must be between 1316 bytes and 1 TiB (at least one datagram of 7 TS packets), got 1000 bytes",
        );
        assert_one_error(
            "[defaults]\ninput_timeout_ms = 5\n",
            "defaults.input_timeout_ms",
            (2, 20),
            ErrorKind::Invalid,
            "must be between 10 and 60000 milliseconds, got 5",
        );
        assert_one_error(
            "[defaults]\nrevert_after_ms = -1\n",
            "defaults.revert_after_ms",
            (2, 19),
            ErrorKind::Invalid,
            "between 0 and 3600000 milliseconds",
        );
        assert_one_error(
            "[defaults]\nbuffer_hard_cap = \"2 TiB\"\n",
            "defaults.buffer_hard_cap",
            (2, 19),
            ErrorKind::Invalid,
            "got 2 TiB",
        );
    }

    #[test]
    fn types_and_words() {
        assert_one_error(
            "[defaults]\nsecond_publisher = \"bakup\"\n",
            "defaults.second_publisher",
            (2, 20),
            ErrorKind::Invalid,
            "must be \"backup\", \"takeover\" or \"reject\", got \"bakup\" (did you mean \"backup\"?)",
        );
        assert_one_error(
            "[defaults]\nallow_pull = \"yes\"\n",
            "defaults.allow_pull",
            (2, 14),
            ErrorKind::WrongType,
            "must be true or false, got a string (\"yes\")",
        );
        assert_one_error(
            "[defaults]\ninput_timeout_ms = 1.5\n",
            "defaults.input_timeout_ms",
            (2, 20),
            ErrorKind::WrongType,
            "must be a whole number of milliseconds, got a float (1.5)",
        );
        assert_one_error(
            "[defaults]\nbuffer = true\n",
            "defaults.buffer",
            (2, 10),
            ErrorKind::WrongType,
            "must be a size",
        );
        assert_one_error(
            "[defaults]\nbuffer = \"16 Mb\"\n",
            "defaults.buffer",
            (2, 10),
            ErrorKind::Invalid,
            "`Mb` is not a unit",
        );
        assert_one_error(
            "[defaults]\nbuffer = -5\n",
            "defaults.buffer",
            (2, 10),
            ErrorKind::Invalid,
            "must be a size in bytes, got -5",
        );
    }

    #[test]
    fn buffer_must_not_exceed_the_hard_cap() {
        assert_one_error(
            "[defaults]\nbuffer = \"128 MiB\"\n",
            "defaults.buffer",
            (2, 10),
            ErrorKind::Conflict,
            "`buffer` (128 MiB) must not be larger than `buffer_hard_cap` (64 MiB from [defaults])",
        );
        assert_one_error(
            "[defaults]\nbuffer_hard_cap = \"8 MiB\"\n",
            "defaults.buffer_hard_cap",
            (2, 19),
            ErrorKind::Conflict,
            "`buffer` (16 MiB from [defaults]) must not be larger than `buffer_hard_cap` (8 MiB)",
        );
        // A stream that overrides one side is checked against the other.
        assert_one_error(
            "[defaults]\nbuffer_hard_cap = \"32 MiB\"\n[[stream]]\nid = \"a\"\nbuffer = \"48 MiB\"\n",
            "stream[0].buffer",
            (5, 10),
            ErrorKind::Conflict,
            "(32 MiB from [defaults])",
        );
        // Equal is fine; a stream that overrides neither is not re-reported.
        config(
            "[defaults]\nbuffer = \"32 MiB\"\nbuffer_hard_cap = \"32 MiB\"\n[[stream]]\nid = \"a\"\n",
        );
        // An invalid cap is reported once, not again as a conflict.
        assert_one_error(
            "[defaults]\nbuffer_hard_cap = \"1 KiB\"\n[[stream]]\nid = \"a\"\nbuffer = \"1 MiB\"\n",
            "defaults.buffer_hard_cap",
            (2, 19),
            ErrorKind::Invalid,
            "between 64 KiB",
        );
    }
}
