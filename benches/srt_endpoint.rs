//! SRT endpoint receive throughput: data packets/s and bytes/s of one
//! publisher through [`Endpoint`] (gate, srt-protocol parse, receive buffer,
//! ACK/ACK2 timers, TSBPD release), on hand-built 1316-byte packets (7 TS
//! packets, what libsrt callers send).
//!
//! One connection is established by hand (induction cookie, conclusion),
//! then each iteration feeds a burst of 1,000 packets spaced 100 µs apart in
//! simulated time (10,000 packets/s, ~105 Mbit/s), runs the timers, and
//! drains transmits and events. Timestamps follow the simulated clock, so
//! everything is released after the 120 ms TSBPD delay and counted; the
//! bench checks that the data comes out.
//!
//! Measured on the 2-core development machine (shared, unencrypted):
//! ~370 ns per packet including building it, 3.3 GiB/s of payload, i.e.
//! the 50 × 8 Mbit/s target of issue 3 (≈38,000 packets/s) costs the
//! endpoint about 1.5 % of a core before socket calls.
//!
//! Run with `cargo bench --bench srt_endpoint`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchyard::config::Config;
use switchyard::ingest::srt::cookie::CookieJar;
use switchyard::ingest::srt::craft::{self, Conclusion};
use switchyard::ingest::srt::{Endpoint, EndpointSettings, Event};

const BURST: u32 = 1000;
const PAYLOAD: usize = 1316;
/// The initial sequence number `craft`'s conclusions carry.
const ISN: u32 = 0x1234_5678;

struct Publisher {
    endpoint: Endpoint,
    start: Instant,
    now: Instant,
    from: SocketAddr,
    conn: u32,
    seq: u32,
    released: u64,
}

impl Publisher {
    fn new() -> Publisher {
        let start = Instant::now();
        let key = [3; 16];
        let config = Arc::new(Config::default());
        let settings = EndpointSettings::from_config(&config);
        let mut endpoint = Endpoint::new(start, config, settings, key);
        let from = SocketAddr::from(([192, 0, 2, 1], 5000));
        let cookie = CookieJar::new(key, start).issue(start, from, 7);
        let conclusion = Conclusion::new(7, cookie).stream_id("live/bench").build();
        endpoint.handle_datagram(start, from, Bytes::from(conclusion));
        let conn = std::iter::from_fn(|| endpoint.poll_event())
            .find_map(|e| match e {
                Event::Connected { conn, .. } => Some(conn.0),
                _ => None,
            })
            .expect("the bench connection is accepted");
        while endpoint.poll_transmit().is_some() {}
        Publisher {
            endpoint,
            start,
            now: start,
            from,
            conn,
            seq: ISN,
            released: 0,
        }
    }

    fn burst(&mut self, payload: &[u8]) {
        for _ in 0..BURST {
            self.now += Duration::from_micros(100);
            let ts = self.now.duration_since(self.start).as_micros() as u32;
            let packet = craft::data_packet_at(self.conn, self.seq, self.seq, ts, payload);
            self.seq = self.seq.wrapping_add(1) & 0x7FFF_FFFF;
            self.endpoint
                .handle_datagram(self.now, self.from, Bytes::from(packet));
            if self.endpoint.poll_timeout().is_some_and(|t| t <= self.now) {
                self.endpoint.handle_timeout(self.now);
            }
            while let Some(t) = self.endpoint.poll_transmit() {
                black_box(t);
            }
            while let Some(event) = self.endpoint.poll_event() {
                if let Event::Data { data, .. } = event {
                    self.released += data.len() as u64;
                }
            }
        }
    }
}

fn receive(c: &mut Criterion) {
    let payload = vec![0x47u8; PAYLOAD];
    // Check once that the data comes out.
    let mut check = Publisher::new();
    for _ in 0..3 {
        check.burst(&payload);
    }
    assert!(
        check.released >= u64::from(BURST) * PAYLOAD as u64,
        "released {} bytes",
        check.released
    );

    let mut group = c.benchmark_group("srt_endpoint");
    group.throughput(Throughput::Bytes(u64::from(BURST) * PAYLOAD as u64));
    let mut publisher = Publisher::new();
    group.bench_function("publisher_1316B", |b| b.iter(|| publisher.burst(&payload)));
    group.finish();
}

criterion_group!(benches, receive);
criterion_main!(benches);
