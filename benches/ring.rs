//! Push throughput of the per-stream pipeline: datagrams through
//! [`StreamBuffer`] (resync, demux, GOP indexer, ring, fan-out) with 0, 1
//! and 4 consumers.
//!
//! The capture is fed as 1316-byte `Bytes` slices of one buffer (7 packets,
//! one SRT/UDP datagram, the way ingest hands them over). Each consumer
//! takes everything queued after every datagram, as a shell task woken per
//! datagram would, into a reused `Vec`. The ring's budget is two GOPs of
//! the capture so that eviction is part of the work. Building the buffer
//! and attaching the consumers are outside the timing.
//!
//! Before timing, each case runs once and checks that every consumer got
//! every packet from the first IDR on.
//!
//! Run with `cargo bench --bench ring`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use switchyard::ring::{ConsumerId, QueueLimits, RingLimits, StreamBuffer, StreamConfig};
use switchyard::ts::PACKET_SIZE;

/// One SRT/UDP datagram's worth of packets.
const CHUNK: usize = 7 * PACKET_SIZE;

const CAPTURES: &[&str] = &["h264_aac_closed_gop.ts", "hevc_aac_closed_gop.ts"];

fn load(name: &str) -> Bytes {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}")))
}

fn setup(consumers: usize) -> (StreamBuffer, Vec<ConsumerId>, Vec<Bytes>) {
    let mut stream = StreamBuffer::new(StreamConfig {
        ring: RingLimits {
            budget: 72 * 1024,
            hard_cap: 256 * 1024,
        },
        ..StreamConfig::default()
    })
    .expect("valid ring limits");
    let ids = (0..consumers)
        .map(|_| stream.attach(QueueLimits::default()))
        .collect();
    (stream, ids, Vec::with_capacity(64))
}

/// Pushes the capture; returns the packets the consumers took.
fn run(data: &Bytes, (stream, ids, out): &mut (StreamBuffer, Vec<ConsumerId>, Vec<Bytes>)) -> u64 {
    let mut taken = 0;
    for at in (0..data.len()).step_by(CHUNK) {
        stream.push(black_box(data.slice(at..(at + CHUNK).min(data.len()))));
        for &id in ids.iter() {
            stream.take(id, usize::MAX, out);
            taken += out.len() as u64;
            out.clear();
        }
    }
    taken
}

fn ring(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring");
    for &name in CAPTURES {
        let data = load(name);
        for consumers in [0, 1, 4] {
            let mut state = setup(consumers);
            let taken = run(&data, &mut state);
            let stats = state.0.stats();
            assert!(stats.ring.evicted_gops >= 1, "{name}: {stats:?}");
            let packets = (data.len() / PACKET_SIZE) as u64;
            let mut delivered = 0;
            for (id, queue) in state.0.consumers() {
                let s = queue.stats();
                assert_eq!((s.dropped_packets, s.skipped_gops), (0, 0), "{id}: {s:?}");
                assert_eq!(s.restamped_packets, 0, "{id}: {s:?}");
                let first = s.last_start_index.expect("started at the first IDR");
                // PAT + PMT, then the stream from the IDR on.
                assert_eq!(s.delivered_packets, 2 + packets - first - s.trimmed_packets);
                delivered += s.delivered_packets;
            }
            assert_eq!(taken, delivered);
            eprintln!(
                "{name}: {} bytes, {consumers} consumers, {stats:?}",
                data.len()
            );

            group.throughput(Throughput::Bytes(data.len() as u64));
            group.bench_function(format!("{name}/{consumers}_consumers"), |b| {
                b.iter_batched_ref(
                    || setup(consumers),
                    |state| black_box(run(&data, state)),
                    BatchSize::SmallInput,
                );
            });
        }
    }
    group.finish();
}

criterion_group!(benches, ring);
criterion_main!(benches);
