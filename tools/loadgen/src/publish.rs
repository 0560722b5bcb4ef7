//! Publishers: stamped datagrams at a constant rate per stream, over plain
//! UDP (every stream from one paced thread, [`udp_all`]) or as an SRT
//! caller (a task per stream, [`srt`]: [`SrtCaller`], switchyard's own
//! sans-IO caller, driven the way `src/output/srt_caller.rs` drives it).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
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

/// Sends every UDP stream (stream `i` to `targets[i]`) until stopped, from
/// one thread that sleeps until the next datagram of any stream is due.
///
/// Not tokio tasks: tokio's timer wheel ticks once a millisecond, so every
/// publisher whose datagram fell due within the same millisecond woke on
/// the same tick, and the relay got the streams' datagrams in one burst a
/// millisecond instead of spread as independent encoders send them (the
/// start phases spread over an interval were rounded away). A thread with
/// 1 ns timer slack sends each datagram within tens of microseconds of its
/// due time, in due order across streams.
pub fn udp_all(settings: &PublishSettings, targets: &[SocketAddr]) -> anyhow::Result<()> {
    // Timer slack only delays our own wake-ups; failing to lower it costs
    // precision, not correctness.
    let _ = nix::sys::prctl::set_timerslack(1);
    let phase = settings.phase.clone();
    let mut streams = Vec::with_capacity(targets.len());
    let mut due = BinaryHeap::with_capacity(targets.len());
    let start = Instant::now();
    for (index, &target) in targets.iter().enumerate() {
        let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|s| s.connect(target).map(|()| s))
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .with_context(|| format!("udp publisher {index} → {target}"))?;
        let (generator, offset) = generator(settings, index);
        let pacer = Pacer::new(start + offset, settings.datagrams_per_second());
        due.push(Reverse((pacer.next_at(), index)));
        phase.streams[index].publishing.store(true, Relaxed);
        streams.push((socket, generator, pacer, target));
    }
    let mut datagram = Vec::with_capacity(DATAGRAM_LEN);
    while let Some(Reverse((at, index))) = due.pop() {
        if settings.stop.is_cancelled() {
            break;
        }
        let now = Instant::now();
        if at > now {
            // At most 10 ms at a time, to notice `stop`.
            std::thread::sleep((at - now).min(Duration::from_millis(10)));
            due.push(Reverse((at, index)));
            continue;
        }
        let Some((socket, generator, pacer, target)) = streams.get_mut(index) else {
            continue;
        };
        let counters = &phase.streams[index];
        let now_ns = phase.clock.now_ns();
        generator.next_datagram(now_ns, &mut datagram);
        match socket.send(&datagram) {
            Ok(_) => {}
            // Counted as sent: the stamp is lost, and the receiver must see
            // the gap (this is the sender's socket, though, and never
            // happens at these rates on loopback).
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // Nobody listening yet (ICMP port unreachable): same.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(e).context(format!("udp publisher {index} → {target}")),
        }
        count_sent(&phase, counters, now_ns, datagram.len());
        pacer.sent += 1;
        due.push(Reverse((pacer.next_at(), index)));
    }
    Ok(())
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
