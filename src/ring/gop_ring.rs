//! The per-stream packet store, bounded in bytes and aligned to GOPs.
//!
//! [`GopRing`] holds a stream's most recent packets (zero-copy `Bytes`
//! slices of the received datagrams) under consecutive demux indices, and
//! the start points found among them ([`crate::ring::start`]). It is where a
//! new consumer, an encoder being primed or an encoder replacing a failed
//! one starts from.
//!
//! Eviction policy, applied after every push:
//!
//! 1. Over the *budget*: remove whole GOPs from the front (first anything
//!    before the first splice point, then the oldest GOP), so that the ring
//!    starts at a splice point whenever it holds one. The latest splice
//!    point's GOP is never removed this way: a GOP longer than the budget
//!    stays whole. A ring that holds no splice point removes whole random
//!    access periods the same way.
//! 2. Over the *hard cap*: memory wins. Remove from the front up to the
//!    earliest start point that brings the ring under the cap, else just
//!    enough packets, even mid-GOP and even the latest splice point.
//!
//! A ring that has had to evict while holding no splice point is *starved*:
//! the stream has gone without an IDR for longer than the ring holds, and
//! consumers fall back to random access points, then to PES starts
//! ([`GopRing::accepts`]).

use std::collections::VecDeque;

use bytes::Bytes;

use super::header::Header;
use super::start::{RandomAccessPoint, RandomAccessReason, StartKind, StartPoint};
use crate::ts::gop::SplicePoint;
use crate::ts::{Cc, PACKET_SIZE, Pid, Timestamp};

/// Byte bounds of a [`GopRing`]; counted as 188 bytes a packet (the
/// datagrams the packets are slices of are the shell's to size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RingLimits {
    /// Soft bound: whole GOPs are evicted above it.
    pub budget: usize,
    /// Hard bound: never exceeded after a push.
    pub hard_cap: usize,
}

impl RingLimits {
    /// One GOP of the typical contribution stream the default is sized for:
    /// 8 Mbit/s with an IDR every 2 s is 2 MB.
    pub const TYPICAL_GOP_BYTES: usize = 8_000_000 / 8 * 2;
    /// 8 MiB: because eviction removes whole GOPs only once the budget is
    /// exceeded, a ring that must always hold two *complete* GOPs needs room
    /// for the GOP being received as well: 3 × 2 MB = 6 MB, plus ~40 %
    /// headroom for VBR peaks.
    pub const DEFAULT_BUDGET: usize = 8 << 20;
    /// 16 MiB: twice the budget, so a stream whose GOP is longer than the
    /// budget (or that has no IDR at all) still keeps ~16 s at 8 Mbit/s,
    /// while 50 such streams stay under 1 GB.
    pub const DEFAULT_HARD_CAP: usize = 16 << 20;

    /// Checks that the ring can hold a packet and the cap is not below the
    /// budget.
    pub fn validate(&self) -> Result<(), RingError> {
        if self.budget < PACKET_SIZE {
            return Err(RingError::BudgetTooSmall {
                budget: self.budget,
            });
        }
        if self.hard_cap < self.budget {
            return Err(RingError::HardCapBelowBudget {
                budget: self.budget,
                hard_cap: self.hard_cap,
            });
        }
        Ok(())
    }
}

impl Default for RingLimits {
    fn default() -> RingLimits {
        RingLimits {
            budget: RingLimits::DEFAULT_BUDGET,
            hard_cap: RingLimits::DEFAULT_HARD_CAP,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    #[error(
        "ring budget of {budget} bytes cannot hold one 188-byte packet; give it at least a few GOPs"
    )]
    BudgetTooSmall { budget: usize },
    #[error(
        "ring hard cap of {hard_cap} bytes is below its budget of {budget} bytes; raise the hard cap"
    )]
    HardCapBelowBudget { budget: usize, hard_cap: usize },
    #[error(
        "packet {got} pushed where packet {expected} was expected (the ring holds consecutive demux indices)"
    )]
    NotNext { expected: u64, got: u64 },
    #[error("packet {index} is {len} bytes, not 188")]
    PacketSize { index: u64, len: usize },
}

/// Where the last IDR splice point was, kept after it leaves the ring so
/// that the shell can tell how long a stream has gone without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IdrMark {
    pub index: u64,
    pub pts: Option<u64>,
}

/// Counters and state of a [`GopRing`], for the API and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RingStats {
    pub bytes: usize,
    pub packets: usize,
    /// Splice points held, i.e. GOPs (the last one still growing).
    pub gops: usize,
    pub random_access_points: usize,
    /// Index of the oldest packet held.
    pub first_index: Option<u64>,
    /// Index the next packet will have.
    pub next_index: Option<u64>,
    pub evicted_packets: u64,
    pub evicted_bytes: u64,
    /// Splice points that left the ring, with (part of) their GOP.
    pub evicted_gops: u64,
    /// Times the hard cap forced an eviction.
    pub hard_cap_evictions: u64,
    pub last_idr: Option<IdrMark>,
    pub starved: bool,
}

/// Continuity counter table entry: bits 0–3 the counter, this bit set once
/// the PID has carried a payload.
const CC_SEEN: u8 = 0x10;

/// See the module docs.
#[derive(Debug)]
pub struct GopRing {
    limits: RingLimits,
    packets: VecDeque<Bytes>,
    /// Index of `packets[0]`.
    first: u64,
    /// Index the next pushed packet must have; `None` before the first.
    next: Option<u64>,
    /// Ascending by index, all within the ring.
    splices: VecDeque<SplicePoint>,
    /// Ascending by index, all within the ring.
    raps: VecDeque<RandomAccessPoint>,
    starved: bool,
    last_idr: Option<IdrMark>,
    /// Last continuity counter per PID of the packets pushed, so that PSI
    /// sent to a new consumer can be stamped to line up with what follows.
    last_cc: Box<[u8; Pid::COUNT]>,
    evicted_packets: u64,
    evicted_gops: u64,
    hard_cap_evictions: u64,
}

impl GopRing {
    pub fn new(limits: RingLimits) -> Result<GopRing, RingError> {
        limits.validate()?;
        Ok(GopRing {
            limits,
            packets: VecDeque::new(),
            first: 0,
            next: None,
            splices: VecDeque::new(),
            raps: VecDeque::new(),
            starved: false,
            last_idr: None,
            last_cc: Box::new([0; Pid::COUNT]),
            evicted_packets: 0,
            evicted_gops: 0,
            hard_cap_evictions: 0,
        })
    }

    pub fn limits(&self) -> RingLimits {
        self.limits
    }

    /// Appends the packet with demux index `index`, which must follow the
    /// previous one, then evicts as the module docs say.
    pub fn push(&mut self, index: u64, packet: Bytes) -> Result<(), RingError> {
        if packet.len() != PACKET_SIZE {
            return Err(RingError::PacketSize {
                index,
                len: packet.len(),
            });
        }
        match self.next {
            Some(expected) if expected != index => {
                return Err(RingError::NotNext {
                    expected,
                    got: index,
                });
            }
            _ => {}
        }
        if self.packets.is_empty() {
            self.first = index;
        }
        if let Some(h) = Header::read(&packet)
            && h.counts()
            && h.has_payload
            && let Some(slot) = self.last_cc.get_mut(h.pid.index())
        {
            *slot = h.cc.value() | CC_SEEN;
        }
        self.packets.push_back(packet);
        self.next = index.checked_add(1);
        self.evict();
        Ok(())
    }

    /// Records an IDR splice point found by the GOP indexer. Returns false
    /// (and keeps nothing) when its packet is not in the ring or it is not
    /// after the latest one.
    pub fn add_splice_point(&mut self, point: SplicePoint) -> bool {
        if self.last_idr.is_none_or(|m| m.index < point.index) {
            self.last_idr = Some(IdrMark {
                index: point.index,
                pts: point.pts.map(Timestamp::ticks),
            });
        }
        if !self.contains(point.index)
            || self.splices.back().is_some_and(|s| s.index >= point.index)
        {
            return false;
        }
        self.splices.push_back(point);
        self.starved = false;
        // A new boundary may let the budget rule evict what it could not.
        self.evict();
        true
    }

    /// Records a random access point; returns false like
    /// [`GopRing::add_splice_point`].
    pub fn add_random_access_point(&mut self, point: RandomAccessPoint) -> bool {
        if !self.contains(point.index) || self.raps.back().is_some_and(|r| r.index >= point.index) {
            return false;
        }
        self.raps.push_back(point);
        self.evict();
        true
    }

    pub fn latest_splice_point(&self) -> Option<&SplicePoint> {
        self.splices.back()
    }

    pub fn latest_random_access_point(&self) -> Option<&RandomAccessPoint> {
        self.raps.back()
    }

    /// Splice points held, oldest first.
    pub fn splice_points(&self) -> impl DoubleEndedIterator<Item = &SplicePoint> {
        self.splices.iter()
    }

    /// Random access points held, oldest first.
    pub fn random_access_points(&self) -> impl DoubleEndedIterator<Item = &RandomAccessPoint> {
        self.raps.iter()
    }

    /// The last splice point whose PTS is at or before `pts`, comparing
    /// across the 33-bit wrap ([`Timestamp::delta`]): where a replacement
    /// encoder must start to produce the GOP containing `pts`. Splice points
    /// without a PTS are passed over.
    pub fn splice_point_at_or_before(&self, pts: Timestamp) -> Option<&SplicePoint> {
        self.splices
            .iter()
            .rev()
            .find(|s| s.pts.is_some_and(|p| pts.delta(p) >= 0))
    }

    /// The best place for a consumer to start: the latest splice point, else
    /// (see [`GopRing::accepts`]) the latest random access point. Only start
    /// points after index `after` (what the consumer already has) and with at
    /// most `max_backlog` bytes from them to the end of the ring (what the
    /// consumer's queue can take) are considered. `None`: wait for the next
    /// start point.
    pub fn best_start(&self, after: Option<u64>, max_backlog: usize) -> Option<StartPoint> {
        if let Some(point) = self.splices.back()
            && self.fits(point.index, after, max_backlog)
        {
            return Some(StartPoint::from(point));
        }
        let point = StartPoint::from(self.raps.back()?);
        self.accepts(&point, after, max_backlog).then_some(point)
    }

    /// Whether a consumer that has everything up to index `after` and can
    /// take `max_backlog` bytes may start at `start`:
    ///
    /// - at an IDR splice point, always, and at the audio PES start of a
    ///   stream without video (there will never be an IDR);
    /// - at another random access point, when the ring is starved or its latest
    ///   splice point is out of the consumer's reach (already passed, or
    ///   too far back for its queue) — waiting for an IDR the stream does
    ///   not send would leave it with nothing;
    /// - at a mere PES start, only when the ring is starved and holds no
    ///   random access point either.
    ///
    /// In every case the start must be in the ring, after `after` and
    /// within `max_backlog`.
    pub fn accepts(&self, start: &StartPoint, after: Option<u64>, max_backlog: usize) -> bool {
        if !self.fits(start.index, after, max_backlog) {
            return false;
        }
        match start.kind {
            StartKind::Idr => true,
            StartKind::RandomAccess => {
                start.reason == Some(RandomAccessReason::AudioPes)
                    || self.is_starved()
                    || self
                        .splices
                        .back()
                        .is_some_and(|s| !self.fits(s.index, after, max_backlog))
            }
            StartKind::PesStart => self.is_starved() && self.raps.is_empty(),
        }
    }

    fn fits(&self, index: u64, after: Option<u64>, max_backlog: usize) -> bool {
        after.is_none_or(|a| index > a)
            && self
                .backlog_bytes(index)
                .is_some_and(|bytes| bytes <= max_backlog)
    }

    /// Packets from `index` (or the oldest held, if later) to the end.
    pub fn packets_from(&self, index: u64) -> impl Iterator<Item = (u64, &Bytes)> {
        let skip = index.saturating_sub(self.first);
        let skip = usize::try_from(skip).map_or(self.packets.len(), |s| s.min(self.packets.len()));
        let first = self.first.saturating_add(skip as u64);
        (first..).zip(self.packets.range(skip..))
    }

    pub fn get(&self, index: u64) -> Option<&Bytes> {
        let at = usize::try_from(index.checked_sub(self.first)?).ok()?;
        self.packets.get(at)
    }

    pub fn contains(&self, index: u64) -> bool {
        self.get(index).is_some()
    }

    /// Index of the oldest packet held.
    pub fn first_index(&self) -> Option<u64> {
        (!self.packets.is_empty()).then_some(self.first)
    }

    /// Index the next packet must have (`None` before the first push).
    pub fn next_index(&self) -> Option<u64> {
        self.next
    }

    /// Bytes from `index` to the end of the ring, if `index` is held.
    pub fn backlog_bytes(&self, index: u64) -> Option<usize> {
        let at = usize::try_from(index.checked_sub(self.first)?).ok()?;
        let len = self.packets.len().checked_sub(at).filter(|n| *n > 0)?;
        Some(len * PACKET_SIZE)
    }

    pub fn bytes(&self) -> usize {
        self.packets.len() * PACKET_SIZE
    }

    /// See the module docs.
    pub fn is_starved(&self) -> bool {
        self.starved && self.splices.is_empty()
    }

    pub fn last_idr(&self) -> Option<IdrMark> {
        self.last_idr
    }

    /// The continuity counter of the first packet with payload on `pid` at
    /// or after `index`; if none is held yet, the one the next such packet
    /// will carry if none is lost.
    pub fn next_cc_from(&self, pid: Pid, index: u64) -> Option<Cc> {
        let held = self.packets_from(index).find_map(|(_, p)| {
            let h = Header::read(p)?;
            (h.pid == pid && h.has_payload).then_some(h.cc)
        });
        held.or_else(|| {
            let last = *self.last_cc.get(pid.index())?;
            (last & CC_SEEN != 0).then(|| Cc::new(last).next())
        })
    }

    pub fn stats(&self) -> RingStats {
        RingStats {
            bytes: self.bytes(),
            packets: self.packets.len(),
            gops: self.splices.len(),
            random_access_points: self.raps.len(),
            first_index: self.first_index(),
            next_index: self.next,
            evicted_packets: self.evicted_packets,
            evicted_bytes: self.evicted_packets * PACKET_SIZE as u64,
            evicted_gops: self.evicted_gops,
            hard_cap_evictions: self.hard_cap_evictions,
            last_idr: self.last_idr,
            starved: self.is_starved(),
        }
    }

    fn evict(&mut self) {
        while self.bytes() > self.limits.budget {
            let Some(to) = self.soft_boundary() else {
                break;
            };
            self.evict_to(to);
        }
        if self.bytes() > self.limits.hard_cap {
            self.hard_cap_evictions += 1;
            let to = self.hard_boundary();
            self.evict_to(to);
        }
    }

    /// The end of the first whole GOP (or random access period, when no
    /// splice point is held) that may go under the budget rule.
    fn soft_boundary(&self) -> Option<u64> {
        let (first_mark, second_mark) = match self.splices.front() {
            Some(s) => (s.index, self.splices.get(1).map(|s| s.index)),
            None => {
                let r = self.raps.front()?;
                (r.index, self.raps.get(1).map(|r| r.index))
            }
        };
        if self.first < first_mark {
            Some(first_mark)
        } else {
            second_mark
        }
    }

    /// Where to cut so that the ring fits under the hard cap: the earliest
    /// start point that does, else exactly enough packets.
    fn hard_boundary(&self) -> u64 {
        let keep = (self.limits.hard_cap / PACKET_SIZE) as u64;
        let end = self.first + self.packets.len() as u64;
        let min_to = end.saturating_sub(keep);
        let splice = self.splices.iter().map(|s| s.index).find(|&i| i >= min_to);
        let rap = self.raps.iter().map(|r| r.index).find(|&i| i >= min_to);
        match (splice, rap) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => min_to,
        }
    }

    fn evict_to(&mut self, to: u64) {
        while self.first < to && self.packets.pop_front().is_some() {
            self.first += 1;
            self.evicted_packets += 1;
        }
        while self.splices.front().is_some_and(|s| s.index < self.first) {
            self.splices.pop_front();
            self.evicted_gops += 1;
        }
        while self.raps.front().is_some_and(|r| r.index < self.first) {
            self.raps.pop_front();
        }
        if self.splices.is_empty() {
            self.starved = true;
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ts::packet::PacketBuilder;

    fn packet(pid: u16, cc: u8) -> Bytes {
        let mut b = PacketBuilder::new(Pid::new(pid));
        b.cc = Cc::new(cc);
        let mut out = [0u8; PACKET_SIZE];
        b.build(&[0xAB; 184], &mut out);
        Bytes::copy_from_slice(&out)
    }

    fn splice(index: u64, pts: u64) -> SplicePoint {
        SplicePoint {
            index,
            pts: Some(Timestamp::new(pts)),
            dts: None,
            program_number: 1,
            video_pid: Pid::new(0x100),
            pmt_pid: Pid::new(0x1000),
            pat: Bytes::new(),
            pmt: Bytes::new(),
        }
    }

    fn rap(index: u64) -> RandomAccessPoint {
        RandomAccessPoint {
            index,
            pts: None,
            pid: Pid::new(0x100),
            reason: RandomAccessReason::RecoveryPoint,
            psi: None,
        }
    }

    fn ring(budget_packets: usize, cap_packets: usize) -> GopRing {
        GopRing::new(RingLimits {
            budget: budget_packets * PACKET_SIZE,
            hard_cap: cap_packets * PACKET_SIZE,
        })
        .unwrap()
    }

    /// Pushes packets `from..to`, marking a splice point every `gop`
    /// packets (reported `lag` packets late, as the demux does).
    fn feed(r: &mut GopRing, from: u64, to: u64, gop: Option<u64>, lag: u64) {
        for i in from..to {
            r.push(i, packet(0x100, i as u8)).unwrap();
            if let Some(g) = gop
                && i >= lag
                && (i - lag).is_multiple_of(g)
            {
                r.add_splice_point(splice(i - lag, (i - lag) * 100));
            }
        }
    }

    #[test]
    fn budget_evicts_whole_gops_and_the_ring_starts_at_a_splice_point() {
        // GOPs of 10 packets, budget 35: three whole GOPs never fit, so
        // the ring holds the two previous GOPs and the one in progress.
        let mut r = ring(35, 100);
        for i in 0..200 {
            feed(&mut r, i, i + 1, Some(10), 3);
            let stats = r.stats();
            if i >= 23 {
                assert_eq!(r.first_index(), r.splice_points().next().map(|s| s.index));
                assert!(stats.gops >= 2, "{i}: {stats:?}");
                assert_eq!(stats.first_index.unwrap() % 10, 0);
            }
            assert!(stats.bytes <= 35 * PACKET_SIZE + 10 * PACKET_SIZE);
        }
        let stats = r.stats();
        assert_eq!(stats.hard_cap_evictions, 0);
        assert!(!stats.starved);
        assert_eq!(stats.evicted_packets % 10, 0);
        assert_eq!(stats.evicted_gops, stats.evicted_packets / 10);
        assert_eq!(r.latest_splice_point().unwrap().index, 190);
    }

    #[test]
    fn leading_packets_before_the_first_splice_point_go_first() {
        let mut r = ring(10, 100);
        feed(&mut r, 0, 12, None, 0);
        // No boundary yet: the budget is exceeded but nothing can go.
        assert_eq!(r.first_index(), Some(0));
        assert!(r.add_splice_point(splice(5, 0)));
        assert_eq!(r.first_index(), Some(5));
        assert_eq!(r.stats().evicted_gops, 0);
        assert!(!r.is_starved());
    }

    #[test]
    fn the_latest_gop_stays_whole_until_the_hard_cap_forces_it_out() {
        let mut r = ring(10, 20);
        r.push(0, packet(0x100, 0)).unwrap();
        assert!(r.add_splice_point(splice(0, 0)));
        feed(&mut r, 1, 20, None, 0);
        assert_eq!(r.bytes(), 20 * PACKET_SIZE);
        assert_eq!(r.latest_splice_point().unwrap().index, 0);
        assert!(!r.is_starved());
        // A random access point inside the GOP: the hard cap cuts there.
        assert!(r.add_random_access_point(rap(12)));
        feed(&mut r, 20, 21, None, 0);
        assert_eq!(r.first_index(), Some(12));
        assert!(r.latest_splice_point().is_none());
        assert!(r.is_starved());
        let stats = r.stats();
        assert_eq!((stats.evicted_gops, stats.hard_cap_evictions), (1, 1));
        assert_eq!(
            stats.last_idr,
            Some(IdrMark {
                index: 0,
                pts: Some(0)
            })
        );
        // No start point left to cut at: packets go one by one, mid-GOP.
        feed(&mut r, 21, 60, None, 0);
        assert_eq!(r.bytes(), 20 * PACKET_SIZE);
        assert_eq!(r.first_index(), Some(40));
        assert_eq!(r.random_access_points().count(), 0);
    }

    #[test]
    fn without_splice_points_random_access_periods_are_evicted_under_the_budget() {
        let mut r = ring(10, 40);
        for i in 0..100 {
            r.push(i, packet(0x100, 0)).unwrap();
            if i % 4 == 0 {
                r.add_random_access_point(rap(i));
            }
            assert!(r.bytes() <= 13 * PACKET_SIZE);
            if i >= 12 {
                assert_eq!(r.first_index().unwrap() % 4, 0);
                assert!(r.is_starved());
            }
        }
        assert_eq!(r.stats().hard_cap_evictions, 0);
    }

    #[test]
    fn best_start_prefers_the_latest_splice_point_then_falls_back() {
        let mut r = ring(1000, 1000);
        feed(&mut r, 0, 30, None, 0);
        r.add_splice_point(splice(5, 0));
        r.add_random_access_point(rap(20));
        let idr = r.best_start(None, usize::MAX).unwrap();
        assert_eq!((idr.kind, idr.index), (StartKind::Idr, 5));
        // The consumer already has packet 5, or cannot take 25 packets:
        // the random access point is the best it can get.
        let ra = r.best_start(Some(5), usize::MAX).unwrap();
        assert_eq!((ra.kind, ra.index), (StartKind::RandomAccess, 20));
        let ra = r.best_start(None, 10 * PACKET_SIZE).unwrap();
        assert_eq!((ra.kind, ra.index), (StartKind::RandomAccess, 20));
        assert!(r.best_start(None, 5 * PACKET_SIZE).is_none());
        // Not starved, so a PES start is never accepted.
        let pes = StartPoint {
            kind: StartKind::PesStart,
            index: 29,
            pts: None,
            pid: Pid::new(0x100),
            reason: None,
            psi: None,
        };
        assert!(!r.accepts(&pes, None, usize::MAX));
        // A ring that is not starved and has no IDR yet waits for one.
        let mut fresh = ring(1000, 1000);
        feed(&mut fresh, 0, 30, None, 0);
        fresh.add_random_access_point(rap(20));
        assert!(fresh.best_start(None, usize::MAX).is_none());
        // A starved ring without random access points takes a PES start.
        let mut starved = ring(5, 5);
        feed(&mut starved, 0, 30, None, 0);
        assert!(starved.is_starved());
        assert!(starved.best_start(None, usize::MAX).is_none());
        assert!(starved.accepts(&pes, None, usize::MAX));
        assert!(!starved.accepts(&pes, Some(29), usize::MAX));
    }

    #[test]
    fn splice_point_at_or_before_compares_across_the_wrap() {
        let m = Timestamp::MODULUS;
        let mut r = ring(1000, 1000);
        feed(&mut r, 0, 30, None, 0);
        r.add_splice_point(splice(0, m - 100));
        r.add_splice_point(splice(10, 50));
        r.add_splice_point(splice(20, 90_050));
        let at = |pts: u64| {
            r.splice_point_at_or_before(Timestamp::new(pts))
                .map(|s| s.index)
        };
        assert_eq!(at(m - 100), Some(0));
        assert_eq!(at(m - 1), Some(0));
        assert_eq!(at(49), Some(0));
        assert_eq!(at(50), Some(10));
        assert_eq!(at(90_049), Some(10));
        assert_eq!(at(1_000_000), Some(20));
        assert_eq!(at(m - 101), None);
    }

    #[test]
    fn push_checks_index_and_size_and_limits_are_validated() {
        let mut r = ring(10, 10);
        r.push(7, packet(0x100, 0)).unwrap();
        assert_eq!(
            r.push(9, packet(0x100, 1)),
            Err(RingError::NotNext {
                expected: 8,
                got: 9
            })
        );
        assert_eq!(
            r.push(8, Bytes::from_static(&[0x47; 100])),
            Err(RingError::PacketSize { index: 8, len: 100 })
        );
        assert_eq!(r.first_index(), Some(7));
        assert_eq!(r.packets_from(0).map(|(i, _)| i).collect::<Vec<_>>(), [7]);
        assert_eq!(r.packets_from(9).count(), 0);
        assert!(!r.add_splice_point(splice(8, 0)), "not in the ring");
        assert!(r.add_splice_point(splice(7, 0)));
        assert!(!r.add_splice_point(splice(7, 0)), "not after the latest");
        assert!(matches!(
            GopRing::new(RingLimits {
                budget: 1000,
                hard_cap: 999
            }),
            Err(RingError::HardCapBelowBudget { .. })
        ));
        assert!(matches!(
            GopRing::new(RingLimits {
                budget: 100,
                hard_cap: 999
            }),
            Err(RingError::BudgetTooSmall { .. })
        ));
        assert!(RingLimits::default().validate().is_ok());
        const { assert!(RingLimits::DEFAULT_BUDGET >= 3 * RingLimits::TYPICAL_GOP_BYTES) };
    }

    #[test]
    fn next_cc_looks_ahead_in_the_ring_then_predicts() {
        let mut r = ring(100, 100);
        r.push(0, packet(0, 4)).unwrap();
        r.push(1, packet(0x100, 0)).unwrap();
        r.push(2, packet(0, 5)).unwrap();
        assert_eq!(r.next_cc_from(Pid::PAT, 0), Some(Cc::new(4)));
        assert_eq!(r.next_cc_from(Pid::PAT, 1), Some(Cc::new(5)));
        assert_eq!(r.next_cc_from(Pid::PAT, 3), Some(Cc::new(6)));
        assert_eq!(r.next_cc_from(Pid::new(0x1000), 0), None);
    }
}
