//! Shared counters of one phase: what each publisher sent, what each
//! receiver got, and the latency histogram of the measurement window.
//!
//! All times are nanoseconds since the run's epoch on the monotonic clock
//! ([`Clock`]); publishers and receivers are in this process, so a stamp's
//! send time and its receive time are on the same clock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram;

/// The run's monotonic epoch.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            epoch: Instant::now(),
        }
    }

    pub fn ns(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn now_ns(&self) -> u64 {
        self.ns(Instant::now())
    }
}

/// The measurement window, by *send* time: a stamp counts (sent, received,
/// latency) when it was sent inside `[start, end)`. Open until set.
#[derive(Debug)]
pub struct Window {
    start: AtomicU64,
    end: AtomicU64,
}

impl Window {
    pub fn new() -> Window {
        Window {
            start: AtomicU64::new(u64::MAX),
            end: AtomicU64::new(u64::MAX),
        }
    }

    pub fn open(&self, at_ns: u64) {
        self.start.store(at_ns, Relaxed);
    }

    pub fn close(&self, at_ns: u64) {
        self.end.store(at_ns, Relaxed);
    }

    pub fn is_open(&self) -> bool {
        self.start.load(Relaxed) != u64::MAX
    }

    pub fn contains(&self, ns: u64) -> bool {
        ns >= self.start.load(Relaxed) && ns < self.end.load(Relaxed)
    }
}

/// One stream's counters.
#[derive(Debug, Default)]
pub struct StreamCounters {
    /// The publisher is connected (SRT) or sending (UDP).
    pub publishing: AtomicBool,
    pub sent: AtomicU64,
    pub sent_bytes: AtomicU64,
    pub sent_in_window: AtomicU64,
    pub received: AtomicU64,
    pub received_bytes: AtomicU64,
    pub received_in_window: AtomicU64,
    /// Stamps missing between two received ones (sequence gaps).
    pub gaps: AtomicU64,
    /// Stamps received again or out of order.
    pub out_of_order: AtomicU64,
    /// Stamps of another stream on this stream's receiver (misrouting).
    pub foreign: AtomicU64,
    /// Smallest end-to-end time of a stamp sent before the window: the
    /// stream's TSBPD release offset on an SRT hop (see [`Phase::offset`]).
    pub min_before_window: AtomicU64,
}

impl StreamCounters {
    fn new() -> StreamCounters {
        StreamCounters {
            min_before_window: AtomicU64::new(u64::MAX),
            ..StreamCounters::default()
        }
    }
}

/// Everything a phase measures.
#[derive(Debug)]
pub struct Phase {
    pub name: String,
    pub clock: Clock,
    pub window: Window,
    pub streams: Vec<Arc<StreamCounters>>,
    pub offset: Offset,
    /// Router-added latency of the stamps sent in the window.
    pub latency: Mutex<Histogram<u64>>,
    /// End-to-end time (receive − send) of the same stamps, nothing
    /// subtracted.
    pub end_to_end: Mutex<Histogram<u64>>,
    /// Latencies below the offset, recorded as 0.
    pub early: AtomicU64,
}

/// What is subtracted from a stamp's end-to-end time to get the time the
/// relay added.
///
/// An SRT receiver (the relay's ingest) holds every packet until its
/// TSBPD release time, send time + latency (SRT RFC draft §4.5), by
/// design and in both relays; the release time is computed from the
/// receiver's estimate of the sender's clock base, taken at the
/// handshake, which is off by up to a few hundred microseconds (libsrt
/// and srt-protocol estimate differently: measured, libsrt releases
/// *before* send time + latency). So for SRT the offset is calibrated per
/// stream: the smallest end-to-end time seen during the warm-up, i.e. the
/// stream's release time plus the relay's fastest path. What remains is
/// the delay the relay adds on top of its fastest path: queueing,
/// scheduling, timer granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// UDP: nothing holds packets; the end-to-end time is the relay's.
    None,
    /// SRT: the per-stream minimum before the window.
    CalibratedPerStream,
}

impl Phase {
    pub fn new(name: &str, clock: Clock, streams: usize, offset: Offset) -> Phase {
        Phase {
            name: name.to_string(),
            clock,
            window: Window::new(),
            streams: (0..streams)
                .map(|_| Arc::new(StreamCounters::new()))
                .collect(),
            offset,
            latency: Mutex::new(new_histogram()),
            end_to_end: Mutex::new(new_histogram()),
            early: AtomicU64::new(0),
        }
    }

    /// A stamp of `stream` sent at `sent_ns`, received at `received_ns`.
    pub fn record_latency(&self, stream: &StreamCounters, sent_ns: u64, received_ns: u64) {
        let total = received_ns.saturating_sub(sent_ns);
        if !self.window.is_open() {
            stream.min_before_window.fetch_min(total, Relaxed);
            return;
        }
        if !self.window.contains(sent_ns) {
            return;
        }
        stream.received_in_window.fetch_add(1, Relaxed);
        let offset = match self.offset {
            Offset::None => 0,
            Offset::CalibratedPerStream => match stream.min_before_window.load(Relaxed) {
                u64::MAX => 0,
                min => min,
            },
        };
        self.end_to_end
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .saturating_record(total);
        let added = match total.checked_sub(offset) {
            Some(added) => added,
            None => {
                self.early.fetch_add(1, Relaxed);
                0
            }
        };
        let mut h = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        h.saturating_record(added);
    }

    pub fn sum(&self, field: impl Fn(&StreamCounters) -> &AtomicU64) -> u64 {
        self.streams.iter().map(|s| field(s).load(Relaxed)).sum()
    }

    /// Streams whose receiver has seen at least one stamp.
    pub fn streams_up(&self) -> usize {
        self.streams
            .iter()
            .filter(|s| s.received.load(Relaxed) > 0)
            .count()
    }

    pub fn end_to_end_snapshot(&self) -> Histogram<u64> {
        self.end_to_end
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn latency_snapshot(&self) -> Histogram<u64> {
        self.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// 1 ns to 60 s at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant, valid bounds")
}
