//! MPEG-TS over RTP, sans-IO: RTP header parsing (RFC 3550 §5.1, §5.3.1),
//! wrap-aware sequence numbers (RFC 3550 Appendix A.1) and a receiver that
//! turns RTP datagrams carrying whole TS packets (RFC 2250 §2, payload type
//! 33 from RFC 3551) into transport stream payloads in sequence order.
//!
//! - [`packet`]: [`RtpPacket`], a checked zero-copy view of one datagram
//!   (`bytes::Bytes`): the payload is a slice of it; [`RtpPacketBuilder`].
//! - [`seq`]: [`SeqNo`] and [`SeqUnwrapper`].
//! - [`receiver`]: [`TsReceiver`], reordering within a window and a maximum
//!   delay, counting loss, duplicates and late packets, and handling sender
//!   changes (SSRC) and sequence jumps. Its module docs state the push/poll
//!   contract and every policy.
//!
//! No sockets, tasks or clock reads here: the shell (`ingest/rtp`) receives
//! datagrams, passes `now`, and arms the timer [`TsReceiver::poll_timeout`]
//! asks for.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod packet;
pub mod receiver;
pub mod seq;

pub use packet::{HeaderExtension, PAYLOAD_TYPE_MP2T, RtpError, RtpPacket, RtpPacketBuilder};
pub use receiver::{
    ConfigError, DropReason, Pushed, ReceiverConfig, ReceiverStats, Released, TsReceiver,
};
pub use seq::{SeqNo, SeqUnwrapper};
