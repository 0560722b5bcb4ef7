//! Throughput of the output splicer ([`Splicer`]) on a capture.
//!
//! - `pass_through`: one source whose counters and timestamps already fit
//!   the output: every elementary packet is forwarded as the very `Bytes`
//!   (the single-input case of input failover).
//! - `rewriting`: the output switched from another source with an
//!   unrelated clock first, so every packet is re-stamped (counter) and
//!   every PES header and PCR rebased: the worst case per packet.
//!
//! Packets are `Bytes` slices of one buffer, pushed one by one into a
//! reused output `Vec`; building the splicer is outside the timing.
//!
//! Run with `cargo bench --bench splice`.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use switchyard::splice::{SourceId, SpliceSettings, Splicer};
use switchyard::ts::PACKET_SIZE;

fn load(name: &str) -> Vec<Bytes> {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    let all = Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}")));
    (0..all.len() / PACKET_SIZE)
        .map(|i| all.slice(i * PACKET_SIZE..(i + 1) * PACKET_SIZE))
        .collect()
}

const MAIN: SourceId = SourceId(0);
const OTHER: SourceId = SourceId(1);

/// A splicer waiting for `MAIN`'s first splice point; with `rebased`, it
/// carries another source first, so `MAIN` is rebased onto that
/// source's timeline when it takes over (at its first IDR, the capture's
/// first packets).
fn setup(packets: &[Bytes], rebased: bool) -> Splicer {
    let mut splicer = Splicer::new(SpliceSettings::default());
    let now = Instant::now();
    let mut out = Vec::new();
    if rebased {
        let other = load("cbr_null_packets.ts");
        splicer.switch_to(now, OTHER);
        for p in &other {
            splicer.push(now, OTHER, p.clone(), &mut out);
        }
    }
    splicer.switch_to(now, MAIN);
    let _ = packets;
    splicer
}

fn bench(c: &mut Criterion) {
    let packets = load("h264_aac_closed_gop.ts");
    let mut group = c.benchmark_group("splice");
    group.throughput(Throughput::Bytes((packets.len() * PACKET_SIZE) as u64));
    for (name, rebased) in [("pass_through", false), ("rewriting", true)] {
        let mut out = Vec::with_capacity(packets.len() + 64);
        group.bench_function(name, |b| {
            b.iter_batched(
                || setup(&packets, rebased),
                |mut splicer| {
                    let now = Instant::now();
                    out.clear();
                    for p in &packets {
                        splicer.push(now, MAIN, p.clone(), &mut out);
                    }
                    black_box(out.len());
                    splicer
                },
                BatchSize::LargeInput,
            );
        });
        let mut splicer = setup(&packets, rebased);
        let before = splicer.stats();
        for p in &packets {
            splicer.push(Instant::now(), MAIN, p.clone(), &mut out);
        }
        let after = splicer.stats();
        assert_eq!(splicer.active(), Some(MAIN));
        eprintln!(
            "{name}: {} out, {} zero-copy, {} rewritten",
            after.packets_out - before.packets_out,
            after.zero_copy - before.zero_copy,
            after.rewritten - before.rewritten
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
