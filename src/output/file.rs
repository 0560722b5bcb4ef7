//! `kind = "file"`: record a stream to an MPEG-TS file.
//!
//! The file is opened for appending (parent directories created), so a
//! restart of the router or of the output never truncates a recording.
//! Writes are buffered and flushed at least every [`FLUSH_INTERVAL`] and on
//! shutdown; there is no fsync (a recording survives a crash of the router,
//! not of the machine). A write error (disk full, file system gone) closes
//! the file; it is reopened, appending, after the backoff delay, and the
//! stream restarts this output at a splice point so the recording resumes
//! at PAT, PMT and an IDR.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::backoff::Backoff;
use super::downtime::{Failure, retry_later, session_started};
use super::stats::{OutputState, OutputStats};
use super::{Batch, Feed, TS_PACKET_LEN};
use crate::config::{self, StreamId};

/// The longest a written packet stays in our buffer.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// Write buffer: ~0.1 s of a 20 Mbit/s stream, a multiple of 188 bytes.
const BUFFER_LEN: usize = 348 * TS_PACKET_LEN;

/// Why a recording session ended.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot create the directory {dir} for the recording: {source}")]
    CreateDir { dir: PathBuf, source: io::Error },
    #[error("cannot open {path} for recording: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("writing to {path} failed: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// Records `stream` to `path` until `shutdown` fires or the feed closes,
/// then drains the feed into the file, flushes and returns. Never returns
/// early on an error: it retries with `reconnect`'s backoff, dropping
/// (counted) what the stream sends meanwhile.
pub async fn run(
    stream: StreamId,
    path: PathBuf,
    reconnect: config::Backoff,
    mut feed: Feed,
    shutdown: CancellationToken,
    stats: Arc<OutputStats>,
) {
    let mut backoff = Backoff::new(reconnect);
    stats.set_state(OutputState::Connecting);
    loop {
        let reopen = stats.snapshot().sessions > 0;
        // Not raced against the shutdown or drained meanwhile: opening a
        // local file takes microseconds, and batches that arrive during it
        // (or a shutdown) are handled by `record` right after. A file
        // system that hangs cannot be helped by cancelling (the open runs
        // on a blocking thread); the stream side skips GOPs meanwhile.
        let result = match open(&path, reopen).await {
            Err(e) => Err(e),
            Ok(file) => {
                session_started(&mut feed, &stats);
                backoff.connected(Instant::now().into_std());
                info!(stream = %stream, path = %path.display(), "output: recording");
                record(file, &path, &mut feed, &shutdown, &stats).await
            }
        };
        let Err(error) = result else { break };
        let failure = Failure {
            stream: &stream,
            kind: "file",
            to: &path.display(),
            error: &error,
        };
        if !retry_later(failure, &mut backoff, &mut feed, &stats, &shutdown).await {
            break;
        }
    }
    stats.set_state(OutputState::Stopped);
    info!(stream = %stream, path = %path.display(), "output: recording stopped");
}

/// Opens `path` for appending, creating its directory. On a reopen after a
/// failed write, a partial packet left at the end of the file is cut off,
/// so the packets appended next stay on 188-byte boundaries.
async fn open(path: &Path, reopen: bool) -> Result<File, FileError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|source| FileError::CreateDir {
                dir: dir.to_path_buf(),
                source,
            })?;
    }
    let open_error = |source| FileError::Open {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(open_error)?;
    if reopen {
        let meta = file.metadata().await.map_err(open_error)?;
        let partial = meta.len() % TS_PACKET_LEN as u64;
        if meta.is_file() && partial != 0 {
            file.set_len(meta.len() - partial)
                .await
                .map_err(open_error)?;
        }
    }
    Ok(file)
}

/// One recording session: `Ok` on a clean stop (shutdown or end of the
/// stream), after flushing.
async fn record(
    file: File,
    path: &Path,
    feed: &mut Feed,
    shutdown: &CancellationToken,
    stats: &OutputStats,
) -> Result<(), FileError> {
    let write_error = |source| FileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut out = BufWriter::with_capacity(BUFFER_LEN, file);
    let mut flush = tokio::time::interval_at(Instant::now() + FLUSH_INTERVAL, FLUSH_INTERVAL);
    flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut dirty = false;
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                while let Some(batch) = feed.try_recv() {
                    write_batch(&mut out, batch, stats).await.map_err(write_error)?;
                }
                break;
            }
            batch = feed.recv() => match batch {
                Some(batch) => {
                    write_batch(&mut out, batch, stats).await.map_err(write_error)?;
                    dirty = true;
                }
                None => break,
            },
            _ = flush.tick() => {
                if dirty {
                    out.flush().await.map_err(write_error)?;
                    dirty = false;
                }
            }
        }
    }
    out.flush().await.map_err(write_error)?;
    out.into_inner().shutdown().await.map_err(write_error)
}

/// Writes a batch; on an error, the packets of the batch not yet written
/// are counted as dropped (what the buffer held is lost with the file).
async fn write_batch(
    out: &mut BufWriter<File>,
    batch: Batch,
    stats: &OutputStats,
) -> io::Result<()> {
    let count = batch.len();
    for (i, packet) in batch.iter().enumerate() {
        if let Err(e) = out.write_all(packet).await {
            stats.send_error(count - i);
            return Err(e);
        }
        stats.sent(1, packet.len());
    }
    Ok(())
}
