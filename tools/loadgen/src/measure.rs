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
#[derive(Debug)]
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
    /// End-to-end times (receive − send) of this stream's stamps sent in
    /// the window.
    pub end_to_end: Mutex<Histogram<u64>>,
}

impl StreamCounters {
    fn new() -> StreamCounters {
        StreamCounters {
            publishing: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
            sent_in_window: AtomicU64::new(0),
            received: AtomicU64::new(0),
            received_bytes: AtomicU64::new(0),
            received_in_window: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
            end_to_end: Mutex::new(new_histogram()),
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
}

/// What is subtracted from a stamp's end-to-end time to get the time the
/// relay added.
///
/// An SRT receiver (the relay's ingest) holds every packet until its
/// TSBPD release time, send time + latency (SRT RFC draft §4.5), by
/// design and in both relays. The release time comes from the receiver's
/// estimate of the sender's clock base, which differs between libsrt and
/// srt-protocol, and at start-up libsrt releases packets from an
/// srt-protocol caller at once before settling at send time + latency. So
/// for SRT the offset is calibrated per stream over the window itself:
/// the stream's smallest end-to-end time there, i.e. its release offset
/// plus the relay's fastest path. What remains is the delay the relay
/// adds on top of its fastest path: queueing, scheduling, timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// UDP: nothing holds packets; the end-to-end time is the relay's.
    None,
    /// SRT: each stream's minimum in the window.
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
        }
    }

    /// A stamp of `stream` sent at `sent_ns`, received at `received_ns`.
    pub fn record(&self, stream: &StreamCounters, sent_ns: u64, received_ns: u64) {
        if !self.window.contains(sent_ns) {
            return;
        }
        stream.received_in_window.fetch_add(1, Relaxed);
        stream
            .end_to_end
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .saturating_record(received_ns.saturating_sub(sent_ns));
    }

    /// The relay-added latency of every stamp received so far (see
    /// [`Offset`]) and their end-to-end times.
    pub fn latency(&self) -> (Histogram<u64>, Histogram<u64>) {
        let mut added = new_histogram();
        let mut total = new_histogram();
        for stream in &self.streams {
            let h = stream
                .end_to_end
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if h.is_empty() {
                continue;
            }
            let _ = total.add(&h);
            let offset = match self.offset {
                Offset::None => 0,
                Offset::CalibratedPerStream => h.min(),
            };
            for v in h.iter_recorded() {
                let value = h
                    .lowest_equivalent(v.value_iterated_to())
                    .saturating_sub(offset);
                let _ = added.record_n(value.max(1), v.count_at_value());
            }
        }
        (added, total)
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
}

/// 1 ns to 60 s at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant, valid bounds")
}
