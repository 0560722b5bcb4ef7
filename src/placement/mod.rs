//! Where a new stream's encoder runs, as a pure function over encoder and
//! host state (issue 4 point 2), sans-IO.
//!
//! - [`host`]: `/proc/stat` text → CPU times, and the busy fraction
//!   between two samples.
//! - [`cost`]: the CPU a profile is expected to cost per real-time stream,
//!   from DESIGN.md's measured capacity figures.
//! - [`place`] answers [`Placement::UseSpare`],
//!   [`Placement::Spawn`] or [`Placement::Refuse`] with a reason and what
//!   the stream does instead (passthrough or rejection, per config).
//!
//! The rules, in order:
//!
//! 1. **CPU headroom**: the host's measured busy CPU (or, before a second
//!    `/proc/stat` sample, the sum of the encoders' own shares, whichever is
//!    larger) plus the new stream's cost must stay within
//!    `cores × (1 − headroom)`.
//! 2. **A spare first**: a pre-spawned spare waiting on stdin skips the
//!    ~70 ms spawn; the lowest id is taken, for determinism.
//! 3. **Process cap**: busy encoders + the new one + the `spares` the pool
//!    keeps must fit in `max_encoders`, so that taking work never eats the
//!    spares failover needs.
//! 4. **Degraded and failed encoders take no new work**: only a `Spare`
//!    slot is ever handed a stream.
//!
//! Nothing here reads `/proc` or a clock: the shell samples and passes the
//! numbers in, so remote hosts can be placed on the same way later.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod cost;
mod decide;
pub mod host;

pub use cost::estimated_cost;
pub use decide::{
    EncoderId, EncoderSlot, HostLoad, Placement, PlacementSettings, RefusalPolicy, RefusalReason,
    SlotState, place,
};
pub use host::{CpuTimes, HostStatError, busy_fraction, parse_host_stat};
