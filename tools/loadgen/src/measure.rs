//! Shared counters of one phase: what each publisher sent, what each
//! receiver got, and the latency histograms of the measurement window.
//!
//! All times are nanoseconds since the Unix epoch on `CLOCK_REALTIME`
//! ([`Clock`]), the clock of the kernel's receive timestamps
//! (`SO_TIMESTAMPNS`, socket(7)): a stamp's send time, its datagram's
//! arrival at the receiver's socket and the receiver task's own reading
//! compare directly. Publishers and receivers are in this process, so no
//! clock offset between machines enters; a step of the realtime clock
//! during a run (NTP, `date -s`) would, where a slew is harmless.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hdrhistogram::Histogram;
use nix::sys::time::TimeSpec;
use nix::time::{ClockId, clock_gettime};

/// `CLOCK_REALTIME` in ns since the Unix epoch: the clock the kernel
/// stamps received datagrams with.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock;

impl Clock {
    pub fn now_ns(&self) -> u64 {
        let now = clock_gettime(ClockId::CLOCK_REALTIME)
            .expect("CLOCK_REALTIME exists on every Linux and cannot fail to be read");
        timespec_ns(&now)
    }
}

/// A `timespec` as ns since the epoch (0 before 1970, which this tool
/// never sees).
pub fn timespec_ns(ts: &TimeSpec) -> u64 {
    let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec()).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// When a datagram arrived, on [`Clock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// The kernel's receive timestamp (`SCM_TIMESTAMPNS`): when the
    /// datagram reached the receiver's socket. `None` if the kernel
    /// attached none.
    pub kernel_ns: Option<u64>,
    /// The receiver task's clock read after `recvmsg` returned: later than
    /// the kernel's by loadgen's own wake-up and scheduling delay.
    pub task_ns: u64,
}

impl Arrival {
    /// The arrival the relay is charged with: the kernel's timestamp, or
    /// the task's reading when there is none (counted by the receiver).
    pub fn at_socket_ns(&self) -> u64 {
        self.kernel_ns.unwrap_or(self.task_ns)
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
    /// Datagrams the kernel gave no receive timestamp (their arrival is
    /// the task's reading instead).
    pub untimestamped: AtomicU64,
    /// End-to-end times (arrival at the socket − send) of this stream's
    /// stamps sent in the window.
    pub end_to_end: Mutex<Histogram<u64>>,
    /// The same stamps' end-to-end times as the receiver task saw them
    /// (its clock after `recvmsg` − send).
    pub task_end_to_end: Mutex<Histogram<u64>>,
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
            untimestamped: AtomicU64::new(0),
            end_to_end: Mutex::new(new_histogram()),
            task_end_to_end: Mutex::new(new_histogram()),
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
    /// Subtracted from every end-to-end time before it is recorded, so that
    /// the histograms resolve microseconds: at 3 significant digits a
    /// bucket near an SRT hold of 120 ms is 65 µs wide, near 10 ms 8 µs.
    base_ns: u64,
}

/// What is left of a known hold time when it is taken off before recording
/// ([`Phase::expect_hold`]): a relay may release a little early.
const HOLD_MARGIN: Duration = Duration::from_millis(10);

/// The latency histograms of a phase, see [`Phase::latency`].
#[derive(Debug)]
pub struct Latency {
    /// What the relay added: arrival at the socket (kernel timestamp) −
    /// send − the stream's [`Offset`]. The table's numbers.
    pub added: Histogram<u64>,
    /// Arrival at the socket − send, no offset.
    pub end_to_end: Histogram<u64>,
    /// The receiver task's reading − send − the same per-stream offset as
    /// `added`: what `added` would be if loadgen's own wake-up delay were
    /// charged to the relay.
    pub task: Histogram<u64>,
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
            base_ns: 0,
        }
    }

    /// Every stamp is expected to be held about `hold` (SRT's latency):
    /// recorded as its end-to-end time minus `hold` − [`HOLD_MARGIN`].
    pub fn expect_hold(mut self, hold: Duration) -> Phase {
        let base = hold.saturating_sub(HOLD_MARGIN);
        self.base_ns = u64::try_from(base.as_nanos()).unwrap_or(0);
        self
    }

    /// A stamp of `stream` sent at `sent_ns`, arrived at `arrival`.
    pub fn record(&self, stream: &StreamCounters, sent_ns: u64, arrival: Arrival) {
        if !self.window.contains(sent_ns) {
            return;
        }
        stream.received_in_window.fetch_add(1, Relaxed);
        stream
            .end_to_end
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .saturating_record(
                arrival
                    .at_socket_ns()
                    .saturating_sub(sent_ns)
                    .saturating_sub(self.base_ns)
                    .max(1),
            );
        stream
            .task_end_to_end
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .saturating_record(
                arrival
                    .task_ns
                    .saturating_sub(sent_ns)
                    .saturating_sub(self.base_ns)
                    .max(1),
            );
    }

    /// The latency of every stamp received so far: relay-added (see
    /// [`Offset`]), end-to-end, and as the receiver task saw it.
    pub fn latency(&self) -> Latency {
        let mut latency = Latency {
            added: new_histogram(),
            end_to_end: new_histogram(),
            task: new_histogram(),
        };
        for stream in &self.streams {
            let h = stream
                .end_to_end
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if h.is_empty() {
                continue;
            }
            let task = stream
                .task_end_to_end
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            add_raised(&mut latency.end_to_end, &h, self.base_ns);
            let offset = match self.offset {
                Offset::None => 0,
                Offset::CalibratedPerStream => h.min(),
            };
            add_shifted(&mut latency.added, &h, offset);
            add_shifted(&mut latency.task, &task, offset);
        }
        latency
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

/// Adds every value of `from` less `offset` (at least 1 ns) to `into`.
fn add_shifted(into: &mut Histogram<u64>, from: &Histogram<u64>, offset: u64) {
    for v in from.iter_recorded() {
        let value = from
            .lowest_equivalent(v.value_iterated_to())
            .saturating_sub(offset);
        let _ = into.record_n(value.max(1), v.count_at_value());
    }
}

fn add_raised(into: &mut Histogram<u64>, from: &Histogram<u64>, by: u64) {
    for v in from.iter_recorded() {
        let value = from
            .lowest_equivalent(v.value_iterated_to())
            .saturating_add(by);
        let _ = into.record_n(value, v.count_at_value());
    }
}

/// 1 ns to 60 s at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant, valid bounds")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn the_table_uses_the_kernel_arrival_and_the_task_line_the_same_offset() {
        let phase = Phase::new("srt", Clock, 1, Offset::CalibratedPerStream)
            .expect_hold(Duration::from_millis(100));
        phase.window.open(1_000 * MS);
        let stream = phase.streams[0].clone();
        let at = |sent_ms: u64, kernel_ms: Option<u64>, task_ms: u64| {
            let arrival = Arrival {
                kernel_ns: kernel_ms.map(|k| (1_000 + k) * MS),
                task_ns: (1_000 + task_ms) * MS,
            };
            phase.record(&stream, (1_000 + sent_ms) * MS, arrival);
        };
        // Release offset 100 ms; the task wakes 1 ms, then 8 ms late.
        at(0, Some(100), 101);
        at(1, Some(103), 111);
        // No kernel timestamp: the task's reading stands in.
        at(2, None, 106);
        // Sent before the window: not counted.
        phase.record(
            &stream,
            999 * MS,
            Arrival {
                kernel_ns: Some(0),
                task_ns: 0,
            },
        );

        let latency = phase.latency();
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / MS as f64;
        assert_eq!(latency.end_to_end.len(), 3);
        assert!((ms(&latency.end_to_end, 0.0) - 100.0).abs() < 0.1);
        // Added: 0 (shown as 1 ns), 2, 4 ms above the 100 ms minimum,
        // resolved to 8 µs (recorded 10 ms above the expected hold).
        assert!(latency.added.min() <= 1);
        assert!(
            (ms(&latency.added, 1.0) - 4.0).abs() < 0.01,
            "{}",
            ms(&latency.added, 1.0)
        );
        // Task: 1, 4, 10 ms above the same 100 ms, not above its own minimum.
        assert!(
            (ms(&latency.task, 0.0) - 1.0).abs() < 0.1,
            "{}",
            ms(&latency.task, 0.0)
        );
        assert!(
            (ms(&latency.task, 1.0) - 10.0).abs() < 0.1,
            "{}",
            ms(&latency.task, 1.0)
        );
        assert_eq!(stream.received_in_window.load(Relaxed), 3);
    }

    #[test]
    fn the_clock_is_the_realtime_clock() {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the machine's clock is after 1970")
            .as_nanos() as u64;
        let now = Clock.now_ns();
        assert!(
            now.abs_diff(since_epoch) < 1_000_000_000,
            "{now} vs {since_epoch}"
        );
    }
}
