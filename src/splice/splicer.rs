//! [`Splicer`]: see the module docs of [`crate::splice`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::layout::{Kind, Layout, Routes};
use super::source::Source;
use super::{SourceId, SourceStats, SpliceEvent, SpliceSettings, SpliceStats, Timeline};
use crate::ts::continuity::Continuity;
use crate::ts::gop::SplicePoint;
use crate::ts::pes::{PesHeader, write_timestamp};
use crate::ts::psi::Pmt;
use crate::ts::{Cc, PACKET_SIZE, Pcr, Pid, Timestamp, TsPacket};

/// Output state of one PID of the layout.
#[derive(Debug, Clone, Copy)]
struct OutStream {
    kind: Kind,
    /// The counter the next packet with payload gets.
    cc: Cc,
    /// A PES start has been sent since the last switch: continuation
    /// packets before it belong to a PES whose start the output lacks.
    synced: bool,
    /// The current PES is being dropped (audio cut, unpatchable header).
    dropping: bool,
    /// Audio after a switch: PES packets that start before the end of the
    /// last one sent are dropped until one does not.
    audio_cut: bool,
    last_pts: Option<Timestamp>,
    /// The PTS step between this stream's last two PES packets of one
    /// source: the duration of a PES, so the end of the last one sent is
    /// `last_pts + pes_ticks`. Encoders put several audio frames in a PES
    /// (ffmpeg's default `pes_payload_size`: ~8 AAC frames, 170 ms), so
    /// the PES start alone says little about where its audio ends.
    pes_ticks: Option<i64>,
    /// The last PES sent came from the active source (not the one before
    /// a switch): the next PTS step is a duration.
    same_source: bool,
}

/// Everything about the output, apart from the sources.
#[derive(Debug, Default)]
struct Output {
    layout: Option<Layout>,
    streams: Vec<OutStream>,
    /// Decode time of the last video PES sent, and the largest video PTS.
    last_dts: Option<Timestamp>,
    max_pts: Option<Timestamp>,
    last_pcr: Option<Pcr>,
    /// The first PCR after a switch is checked against `last_pcr`.
    pcr_check: bool,
    last_emit: Option<Instant>,
    /// Rewritten packets are cut from this buffer, so a copy costs no
    /// allocation of its own (one per [`ARENA_PACKETS`]).
    arena: BytesMut,
    stats: SpliceStats,
}

/// Packets per arena allocation: 24 KiB.
const ARENA_PACKETS: usize = 128;

/// See the module docs of [`crate::splice`].
#[derive(Debug)]
pub struct Splicer {
    settings: SpliceSettings,
    sources: Vec<(SourceId, Source)>,
    active: Option<SourceId>,
    pending: Option<SourceId>,
    /// A splice point of the pending source that waits for the active
    /// source's frame in progress to end, and since when.
    deferred: Option<(SplicePoint, Instant)>,
    /// The active source sent packets of a frame that started before the
    /// switch was requested.
    active_mid_frame: bool,
    /// Gate the active source even with no switch pending.
    frame_hold: bool,
    output: Output,
    events: VecDeque<SpliceEvent>,
}

impl Splicer {
    pub fn new(settings: SpliceSettings) -> Splicer {
        Splicer {
            settings,
            sources: Vec::new(),
            active: None,
            pending: None,
            deferred: None,
            active_mid_frame: false,
            frame_hold: false,
            output: Output::default(),
            events: VecDeque::new(),
        }
    }

    /// The source the output carries.
    pub fn active(&self) -> Option<SourceId> {
        self.active
    }

    /// The source a switch was requested to, until its splice point.
    pub fn pending(&self) -> Option<SourceId> {
        self.pending
    }

    pub fn stats(&self) -> SpliceStats {
        self.output.stats
    }

    /// A source's counters, if it has pushed packets or been switched to.
    pub fn source_stats(&self, source: SourceId) -> Option<SourceStats> {
        let src = self.source(source)?;
        let demux = src.demux.stats();
        Some(SourceStats {
            packets: demux.packets,
            cc_errors: demux.cc_errors,
            splice_points: src.tap.splice_points,
            frame_ticks: src.tap.frame_ticks,
        })
    }

    /// Holds the active source's video frame in progress (and what is
    /// muxed with it) until its next frame starts, even with no switch
    /// pending, so that a source that dies mid-frame never leaves half a
    /// frame in the output when another takes over. Costs one frame of
    /// latency; worth it when a failover source exists. Off by default.
    pub fn set_frame_hold(&mut self, on: bool) {
        self.frame_hold = on;
    }

    /// The latest video PTS sent (in presentation order), if any.
    pub fn last_video_pts(&self) -> Option<Timestamp> {
        self.output.max_pts
    }

    /// The active source's frame duration in 90 kHz ticks (or the
    /// configured default until it is known).
    pub fn frame_ticks(&self) -> u64 {
        self.active
            .and_then(|a| self.source(a))
            .and_then(|s| s.tap.frame_ticks)
            .unwrap_or(self.settings.default_frame_ticks)
    }

    pub fn poll_event(&mut self) -> Option<SpliceEvent> {
        self.events.pop_front()
    }

    /// Asks for the output to carry `source` from its next splice point on.
    /// Asking for the active source cancels a pending switch.
    pub fn switch_to(&mut self, now: Instant, source: SourceId) {
        let _ = now;
        if self.active == Some(source) {
            self.cancel_pending();
            return;
        }
        if self.pending == Some(source) {
            return;
        }
        self.cancel_pending();
        let pos = self.position_or_insert(source);
        if let Some((_, src)) = self.sources.get_mut(pos) {
            src.hold.take();
        }
        self.pending = Some(source);
        self.active_mid_frame = false;
    }

    /// Forgets a source. Removing the active source stops the output
    /// until a pending source reaches its splice point; removing the
    /// pending one cancels the switch.
    pub fn remove_source(&mut self, source: SourceId) {
        if self.pending == Some(source) {
            self.cancel_pending();
        }
        if self.active == Some(source) {
            self.active = None;
            self.deferred = None;
        }
        self.sources.retain(|(id, _)| *id != source);
    }

    /// Feeds one 188-byte packet of `source`; what the output gets from it
    /// (nothing, it, a rewritten copy, PSI, held packets at a switch) is
    /// appended to `out`.
    pub fn push(&mut self, now: Instant, source: SourceId, packet: Bytes, out: &mut Vec<Bytes>) {
        self.output.stats.packets_in += 1;
        let is_active = self.active == Some(source);
        let is_pending = self.pending == Some(source);
        let pos = self.position_or_insert(source);
        let Some((_, src)) = self.sources.get_mut(pos) else {
            return;
        };
        src.last_packet = Some(now);
        let Some(bytes) = packet
            .first_chunk::<PACKET_SIZE>()
            .filter(|_| packet.len() == PACKET_SIZE)
        else {
            self.output.stats.malformed += 1;
            return;
        };
        let index = src.demux.next_index();
        src.demux.push_packet(bytes, &mut src.tap);
        let Ok(p) = TsPacket::from_array(bytes) else {
            self.output.stats.malformed += 1;
            return;
        };
        if p.transport_error() {
            self.output.stats.malformed += 1;
            return;
        }
        let continuity = src.cc.check(&p);
        if continuity == Continuity::Duplicate {
            self.output.stats.duplicates_dropped += 1;
            return;
        }
        let video_pid = src.tap.indexer.video_pid();
        let video_pusi = p.payload_unit_start() && video_pid == Some(p.pid());
        if is_active && continuity.is_error() {
            // Packets of this PID were lost: the PES under way is broken
            // and is not sent (the rest of it is dropped up to the next
            // PES start); a video frame held in the gate goes too.
            if let Some(route) = src.routes.as_ref().and_then(|r| r.get(p.pid().index())) {
                self.output.loss(route.slot);
            }
            if video_pid == Some(p.pid()) {
                src.hold.take();
                src.gate_aligned = false;
            }
        }
        if is_active {
            self.push_active(now, source, index, packet, video_pusi, out);
        } else if is_pending {
            self.push_pending(now, source, index, packet, video_pusi, out);
        } else {
            while src.tap.indexer.poll().is_some() {
                src.tap.splice_points += 1;
            }
            self.output.stats.inactive_packets += 1;
        }
    }

    fn push_active(
        &mut self,
        now: Instant,
        id: SourceId,
        index: u64,
        packet: Bytes,
        video_pusi: bool,
        out: &mut Vec<Bytes>,
    ) {
        let limit = self.settings.hold_limit;
        let gating = self.pending.is_some() || self.frame_hold;
        let Some(pos) = self.position(id) else {
            return;
        };
        let Some((_, src)) = self.sources.get_mut(pos) else {
            return;
        };
        while src.tap.indexer.poll().is_some() {
            src.tap.splice_points += 1;
        }
        if src.tap.psi_changed {
            src.tap.psi_changed = false;
            if let (Some(layout), Some((pmt_pid, pmt))) = (&self.output.layout, src.pmt()) {
                let (routes, dropped) = layout.routes(pmt_pid, pmt);
                src.routes = Some(routes);
                src.pmt_pid = Some(pmt_pid);
                self.output.stats.extra_streams_dropped += dropped;
            }
        }
        let Some(routes) = src.routes.as_ref() else {
            return;
        };
        let offset = src.offset;
        if !gating {
            // A switch was cancelled: what the gate holds goes out first.
            for (_, held) in src.hold.take() {
                self.output.emit(now, routes, offset, held, out);
            }
            // Packets now go straight out: the gate, when it is next
            // used, starts at the next video PES start.
            src.gate_aligned = false;
            self.output.emit(now, routes, offset, packet, out);
            return;
        }
        if video_pusi {
            // The frame in progress is complete: release it.
            for (_, held) in src.hold.take() {
                self.output.emit(now, routes, offset, held, out);
            }
            src.gate_aligned = true;
            src.hold.push(index, packet, limit);
            if let Some((point, _)) = self.deferred.take() {
                self.splice(now, point, out);
            }
            return;
        }
        if src.gate_aligned {
            for (_, evicted) in src.hold.push(index, packet, limit) {
                self.output.stats.hold_overflows += 1;
                self.output.emit(now, routes, offset, evicted, out);
            }
        } else {
            self.active_mid_frame = true;
            self.output.emit(now, routes, offset, packet, out);
        }
    }

    fn push_pending(
        &mut self,
        now: Instant,
        id: SourceId,
        index: u64,
        packet: Bytes,
        video_pusi: bool,
        out: &mut Vec<Bytes>,
    ) {
        let limit = self.settings.hold_limit;
        let defer_limit = self.settings.defer_limit;
        let Some(src) = find_mut(&mut self.sources, id) else {
            return;
        };
        if src.tap.indexer.video_pid().is_none() {
            // No program with video yet: no splice point can come before
            // one, so nothing is worth holding.
            while src.tap.indexer.poll().is_some() {}
            self.output.stats.inactive_packets += 1;
            return;
        }
        let evicted = src.hold.push(index, packet, limit);
        let lost_up_to = evicted.last().map(|(i, _)| *i);
        self.output.stats.hold_overflows += evicted.len() as u64;
        let mut points = Vec::new();
        while let Some(point) = src.tap.indexer.poll() {
            src.tap.splice_points += 1;
            points.push(point);
        }
        let first_held = src.hold.first_index();
        if let Some((point, since)) = self.deferred.take() {
            if lost_up_to.is_some_and(|i| i >= point.index) {
                self.output.stats.splice_points_skipped += 1;
            } else if now.duration_since(since) >= defer_limit || !self.active_alive() {
                self.splice(now, point, out);
                return;
            } else {
                self.deferred = Some((point, since));
                return;
            }
        }
        for point in points {
            if first_held.is_none_or(|first| point.index < first) {
                self.output.stats.splice_points_skipped += 1;
                continue;
            }
            if self.active_alive() && self.active_mid_frame {
                self.deferred = Some((point, now));
                return;
            }
            if self.splice(now, point, out) {
                return;
            }
        }
        if video_pusi && let Some(src) = self.source_mut(id) {
            src.hold.trim_before(index);
        }
    }

    /// Whether there is an active source that is still there.
    fn active_alive(&self) -> bool {
        self.active.is_some_and(|a| self.position(a).is_some())
    }

    /// Switches the output to the pending source at `point`; false when the
    /// point cannot be used (the switch stays pending).
    fn splice(&mut self, now: Instant, point: SplicePoint, out: &mut Vec<Bytes>) -> bool {
        let Some(to) = self.pending else {
            return false;
        };
        let Some(plan) = self.plan(now, &point) else {
            self.output.stats.splice_points_skipped += 1;
            return false;
        };
        if self.output.layout.is_none() {
            match Layout::from_point(&point) {
                Ok(layout) => self.output.set_layout(layout),
                Err(_) => {
                    self.output.stats.splice_points_skipped += 1;
                    return false;
                }
            }
        }
        let Ok(pmt) = Pmt::parse(&point.pmt) else {
            self.output.stats.splice_points_skipped += 1;
            return false;
        };
        let Some(layout) = self.output.layout.as_ref() else {
            return false;
        };
        let (routes, dropped) = layout.routes(point.pmt_pid, &pmt);
        if routes
            .get(pmt.pcr_pid.index())
            .is_some_and(|r| r.out != layout.pcr_pid)
        {
            self.output.stats.pcr_pid_mismatches += 1;
        }
        self.output.stats.extra_streams_dropped += dropped;

        // The old source: its gate holds the frame in progress, which is
        // dropped, but packets that complete an audio (or other) PES
        // already under way in the output still go out.
        let from = self.active.take();
        if let Some(old) = from.and_then(|f| find_mut(&mut self.sources, f)) {
            old.gate_aligned = false;
            let gate = old.hold.take();
            if let Some(routes) = old.routes.as_ref() {
                let offset = old.offset;
                self.output.finish_gate(now, routes, offset, gate, out);
            }
        }
        let gap = self
            .output
            .last_emit
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.output.begin(now, out);

        let dropped_before = self.output.stats.audio_pes_dropped;
        let Some(src) = self.source_mut(to) else {
            return false;
        };
        src.routes = Some(routes);
        src.pmt_pid = Some(point.pmt_pid);
        src.tap.psi_changed = false;
        src.offset = plan.offset;
        src.gate_aligned = false;
        let held = src.hold.take();
        if let Some((_, src)) = self.sources.iter().find(|(id, _)| *id == to)
            && let Some(routes) = src.routes.as_ref()
        {
            for (index, packet) in held {
                if index >= point.index {
                    self.output.emit(now, routes, plan.offset, packet, out);
                }
            }
        }
        self.active = Some(to);
        self.pending = None;
        self.deferred = None;
        self.active_mid_frame = false;
        self.output.stats.switches += 1;
        self.events.push_back(SpliceEvent::Switched {
            from,
            to,
            gap: if from.is_some() { gap } else { Duration::ZERO },
            pts_gap: plan.pts_gap,
            offset: plan.offset,
            rebased: plan.rebased,
            audio_dropped: self.output.stats.audio_pes_dropped - dropped_before,
        });
        true
    }

    /// The timestamp offset for a splice at `point`; see the module docs.
    fn plan(&self, now: Instant, point: &SplicePoint) -> Option<Plan> {
        let (Some(last_dts), Some(max_pts)) = (self.output.last_dts, self.output.max_pts) else {
            return Some(Plan {
                offset: 0,
                rebased: false,
                pts_gap: 0,
            });
        };
        let idr_dts = point.dts.or(point.pts)?;
        let idr_pts = point.pts.or(point.dts)?;
        if self.settings.timeline == Timeline::Shared {
            // Frames up to `max_pts` went out already: a later IDR, or none.
            return (idr_pts.delta(max_pts) > 0 && idr_dts.delta(last_dts) > 0).then_some(Plan {
                offset: 0,
                rebased: false,
                pts_gap: idr_dts.delta(last_dts),
            });
        }
        let frame = self
            .active
            .and_then(|a| self.source(a))
            .and_then(|s| s.tap.frame_ticks)
            .or_else(|| self.pending.and_then(|p| self.source(p))?.tap.frame_ticks)
            .unwrap_or(self.settings.default_frame_ticks);
        let frame = i64::try_from(frame).unwrap_or(i64::MAX).max(1);
        let wall = self
            .output
            .last_emit
            .map_or(0, |t| to_ticks(now.saturating_duration_since(t)));
        let target = last_dts.add_ticks(frame.max(wall));
        // The first PCR the splice sends must advance the output's too
        // (else a discontinuity_indicator would be needed): the offset
        // that puts it one frame after the last PCR sent, if any.
        let first_pcr = self
            .pending
            .and_then(|p| self.source(p))
            .and_then(|s| s.tap.pcr_from(point.index));
        let by_pcr = match (self.output.last_pcr, first_pcr) {
            (Some(last), Some(first)) => Some(last.delta(first).div_euclid(300) + frame),
            _ => None,
        };
        let tolerance = to_ticks(self.settings.related_clock_tolerance);
        let related = idr_dts.delta(last_dts) > 0
            && idr_pts.delta(max_pts) > 0
            && by_pcr.is_none_or(|needed| needed <= 0)
            && idr_dts.delta(target).abs() <= tolerance;
        let offset = if related {
            0
        } else {
            let by_dts = target.delta(idr_dts);
            let by_pts = max_pts.add_ticks(frame).delta(idr_pts);
            let offset = by_dts.max(by_pts).max(by_pcr.unwrap_or(i64::MIN));
            // A rebased source lands a whole number of frames after the
            // last frame sent: a wall-clock gap (a dead source) would
            // otherwise leave the output off its frame grid, and tools
            // that guess the frame rate from timestamps (ffmpeg) get it
            // wrong and then collide frames.
            let step = idr_dts.add_ticks(offset).delta(last_dts);
            offset + (frame - step.rem_euclid(frame)) % frame
        };
        Some(Plan {
            offset,
            rebased: !related,
            pts_gap: idr_dts.add_ticks(offset).delta(last_dts),
        })
    }

    fn cancel_pending(&mut self) {
        if let Some(p) = self.pending.take()
            && let Some(src) = self.source_mut(p)
        {
            src.hold.take();
        }
        self.deferred = None;
        self.active_mid_frame = false;
    }

    fn position(&self, id: SourceId) -> Option<usize> {
        self.sources.iter().position(|(s, _)| *s == id)
    }

    fn source(&self, id: SourceId) -> Option<&Source> {
        self.sources.iter().find(|(s, _)| *s == id).map(|(_, s)| s)
    }

    fn source_mut(&mut self, id: SourceId) -> Option<&mut Source> {
        self.sources
            .iter_mut()
            .find(|(s, _)| *s == id)
            .map(|(_, s)| s)
    }

    fn position_or_insert(&mut self, id: SourceId) -> usize {
        self.position(id).unwrap_or_else(|| {
            self.sources.push((id, Source::new()));
            self.sources.len() - 1
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Plan {
    offset: i64,
    rebased: bool,
    pts_gap: i64,
}

fn find_mut(sources: &mut [(SourceId, Source)], id: SourceId) -> Option<&mut Source> {
    sources.iter_mut().find(|(s, _)| *s == id).map(|(_, s)| s)
}

/// A duration in 90 kHz ticks, saturating.
pub(super) fn to_ticks(d: Duration) -> i64 {
    i64::try_from(d.as_micros().saturating_mul(9) / 100).unwrap_or(i64::MAX)
}

impl Output {
    fn set_layout(&mut self, layout: Layout) {
        self.streams = layout
            .slots
            .iter()
            .map(|s| OutStream {
                kind: s.kind,
                cc: Cc::new(0),
                synced: false,
                dropping: false,
                audio_cut: false,
                last_pts: None,
                pes_ticks: None,
                same_source: false,
            })
            .collect();
        self.layout = Some(layout);
    }

    /// Starts a source: PAT and PMT first, then every elementary stream
    /// waits for its next PES start.
    fn begin(&mut self, now: Instant, out: &mut Vec<Bytes>) {
        self.emit_psi(now, Layout::PAT_SLOT, out);
        self.emit_psi(now, Layout::PMT_SLOT, out);
        for s in &mut self.streams {
            s.synced = false;
            s.dropping = false;
            s.audio_cut = s.kind == Kind::Audio && s.last_pts.is_some();
            s.same_source = false;
        }
        self.pcr_check = true;
    }

    /// The source lost packets of the PID in `slot`; see [`Splicer::push`].
    fn loss(&mut self, slot: u8) {
        if let Some(s) = self.streams.get_mut(usize::from(slot))
            && s.synced
            && !s.dropping
        {
            s.dropping = true;
            self.stats.damaged_pes_dropped += 1;
        }
    }

    fn emit_psi(&mut self, now: Instant, slot: u8, out: &mut Vec<Bytes>) {
        let (Some(layout), Some(stream)) = (
            self.layout.as_ref(),
            self.streams.get_mut(usize::from(slot)),
        ) else {
            return;
        };
        for packet in layout.psi_packets(slot, &mut stream.cc) {
            out.push(Bytes::copy_from_slice(&packet));
            self.stats.psi_packets += 1;
            self.stats.packets_out += 1;
        }
        self.last_emit = Some(now);
    }

    /// The old source's gate at a switch; see [`Splicer::splice`].
    fn finish_gate(
        &mut self,
        now: Instant,
        routes: &Routes,
        offset: i64,
        gate: VecDeque<(u64, Bytes)>,
        out: &mut Vec<Bytes>,
    ) {
        let mut closed = vec![false; self.streams.len()];
        for (_, packet) in gate {
            let Some(p) = packet
                .first_chunk::<PACKET_SIZE>()
                .and_then(|b| TsPacket::from_array(b).ok())
            else {
                continue;
            };
            let Some(route) = routes.get(p.pid().index()) else {
                continue;
            };
            let Some(closed) = closed.get_mut(usize::from(route.slot)) else {
                continue;
            };
            if !matches!(route.kind, Kind::Audio | Kind::Other) || !p.has_payload() {
                continue;
            }
            *closed |= p.payload_unit_start();
            let open = self
                .streams
                .get(usize::from(route.slot))
                .is_some_and(|s| s.synced && !s.dropping);
            if !*closed && open {
                self.emit(now, routes, offset, packet, out);
            }
        }
    }

    /// Sends one packet of the active source: remapped, re-stamped and
    /// rebased as needed; the very `Bytes` when nothing changes.
    fn emit(
        &mut self,
        now: Instant,
        routes: &Routes,
        offset: i64,
        packet: Bytes,
        out: &mut Vec<Bytes>,
    ) {
        let Some(bytes) = packet.first_chunk::<PACKET_SIZE>() else {
            return;
        };
        let Ok(p) = TsPacket::from_array(bytes) else {
            return;
        };
        let pid = p.pid();
        let Some(route) = routes.get(pid.index()).copied() else {
            return;
        };
        match route.kind {
            Kind::Drop => {
                self.stats.unmapped_packets += 1;
                return;
            }
            Kind::Pat | Kind::Pmt => {
                // The splicer's own PSI replaces the source's, one for one.
                if p.payload_unit_start() {
                    self.emit_psi(now, route.slot, out);
                }
                return;
            }
            Kind::PcrOnly if p.has_payload() => {
                self.stats.unmapped_packets += 1;
                return;
            }
            _ => {}
        }
        let pcr_pid = self.layout.as_ref().map(|l| l.pcr_pid);
        let Some(stream) = self.streams.get_mut(usize::from(route.slot)) else {
            return;
        };
        let mut pes_patch = None;
        if p.payload_unit_start() && p.has_payload() {
            stream.synced = true;
            stream.dropping = false;
            match PesHeader::parse(pid, p.payload()) {
                Ok(Some(header)) => {
                    let pts = header.pts.map(|t| t.add_ticks(offset));
                    let dts = header.dts.map(|t| t.add_ticks(offset));
                    if stream.audio_cut {
                        // The new source's audio starts where the old
                        // one's last PES ends, not merely after its start.
                        let needed = stream.pes_ticks.unwrap_or(1).max(1);
                        if let (Some(pts), Some(last)) = (pts, stream.last_pts)
                            && pts.delta(last) < needed
                        {
                            stream.dropping = true;
                            self.stats.audio_pes_dropped += 1;
                        } else {
                            stream.audio_cut = false;
                        }
                    }
                    if !stream.dropping {
                        if route.kind == Kind::Video {
                            self.last_dts = dts.or(pts).or(self.last_dts);
                            if let Some(pts) = pts
                                && self.max_pts.is_none_or(|m| pts.delta(m) > 0)
                            {
                                self.max_pts = Some(pts);
                            }
                        }
                        if let (Some(pts), Some(last)) = (pts, stream.last_pts)
                            && stream.same_source
                        {
                            // A step of a second or more is a gap in the
                            // source, not a PES duration.
                            let step = pts.delta(last);
                            if (1..90_000).contains(&step) {
                                stream.pes_ticks = Some(step);
                            }
                        }
                        stream.same_source = true;
                        stream.last_pts = pts.or(stream.last_pts);
                        if offset != 0 && (pts.is_some() || dts.is_some()) {
                            pes_patch = Some((p.payload_offset(), pts, dts));
                        }
                    }
                }
                Ok(None) if offset != 0 => {
                    stream.dropping = true;
                    self.stats.unpatchable_pes += 1;
                }
                // Not a PES the splicer can read (scrambled, damaged, no
                // timestamps to move): forwarded as it is.
                Ok(None) | Err(_) => {}
            }
        }
        if p.has_payload() && (!stream.synced || stream.dropping) {
            self.stats.unsynced_packets += u64::from(!stream.synced);
            return;
        }
        let mut discontinuity = false;
        let pcr = p.pcr();
        if let Some(pcr) = pcr
            && Some(route.out) == pcr_pid
        {
            let pcr = rebase_pcr(pcr, offset);
            if self.pcr_check {
                self.pcr_check = false;
                if self.last_pcr.is_some_and(|last| pcr.delta(last) <= 0) {
                    discontinuity = true;
                    self.stats.pcr_discontinuities += 1;
                }
            }
            self.last_pcr = Some(pcr);
        }
        let pcr_patch = offset != 0
            && p.adaptation_field()
                .is_some_and(|af| af.pcr().is_some() || af.opcr().is_some());
        // §2.4.3.3: only packets with payload advance the counter.
        let cc = if p.has_payload() {
            let cc = stream.cc;
            stream.cc = cc.next();
            cc
        } else {
            Cc::new(stream.cc.value().wrapping_sub(1))
        };
        self.stats.packets_out += 1;
        self.last_emit = Some(now);
        if route.out == pid
            && p.continuity_counter() == cc
            && pes_patch.is_none()
            && !pcr_patch
            && !discontinuity
        {
            self.stats.zero_copy += 1;
            out.push(packet);
            return;
        }
        self.stats.rewritten += 1;
        let mut copy = *bytes;
        rewrite(
            &mut copy,
            route.out,
            cc,
            offset,
            pcr_patch,
            discontinuity,
            pes_patch,
        );
        if self.arena.capacity() < PACKET_SIZE {
            self.arena.reserve(ARENA_PACKETS * PACKET_SIZE);
        }
        self.arena.extend_from_slice(&copy);
        out.push(self.arena.split().freeze());
    }
}

/// A PCR moved by `offset` 90 kHz ticks (×300 at 27 MHz), wrapping.
fn rebase_pcr(pcr: Pcr, offset: i64) -> Pcr {
    let modulus = i128::from(Pcr::MODULUS);
    let ticks = (i128::from(pcr.ticks_27mhz()) + i128::from(offset) * 300).rem_euclid(modulus);
    Pcr::from_27mhz(u64::try_from(ticks).unwrap_or(0))
}

/// Patches a packet copy in place: PID and counter (§2.4.3.2), PCR/OPCR
/// (§2.4.3.4), `discontinuity_indicator`, and PTS/DTS of a PES header that
/// starts at `pes.0` (§2.4.3.7).
pub(super) fn rewrite(
    packet: &mut [u8; PACKET_SIZE],
    pid: Pid,
    cc: Cc,
    offset: i64,
    pcr_patch: bool,
    discontinuity: bool,
    pes: Option<(usize, Option<Timestamp>, Option<Timestamp>)>,
) {
    let [_, b1, b2, b3, af_len, af_flags, af @ ..] = packet;
    let [pid_hi, pid_lo] = pid.value().to_be_bytes();
    *b1 = (*b1 & 0xE0) | (pid_hi & 0x1F);
    *b2 = pid_lo;
    *b3 = (*b3 & 0xF0) | cc.value();
    let has_af = *b3 & 0x20 != 0 && *af_len > 0;
    if has_af {
        if discontinuity {
            *af_flags |= 0x80;
        }
        if pcr_patch {
            let mut at = 0;
            for flag in [0x10u8, 0x08] {
                if *af_flags & flag == 0 {
                    continue;
                }
                if let Some(field) = af.get_mut(at..at + 6)
                    && at + 7 <= usize::from(*af_len)
                {
                    let pcr = read_pcr(field);
                    field.copy_from_slice(&crate::ts::packet::write_pcr(rebase_pcr(pcr, offset)));
                }
                at += 6;
            }
        }
    }
    if let Some((at, pts, dts)) = pes {
        patch_timestamp(packet, at + 9, pts);
        patch_timestamp(packet, at + 14, dts);
    }
}

/// Writes `ts` over the 5-byte timestamp field at `at`, keeping its 4-bit
/// prefix ('0010', '0011' or '0001').
fn patch_timestamp(packet: &mut [u8; PACKET_SIZE], at: usize, ts: Option<Timestamp>) {
    let Some(ts) = ts else {
        return;
    };
    if let Some(field) = packet.get_mut(at..at + 5) {
        let prefix = field.first().map_or(0, |b| b >> 4);
        field.copy_from_slice(&write_timestamp(prefix, ts));
    }
}

fn read_pcr(b: &[u8]) -> Pcr {
    let &[b0, b1, b2, b3, b4, b5] = b else {
        return Pcr::default();
    };
    let base = u64::from(b0) << 25
        | u64::from(b1) << 17
        | u64::from(b2) << 9
        | u64::from(b3) << 1
        | u64::from(b4) >> 7;
    Pcr::new(base, u16::from(b4 & 0x01) << 8 | u16::from(b5))
}
