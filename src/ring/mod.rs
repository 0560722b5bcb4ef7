//! Per-stream GOP ring buffer and fan-out to consumers, sans-IO.
//!
//! Every ingest stream feeds one [`StreamBuffer`]: it runs the TS demux
//! ([`crate::ts::demux`]) and the GOP indexer ([`crate::ts::gop`]) over each
//! datagram, keeps the stream's recent packets in a [`GopRing`] bounded in
//! bytes, and copies every live packet (a reference-counted `Bytes` slice of
//! the datagram, never a copy) into one [`ConsumerQueue`] per consumer: a
//! player, an output, an encoder's stdin.
//!
//! - [`start`]: where a consumer can begin, strongest first: an IDR splice
//!   point, a weaker random access point, or merely a PES start
//!   ([`StartKind`]).
//! - [`gop_ring`]: the byte-bounded packet store; evicts whole GOPs from the
//!   front and never the latest splice point's GOP unless the hard cap
//!   forces it.
//! - [`queue`]: one consumer's bounded queue. A slow consumer never blocks
//!   the stream: it ends its current GOP cleanly, skips to the next splice
//!   point and resumes there with PAT and PMT first, continuity counters
//!   continuing its own.
//! - [`stream`]: the per-stream pipeline that ties them together.
//!
//! Nothing here reads a clock, spawns a task or touches a socket; the shell
//! wraps a [`StreamBuffer`] (or each queue) in a mutex and wakes consumers.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod gop_ring;
pub mod queue;
pub mod start;
pub mod stream;

mod header;
#[cfg(test)]
pub(crate) mod testing;

pub use gop_ring::{GopRing, IdrMark, RingError, RingLimits, RingStats};
pub use queue::{ConsumerPhase, ConsumerQueue, ConsumerStats, QueueLimits};
pub use start::{ProgramPsi, RandomAccessPoint, RandomAccessReason, StartKind, StartPoint};
pub use stream::{ConsumerId, StreamBuffer, StreamConfig, StreamStats};
