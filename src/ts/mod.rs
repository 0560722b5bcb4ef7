//! MPEG-2 transport stream core (ISO/IEC 13818-1), sans-IO and zero-copy.
//!
//! Data flows bottom-up through these modules:
//!
//! - [`resync`]: a byte stream (file, pipe, datagrams) → 188-byte packets,
//!   recovering sync after garbage or truncation.
//! - [`packet`]: a checked view of one packet and its adaptation field.
//! - [`continuity`]: per-PID continuity counter checking.
//! - [`psi`]: section reassembly with CRC-32, PAT and PMT.
//! - [`pes`]: PES header and 33-bit timestamps.
//! - [`nal`]: H.264/HEVC NAL unit classification across packet boundaries,
//!   telling true IDR splice points apart from CRA/open-GOP/intra-refresh.
//! - [`demux`]: ties the above together for a whole multiplex and reports
//!   access units, PSI changes, PCRs and errors through [`demux::DemuxHandler`].
//! - [`gop`]: indexes IDR access units of a program's video PID as splice
//!   points (packet index, PTS, and the PAT/PMT to send before them).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod continuity;
pub mod demux;
pub mod gop;
pub mod nal;
pub mod packet;
pub mod pes;
pub mod psi;
pub mod resync;
mod types;

pub use packet::{AdaptationField, PACKET_SIZE, PacketError, SYNC_BYTE, TsPacket};
pub use types::{Cc, Pcr, Pid, Timestamp};
