//! RTP receiver throughput: datagrams/s and bytes/s through
//! [`TsReceiver`] (parse, sequence tracking, reorder ring, release), on a
//! committed capture packed 7 TS packets per RTP packet as ffmpeg's
//! `rtp_mpegts` sends it.
//!
//! The capture (`h264_aac_closed_gop.ts`, 102 datagrams) is repeated 20
//! times with continuing sequence numbers starting near 65535, so every run
//! crosses the 16-bit wrap. Cases:
//!
//! - `in_order`: as sent.
//! - `reordered`: every block of 16 datagrams shuffled (seeded xorshift),
//!   window 32: the ring holds packets on almost every push.
//! - `reordered_lossy`: as `reordered` with every 100th datagram dropped, so
//!   gaps are given up on by `max_delay` (the clock advances 1 ms a datagram).
//!
//! Each iteration pushes every datagram into a fresh receiver and polls after
//! each push; building the receiver and cloning the datagram list (reference
//! counts only) is outside the timing. Before timing, each case runs once and
//! the released bytes and loss count are checked.
//!
//! Run with `cargo bench --bench rtp`.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use switchyard::rtp::{ReceiverConfig, RtpPacketBuilder, SeqNo, TsReceiver};
use switchyard::ts::PACKET_SIZE;

const REPEAT: usize = 20;

/// xorshift64, seeded: the same shuffle every run.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn datagrams(capture: &[u8]) -> Vec<Bytes> {
    let mut seq = SeqNo::new(65000);
    let mut out = Vec::new();
    for _ in 0..REPEAT {
        for chunk in capture.chunks(7 * PACKET_SIZE) {
            out.push(RtpPacketBuilder::new(seq, 0x5EED).build(chunk));
            seq = seq.next();
        }
    }
    out
}

fn shuffled(mut datagrams: Vec<Bytes>, block: usize) -> Vec<Bytes> {
    let mut rng = XorShift(0x0123_4567_89AB_CDEF);
    for chunk in datagrams.chunks_mut(block) {
        for i in (1..chunk.len()).rev() {
            chunk.swap(i, rng.below(i + 1));
        }
    }
    datagrams
}

fn receiver() -> TsReceiver {
    TsReceiver::new(ReceiverConfig {
        window: 32,
        max_delay: Duration::from_millis(20),
        ..ReceiverConfig::default()
    })
    .expect("valid bench config")
}

/// Pushes every datagram, polling after each; returns released bytes.
fn run(rx: &mut TsReceiver, datagrams: Vec<Bytes>) -> usize {
    let mut bytes = 0;
    let mut now = Duration::ZERO;
    for d in datagrams {
        now += Duration::from_millis(1);
        rx.push(now, black_box(d));
        while let Some(p) = rx.poll(now) {
            bytes += p.len();
        }
    }
    rx.flush();
    while let Some(p) = rx.poll(now) {
        bytes += p.len();
    }
    bytes
}

fn rtp(c: &mut Criterion) {
    let path = format!(
        "{}/testdata/h264_aac_closed_gop.ts",
        env!("CARGO_MANIFEST_DIR")
    );
    let capture = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let in_order = datagrams(&capture);
    let reordered = shuffled(in_order.clone(), 16);
    let lossy: Vec<Bytes> = reordered
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 100 != 99)
        .map(|(_, d)| d.clone())
        .collect();

    let mut group = c.benchmark_group("rtp_receiver");
    for (name, case) in [
        ("in_order", &in_order),
        ("reordered", &reordered),
        ("reordered_lossy", &lossy),
    ] {
        let mut rx = receiver();
        let released = run(&mut rx, case.clone());
        let stats = rx.stats();
        let dropped = in_order.len() - case.len();
        assert_eq!(stats.lost, dropped as u64, "{name}: {stats:?}");
        if dropped == 0 {
            assert_eq!(released, capture.len() * REPEAT, "{name}");
        }
        eprintln!("{name}: {} datagrams, {stats:?}", case.len());

        group.throughput(Throughput::ElementsAndBytes {
            elements: case.len() as u64,
            bytes: case.iter().map(|d| d.len() as u64).sum(),
        });
        group.bench_function(name, |b| {
            b.iter_batched(
                || (receiver(), case.clone()),
                |(mut rx, datagrams)| black_box(run(&mut rx, datagrams)),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, rtp);
criterion_main!(benches);
