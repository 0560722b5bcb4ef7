//! The stamped MPEG-TS a publisher sends, and the stamp a receiver reads.
//!
//! Every datagram is 7 TS packets (1316 bytes): one *stamp packet* first,
//! then 6 packets of a synthetic H.264-like program (PAT+PMT and an IDR
//! with SPS/PPS every `fps` frames, P frames between), so the router's demux
//! finds a splice point every second and starts its consumers there.
//!
//! The stamp packet is a complete one-packet PES (private_stream_1,
//! ISO/IEC 13818-1 §2.4.3.7, no PTS) on [`STAMP_PID`], declared in the PMT
//! as stream_type 0x06 (PES private data), with its own continuous CC, so
//! the stream stays valid TS for any demux. Its PES payload:
//!
//! ```text
//! 0      4        8          16         24
//! "SYLG" stream   sequence   send time  0xFF stuffing…
//!        u32 BE   u64 BE     u64 BE (ns since the Unix epoch, CLOCK_REALTIME)
//! ```

use switchyard::ts::packet::PacketBuilder;
use switchyard::ts::pes::write_timestamp;
use switchyard::ts::psi::{Pat, PatEntry, Pmt, PmtStream, packetize_section};
use switchyard::ts::{Cc, PACKET_SIZE, Pcr, Pid, Timestamp};

pub const VIDEO_PID: u16 = 0x100;
pub const STAMP_PID: u16 = 0x1F0;
pub const PMT_PID: u16 = 0x1000;
pub const PACKETS_PER_DATAGRAM: usize = 7;
pub const DATAGRAM_LEN: usize = PACKETS_PER_DATAGRAM * PACKET_SIZE;

const MAGIC: &[u8; 4] = b"SYLG";
/// PES header of a stamp packet: private_stream_1, length up to the end of
/// the packet (184 − 6), '10' marker bits, no flags, no header data.
const STAMP_PES_HEADER: [u8; 9] = [0, 0, 1, 0xBD, 0, 178, 0x80, 0, 0];
/// Offset of the magic inside the TS packet (4-byte TS header + PES header).
const STAMP_AT: usize = 4 + STAMP_PES_HEADER.len();

/// AUD, SPS, PPS, IDR slice: a splice point with its parameter sets (the
/// same minimal units as switchyard's `ring::testing::synthetic`).
const IDR: &[u8] = &[
    0, 0, 0, 1, 0x09, 0xF0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 1, 0x65, 0x88,
];
/// AUD, P slice.
const P_SLICE: &[u8] = &[0, 0, 0, 1, 0x09, 0x30, 0, 0, 1, 0x41, 0x9A];

/// What a receiver reads back from a stamp packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub stream: u32,
    pub seq: u64,
    pub sent_ns: u64,
}

/// Reads the stamp of one 188-byte TS packet, if it is a stamp packet.
pub fn read(packet: &[u8]) -> Option<Stamp> {
    if packet.len() != PACKET_SIZE || packet.first() != Some(&0x47) {
        return None;
    }
    let pid = u16::from(packet.get(1)? & 0x1F) << 8 | u16::from(*packet.get(2)?);
    if pid != STAMP_PID {
        return None;
    }
    let body = packet.get(STAMP_AT..STAMP_AT + 24)?;
    if body.get(..4)? != MAGIC {
        return None;
    }
    let u32_at = |at: usize| Some(u32::from_be_bytes(body.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_be_bytes(body.get(at..at + 8)?.try_into().ok()?));
    Some(Stamp {
        stream: u32_at(4)?,
        seq: u64_at(8)?,
        sent_ns: u64_at(16)?,
    })
}

/// Every stamp in a datagram of whole TS packets.
pub fn read_all(datagram: &[u8]) -> impl Iterator<Item = Stamp> + '_ {
    datagram.chunks_exact(PACKET_SIZE).filter_map(read)
}

/// Generates one stream's datagrams. Deterministic for a given seed.
#[derive(Debug)]
pub struct Generator {
    stream: u32,
    seq: u64,
    stamp_cc: Cc,
    pat_cc: Cc,
    pmt_cc: Cc,
    video_cc: Cc,
    pat: Vec<u8>,
    pmt: Vec<u8>,
    /// Media packets not yet sent (the current frame, PSI first).
    pending: std::collections::VecDeque<[u8; PACKET_SIZE]>,
    frame: u64,
    fps: u64,
    /// PES bytes per frame so that media fills 6/7 of the bitrate.
    frame_bytes: usize,
    rng: u64,
}

impl Generator {
    /// `datagrams_per_second` sets the frame size: 6 of every 7 packets are
    /// media, at `fps` frames per second.
    pub fn new(stream: u32, seed: u64, datagrams_per_second: f64, fps: u64) -> Generator {
        let pat = Pat {
            transport_stream_id: 1,
            version: 0,
            entries: vec![PatEntry {
                program_number: 1,
                pid: Pid::new(PMT_PID),
            }],
        }
        .to_section();
        let pmt = Pmt {
            program_number: 1,
            version: 0,
            pcr_pid: Pid::new(VIDEO_PID),
            descriptors: vec![],
            streams: vec![
                PmtStream {
                    stream_type: 0x1B,
                    pid: Pid::new(VIDEO_PID),
                    descriptors: vec![],
                },
                PmtStream {
                    stream_type: 0x06,
                    pid: Pid::new(STAMP_PID),
                    descriptors: vec![],
                },
            ],
        }
        .to_section();
        let media_packets_per_frame = datagrams_per_second * 6.0 / fps as f64;
        // ~180 payload bytes per packet (PES header, PCR adaptation field).
        let frame_bytes = ((media_packets_per_frame * 180.0) as usize).max(64);
        Generator {
            stream,
            seq: 0,
            stamp_cc: Cc::new(0),
            pat_cc: Cc::new(0),
            pmt_cc: Cc::new(0),
            video_cc: Cc::new(0),
            pat,
            pmt,
            pending: std::collections::VecDeque::new(),
            frame: 0,
            fps: fps.max(1),
            frame_bytes,
            // splitmix64 of the seed and stream: never zero for xorshift.
            rng: splitmix(seed ^ u64::from(stream).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1,
        }
    }

    /// Writes the next datagram into `out`, stamped with `now_ns`.
    pub fn next_datagram(&mut self, now_ns: u64, out: &mut Vec<u8>) {
        out.clear();
        let mut packet = [0u8; PACKET_SIZE];
        let mut payload = [0xFFu8; PACKET_SIZE - 4];
        payload[..STAMP_PES_HEADER.len()].copy_from_slice(&STAMP_PES_HEADER);
        let body = &mut payload[STAMP_PES_HEADER.len()..];
        body[..4].copy_from_slice(MAGIC);
        body[4..8].copy_from_slice(&self.stream.to_be_bytes());
        body[8..16].copy_from_slice(&self.seq.to_be_bytes());
        body[16..24].copy_from_slice(&now_ns.to_be_bytes());
        let mut b = PacketBuilder::new(Pid::new(STAMP_PID));
        b.pusi = true;
        b.cc = self.stamp_cc;
        self.stamp_cc = self.stamp_cc.next();
        b.build(&payload, &mut packet);
        out.extend_from_slice(&packet);
        self.seq += 1;
        for _ in 1..PACKETS_PER_DATAGRAM {
            if self.pending.is_empty() {
                self.next_frame();
            }
            let media = self.pending.pop_front().expect("next_frame queues packets");
            out.extend_from_slice(&media);
        }
    }

    /// Queues the next video frame (PSI first at a GOP start).
    fn next_frame(&mut self) {
        let idr = self.frame.is_multiple_of(self.fps);
        if idr {
            self.pending
                .extend(packetize_section(Pid::PAT, &self.pat, &mut self.pat_cc));
            self.pending.extend(packetize_section(
                Pid::new(PMT_PID),
                &self.pmt,
                &mut self.pmt_cc,
            ));
        }
        let ticks = 126_000 + self.frame * 90_000 / self.fps;
        let mut pes = vec![0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5];
        pes.extend_from_slice(&write_timestamp(2, Timestamp::new(ticks)));
        pes.extend_from_slice(if idr { IDR } else { P_SLICE });
        // ±12.5 % frame size, IDRs three times larger: a plausible
        // encoder's output without changing the average much.
        let jitter = (self.next_random() % 256) as usize;
        let base = self.frame_bytes * 7 / 8 + self.frame_bytes * jitter / 1024;
        let size = if idr { base * 3 } else { base * 29 / 30 };
        pes.resize(size.max(pes.len()), 0x55);
        let mut rest = pes.as_slice();
        let mut first = true;
        while !rest.is_empty() {
            let mut b = PacketBuilder::new(Pid::new(VIDEO_PID));
            b.pusi = first;
            b.random_access = first && idr;
            if first {
                b.pcr = Some(Pcr::new(ticks - 9_000, 0));
            }
            b.cc = self.video_cc;
            self.video_cc = self.video_cc.next();
            let mut packet = [0u8; PACKET_SIZE];
            let n = b.build(rest, &mut packet);
            self.pending.push_back(packet);
            rest = &rest[n..];
            first = false;
        }
        self.frame += 1;
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard::probe::Prober;

    #[test]
    fn stamps_round_trip_and_the_stream_is_valid_ts() {
        let mut g = Generator::new(3, 42, 760.0, 25);
        let mut all = Vec::new();
        let mut datagram = Vec::new();
        for i in 0..1600u64 {
            g.next_datagram(i * 1000, &mut datagram);
            assert_eq!(datagram.len(), DATAGRAM_LEN);
            let stamps: Vec<Stamp> = read_all(&datagram).collect();
            assert_eq!(
                stamps,
                vec![Stamp {
                    stream: 3,
                    seq: i,
                    sent_ns: i * 1000
                }]
            );
            all.extend_from_slice(&datagram);
        }
        let mut prober = Prober::new();
        prober.push(&all);
        let report = prober.finish().expect("valid TS");
        assert_eq!(report.cc_errors, 0, "{report:#?}");
        assert_eq!(report.errors.psi_errors, 0, "{report:#?}");
        assert_eq!(report.errors.pes_errors, 0, "{report:#?}");
        let video = report.video.as_ref().expect("video found");
        assert_eq!(video.frames_before_first_idr, 0);
        assert!(video.idr_pts.len() >= 2, "{report:#?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let run = |seed| {
            let mut g = Generator::new(0, seed, 500.0, 25);
            let mut out = Vec::new();
            let mut d = Vec::new();
            for i in 0..200 {
                g.next_datagram(i, &mut d);
                out.extend_from_slice(&d);
            }
            out
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
