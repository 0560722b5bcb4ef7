//! The SRT output (`output::srt_caller`) against the real libsrt listener
//! of `srt-live-transmit` (package `srt-tools`, libsrt 1.5.1 here) over
//! loopback: the bytes the listener writes out must be the bytes of the
//! capture, plain and encrypted; a rejection is reported with its code;
//! after the listener is killed and restarted, the output reconnects within
//! its backoff and the new session starts at a splice point (PAT, PMT).
//!
//! A missing `srt-live-transmit` skips every case with a message. Every
//! process started here is killed by its PID, and every case is bounded in
//! time.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{TempDir, capture_packets, capture_path, free_udp_port, offer_within};
use switchyard::config::{Backoff, SrtUrl, StreamId};
use switchyard::output::{self, Batch, FeedSender, Offer, OutputState, OutputStats};
use switchyard::probe::Prober;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "0123456789abcdef";

fn have_srt_live_transmit() -> bool {
    let found = Command::new("srt-live-transmit")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("skipped: srt-live-transmit not found (install the Debian package srt-tools)");
    }
    found
}

/// `srt-live-transmit srt://:PORT?mode=listener… file://con > out`.
struct Listener {
    child: Child,
    out: PathBuf,
}

impl Listener {
    /// With `once`, it exits (flushing its stdout) when the caller
    /// disconnects; otherwise it waits for the next caller.
    fn start(port: u16, query: &str, out: &Path, once: bool) -> Listener {
        let stdout = std::fs::File::create(out).expect("listener output file");
        let child = Command::new("srt-live-transmit")
            .arg("-q")
            .arg(if once { "-a:no" } else { "-a:yes" })
            .arg(format!("srt://:{port}?mode=listener{query}"))
            .arg("file://con")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .expect("start srt-live-transmit");
        Listener {
            child,
            out: out.to_path_buf(),
        }
    }

    /// Waits (bounded) for it to exit by itself.
    async fn exited(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            sleep(Duration::from_millis(20)).await;
        }
        false
    }

    fn received(&self) -> Vec<u8> {
        std::fs::read(&self.out).unwrap_or_default()
    }

    /// SIGKILL, by PID.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.kill();
    }
}

fn url(port: u16, query: &str) -> SrtUrl {
    SrtUrl::parse(&format!("srt://127.0.0.1:{port}?streamid=out/cam1{query}")).expect("url")
}

fn backoff() -> Backoff {
    Backoff {
        min: Duration::from_millis(100),
        max: Duration::from_millis(800),
    }
}

/// A stand-in for the stream task: offers `packets` in batches of 35 every
/// 5 ms (never waiting on the output), starting again from the first
/// packet (PAT, PMT, IDR) whenever the output asks to rejoin; loops over
/// the capture when `repeat`. Returns how many rejoins it saw.
async fn stream_task(
    tx: FeedSender,
    packets: Vec<Bytes>,
    repeat: bool,
    rejoins: Arc<AtomicUsize>,
    stop: CancellationToken,
) {
    let mut at = 0;
    let mut pending: Option<Batch> = None;
    loop {
        if stop.is_cancelled() {
            return;
        }
        if tx.take_rejoin() {
            rejoins.fetch_add(1, Ordering::SeqCst);
            at = 0;
            pending = None;
        }
        let batch = match pending.take() {
            Some(b) => b,
            None => {
                if at >= packets.len() {
                    if !repeat {
                        sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    at = 0;
                }
                let end = (at + 35).min(packets.len());
                let b: Batch = packets.get(at..end).unwrap_or_default().to_vec();
                at = end;
                b
            }
        };
        match tx.offer(batch) {
            Offer::Sent => {}
            Offer::Full(b) => pending = Some(b),
            Offer::Closed => return,
        }
        sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        sleep(Duration::from_millis(20)).await;
    }
}

/// Pushes the capture once through the output to a listener started with
/// `listener_query`, and returns what the listener wrote out.
async fn deliver(name: &str, listener_query: &str, caller_query: &str) -> Vec<u8> {
    let packets = capture_packets();
    let port = free_udp_port();
    let dir = TempDir::new("output-srt");
    let out = dir.path(&format!("{name}.ts"));
    let mut listener = Listener::start(port, listener_query, &out, true);
    // libsrt needs a moment to bind; the output's retries would cover it,
    // but the first rejoin would then restart the capture.
    sleep(Duration::from_millis(300)).await;

    let (tx, feed) = output::feed();
    let shutdown = CancellationToken::new();
    let stats = Arc::new(OutputStats::default());
    let stream = StreamId::new("out/cam1").expect("id");
    let task = tokio::spawn(output::srt_caller::run(
        stream,
        url(port, caller_query),
        backoff(),
        feed,
        shutdown.clone(),
        stats.clone(),
    ));
    wait_for("the SRT output to connect", Duration::from_secs(5), || {
        stats.state() == OutputState::Connected
    })
    .await;
    let rejoins = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let feeder = tokio::spawn(stream_task(
        tx,
        packets.clone(),
        false,
        rejoins.clone(),
        stop.clone(),
    ));
    wait_for(
        "the whole capture to be sent",
        Duration::from_secs(10),
        || stats.snapshot().packets_sent as usize >= packets.len(),
    )
    .await;
    // TSBPD: the listener delivers each packet `latency` after it was sent.
    sleep(Duration::from_millis(500)).await;
    shutdown.cancel();
    timeout(Duration::from_secs(5), task)
        .await
        .expect("the output stops within 5 s of shutdown")
        .expect("output task");
    stop.cancel();
    let _ = feeder.await;
    // The graceful close reached the listener: it exits by itself
    // (`-a:no`), flushing what it wrote.
    assert!(
        listener.exited(Duration::from_secs(3)).await,
        "srt-live-transmit saw no shutdown from the output"
    );
    let s = stats.snapshot();
    assert_eq!(s.state, OutputState::Stopped);
    assert_eq!(s.sessions, 1, "{s:?}");
    assert_eq!(s.packets_dropped, 0, "{s:?}");
    assert_eq!(s.packets_sent as usize, packets.len(), "{s:?}");
    listener.received()
}

fn assert_same_stream(name: &str, got: &[u8]) {
    let expected = std::fs::read(capture_path()).expect("capture");
    assert_eq!(got.len(), expected.len(), "{name}: byte count");
    assert!(got == expected.as_slice(), "{name}: bytes differ");
    let mut prober = Prober::new();
    prober.push(got);
    let report = prober.finish().expect("probe");
    assert_eq!(report.cc_errors, 0, "{name}");
    assert_eq!(report.video.as_ref().map(|v| v.frames), Some(100), "{name}");
}

#[tokio::test]
async fn srt_output_delivers_a_capture_to_libsrt() {
    if !have_srt_live_transmit() {
        return;
    }
    let got = deliver("plain", "", "&latency=200").await;
    assert_same_stream("plain", &got);
}

#[tokio::test]
async fn srt_output_encrypted_default_key_length() {
    if !have_srt_live_transmit() {
        return;
    }
    let got = deliver(
        "aes128",
        &format!("&passphrase={SECRET}"),
        &format!("&passphrase={SECRET}"),
    )
    .await;
    assert_same_stream("aes128", &got);
}

#[tokio::test]
async fn srt_output_encrypted_aes256() {
    if !have_srt_live_transmit() {
        return;
    }
    let got = deliver(
        "aes256",
        &format!("&passphrase={SECRET}&pbkeylen=32"),
        &format!("&passphrase={SECRET}&pbkeylen=32"),
    )
    .await;
    assert_same_stream("aes256", &got);
}

#[tokio::test]
async fn srt_output_reports_a_rejection_and_keeps_retrying() {
    if !have_srt_live_transmit() {
        return;
    }
    let port = free_udp_port();
    let dir = TempDir::new("output-srt");
    let out = dir.path("rejected.ts");
    let _listener = Listener::start(port, &format!("&passphrase={SECRET}"), &out, false);
    sleep(Duration::from_millis(300)).await;
    let (tx, feed) = output::feed();
    let shutdown = CancellationToken::new();
    let stats = Arc::new(OutputStats::default());
    let task = tokio::spawn(output::srt_caller::run(
        StreamId::new("out/cam1").expect("id"),
        url(port, "&passphrase=not-the-secret"),
        backoff(),
        feed,
        shutdown.clone(),
        stats.clone(),
    ));
    wait_for("two failed attempts", Duration::from_secs(8), || {
        stats.snapshot().failures >= 2
    })
    .await;
    // While failing, what the stream offers is taken and dropped.
    let packets = capture_packets();
    for _ in 0..(output::FEED_CAPACITY * 2) {
        offer_within(&tx, packets[..7].to_vec(), Duration::from_millis(500)).await;
    }
    let s = stats.snapshot();
    assert_eq!(s.sessions, 0);
    assert_eq!(s.state, OutputState::Retrying);
    let error = s.last_error.unwrap_or_default();
    assert!(
        error.contains("rejected") && error.contains("1010"),
        "last error: {error}"
    );
    shutdown.cancel();
    timeout(Duration::from_secs(3), task)
        .await
        .expect("stops")
        .expect("task");
    assert!(stats.snapshot().packets_dropped > 0);
}

#[tokio::test]
async fn srt_output_reconnects_after_listener_restart_at_a_splice_point() {
    if !have_srt_live_transmit() {
        return;
    }
    let packets = capture_packets();
    let port = free_udp_port();
    let dir = TempDir::new("output-srt");
    let out1 = dir.path("before.ts");
    let out2 = dir.path("after.ts");
    let mut first = Listener::start(port, "", &out1, false);
    sleep(Duration::from_millis(300)).await;

    let (tx, feed) = output::feed();
    let shutdown = CancellationToken::new();
    let stats = Arc::new(OutputStats::default());
    let task = tokio::spawn(output::srt_caller::run(
        StreamId::new("out/cam1").expect("id"),
        url(port, ""),
        backoff(),
        feed,
        shutdown.clone(),
        stats.clone(),
    ));
    let rejoins = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let feeder = tokio::spawn(stream_task(
        tx,
        packets.clone(),
        true,
        rejoins.clone(),
        stop.clone(),
    ));
    wait_for(
        "data through the first listener",
        Duration::from_secs(5),
        || first.received().len() > 50 * 188,
    )
    .await;
    let rejoins_before = rejoins.load(Ordering::SeqCst);

    first.kill();
    let killed_at = Instant::now();
    wait_for("the output to notice", Duration::from_secs(7), || {
        stats.state() == OutputState::Retrying
    })
    .await;
    let noticed = killed_at.elapsed();
    let second = Listener::start(port, "", &out2, false);
    wait_for("the output to reconnect", Duration::from_secs(6), || {
        stats.snapshot().sessions >= 2
    })
    .await;
    wait_for(
        "data through the second listener",
        Duration::from_secs(5),
        || second.received().len() > 50 * 188,
    )
    .await;
    assert!(
        rejoins.load(Ordering::SeqCst) > rejoins_before,
        "the output asked the stream to rejoin after reconnecting"
    );

    // The new session starts at the splice point, exactly as the capture
    // begins: SDT (PID 0x11, ffmpeg writes it first), PAT (PID 0), PMT
    // (PID 0x1000), then the IDR on the video PID 0x100.
    let after = second.received();
    let pid = |p: &[u8]| u16::from_be_bytes([p[1] & 0x1F, p[2]]);
    assert_eq!(after.first(), Some(&0x47));
    let pids: Vec<u16> = after.chunks(188).take(4).map(pid).collect();
    assert_eq!(pids, [0x11, 0, 0x1000, 0x100], "SDT, PAT, PMT, video");
    let n = (after.len() / 188).min(packets.len());
    assert!(
        after[..n * 188] == packets.concat()[..n * 188],
        "the new session carries the capture from its start"
    );

    shutdown.cancel();
    timeout(Duration::from_secs(5), task)
        .await
        .expect("stops")
        .expect("task");
    stop.cancel();
    let _ = feeder.await;
    let s = stats.snapshot();
    assert_eq!(s.reconnects, 1, "{s:?}");
    eprintln!("listener killed → output noticed in {noticed:?}; stats {s:?}");
}
