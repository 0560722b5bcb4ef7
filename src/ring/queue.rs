//! One consumer's bounded queue: a player, an output, an encoder's stdin.
//!
//! The stream side ([`crate::ring::StreamBuffer`], or the shell directly)
//! pushes every live packet with [`ConsumerQueue::push_live`] and offers
//! every start point found with [`ConsumerQueue::offer`]; the consumer side
//! takes packets out with [`ConsumerQueue::take`]. Pushing never blocks and
//! never fails: a consumer that cannot keep up loses whole GOPs, never the
//! stream its pace.
//!
//! # What a consumer receives
//!
//! A sequence of *segments*. Each begins at a start point (normally an IDR
//! splice point) with the PAT and the program's PMT, then every packet of
//! the stream from that point on, except payload packets of a PID before its
//! first `payload_unit_start_indicator` (the tails of PES packets and
//! sections that began before the start: no decoder can use them).
//!
//! # Overflow: end the GOP cleanly, skip, resume at the next splice point
//!
//! When a packet would take the queue past its `capacity`, the queue is cut
//! at the earliest GOP start (splice point) the consumer has not begun to
//! take: everything queued from there on is dropped, so the consumer's
//! output ends with a whole GOP. PIDs whose PES packet or section was in
//! progress at the cut (audio frames straddle video GOP boundaries) still
//! get the rest of it, up to their next unit start, so no frame is cut
//! short. The consumer then waits, and resumes at the latest splice point
//! after the cut whose GOP so far (from the ring) fits in its queue: the
//! GOP in progress if there is room, else the next one. Cutting at the
//! earliest GOP not begun, not the latest, is what lets a consumer that fell
//! behind catch up with the live stream. Skipped GOPs and dropped packets
//! are counted.
//!
//! When the consumer is in the middle of its only queued GOP there is no
//! clean place to cut: the queue may then grow past `capacity` to finish
//! that GOP, but never past `hard_limit`; at the hard limit it is emptied
//! and the GOP stays truncated (`truncated_gops`).
//!
//! # Continuity counters (ISO/IEC 13818-1 §2.4.3.3)
//!
//! A consumer must see one continuous stream, even across skipped GOPs and
//! the PAT/PMT inserted at each start. Counters are stamped when packets
//! are taken: the inserted PAT/PMT continue the consumer's own counters on
//! those PIDs; after each start, the first packet with payload of every PID
//! fixes a per-PID offset between the source's counters and the consumer's,
//! and every later packet of that PID is shifted by it. A packet whose offset
//! is zero is handed out as the very `Bytes` received (zero copy); others
//! are copied into a shared arena with the counter rewritten. A consumer
//! that starts fresh has no counters yet, so its PAT/PMT are stamped to end
//! just before the source's next PAT/PMT, and its offsets are all zero:
//! only a consumer that skipped ever pays for copies.
//!
//! Hiding the skip from the counters is deliberate: every segment ends and
//! starts on whole GOPs and whole PES packets, so nothing a decoder needs is
//! missing, whereas a counter jump makes receivers discard or conceal the
//! packets around it. The skip still shows where it must, as a forward jump
//! in PTS and PCR. Continuity errors of the source within a segment are
//! passed on as they are.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::gop_ring::GopRing;
use super::header::Header;
use super::start::{ProgramPsi, StartKind, StartPoint};
use crate::ts::{Cc, PACKET_SIZE, Pid};

/// Byte bounds of a [`ConsumerQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueLimits {
    /// Above this the queue skips to the next GOP (see the module docs).
    pub capacity: usize,
    /// Never exceeded, even to finish a GOP. A value below `capacity` is
    /// treated as `capacity`.
    pub hard_limit: usize,
}

impl QueueLimits {
    /// 4 MiB: a new consumer is first filled with the GOP so far, which for
    /// the ring's typical stream (8 Mbit/s, 2 s GOPs: 2 MB) fits twice.
    pub const DEFAULT_CAPACITY: usize = 4 << 20;
    /// 8 MiB: room to finish one more typical GOP past the capacity.
    pub const DEFAULT_HARD_LIMIT: usize = 8 << 20;
}

impl Default for QueueLimits {
    fn default() -> QueueLimits {
        QueueLimits {
            capacity: QueueLimits::DEFAULT_CAPACITY,
            hard_limit: QueueLimits::DEFAULT_HARD_LIMIT,
        }
    }
}

/// Where a consumer is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerPhase {
    /// Receiving the live stream.
    Following,
    /// Cut at a GOP start; finishing the PES packets in progress there.
    Draining,
    /// Waiting for a start point (new, or after a skip).
    Waiting,
}

/// Counters of a [`ConsumerQueue`], for the API and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConsumerStats {
    pub queued_bytes: usize,
    /// Packets and bytes handed out by `take` (inserted PSI included).
    pub delivered_packets: u64,
    pub delivered_bytes: u64,
    /// Live packets the consumer did not get because it was too slow.
    pub dropped_packets: u64,
    pub dropped_bytes: u64,
    /// GOPs (splice points) passed over because the consumer was too slow.
    pub skipped_gops: u64,
    /// GOPs left incomplete because the queue hit its hard limit.
    pub truncated_gops: u64,
    /// Segments started (see the module docs), including any cut again
    /// before the consumer took a packet of them.
    pub starts: u64,
    /// Kind and index of the latest start.
    pub last_start: Option<StartKind>,
    pub last_start_index: Option<u64>,
    /// Payload packets left out at starts because their PES packet or
    /// section began before the start.
    pub trimmed_packets: u64,
    /// Packets copied to rewrite their continuity counter.
    pub restamped_packets: u64,
}

/// Room kept for the PAT and PMT when checking that a start fits.
const PSI_ALLOWANCE: usize = 4 * PACKET_SIZE;
/// Packets per arena allocation for re-stamped copies.
const ARENA_PACKETS: usize = 64;

#[derive(Debug)]
enum Entry {
    Packet { index: u64, packet: Bytes },
    Start(Box<SegmentStart>),
}

/// PSI to insert at a start, rendered when taken (the counters depend on
/// what the consumer has been handed by then).
#[derive(Debug)]
struct SegmentStart {
    index: u64,
    psi: Option<ProgramPsi>,
    /// For a consumer with no counter on the PID yet: the counter of the
    /// source's next packet there, so that the inserted one precedes it.
    pat_next: Option<Cc>,
    pmt_next: Option<Cc>,
    bytes: usize,
}

impl Entry {
    fn index(&self) -> u64 {
        match self {
            Entry::Packet { index, .. } => *index,
            Entry::Start(s) => s.index,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Entry::Packet { .. } => PACKET_SIZE,
            Entry::Start(s) => s.bytes,
        }
    }
}

/// Per-PID counter state of a consumer, in a `u16`: bits 0–3 the counter
/// of the last packet with payload handed out, bits 8–11 the offset added
/// to the source's counter, and these flags.
const OUT_KNOWN: u16 = 0x0010;
const OFFSET_KNOWN: u16 = 0x1000;
const OFFSET_BITS: u16 = 0x0F00;

/// See the module docs.
#[derive(Debug)]
pub struct ConsumerQueue {
    limits: QueueLimits,
    entries: VecDeque<Entry>,
    /// PSI packets rendered by `take` but not yet handed out, and the index
    /// of their start.
    rendered: VecDeque<Bytes>,
    rendered_at: Option<u64>,
    /// Bytes in `entries` and `rendered`.
    bytes: usize,
    phase: ConsumerPhase,
    /// While draining: PIDs still finishing a PES packet or section.
    open: Vec<Pid>,
    /// Resume only at a start point after this index (the last cut).
    resume_after: Option<u64>,
    /// Index of the last source packet handed out.
    last_taken: Option<u64>,
    /// Index of the latest live packet pushed.
    last_live: Option<u64>,
    /// While not following: the first source packet the consumer will not
    /// get (the cut), and the packets after it still queued by draining.
    /// Drops are counted from these when the consumer resumes, so that the
    /// packets it then gets from the ring are not counted as lost.
    gap_from: Option<u64>,
    drained: u64,
    /// Start of the current segment.
    segment_start: Option<u64>,
    /// PIDs of the current segment that had their first unit start, and
    /// its index.
    started: Vec<(Pid, u64)>,
    /// GOP starts queued and not yet begun by the consumer, ascending.
    gop_starts: VecDeque<u64>,
    /// See [`OUT_KNOWN`]; indexed by PID.
    counters: Box<[u16; Pid::COUNT]>,
    arena: BytesMut,
    stats: ConsumerStats,
}

impl ConsumerQueue {
    pub fn new(limits: QueueLimits) -> ConsumerQueue {
        ConsumerQueue {
            limits: QueueLimits {
                capacity: limits.capacity,
                hard_limit: limits.hard_limit.max(limits.capacity),
            },
            entries: VecDeque::new(),
            rendered: VecDeque::new(),
            rendered_at: None,
            bytes: 0,
            phase: ConsumerPhase::Waiting,
            open: Vec::new(),
            resume_after: None,
            last_taken: None,
            last_live: None,
            gap_from: None,
            drained: 0,
            segment_start: None,
            started: Vec::new(),
            gop_starts: VecDeque::new(),
            counters: Box::new([0; Pid::COUNT]),
            arena: BytesMut::new(),
            stats: ConsumerStats::default(),
        }
    }

    pub fn limits(&self) -> QueueLimits {
        self.limits
    }

    pub fn phase(&self) -> ConsumerPhase {
        self.phase
    }

    /// Bytes waiting to be taken.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.rendered.is_empty()
    }

    pub fn stats(&self) -> ConsumerStats {
        let mut stats = self.stats;
        stats.queued_bytes = self.bytes;
        if let (Some(from), Some(live)) = (self.gap_from, self.last_live) {
            let pending = (live + 1).saturating_sub(from).saturating_sub(self.drained);
            stats.dropped_packets += pending;
            stats.dropped_bytes += pending * PACKET_SIZE as u64;
        }
        stats
    }

    // --- stream side -----------------------------------------------------

    /// Starts a waiting consumer at the ring's best start point
    /// ([`GopRing::best_start`]), filling the queue from the ring. Returns
    /// whether it started; if not, it starts at a later [`offer`].
    ///
    /// [`offer`]: ConsumerQueue::offer
    pub fn start_from_ring(&mut self, ring: &GopRing) -> bool {
        self.phase != ConsumerPhase::Following && self.try_start(None, ring)
    }

    /// A start point was just found in the live stream (its packets are
    /// in `ring`, which already holds it if it is a splice or random access
    /// point). A following consumer notes GOP boundaries; a waiting one
    /// starts here, or at the ring's best start, if it may.
    pub fn offer(&mut self, start: &StartPoint, ring: &GopRing) {
        if self.phase == ConsumerPhase::Following {
            self.note_start(start);
            return;
        }
        let started = self.try_start(Some(start), ring);
        if !started && start.kind == StartKind::Idr && self.stats.starts > 0 {
            // Taken back if the consumer starts there after all, once it
            // has room (see `try_start`).
            self.stats.skipped_gops += 1;
        }
    }

    /// The next live packet of the stream, with its demux index.
    pub fn push_live(&mut self, index: u64, packet: &Bytes) {
        self.last_live = Some(index);
        let Some(header) = Header::read(packet) else {
            return;
        };
        match self.phase {
            ConsumerPhase::Following => self.follow(index, packet, header),
            ConsumerPhase::Draining => self.drain(index, packet, header),
            ConsumerPhase::Waiting => {}
        }
    }

    fn note_start(&mut self, start: &StartPoint) {
        if self.segment_start == Some(start.index) {
            // A PES start that turned out to be an IDR, say.
            if self
                .stats
                .last_start
                .is_none_or(|k| rank(start.kind) < rank(k))
            {
                self.stats.last_start = Some(start.kind);
            }
            return;
        }
        let later = |i: Option<u64>| i.is_none_or(|i| start.index > i);
        if start.kind == StartKind::Idr
            && later(self.segment_start)
            && later(self.last_taken)
            && later(self.gop_starts.back().copied())
        {
            self.gop_starts.push_back(start.index);
        }
    }

    /// Starts a waiting consumer at `start` (a start point of `ring`) if
    /// the packets from there fit its capacity. For a consumer that must
    /// begin at a given frame, e.g. an encoder replacing one that failed
    /// mid-GOP (issue 4: the splice point at or before the first frame
    /// not yet output).
    pub fn start_from_point(&mut self, start: &StartPoint, ring: &GopRing) -> bool {
        if self.phase == ConsumerPhase::Following || !ring.contains(start.index) {
            return false;
        }
        let psi_bytes = start.psi.as_ref().map_or(0, |psi| {
            let (pat, pmt) = psi.packet_counts();
            (pat + pmt) * PACKET_SIZE
        });
        let backlog = ring.backlog_bytes(start.index).unwrap_or(usize::MAX);
        if self.bytes.saturating_add(psi_bytes).saturating_add(backlog) > self.limits.capacity {
            return false;
        }
        self.start_at(start, ring);
        true
    }

    fn try_start(&mut self, event: Option<&StartPoint>, ring: &GopRing) -> bool {
        let after = self.resume_after.max(self.last_taken);
        let room = self
            .limits
            .capacity
            .saturating_sub(self.bytes + PSI_ALLOWANCE);
        let start = ring.best_start(after, room).or_else(|| {
            event
                .filter(|e| e.kind == StartKind::PesStart && ring.accepts(e, after, room))
                .cloned()
        });
        let Some(start) = start else {
            return false;
        };
        let psi_bytes = start.psi.as_ref().map_or(0, |psi| {
            let (pat, pmt) = psi.packet_counts();
            (pat + pmt) * PACKET_SIZE
        });
        let backlog = ring.backlog_bytes(start.index).unwrap_or(usize::MAX);
        if self.bytes.saturating_add(psi_bytes).saturating_add(backlog) > self.limits.capacity {
            // A PMT too long for the allowance: wait for more room.
            return false;
        }
        // A splice point found before this offer, after the consumer's last
        // cut, was counted as skipped: at the cut, or when it was offered
        // and there was no room yet.
        if start.kind == StartKind::Idr
            && self.stats.starts > 0
            && event.is_none_or(|e| e.index != start.index)
        {
            self.stats.skipped_gops = self.stats.skipped_gops.saturating_sub(1);
        }
        self.start_at(&start, ring);
        true
    }

    fn start_at(&mut self, start: &StartPoint, ring: &GopRing) {
        // Packets still draining from before that the new segment repeats.
        let at = self.entries.partition_point(|e| e.index() < start.index);
        let repeated: Vec<Entry> = self.entries.drain(at..).collect();
        for entry in &repeated {
            self.bytes -= entry.bytes();
            if let Entry::Packet { .. } = entry {
                self.drained = self.drained.saturating_sub(1);
            }
        }
        if let Some(from) = self.gap_from.take() {
            let lost = start
                .index
                .saturating_sub(from)
                .saturating_sub(self.drained);
            self.count_dropped(lost);
        }
        self.drained = 0;
        self.open.clear();
        self.phase = ConsumerPhase::Following;
        self.started.clear();
        self.segment_start = Some(start.index);
        self.gop_starts.clear();
        self.gop_starts.push_back(start.index);
        self.gop_starts.extend(
            ring.splice_points()
                .map(|s| s.index)
                .filter(|&i| i > start.index),
        );
        let (pat_next, pmt_next, bytes) = match &start.psi {
            Some(psi) => {
                let (pat, pmt) = psi.packet_counts();
                (
                    ring.next_cc_from(Pid::PAT, start.index),
                    ring.next_cc_from(psi.pmt_pid, start.index),
                    (pat + pmt) * PACKET_SIZE,
                )
            }
            None => (None, None, 0),
        };
        self.entries.push_back(Entry::Start(Box::new(SegmentStart {
            index: start.index,
            psi: start.psi.clone(),
            pat_next,
            pmt_next,
            bytes,
        })));
        self.bytes += bytes;
        self.stats.starts += 1;
        self.stats.last_start = Some(start.kind);
        self.stats.last_start_index = Some(start.index);
        for (index, packet) in ring.packets_from(start.index) {
            self.push_live(index, packet);
        }
    }

    fn follow(&mut self, index: u64, packet: &Bytes, header: Header) {
        if header.counts()
            && header.has_payload
            && !self.started.iter().any(|(pid, _)| *pid == header.pid)
        {
            if !header.payload_unit_start {
                self.stats.trimmed_packets += 1;
                return;
            }
            self.started.push((header.pid, index));
        }
        if self.bytes + PACKET_SIZE > self.limits.capacity {
            if let Some(cut) = self.earliest_untaken_gop() {
                self.cut(cut);
                return self.drain(index, packet, header);
            }
            if self.bytes + PACKET_SIZE > self.limits.hard_limit {
                return self.truncate(index);
            }
        }
        self.enqueue(index, packet);
    }

    fn drain(&mut self, index: u64, packet: &Bytes, header: Header) {
        if self.phase == ConsumerPhase::Draining
            && let Some(at) = self.open.iter().position(|pid| *pid == header.pid)
        {
            if header.has_payload && header.payload_unit_start {
                self.open.swap_remove(at);
            } else if self.bytes + PACKET_SIZE <= self.limits.hard_limit {
                self.drained += 1;
                return self.enqueue(index, packet);
            } else {
                self.open.clear();
            }
            if self.open.is_empty() {
                self.phase = ConsumerPhase::Waiting;
            }
        }
    }

    fn earliest_untaken_gop(&self) -> Option<u64> {
        self.gop_starts
            .iter()
            .copied()
            .find(|&g| self.last_taken.is_none_or(|t| g > t))
    }

    /// Drops everything queued from GOP start `at` on, keeping the tails of
    /// PES packets in progress there; see the module docs.
    fn cut(&mut self, at: u64) {
        let keep = self.entries.partition_point(|e| e.index() < at);
        let removed = self.entries.split_off(keep);
        for entry in &removed {
            self.bytes -= entry.bytes();
        }
        if self.rendered_at.is_some_and(|r| r >= at) {
            self.drop_rendered();
        }
        let skipped = self.gop_starts.iter().filter(|&&g| g >= at).count();
        self.stats.skipped_gops += skipped as u64;
        self.gop_starts.retain(|&g| g < at);
        self.open = self
            .started
            .iter()
            .filter(|(_, first)| *first < at)
            .map(|(pid, _)| *pid)
            .collect();
        self.phase = if self.open.is_empty() {
            ConsumerPhase::Waiting
        } else {
            ConsumerPhase::Draining
        };
        self.resume_after = Some(at);
        self.gap_from = Some(at);
        self.drained = 0;
        for entry in removed {
            if let Entry::Packet { index, packet } = entry
                && let Some(header) = Header::read(&packet)
            {
                self.drain(index, &packet, header);
            }
        }
    }

    /// Empties the queue at the hard limit, mid-GOP; `index` is the packet
    /// that did not fit.
    fn truncate(&mut self, index: u64) {
        let first_lost = self
            .entries
            .iter()
            .find_map(|e| match e {
                Entry::Packet { index, .. } => Some(*index),
                Entry::Start(_) => None,
            })
            .unwrap_or(index);
        self.entries.clear();
        self.bytes = 0;
        self.rendered.clear();
        self.rendered_at = None;
        self.gap_from = Some(first_lost);
        self.drained = 0;
        let skipped = self
            .gop_starts
            .iter()
            .filter(|&&g| self.last_taken.is_none_or(|t| g > t))
            .count();
        self.stats.skipped_gops += skipped as u64;
        self.gop_starts.clear();
        self.stats.truncated_gops += 1;
        self.open.clear();
        self.phase = ConsumerPhase::Waiting;
        self.resume_after = Some(index);
    }

    fn drop_rendered(&mut self) {
        self.bytes -= self.rendered.len() * PACKET_SIZE;
        self.rendered.clear();
        self.rendered_at = None;
    }

    fn enqueue(&mut self, index: u64, packet: &Bytes) {
        self.entries.push_back(Entry::Packet {
            index,
            packet: packet.clone(),
        });
        self.bytes += PACKET_SIZE;
    }

    fn count_dropped(&mut self, packets: u64) {
        self.stats.dropped_packets += packets;
        self.stats.dropped_bytes += packets * PACKET_SIZE as u64;
    }

    // --- consumer side ---------------------------------------------------

    /// Moves up to `max_bytes` (whole packets) into `out`, oldest first,
    /// with continuity counters stamped as the module docs say. Returns the
    /// bytes moved.
    pub fn take(&mut self, max_bytes: usize, out: &mut Vec<Bytes>) -> usize {
        let mut taken = 0;
        while taken + PACKET_SIZE <= max_bytes {
            if let Some(packet) = self.rendered.pop_front() {
                self.bytes -= PACKET_SIZE;
                if self.rendered.is_empty() {
                    self.rendered_at = None;
                }
                if let Some(header) = Header::read(&packet) {
                    self.set_out(header.pid, header.cc);
                }
                self.hand_out(packet, out);
                taken += PACKET_SIZE;
                continue;
            }
            let Some(entry) = self.entries.pop_front() else {
                break;
            };
            match entry {
                Entry::Start(start) => self.render(&start),
                Entry::Packet { index, packet } => {
                    self.bytes -= PACKET_SIZE;
                    self.last_taken = Some(index);
                    let packet = self.restamp(packet);
                    self.hand_out(packet, out);
                    taken += PACKET_SIZE;
                }
            }
        }
        while let (Some(&g), Some(t)) = (self.gop_starts.front(), self.last_taken)
            && g <= t
        {
            self.gop_starts.pop_front();
        }
        taken
    }

    /// A segment starts: counters re-align, and its PSI is stamped to
    /// continue the consumer's counters (or to precede the source's next
    /// packets, on a PID the consumer has not had yet).
    fn render(&mut self, start: &SegmentStart) {
        self.bytes -= start.bytes;
        for state in self.counters.iter_mut() {
            *state &= !(OFFSET_KNOWN | OFFSET_BITS);
        }
        let Some(psi) = &start.psi else {
            return;
        };
        let (pat_count, pmt_count) = psi.packet_counts();
        let first = |out: Option<Cc>, next: Option<Cc>, count: usize| match out {
            Some(out) => out.next(),
            None => Cc::new(next.map_or(0, |n| n.value()).wrapping_sub(count as u8)),
        };
        let mut pat_cc = first(self.out_counter(Pid::PAT), start.pat_next, pat_count);
        let mut pmt_cc = first(self.out_counter(psi.pmt_pid), start.pmt_next, pmt_count);
        for packet in psi.packets(&mut pat_cc, &mut pmt_cc) {
            self.rendered.push_back(Bytes::copy_from_slice(&packet));
            self.bytes += PACKET_SIZE;
        }
        self.rendered_at = Some(start.index);
    }

    fn out_counter(&self, pid: Pid) -> Option<Cc> {
        let state = *self.counters.get(pid.index())?;
        (state & OUT_KNOWN != 0).then(|| Cc::new(state as u8))
    }

    fn set_out(&mut self, pid: Pid, cc: Cc) {
        if let Some(state) = self.counters.get_mut(pid.index()) {
            *state = (*state & !0x001F) | OUT_KNOWN | u16::from(cc.value());
        }
    }

    /// Shifts a source packet's counter by its PID's offset (fixing the
    /// offset at the PID's first packet with payload after a start) and
    /// records it as handed out. Only packets with payload count (§2.4.3.3:
    /// an adaptation-field-only packet repeats the counter, and receivers
    /// do not check it), so they neither fix the offset nor move the
    /// consumer's counter.
    fn restamp(&mut self, packet: Bytes) -> Bytes {
        let Some(header) = Header::read(&packet).filter(Header::counts) else {
            return packet;
        };
        let Some(state) = self.counters.get_mut(header.pid.index()) else {
            return packet;
        };
        let native = header.cc.value();
        let offset = if *state & OFFSET_KNOWN != 0 {
            ((*state & OFFSET_BITS) >> 8) as u8
        } else if !header.has_payload {
            return packet;
        } else {
            let offset = if *state & OUT_KNOWN == 0 {
                0
            } else {
                Cc::new(*state as u8).next().value().wrapping_sub(native) & 0x0F
            };
            *state = (*state & !OFFSET_BITS) | OFFSET_KNOWN | u16::from(offset) << 8;
            offset
        };
        let cc = Cc::new(native.wrapping_add(offset));
        if header.has_payload {
            *state = (*state & !0x001F) | OUT_KNOWN | u16::from(cc.value());
        }
        if offset == 0 {
            return packet;
        }
        self.stats.restamped_packets += 1;
        if self.arena.capacity() < PACKET_SIZE {
            self.arena = BytesMut::with_capacity(ARENA_PACKETS * PACKET_SIZE);
        }
        self.arena.extend_from_slice(&packet);
        let mut copy = self.arena.split();
        if let Some(b3) = copy.get_mut(3) {
            *b3 = (*b3 & 0xF0) | cc.value();
        }
        copy.freeze()
    }

    fn hand_out(&mut self, packet: Bytes, out: &mut Vec<Bytes>) {
        self.stats.delivered_packets += 1;
        self.stats.delivered_bytes += packet.len() as u64;
        out.push(packet);
    }
}

/// Lower is stronger.
fn rank(kind: StartKind) -> u8 {
    match kind {
        StartKind::Idr => 0,
        StartKind::RandomAccess => 1,
        StartKind::PesStart => 2,
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ring::stream::{ConsumerId, StreamBuffer, StreamConfig};
    use crate::ring::testing::*;
    use crate::ts::TsPacket;
    use crate::ts::continuity::{CcTracker, Continuity};

    /// 96 frames, an IDR every 12: 8 GOPs of about 80 packets (15 KB).
    const GOP: u64 = 12;

    /// Runs the synthetic stream through a buffer with one consumer, which
    /// takes `take(n)` bytes after datagram `n` (all that is left at the end).
    fn run(
        limits: QueueLimits,
        mut take: impl FnMut(usize) -> usize,
    ) -> (Vec<Bytes>, ConsumerStats, Vec<Bytes>, usize) {
        let input = synthetic(96, GOP);
        let mut stream = StreamBuffer::new(StreamConfig::default()).unwrap();
        let id: ConsumerId = stream.attach(limits);
        let mut out = Vec::new();
        let mut peak = 0;
        for (n, d) in datagrams(&input).into_iter().enumerate() {
            stream.push(d);
            peak = peak.max(stream.consumer(id).unwrap().bytes());
            stream.take(id, take(n), &mut out).unwrap();
        }
        stream.finish();
        stream.take(id, usize::MAX, &mut out).unwrap();
        let stats = stream.consumer(id).unwrap().stats();
        (out, stats, packets(&input), peak)
    }

    fn position(out: &[Bytes], packet: &[u8]) -> usize {
        let masked = |p: &[u8]| [&p[..3], &[p[3] & 0xF0], &p[4..]].concat();
        out.iter()
            .position(|p| masked(p) == masked(packet))
            .unwrap()
    }

    #[test]
    fn psi_at_a_resume_continues_the_consumers_counters() {
        let (out, stats, input, _) = run(
            QueueLimits {
                capacity: 20 * 1024,
                hard_limit: 1 << 20,
            },
            |n| if (20..45).contains(&n) { 0 } else { usize::MAX },
        );
        assert_eq!(stats.starts, 2, "{stats:?}");
        assert!(stats.skipped_gops >= 1);
        // The second start: PAT, PMT, then its IDR, and the PAT's counter
        // follows the last PAT the consumer had.
        let idr = position(&out, &input[stats.last_start_index.unwrap() as usize]);
        let (pat, pmt) = (&out[idr - 2], &out[idr - 1]);
        assert_eq!((pid(pat), pid(pmt)), (0, PMT));
        let cc = |p: &Bytes| p[3] & 0x0F;
        let previous_pat = out[..idr - 2].iter().rev().find(|p| pid(p) == 0).unwrap();
        assert_eq!(cc(pat), (cc(previous_pat) + 1) & 0x0F);
        let previous_pmt = out[..idr - 2].iter().rev().find(|p| pid(p) == PMT).unwrap();
        assert_eq!(cc(pmt), (cc(previous_pmt) + 1) & 0x0F);
        // And every PID of the whole output counts on without a break.
        let mut tracker = CcTracker::new();
        for p in &out {
            let result = tracker.check(&TsPacket::new(p).unwrap());
            assert!(
                matches!(result, Continuity::InOrder | Continuity::Unchecked),
                "PID {:#x}: {result:?}",
                pid(p)
            );
        }
        assert_clean(&out, GOP);
    }

    #[test]
    fn an_overflow_drops_every_gop_not_yet_begun_to_catch_up() {
        // Room for about four GOPs; the consumer begins the first, stalls
        // until the queue is full, then keeps up.
        let (out, stats, _, _) = run(
            QueueLimits {
                capacity: 60 * 1024,
                hard_limit: 1 << 20,
            },
            |n| match n {
                0..=4 => 10 * PACKET_SIZE,
                5..=55 => 0,
                _ => usize::MAX,
            },
        );
        let report = assert_clean(&out, GOP);
        let idrs = &report.video.as_ref().unwrap().idr_pts;
        // The whole first GOP, then nothing until a GOP after the overflow.
        assert!(idrs[1] - idrs[0] > 3 * GOP * 3600, "{idrs:?}");
        assert!(stats.skipped_gops >= 3, "{stats:?} {idrs:?}");
        assert_eq!(
            stats.skipped_gops as usize + idrs.len(),
            8,
            "{stats:?} {idrs:?}"
        );
    }

    #[test]
    fn a_gop_begun_is_finished_past_the_capacity_then_the_next_is_skipped() {
        let capacity = 8 * 1024;
        let (out, stats, _, peak) = run(
            QueueLimits {
                capacity,
                hard_limit: 1 << 20,
            },
            |n| match n {
                0..=2 => 10 * PACKET_SIZE,
                3..=30 => 0,
                _ => usize::MAX,
            },
        );
        assert!(peak > capacity, "the GOP in progress was finished");
        assert_eq!(stats.truncated_gops, 0);
        assert!(stats.skipped_gops >= 1);
        let report = assert_clean(&out, GOP);
        assert_eq!(report.video.as_ref().unwrap().gop_frames[0], GOP);
    }

    #[test]
    fn the_hard_limit_truncates_a_gop_and_the_consumer_resumes_on_the_next() {
        let hard_limit = 8 * 1024;
        let (out, stats, _, peak) = run(
            QueueLimits {
                capacity: 4 * 1024,
                hard_limit,
            },
            |n| match n {
                0..=2 => 10 * PACKET_SIZE,
                3..=30 => 0,
                _ => usize::MAX,
            },
        );
        assert!(peak <= hard_limit);
        assert_eq!(stats.truncated_gops, 1, "{stats:?}");
        // Starts while it still stalls are cut again before it takes any.
        assert!(stats.starts >= 2);
        let report = probe(&out);
        let gops = &report.video.as_ref().unwrap().gop_frames;
        assert!(gops[0] < GOP, "{gops:?}");
        assert!(gops[1..].iter().all(|&n| n == GOP), "{gops:?}");
        assert_eq!(report.cc_errors, 0);
    }

    #[test]
    fn take_hands_out_whole_packets_up_to_the_limit() {
        let input = synthetic(48, GOP);
        let mut stream = StreamBuffer::new(StreamConfig::default()).unwrap();
        let grams = datagrams(&input);
        for d in &grams[..30] {
            stream.push(d.clone());
        }
        let id = stream.attach(QueueLimits::default());
        let queued = stream.consumer(id).unwrap().bytes();
        assert!(queued > 0);
        let mut out = Vec::new();
        assert_eq!(stream.take(id, PACKET_SIZE - 1, &mut out), Some(0));
        // One packet at a time, through the inserted PAT and PMT.
        for _ in 0..3 {
            assert_eq!(
                stream.take(id, PACKET_SIZE + 100, &mut out),
                Some(PACKET_SIZE)
            );
        }
        assert_eq!(
            out.iter().map(|p| pid(p)).collect::<Vec<_>>(),
            [0, PMT, VIDEO]
        );
        let rest = stream.take(id, usize::MAX, &mut out).unwrap();
        assert_eq!(rest + 3 * PACKET_SIZE, queued);
        assert!(stream.consumer(id).unwrap().is_empty());
        for d in &grams[30..] {
            stream.push(d.clone());
        }
        stream.take(id, usize::MAX, &mut out).unwrap();
        assert_clean(&out, GOP);
    }
}
