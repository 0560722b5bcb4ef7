//! The output splicer: several sources in, one continuous valid transport
//! stream out, switching between sources only at splice points.
//!
//! [`Splicer`] is sans-IO: the shell pushes whole 188-byte packets of any
//! source with [`Splicer::push`] and sends what lands in `out`; it asks
//! for a switch with [`Splicer::switch_to`], which takes effect at the
//! target's next splice point (an IDR with its parameter sets, see
//! [`crate::ts::gop`]); time is only ever the `now` passed in.
//!
//! What the output guarantees, whatever the sources do:
//!
//! - **One program, constant PSI.** The first source that goes active fixes
//!   the layout ([`layout`]): PMT PID, PCR PID, elementary PIDs and stream
//!   types. Later sources are remapped onto it (video to video, audio in
//!   order by codec, others by `stream_type`; the rest dropped and
//!   counted). The splicer writes the PAT and PMT itself, in place of each
//!   source's, and at every switch, so PSI never changes (§2.4.4).
//! - **Continuity counters** are stamped per output PID, so they run on
//!   across switches; packets without payload repeat the last counter
//!   (§2.4.3.3), and a source's duplicate packets are dropped.
//! - **Timestamps never go backwards.** At a switch the new source gets an
//!   offset so that its IDR lands one frame (or the wall-clock gap, if
//!   longer) after the last video frame sent. A source whose own clock
//!   already lands there (two encoders of one input with `-copyts`) keeps
//!   it: offset 0, not rebased. The offset is applied to PTS/DTS (§2.4.3.7)
//!   and to PCR/OPCR (§2.4.3.5). After a switch, audio PES packets that
//!   would not advance the audio PTS are dropped whole (audio is cut by
//!   PTS).
//! - **Whole access units.** The old source's video frame in progress at
//!   the switch is not sent half (see *gating* below), and every
//!   elementary stream of the new source starts at a PES start.
//!
//! # Holding and gating
//!
//! A splice point is known only a few packets after it starts (at its
//! first slice NAL unit). So while a switch is pending, the target's
//! packets from its latest video PES start on are *held* (bounded by
//! [`SpliceSettings::hold_limit`]; an overflow drops the oldest and is
//! counted), and the active source's packets from its latest video PES
//! start on are *gated*: released when the next video PES starts (the
//! frame is then complete), discarded at the switch except for packets
//! that complete an audio PES already under way. If the switch request
//! came in the middle of an active frame, the switch waits for the active
//! source's next video PES start, at most [`SpliceSettings::defer_limit`]
//! (a dead source never sends one).
//!
//! # Discontinuity indicator
//!
//! The splicer sets `discontinuity_indicator` (§2.4.3.5) only when the
//! new source's first PCR, after its offset, would not advance the output
//! PCR (a source whose PCR runs further ahead of its DTS than the old
//! one's by more than the gap). Rebasing the PCR with the same offset as
//! the timestamps avoids it in every other case; [`SpliceStats`] counts it.
//!
//! Limits: a source must carry video (splice points are IDRs); a PES whose
//! timestamps do not fit in its first TS packet cannot be rebased in place
//! and is dropped when its source has an offset (counted; ffmpeg never
//! writes one).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod gop_gate;
mod layout;
mod source;
mod splicer;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use gop_gate::{GateStats, GopGate};
pub use splicer::Splicer;

/// Identifies one input of the splicer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SourceId(pub u32);

impl std::fmt::Display for SourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "source {}", self.0)
    }
}

/// Tuning of a [`Splicer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpliceSettings {
    /// Bytes held of a pending source (from its latest video PES start) and
    /// gated of the active one. An IDR frame must fit: default 4 MiB (an
    /// 8 Mbit/s IDR is ~200 KB; this leaves room for 40 Mbit/s intra-heavy
    /// streams).
    pub hold_limit: usize,
    /// A new source whose own timeline lands within this of the target
    /// (and after what was sent) keeps its timestamps. Default 1 s.
    pub related_clock_tolerance: Duration,
    /// Frame duration assumed until a source's video shows its own, in
    /// 90 kHz ticks. Default 3600 (25 fps).
    pub default_frame_ticks: u64,
    /// How long a switch waits for the active source to finish its frame
    /// in progress. Default 100 ms.
    pub defer_limit: Duration,
    /// How the sources' clocks relate. Default [`Timeline::Independent`].
    pub timeline: Timeline,
}

/// How the timestamps of a splicer's sources relate to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Timeline {
    /// Unrelated clocks (a stream's main and backup input): a new source
    /// is rebased onto the output timeline unless its own clock happens to
    /// fit (see [`SpliceSettings::related_clock_tolerance`]).
    #[default]
    Independent,
    /// One timeline for every source (encoders of one stream, run with
    /// `-copyts -mpegts_copyts 1`, DESIGN.md): timestamps are never
    /// changed, and a switch takes the new source's first splice point
    /// whose PTS is after the last PTS sent, so no frame is sent twice.
    Shared,
}

impl Default for SpliceSettings {
    fn default() -> Self {
        SpliceSettings {
            hold_limit: 4 << 20,
            related_clock_tolerance: Duration::from_secs(1),
            default_frame_ticks: 3600,
            defer_limit: Duration::from_millis(100),
            timeline: Timeline::Independent,
        }
    }
}

/// Something the splicer did, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpliceEvent {
    /// The output now carries `to`, from its splice point on.
    Switched {
        /// `None` for the first source to go active.
        from: Option<SourceId>,
        to: SourceId,
        /// Wall-clock time since the last packet sent (zero at the first).
        gap: Duration,
        /// Decode-time step from the last video frame sent to the new IDR,
        /// in 90 kHz ticks (0 at the first).
        pts_gap: i64,
        /// Added to the new source's timestamps, in 90 kHz ticks.
        offset: i64,
        /// Whether the new source's clock was rebased (`offset` from its
        /// own timeline) rather than kept.
        rebased: bool,
        /// Audio PES packets dropped by the audio cut while splicing (later
        /// ones are in [`SpliceStats::audio_pes_dropped`]).
        audio_dropped: u64,
    },
}

/// Counters of a [`Splicer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpliceStats {
    pub packets_in: u64,
    pub packets_out: u64,
    /// Packets forwarded as the very `Bytes` pushed.
    pub zero_copy: u64,
    /// Packets copied to change the PID, counter, timestamps or PCR.
    pub rewritten: u64,
    /// PAT/PMT packets written by the splicer.
    pub psi_packets: u64,
    pub switches: u64,
    /// Not 188 bytes, no sync byte, a bad adaptation field, or
    /// `transport_error_indicator` set.
    pub malformed: u64,
    /// Source duplicates (same counter twice, §2.4.3.3), dropped.
    pub duplicates_dropped: u64,
    /// Packets of sources that are not active (held or discarded).
    pub inactive_packets: u64,
    /// Packets on PIDs the layout has no place for.
    pub unmapped_packets: u64,
    /// Elementary streams of later sources with no place in the layout.
    pub extra_streams_dropped: u64,
    /// Packets before an elementary stream's first PES start after a
    /// switch.
    pub unsynced_packets: u64,
    /// PES packets of the active source hit by packet loss (a continuity
    /// error), dropped from the loss on.
    pub damaged_pes_dropped: u64,
    /// Audio PES packets dropped by the audio cut.
    pub audio_pes_dropped: u64,
    /// PES packets whose timestamps did not fit their first TS packet and
    /// that needed an offset, dropped.
    pub unpatchable_pes: u64,
    /// Held or gated packets pushed out by [`SpliceSettings::hold_limit`].
    pub hold_overflows: u64,
    /// Splice points of a pending source that could not be used (no
    /// timestamps, PSI that did not parse, evicted from the hold).
    pub splice_points_skipped: u64,
    /// `discontinuity_indicator` set on a PCR (see the module docs).
    pub pcr_discontinuities: u64,
    /// A later source's PCR PID maps to an output PID other than the
    /// layout's PCR PID.
    pub pcr_pid_mismatches: u64,
}

/// Counters of one source, as its demux sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceStats {
    pub packets: u64,
    pub cc_errors: u64,
    pub splice_points: u64,
    /// Frame duration estimate, in 90 kHz ticks.
    pub frame_ticks: Option<u64>,
}
