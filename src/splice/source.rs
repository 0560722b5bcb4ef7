//! What the splicer keeps per source: its demux (for its PSI, splice
//! points and frame rate), duplicate detection, its routes onto the
//! output layout, and the packets it holds while a switch is pending.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use super::layout::Routes;
use crate::ts::continuity::CcTracker;
use crate::ts::demux::{AccessUnit, Demux, DemuxHandler, PesStart};
use crate::ts::gop::{GopIndexer, ProgramSelector};
use crate::ts::psi::{Pat, Pmt};
use crate::ts::{Pcr, Pid, Timestamp};

/// Demux callbacks of one source.
#[derive(Debug, Default)]
pub(crate) struct Tap {
    pub indexer: GopIndexer,
    /// Decode time of the last video PES start, for the frame estimate.
    last_video_dts: Option<Timestamp>,
    /// The latest step between consecutive video decode times.
    pub frame_ticks: Option<u64>,
    /// A PMT (or PAT) changed since the routes were built.
    pub psi_changed: bool,
    pub splice_points: u64,
    /// Recent PCRs of the program's PCR PID with their packet indices, to
    /// find the first one a splice would send.
    pub pcrs: VecDeque<(u64, Pcr)>,
}

impl Tap {
    const PCRS_KEPT: usize = 64;

    /// The first PCR at or after packet `index`, else the last before it.
    pub fn pcr_from(&self, index: u64) -> Option<Pcr> {
        self.pcrs
            .iter()
            .find(|(i, _)| *i >= index)
            .or(self.pcrs.back())
            .map(|(_, pcr)| *pcr)
    }
}

impl DemuxHandler for Tap {
    fn on_pat(&mut self, index: u64, pat: &Pat, section: &[u8]) {
        self.indexer.on_pat(index, pat, section);
        self.psi_changed = true;
    }

    fn on_pmt(&mut self, index: u64, pid: Pid, pmt: &Pmt, section: &[u8]) {
        self.indexer.on_pmt(index, pid, pmt, section);
        self.psi_changed = true;
    }

    fn on_pes(&mut self, pes: &PesStart) {
        if self.indexer.video_pid() != Some(pes.pid) {
            return;
        }
        let Some(dts) = pes.header.decode_time() else {
            return;
        };
        if let Some(last) = self.last_video_dts {
            // A step of more than a second is a gap or a clock jump, not
            // a frame (the slowest common rate is ~1 fps).
            let step = dts.delta(last);
            if step > 0 && step <= Timestamp::HZ as i64 {
                self.frame_ticks = Some(step.unsigned_abs());
            }
        }
        self.last_video_dts = Some(dts);
    }

    fn on_access_unit(&mut self, au: &AccessUnit) {
        self.indexer.on_access_unit(au);
    }

    fn on_pcr(&mut self, index: u64, pid: Pid, pcr: Pcr) {
        // The video PID carries the PCR in nearly every mux; a PCR on
        // another PID is taken until video is known.
        if self.indexer.video_pid().is_some_and(|v| v != pid) && !self.pcrs.is_empty() {
            return;
        }
        if self.pcrs.len() >= Self::PCRS_KEPT {
            self.pcrs.pop_front();
        }
        self.pcrs.push_back((index, pcr));
    }
}

/// Packets kept back, each with its demux index, bounded in bytes.
#[derive(Debug, Default)]
pub(crate) struct Hold {
    pub packets: VecDeque<(u64, Bytes)>,
    bytes: usize,
}

impl Hold {
    /// Appends a packet; returns the packets pushed out by `limit`.
    pub fn push(&mut self, index: u64, packet: Bytes, limit: usize) -> Vec<(u64, Bytes)> {
        self.bytes += packet.len();
        self.packets.push_back((index, packet));
        let mut evicted = Vec::new();
        while self.bytes > limit {
            let Some(front) = self.packets.pop_front() else {
                break;
            };
            self.bytes -= front.1.len();
            evicted.push(front);
        }
        evicted
    }

    /// Drops every packet before `index`.
    pub fn trim_before(&mut self, index: u64) {
        while let Some((i, p)) = self.packets.front() {
            if *i >= index {
                break;
            }
            self.bytes -= p.len();
            self.packets.pop_front();
        }
    }

    pub fn first_index(&self) -> Option<u64> {
        self.packets.front().map(|(i, _)| *i)
    }

    pub fn take(&mut self) -> VecDeque<(u64, Bytes)> {
        self.bytes = 0;
        std::mem::take(&mut self.packets)
    }
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Source {
    pub demux: Demux,
    pub tap: Tap,
    pub cc: CcTracker,
    /// Built when the source goes active (and when its PSI changes while
    /// active).
    pub routes: Option<Routes>,
    pub pmt_pid: Option<Pid>,
    /// Added to the source's timestamps, in 90 kHz ticks.
    pub offset: i64,
    /// Held packets while pending; gated packets while active.
    pub hold: Hold,
    /// Active: whether the gate starts at a video PES start (see the
    /// splicer's module docs).
    pub gate_aligned: bool,
    pub last_packet: Option<Instant>,
}

impl Source {
    pub fn new() -> Source {
        Source {
            demux: Demux::new(),
            tap: Tap {
                indexer: GopIndexer::new(ProgramSelector::FirstWithVideo),
                ..Tap::default()
            },
            cc: CcTracker::new(),
            routes: None,
            pmt_pid: None,
            offset: 0,
            hold: Hold::default(),
            gate_aligned: false,
            last_packet: None,
        }
    }

    /// The current PMT of the program the indexer follows.
    pub fn pmt(&self) -> Option<(Pid, &Pmt)> {
        let video = self.tap.indexer.video_pid()?;
        self.demux
            .pmts()
            .find(|(_, pmt)| pmt.streams.iter().any(|s| s.pid == video))
    }
}
