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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;

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
