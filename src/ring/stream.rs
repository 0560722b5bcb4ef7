//! The per-stream pipeline core: datagrams in, demux, ring, fan-out.
//!
//! [`StreamBuffer::push`] takes one received datagram (any number of TS
//! packets, even split ones) and, packet by packet:
//!
//! 1. slices the packet out of the datagram (zero copy; only a packet split
//!    across datagrams is copied, by the resync layer);
//! 2. runs it through the demux, whose callbacks feed the GOP indexer and
//!    note random access points and PES starts;
//! 3. stores it in the [`GopRing`] and pushes it to every consumer's queue;
//! 4. records the start points the packet revealed (a splice point is
//!    known a few packets after its index, once the first slice NAL unit is
//!    seen) and offers them to the consumers, so that a waiting consumer
//!    starts there with the packets from the ring.
//!
//! Doing this per packet rather than per datagram matters for large chunks
//! (a file, a batch of datagrams): the ring learns each splice point before
//! it has to evict past it.

use bytes::Bytes;

use super::gop_ring::{GopRing, RingError, RingLimits, RingStats};
use super::queue::{ConsumerQueue, ConsumerStats, QueueLimits};
use super::start::{ProgramPsi, RandomAccessPoint, RandomAccessReason, StartKind, StartPoint};
use crate::ts::demux::{AccessUnit, Demux, DemuxHandler, DemuxStats, PesStart, StreamDemux};
use crate::ts::gop::{GopIndexer, ProgramSelector, SplicePoint};
use crate::ts::nal::PictureKind;
use crate::ts::psi::{Codec, Pat, Pmt};
use crate::ts::resync::{Origin, ResyncStats};
use crate::ts::{PACKET_SIZE, Pid, Timestamp};

/// Settings of one stream's buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamConfig {
    pub ring: RingLimits,
    /// The program whose video is indexed for splice points.
    pub program: ProgramSelector,
}

/// Identifies a consumer of one [`StreamBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ConsumerId(pub u64);

impl std::fmt::Display for ConsumerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "consumer {}", self.0)
    }
}

/// A snapshot of a stream's counters, for the API and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    pub ring: RingStats,
    pub demux: DemuxStats,
    pub resync: ResyncStats,
    /// IDRs that were not splice points (PSI unknown, damaged, parameter
    /// sets missing).
    pub skipped_idrs: u64,
    pub splice_points_found: u64,
    pub random_access_points_found: u64,
    pub consumers: usize,
    /// Packets the ring refused; always 0 unless the demux's indices break.
    pub ring_rejects: u64,
}

/// See the module docs.
#[derive(Debug)]
pub struct StreamBuffer {
    demux: StreamDemux,
    core: Core,
}

/// Everything but the demux, so that the demux can call back into it.
#[derive(Debug)]
struct Core {
    tap: Tap,
    ring: GopRing,
    consumers: Vec<(ConsumerId, ConsumerQueue)>,
    next_id: u64,
    ring_rejects: u64,
    splice_points_found: u64,
    random_access_points_found: u64,
}

impl StreamBuffer {
    pub fn new(config: StreamConfig) -> Result<StreamBuffer, RingError> {
        Ok(StreamBuffer {
            demux: StreamDemux::new(),
            core: Core {
                tap: Tap::new(config.program),
                ring: GopRing::new(config.ring)?,
                consumers: Vec::new(),
                next_id: 0,
                ring_rejects: 0,
                splice_points_found: 0,
                random_access_points_found: 0,
            },
        })
    }

    /// Feeds one received datagram (or any chunk of the byte stream).
    pub fn push(&mut self, datagram: Bytes) {
        let StreamBuffer {
            demux: StreamDemux { resync, demux },
            core,
        } = self;
        resync.push(&datagram, |packet, origin| {
            let bytes = match origin {
                Origin::Chunk(at) if at + PACKET_SIZE <= datagram.len() => {
                    datagram.slice(at..at + PACKET_SIZE)
                }
                _ => Bytes::copy_from_slice(packet),
            };
            let index = demux.next_index();
            demux.push_packet(packet, &mut core.tap);
            core.packet(index, bytes);
        });
    }

    /// Ends the stream: flushes a last packet the resync layer was holding
    /// and access units still waiting for their end.
    pub fn finish(&mut self) {
        let StreamBuffer {
            demux: StreamDemux { resync, demux },
            core,
        } = self;
        resync.finish(|packet, _| {
            let index = demux.next_index();
            demux.push_packet(packet, &mut core.tap);
            core.packet(index, Bytes::copy_from_slice(packet));
        });
        demux.finish(&mut core.tap);
        core.apply_events();
    }

    /// Adds a consumer. It starts at the ring's best start point at once
    /// (see [`GopRing::best_start`]; its queue is filled with PAT, PMT and
    /// the ring's packets from there), or else at the next acceptable one.
    pub fn attach(&mut self, limits: QueueLimits) -> ConsumerId {
        let core = &mut self.core;
        let id = ConsumerId(core.next_id);
        core.next_id += 1;
        let mut queue = ConsumerQueue::new(limits);
        queue.start_from_ring(&core.ring);
        core.consumers.push((id, queue));
        id
    }

    /// Adds a consumer that starts at the ring's splice point at or before
    /// `pts` (the first frame a replacement encoder must produce), or, if
    /// that is gone or does not fit the queue, where [`StreamBuffer::attach`]
    /// would start it. Returns the id and whether it starts at `pts`'s GOP.
    pub fn attach_at(&mut self, limits: QueueLimits, pts: Timestamp) -> (ConsumerId, bool) {
        let core = &mut self.core;
        let id = ConsumerId(core.next_id);
        core.next_id += 1;
        let mut queue = ConsumerQueue::new(limits);
        let exact = core
            .ring
            .splice_point_at_or_before(pts)
            .map(StartPoint::from)
            .is_some_and(|start| queue.start_from_point(&start, &core.ring));
        if !exact {
            queue.start_from_ring(&core.ring);
        }
        core.consumers.push((id, queue));
        (id, exact)
    }

    /// Removes a consumer, returning its final counters.
    pub fn detach(&mut self, id: ConsumerId) -> Option<ConsumerStats> {
        let consumers = &mut self.core.consumers;
        let at = consumers.iter().position(|(c, _)| *c == id)?;
        Some(consumers.swap_remove(at).1.stats())
    }

    /// [`ConsumerQueue::take`] for one consumer; `None` if it is unknown.
    pub fn take(
        &mut self,
        id: ConsumerId,
        max_bytes: usize,
        out: &mut Vec<Bytes>,
    ) -> Option<usize> {
        let queue = self.consumer_mut(id)?;
        Some(queue.take(max_bytes, out))
    }

    pub fn consumer(&self, id: ConsumerId) -> Option<&ConsumerQueue> {
        self.core
            .consumers
            .iter()
            .find(|(c, _)| *c == id)
            .map(|(_, q)| q)
    }

    fn consumer_mut(&mut self, id: ConsumerId) -> Option<&mut ConsumerQueue> {
        self.core
            .consumers
            .iter_mut()
            .find(|(c, _)| *c == id)
            .map(|(_, q)| q)
    }

    pub fn consumers(&self) -> impl Iterator<Item = (ConsumerId, &ConsumerQueue)> {
        self.core.consumers.iter().map(|(id, q)| (*id, q))
    }

    pub fn ring(&self) -> &GopRing {
        &self.core.ring
    }

    /// What the demux learnt: PAT, PMTs, per-PID counters, error counts.
    pub fn demux(&self) -> &Demux {
        &self.demux.demux
    }

    /// The video PID indexed for splice points, once known.
    pub fn video_pid(&self) -> Option<Pid> {
        self.core.tap.indexer.video_pid()
    }

    pub fn stats(&self) -> StreamStats {
        let core = &self.core;
        StreamStats {
            ring: core.ring.stats(),
            demux: self.demux.demux.stats(),
            resync: self.demux.resync_stats(),
            skipped_idrs: core.tap.indexer.skipped_idrs,
            splice_points_found: core.splice_points_found,
            random_access_points_found: core.random_access_points_found,
            consumers: core.consumers.len(),
            ring_rejects: core.ring_rejects,
        }
    }
}

impl Core {
    fn packet(&mut self, index: u64, packet: Bytes) {
        for (_, queue) in &mut self.consumers {
            queue.push_live(index, &packet);
        }
        if self.ring.push(index, packet).is_err() {
            self.ring_rejects += 1;
        }
        self.apply_events();
    }

    fn apply_events(&mut self) {
        if self.tap.events.is_empty() {
            return;
        }
        let mut events = std::mem::take(&mut self.tap.events);
        for event in events.drain(..) {
            let start = match event {
                Event::Splice(point) => {
                    self.splice_points_found += 1;
                    let start = StartPoint::from(&point);
                    self.ring.add_splice_point(point);
                    start
                }
                Event::RandomAccess(point) => {
                    self.random_access_points_found += 1;
                    let start = StartPoint::from(&point);
                    self.ring.add_random_access_point(point);
                    start
                }
                Event::PesStart(start) => start,
            };
            for (_, queue) in &mut self.consumers {
                queue.offer(&start, &self.ring);
            }
        }
        // Keep the allocation for the next packet.
        self.tap.events = events;
    }
}

#[derive(Debug)]
enum Event {
    Splice(SplicePoint),
    RandomAccess(RandomAccessPoint),
    PesStart(StartPoint),
}

/// The demux handler: feeds the GOP indexer and turns what the demux finds
/// into start point events for the packet being pushed.
#[derive(Debug)]
struct Tap {
    indexer: GopIndexer,
    events: Vec<Event>,
    pat: Option<Bytes>,
    pmts: Vec<PmtInfo>,
}

#[derive(Debug)]
struct PmtInfo {
    pid: Pid,
    section: Bytes,
    streams: Vec<(Pid, Codec)>,
}

impl Tap {
    fn new(program: ProgramSelector) -> Tap {
        Tap {
            indexer: GopIndexer::new(program),
            events: Vec::new(),
            pat: None,
            pmts: Vec::new(),
        }
    }

    /// PAT and the PMT of the program carrying `pid`.
    fn psi_for(&self, pid: Pid) -> Option<ProgramPsi> {
        let pmt = self
            .pmts
            .iter()
            .find(|p| p.streams.iter().any(|(s, _)| *s == pid))?;
        Some(ProgramPsi {
            pat: self.pat.clone()?,
            pmt_pid: pmt.pid,
            pmt: pmt.section.clone(),
        })
    }

    /// For a stream without indexed video: the first audio PID.
    fn audio_anchor(&self) -> Option<Pid> {
        self.pmts
            .iter()
            .flat_map(|p| &p.streams)
            .find(|(_, codec)| codec.is_audio())
            .map(|(pid, _)| *pid)
    }

    fn random_access(
        &mut self,
        index: u64,
        pes_pid: Pid,
        pts: Option<Timestamp>,
        reason: RandomAccessReason,
    ) {
        let psi = self.psi_for(pes_pid);
        self.events.push(Event::RandomAccess(RandomAccessPoint {
            index,
            pts,
            pid: pes_pid,
            reason,
            psi,
        }));
    }
}

impl DemuxHandler for Tap {
    fn on_pat(&mut self, index: u64, pat: &Pat, section: &[u8]) {
        self.indexer.on_pat(index, pat, section);
        self.pat = Some(Bytes::copy_from_slice(section));
        self.pmts
            .retain(|p| pat.programs().any(|entry| entry.pid == p.pid));
    }

    fn on_pmt(&mut self, index: u64, pid: Pid, pmt: &Pmt, section: &[u8]) {
        self.indexer.on_pmt(index, pid, pmt, section);
        let info = PmtInfo {
            pid,
            section: Bytes::copy_from_slice(section),
            streams: pmt.streams.iter().map(|s| (s.pid, s.codec())).collect(),
        };
        match self.pmts.iter_mut().find(|p| p.pid == pid) {
            Some(existing) => *existing = info,
            None => self.pmts.push(info),
        }
    }

    fn on_pes(&mut self, pes: &PesStart) {
        let pts = pes.header.pts;
        match self.indexer.video_pid() {
            Some(video) if video == pes.pid => {}
            Some(_) => return,
            None => match self.audio_anchor() {
                Some(audio) if audio == pes.pid => {
                    return self.random_access(
                        pes.index,
                        pes.pid,
                        pts,
                        RandomAccessReason::AudioPes,
                    );
                }
                Some(_) => return,
                // Neither video nor audio: any PES start will do.
                None => {}
            },
        }
        let psi = self.psi_for(pes.pid);
        self.events.push(Event::PesStart(StartPoint {
            kind: StartKind::PesStart,
            index: pes.index,
            pts,
            pid: pes.pid,
            reason: None,
            psi,
        }));
    }

    fn on_access_unit(&mut self, au: &AccessUnit) {
        self.indexer.on_access_unit(au);
        let mut spliced = false;
        while let Some(point) = self.indexer.poll() {
            spliced = true;
            self.events.push(Event::Splice(point));
        }
        if spliced || au.damaged || self.indexer.video_pid() != Some(au.pid) {
            return;
        }
        let reason = match au.info.picture {
            PictureKind::Cra => RandomAccessReason::Cra,
            PictureKind::Bla => RandomAccessReason::Bla,
            PictureKind::Idr => RandomAccessReason::IdrWithoutParameterSets,
            PictureKind::NonIrap if au.info.recovery_point => RandomAccessReason::RecoveryPoint,
            PictureKind::NonIrap if au.random_access_indicator => {
                RandomAccessReason::RandomAccessIndicator
            }
            PictureKind::NonIrap | PictureKind::NoPicture => return,
        };
        self.random_access(au.index, au.pid, au.pts, reason);
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ring::ConsumerPhase;
    use crate::ring::testing::*;
    use crate::ts::Cc;
    use crate::ts::packet::PacketBuilder;
    use crate::ts::pes::write_timestamp;
    use crate::ts::psi::{PatEntry, PmtStream, packetize_section};
    use proptest::prelude::*;

    const CLOSED: &[u8] = include_bytes!("../../testdata/h264_aac_closed_gop.ts");
    const HEVC: &[u8] = include_bytes!("../../testdata/hevc_aac_closed_gop.ts");
    const INTRA_REFRESH: &[u8] = include_bytes!("../../testdata/h264_intra_refresh.ts");

    fn buffer(budget: usize, hard_cap: usize) -> StreamBuffer {
        StreamBuffer::new(StreamConfig {
            ring: RingLimits { budget, hard_cap },
            program: ProgramSelector::FirstWithVideo,
        })
        .unwrap()
    }

    fn take_all(stream: &mut StreamBuffer, id: ConsumerId, out: &mut Vec<Bytes>) {
        stream.take(id, usize::MAX, out).unwrap();
    }

    /// The packet without its continuity counter.
    fn masked(packet: &[u8]) -> Vec<u8> {
        let mut p = packet.to_vec();
        p[3] &= 0xF0;
        p
    }

    /// Splice point indices of a capture, as the stream finds them.
    fn splice_indices(capture: &Bytes) -> Vec<u64> {
        let mut stream = buffer(1 << 30, 1 << 30);
        for d in datagrams(capture) {
            stream.push(d);
        }
        stream.finish();
        stream.ring().splice_points().map(|s| s.index).collect()
    }

    /// `input[from..]` as a consumer starting there gets it: without the
    /// payload packets of PIDs before their first unit start.
    fn joined_from(input: &[Bytes], from: usize) -> Vec<Bytes> {
        let mut started = Vec::new();
        input[from..]
            .iter()
            .filter(|p| {
                let has_payload = p[3] & 0x10 != 0;
                if !has_payload || started.contains(&pid(p)) {
                    return true;
                }
                if pusi(p) {
                    started.push(pid(p));
                }
                pusi(p)
            })
            .cloned()
            .collect()
    }

    #[test]
    fn consumer_attached_mid_stream_starts_with_pat_pmt_then_the_idr() {
        let input = packets(&Bytes::from_static(CLOSED));
        let grams = datagrams(&Bytes::from_static(CLOSED));
        let mut stream = StreamBuffer::new(StreamConfig::default()).unwrap();
        let split = grams.len() * 6 / 10;
        for d in &grams[..split] {
            stream.push(d.clone());
        }
        let point = stream.ring().latest_splice_point().unwrap().clone();
        assert_eq!(point.pts, Some(Timestamp::new(313_200)));
        let id = stream.attach(QueueLimits::default());
        let mut out = Vec::new();
        take_all(&mut stream, id, &mut out);
        for d in &grams[split..] {
            stream.push(d.clone());
            take_all(&mut stream, id, &mut out);
        }
        stream.finish();
        take_all(&mut stream, id, &mut out);

        assert_eq!(pid(&out[0]), 0);
        assert_eq!(pid(&out[1]), PMT);
        assert_eq!(out[2], input[point.index as usize]);
        assert!(pid(&out[2]) == VIDEO && pusi(&out[2]));
        // Every packet from the IDR on, byte for byte, but the tails of
        // audio PES packets that started before it.
        let expected = joined_from(&input, point.index as usize);
        assert_eq!(out[2..], expected[..]);

        let stats = stream.consumer(id).unwrap().stats();
        assert_eq!(stats.last_start, Some(StartKind::Idr));
        assert_eq!(stats.last_start_index, Some(point.index));
        assert_eq!((stats.dropped_packets, stats.skipped_gops), (0, 0));
        assert_eq!(stats.restamped_packets, 0, "a fresh consumer is zero-copy");
        assert_eq!(
            stats.trimmed_packets as usize,
            input.len() - point.index as usize - expected.len()
        );

        let report = assert_clean(&out, 25);
        let video = report.video.as_ref().unwrap();
        assert_eq!(video.idr_pts, vec![313_200, 403_200]);
        assert_eq!(video.frames, 50);
        for pid in [0, PMT, VIDEO, AUDIO] {
            assert_eq!(cc_errors(&report, pid), 0, "PID {pid:#x}");
        }
    }

    #[test]
    fn a_consumer_attached_at_a_pts_starts_at_the_gop_holding_that_frame() {
        let grams = datagrams(&Bytes::from_static(CLOSED));
        let mut stream = StreamBuffer::new(StreamConfig::default()).unwrap();
        let split = grams.len() * 8 / 10;
        for d in &grams[..split] {
            stream.push(d.clone());
        }
        // IDRs at 133 200, 223 200, 313 200, 403 200: a frame inside the
        // second GOP (what a failed encoder had not output yet).
        let (id, exact) =
            stream.attach_at(QueueLimits::default(), Timestamp::new(223_200 + 10 * 3600));
        assert!(exact);
        let mut out = Vec::new();
        take_all(&mut stream, id, &mut out);
        for d in &grams[split..] {
            stream.push(d.clone());
            take_all(&mut stream, id, &mut out);
        }
        stream.finish();
        take_all(&mut stream, id, &mut out);
        let report = assert_clean(&out, 25);
        let video = report.video.as_ref().unwrap();
        assert_eq!(video.idr_pts, vec![223_200, 313_200, 403_200]);
        assert_eq!(video.frames, 75);
        // A frame older than the ring: the latest splice point instead.
        let (_, exact) = stream.attach_at(QueueLimits::default(), Timestamp::new(1000));
        assert!(!exact);
    }

    #[test]
    fn slow_consumer_skips_to_the_next_gop_and_the_fast_one_gets_every_packet() {
        let input = packets(&Bytes::from_static(CLOSED));
        let splices = splice_indices(&Bytes::from_static(CLOSED));
        let mut stream = StreamBuffer::new(StreamConfig::default()).unwrap();
        let fast = stream.attach(QueueLimits::default());
        let slow = stream.attach(QueueLimits {
            capacity: 16 * 1024,
            hard_limit: 1 << 20,
        });
        let (mut fast_out, mut slow_out) = (Vec::new(), Vec::new());
        for (n, d) in datagrams(&Bytes::from_static(CLOSED))
            .into_iter()
            .enumerate()
        {
            stream.push(d);
            take_all(&mut stream, fast, &mut fast_out);
            // Stalls for 30 datagrams: 210 packets, more than a GOP.
            if !(20..50).contains(&n) {
                take_all(&mut stream, slow, &mut slow_out);
            }
        }
        stream.finish();
        take_all(&mut stream, fast, &mut fast_out);
        take_all(&mut stream, slow, &mut slow_out);

        // The fast consumer: the stream from its first IDR, untouched. Its
        // PAT and PMT even come out as ffmpeg wrote them, counters included.
        let first = splices[0] as usize;
        assert_eq!(fast_out[2..], input[first..]);
        assert_eq!(fast_out[..2], input[first - 2..first]);
        let fast_stats = stream.consumer(fast).unwrap().stats();
        assert_eq!(
            (fast_stats.dropped_packets, fast_stats.skipped_gops),
            (0, 0)
        );
        assert_eq!(fast_stats.restamped_packets, 0);

        let stats = stream.consumer(slow).unwrap().stats();
        assert!(stats.skipped_gops >= 1, "{stats:?}");
        assert!(stats.dropped_packets > 0, "{stats:?}");
        assert_eq!(stats.dropped_bytes, stats.dropped_packets * 188);
        assert_eq!(stats.truncated_gops, 0);
        assert_eq!(stats.starts, 2);
        let report = assert_clean(&slow_out, 25);
        let video = report.video.as_ref().unwrap();
        let gops = video.idr_pts.len() as u64;
        assert_eq!(
            gops + stats.skipped_gops,
            4,
            "{:?} {stats:?}",
            video.idr_pts
        );
        // What was delivered plus what was dropped is the whole stream
        // from the first IDR, but for the inserted PSI and the trimmed tails.
        let natives = stats.delivered_packets - 2 * stats.starts;
        assert_eq!(
            natives + stats.dropped_packets + stats.trimmed_packets,
            (input.len() - first) as u64
        );
    }

    #[test]
    fn consumers_are_independent() {
        let run = |with_stalled: bool| {
            let mut stream = StreamBuffer::new(StreamConfig::default()).unwrap();
            let a = stream.attach(QueueLimits::default());
            let mut stalled = None;
            let mut out = Vec::new();
            for (n, d) in datagrams(&Bytes::from_static(CLOSED))
                .into_iter()
                .enumerate()
            {
                stream.push(d);
                if with_stalled && n == 40 {
                    stalled = Some(stream.attach(QueueLimits {
                        capacity: 8 * 1024,
                        hard_limit: 64 * 1024,
                    }));
                }
                take_all(&mut stream, a, &mut out);
            }
            let stalled = stalled.map(|id| stream.consumer(id).unwrap().stats());
            (out, stalled)
        };
        let (alone, _) = run(false);
        let (together, stalled) = run(true);
        assert_eq!(alone, together);
        let stalled = stalled.unwrap();
        assert!(stalled.queued_bytes <= 8 * 1024, "{stalled:?}");
        assert!(stalled.skipped_gops >= 1, "{stalled:?}");
    }

    #[test]
    fn detach_removes_only_that_consumer() {
        let mut stream = StreamBuffer::new(StreamConfig::default()).unwrap();
        let grams = datagrams(&Bytes::from_static(CLOSED));
        let a = stream.attach(QueueLimits::default());
        let b = stream.attach(QueueLimits::default());
        let mut out = Vec::new();
        for d in &grams[..50] {
            stream.push(d.clone());
        }
        let b_stats = stream.detach(b).unwrap();
        assert!(b_stats.queued_bytes > 0);
        assert_eq!(stream.detach(b), None);
        assert_eq!(stream.take(b, usize::MAX, &mut out), None);
        assert!(stream.consumer(b).is_none());
        assert_eq!(stream.stats().consumers, 1);
        for d in &grams[50..] {
            stream.push(d.clone());
        }
        take_all(&mut stream, a, &mut out);
        assert_clean(&out, 25);
        let c = stream.attach(QueueLimits::default());
        assert_ne!(c, b, "ids are not reused");
    }

    #[test]
    fn the_ring_keeps_two_gops_and_starts_at_a_splice_point() {
        let splices = splice_indices(&Bytes::from_static(CLOSED));
        let end = (CLOSED.len() / PACKET_SIZE) as u64;
        let largest = splices
            .iter()
            .chain([&end])
            .collect::<Vec<_>>()
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap() as usize;
        // Room for two of the largest GOPs: each eviction leaves at least
        // one whole GOP and the one in progress.
        let mut stream = buffer(2 * largest * PACKET_SIZE, 4 * largest * PACKET_SIZE);
        for d in datagrams(&Bytes::from_static(CLOSED)) {
            stream.push(d);
            let ring = stream.ring();
            let stats = ring.stats();
            if stats.evicted_packets > 0 {
                assert_eq!(
                    ring.first_index(),
                    ring.splice_points().next().map(|s| s.index)
                );
                assert!(stats.gops >= 2, "{stats:?}");
            }
            assert!(stats.bytes <= 2 * largest * PACKET_SIZE);
        }
        let stats = stream.stats().ring;
        assert!(stats.evicted_gops >= 1, "{stats:?}");
        assert_eq!(stats.evicted_packets, splices[stats.evicted_gops as usize]);
        eprintln!("splice points {splices:?}, largest GOP {largest} packets, {stats:?}");
        assert_eq!(stats.hard_cap_evictions, 0);
        assert!(!stats.starved);
        assert_eq!(stats.last_idr.unwrap().pts, Some(403_200));
    }

    #[test]
    fn a_stream_without_idr_stays_under_the_hard_cap_and_starts_at_recovery_points() {
        let (budget, hard_cap) = (24 * 1024, 48 * 1024);
        let mut stream = buffer(budget, hard_cap);
        let early = stream.attach(QueueLimits::default());
        let grams = datagrams(&Bytes::from_static(INTRA_REFRESH));
        let (mut early_out, mut late_out) = (Vec::new(), Vec::new());
        let mut late = None;
        for (n, d) in grams.iter().enumerate() {
            stream.push(d.clone());
            assert!(stream.ring().bytes() <= hard_cap);
            if n == grams.len() * 7 / 10 {
                let id = stream.attach(QueueLimits::default());
                let start = stream.consumer(id).unwrap().stats().last_start_index;
                let rap = stream
                    .ring()
                    .random_access_points()
                    .find(|r| Some(r.index) == start)
                    .map(|r| r.reason);
                assert_eq!(rap, Some(RandomAccessReason::RecoveryPoint));
                late = Some(id);
            }
            take_all(&mut stream, early, &mut early_out);
            if let Some(late) = late {
                take_all(&mut stream, late, &mut late_out);
            }
        }
        stream.finish();
        let late = late.unwrap();
        take_all(&mut stream, late, &mut late_out);
        take_all(&mut stream, early, &mut early_out);

        let stats = stream.stats();
        assert!(stats.ring.starved);
        assert!(stream.ring().latest_splice_point().is_none());
        assert!(stats.ring.hard_cap_evictions >= 1);
        assert_eq!(stats.ring.last_idr.unwrap().pts, Some(133_200));
        assert_eq!(stats.splice_points_found, 1);
        assert_eq!(stats.random_access_points_found, 3);

        // The early consumer got the one IDR and everything after it.
        assert_clean(&early_out, 100);

        let late_stats = stream.consumer(late).unwrap().stats();
        assert_eq!(late_stats.last_start, Some(StartKind::RandomAccess));
        let report = probe(&late_out);
        assert_eq!(report.cc_errors, 0);
        let video = report.video.as_ref().unwrap();
        assert!(video.idr_pts.is_empty());
        assert!(video.recovery_points >= 1);
        assert_eq!((video.pts_backwards, video.duplicate_pts), (0, 0));
    }

    #[test]
    fn a_stream_without_video_starts_consumers_at_once_on_an_audio_frame() {
        let data = synthetic_audio(300);
        let grams = datagrams(&data);
        let mut stream = StreamBuffer::new(StreamConfig::default()).unwrap();
        let half = grams.len() / 2;
        for d in &grams[..half] {
            stream.push(d.clone());
        }
        assert!(stream.video_pid().is_none());
        assert!(!stream.ring().is_starved(), "the ring has evicted nothing");
        let id = stream.attach(QueueLimits::default());
        let stats = stream.consumer(id).unwrap().stats();
        assert_eq!(stats.last_start, Some(StartKind::RandomAccess));
        let start = stream.ring().latest_random_access_point().unwrap();
        assert_eq!(
            (start.index, start.reason),
            (
                stats.last_start_index.unwrap(),
                RandomAccessReason::AudioPes
            )
        );
        let mut out = Vec::new();
        for d in &grams[half..] {
            stream.push(d.clone());
            take_all(&mut stream, id, &mut out);
        }
        stream.finish();
        take_all(&mut stream, id, &mut out);
        assert_eq!((pid(&out[0]), pid(&out[1])), (0, PMT));
        assert!(pid(&out[2]) == AUDIO && pusi(&out[2]));
        let report = probe(&out);
        assert_eq!(report.cc_errors, 0);
        assert!(report.video.is_none());
        let audio = &report.audio[0];
        assert!(audio.frames >= 140, "{audio:?}");
        assert_eq!((audio.pts_backwards, audio.duplicate_pts), (0, 0));
        assert_whole_audio_frames(&out);
    }

    /// PAT, PMT (H.264 on 0x100), then `frames` PES packets of P slices
    /// only: no IDR, no random access point of any kind.
    fn no_start_points(frames: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut pat_cc, mut pmt_cc, mut video_cc) = (Cc::new(0), Cc::new(0), Cc::new(0));
        let pat = Pat {
            transport_stream_id: 1,
            version: 0,
            entries: vec![PatEntry {
                program_number: 1,
                pid: Pid::new(PMT),
            }],
        }
        .to_section();
        let pmt = Pmt {
            program_number: 1,
            version: 0,
            pcr_pid: Pid::new(VIDEO),
            descriptors: vec![],
            streams: vec![PmtStream {
                stream_type: 0x1B,
                pid: Pid::new(VIDEO),
                descriptors: vec![],
            }],
        }
        .to_section();
        for frame in 0..frames {
            if frame % 10 == 0 {
                out.extend(packetize_section(Pid::PAT, &pat, &mut pat_cc).concat());
                out.extend(packetize_section(Pid::new(PMT), &pmt, &mut pmt_cc).concat());
            }
            let mut pes = vec![0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5];
            pes.extend_from_slice(&write_timestamp(2, Timestamp::new(frame * 3600)));
            pes.extend_from_slice(&[0, 0, 0, 1, 0x09, 0x30, 0, 0, 1, 0x41, 0x9A]);
            pes.resize(500, 0x55);
            let mut rest = &pes[..];
            let mut start = true;
            while !rest.is_empty() {
                let mut b = PacketBuilder::new(Pid::new(VIDEO));
                b.pusi = start;
                b.cc = video_cc;
                video_cc = video_cc.next();
                let mut packet = [0u8; PACKET_SIZE];
                let n = b.build(rest, &mut packet);
                out.extend_from_slice(&packet);
                rest = &rest[n..];
                start = false;
            }
        }
        out
    }

    #[test]
    fn a_stream_without_any_start_point_falls_back_to_pes_starts() {
        let data = Bytes::from(no_start_points(200));
        let mut stream = buffer(30 * PACKET_SIZE, 60 * PACKET_SIZE);
        let half = data.len() / 2 / DATAGRAM * DATAGRAM;
        stream.push(data.slice(..half));
        assert!(stream.ring().is_starved());
        let id = stream.attach(QueueLimits::default());
        assert_eq!(stream.consumer(id).unwrap().phase(), ConsumerPhase::Waiting);
        stream.push(data.slice(half..));
        let mut out = Vec::new();
        take_all(&mut stream, id, &mut out);

        let stats = stream.consumer(id).unwrap().stats();
        assert_eq!(stats.last_start, Some(StartKind::PesStart));
        assert_eq!((pid(&out[0]), pid(&out[1])), (0, PMT));
        assert!(pid(&out[2]) == VIDEO && pusi(&out[2]));
        let report = probe(&out);
        assert_eq!(report.cc_errors, 0);
        let video = report.video.as_ref().unwrap();
        assert!(video.idr_pts.is_empty());
        assert!(video.frames >= 90, "{video:?}");
        assert!(stream.ring().bytes() <= 60 * PACKET_SIZE);
    }

    /// One consumer's schedule in the property test.
    #[derive(Debug, Clone)]
    struct Schedule {
        attach_at: usize,
        capacity_kib: usize,
        /// Bytes taken after each datagram, in units of 47 bytes.
        takes: Vec<u16>,
    }

    fn schedule() -> impl Strategy<Value = Schedule> {
        // Takes average `rate / 2 * 47` bytes a datagram: from a fifth of
        // the stream's pace (1316 bytes a datagram) to half again as fast.
        (0usize..90, 4usize..48, 10u16..80).prop_flat_map(|(attach_at, capacity_kib, rate)| {
            prop::collection::vec(0..rate, 110).prop_map(move |takes| Schedule {
                attach_at,
                capacity_kib,
                takes,
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        /// Whatever pace the consumers take at, each one's output is a valid
        /// stream of whole GOPs: no continuity error, no timestamp going
        /// back or repeating, every GOP complete, and its elementary stream
        /// packets are the source's, in order.
        #[test]
        fn every_consumer_gets_whole_gops_at_any_pace(
            capture in 0..3,
            schedules in prop::collection::vec(schedule(), 1..4),
        ) {
            let (capture, gop) = match capture {
                0 => (Bytes::from_static(CLOSED), 25),
                1 => (Bytes::from_static(HEVC), 25),
                _ => (synthetic(96, 12), 12),
            };
            let input = packets(&capture);
            let splices = splice_indices(&capture);
            let mut stream = StreamBuffer::new(StreamConfig::default()).unwrap();
            let mut ids = vec![None; schedules.len()];
            let mut first_starts = vec![None; schedules.len()];
            let mut outs = vec![Vec::new(); schedules.len()];
            for (n, d) in datagrams(&capture).into_iter().enumerate() {
                stream.push(d);
                for (i, s) in schedules.iter().enumerate() {
                    if s.attach_at == n {
                        ids[i] = Some(stream.attach(QueueLimits {
                            capacity: s.capacity_kib * 1024,
                            hard_limit: 1 << 20,
                        }));
                    }
                    if let Some(id) = ids[i] {
                        let max = usize::from(s.takes[n % s.takes.len()]) * 47;
                        stream.take(id, max, &mut outs[i]).unwrap();
                        if first_starts[i].is_none() {
                            first_starts[i] = stream.consumer(id).unwrap().stats().last_start_index;
                        }
                    }
                }
            }
            stream.finish();
            let es: Vec<Vec<u8>> = input
                .iter()
                .filter(|p| [VIDEO, AUDIO].contains(&pid(p)))
                .map(|p| masked(p))
                .collect();
            for ((id, out), first_start) in ids.iter().zip(&mut outs).zip(&first_starts) {
                let Some(id) = *id else { continue };
                take_all(&mut stream, id, out);
                let stats = stream.consumer(id).unwrap().stats();
                prop_assert_eq!(stats.truncated_gops, 0);
                prop_assert_eq!(stats.queued_bytes, 0);
                // Every GOP from its first start on was either delivered or
                // counted as skipped.
                let gops = first_start.map_or(0, |f| splices.iter().filter(|&&s| s >= f).count());
                let delivered = out
                    .iter()
                    .filter(|p| pid(p) == VIDEO && pusi(p))
                    .filter(|p| input.iter().position(|i| masked(i) == masked(p)).is_some_and(|at| splices.contains(&(at as u64))))
                    .count();
                prop_assert_eq!(delivered + stats.skipped_gops as usize, gops);
                if !out.iter().any(|p| pid(p) == VIDEO) {
                    // Cut again before it got past the inserted PSI.
                    prop_assert!(out.iter().all(|p| [0, PMT].contains(&pid(p))));
                    continue;
                }
                assert_clean(out, gop);
                // The consumer's audio and video packets are a subsequence
                // of the source's (counters aside).
                let mut source = es.iter();
                for p in out.iter().filter(|p| [VIDEO, AUDIO].contains(&pid(p))) {
                    let p = masked(p);
                    prop_assert!(source.any(|s| *s == p), "packet not from the source, or out of order");
                }
            }
        }
    }
}
