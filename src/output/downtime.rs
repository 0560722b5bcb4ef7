//! What every output does while it is down: keep taking batches from its
//! feed and drop them (counted), so that the stream task never finds the
//! channel full for longer than a batch takes to arrive; and, when a session
//! starts, ask the stream to restart at a splice point.

use std::fmt::Display;
use std::future::Future;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::backoff::Backoff;
use super::stats::OutputStats;
use super::{Batch, Feed};
use crate::config::StreamId;

/// What an output task's session failed on, for [`retry_later`].
pub(crate) struct Failure<'a> {
    pub stream: &'a StreamId,
    /// `"file"`, `"UDP"`, `"SRT"`.
    pub kind: &'static str,
    /// Where it goes: a path, an address, a URL.
    pub to: &'a (dyn Display + Sync),
    pub error: &'a (dyn Display + Sync),
}

/// After a failed session: logs and counts the failure, then waits out the
/// backoff delay while dropping the stream's batches (counted). False when
/// the output must stop instead (shutdown, or the stream is gone).
pub(crate) async fn retry_later(
    failure: Failure<'_>,
    backoff: &mut Backoff,
    feed: &mut Feed,
    stats: &OutputStats,
    shutdown: &CancellationToken,
) -> bool {
    let Failure {
        stream,
        kind,
        to,
        error,
    } = failure;
    let delay = backoff.failed(Instant::now().into_std());
    warn!(stream = %stream, %to, %error, retry_in_ms = delay.as_millis() as u64, "output: {kind} failed");
    stats.failed(error);
    let wake = Instant::now() + delay;
    dropping_feed(feed, stats, shutdown, tokio::time::sleep_until(wake))
        .await
        .is_some()
}

/// Runs `work` (an open, a handshake, a backoff sleep) while dropping every
/// batch the stream sends. `None` when the output must stop instead: the
/// shutdown token fired or the stream is gone; what was still in the feed
/// is dropped and counted.
pub(crate) async fn dropping_feed<F: Future>(
    feed: &mut Feed,
    stats: &OutputStats,
    shutdown: &CancellationToken,
    work: F,
) -> Option<F::Output> {
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                drop_pending(feed, stats);
                return None;
            }
            batch = feed.recv() => match batch {
                Some(batch) => drop_batch(stats, &batch),
                None => return None,
            },
            out = &mut work => return Some(out),
        }
    }
}

/// Drops whatever is in the feed now, counted.
pub(crate) fn drop_pending(feed: &mut Feed, stats: &OutputStats) {
    while let Some(batch) = feed.try_recv() {
        drop_batch(stats, &batch);
    }
}

fn drop_batch(stats: &OutputStats, batch: &Batch) {
    stats.dropped(batch.len());
}

/// A session (connection, open file) is up. Unless this is the first one
/// and not a packet was lost before it, the stream is asked to restart this
/// output at its latest splice point, so the receiver's new session begins
/// with PAT, PMT and an IDR instead of the middle of a GOP; batches still in
/// the feed are stale and dropped (counted).
pub(crate) fn session_started(feed: &mut Feed, stats: &OutputStats) {
    let before = stats.snapshot();
    if before.sessions > 0 || before.packets_dropped > 0 {
        drop_pending(feed, stats);
        feed.rejoin();
    }
    stats.session_started();
}
