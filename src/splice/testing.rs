//! Test sources made from the committed captures, shared by the splicer
//! and failover tests.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;

use super::SourceId;
use super::splicer::rewrite;
use crate::ts::demux::Demux;
use crate::ts::pes::PesHeader;
use crate::ts::psi::{Pat, PatEntry, Pmt, PmtStream, packetize_section};
use crate::ts::{Cc, PACKET_SIZE, Pid, TsPacket};

pub const CLOSED_GOP: &[u8] = include_bytes!("../../testdata/h264_aac_closed_gop.ts");
pub const CBR: &[u8] = include_bytes!("../../testdata/cbr_null_packets.ts");

/// One loop of a capture lasts this long (its video is 4 s, its audio a
/// little longer): loops are laid end to end on the timeline.
pub const LOOP_TICKS: i64 = 101 * 3600;
pub const A: SourceId = SourceId(1);
pub const B: SourceId = SourceId(2);

/// How to make a test source from a capture.
#[derive(Clone, Copy)]
pub struct Recipe {
    pub loops: u32,
    /// Added to every timestamp and PCR.
    pub shift: i64,
    /// Loop length in ticks (the capture's duration, rounded up).
    pub loop_ticks: i64,
    /// PIDs moved by this much (0: as captured), PSI rewritten to match,
    /// and a data stream the layout lacks added to the PMT.
    pub pid_shift: u16,
}

impl Recipe {
    pub fn new(loops: u32) -> Recipe {
        Recipe {
            loops,
            shift: 0,
            loop_ticks: LOOP_TICKS,
            pid_shift: 0,
        }
    }
}

/// A capture looped `loops` times into one continuous source: timestamps
/// and PCR advanced by the loop length each time, counters re-stamped so
/// the source itself has no continuity errors.
pub fn source(capture: &[u8], r: Recipe) -> Vec<Bytes> {
    let mut demux = Demux::new();
    for p in capture.chunks_exact(PACKET_SIZE) {
        demux.push_packet(p.try_into().unwrap(), &mut ());
    }
    let pat = demux.pat().unwrap().clone();
    let (pmt_pid, pmt) = demux
        .pmts()
        .next()
        .map(|(pid, pmt)| (pid, pmt.clone()))
        .unwrap();
    let moved = |pid: Pid| {
        if pid == Pid::PAT || pid == Pid::NULL {
            pid
        } else {
            Pid::new(pid.value() + r.pid_shift)
        }
    };
    let new_pat = Pat {
        entries: vec![PatEntry {
            program_number: pmt.program_number,
            pid: moved(pmt_pid),
        }],
        ..pat
    }
    .to_section();
    let mut new_pmt = Pmt {
        pcr_pid: moved(pmt.pcr_pid),
        streams: pmt
            .streams
            .iter()
            .map(|s| PmtStream {
                pid: moved(s.pid),
                ..s.clone()
            })
            .collect(),
        ..pmt.clone()
    };
    if r.pid_shift != 0 {
        new_pmt.streams.push(PmtStream {
            stream_type: 0x06,
            pid: Pid::new(0x300),
            descriptors: vec![],
        });
    }
    let new_pmt = new_pmt.to_section();
    let mut ccs = [Cc::new(0); Pid::COUNT];
    let mut out = Vec::new();
    for l in 0..r.loops {
        let offset = r.shift + i64::from(l) * r.loop_ticks;
        for p in capture.chunks_exact(PACKET_SIZE) {
            let packet = TsPacket::new(p).unwrap();
            let pid = packet.pid();
            let cc = &mut ccs[pid.index()];
            if pid == Pid::PAT || pid == pmt_pid {
                if packet.payload_unit_start() {
                    let section = if pid == Pid::PAT { &new_pat } else { &new_pmt };
                    for q in packetize_section(moved(pid), section, cc) {
                        out.push(Bytes::copy_from_slice(&q));
                    }
                }
                continue;
            }
            let this = if packet.has_payload() {
                let c = *cc;
                *cc = c.next();
                c
            } else {
                Cc::new(cc.value().wrapping_sub(1))
            };
            let pes = (packet.payload_unit_start() && pid != Pid::NULL)
                .then(|| PesHeader::parse(pid, packet.payload()).ok().flatten())
                .flatten()
                .map(|h| {
                    (
                        packet.payload_offset(),
                        h.pts.map(|t| t.add_ticks(offset)),
                        h.dts.map(|t| t.add_ticks(offset)),
                    )
                });
            let mut copy: [u8; PACKET_SIZE] = p.try_into().unwrap();
            rewrite(&mut copy, moved(pid), this, offset, true, false, pes);
            out.push(Bytes::copy_from_slice(&copy));
        }
    }
    out
}

/// Packets of one source with their arrival times, spread evenly over
/// each loop.
pub fn timed(
    packets: Vec<Bytes>,
    id: SourceId,
    start: Duration,
    r: Recipe,
) -> Vec<(Duration, SourceId, Bytes)> {
    let total = packets.len() as f64;
    let span = r.loop_ticks as f64 / 90_000.0 * f64::from(r.loops);
    packets
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            (
                start + Duration::from_secs_f64(span * i as f64 / total),
                id,
                p,
            )
        })
        .collect()
}
