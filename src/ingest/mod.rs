//! Ingest: where streams enter the router.
//!
//! Each protocol has a sans-IO core here, driven by a thin tokio shell
//! (DESIGN.md, "Layering"): the core takes datagrams and `now`, and hands
//! back datagrams to send and events (connections, stream data).
//!
//! - [`srt`]: the SRT listener, many publishers and players on one UDP
//!   port, routed by streamid.
//!
//! RTP is in [`crate::rtp`]; plain UDP needs no core beyond [`crate::ts`].

pub mod socket;
pub mod srt;
pub mod udp;
