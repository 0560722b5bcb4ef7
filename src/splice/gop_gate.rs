//! The hitless gate: one encoder's output held back by one GOP (issue 4,
//! point 5, `hitless` mode).
//!
//! Packets are released only as whole GOPs: everything from one splice
//! point up to the next one is let through when that next splice point
//! shows up. A GOP cut short by the encoder's failure is therefore never
//! sent; the shell discards it ([`GopGate::discard`]) and the replacement
//! encoder, fed from the ring buffer's splice point at or before the first
//! frame not yet output, encodes that GOP again. With a [`Splicer`] in
//! [`Timeline::Shared`] mode behind the gates, the output then loses and
//! repeats no frame: the splicer takes the replacement's first IDR after
//! the last frame it sent, which is the start of the discarded GOP.
//!
//! The cost is one GOP of latency and one GOP of memory per encoder,
//! bounded by `limit`: a GOP longer than that is released early (counted
//! in [`GateStats::overflows`]), and the hitless guarantee does not hold
//! for it.
//!
//! [`Splicer`]: super::Splicer
//! [`Timeline::Shared`]: super::Timeline::Shared
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::VecDeque;

use bytes::Bytes;

use crate::ts::demux::{AccessUnit, Demux, DemuxHandler};
use crate::ts::gop::{GopIndexer, ProgramSelector};
use crate::ts::psi::{Pat, Pmt};
use crate::ts::{PACKET_SIZE, Pid};

/// Counters of a [`GopGate`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GateStats {
    /// Whole GOPs released.
    pub gops_released: u64,
    pub packets_released: u64,
    /// Packets before the encoder's first splice point (never released).
    pub packets_before_first_gop: u64,
    /// Packets of incomplete GOPs thrown away by [`GopGate::discard`].
    pub packets_discarded: u64,
    /// Packets released before their GOP was complete because the GOP
    /// outgrew the limit.
    pub overflows: u64,
}

/// See the module docs.
#[derive(Debug)]
pub struct GopGate {
    demux: Demux,
    indexer: Indexer,
    /// Packets from the current GOP's splice point on, with demux indices.
    held: VecDeque<(u64, Bytes)>,
    /// Index of the splice point the held GOP starts at.
    gop_start: Option<u64>,
    limit: usize,
    stats: GateStats,
}

#[derive(Debug)]
struct Indexer(GopIndexer);

impl DemuxHandler for Indexer {
    fn on_pat(&mut self, index: u64, pat: &Pat, section: &[u8]) {
        self.0.on_pat(index, pat, section);
    }

    fn on_pmt(&mut self, index: u64, pid: Pid, pmt: &Pmt, section: &[u8]) {
        self.0.on_pmt(index, pid, pmt, section);
    }

    fn on_access_unit(&mut self, au: &AccessUnit) {
        self.0.on_access_unit(au);
    }
}

impl GopGate {
    /// `limit`: bytes held at most (one GOP of the stream, with room).
    pub fn new(limit: usize) -> GopGate {
        GopGate {
            demux: Demux::new(),
            indexer: Indexer(GopIndexer::new(ProgramSelector::FirstWithVideo)),
            held: VecDeque::new(),
            gop_start: None,
            limit: limit.max(PACKET_SIZE),
            stats: GateStats::default(),
        }
    }

    pub fn stats(&self) -> GateStats {
        self.stats
    }

    /// Bytes held (the GOP in progress).
    pub fn held_bytes(&self) -> usize {
        self.held.len() * PACKET_SIZE
    }

    /// Whether a GOP has started (the encoder produced a splice point).
    pub fn started(&self) -> bool {
        self.gop_start.is_some()
    }

    /// Feeds one 188-byte packet of the encoder's output; whole GOPs that
    /// it completes are appended to `out`.
    pub fn push(&mut self, packet: Bytes, out: &mut Vec<Bytes>) {
        let Some(bytes) = packet.first_chunk::<PACKET_SIZE>() else {
            return;
        };
        let index = self.demux.next_index();
        self.demux.push_packet(bytes, &mut self.indexer);
        self.held.push_back((index, packet));
        while let Some(point) = self.indexer.0.poll() {
            self.gop_boundary(point.index, point.pmt_pid, out);
        }
        if self.gop_start.is_none() {
            // Before the first splice point nothing is ever released, but
            // the splice point is only known a few packets after its
            // start: keep the packets since the latest video PES start.
            self.trim_unstarted();
        } else {
            while self.held_bytes() > self.limit {
                let Some((_, early)) = self.held.pop_front() else {
                    break;
                };
                self.stats.overflows += 1;
                self.stats.packets_released += 1;
                out.push(early);
            }
        }
    }

    /// A splice point at packet `start`: the held packets before it are a
    /// whole GOP (or the stream before its first GOP, of which only the
    /// latest PAT and PMT packets are kept, so that the first GOP can be
    /// demultiplexed on its own and its PSI counters run on).
    fn gop_boundary(&mut self, start: u64, pmt_pid: Pid, out: &mut Vec<Bytes>) {
        let had_gop = self.gop_start.is_some();
        let mut released = 0;
        let mut psi: [Option<(u64, Bytes)>; 2] = [None, None];
        while let Some(&(index, _)) = self.held.front() {
            if index >= start {
                break;
            }
            let Some((_, packet)) = self.held.pop_front() else {
                break;
            };
            if had_gop {
                out.push(packet);
                released += 1;
            } else {
                self.stats.packets_before_first_gop += 1;
                let pid = match (packet.get(1), packet.get(2)) {
                    (Some(hi), Some(lo)) => Some(Pid::new(u16::from_be_bytes([hi & 0x1F, *lo]))),
                    _ => None,
                };
                if pid == Some(Pid::PAT) {
                    psi[0] = Some((index, packet));
                } else if pid == Some(pmt_pid) {
                    psi[1] = Some((index, packet));
                }
            }
        }
        let mut psi: Vec<(u64, Bytes)> = psi.into_iter().flatten().collect();
        psi.sort_by_key(|(index, _)| *index);
        for kept in psi.into_iter().rev() {
            self.stats.packets_before_first_gop -= 1;
            self.held.push_front(kept);
        }
        if had_gop {
            self.stats.gops_released += 1;
            self.stats.packets_released += released;
        }
        self.gop_start = Some(start);
    }

    /// Bounds what is kept before the first splice point: a splice point
    /// is recognised within its first access unit, so one IDR frame's
    /// worth (the limit) is enough.
    fn trim_unstarted(&mut self) {
        while self.held_bytes() > self.limit {
            if self.held.pop_front().is_none() {
                break;
            }
            self.stats.packets_before_first_gop += 1;
        }
    }

    /// The encoder failed: the GOP in progress is dropped, and the gate
    /// waits for a new first splice point. Returns the packets dropped.
    pub fn discard(&mut self) -> usize {
        let dropped = self.held.len();
        self.stats.packets_discarded += dropped as u64;
        self.held.clear();
        self.gop_start = None;
        self.demux = Demux::new();
        self.indexer = Indexer(GopIndexer::new(ProgramSelector::FirstWithVideo));
        dropped
    }

    /// End of a healthy encoder's output (shutdown): its last GOP is
    /// complete as far as anyone will know.
    pub fn flush(&mut self, out: &mut Vec<Bytes>) {
        if self.gop_start.is_none() {
            return;
        }
        let released = self.held.len() as u64;
        out.extend(self.held.drain(..).map(|(_, p)| p));
        self.stats.packets_released += released;
        self.stats.gops_released += 1;
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ring::testing::{assert_clean, packets, synthetic};

    #[test]
    fn releases_only_whole_gops() {
        // 100 frames, an IDR every 25.
        let all = packets(&synthetic(100, 25));
        let mut gate = GopGate::new(1 << 20);
        let mut out = Vec::new();
        let mut released_at = Vec::new();
        for (i, p) in all.iter().enumerate() {
            let before = out.len();
            gate.push(p.clone(), &mut out);
            if out.len() > before {
                released_at.push(i);
            }
        }
        // Three GOPs were completed by the next IDR; the fourth is held.
        assert_eq!(gate.stats().gops_released, 3, "{:?}", gate.stats());
        assert!(gate.held_bytes() > 0);
        let report = assert_clean(&out, 25);
        assert_eq!(report.video.as_ref().map(|v| v.frames), Some(75));
        gate.flush(&mut out);
        let report = assert_clean(&out, 25);
        assert_eq!(report.video.as_ref().map(|v| v.frames), Some(100));
    }

    #[test]
    fn a_failed_gop_is_never_released() {
        let all = packets(&synthetic(100, 25));
        let mut gate = GopGate::new(1 << 20);
        let mut out = Vec::new();
        // The encoder dies two thirds of the way through.
        for p in &all[..all.len() * 2 / 3] {
            gate.push(p.clone(), &mut out);
        }
        let frames_out = assert_clean(&out, 25).video.map_or(0, |v| v.frames);
        assert_eq!(frames_out % 25, 0, "only whole GOPs: {frames_out}");
        assert!(gate.discard() > 0);
        assert!(!gate.started());
        // The replacement's output is gated from its own first IDR.
        let mut replacement = Vec::new();
        for p in &all {
            gate.push(p.clone(), &mut replacement);
        }
        assert_eq!(gate.stats().gops_released, 3 + 2);
    }

    #[test]
    fn an_overlong_gop_is_released_early_and_counted() {
        let all = packets(&synthetic(100, 25));
        let mut gate = GopGate::new(20 * PACKET_SIZE);
        let mut out = Vec::new();
        for p in &all {
            gate.push(p.clone(), &mut out);
        }
        assert!(gate.stats().overflows > 0);
        assert!(gate.held_bytes() <= 20 * PACKET_SIZE);
    }
}
