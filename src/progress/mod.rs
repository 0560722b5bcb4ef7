//! ffmpeg `-progress` output → typed progress blocks, sans-IO.
//!
//! switchyard runs every encoder with `-progress pipe:2 -stats_period 0.5
//! -nostats` (DESIGN.md, "Facts measured on this platform"), so the child's
//! stderr carries two things interleaved:
//!
//! - **progress blocks**: `key=value` lines, one block every 0.5 s, each
//!   ending with `progress=continue` (or `progress=end` on the last one):
//!   `frame`, `fps`, `stream_N_M_q`, `bitrate`, `total_size`, `out_time_us`,
//!   `out_time_ms` (microseconds too, despite its name: ffmpeg 5.1
//!   `fftools/ffmpeg.c` prints the same value under both keys), `out_time`,
//!   `dup_frames`, `drop_frames`, `speed`. Values may be `N/A` or padded
//!   with spaces (`bitrate= 471.7kbits/s`).
//! - **log lines**: ffmpeg's banner, warnings and errors (`[h264 @ 0x…]
//!   concealing …`, `corrupt input packet`), which the shell logs and the
//!   health scorer may count; they never break a block.
//!
//! [`ProgressParser::push`] takes bytes in any chunking; completed blocks
//! and log lines come out of [`ProgressParser::poll_event`]. A line with no
//! newline is held up to [`MAX_LINE`] bytes and the rest dropped (counted),
//! so a child writing garbage cannot grow our memory; the pending event
//! queue is bounded the same way ([`MAX_PENDING_EVENTS`]).
//!
//! ffmpeg prints no block while it is blocked (reading stdin or writing
//! stdout), so progress is not a heartbeat: stalls are detected from stdout
//! silence by [`crate::health`].
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod block;
mod parser;

pub use block::{Progress, ValueError, parse_bitrate_kbps, parse_out_time_us, parse_speed};
pub use parser::{
    LogLine, MAX_LINE, MAX_PENDING_EVENTS, ParserStats, ProgressEvent, ProgressParser,
};
