//! Publishers: one task per stream sending stamped datagrams at a constant
//! rate, over plain UDP or as an SRT caller ([`SrtCaller`], switchyard's own
//! sans-IO caller, driven the way `src/output/srt_caller.rs` drives it).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use switchyard::output::srt_connect::{CallerEvent, CallerSettings, SrtCaller};
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::measure::{Phase, StreamCounters};
use crate::stamp::{DATAGRAM_LEN, Generator, splitmix};

/// Frames per second of the synthetic video: an IDR every `FPS` frames,
/// i.e. every second.
const FPS: u64 = 25;
/// Datagrams sent per wake-up at most (a publisher that fell behind
/// catches up over several wake-ups instead of one burst).
const MAX_BURST: u64 = 32;

/// What every publisher of a phase shares.
#[derive(Debug, Clone)]
pub struct PublishSettings {
    pub phase: Arc<Phase>,
    pub bits_per_second: f64,
    pub seed: u64,
    pub stop: CancellationToken,
    /// SRT only: the TSBPD latency asked for.
    pub srt_latency: Duration,
    /// SRT only: keep trying to connect until then.
    pub connect_by: Instant,
}

impl PublishSettings {
    fn datagrams_per_second(&self) -> f64 {
        self.bits_per_second / (DATAGRAM_LEN as f64 * 8.0)
    }
}

/// Constant-rate pacing: datagram `n` is due at `start + n / rate`.
#[derive(Debug)]
struct Pacer {
    start: Instant,
    interval: Duration,
    sent: u64,
}

impl Pacer {
    fn new(start: Instant, per_second: f64) -> Pacer {
        Pacer {
            start,
            interval: Duration::from_secs_f64(1.0 / per_second.max(1.0)),
            sent: 0,
        }
    }

    fn next_at(&self) -> Instant {
        self.start + self.interval.mul_f64(self.sent as f64)
    }

    /// How many datagrams are due now (at most [`MAX_BURST`]).
    fn due(&mut self, now: Instant) -> u64 {
        let mut n = 0;
        while n < MAX_BURST && self.next_at() <= now {
            self.sent += 1;
            n += 1;
        }
        n
    }
}

/// Stream `index`: its generator, with a start phase spread over one
/// interval so that the streams do not all send in the same microsecond.
fn generator(settings: &PublishSettings, index: usize) -> (Generator, Duration) {
    let per_second = settings.datagrams_per_second();
    let seed = splitmix(settings.seed ^ index as u64);
    let phase = Duration::from_secs_f64((seed % 1000) as f64 / 1000.0 / per_second.max(1.0));
    (
        Generator::new(index as u32, settings.seed, per_second, FPS),
        phase,
    )
}

fn count_sent(phase: &Phase, counters: &StreamCounters, sent_ns: u64, len: usize) {
    counters.sent.fetch_add(1, Relaxed);
    counters.sent_bytes.fetch_add(len as u64, Relaxed);
    if phase.window.contains(sent_ns) {
        counters.sent_in_window.fetch_add(1, Relaxed);
    }
}

/// Sends stream `index` as plain UDP to `target` until stopped.
pub async fn udp(
    settings: PublishSettings,
    index: usize,
    target: SocketAddr,
) -> anyhow::Result<()> {
    let phase = settings.phase.clone();
    let counters = phase.streams[index].clone();
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    socket.connect(target).await?;
    let (mut generator, offset) = generator(&settings, index);
    let mut pacer = Pacer::new(Instant::now() + offset, settings.datagrams_per_second());
    let mut datagram = Vec::with_capacity(DATAGRAM_LEN);
    counters.publishing.store(true, Relaxed);
    loop {
        tokio::select! {
            biased;
            () = settings.stop.cancelled() => return Ok(()),
            () = tokio::time::sleep_until(pacer.next_at()) => {}
        }
        for _ in 0..pacer.due(Instant::now()) {
            let now_ns = phase.clock.now_ns();
            generator.next_datagram(now_ns, &mut datagram);
            match socket.try_send(&datagram) {
                Ok(_) => count_sent(&phase, &counters, now_ns, datagram.len()),
                // Counted as sent: the stamp is lost, and the receiver
                // must see the gap (this is the sender's socket, though,
                // and never happens at these rates on loopback).
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    count_sent(&phase, &counters, now_ns, datagram.len());
                }
                // Nobody listening yet (ICMP port unreachable): same.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    count_sent(&phase, &counters, now_ns, datagram.len());
                }
                Err(e) => return Err(e).context(format!("udp publisher {index} → {target}")),
            }
        }
    }
}

/// Publishes stream `index` as an SRT caller to `target` with `stream_id`
/// until stopped; retries the handshake until `connect_by` (the relay may
/// still be starting).
pub async fn srt(
    settings: PublishSettings,
    index: usize,
    target: SocketAddr,
    stream_id: String,
) -> anyhow::Result<()> {
    let mut attempt = 0u64;
    loop {
        match srt_session(&settings, index, target, &stream_id, attempt).await {
            Ok(()) => return Ok(()),
            Err(SrtFailure::BeforeConnect(e)) => {
                if Instant::now() >= settings.connect_by || settings.stop.is_cancelled() {
                    bail!("srt publisher {index} → {target} ({stream_id}): cannot connect: {e}");
                }
                attempt += 1;
                tokio::select! {
                    () = settings.stop.cancelled() => return Ok(()),
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
            Err(SrtFailure::AfterConnect(e)) => {
                settings.phase.streams[index]
                    .publishing
                    .store(false, Relaxed);
                bail!("srt publisher {index} → {target} ({stream_id}): {e}");
            }
        }
    }
}

enum SrtFailure {
    BeforeConnect(String),
    AfterConnect(String),
}

enum Wake {
    Stop,
    Datagram(io::Result<usize>),
    Timer,
}

async fn srt_session(
    settings: &PublishSettings,
    index: usize,
    target: SocketAddr,
    stream_id: &str,
    attempt: u64,
) -> Result<(), SrtFailure> {
    let phase = settings.phase.clone();
    let counters = phase.streams[index].clone();
    let before = |e: io::Error| SrtFailure::BeforeConnect(e.to_string());
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(before)?;
    socket.connect(target).await.map_err(before)?;
    let ids = splitmix(settings.seed ^ (index as u64) << 20 ^ attempt);
    let caller_settings = CallerSettings {
        peer: target,
        local_ip: Ipv4Addr::LOCALHOST.into(),
        stream_id: Some(stream_id.to_string()),
        encryption: None,
        latency: Some(settings.srt_latency),
        handshake_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(5),
        socket_id: (ids as u32) & 0x3FFF_FFFF | 1,
        initial_sequence: ((ids >> 32) as u32) & 0x7FFF_FFFF,
    };
    let mut caller = SrtCaller::new(Instant::now().into_std(), caller_settings)
        .map_err(|e| SrtFailure::BeforeConnect(e.to_string()))?;
    let (mut generator, offset) = generator(settings, index);
    let mut pacer: Option<Pacer> = None;
    let mut stopping = false;
    let mut buf = vec![0u8; 2048];
    let mut datagram = Vec::with_capacity(DATAGRAM_LEN);
    loop {
        while let Some(out) = caller.poll_transmit() {
            // A full socket drops the datagram; SRT retransmits.
            let _ = socket.try_send(&out);
        }
        while let Some(event) = caller.poll_event() {
            match event {
                CallerEvent::Connected { .. } => {
                    counters.publishing.store(true, Relaxed);
                    pacer = Some(Pacer::new(
                        Instant::now() + offset,
                        settings.datagrams_per_second(),
                    ));
                }
                CallerEvent::Closed(Ok(())) => return Ok(()),
                CallerEvent::Closed(Err(e)) if pacer.is_none() => {
                    return Err(SrtFailure::BeforeConnect(e.to_string()));
                }
                CallerEvent::Closed(Err(e)) => {
                    if stopping {
                        return Ok(());
                    }
                    return Err(SrtFailure::AfterConnect(e.to_string()));
                }
            }
        }
        let mut timer = caller
            .poll_timeout()
            .map_or(Instant::now() + Duration::from_secs(1), Instant::from_std);
        if let (Some(p), false) = (&pacer, stopping) {
            timer = timer.min(p.next_at());
        }
        let wake = tokio::select! {
            biased;
            () = settings.stop.cancelled(), if !stopping => Wake::Stop,
            received = socket.recv(&mut buf) => Wake::Datagram(received),
            () = tokio::time::sleep_until(timer) => Wake::Timer,
        };
        let now = Instant::now().into_std();
        match wake {
            Wake::Stop => {
                stopping = true;
                counters.publishing.store(false, Relaxed);
                if pacer.is_none() {
                    return Ok(());
                }
                caller.close(now);
            }
            Wake::Datagram(Ok(len)) => {
                if let Some(d) = buf.get(..len) {
                    caller.handle_datagram(now, Bytes::copy_from_slice(d));
                }
            }
            Wake::Datagram(Err(e)) => match e.kind() {
                io::ErrorKind::ConnectionRefused if pacer.is_some() => {
                    return Err(SrtFailure::AfterConnect(
                        "the relay's port is closed (ICMP port unreachable)".into(),
                    ));
                }
                io::ErrorKind::ConnectionRefused
                | io::ErrorKind::WouldBlock
                | io::ErrorKind::Interrupted => {}
                _ if pacer.is_some() => return Err(SrtFailure::AfterConnect(e.to_string())),
                _ => return Err(SrtFailure::BeforeConnect(e.to_string())),
            },
            Wake::Timer => {
                caller.handle_timeout(now);
                if let (Some(p), false) = (&mut pacer, stopping) {
                    for _ in 0..p.due(Instant::now()) {
                        let now_ns = phase.clock.now_ns();
                        generator.next_datagram(now_ns, &mut datagram);
                        count_sent(&phase, &counters, now_ns, datagram.len());
                        caller.send(std::time::Instant::now(), Bytes::copy_from_slice(&datagram));
                    }
                }
            }
        }
    }
}
