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

/// Audio never overlaps itself: each AAC PES of `pid` starts no earlier
/// than the end of the one before (its PTS plus its ADTS frames'
/// duration). A splice that let the new source's audio start inside the
/// old source's last PES gives decoders non-monotonic audio DTS, which
/// PES-level PTS checks (the probe's) do not see.
pub fn assert_audio_does_not_overlap(out: &[Bytes], pid: u16) {
    let mut pes: Vec<(u64, Vec<u8>)> = Vec::new();
    for p in out {
        let packet = TsPacket::new(p).unwrap();
        if packet.pid().value() != pid || !packet.has_payload() {
            continue;
        }
        if packet.payload_unit_start() {
            let header = PesHeader::parse(packet.pid(), packet.payload())
                .unwrap()
                .unwrap();
            let pts = header.pts.unwrap().ticks();
            let body = packet.payload()[9 + usize::from(packet.payload()[8])..].to_vec();
            pes.push((pts, body));
        } else if let Some((_, body)) = pes.last_mut() {
            body.extend_from_slice(packet.payload());
        }
    }
    const RATES: [u64; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let mut end: Option<u64> = None;
    for (at, (pts, body)) in pes.iter().enumerate() {
        if let Some(end) = end {
            // 2 ticks: rounding of 1024 samples at 44.1 kHz.
            assert!(
                *pts + 2 >= end,
                "audio PES {at} starts at {pts}, {} ticks before the previous one ends",
                end - pts
            );
        }
        let mut frames = 0u64;
        let mut rate = 48000;
        let mut i = 0;
        while i + 7 <= body.len() && body[i] == 0xFF && body[i + 1] & 0xF0 == 0xF0 {
            rate = RATES[usize::from((body[i + 2] >> 2) & 0x0F).min(12)];
            let len = (usize::from(body[i + 3] & 0x03) << 11)
                | (usize::from(body[i + 4]) << 3)
                | usize::from(body[i + 5] >> 5);
            frames += 1;
            i += len.max(7);
        }
        end = Some(pts + frames * 1024 * 90_000 / rate);
    }
}
