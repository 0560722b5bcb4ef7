//! Encoder profiles and the ffmpeg command line that makes encoders of one
//! stream interchangeable (issue 4 point 1), sans-IO.
//!
//! - [`profile`]: a named profile (codec arguments, the ffmpeg binary, or
//!   passthrough), validated on construction: extra arguments that would
//!   break interchangeability are rejected with the profile's name and the
//!   offending argument.
//! - [`args`]: [`ffmpeg_args`] builds the argument list, adding by itself
//!   every flag DESIGN.md ("Facts measured on this platform") lists: the
//!   same timeline (`-copyts`, `-mpegts_copyts 1`), IDRs exactly where the
//!   source has them (`-force_key_frames source`, no scene cuts, no
//!   keyframes of the encoder's own), fast probing from stdin, pinned PIDs
//!   and service id, `-pes_payload_size 0`, `-progress` on stderr and TS
//!   on stdout.
//!
//! - [`process`] (shell, tokio): spawning, feeding, reading, scoring and
//!   reaping one ffmpeg process.

pub mod args;
pub mod process;
pub mod profile;

pub use args::{StreamLayout, ffmpeg_args};
pub use process::{
    Encoder, EncoderEvent, EncoderOptions, EncoderSpec, FeedError, LOG_BURST, SpawnError,
};
pub use profile::{AudioArgs, FfmpegMissing, Profile, ProfileError, VideoArgs, VideoSize};
