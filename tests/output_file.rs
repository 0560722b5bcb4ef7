//! The file output (`output::file`): records every byte, flushes on a
//! timer and on shutdown, survives an unopenable path and a failing disk
//! (`/dev/full`) without ever leaving its feed full, and resumes at a
//! splice point after a failure.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::{TempDir, capture_packets, offer};
use switchyard::config::{Backoff, StreamId};
use switchyard::output::{self, OutputState, OutputStats};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;

fn backoff() -> Backoff {
    Backoff {
        min: Duration::from_millis(50),
        max: Duration::from_millis(200),
    }
}

struct Running {
    tx: output::FeedSender,
    shutdown: CancellationToken,
    stats: Arc<OutputStats>,
    task: JoinHandle<()>,
}

fn start(path: PathBuf) -> Running {
    let (tx, feed) = output::feed();
    let shutdown = CancellationToken::new();
    let stats = Arc::new(OutputStats::default());
    let task = tokio::spawn(output::file::run(
        StreamId::new("rec/cam1").expect("id"),
        path,
        backoff(),
        feed,
        shutdown.clone(),
        stats.clone(),
    ));
    Running {
        tx,
        shutdown,
        stats,
        task,
    }
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        sleep(Duration::from_millis(10)).await;
    }
}

async fn stop(r: Running) -> Arc<OutputStats> {
    r.shutdown.cancel();
    timeout(Duration::from_secs(3), r.task)
        .await
        .expect("the output stops within 3 s")
        .expect("output task");
    assert_eq!(r.stats.state(), OutputState::Stopped);
    r.stats
}

#[tokio::test]
async fn file_output_records_every_byte_and_flushes_on_shutdown() {
    let dir = TempDir::new("output-file-all");
    let path = dir.path("nested/dir/cam1.ts");
    let r = start(path.clone());
    let packets = capture_packets();
    for batch in packets.chunks(50) {
        offer(&r.tx, batch.to_vec()).await;
    }
    // Shut down at once: what is still in the feed must be written too.
    let stats = stop(r).await;
    let written = std::fs::read(&path).expect("the recording");
    assert!(
        written == packets.concat(),
        "recording differs from the capture"
    );
    let s = stats.snapshot();
    assert_eq!(s.packets_sent as usize, packets.len());
    assert_eq!(s.bytes_sent as usize, written.len());
    assert_eq!((s.packets_dropped, s.sessions, s.failures), (0, 1, 0));
}

#[tokio::test]
async fn file_output_appends_and_flushes_within_half_a_second() {
    let dir = TempDir::new("output-file-flush");
    let path = dir.path("cam1.ts");
    std::fs::write(&path, [0x47u8; 188]).expect("an earlier recording");
    let r = start(path.clone());
    let packets = capture_packets();
    let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    for round in 1..=2u64 {
        offer(&r.tx, packets[..5].to_vec()).await;
        let started = Instant::now();
        wait_for("the flush", Duration::from_secs(2), || {
            size() == (1 + 5 * round) * 188
        })
        .await;
        let took = started.elapsed();
        assert!(took < Duration::from_millis(700), "flushed after {took:?}");
        sleep(Duration::from_millis(150)).await;
    }
    // The stream going away ends the output too.
    drop(r.tx);
    timeout(Duration::from_secs(3), r.task)
        .await
        .expect("stops when the feed closes")
        .expect("task");
    let written = std::fs::read(&path).expect("recording");
    assert_eq!(
        &written[188..],
        [&packets[..5], &packets[..5]].concat().concat().as_slice()
    );
}

#[tokio::test]
async fn file_output_retries_an_unopenable_path_and_resumes_at_a_splice_point() {
    let dir = TempDir::new("output-file-blocked");
    // The recording's directory is a file: creating it fails.
    let blocker = dir.path("sub");
    std::fs::write(&blocker, b"not a directory").expect("blocker");
    let path = blocker.join("cam1.ts");
    let r = start(path.clone());
    wait_for("two failed attempts", Duration::from_secs(3), || {
        r.stats.snapshot().failures >= 2
    })
    .await;
    assert_eq!(r.stats.state(), OutputState::Retrying);
    let packets = capture_packets();
    // While down, the output drains and drops (counted).
    for batch in packets.chunks(20).take(60) {
        offer(&r.tx, batch.to_vec()).await;
    }
    let last_error = r.stats.snapshot().last_error.unwrap_or_default();
    assert!(
        last_error.contains("cannot create the directory"),
        "{last_error}"
    );

    std::fs::remove_file(&blocker).expect("unblock");
    wait_for(
        "the output to open the file",
        Duration::from_secs(3),
        || r.stats.state() == OutputState::Connected,
    )
    .await;
    assert!(r.tx.take_rejoin(), "a session after a gap asks to rejoin");
    // The stream restarts this output at its splice point: the capture's
    // start.
    for batch in packets.chunks(50) {
        offer(&r.tx, batch.to_vec()).await;
    }
    let stats = stop(r).await;
    let written = std::fs::read(&path).expect("recording");
    assert!(
        written == packets.concat(),
        "recording is the capture from its start"
    );
    let s = stats.snapshot();
    assert_eq!(s.packets_dropped as usize, packets.len(), "{s:?}");
    assert_eq!(s.sessions, 1);
}

#[tokio::test]
async fn file_output_write_errors_back_off_and_keep_draining() {
    let full = PathBuf::from("/dev/full");
    if !full.exists() {
        eprintln!("skipped: no /dev/full on this system");
        return;
    }
    let r = start(full);
    let packets = capture_packets();
    // 3 s of a ~40 Mbit/s stream into a device that refuses every write:
    // the feed never stays full, the output keeps failing and retrying.
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        offer(&r.tx, packets[..100].to_vec()).await;
        sleep(Duration::from_millis(3)).await;
    }
    let s = r.stats.snapshot();
    assert!(s.failures >= 2, "{s:?}");
    assert!(s.sessions >= 2, "reopened after each failure: {s:?}");
    assert!(s.send_errors >= 1, "{s:?}");
    assert!(s.packets_dropped > 0, "{s:?}");
    let error = s.last_error.unwrap_or_default();
    assert!(error.contains("/dev/full"), "{error}");
    let started = Instant::now();
    stop(r).await;
    assert!(started.elapsed() < Duration::from_secs(1));
}
