//! Test support: a synthetic program whose audio PES packets span several
//! TS packets and straddle video GOP boundaries (ffmpeg's captures put each
//! AAC frame in a single packet, so they never do), with PAT/PMT repeated
//! out of step with the GOPs, and the helpers that judge consumer output.
#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

use bytes::Bytes;

use crate::probe::{Prober, Report};
use crate::ts::packet::PacketBuilder;
use crate::ts::pes::write_timestamp;
use crate::ts::psi::{Pat, PatEntry, Pmt, PmtStream, packetize_section};
use crate::ts::{Cc, PACKET_SIZE, Pid, Timestamp, TsPacket};

pub const VIDEO: u16 = 0x100;
pub const AUDIO: u16 = 0x101;
pub const PMT: u16 = 0x1000;
/// 7 packets: one SRT/UDP datagram.
pub const DATAGRAM: usize = 7 * PACKET_SIZE;

/// AUD, SPS, PPS, IDR slice: a splice point with its parameter sets.
const IDR: &[u8] = &[
    0, 0, 0, 1, 0x09, 0xF0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 1, 0x65, 0x88,
];
/// AUD, P slice.
const P_SLICE: &[u8] = &[0, 0, 0, 1, 0x09, 0x30, 0, 0, 1, 0x41, 0x9A];

/// `frames` video frames at 25 fps with an IDR every `gop` frames (about
/// 4 packets each), AAC-like audio PES packets of 3 packets each, one audio
/// packet after every second video packet, and PAT+PMT every 7 frames.
pub fn synthetic(frames: u64, gop: u64) -> Bytes {
    // PAT, PMT, audio, video.
    let mut cc = [Cc::new(0); 4];
    let mut out: Vec<u8> = Vec::new();
    let pat = Pat {
        transport_stream_id: 1,
        version: 0,
        entries: vec![PatEntry {
            program_number: 1,
            pid: Pid::new(PMT),
        }],
    }
    .to_section();
    let stream = |stream_type, pid| PmtStream {
        stream_type,
        pid: Pid::new(pid),
        descriptors: vec![],
    };
    let pmt = Pmt {
        program_number: 1,
        version: 0,
        pcr_pid: Pid::new(VIDEO),
        descriptors: vec![],
        streams: vec![stream(0x1B, VIDEO), stream(0x0F, AUDIO)],
    }
    .to_section();
    let mut audio: Vec<[u8; PACKET_SIZE]> = Vec::new();
    let mut audio_frame = 0u64;
    let mut video_packets = 0u64;
    for frame in 0..frames {
        if frame.is_multiple_of(7) {
            out.extend(packetize_section(Pid::PAT, &pat, &mut cc[0]).concat());
            out.extend(packetize_section(Pid::new(PMT), &pmt, &mut cc[1]).concat());
        }
        let mut pes = vec![0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5];
        pes.extend_from_slice(&write_timestamp(2, Timestamp::new(126_000 + frame * 3600)));
        pes.extend_from_slice(if frame.is_multiple_of(gop) {
            IDR
        } else {
            P_SLICE
        });
        pes.resize(600 + (frame as usize * 37) % 200, 0x55);
        for packet in packetize(VIDEO, &pes, &mut cc[3]) {
            out.extend_from_slice(&packet);
            video_packets += 1;
            if video_packets.is_multiple_of(2) {
                if audio.is_empty() {
                    let mut pes = vec![0, 0, 1, 0xC0, 0, 0, 0x80, 0x80, 5];
                    pes.extend_from_slice(&write_timestamp(
                        2,
                        Timestamp::new(126_000 + audio_frame * 1920),
                    ));
                    pes.resize(450, 0x21);
                    let len = (pes.len() - 6) as u16;
                    pes[4..6].copy_from_slice(&len.to_be_bytes());
                    audio = packetize(AUDIO, &pes, &mut cc[2]);
                    audio.reverse();
                    audio_frame += 1;
                }
                out.extend_from_slice(&audio.pop().unwrap());
            }
        }
    }
    // The audio frame in progress ends the stream whole.
    while let Some(packet) = audio.pop() {
        out.extend_from_slice(&packet);
    }
    Bytes::from(out)
}

/// An audio-only program: PAT+PMT (AAC on 0x101) every 20 frames, then
/// `frames` audio PES packets of 3 TS packets each.
pub fn synthetic_audio(frames: u64) -> Bytes {
    let (mut pat_cc, mut pmt_cc, mut audio_cc) = (Cc::new(0), Cc::new(0), Cc::new(0));
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
        pcr_pid: Pid::new(AUDIO),
        descriptors: vec![],
        streams: vec![PmtStream {
            stream_type: 0x0F,
            pid: Pid::new(AUDIO),
            descriptors: vec![],
        }],
    }
    .to_section();
    let mut out = Vec::new();
    for frame in 0..frames {
        if frame.is_multiple_of(20) {
            out.extend(packetize_section(Pid::PAT, &pat, &mut pat_cc).concat());
            out.extend(packetize_section(Pid::new(PMT), &pmt, &mut pmt_cc).concat());
        }
        let mut pes = vec![0, 0, 1, 0xC0, 0, 0, 0x80, 0x80, 5];
        pes.extend_from_slice(&write_timestamp(2, Timestamp::new(126_000 + frame * 1920)));
        pes.resize(450, 0x21);
        let len = (pes.len() - 6) as u16;
        pes[4..6].copy_from_slice(&len.to_be_bytes());
        out.extend(packetize(AUDIO, &pes, &mut audio_cc).concat());
    }
    Bytes::from(out)
}

/// A PES packet in TS packets, the last one stuffed.
fn packetize(pid: u16, pes: &[u8], cc: &mut Cc) -> Vec<[u8; PACKET_SIZE]> {
    let mut packets = Vec::new();
    let mut rest = pes;
    while !rest.is_empty() {
        let mut b = PacketBuilder::new(Pid::new(pid));
        b.pusi = packets.is_empty();
        b.cc = *cc;
        *cc = cc.next();
        let mut packet = [0u8; PACKET_SIZE];
        let n = b.build(rest, &mut packet);
        packets.push(packet);
        rest = &rest[n..];
    }
    packets
}

/// A capture cut into datagrams (zero-copy slices).
pub fn datagrams(all: &Bytes) -> Vec<Bytes> {
    (0..all.len())
        .step_by(DATAGRAM)
        .map(|at| all.slice(at..(at + DATAGRAM).min(all.len())))
        .collect()
}

pub fn packets(all: &Bytes) -> Vec<Bytes> {
    (0..all.len() / PACKET_SIZE)
        .map(|i| all.slice(i * PACKET_SIZE..(i + 1) * PACKET_SIZE))
        .collect()
}

pub fn pid(packet: &[u8]) -> u16 {
    u16::from(packet[1] & 0x1F) << 8 | u16::from(packet[2])
}

pub fn pusi(packet: &[u8]) -> bool {
    packet[1] & 0x40 != 0
}

pub fn probe(packets: &[Bytes]) -> Report {
    let mut prober = Prober::new();
    for p in packets {
        prober.push(p);
    }
    prober.finish().unwrap()
}

pub fn cc_errors(report: &Report, pid: u16) -> u64 {
    report
        .pids
        .iter()
        .find(|p| p.pid == pid)
        .map_or(0, |p| p.cc_errors)
}

/// What a clean consumer output looks like: starts on an IDR, no
/// continuity or PSI errors, timestamps in order, GOPs of `gop` frames,
/// audio frames whole.
pub fn assert_clean(out: &[Bytes], gop: u64) -> Report {
    let report = probe(out);
    assert_eq!(report.cc_errors, 0, "{report:#?}");
    assert_eq!(report.errors.psi_errors, 0);
    assert_eq!(report.errors.pes_errors, 0);
    let video = report.video.as_ref().unwrap();
    assert_eq!(video.frames_before_first_idr, 0);
    assert_eq!((video.pts_backwards, video.duplicate_pts), (0, 0));
    assert_eq!(video.dts_backwards, 0);
    assert!(
        video.gop_frames.iter().all(|&n| n == gop),
        "incomplete GOP: {:?}",
        video.gop_frames
    );
    for audio in &report.audio {
        assert_eq!((audio.pts_backwards, audio.duplicate_pts), (0, 0));
    }
    assert_whole_audio_frames(out);
    report
}

/// Every audio PES packet is as long as its `PES_packet_length` says: no
/// frame cut short at a GOP boundary.
pub fn assert_whole_audio_frames(out: &[Bytes]) {
    let mut pes: Option<(usize, usize)> = None;
    let check = |pes: Option<(usize, usize)>| {
        if let Some((declared, got)) = pes {
            assert_eq!(got, declared, "audio PES cut short");
        }
    };
    for p in out.iter().filter(|p| pid(p) == AUDIO) {
        let payload = TsPacket::new(p).unwrap().payload();
        if pusi(p) {
            check(pes.take());
            let declared = 6 + usize::from(u16::from_be_bytes([payload[4], payload[5]]));
            pes = Some((declared, 0));
        }
        if let Some((_, got)) = &mut pes {
            // The last packet of a PES is stuffed in its adaptation field,
            // so payloads add up to the PES exactly.
            *got += payload.len();
        }
    }
    check(pes);
}
