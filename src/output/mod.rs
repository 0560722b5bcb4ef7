//! Outputs: where a stream's packets go (issue 3, point 6).
//!
//! Every output is a tokio task fed through a [`Feed`]: batches of whole TS
//! packets taken by the stream task from the output's consumer queue in the
//! stream's ring buffer (`ring::ConsumerQueue`). The stream task never
//! awaits an output: it hands a batch over with `try_send` and, when the
//! channel is full, leaves the packets in the consumer queue, which skips
//! to the next GOP once it is too far behind (counted). So a stalled or
//! failing output never blocks the stream or the other outputs.
//!
//! An output that reconnects calls [`Feed::rejoin`]: the stream task then
//! restarts its consumer, so the new connection begins at the ring's latest
//! splice point (PAT, PMT, IDR) rather than mid-GOP.
//!
//! The output tasks ([`run`] picks one by kind):
//!
//! - [`file::run`]: record to an MPEG-TS file, appending.
//! - [`udp::run`]: UDP unicast or multicast, 7 TS packets per datagram.
//!   The router itself drives UDP outputs from the stream task instead
//!   ([`udp::DirectUdp`], same contract): a non-blocking UDP send never
//!   waits for a peer, and sending it there spares each datagram a hop
//!   between tasks.
//! - [`srt_caller::run`]: push to a remote SRT listener as a caller, over
//!   the sans-IO [`srt_connect::SrtCaller`].
//!
//! They share one contract: an output never fails its stream. It retries
//! with exponential [`Backoff`] (logging each failure once, with the stream
//! id), keeps draining its feed while down (dropped packets are counted in
//! [`OutputStats`]), asks for a [`Feed::rejoin`] when a session starts
//! after a gap, and on shutdown (the token, or the feed closing) writes
//! what is left in the feed, closes cleanly and returns.

pub mod backoff;
mod downtime;
pub mod file;
pub mod srt_caller;
pub mod srt_connect;
pub mod stats;
pub mod udp;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use backoff::Backoff;
pub use stats::{OutputState, OutputStats, OutputStatsSnapshot};
pub use udp::UdpTarget;

use crate::config::{OutputConfig, OutputKind, StreamId};

/// Size of one MPEG-TS packet (ISO/IEC 13818-1 §2.4.3.2).
pub const TS_PACKET_LEN: usize = 188;

/// Runs one output of `stream` until `shutdown` fires or the stream's feed
/// closes: the task to spawn per `[[stream.output]]`. `stats` is shared
/// with the API; it is the caller's to create (`Arc::default()`).
pub async fn run(
    stream: StreamId,
    config: OutputConfig,
    feed: Feed,
    shutdown: CancellationToken,
    stats: Arc<OutputStats>,
) {
    let reconnect = config.reconnect;
    match config.kind {
        OutputKind::File { path } => {
            file::run(stream, path, reconnect, feed, shutdown, stats).await
        }
        OutputKind::Udp {
            address,
            ttl,
            multicast_interface,
        } => {
            let target = UdpTarget {
                address,
                ttl,
                multicast_interface,
            };
            udp::run(stream, target, reconnect, feed, shutdown, stats).await;
        }
        OutputKind::Srt(url) => {
            srt_caller::run(stream, url, reconnect, feed, shutdown, stats).await;
        }
    }
}

/// Whole 188-byte TS packets, in stream order.
pub type Batch = Vec<Bytes>;

/// Batches in flight between a stream task and one output task. Small: the
/// real buffering is the consumer queue, which knows about GOPs.
pub const FEED_CAPACITY: usize = 32;

/// The output task's end of its stream.
#[derive(Debug)]
pub struct Feed {
    batches: mpsc::Receiver<Batch>,
    rejoin: Arc<AtomicBool>,
}

/// The stream task's end of one output.
#[derive(Debug, Clone)]
pub struct FeedSender {
    batches: mpsc::Sender<Batch>,
    rejoin: Arc<AtomicBool>,
}

/// A linked pair.
pub fn feed() -> (FeedSender, Feed) {
    let (tx, rx) = mpsc::channel(FEED_CAPACITY);
    let rejoin = Arc::new(AtomicBool::new(false));
    (
        FeedSender {
            batches: tx,
            rejoin: rejoin.clone(),
        },
        Feed {
            batches: rx,
            rejoin,
        },
    )
}

impl Feed {
    /// The next batch; `None` once the stream is gone (shutdown or stream
    /// removed): flush and finish.
    pub async fn recv(&mut self) -> Option<Batch> {
        self.batches.recv().await
    }

    /// A batch if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Option<Batch> {
        self.batches.try_recv().ok()
    }

    /// Asks the stream to restart this output at the latest splice point
    /// (after a reconnect). Batches already in the channel are stale:
    /// the next batch after the restart begins with PAT and PMT.
    pub fn rejoin(&mut self) {
        while self.batches.try_recv().is_ok() {}
        self.rejoin.store(true, Ordering::Release);
    }
}

/// What happened to a batch offered to an output.
#[derive(Debug)]
pub enum Offer {
    Sent,
    /// The channel is full: keep the packets queued and try later.
    Full(Batch),
    /// The output task is gone.
    Closed,
}

impl FeedSender {
    /// Offers a batch without waiting.
    pub fn offer(&self, batch: Batch) -> Offer {
        match self.batches.try_send(batch) {
            Ok(()) => Offer::Sent,
            Err(mpsc::error::TrySendError::Full(batch)) => Offer::Full(batch),
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
        }
    }

    /// True once (and clears the request) when the output asked to restart
    /// at a splice point.
    pub fn take_rejoin(&self) -> bool {
        self.rejoin.swap(false, Ordering::AcqRel)
    }

    /// Room for more batches right now.
    pub fn has_room(&self) -> bool {
        self.batches.capacity() > 0
    }

    pub fn is_closed(&self) -> bool {
        self.batches.is_closed()
    }
}
